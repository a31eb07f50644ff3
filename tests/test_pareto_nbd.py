"""Pareto/NBD: parameter recovery on simulated data, the published CDNOW fit, the likelihood
against numerical integration, and P(alive), expected purchases and their distribution against
the generative process."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special

from features.repeat_buying import AGE, FREQUENCY, RECENCY
from models.pareto_nbd import ParetoNbdModel, _log_tail, _log_tail_by_quadrature

# The CDNOW fixtures are shared with the BG/NBD tests (same data, same RFM summary convention).

# Fader & Hardie (2005), "A note on deriving the Pareto/NBD model and related expressions": the
# CDNOW sample (2,357 customers, 39-week calibration), weekly units.
PUBLISHED = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
PUBLISHED_LOG_LIKELIHOOD = -9595.0


# ---------------------------------------------------------------------------
# The generative process.
# ---------------------------------------------------------------------------
def simulate_pareto_nbd(n, r, alpha, s, beta, T, rng, horizon=0.0):  # noqa: N803
    """n customers born at 0 and watched until T (array): (frequency, recency, alive at T,
    purchases in (T, T + horizon]).

    Purchase rate ~ Gamma(r, alpha), lifetime ~ Exp(mu) with mu ~ Gamma(s, beta); the purchases
    are a Poisson process over the lifetime, so the count in [0, min(lifetime, T)] is Poisson and,
    given the count, the last purchase is the largest of that many uniform times.
    """
    rate = rng.gamma(r, 1.0 / alpha, n)
    lifetime = rng.exponential(1.0, n) / rng.gamma(s, 1.0 / beta, n)
    watched = np.minimum(lifetime, T)
    frequency = rng.poisson(rate * watched).astype(float)
    recency = np.where(frequency > 0, watched * rng.random(n) ** (1.0 / np.maximum(frequency, 1)), 0.0)
    future = rng.poisson(rate * np.clip(np.minimum(lifetime, T + horizon) - T, 0.0, None))
    return frequency, recency, lifetime > T, future


SIMULATED = {"r": 0.6, "alpha": 8.0, "s": 0.8, "beta": 12.0}


@pytest.fixture(scope="module")
def simulated():
    rng = np.random.default_rng(20240611)
    n = 40_000
    # one to three years of history: long enough that many deaths are seen, so s and beta are
    # identified (with half a year they wander along their ridge)
    T = rng.uniform(52.0, 156.0, n)
    frequency, recency, _, _ = simulate_pareto_nbd(n, *SIMULATED.values(), T, rng)
    return frequency, recency, T


def test_fit_recovers_simulated_parameters(simulated):
    frequency, recency, T = simulated
    model = ParetoNbdModel().fit(frequency, recency, T)
    assert model.converged_
    # Tolerances are about 5 standard errors at n = 40,000 (spread measured over 12 seeds:
    # 1.6% for r, 1.7% for alpha, 2.9% for s, 5.9% for beta).
    assert model.r_ == pytest.approx(SIMULATED["r"], rel=0.08)
    assert model.alpha_ == pytest.approx(SIMULATED["alpha"], rel=0.09)
    assert model.s_ == pytest.approx(SIMULATED["s"], rel=0.15)
    assert model.beta_ == pytest.approx(SIMULATED["beta"], rel=0.3)
    # the mean purchase and dropout rates are better determined (spread 0.9% and 3.5%)
    assert model.r_ / model.alpha_ == pytest.approx(SIMULATED["r"] / SIMULATED["alpha"], rel=0.045)
    assert model.s_ / model.beta_ == pytest.approx(SIMULATED["s"] / SIMULATED["beta"], rel=0.18)
    # a maximum: no worse than the true parameters
    truth = ParetoNbdModel.from_params(**SIMULATED)
    assert model.log_likelihood_ >= truth.score_samples(frequency, recency, T).sum()


def test_fit_does_not_depend_on_the_time_unit(simulated):
    """The same customers in days instead of weeks: alpha and beta scale by 7, r and s stay."""
    frequency, recency, T = (v[:5000] for v in simulated)
    weeks = ParetoNbdModel().fit(frequency, recency, T)
    days = ParetoNbdModel(time_unit_days=1.0).fit(frequency, recency * 7, T * 7)
    assert days.r_ == pytest.approx(weeks.r_, rel=1e-3)
    assert days.alpha_ == pytest.approx(weeks.alpha_ * 7, rel=1e-3)
    assert days.s_ == pytest.approx(weeks.s_, rel=1e-3)
    assert days.beta_ == pytest.approx(weeks.beta_ * 7, rel=1e-3)
    assert days.log_likelihood_ == pytest.approx(weeks.log_likelihood_ - np.sum(frequency) * np.log(7), abs=1e-3)


# ---------------------------------------------------------------------------
# The real CDNOW sample and the published fit.
# ---------------------------------------------------------------------------
def test_reproduces_published_cdnow_fit(cdnow_summary):  # noqa: F811
    model = ParetoNbdModel().fit(cdnow_summary[FREQUENCY], cdnow_summary[RECENCY], cdnow_summary[AGE])
    assert model.converged_
    # Measured: r 0.5533, alpha 10.5777, s 0.6062, beta 11.6687, log-likelihood -9594.98: the
    # published fit to every printed digit (the RFM summary convention is the one that
    # reproduces the BG/NBD paper, see features.repeat_buying).
    for name, value in PUBLISHED.items():
        assert model.params_[name] == pytest.approx(value, abs=1e-3), name
    assert model.log_likelihood_ == pytest.approx(PUBLISHED_LOG_LIKELIHOOD, abs=0.05)


# ---------------------------------------------------------------------------
# The likelihood against its defining integral.
# ---------------------------------------------------------------------------
def _log_likelihood_by_integration(params, x, t_x, T):  # noqa: N803
    """ln L from first principles: alive at T, or dead at some tau in (t_x, T) after x purchases,
    with lambda integrated out analytically and tau numerically (scaled to stay in range)."""
    r, alpha, s, beta = params.values()

    def log_purchases(tau):  # ln E_lambda[lambda^x exp(-lambda tau)], x purchases then silence
        return special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) - (r + x) * np.log(alpha + tau)

    def log_survival(tau):  # ln P(lifetime > tau)
        return s * (np.log(beta) - np.log(beta + tau))

    log_alive = log_purchases(T) + log_survival(T)
    peak = log_purchases(t_x) + log_survival(t_x)  # the integrand is largest at tau = t_x

    def died(tau):  # density of the death time, times the purchases' likelihood, / exp(peak)
        return np.exp(np.log(s) - np.log(beta + tau) + log_survival(tau) + log_purchases(tau) - peak)

    area = integrate.quad(died, t_x, T, epsabs=0, epsrel=1e-12, limit=200)[0]
    return np.logaddexp(log_alive, peak + np.log(area)) if area > 0 else log_alive


@pytest.mark.parametrize(
    "params",
    [
        PUBLISHED,  # alpha < beta
        {"r": 0.553, "alpha": 11.669, "s": 0.606, "beta": 10.578},  # alpha > beta
        {"r": 2.0, "alpha": 5.0, "s": 0.5, "beta": 5.0},  # alpha = beta: 2F1 = 1
        # z near 1, where scipy's 2F1 is not trusted (the quadrature instead): alpha >> beta, and
        # alpha << beta with r a whole number, where scipy's 2F1 is off by 1e-5 (x = 0, t = 0 in
        # the first) or nan (x = 300 in both)
        {"r": 0.2, "alpha": 100.0, "s": 3.0, "beta": 0.5},
        {"r": 3.0, "alpha": 0.1, "s": 0.05, "beta": 200.0},
        {"r": 1.0, "alpha": 0.2, "s": 2.0, "beta": 300.0},
    ],
)
@pytest.mark.parametrize(
    "x, t_x, T",
    [
        (0, 0.0, 38.86),
        (0, 0.0, 0.5),
        (2, 30.43, 38.86),
        (5, 1.0, 39.0),
        (29, 38.0, 39.0),
        (300, 1.0, 2.0),
        (7, 9.0, 9.0),
    ],
)
def test_log_likelihood_matches_numerical_integration(params, x, t_x, T):  # noqa: N803
    """The 2F1 closed form (and its quadrature fallback) agrees with the defining integral,
    including heavy buyers and customers whose last purchase is at the end of the window."""
    model = ParetoNbdModel.from_params(**params)
    assert model.score_samples(x, t_x, T) == pytest.approx(_log_likelihood_by_integration(params, x, t_x, T), rel=1e-9)


def test_2f1_and_quadrature_agree_where_both_apply():
    """The two ways `_log_tail` evaluates the integral give the same answer for z <= 0.8, where
    scipy's 2F1 is trusted, across small and large parameters and heavy buyers."""
    rng = np.random.default_rng(5)
    for _ in range(40):
        r, s = np.exp(rng.uniform(-3, 3, 2))
        alpha = np.exp(rng.uniform(-2, 5))
        beta = alpha * np.exp(rng.uniform(-1.5, 1.5))  # |alpha - beta| / max <= 0.78 at t = 0
        x = rng.choice([0, 1, 5, 50, 500], 6).astype(float)
        t = rng.uniform(0, 100, 6)
        params = (r, alpha, s, beta)
        assert _log_tail(params, x, t) == pytest.approx(_log_tail_by_quadrature(params, x, t), rel=1e-11, abs=1e-11)


def test_probability_alive_is_the_likelihoods_alive_share():
    """P(alive) = alive term / whole likelihood, the alive term written out."""
    r, alpha, s, beta = PUBLISHED.values()
    model = ParetoNbdModel.from_params(**PUBLISHED)
    x, t_x, T = np.array([0, 2, 10]), np.array([0.0, 30.43, 12.0]), np.array([38.86, 38.86, 38.86])
    log_alive = (
        special.gammaln(r + x)
        - special.gammaln(r)
        + r * np.log(alpha / (alpha + T))
        - x * np.log(alpha + T)
        + s * np.log(beta / (beta + T))
    )
    assert model.probability_alive(x, t_x, T) == pytest.approx(np.exp(log_alive - model.score_samples(x, t_x, T)))


# ---------------------------------------------------------------------------
# P(alive), expected purchases and their distribution against the generative process.
# ---------------------------------------------------------------------------
HORIZON = 26.0


@pytest.fixture(scope="module")
def simulated_futures():
    """Customers simulated with the true parameters, with their state at T and the purchases in
    the next HORIZON weeks. Whatever selects customers by their history (x, t_x, T) only, the
    mean of a conditional formula over them must match the mean outcome (tower property)."""
    rng = np.random.default_rng(7)
    T = rng.uniform(10.0, 60.0, 100_000)
    return (*simulate_pareto_nbd(len(T), *SIMULATED.values(), T, rng, horizon=HORIZON), T)


def _groups(frequency, recency, T):  # noqa: N803
    return {
        "no repeat": frequency == 0,
        "one or two, quiet": (frequency >= 1) & (frequency <= 2) & (recency < T / 2),
        "one or two, recent": (frequency >= 1) & (frequency <= 2) & (recency >= T / 2),
        "three or more": frequency >= 3,
    }


def test_probability_alive_and_expected_purchases_match_simulation(simulated_futures):
    frequency, recency, alive, future, T = simulated_futures
    model = ParetoNbdModel.from_params(**SIMULATED)
    p_alive = model.probability_alive(frequency, recency, T)
    expected = model.expected_purchases(HORIZON, frequency, recency, T)
    for name, group in _groups(frequency, recency, T).items():
        n = group.sum()
        assert n > 2000, name
        # within 4 standard errors of the simulated means
        tolerance = 4 / np.sqrt(n)
        assert p_alive[group].mean() == pytest.approx(alive[group].mean(), abs=tolerance * alive[group].std()), name
        assert expected[group].mean() == pytest.approx(future[group].mean(), abs=tolerance * future[group].std()), name


def test_purchase_probabilities_match_simulation(simulated_futures):
    frequency, recency, _, future, T = (v[:20_000] for v in simulated_futures)
    model = ParetoNbdModel.from_params(**SIMULATED)
    probabilities = model.purchase_probabilities(HORIZON, frequency, recency, T, max_purchases=4)
    for name, group in _groups(frequency, recency, T).items():
        for k in range(5):
            observed = future[group] == k
            assert probabilities[group, k].mean() == pytest.approx(
                observed.mean(), abs=4 * max(observed.std(), 1e-3) / np.sqrt(group.sum())
            ), (name, k)


@pytest.mark.parametrize("params", [PUBLISHED, SIMULATED, {"r": 3.0, "alpha": 0.5, "s": 1.0, "beta": 0.2}])
def test_purchase_distribution_is_consistent(params):
    """The probabilities sum to 1, their mean is the closed-form expectation, and the draws of
    `sample_purchases` follow them."""
    model = ParetoNbdModel.from_params(**params)
    x, t_x, T = np.array([0, 2, 10, 29]), np.array([0.0, 30.43, 20.0, 38.0]), np.array([38.86, 38.86, 38.86, 39.0])
    probabilities = model.purchase_probabilities(52.0, x, t_x, T, max_purchases=400)
    assert probabilities.shape == (4, 401)
    assert probabilities.sum(axis=1) == pytest.approx(np.ones(4), abs=1e-9)
    expected = model.expected_purchases(52.0, x, t_x, T)
    assert probabilities @ np.arange(401) == pytest.approx(expected, rel=1e-8)
    draws = model.sample_purchases(52.0, x, t_x, T, size=20_000, random_state=3)
    assert draws.shape == (20_000, 4)
    for k in range(3):
        share = (draws == k).mean(axis=0)
        assert share == pytest.approx(probabilities[:, k], abs=4 * np.sqrt(0.25 / 20_000) + 1e-3)
    # a zero horizon: no purchase, surely
    assert model.purchase_probabilities(0.0, 3, 2.0, 5.0, 2) == pytest.approx([1.0, 0.0, 0.0])


# ---------------------------------------------------------------------------
# Directions, limits and bad input.
# ---------------------------------------------------------------------------
def test_probability_alive_without_repeat_purchase_falls_as_T_grows():  # noqa: N802
    model = ParetoNbdModel.from_params(**PUBLISHED)
    T = np.array([0.0, 1.0, 5.0, 20.0, 39.0, 100.0])
    p_alive = model.probability_alive(0, 0.0, T)
    assert p_alive[0] == 1.0  # just born
    assert np.all(np.diff(p_alive) < 0)
    assert np.all(p_alive > 0)
    # unlike BG/NBD: silence since the first purchase is evidence of death
    assert p_alive[-2] < 0.5


def test_more_recent_last_purchase_means_more_alive():
    model = ParetoNbdModel.from_params(**PUBLISHED)
    recency = np.linspace(0.5, 30.0, 60)
    for frequency in (1, 4, 15):
        assert np.all(np.diff(model.probability_alive(frequency, recency, 30.0)) > 0)
        assert np.all(np.diff(model.expected_purchases(13.0, frequency, recency, 30.0)) > 0)


@pytest.mark.parametrize("params", [PUBLISHED, SIMULATED, {"r": 2.0, "alpha": 3.0, "s": 1.0, "beta": 4.0}])
def test_expected_purchases_are_nonnegative_and_grow_with_t(params):
    model = ParetoNbdModel.from_params(**params)
    t = np.linspace(0.0, 200.0, 50)
    for x, t_x, T in [(0, 0.0, 38.86), (2, 30.43, 38.86), (10, 5.0, 38.86), (29, 38.0, 39.0)]:
        expected = model.expected_purchases(t, x, t_x, T)
        assert expected[0] == 0.0
        assert np.all(np.diff(expected) > 0)
    new = model.expected_purchases_new_customer(t)
    assert np.all(np.diff(new) > 0)
    # a customer just born is a new customer
    assert model.expected_purchases(t, 0, 0.0, 0.0) == pytest.approx(new, rel=1e-12)


def test_expected_purchases_are_continuous_through_s_equal_one():
    """At s = 1 the closed form is 0/0; there it is (r / alpha) beta ln(1 + t / beta)."""
    r, alpha, beta, t = 0.5, 4.0, 6.0, 39.0
    at_one = ParetoNbdModel.from_params(r, alpha, 1.0, beta).expected_purchases_new_customer(t)
    assert at_one == pytest.approx(r / alpha * beta * np.log1p(t / beta), rel=1e-12)
    for s in (1 - 1e-7, 1 + 1e-7):
        near = ParetoNbdModel.from_params(r, alpha, s, beta).expected_purchases_new_customer(t)
        assert near == pytest.approx(at_one, rel=1e-6)


def test_invalid_inputs_raise():
    model = ParetoNbdModel.from_params(**PUBLISHED)
    with pytest.raises(ValueError, match="recency"):
        model.probability_alive(2, 40.0, 30.0)
    with pytest.raises(ValueError, match="frequency"):
        model.expected_purchases(10, -1, 0.0, 30.0)
    with pytest.raises(ValueError, match="frequency"):
        ParetoNbdModel().fit([1.5, 2], [1.0, 2.0], [3.0, 3.0])
    with pytest.raises(ValueError, match="t must be"):
        model.expected_purchases(-1, 2, 10.0, 30.0)
    with pytest.raises(ValueError, match="max_purchases"):
        model.purchase_probabilities(10, 2, 10.0, 30.0, max_purchases=-1)
    with pytest.raises(ValueError, match="zero customers"):
        ParetoNbdModel().fit([], [], [])
    with pytest.raises(ValueError, match="parameters"):
        ParetoNbdModel.from_params(0.5, 0.0, 0.5, 1.0)
    with pytest.raises(AttributeError, match="not fitted"):
        ParetoNbdModel().probability_alive(1, 1.0, 2.0)
