"""The model families, by the names they are registered, logged and served under."""

CHURN = "churn"
PROPENSITY = "propensity"
RECOMMENDER = "recommender"

# Binary outcomes over the customer feature rows (models.outcome), and every family.
OUTCOME_MODELS = (CHURN, PROPENSITY)
MODEL_NAMES = (*OUTCOME_MODELS, RECOMMENDER)
