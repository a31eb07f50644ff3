"""Customer value as one served model: the value columns for customer feature rows.

`CustomerValueModel` is what the registry holds under "clv", and what `pipelines.score` and the
service call: `predict_frame(features)` gives customer_id and `schema.VALUE_COLUMNS`, one row per
feature row, in order. It has two parts:

- `spend`: the candidate the gate serves for expected_orders, clv, clv_low and clv_high: a
  buy-till-you-die model (`models.value.BuyTillYouDieValue`), the spend-rate baseline, or the
  supervised `models.boosted_value.BoostedValue` (which reads the feature row and `timing`'s
  outputs);
- `timing`: a buy-till-you-die model, fitted on every buyer's summary at the model's as_of, for
  p_active and the next purchase (the other candidates have no timing of their own).

The RFM summary comes from the feature row (`summary_from_features`), so the service, the batch
scores and training read the same numbers the one feature code path wrote. Customers with no
purchase before as_of have no summary: their value columns are empty (NaN), as a prospect has no
repeat-buying history to extrapolate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from features import schema as s
from features.repeat_buying import AGE, FREQUENCY, MONETARY, RECENCY, WEEK_DAYS
from models.boosted_value import BTYD_INPUTS, BoostedValue, btyd_inputs
from models.names import CLV
from models.value import BuyTillYouDieValue, SpendRateBaseline, ValueConfig

SPEND_COLUMNS = (s.EXPECTED_ORDERS, s.CLV, s.CLV_LOW, s.CLV_HIGH)
TIMING_COLUMNS = (s.P_ACTIVE, s.NEXT_PURCHASE_DAYS, s.NEXT_PURCHASE_LOW_DAYS, s.NEXT_PURCHASE_HIGH_DAYS)
SUMMARY_FEATURES = (
    s.PURCHASE_DAYS_TOTAL,
    s.FIRST_TO_LAST_PURCHASE_DAYS,
    s.PURCHASE_HISTORY_DAYS,
    s.REPEAT_DAY_VALUE_MEAN,
)
SpendModel = BuyTillYouDieValue | SpendRateBaseline | BoostedValue
# Feature rows: a frame (batch work), or column name -> one value per row (the service's requests,
# where a frame's per-column overhead is most of the cost).
FeatureRows = pd.DataFrame | Mapping[str, np.ndarray]


def feature_column(features: FeatureRows, name: str) -> np.ndarray:
    """One feature column of the rows as float64."""
    column = features[name]
    return column.to_numpy(dtype=float) if isinstance(column, pd.Series) else np.asarray(column, dtype=float)


def summary_from_features(features: pd.DataFrame) -> pd.DataFrame:
    """The RFM summary (frequency, recency, T in weeks, monetary_value) of the feature rows of
    customers with a purchase, indexed by their position in `features`."""
    rows, x, t_x, age, monetary = summary_of_rows(features)
    return pd.DataFrame({FREQUENCY: x, RECENCY: t_x, AGE: age, MONETARY: monetary}, index=pd.Index(rows, name="row"))


def summary_of_rows(features: FeatureRows) -> tuple[np.ndarray, ...]:
    """(positions of the rows with a purchase, and their x, t_x, T in weeks and monetary value)."""
    bought = np.flatnonzero(feature_column(features, s.PURCHASE_DAYS_TOTAL) > 0)
    column = {name: feature_column(features, name)[bought] for name in SUMMARY_FEATURES}
    return (
        bought,
        column[s.PURCHASE_DAYS_TOTAL] - 1,
        column[s.FIRST_TO_LAST_PURCHASE_DAYS] / WEEK_DAYS,
        column[s.PURCHASE_HISTORY_DAYS] / WEEK_DAYS,
        column[s.REPEAT_DAY_VALUE_MEAN],
    )


def predict_boosted(
    boosted: BoostedValue,
    timing: BuyTillYouDieValue,
    timing_values: dict[str, np.ndarray],
    features: FeatureRows,
    summary: tuple[np.ndarray, ...],
    config: ValueConfig,
) -> dict[str, np.ndarray]:
    """The supervised candidate's SPEND_COLUMNS for the summary's rows. It reads the feature row and
    the buy-till-you-die outputs at the horizon it was trained for; asked for another horizon, its
    prediction is scaled by how the buy-till-you-die expectation grows from one to the other (the
    trees' correction read as a factor on the parametric curve)."""
    rows, *arrays = summary
    trained = replace(config, horizon_days=boosted.horizon_days)
    same = config.horizon_days == boosted.horizon_days
    at_trained = timing_values if same else timing.predict_arrays(*arrays, trained, intervals=False)
    btyd = btyd_inputs(at_trained)
    matrix = np.column_stack(
        [btyd[name] if name in btyd else feature_column(features, name)[rows] for name in boosted.feature_names_]
    )
    values = boosted.predict_matrix(matrix)
    if not same:
        for target, columns in ((s.EXPECTED_ORDERS, (s.EXPECTED_ORDERS,)), (s.CLV, (s.CLV, s.CLV_LOW, s.CLV_HIGH))):
            ratio = _growth(timing_values[target], at_trained[target], config.horizon_days / boosted.horizon_days)
            for column in columns:
                values[column] = values[column] * ratio
    return values


def _growth(asked: np.ndarray, trained: np.ndarray, horizons_ratio: float) -> np.ndarray:
    """asked / trained expectation per customer; the ratio of the horizons where the trained one is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(trained > 0, asked / trained, horizons_ratio)


@dataclass
class CustomerValueModel:
    """The served customer value: a spend candidate and a timing model over the feature rows."""

    spend_name: str  # which candidate serves the spend columns (the gate's winner)
    spend: SpendModel
    timing: BuyTillYouDieValue
    config: ValueConfig
    name: str = CLV
    # Raised whenever a fitted model of an earlier layout could not run on this code.
    code_version: int = 1

    def stale_reason(self) -> str | None:
        """Why this fitted model cannot run on this code (None: it can)."""
        fitted = self.__dict__.get("code_version")  # read from the pickle, not the class default
        if fitted == type(self).code_version:
            return None
        return f"it was fitted by value model code version {fitted}, this code is version {type(self).code_version}"

    @property
    def outputs(self) -> tuple[str, ...]:
        return s.VALUE_COLUMNS

    @property
    def feature_names(self) -> list[str]:
        """The feature columns the model reads (the supervised candidate's, else the summary's)."""
        summary_columns = list(SUMMARY_FEATURES)
        if isinstance(self.spend, BoostedValue):
            trees = [name for name in self.spend.feature_names_ if name not in BTYD_INPUTS.values()]
            return list(dict.fromkeys([*summary_columns, *trees]))
        return summary_columns

    def with_config(self, config: ValueConfig) -> CustomerValueModel:
        """The same model predicting over another horizon, interval or discount rate."""
        return replace(self, config=config)

    def refitted(self, features: pd.DataFrame) -> CustomerValueModel:
        """The same candidate with its summary-based parts fitted again on these feature rows (their
        buyers' summaries): what it would be at their as_of. What it learnt from labels stays."""
        summary = summary_from_features(features)
        timing = _refit(self.timing, summary)
        spend = timing if self.spend is self.timing else self.spend
        if isinstance(spend, BuyTillYouDieValue) and spend is not timing:
            spend = _refit(spend, summary)
        return replace(self, spend=spend, timing=timing)

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """customer_id, VALUE_COLUMNS and the next purchase as dates (`next_purchase_dates`, from each
        row's as_of) per feature row, in order; empty for customers who never bought."""
        values = self.predict_values(features)
        dates = next_purchase_dates(values, features[s.AS_OF].to_numpy())
        return pd.DataFrame({s.CUSTOMER_ID: features[s.CUSTOMER_ID].to_numpy(), **values, **dates})

    def predict_values(self, features: FeatureRows) -> dict[str, np.ndarray]:
        """VALUE_COLUMNS -> one value per feature row (NaN for customers who never bought). The rows
        as a frame or as column -> values (see `FeatureRows`): the same numbers either way."""
        n_rows = len(feature_column(features, s.PURCHASE_DAYS_TOTAL))
        out = {column: np.full(n_rows, np.nan) for column in s.VALUE_COLUMNS}
        summary = summary_of_rows(features)
        rows, *arrays = summary
        if not len(rows):
            return out
        serves_btyd = self.spend is self.timing  # then the spend interval is the timing model's
        timing = self.timing.predict_arrays(*arrays, self.config, intervals=serves_btyd)
        if serves_btyd:
            spend = timing
        elif isinstance(self.spend, BoostedValue):
            spend = predict_boosted(self.spend, self.timing, timing, features, summary, self.config)
        else:
            spend = self.spend.predict_arrays(*arrays, self.config)
        for columns, source in ((SPEND_COLUMNS, spend), (TIMING_COLUMNS, timing)):
            for column in columns:
                out[column][rows] = source[column]
        return out


def _refit(model: BuyTillYouDieValue, summary: pd.DataFrame) -> BuyTillYouDieValue:
    return BuyTillYouDieValue(model.count_model, model.penalizer).fit(summary)


# A wait beyond this has no date: "not within a century" (a quiet customer's upper end can be
# millions of days, past what a timestamp holds).
MAX_DATED_WAIT_DAYS = 36_500


def next_purchase_dates(values: dict[str, np.ndarray] | pd.DataFrame, as_of) -> dict[str, np.ndarray]:
    """next_purchase_date, next_purchase_low, next_purchase_high: each row's as_of (its midnight)
    plus the waits in days, rounded to whole days (NaT where there is no wait, or it is longer than
    `MAX_DATED_WAIT_DAYS`), as datetime64[ns] arrays."""
    midnight = np.asarray(as_of, dtype="datetime64[ns]").astype("datetime64[D]")
    dates = {}
    for date_column, days_column in NEXT_PURCHASE_DATES.items():
        days = np.round(np.asarray(values[days_column], dtype=float))
        dated = days <= MAX_DATED_WAIT_DAYS  # False for NaN too
        day = midnight + np.where(dated, days, 0).astype("timedelta64[D]")
        dates[date_column] = np.where(dated, day, np.datetime64("NaT")).astype("datetime64[ns]")
    return dates


NEXT_PURCHASE_DATES = {
    s.NEXT_PURCHASE_DATE: s.NEXT_PURCHASE_DAYS,
    s.NEXT_PURCHASE_LOW: s.NEXT_PURCHASE_LOW_DAYS,
    s.NEXT_PURCHASE_HIGH: s.NEXT_PURCHASE_HIGH_DAYS,
}


# ---------------------------------------------------------------------------
# Reasons in words: what the value rests on, from the feature row and the predictions.
# ---------------------------------------------------------------------------
def value_reasons(features: pd.Series | dict, values: pd.Series | dict, horizon_days: int) -> list[str]:
    """Why the customer is worth what the model says, in a marketer's words: how often and how much
    they bought, how long ago, how likely they still are a customer, what is expected of them."""
    purchases = int(features[s.PURCHASE_DAYS_TOTAL])
    if purchases == 0:
        return ["no purchase yet: nothing to extrapolate from"]
    history = _span(float(features[s.PURCHASE_HISTORY_DAYS]))
    per_purchase = float(features[s.REPEAT_DAY_VALUE_MEAN]) if purchases > 1 else float(features[s.ORDER_VALUE_MEAN])
    bought = "one purchase" if purchases == 1 else f"bought on {purchases} days over {history}"
    reasons = [f"{bought}, about {per_purchase:,.2f} per purchase"]
    recency = float(features[s.DAYS_SINCE_LAST_PURCHASE])
    p_active = values[s.P_ACTIVE]
    alive = f"; {float(p_active):.0%} likely still a customer" if p_active is not None and np.isfinite(p_active) else ""
    reasons.append(f"last purchase {recency:.0f} days ago{alive}")
    reasons.append(
        f"expected {float(values[s.EXPECTED_ORDERS]):.1f} orders and {float(values[s.CLV]):,.2f} spent "
        f"in the next {horizon_days} days"
    )
    return reasons


def _span(days: float) -> str:
    if days < 60:
        return f"{days:.0f} days"
    months = days / 30.4
    return f"{months:.0f} months" if months < 24 else f"{months / 12:.1f} years"
