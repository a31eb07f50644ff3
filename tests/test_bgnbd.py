"""BG/NBD: parameter recovery on simulated data, the published CDNOW fit, the formulas' values
and directions, and the RFM summary's cutoff rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special
from sklearn.metrics import roc_auc_score

from features import schema as s
from features.repeat_buying import (
    AGE,
    FREQUENCY,
    MONETARY,
    RECENCY,
    BgNbdParameters,
    expected_purchases,
    rfm_summary,
    summarise_purchase_days,
)
from models.bgnbd import BetaGeoModel, fit_parameters
from tests.builders import transactions_table
from tests.conftest import CDNOW_AS_OF, CDNOW_CUSTOMERS, CDNOW_HOLDOUT_END

# Fader, Hardie & Lee (2005), table/text for the CDNOW sample, weekly units.
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_LOG_LIKELIHOOD = -9582.4


# ---------------------------------------------------------------------------
# The generative process, for recovery tests.
# ---------------------------------------------------------------------------
def simulate_bgnbd(n, r, alpha, a, b, T, rng):  # noqa: N803
    """(frequency, recency) of n customers born at 0 and watched until T (array)."""
    rate = rng.gamma(r, 1.0 / alpha, n)
    dropout = rng.beta(a, b, n)
    frequency, recency, now = np.zeros(n), np.zeros(n), np.zeros(n)
    active = np.ones(n, dtype=bool)
    while active.any():
        now[active] += rng.exponential(1.0, active.sum()) / rate[active]
        bought = active & (now <= T)
        frequency[bought] += 1
        recency[bought] = now[bought]
        active = bought & (rng.random(n) >= dropout)  # may drop out after each repeat purchase
    return frequency, recency


SIMULATED = {"r": 0.5, "alpha": 6.0, "a": 0.7, "b": 2.5}


@pytest.fixture(scope="module")
def simulated():
    rng = np.random.default_rng(20240607)
    n = 20_000
    T = rng.uniform(26.0, 52.0, n)
    frequency, recency = simulate_bgnbd(n, *SIMULATED.values(), T, rng)
    return frequency, recency, T


def test_fit_recovers_simulated_parameters(simulated):
    frequency, recency, T = simulated
    model = BetaGeoModel().fit(frequency, recency, T)
    assert model.converged_
    # Tolerances are at least 5 standard errors at n = 20,000 (spread measured over 30 seeds:
    # about 0.6% for r, 1.2% for alpha, 4% for a, 5% for b).
    assert model.r_ == pytest.approx(SIMULATED["r"], rel=0.04)
    assert model.alpha_ == pytest.approx(SIMULATED["alpha"], rel=0.07)
    assert model.a_ == pytest.approx(SIMULATED["a"], rel=0.2)
    assert model.b_ == pytest.approx(SIMULATED["b"], rel=0.25)
    # the mean purchase rate and the mean dropout probability are much better determined
    assert model.r_ / model.alpha_ == pytest.approx(SIMULATED["r"] / SIMULATED["alpha"], rel=0.04)
    assert model.a_ / (model.a_ + model.b_) == pytest.approx(0.7 / 3.2, rel=0.06)
    # a maximum: no worse than the true parameters
    truth = BetaGeoModel.from_params(**SIMULATED)
    assert model.log_likelihood_ >= truth.score_samples(frequency, recency, T).sum()


def test_fit_does_not_depend_on_the_time_unit(simulated):
    """The same customers in days instead of weeks: alpha scales by 7, nothing else moves."""
    frequency, recency, T = (v[:5000] for v in simulated)
    weeks = BetaGeoModel().fit(frequency, recency, T)
    days = BetaGeoModel(time_unit_days=1.0).fit(frequency, recency * 7, T * 7)
    assert days.r_ == pytest.approx(weeks.r_, rel=1e-4)
    assert days.alpha_ == pytest.approx(weeks.alpha_ * 7, rel=1e-4)
    assert days.a_ == pytest.approx(weeks.a_, rel=1e-4)
    assert days.b_ == pytest.approx(weeks.b_, rel=1e-4)


def test_penalizer_shrinks_the_parameters(simulated):
    frequency, recency, T = (v[:5000] for v in simulated)
    plain = BetaGeoModel().fit(frequency, recency, T)
    shrunk = BetaGeoModel(penalizer=0.01).fit(frequency, recency, T)
    assert sum(v**2 for v in shrunk.params_.values()) < sum(v**2 for v in plain.params_.values())
    assert shrunk.log_likelihood_ < plain.log_likelihood_


# ---------------------------------------------------------------------------
# The real CDNOW sample and the published fit.
# ---------------------------------------------------------------------------
def test_cdnow_summary_matches_the_papers_data(cdnow_summary):
    assert len(cdnow_summary) == CDNOW_CUSTOMERS
    # The paper's first customer (sample id 0001): x = 2, t_x = 30.43, T = 38.86 weeks.
    first = cdnow_summary.loc["00004"]
    assert first[FREQUENCY] == 2
    assert first[RECENCY] == pytest.approx(30.43, abs=0.005)
    assert first[AGE] == pytest.approx(38.86, abs=0.005)


def test_reproduces_published_cdnow_fit(cdnow_summary):
    model = BetaGeoModel().fit(cdnow_summary[FREQUENCY], cdnow_summary[RECENCY], cdnow_summary[AGE])
    # to the digits printed in the paper
    for name, value in PUBLISHED.items():
        assert model.params_[name] == pytest.approx(value, abs=5e-4), name
    assert model.log_likelihood_ == pytest.approx(PUBLISHED_LOG_LIKELIHOOD, abs=0.05)


def test_published_parameters_give_the_papers_forecast():
    """The paper's worked example: x = 2, t_x = 30.43, T = 38.86 expects 1.226 in 39 weeks."""
    model = BetaGeoModel.from_params(**PUBLISHED)
    assert model.expected_purchases(39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=5e-4)


def test_cdnow_holdout_ranking(cdnow_transactions, cdnow_summary):
    """Expected purchases rank "any purchase in the 39-week holdout" (measured AUC 0.7725)."""
    model = BetaGeoModel().fit(cdnow_summary[FREQUENCY], cdnow_summary[RECENCY], cdnow_summary[AGE])
    parameters = BgNbdParameters(model.r_, model.alpha_, model.a_, model.b_)
    ids = np.sort(cdnow_transactions[s.CUSTOMER_ID].unique())
    weeks = (CDNOW_HOLDOUT_END - CDNOW_AS_OF).days / 7.0
    picked = cdnow_summary.reindex(ids)  # every CDNOW customer bought before as_of
    expected = expected_purchases(parameters, weeks, picked[FREQUENCY], picked[RECENCY], picked[AGE])
    in_holdout = cdnow_transactions[
        (cdnow_transactions[s.TIMESTAMP] >= CDNOW_AS_OF) & (cdnow_transactions[s.TIMESTAMP] < CDNOW_HOLDOUT_END)
    ]
    bought = pd.Index(ids).isin(in_holdout[s.CUSTOMER_ID])
    assert roc_auc_score(bought, expected) == pytest.approx(0.7725, abs=0.002)


# ---------------------------------------------------------------------------
# The formulas: values, limits and directions.
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("params", [PUBLISHED, SIMULATED, {"r": 2.0, "alpha": 3.0, "a": 1.7, "b": 0.6}])
def test_more_recent_last_purchase_means_more_expected_purchases(params):
    model = BetaGeoModel.from_params(**params)
    recency = np.linspace(0.5, 30.0, 60)
    for frequency in (1, 4, 15):
        expected = model.expected_purchases(13.0, frequency, recency, 30.0)
        assert np.all(np.diff(expected) > 0)
        assert np.all(np.diff(model.probability_alive(frequency, recency, 30.0)) > 0)
    # and a longer horizon never expects fewer purchases
    assert np.all(np.diff(model.expected_purchases(np.linspace(0, 100, 50), 3, 20.0, 30.0)) > 0)


@pytest.mark.parametrize("T", [0.0, 5.0, 38.86])
@pytest.mark.parametrize("t", [1.0, 39.0, 200.0])
def test_frequency_zero_expectation_is_the_formula(t, T):  # noqa: N803
    """Eq. 10 with x = 0 (no P(alive) denominator), written out with 2F1 as in the paper."""
    r, alpha, a, b = PUBLISHED.values()
    z = t / (alpha + T + t)
    formula = (a + b - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** r * special.hyp2f1(r, b, a + b - 1, z))
    model = BetaGeoModel.from_params(**PUBLISHED)
    assert model.expected_purchases(t, 0, 0.0, T) == pytest.approx(formula, rel=1e-10)
    if T == 0.0:  # a customer just born: the new-customer curve, eq. 7
        assert model.expected_purchases_new_customer(t) == pytest.approx(formula, rel=1e-10)


def _expected_by_integration(params, t, x, t_x, T):  # noqa: N803
    """eq. 10 from first principles: integrate lambda analytically and p numerically."""
    r, alpha, a, b = params.values()

    def alive_and_buys(p):  # (1 - e^{-lambda p t}) / p, integrated over the gamma posterior
        return -np.expm1(-(r + x) * np.log1p(p * t / (alpha + T))) / p if p > 0 else (r + x) * t / (alpha + T)

    def likelihood(p):
        dropped = p * (1 - p) ** (x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x) if x > 0 else 0.0
        return (1 - p) ** x + dropped

    beta = {"weight": "alg", "wvar": (a - 1, b - 1), "epsabs": 0, "epsrel": 1e-11, "limit": 400}
    numerator = integrate.quad(lambda p: (1 - p) ** x * alive_and_buys(p), 0, 1, **beta)[0]
    return numerator / integrate.quad(likelihood, 0, 1, **beta)[0]


@pytest.mark.parametrize(
    "params",
    [
        PUBLISHED,
        {"r": 2.0, "alpha": 3.0, "a": 1.7, "b": 0.6},
        {"r": 0.3, "alpha": 5.0, "a": 0.3, "b": 0.7},
    ],
)
@pytest.mark.parametrize("t, x, t_x, T", [(39, 0, 0, 30), (10, 5, 20, 30), (39, 29, 38, 39), (52, 300, 100, 104)])
def test_expected_purchases_match_numerical_integration(params, t, x, t_x, T):  # noqa: N803
    """The 2F1 closed form agrees with quadrature: heavy buyers, and a 2F1 pole (a + b = 1)."""
    model = BetaGeoModel.from_params(**params)
    assert model.expected_purchases(t, x, t_x, T) == pytest.approx(
        _expected_by_integration(params, t, x, t_x, T), rel=1e-8
    )


def test_expectation_is_continuous_through_a_equal_one():
    """At a = 1 eq. 10 is 0/0; the value there lies between its neighbours."""
    at = {
        a: BetaGeoModel.from_params(0.5, 4.0, a, 2.0).expected_purchases(39, [0, 3], [0, 20], [30, 30])
        for a in (0.999, 1.0, 1.001)
    }
    assert np.all(np.isfinite(at[1.0]))
    assert np.all((at[1.0] - at[0.999]) * (at[1.001] - at[1.0]) > 0)  # monotone in a here
    assert at[1.0] == pytest.approx((at[0.999] + at[1.001]) / 2, rel=1e-5)


def test_degenerate_parameters_still_give_finite_expectations():
    """An unpenalised fit on three customers: r, alpha ~ 1e6 (every rate ~0.31), b/a ~ 6e7
    (no dropout). scipy's 2F1 returns nan there; the quadrature fallback gives lambda * t."""
    model = BetaGeoModel.from_params(r=1.0e6, alpha=3.25e6, a=6e-5, b=3786.0)
    expected = model.expected_purchases(10.0, [0, 1, 3], [0.0, 2.0, 5.0], [3.0, 4.0, 6.0])
    assert expected == pytest.approx(np.full(3, 10.0 / 3.25), rel=1e-5)


def test_probability_alive_is_one_without_repeat_purchases():
    model = BetaGeoModel.from_params(**PUBLISHED)
    T = np.array([0.5, 10.0, 39.0, 500.0])
    assert np.all(model.probability_alive(0, 0.0, T) == 1.0)
    # whereas a repeat buyer who went quiet may have left
    assert np.all(model.probability_alive(1, 0.1, T[1:]) < 1.0)


def test_invalid_inputs_raise():
    model = BetaGeoModel.from_params(**PUBLISHED)
    with pytest.raises(ValueError, match="recency"):
        model.expected_purchases(10, 2, 40.0, 30.0)
    with pytest.raises(ValueError, match="frequency"):
        model.probability_alive(1.5, 1.0, 2.0)
    with pytest.raises(ValueError, match="zero customers"):
        BetaGeoModel().fit([], [], [])
    with pytest.raises(AttributeError, match="not fitted"):
        BetaGeoModel().expected_purchases(10, 1, 1.0, 2.0)


# ---------------------------------------------------------------------------
# The RFM summary and the baseline on contract transactions.
# ---------------------------------------------------------------------------
AS_OF = pd.Timestamp("2024-03-01")


def _history() -> pd.DataFrame:
    return transactions_table(
        [
            ("o1", "a", "p1", 1, 10.0, "2024-01-01 09:00"),
            ("o2", "a", "p2", 2, 15.0, "2024-01-01 18:00"),  # same day: the same purchase
            ("o3", "a", "p1", 1, 10.0, "2024-01-15 12:00"),
            ("o4", "a", "p1", -1, 10.0, "2024-02-10 12:00"),  # a return is not a purchase
            ("o5", "a", "p1", 1, 10.0, "2024-03-01 00:00"),  # at as_of: the future
            ("o6", "b", "p3", 1, 40.0, "2024-02-16 08:00"),
            ("o7", "c", "p1", -1, 10.0, "2024-02-01 08:00"),  # only a return: not a buyer
        ]
    )


def test_rfm_summary_counts_purchase_days_before_as_of():
    summary = rfm_summary(_history(), AS_OF, time_unit_days=1.0)
    assert summary.index.tolist() == ["a", "b"]
    assert summary.index.name == s.CUSTOMER_ID
    # a: purchase days Jan 1 and Jan 15; last observed day Feb 29 (leap year)
    assert summary.loc["a", [FREQUENCY, RECENCY, AGE]].tolist() == [1.0, 14.0, 59.0]
    assert summary.loc["b", [FREQUENCY, RECENCY, AGE]].tolist() == [0.0, 0.0, 13.0]
    # spend per repeat purchase day: a's Jan 15 (10.0), not its first day (10 + 2 x 15); b has none
    assert summary.loc["a", MONETARY] == 10.0
    assert np.isnan(summary.loc["b", MONETARY])
    weekly = rfm_summary(_history(), AS_OF)
    assert weekly.loc["a", RECENCY] == pytest.approx(2.0)


def test_rfm_summary_ignores_records_at_or_after_as_of():
    history = _history()
    later = transactions_table(
        [
            ("o9", "b", "p1", 5, 10.0, "2024-03-01 00:00"),
            ("o10", "d", "p1", 1, 10.0, "2024-04-01 00:00"),
        ]
    )
    with_future = pd.concat([history, later], ignore_index=True)
    pd.testing.assert_frame_equal(rfm_summary(with_future, AS_OF), rfm_summary(history, AS_OF))


def test_rfm_summary_of_an_empty_window_raises():
    with pytest.raises(ValueError, match="no purchase before"):
        rfm_summary(_history(), pd.Timestamp("2024-01-01"))


def test_parameters_are_fitted_only_with_enough_repeat_buyers(simulated):
    frequency, recency, T = (np.asarray(v[:3000], dtype=float) for v in simulated)
    buyers = np.arange(len(frequency))
    summary = summarise_purchase_days(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), AS_OF, 0)
    assert fit_parameters(summary) is None  # nobody bought
    enough = type(summary)(buyers=buyers, frequency=frequency, recency=recency, T=T)
    fitted = fit_parameters(enough)
    model = BetaGeoModel().fit(frequency, recency, T)
    assert fitted == BgNbdParameters(model.r_, model.alpha_, model.a_, model.b_)
    few = np.where(np.arange(len(frequency)) < 10, np.maximum(frequency, 1), 0.0)  # ten repeat buyers only
    too_few = type(summary)(buyers=buyers, frequency=few, recency=np.where(few > 0, recency, 0.0), T=T)
    assert fit_parameters(too_few) is None
