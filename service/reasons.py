"""Feature columns in words, for the reasons the service gives with a score."""

from __future__ import annotations

import re

from features import schema as s

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
    s.SPEND_TREND_90D: "spend trend over the last 90 days",
    s.NPS_LATEST: "latest NPS answer",
    s.NPS_MEAN: "mean NPS answer",
    s.MARKETING_OPT_IN: "accepts marketing",
}
_WINDOWED = re.compile(r"(?P<name>.+)_(?P<days>\d+)d")


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
