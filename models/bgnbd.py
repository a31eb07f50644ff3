"""The BG/NBD model of repeat buying (Fader, Hardie & Lee 2005, "Counting your customers the
easy way"), fitted by maximum likelihood with numpy and scipy only.

The model, its inputs (the RFM summary: frequency x, recency t_x and age T in the model's time
unit) and the closed forms a fitted model evaluates (P(alive), expected purchases) are described in
`features.repeat_buying`, where the feature build uses them with parameters fitted here once per
cutoff (`fit_parameters`). This module holds the likelihood, its gradient and the fit.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize
from sklearn.base import BaseEstimator

from features import repeat_buying
from features.repeat_buying import WEEK_DAYS, BgNbdParameters, PurchaseDaySummary, check_rfm

PARAMETER_NAMES = BgNbdParameters._fields
# The optimiser works on log-parameters inside these bounds (exp(+-15) ~ 3e-7 .. 3e6): wide
# enough for any unit of time, narrow enough that no intermediate overflows.
_LOG_BOUNDS = (-15.0, 15.0)
# Below this many repeat buyers the four parameters are not identified well enough to use.
MIN_REPEAT_BUYERS_TO_FIT = 20


class BetaGeoModel(BaseEstimator):
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

    def __init__(self, penalizer: float = 0.0, time_unit_days: float = 7.0):
        self.penalizer = penalizer
        self.time_unit_days = time_unit_days

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, frequency, recency, T) -> BetaGeoModel:
        """Maximise the BG/NBD log-likelihood (paper eq. 6) over r, alpha, a, b > 0."""
        x, t_x, age = check_rfm(frequency, recency, T)
        if len(x) == 0:
            raise ValueError("cannot fit BG/NBD on zero customers")
        if self.penalizer < 0:
            raise ValueError(f"penalizer must be >= 0, got {self.penalizer}")
        # Customers with the same (x, t_x, T) share a likelihood term: fit on the distinct rows.
        rows, counts = np.unique(np.column_stack([x, t_x, age]), axis=0, return_counts=True)
        x_u, t_x_u, age_u = (np.ascontiguousarray(column) for column in rows.T)
        weights = counts.astype(float)
        n = float(len(x))

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

        best = None
        for start in _starting_points(x, age):
            result = optimize.minimize(
                objective,
                np.log(start),
                jac=True,
                method="L-BFGS-B",
                bounds=[_LOG_BOUNDS] * 4,
                options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9},
            )
            if best is None or result.fun < best.fun:
                best = result
            if best.success:  # the other starting points are for when this one stalls
                break
        if not best.success:
            # A gradient stall (flat ridge between r and alpha) is polished without gradients.
            polished = optimize.minimize(
                lambda v: objective(np.clip(v, *_LOG_BOUNDS))[0],
                best.x,
                method="Nelder-Mead",
                options={"maxiter": 4000, "xatol": 1e-9, "fatol": 1e-12},
            )
            if polished.fun <= best.fun:
                polished.x = np.clip(polished.x, *_LOG_BOUNDS)
                best = polished
        self.r_, self.alpha_, self.a_, self.b_ = (float(v) for v in np.exp(best.x))
        self.log_likelihood_ = float(np.sum(weights * _log_likelihood(self._params, x_u, t_x_u, age_u)))
        self.n_customers_ = int(n)
        self.converged_ = bool(best.success)
        return self

    @classmethod
    def from_params(cls, r: float, alpha: float, a: float, b: float, time_unit_days: float = 7.0) -> BetaGeoModel:
        """A model with given parameters (e.g. published ones), usable without fitting."""
        model = cls(time_unit_days=time_unit_days)
        if min(r, alpha, a, b) <= 0:
            raise ValueError("BG/NBD parameters must all be > 0")
        model.r_, model.alpha_, model.a_, model.b_ = float(r), float(alpha), float(a), float(b)
        model.log_likelihood_ = float("nan")
        model.n_customers_ = 0
        model.converged_ = True
        return model

    @property
    def _params(self) -> np.ndarray:
        if not hasattr(self, "r_"):
            raise AttributeError("this BetaGeoModel is not fitted yet: call fit() first")
        return np.array([self.r_, self.alpha_, self.a_, self.b_])

    @property
    def params_(self) -> dict[str, float]:
        """The fitted parameters by name."""
        return dict(zip(PARAMETER_NAMES, self._params.tolist(), strict=True))

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


def _starting_points(x: np.ndarray, age: np.ndarray) -> list[np.ndarray]:
    """Starting values from the data's scale: the purchase rate sets alpha (E[lambda] = r/alpha)."""
    rate = max(float(np.mean(x)), 0.1) / max(float(np.mean(age)), 1e-6)
    return [
        np.array([1.0, 1.0 / rate, 1.0, 1.0]),
        np.array([0.5, 0.5 / rate, 0.5, 2.0]),
        np.array([2.0, 2.0 / rate, 1.5, 5.0]),
    ]
