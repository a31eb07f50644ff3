"""The wire contract of the scoring service (pydantic models, shown on the OpenAPI page).

Requests are typed by the `@bentoml.api` method parameters in `service.service`, and POST /recommend
by `RecommendRequest`, which is the recommender's own `RecommendationRules` plus the customer and k,
so the rules are defined once and reach the model as one value. A refused request answers
`ErrorAnswer` with a 4xx status instead of the endpoint's model, and so does an endpoint whose model
has no champion, with 503.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from models.recommender import RULE_NAMES, RecommendationRules

MAX_K = 100
Count = Annotated[int, Field(ge=1, le=MAX_K, strict=True, description="how many items")]
# /due looks at most ten years ahead
WithinDays = Annotated[int, Field(ge=1, le=3650, strict=True, description="days from the profile's as_of")]


class RecommendRequest(RecommendationRules):
    """POST /recommend: whose list, how long, and the rules it must follow."""

    # strict: a JSON value of another type is refused, not coerced (`"k": "5"`, `"exclude_purchased": 0`);
    # unknown top-level keys never get here (`service.requests` refuses them)
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    customer_id: str
    k: Count = 10

    @staticmethod
    def rules_of(values: dict[str, Any]) -> RecommendationRules:
        """The rules among a request's field values."""
        return RecommendationRules(**{name: values[name] for name in RULE_NAMES})


class ErrorAnswer(BaseModel):
    error: str
    field: str


class Reason(BaseModel):
    """A theme of the score in words (`models.explanations`): its strongest feature beside the median
    of customers in the same RFM segment."""

    group: str  # recency, frequency, spend, engagement, service experience, seasonality and restocking, ...
    direction: str  # "raises" or "lowers": the sign of `impact`
    impact: float  # the theme's summed SHAP contribution to the churn log-odds
    text: str  # e.g. "Recency raises the churn risk: days since the last purchase: 250 days (customers like them ...)"
    column: str  # the feature column the text tells
    value: float | None
    typical: float | None  # its median in the customer's segment


class Contribution(BaseModel):
    """One feature's raw SHAP contribution, for engineers."""

    feature: str  # in words
    column: str  # the feature column
    value: float | None
    impact: float  # SHAP contribution to the churn log-odds; > 0 raises the risk


class ChurnResult(BaseModel):
    customer_id: str
    churn_probability: float | None  # None: not in the churn population (no purchase in the lookback)
    risk_tier: str
    reasons: list[Reason]  # the top 3 themes in words
    contributions: list[Contribution]  # the top 5 features by absolute SHAP contribution
    known_customer: bool
    model_version: str | None


class ChurnAnswer(BaseModel):
    results: list[ChurnResult]


class ClvResult(BaseModel):
    """Null values: an unknown customer, or one who never bought (nothing to extrapolate from)."""

    customer_id: str
    expected_orders: float | None  # orders expected in the horizon
    clv: float | None  # expected spend in the horizon (undiscounted unless the model's discount rate is set)
    clv_low: float | None  # the 80% prediction interval of the spend
    clv_high: float | None
    p_active: float | None  # the chance the customer is still a customer
    next_purchase_days: float | None  # median wait to the next order from as_of, given they are active
    next_purchase_low_days: float | None  # its 80% interval
    next_purchase_high_days: float | None
    next_purchase_date: str | None  # ISO date: the profile's as_of plus the median wait
    next_purchase_low: str | None
    next_purchase_high: str | None
    horizon_days: int
    reasons: list[str]  # what the value rests on, in words
    known_customer: bool
    model_version: str | None


class ClvAnswer(BaseModel):
    results: list[ClvResult]


class CategoryProbability(BaseModel):
    category: str
    probability: float


class PropensityResult(BaseModel):
    customer_id: str
    purchase_probability: float | None
    top_categories: list[CategoryProbability]  # the most likely categories, best first (propensity.top_categories)
    category_probabilities: dict[str, float]  # every category -> its probability of a purchase in the horizon
    known_customer: bool
    model_version: str | None


class PropensityAnswer(BaseModel):
    results: list[PropensityResult]


class Item(BaseModel):
    product_id: str
    score: float
    reason: str


class RecommendAnswer(BaseModel):
    customer_id: str
    items: list[Item]
    known_customer: bool
    model_version: str | None


class SimilarItemsAnswer(BaseModel):
    product_id: str
    items: list[Item]
    model_version: str | None


class ProfileScores(BaseModel):
    """A model without a champion leaves its scores null and its lists empty (risk tier "not_applicable")."""

    churn_probability: float | None
    risk_tier: str
    churn_reasons: list[Reason]
    purchase_probability: float | None
    top_categories: list[CategoryProbability]
    # customer value (null without a clv champion or a purchase): as in /clv
    expected_orders: float | None
    clv: float | None
    clv_low: float | None
    clv_high: float | None
    p_active: float | None
    next_purchase_days: float | None
    next_purchase_low_days: float | None
    next_purchase_high_days: float | None
    next_purchase_date: str | None
    next_purchase_low: str | None
    next_purchase_high: str | None
    value_reasons: list[str]


class ProfileAnswer(BaseModel):
    customer_id: str
    known_customer: bool
    as_of: str | None
    rfm_segment: str | None
    lifecycle_stage: str | None
    features: dict[str, Any]
    scores: ProfileScores
    recommendations: list[Item]  # empty when no recommender is registered
    model_versions: dict[str, str]  # the served models only


class DueItem(BaseModel):
    product_id: str
    category: str
    due_date: str  # ISO date
    due_low: str  # the 80% interval's first day
    due_high: str  # its last day
    due_probability: float  # chance of buying it inside the query window
    due_kind: str  # "replenishment" or "seasonal"
    expected_quantity: float
    due_reason: str  # e.g. "bought every 28 days, last 26 days ago"


class DueAnswer(BaseModel):
    customer_id: str
    known_customer: bool
    as_of: str | None  # what "due within" counts from: the customer's profile as_of
    items: list[DueItem]  # soonest first; empty for an unknown customer or nothing due


class RejectedRow(BaseModel):
    table: str
    index: int  # 0-based position of the row in its list in the request
    reason: str


class EventsAnswer(BaseModel):
    accepted: int
    rejected: list[RejectedRow]
    duplicates: int  # rows already stored (or repeated in the request): not stored again
    customers_updated: list[str]


class ReloadAnswer(BaseModel):
    reloaded: bool
    model_versions: dict[str, str]
    error: str | None
