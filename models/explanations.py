"""Reasons a marketer can read: a score's SHAP contributions grouped into themes, in words.

A churn score's contributions come per feature column (`OutcomeModel.contributions_matrix`, in
log-odds). Read one by one they mislead: a loyal customer's many orders appear among the top
"risks" when the model offsets them elsewhere. So the contributions are summed per theme
(`REASON_GROUPS`: recency, frequency, spend, engagement, service experience, seasonality and
restocking, products and channels), the themes are ranked by the size of their sum, and each is
told by its strongest feature pushing the same way, with the customer's value beside what is
typical for customers like them (the median in their RFM segment). The direction word comes from
the sign of the theme's sum, so a reason never says "raises" for a theme that lowers the score.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from features import schema as s

RECENCY = "recency"
FREQUENCY = "frequency"
SPEND = "spend"
ENGAGEMENT = "engagement"
SERVICE = "service experience"
SEASONALITY = "seasonality and restocking"
PRODUCTS_AND_CHANNELS = "products and channels"
OTHER = "other"

# Each theme's columns. Windowed columns are matched by their name without the window (`_30d`);
# share columns by their prefix. A column of no theme goes to OTHER.
REASON_GROUPS: dict[str, frozenset[str]] = {
    RECENCY: frozenset({s.DAYS_SINCE_LAST_PURCHASE, s.RECENCY_OVER_TENURE, s.OVERDUE_RATIO, s.BGNBD_P_ALIVE, s.RFM_R}),
    FREQUENCY: frozenset(
        {
            s.ORDERS_COUNT_TOTAL,
            "orders_count",
            s.ORDERS_PER_30D,
            s.GAP_MEAN_DAYS,
            s.GAP_STD_DAYS,
            s.GAP_BEFORE_LAST_DAYS,
            s.BGNBD_EXPECTED_PURCHASES_90D,
            s.TENURE_DAYS,
            s.DAYS_SINCE_FIRST_PURCHASE,
            s.RFM_F,
        }
    ),
    SPEND: frozenset(
        {
            s.SPEND_SUM_TOTAL,
            "spend_sum",
            s.SPEND_TREND_90D,
            s.ORDER_VALUE_MEAN,
            s.ITEMS_PER_ORDER_MEAN,
            s.LINES_PER_ORDER_MEAN,
            s.DISCOUNT_SHARE,
            s.DISCOUNT_MEAN,
            s.RFM_M,
        }
    ),
    ENGAGEMENT: frozenset(
        {
            *s.BEHAVIOUR_COUNTS.values(),
            s.ABANDONED_CARTS,
            s.EMAIL_CLICK_RATE_30D,
            s.DAYS_SINCE_LAST_EVENT,
            s.MARKETING_OPT_IN,
        }
    ),
    SERVICE: frozenset(
        {
            s.SUPPORT_TICKETS_TOTAL,
            s.SUPPORT_TICKETS_90D,
            s.SUPPORT_SEVERITY_MAX_90D,
            s.NPS_LATEST,
            s.NPS_MEAN,
            s.NPS_RESPONSES_TOTAL,
            s.RETURN_SHARE,
            s.RETURNS_COUNT_TOTAL,
        }
    ),
    SEASONALITY: frozenset(
        {
            s.ORDERS_NEXT_30D_LAST_YEAR,
            s.ORDERS_NEXT_90D_LAST_YEAR,
            s.CONSUMABLES_BOUGHT,
            s.DAYS_UNTIL_REPLENISHMENT,
            s.REPLENISHMENT_DUE_RATIO,
        }
    ),
    PRODUCTS_AND_CHANNELS: frozenset({s.CATEGORY_COUNT, s.CATEGORY_ENTROPY}),
}
_SHARE_PREFIXES = {"category_share_": PRODUCTS_AND_CHANNELS, "channel_share_": PRODUCTS_AND_CHANNELS}
_WINDOWED = re.compile(r"(?P<name>.+)_(?P<days>\d+)d")

# Words for feature columns whose name alone reads badly; the rest are derived from the name.
FEATURE_LABELS = {
    s.DAYS_SINCE_LAST_PURCHASE: "days since the last purchase",
    s.DAYS_SINCE_FIRST_PURCHASE: "days since the first purchase",
    s.RECENCY_OVER_TENURE: "days since the last purchase / days as a customer",
    s.TENURE_DAYS: "days as a customer",
    s.OVERDUE_RATIO: "days since the last purchase / usual gap between orders",
    s.BGNBD_P_ALIVE: "probability still active (BG/NBD)",
    s.BGNBD_EXPECTED_PURCHASES_90D: "expected purchases in the next 90 days (BG/NBD)",
    s.ORDERS_PER_30D: "orders per 30 days",
    s.GAP_MEAN_DAYS: "days between orders",
    s.SPEND_TREND_90D: "spend trend over the last 90 days",
    s.NPS_LATEST: "latest NPS answer",
    s.NPS_MEAN: "mean NPS answer",
    s.MARKETING_OPT_IN: "accepts marketing",
    s.REPLENISHMENT_DUE_RATIO: "days since the last restock / usual restock cycle",
    s.DAYS_UNTIL_REPLENISHMENT: "days until the next restock is due",
    s.DAYS_SINCE_LAST_EVENT: "days since the last visit or email",
}
# Values read as a percentage: shares, rates and probabilities in [0, 1].
_PERCENT_WORDS = ("share", "rate", "p_alive", "opt_in")
DIRECTIONS = ("raises", "lowers")


def describe_feature(column: str) -> str:
    """A feature column in words: 'spend_sum_90d' -> 'spend sum (last 90 days)'."""
    if column in FEATURE_LABELS:
        return FEATURE_LABELS[column]
    for prefix, words in (("category_share_", "share of purchases in "), ("channel_share_", "share of orders via ")):
        if column.startswith(prefix):
            return words + column[len(prefix) :].replace("_", " ")
    windowed = _WINDOWED.fullmatch(column)
    if windowed:
        return f"{windowed['name'].replace('_', ' ')} (last {windowed['days']} days)"
    return column.replace("_", " ")


def group_of(column: str) -> str:
    """The theme a feature column belongs to (OTHER when none)."""
    windowed = _WINDOWED.fullmatch(column)
    names = (column, windowed["name"]) if windowed else (column,)
    for group, members in REASON_GROUPS.items():
        if any(name in members for name in names):
            return group
    return next((group for prefix, group in _SHARE_PREFIXES.items() if column.startswith(prefix)), OTHER)


def format_value(column: str, value: float | None) -> str:
    """A feature value as a person reads it: '250 days', '35%', '3.3'."""
    if value is None or not math.isfinite(value):
        return "unknown"
    if any(word in column for word in _PERCENT_WORDS):
        return f"{value:.0%}"
    if "days" in column:
        return f"{value:.0f} days"
    return f"{value:.3g}"


@dataclass(frozen=True)
class GroupedContributions:
    """Per row, each theme's summed contribution (rows x groups), for feature columns of one model."""

    groups: tuple[str, ...]
    member_of: np.ndarray  # the group position of each feature column
    indicator: np.ndarray  # features x groups, 1 where the feature is in the group

    @classmethod
    def of(cls, feature_names: Sequence[str]) -> GroupedContributions:
        names = [group_of(column) for column in feature_names]
        groups = tuple(dict.fromkeys(group for group in (*REASON_GROUPS, OTHER) if group in names))
        member_of = np.array([groups.index(name) for name in names], dtype=np.int64)
        indicator = np.zeros((len(member_of), len(groups)))
        indicator[np.arange(len(member_of)), member_of] = 1.0
        return cls(groups, member_of, indicator)

    def sums(self, contributions: np.ndarray) -> np.ndarray:
        """rows x groups: the contributions summed within each theme (the row sums are unchanged)."""
        return np.asarray(contributions, dtype=float) @ self.indicator


def explain_in_words(
    feature_names: Sequence[str],
    values: np.ndarray,
    contributions: np.ndarray,
    grouped: GroupedContributions,
    typical: Mapping[str, float] | None = None,
    segment: str | None = None,
    top: int = 3,
    outcome: str = "churn risk",
) -> list[dict]:
    """One row's `top` themes by the size of their summed contribution, each as
    {group, direction, impact, text, column, value, typical}: `impact` is the theme's sum (log-odds),
    `direction` its sign in words, and the text tells it by the theme's strongest feature pushing the
    same way, beside the median of customers like them (`typical`, from their `segment`) when known."""
    return explain_rows_in_words(
        feature_names, values[None, :], contributions[None, :], grouped, [typical], [segment], top, outcome
    )[0]


def explain_rows_in_words(
    feature_names: Sequence[str],
    values: np.ndarray,
    contributions: np.ndarray,
    grouped: GroupedContributions,
    typical: Sequence[Mapping[str, float] | None],
    segments: Sequence[str | None],
    top: int = 3,
    outcome: str = "churn risk",
) -> list[list[dict]]:
    """`explain_in_words` for each row of `values` and `contributions` (rows x features), with each
    row's typical values and segment: the arithmetic for all rows at once, the words row by row."""
    contributions = np.asarray(contributions, dtype=float)
    sums = grouped.sums(contributions)
    # each theme's lead feature per row: the largest contribution pushing the theme's way
    lead = np.empty(sums.shape, dtype=np.int64)
    signs = np.sign(contributions)
    for g in range(len(grouped.groups)):
        pushing = (grouped.member_of == g)[None, :] & (signs == np.sign(sums[:, g])[:, None])
        lead[:, g] = np.argmax(np.where(pushing, np.abs(contributions), -1.0), axis=1)
    ranked = np.argsort(-np.abs(sums), axis=1, kind="stable")[:, :top]
    words = _Words(feature_names, outcome)
    return [
        [
            words.reason(grouped.groups[g], sums[row, g], lead[row, g], values[row], typical[row], segments[row])
            for g in ranked[row].tolist()
            if sums[row, g] != 0
        ]
        for row in range(len(sums))
    ]


class _Words:
    """A reason's dict and sentence (the feature descriptions made once per call, not per reason)."""

    def __init__(self, feature_names: Sequence[str], outcome: str) -> None:
        self.names = list(feature_names)
        self.descriptions = [describe_feature(column) for column in feature_names]
        self.outcome = outcome

    def reason(self, group, impact, lead, values, typical, segment) -> dict:
        column = self.names[lead]
        value = float(values[lead])
        usual = None if typical is None else typical.get(column)
        usual = usual if usual is not None and math.isfinite(usual) else None
        direction = DIRECTIONS[0] if impact > 0 else DIRECTIONS[1]
        text = f"{self.descriptions[lead]}: {format_value(column, value)}"
        if usual is not None:
            text += f"; customers like them{f' ({segment})' if segment else ''}: {format_value(column, usual)}"
        return {
            "group": group,
            "direction": direction,
            "impact": float(impact),
            "text": f"{group.capitalize()} {direction} the {self.outcome}: {text}",
            "column": column,
            "value": value if math.isfinite(value) else None,
            "typical": usual,
        }


def typical_by_segment(matrix: np.ndarray, segments: np.ndarray, feature_names: Sequence[str]) -> dict:
    """segment -> {feature column: median over that segment's rows} (NaNs ignored; a column with no
    value in a segment is left out)."""
    typical: dict[str, dict[str, float]] = {}
    for segment in np.unique(segments):
        with warnings.catch_warnings():  # an all-NaN column warns; it simply has no typical value
            warnings.simplefilter("ignore", RuntimeWarning)
            medians = np.nanmedian(matrix[segments == segment], axis=0)
        typical[str(segment)] = {
            column: float(median) for column, median in zip(feature_names, medians, strict=True) if np.isfinite(median)
        }
    return typical
