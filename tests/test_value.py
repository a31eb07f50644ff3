"""Customer value: on customers simulated from the models themselves the predictions are unbiased and
the 80% interval holds about 80% of customers; the closed forms and the baseline by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import schema as s
from features.repeat_buying import AGE, FREQUENCY, MONETARY, RECENCY
from models.value import BGNBD, PARETO_NBD, BuyTillYouDieValue, SpendRateBaseline, ValueConfig

BGNBD_TRUTH = {"r": 0.8, "alpha": 6.0, "a": 0.7, "b": 2.5}
SPEND_TRUTH = {"p": 5.0, "q": 4.0, "gamma": 60.0}
CALIBRATION_WEEKS = 52.0
HORIZON_DAYS = 182


def simulate(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """BG/NBD buyers with Gamma-Gamma spend, first purchase in the first half of the calibration:
    (their summary at its end, their orders and spend in the HORIZON_DAYS after it)."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(BGNBD_TRUTH["r"], 1 / BGNBD_TRUTH["alpha"], n)
    dropout = rng.beta(BGNBD_TRUTH["a"], BGNBD_TRUTH["b"], n)
    nu = rng.gamma(SPEND_TRUTH["q"], 1 / SPEND_TRUTH["gamma"], n)
    birth = rng.uniform(0, CALIBRATION_WEEKS / 2, n)
    age = CALIBRATION_WEEKS - birth
    end = age + HORIZON_DAYS / 7
    time, alive = np.zeros(n), np.ones(n, dtype=bool)
    frequency, recency, repeat_spend = np.zeros(n), np.zeros(n), np.zeros(n)
    future_orders, future_spend = np.zeros(n), np.zeros(n)
    while alive.any():
        time = time + rng.exponential(1 / rate)
        value = rng.gamma(SPEND_TRUTH["p"], 1 / nu)
        in_calibration = alive & (time <= age)
        in_horizon = alive & (time > age) & (time <= end)
        frequency += in_calibration
        recency = np.where(in_calibration, time, recency)
        repeat_spend += np.where(in_calibration, value, 0.0)
        future_orders += in_horizon
        future_spend += np.where(in_horizon, value, 0.0)
        alive &= (time <= end) & (rng.random(n) >= dropout)  # drops out after a purchase
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(frequency > 0, repeat_spend / frequency, np.nan)
    summary = pd.DataFrame({FREQUENCY: frequency, RECENCY: recency, AGE: age, MONETARY: monetary})
    return summary, future_orders, future_spend


@pytest.fixture(scope="module")
def simulated():
    return simulate(6000, seed=3)


def test_predictions_are_unbiased_and_the_80_percent_interval_holds_about_80_percent(simulated):
    summary, future_orders, future_spend = simulated
    config = ValueConfig(horizon_days=HORIZON_DAYS, draws=300)
    predicted = BuyTillYouDieValue(BGNBD).fit(summary).predict(summary, config)  # the model they come from
    assert predicted.index.equals(summary.index)
    # in total, within a few percent (6,000 customers)
    assert predicted[s.EXPECTED_ORDERS].sum() == pytest.approx(future_orders.sum(), rel=0.08)
    assert predicted[s.CLV].sum() == pytest.approx(future_spend.sum(), rel=0.12)
    covered = (predicted[s.CLV_LOW] <= future_spend) & (future_spend <= predicted[s.CLV_HIGH])
    assert covered.mean() == pytest.approx(0.8, abs=0.05)
    assert (predicted[s.CLV_LOW] <= predicted[s.CLV]).all() and (predicted[s.CLV] <= predicted[s.CLV_HIGH]).all()
    # customers who bought more in the past are predicted to spend more, as they did
    heavy = summary[FREQUENCY] >= 3
    assert predicted.loc[heavy, s.CLV].mean() > 2 * predicted.loc[~heavy, s.CLV].mean()
    assert future_spend[heavy.to_numpy()].mean() > 2 * future_spend[~heavy.to_numpy()].mean()


def test_pareto_nbd_on_the_same_customers_ranks_them_alike(simulated):
    summary, _, future_spend = simulated
    config = ValueConfig(horizon_days=HORIZON_DAYS, draws=100)
    pareto = BuyTillYouDieValue(PARETO_NBD).fit(summary).predict(summary, config)
    bgnbd = BuyTillYouDieValue(BGNBD).fit(summary).predict(summary, config)
    assert pareto[s.CLV].corr(bgnbd[s.CLV], method="spearman") > 0.9
    assert ((pareto[s.P_ACTIVE] > 0) & (pareto[s.P_ACTIVE] <= 1)).all()
    assert pareto[s.CLV].sum() == pytest.approx(future_spend.sum(), rel=0.25)  # another model: looser


def test_one_time_buyers_get_a_wider_next_purchase_interval(simulated):
    summary, _, _ = simulated
    predicted = BuyTillYouDieValue(BGNBD).fit(summary).predict(summary, ValueConfig(horizon_days=HORIZON_DAYS))
    width = predicted[s.NEXT_PURCHASE_HIGH_DAYS] - predicted[s.NEXT_PURCHASE_LOW_DAYS]
    once, regular = summary[FREQUENCY] == 0, summary[FREQUENCY] >= 5
    assert width[once].median() > 3 * width[regular].median()
    assert (predicted[s.NEXT_PURCHASE_LOW_DAYS] <= predicted[s.NEXT_PURCHASE_DAYS]).all()
    assert (predicted[s.NEXT_PURCHASE_DAYS] <= predicted[s.NEXT_PURCHASE_HIGH_DAYS]).all()


def test_the_wait_to_the_next_purchase_is_the_lomax_quantile():
    summary = pd.DataFrame({FREQUENCY: [0.0, 4.0], RECENCY: [0.0, 20.0], AGE: [10.0, 30.0], MONETARY: [np.nan, 25.0]})
    model = BuyTillYouDieValue(BGNBD).fit(simulate(3000, seed=4)[0])
    predicted = model.predict(summary, ValueConfig(interval=0.8))
    r, alpha = model.counts_.params_["r"], model.counts_.params_["alpha"]
    for row, (x, age) in enumerate([(0.0, 10.0), (4.0, 30.0)]):
        # P(wait > w) = ((alpha + T) / (alpha + T + w))^(r + x): the median, the 10% and the 90% points
        quantiles = {s.NEXT_PURCHASE_DAYS: 0.5, s.NEXT_PURCHASE_LOW_DAYS: 0.1, s.NEXT_PURCHASE_HIGH_DAYS: 0.9}
        for column, q in quantiles.items():
            weeks = (alpha + age) * ((1 - q) ** (-1 / (r + x)) - 1)
            assert predicted[column].iloc[row] == pytest.approx(weeks * 7)
    # a frequent buyer's next order comes sooner than a one-time buyer's
    assert predicted[s.NEXT_PURCHASE_DAYS].iloc[1] < predicted[s.NEXT_PURCHASE_DAYS].iloc[0]


def test_a_discount_lowers_the_value_and_never_the_orders(simulated):
    summary, _, _ = simulated
    model = BuyTillYouDieValue(BGNBD).fit(summary)
    plain = model.predict(summary.head(200), ValueConfig(horizon_days=365))
    discounted = model.predict(summary.head(200), ValueConfig(horizon_days=365, discount_rate_annual=0.1))
    assert (discounted[s.EXPECTED_ORDERS] == plain[s.EXPECTED_ORDERS]).all()
    ratio = discounted[s.CLV] / plain[s.CLV]
    # each purchase is discounted by 1.1^-(weeks/52) for its week's end: between a year's and a week's
    assert ((ratio < 1.1 ** (-7 / 365.25) + 1e-12) & (ratio > 1 / 1.1 - 1e-12)).all()


def test_the_spend_rate_baseline_by_hand():
    summary = pd.DataFrame(
        {FREQUENCY: [2.0, 0.0], RECENCY: [8.0, 0.0], AGE: [10.0, 3.0], MONETARY: [30.0, np.nan]}, index=["a", "b"]
    )
    predicted = SpendRateBaseline().fit(summary).predict(summary, ValueConfig(horizon_days=365))
    assert predicted.loc["a", s.EXPECTED_ORDERS] == pytest.approx(2 / 70 * 365)
    assert predicted.loc["a", s.CLV] == pytest.approx(2 / 70 * 365 * 30)
    assert predicted.loc["b", s.CLV] == 0.0 and predicted.loc["b", s.EXPECTED_ORDERS] == 0.0
    assert predicted[s.CLV_LOW].isna().all()  # a rate has no distribution


def test_bad_inputs_name_what_is_wrong():
    with pytest.raises(ValueError, match="monetary_value"):
        BuyTillYouDieValue().fit(pd.DataFrame({FREQUENCY: [1.0], RECENCY: [1.0], AGE: [2.0]}))
    with pytest.raises(ValueError, match="count_model"):
        BuyTillYouDieValue("lifetimes")
    with pytest.raises(ValueError, match="interval"):
        ValueConfig(interval=1.2)
    with pytest.raises(ValueError, match="horizon_days"):
        ValueConfig(horizon_days=0)
