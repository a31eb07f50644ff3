"""The BG/NBD model of repeat buying (Fader, Hardie & Lee 2005, "Counting your customers the
easy way"), with numpy and scipy only, and a baseline that scores our transactions with it.

The model, for a customer whose first purchase was at time 0 and who is watched until T:
- while alive, purchases follow a Poisson process of rate lambda, lambda ~ Gamma(r, alpha);
- after each repeat purchase the customer drops out for good with probability p,
  p ~ Beta(a, b).

Inputs are the customer's RFM summary in the model's time unit (weeks by default):
`frequency` x = repeat purchases (purchase days after the first), `recency` t_x = age at the
last purchase (0 without repeats), `T` = age at the end of the observation window.

`rfm_summary` builds that summary from contract transactions at a cutoff `as_of`, with the
CLV convention of lifetimes and pymc-marketing (time counted in whole days): purchase lines
(quantity > 0) strictly before `as_of`; all purchases of one calendar day are one purchase;
a customer's birth is their first purchase day; t_x = last purchase day - first purchase
day; T = last observed day - first purchase day, where the last observed day is the day
before a midnight `as_of` (pymc-marketing's `observation_period_end`). So at as_of =
1997-10-01 a customer first seen on 1997-01-01 has T = 272 days = 38.86 weeks, as in the
paper's data. On the CDNOW sample this convention reproduces the published fit to every
printed digit (log-likelihood -9582.43); T = as_of - first purchase day instead gives
-9589.89, and counting same-day lines separately gives -9751.4 (see tests/test_bgnbd.py).

`BetaGeoBaseline` fits the model at one cutoff and scores "expected purchases in the next
`horizon_days`" at any later cutoff: the parametric baseline for the churn and propensity
models.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import linalg, optimize, special
from sklearn.base import BaseEstimator

from features import schema as s

# The RFM summary's columns. They are this model's inputs, in its time unit, not contract or
# feature columns, so they live here. "recency" is the BG/NBD meaning (age at the last
# purchase, larger = more recent), the opposite of the feature days_since_last_purchase.
FREQUENCY = "frequency"
RECENCY = "recency"
AGE = "T"  # the paper's T: age at the end of the observation window
RFM_SUMMARY_COLUMNS = (FREQUENCY, RECENCY, AGE)

PARAMETER_NAMES = ("r", "alpha", "a", "b")
# The optimiser works on log-parameters inside these bounds (exp(+-15) ~ 3e-7 .. 3e6): wide
# enough for any unit of time, narrow enough that no intermediate overflows.
_LOG_BOUNDS = (-15.0, 15.0)
# Near a = 1 the conditional expectation is 0/0; it is evaluated at a = 1 +- this and averaged.
_A_NUDGE = 1e-5


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
        x, t_x, age = _check_rfm(frequency, recency, T)
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
        return _log_likelihood(self._params, *_check_rfm(frequency, recency, T))

    def score(self, frequency, recency, T) -> float:
        """Mean log-likelihood per customer."""
        return float(np.mean(self.score_samples(frequency, recency, T)))

    def probability_alive(self, frequency, recency, T) -> np.ndarray:
        """P(still active at T | x, t_x, T) (paper eq. 8). It is 1 for every customer with x = 0:
        in BG/NBD a customer can only drop out right after a repeat purchase."""
        x, t_x, age = _check_rfm(frequency, recency, T)
        return 1.0 / (1.0 + _odds_dead(self._params, x, t_x, age))

    def expected_purchases(self, t, frequency, recency, T) -> np.ndarray:
        """E[purchases in (T, T + t] | x, t_x, T] (paper eq. 10); t in the model's time unit.

        t, frequency, recency and T broadcast against each other.
        """
        t = np.asarray(t, dtype=float)
        if np.any(t < 0) or not np.all(np.isfinite(t)):
            raise ValueError("t must be finite and >= 0")
        x, t_x, age = _check_rfm(frequency, recency, T)
        r, alpha, a, b = self._params
        alive = 1.0 / (1.0 + _odds_dead(self._params, x, t_x, age))
        # eq. 10 = E[purchases | alive at T] * P(alive at T)
        given_alive = _expected_given_alive(r, alpha, a, b, t, x, age)
        return np.maximum(given_alive * alive, 0.0)

    def expected_purchases_new_customer(self, t) -> np.ndarray:
        """E[X(t)]: expected repeat purchases in the t units after a first purchase (eq. 7)."""
        t = np.asarray(t, dtype=float)
        if np.any(t < 0) or not np.all(np.isfinite(t)):
            raise ValueError("t must be finite and >= 0")
        r, alpha, a, b = self._params
        zeros = np.zeros_like(t)
        return np.maximum(_expected_given_alive(r, alpha, a, b, t, zeros, zeros), 0.0)


class BetaGeoBaseline(BaseEstimator):
    """BG/NBD on contract transactions: expected purchases per customer in a horizon.

    `fit(transactions, as_of)` fits on `rfm_summary(transactions, as_of)`; the fitted
    parameters are then used to score at any cutoff. Customers with no purchase before the
    scoring cutoff get 0: BG/NBD describes repeat buying after a first purchase and says
    nothing about someone who never bought; 0 ranks them below every buyer, which is the
    conservative choice for a baseline. (`model_.expected_purchases_new_customer(t)` is the
    alternative for someone known to have just made a first purchase.)
    """

    def __init__(self, penalizer: float = 0.0, time_unit_days: float = 7.0):
        self.penalizer = penalizer
        self.time_unit_days = time_unit_days

    def fit(self, transactions: pd.DataFrame, as_of) -> BetaGeoBaseline:
        summary = rfm_summary(transactions, as_of, time_unit_days=self.time_unit_days)
        self.model_ = BetaGeoModel(penalizer=self.penalizer, time_unit_days=self.time_unit_days).fit(
            summary[FREQUENCY], summary[RECENCY], summary[AGE]
        )
        self.as_of_ = pd.Timestamp(as_of)
        return self

    def predict_expected(
        self, transactions: pd.DataFrame, as_of, horizon_days: float, customer_ids: Sequence[str]
    ) -> np.ndarray:
        """Expected purchase days in [as_of, as_of + horizon_days), aligned to customer_ids.

        Uses only records strictly before as_of; customers without a purchase get 0.
        """
        if not hasattr(self, "model_"):
            raise AttributeError("this BetaGeoBaseline is not fitted yet: call fit() first")
        if not horizon_days >= 0:
            raise ValueError(f"horizon_days must be >= 0, got {horizon_days}")
        summary = _summarise(transactions, pd.Timestamp(as_of), self.time_unit_days)
        ids = pd.Index(pd.array(list(customer_ids), dtype="str"))
        row = summary.index.get_indexer(ids)
        known = row >= 0
        expected = np.zeros(len(ids))
        if known.any():
            picked = summary.iloc[row[known]]
            expected[known] = self.model_.expected_purchases(
                horizon_days / self.time_unit_days, picked[FREQUENCY], picked[RECENCY], picked[AGE]
            )
        return expected


def rfm_summary(transactions: pd.DataFrame, as_of, time_unit_days: float = 7.0) -> pd.DataFrame:
    """frequency, recency, T per customer from purchase lines strictly before as_of.

    Purchase lines have quantity > 0 (returns are ignored). All purchases on one calendar day
    are one purchase; frequency = purchase days - 1; recency = last - first purchase day;
    T = last observed day - first purchase day, the last observed day being the calendar day
    of the last instant before as_of (as_of - 1 day for a midnight as_of, which matches
    lifetimes/pymc-marketing with observation_period_end = as_of - 1 day). Times are in
    units of `time_unit_days` days. Indexed by customer_id (sorted), one row per customer
    with a purchase. Raises ValueError when there is no purchase before as_of.
    """
    as_of = pd.Timestamp(as_of)
    summary = _summarise(transactions, as_of, time_unit_days)
    if summary.empty:
        raise ValueError(f"no purchase before as_of={as_of}: the RFM summary would be empty")
    return summary


def _summarise(transactions: pd.DataFrame, as_of: pd.Timestamp, time_unit_days: float) -> pd.DataFrame:
    if not time_unit_days > 0:
        raise ValueError(f"time_unit_days must be > 0, got {time_unit_days}")
    bought = (transactions[s.TIMESTAMP] < as_of) & (transactions[s.QUANTITY] > 0)
    purchases = transactions.loc[bought]
    days = purchases[s.TIMESTAMP].dt.floor("D").to_numpy(dtype="datetime64[ns]")
    by_customer = pd.Series(days, index=pd.Index(purchases[s.CUSTOMER_ID].astype("str"))).groupby(level=0, sort=True)
    first, last = by_customer.min(), by_customer.max()
    unit = pd.Timedelta(days=time_unit_days)
    summary = pd.DataFrame(
        {
            FREQUENCY: (by_customer.nunique() - 1).astype(float),
            RECENCY: (last - first) / unit,
            AGE: (_last_observed_day(as_of) - first) / unit,
        }
    )
    summary.index = pd.Index(summary.index.astype("str"), name=s.CUSTOMER_ID)
    return summary


def _last_observed_day(as_of: pd.Timestamp) -> pd.Timestamp:
    """The calendar day of the last instant before as_of: as_of - 1 day for a midnight as_of."""
    return (as_of - pd.Timedelta(1, unit="ns")).floor("D")


# ---------------------------------------------------------------------------
# The model's formulas, on plain arrays.
# ---------------------------------------------------------------------------
def _check_rfm(frequency, recency, T) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, t_x, age = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (frequency, recency, T)))
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(t_x)) and np.all(np.isfinite(age))):
        raise ValueError("frequency, recency and T must be finite")
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise ValueError("frequency must be a whole number >= 0")
    if np.any(t_x < 0) or np.any(t_x > age):
        raise ValueError("recency must satisfy 0 <= recency <= T")
    return x, t_x, age


def _odds_dead(params, x, t_x, age) -> np.ndarray:
    """P(dropped out) / P(alive) given the history; 0 when x = 0.

    odds = a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x), for x > 0.
    """
    r, alpha, a, b = params
    repeat = x > 0
    log_odds = (
        np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) + (r + x) * (np.log(alpha + age) - np.log(alpha + t_x))
    )
    return np.where(repeat, np.exp(np.minimum(log_odds, 700.0)), 0.0)


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


def _expected_given_alive(r, alpha, a, b, t, x, age) -> np.ndarray:
    """E[purchases in (T, T + t] | x repeats, alive at T] (paper eq. 10's numerator):

        (a + b + x - 1) / (a - 1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x)
                                       * 2F1(r + x, b + x; a + b + x - 1; t / (alpha+T+t))]

    evaluated through Euler's transformation 2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z),
    which turns the bracket into 1 - (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z): the series'
    upper parameters no longer grow with x, so heavy buyers stay accurate. With x = 0 and
    T = 0 it is the new-customer curve (eq. 7). At a = 1 the ratio is 0/0 and it is averaged
    over a = 1 +- a small step, as it is wherever scipy's 2F1 returns a non-finite value; what
    is still not finite (degenerate parameters, e.g. r ~ 1e6 from an unpenalised fit on a
    handful of customers) is integrated numerically instead (`_expected_given_alive_by_quadrature`).
    """
    t, x, age = np.broadcast_arrays(np.asarray(t, float), np.asarray(x, float), np.asarray(age, float))

    def at(a_):
        # a pole of 2F1 (x = 0 and a + b - 1 a non-positive integer) is left as nan and nudged
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return _bracket_ratio(a_)

    def _bracket_ratio(a_):
        log_1mz = np.log(alpha + age) - np.log(alpha + age + t)
        z = -np.expm1(log_1mz)
        hyp = special.hyp2f1(a_ + b - 1 - r, a_ - 1, a_ + b + x - 1, z)
        # 1 - (1-z)^(a-1) * hyp, written to keep precision when both factors are near 1
        bracket = -np.expm1((a_ - 1) * log_1mz) - np.exp((a_ - 1) * log_1mz) * (hyp - 1)
        return (a_ + b + x - 1) / (a_ - 1) * bracket

    if abs(a - 1) < _A_NUDGE:
        value = 0.5 * (at(1 - _A_NUDGE) + at(1 + _A_NUDGE))
    else:
        value = np.array(at(a), dtype=float)
        bad = ~np.isfinite(value)
        if bad.any():
            value[bad] = (0.5 * (at(a * (1 - _A_NUDGE)) + at(a * (1 + _A_NUDGE))))[bad]
    bad = ~np.isfinite(value)
    if bad.any():
        value[bad] = _expected_given_alive_by_quadrature(r, alpha, a, b, t[bad], x[bad], age[bad])
    return value


def _expected_given_alive_by_quadrature(r, alpha, a, b, t, x, age, nodes: int = 200) -> np.ndarray:
    """The same expectation from its integral form, for when the 2F1 closed form fails.

    Given alive at T, lambda ~ Gamma(r + x, alpha + T) and p ~ Beta(a, b + x) independently,
    and E[purchases in t | lambda, p] = (1 - exp(-lambda p t)) / p, so
        E = E_{p ~ Beta(a, b + x)} [(1 - ((alpha + T) / (alpha + T + p t))^(r + x)) / p],
    a bounded integrand, integrated by Gauss quadrature for the Beta weight.
    """
    out = np.empty(len(x))
    for level in np.unique(x):
        p, weights = _gauss_beta(a, b + level, nodes)
        here = x == level
        scale = (t[here] / (alpha + age[here]))[:, None]
        integrand = -np.expm1(-(r + level) * np.log1p(p[None, :] * scale)) / p[None, :]
        out[here] = np.sum(integrand * weights[None, :], axis=1)
    return out


def _gauss_beta(a: float, b: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss quadrature nodes in (0, 1) and weights (summing to 1) for the Beta(a, b) density.

    Golub-Welsch on the Jacobi recurrence (weight (1-u)^(b-1) (1+u)^(a-1), p = (1+u)/2).
    scipy's roots_jacobi overflows for large a + b; the eigenvectors need no normaliser.
    """
    al, be = b - 1.0, a - 1.0
    k = np.arange(1, n, dtype=float)
    m = 2 * k + al + be
    diagonal = np.empty(n)
    diagonal[0] = (be - al) / (al + be + 2)
    diagonal[1:] = (be**2 - al**2) / (m * (m + 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        off_squared = 4 * k * (k + al) * (k + be) * (k + al + be) / (m**2 * (m + 1) * (m - 1))
    # k = 1 simplified, which has no 0/0 when al + be = -1
    off_squared[0] = 4 * (1 + al) * (1 + be) / ((2 + al + be) ** 2 * (3 + al + be))
    u, vectors = linalg.eigh_tridiagonal(diagonal, np.sqrt(off_squared))
    weights = vectors[0] ** 2
    return np.clip((1 + u) / 2, np.finfo(float).tiny, 1.0), weights / weights.sum()


def _starting_points(x: np.ndarray, age: np.ndarray) -> list[np.ndarray]:
    """Starting values from the data's scale: the purchase rate sets alpha (E[lambda] = r/alpha)."""
    rate = max(float(np.mean(x)), 0.1) / max(float(np.mean(age)), 1e-6)
    return [
        np.array([1.0, 1.0 / rate, 1.0, 1.0]),
        np.array([0.5, 0.5 / rate, 0.5, 2.0]),
        np.array([2.0, 2.0 / rate, 1.5, 5.0]),
    ]


def score_customers(
    params: tuple[float, float, float, float] | None,
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,  # noqa: N803
    horizon: float,
    time_unit_days: float = 7.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(P(alive), expected purchases in `horizon` time units) for buyers under given parameters.

    Used by the feature builder with parameters fitted once per as_of (a reference table), so a
    customer's values depend only on their own history. Without parameters (too little data
    to fit), every buyer gets P(alive) 1 and the expectation NaN.
    """
    frequency, recency, T = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    if params is None or len(frequency) == 0:
        return np.ones(len(frequency)), np.full(len(frequency), np.nan)
    model = BetaGeoModel.from_params(*params, time_unit_days=time_unit_days)
    return model.probability_alive(frequency, recency, T), model.expected_purchases(horizon, frequency, recency, T)


def fit_summary(frequency, recency, T, time_unit_days: float = 7.0) -> tuple[float, float, float, float] | None:  # noqa: N803
    """(r, alpha, a, b) fitted on every buyer's summary; None when there are too few repeat
    buyers for the four parameters to mean anything."""
    frequency = np.asarray(frequency, dtype=float)
    if (frequency > 0).sum() < MIN_REPEAT_BUYERS_TO_FIT:
        return None
    model = BetaGeoModel(time_unit_days=time_unit_days).fit(frequency, recency, T)
    return (model.r_, model.alpha_, model.a_, model.b_)


# Below this many repeat buyers the four parameters are not identified well enough to use.
MIN_REPEAT_BUYERS_TO_FIT = 20
