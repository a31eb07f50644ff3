"""The model families, by the names they are registered, logged and served under."""

CHURN = "churn"
PROPENSITY = "propensity"
RECOMMENDER = "recommender"
CLV = "clv"

# Binary outcomes over the customer feature rows (models.outcome), and every family (CLV: customer
# value and timing, models.value_model).
OUTCOME_MODELS = (CHURN, PROPENSITY)
MODEL_NAMES = (*OUTCOME_MODELS, RECOMMENDER, CLV)
# Scored from the customer feature rows alone (`predict_frame`): the batch scores' columns.
FEATURE_ROW_MODELS = (*OUTCOME_MODELS, CLV)
