"""The BG/NBD model of repeat buying (Fader, Hardie & Lee 2005, "Counting your customers the
easy way"), fitted by maximum likelihood with numpy and scipy only.

The model, its inputs (the RFM summary: frequency x, recency t_x and age T in the model's time
unit) and the closed forms a fitted model evaluates (P(alive), expected purchases) are described in
`features.repeat_buying`, where the feature build uses them with parameters fitted here once per
cutoff (`fit_parameters`). This module holds the likelihood, its gradient and the fit.
"""

from __future__ import annotations

import numpy as np

from features import repeat_buying
from features.repeat_buying import WEEK_DAYS, BgNbdParameters, PurchaseDaySummary, check_rfm
from models.likelihood import MaximumLikelihoodModel, distinct_rfm_rows, minimise_from_starts

PARAMETER_NAMES = BgNbdParameters._fields
# Below this many repeat buyers the four parameters are not identified well enough to use.
MIN_REPEAT_BUYERS_TO_FIT = 20


class BetaGeoModel(MaximumLikelihoodModel):
    """BG/NBD fitted by maximum likelihood, scikit-learn style.

    penalizer: weight of an L2 penalty on (r, alpha, a, b) added to the mean negative
        log-likelihood per customer, as lifetimes does (0 = plain maximum likelihood); it
        keeps the fit finite on small or degenerate data.
    time_unit_days: the length, in days, of the time unit that frequency/recency/T and t are
        measured in. The model itself is unit-free; this records the unit so callers (and a
        logged model) convert horizons consistently, e.g. `t = horizon_days / time_unit_days`.

    Fitted attributes: r_, alpha_, a_, b_, log_likelihood_ (total, unpenalised, at the fitted
    parameters), n_customers_, converged_.
    """

    PARAMETERS = PARAMETER_NAMES

    def __init__(self, penalizer: float = 0.0, time_unit_days: float = 7.0):
        self.penalizer = penalizer
        self.time_unit_days = time_unit_days

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, frequency, recency, T) -> BetaGeoModel:
        """Maximise the BG/NBD log-likelihood (paper eq. 6) over r, alpha, a, b > 0."""
        (x_u, t_x_u, age_u), weights, n = distinct_rfm_rows(frequency, recency, T, "BG/NBD", self.penalizer)

        def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            params = np.exp(log_params)
            ll, grad = _log_likelihood_and_gradient(params, x_u, t_x_u, age_u)
            # Weighted sums as ufunc reductions, not `@`: a BLAS matrix-vector product wakes
            # OpenBLAS's threads, which made each fit several times slower on a busy machine.
            value = -np.sum(weights * ll) / n + self.penalizer * np.sum(params**2)
            total_grad = np.array([np.sum(weights * g) for g in grad])
            # chain rule to log-parameters: d/dlog(theta) = theta * d/dtheta
            gradient = -total_grad / n * params + 2.0 * self.penalizer * params**2
            return float(value), gradient

        best = minimise_from_starts(
            objective,
            _starting_points(np.average(x_u, weights=weights), np.average(age_u, weights=weights)),
            {"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9},
            polish=lambda log_params: objective(log_params)[0],  # a flat ridge between r and alpha
        )
        self._keep(best.x, n, best.success)
        self.log_likelihood_ = float(np.sum(weights * _log_likelihood(self._params, x_u, t_x_u, age_u)))
        return self

    @classmethod
    def from_params(cls, r: float, alpha: float, a: float, b: float, time_unit_days: float = 7.0) -> BetaGeoModel:
        """A model with given parameters (e.g. published ones), usable without fitting."""
        return cls._with_params({"r": r, "alpha": alpha, "a": a, "b": b}, time_unit_days=time_unit_days)

    # -- scoring ---------------------------------------------------------------------------
    def score_samples(self, frequency, recency, T) -> np.ndarray:
        """Each customer's log-likelihood under the fitted parameters (paper eq. 6)."""
        return _log_likelihood(self._params, *check_rfm(frequency, recency, T))

    def score(self, frequency, recency, T) -> float:
        """Mean log-likelihood per customer."""
        return float(np.mean(self.score_samples(frequency, recency, T)))

    def probability_alive(self, frequency, recency, T) -> np.ndarray:
        """P(still active at T | x, t_x, T) (paper eq. 8); 1 for every customer with x = 0."""
        return repeat_buying.probability_alive(self._params, frequency, recency, T)

    def expected_purchases(self, t, frequency, recency, T) -> np.ndarray:
        """E[purchases in (T, T + t] | x, t_x, T] (paper eq. 10); t in the model's time unit.

        t, frequency, recency and T broadcast against each other.
        """
        return repeat_buying.expected_purchases(self._params, t, frequency, recency, T)

    def expected_purchases_given_alive(self, t, frequency, recency, T) -> np.ndarray:  # noqa: N803
        """E[purchases in (T, T + t] | x, t_x, T, alive at T]: `expected_purchases` before the P(alive)
        factor (eq. 10's numerator), for a caller asking for several horizons."""
        return repeat_buying.expected_purchases_given_alive(self._params, t, frequency, recency, T)

    def expected_purchases_new_customer(self, t) -> np.ndarray:
        """E[X(t)]: expected repeat purchases in the t units after a first purchase (eq. 7)."""
        return repeat_buying.expected_purchases_new_customer(self._params, t)


def fit_parameters(summary: PurchaseDaySummary) -> BgNbdParameters | None:
    """(r, alpha, a, b) in weeks, fitted on every buyer's summary; None when there are too few
    repeat buyers for the four parameters to mean anything. What the reference tables carry."""
    if (np.asarray(summary.frequency) > 0).sum() < MIN_REPEAT_BUYERS_TO_FIT:
        return None
    model = BetaGeoModel(time_unit_days=WEEK_DAYS).fit(summary.frequency, summary.recency, summary.T)
    return BgNbdParameters(model.r_, model.alpha_, model.a_, model.b_)


# ---------------------------------------------------------------------------
# The likelihood, on plain arrays.
# ---------------------------------------------------------------------------
def _log_likelihood(params, x, t_x, age) -> np.ndarray:
    return _log_likelihood_and_gradient(params, x, t_x, age, gradient=False)[0]


def _log_likelihood_and_gradient(params, x, t_x, age, gradient: bool = True):
    """Per-customer log-likelihood (paper eq. 6) and its gradient in (r, alpha, a, b), one
    array per parameter.

    L = A1 * A2 * (A3 + [x > 0] A4), with
      ln A1 = lnG(r + x) - lnG(r) + r ln(alpha)
      ln A2 = lnG(a + b) + lnG(b + x) - lnG(b) - lnG(a + b + x)
      ln A3 = -(r + x) ln(alpha + T)
      ln A4 = ln(a) - ln(b + x - 1) - (r + x) ln(alpha + t_x)
    and ln(A3 + A4) taken with logaddexp so neither term underflows. x is a whole number, so
    every Gamma ratio is a finite product, lnG(c + x) - lnG(c) = sum_{i<x} ln(c + i), and its
    derivative a finite sum of 1 / (c + i): both are tabulated once per call up to max(x),
    which is far cheaper than gammaln/digamma on every customer.
    """
    r, alpha, a, b = params
    k = x.astype(np.intp)
    n_max = int(k.max()) if len(k) else 0
    log_r, inv_r = _rising_sums(r, n_max)
    log_b, inv_b = _rising_sums(b, n_max)
    log_ab, inv_ab = _rising_sums(a + b, n_max)
    repeat = k > 0
    log_alpha_t = np.log(alpha + age)
    log_alpha_tx = np.log(alpha + t_x)
    ln_a1_a2 = (log_r - log_ab + log_b)[k] + r * np.log(alpha)
    ln_a3 = -(r + x) * log_alpha_t
    b_x = np.where(repeat, b + x - 1, 1.0)
    ln_a4 = np.where(repeat, np.log(a) - np.log(b_x) - (r + x) * log_alpha_tx, -np.inf)
    ln_rest = np.logaddexp(ln_a3, ln_a4)
    ll = ln_a1_a2 + ln_rest
    if not gradient:
        return ll, None
    w4 = np.exp(ln_a4 - ln_rest)  # share of the "dropped out after the last purchase" branch
    w3 = 1.0 - w4
    d_r = inv_r[k] + np.log(alpha) - w3 * log_alpha_t - w4 * log_alpha_tx
    d_alpha = r / alpha - (r + x) * (w3 / (alpha + age) + w4 / (alpha + t_x))
    d_a = -inv_ab[k] + w4 / a
    d_b = (inv_b - inv_ab)[k] - w4 / b_x
    return ll, (d_r, d_alpha, d_a, d_b)


def _rising_sums(c: float, n_max: int) -> tuple[np.ndarray, np.ndarray]:
    """For k = 0..n_max: sum_{i<k} ln(c + i) (= lnG(c + k) - lnG(c)) and sum_{i<k} 1 / (c + i)."""
    terms = c + np.arange(n_max, dtype=float)
    zero = np.zeros(1)
    return np.concatenate([zero, np.cumsum(np.log(terms))]), np.concatenate([zero, np.cumsum(1.0 / terms)])


def _starting_points(mean_x: float, mean_age: float) -> list[np.ndarray]:
    """Starting values from the data's scale: the purchase rate sets alpha (E[lambda] = r/alpha)."""
    rate = max(mean_x, 0.1) / max(mean_age, 1e-6)
    return [
        np.array([1.0, 1.0 / rate, 1.0, 1.0]),
        np.array([0.5, 0.5 / rate, 0.5, 2.0]),
        np.array([2.0, 2.0 / rate, 1.5, 5.0]),
    ]
