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

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from features import schema as s
from features.repeat_buying import AGE, FREQUENCY, MONETARY, RECENCY, WEEK_DAYS
from models.boosted_value import BTYD_INPUTS, BoostedValue, btyd_inputs
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


def summary_from_features(features: pd.DataFrame) -> pd.DataFrame:
    """The RFM summary (frequency, recency, T in weeks, monetary_value) of the feature rows of
    customers with a purchase, indexed by their position in `features`."""
    bought = (features[s.PURCHASE_DAYS_TOTAL] > 0).to_numpy()
    rows = features.loc[bought]
    return pd.DataFrame(
        {
            FREQUENCY: rows[s.PURCHASE_DAYS_TOTAL].to_numpy(dtype=float) - 1,
            RECENCY: rows[s.FIRST_TO_LAST_PURCHASE_DAYS].to_numpy(dtype=float) / WEEK_DAYS,
            AGE: rows[s.PURCHASE_HISTORY_DAYS].to_numpy(dtype=float) / WEEK_DAYS,
            MONETARY: rows[s.REPEAT_DAY_VALUE_MEAN].to_numpy(dtype=float),
        },
        index=pd.Index(np.flatnonzero(bought), name="row"),
    )


def predict_boosted(
    boosted: BoostedValue,
    timing: BuyTillYouDieValue,
    timing_values: pd.DataFrame,
    features: pd.DataFrame,
    summary: pd.DataFrame,
    config: ValueConfig,
) -> pd.DataFrame:
    """The supervised candidate's SPEND_COLUMNS for the summary's rows. It reads the feature row and
    the buy-till-you-die outputs at the horizon it was trained for; asked for another horizon, its
    prediction is scaled by how the buy-till-you-die expectation grows from one to the other (the
    trees' correction read as a factor on the parametric curve)."""
    trained = replace(config, horizon_days=boosted.horizon_days)
    same = config.horizon_days == boosted.horizon_days
    at_trained = timing_values if same else timing.predict(summary, trained, intervals=False)
    rows = features.iloc[summary.index.to_numpy()].reset_index(drop=True)
    inputs = pd.concat([rows, btyd_inputs(at_trained).reset_index(drop=True)], axis=1).set_index(summary.index)
    values = boosted.predict(inputs)
    if not same:
        for target, columns in ((s.EXPECTED_ORDERS, (s.EXPECTED_ORDERS,)), (s.CLV, (s.CLV, s.CLV_LOW, s.CLV_HIGH))):
            ratio = _growth(timing_values[target], at_trained[target], config.horizon_days / boosted.horizon_days)
            for column in columns:
                values[column] = values[column] * ratio
    return values


def _growth(asked: pd.Series, trained: pd.Series, horizons_ratio: float) -> np.ndarray:
    """asked / trained expectation per customer; the ratio of the horizons where the trained one is 0."""
    asked, trained = asked.to_numpy(dtype=float), trained.to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(trained > 0, asked / trained, horizons_ratio)


@dataclass
class CustomerValueModel:
    """The served customer value: a spend candidate and a timing model over the feature rows."""

    spend_name: str  # which candidate serves the spend columns (the gate's winner)
    spend: SpendModel
    timing: BuyTillYouDieValue
    config: ValueConfig
    name: str = "clv"
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
        out = pd.DataFrame({column: np.full(len(features), np.nan) for column in s.VALUE_COLUMNS})
        summary = summary_from_features(features)
        if len(summary):
            serves_btyd = self.spend is self.timing  # then the spend interval is the timing model's
            timing = self.timing.predict(summary, self.config, intervals=serves_btyd)
            if serves_btyd:
                spend = timing
            elif isinstance(self.spend, BoostedValue):
                spend = predict_boosted(self.spend, self.timing, timing, features, summary, self.config)
            else:
                spend = self.spend.predict(summary, self.config)
            rows = summary.index.to_numpy()
            for column in SPEND_COLUMNS:
                out.loc[rows, column] = spend[column].to_numpy(dtype=float)
            for column in TIMING_COLUMNS:
                out.loc[rows, column] = timing[column].to_numpy(dtype=float)
        out.insert(0, s.CUSTOMER_ID, features[s.CUSTOMER_ID].to_numpy())
        return pd.concat([out, next_purchase_dates(out, features[s.AS_OF])], axis=1)


def _refit(model: BuyTillYouDieValue, summary: pd.DataFrame) -> BuyTillYouDieValue:
    return BuyTillYouDieValue(model.count_model, model.penalizer).fit(summary)


# A wait beyond this has no date: "not within a century" (a quiet customer's upper end can be
# millions of days, past what a timestamp holds).
MAX_DATED_WAIT_DAYS = 36_500


def next_purchase_dates(values: pd.DataFrame, as_of) -> pd.DataFrame:
    """next_purchase_date, next_purchase_low, next_purchase_high: each row's as_of (its midnight)
    plus the waits in days, rounded to whole days (NaT where there is no wait, or it is longer than
    `MAX_DATED_WAIT_DAYS`)."""
    start = pd.DatetimeIndex(np.broadcast_to(pd.to_datetime(as_of), len(values))).normalize()
    dates = {}
    for date_column, days_column in NEXT_PURCHASE_DATES.items():
        days = np.round(values[days_column].to_numpy(dtype=float))
        days[~(days <= MAX_DATED_WAIT_DAYS)] = np.nan
        dates[date_column] = start + pd.to_timedelta(days, unit="D")
    return pd.DataFrame(dates, index=values.index)


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
