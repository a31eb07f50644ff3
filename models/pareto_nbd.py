"""The Pareto/NBD model of repeat buying (Schmittlein, Morrison & Colombo 1987), fitted by
maximum likelihood with numpy and scipy only.

A customer born (first purchase) at 0 and watched until T buys, while alive, as a Poisson process
of rate lambda ~ Gamma(r, alpha) and lives an exponential lifetime of rate mu ~ Gamma(s, beta),
lambda and mu independent. Unlike BG/NBD a customer can die at any time, so a customer with no
repeat purchase (x = 0) may be gone. The inputs are the RFM summary of `features.repeat_buying`
(frequency x, recency t_x, age T in the model's time unit).

The likelihood is the one in Fader & Hardie, "A note on deriving the Pareto/NBD model and related
expressions" (2005):

    L = G(r + x) alpha^r beta^s / G(r) * [ (alpha+T)^-(r+x) (beta+T)^-s
                                           + s * int_{t_x}^T (alpha+tau)^-(r+x) (beta+tau)^-(s+1) dtau ]

whose integral is the note's A0 term, a difference of two Gaussian hypergeometric 2F1 values
(`_log_tail`). The first bracket term is "alive at T", the second "died between t_x and T";
their ratio is P(alive).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import special

from features.repeat_buying import check_rfm
from models.likelihood import MaximumLikelihoodModel, distinct_rfm_rows, minimise_from_starts


class ParetoNbdParameters(NamedTuple):
    """Pareto/NBD parameters: purchase rate ~ Gamma(r, alpha), dropout rate ~ Gamma(s, beta)."""

    r: float
    alpha: float
    s: float
    beta: float


PARAMETER_NAMES = ParetoNbdParameters._fields
# Step of the central differences in log-parameters: truncation (~h^2) and rounding (~eps / h)
# errors of the gradient are both ~1e-10 of the objective.
_GRADIENT_STEP = 1e-5
# scipy's 2F1 is trusted for arguments up to here, `_log_tail_by_quadrature` beyond (see `_log_tail`).
_Z_TRUSTED = 0.8
# That quadrature's window: where the log-integrand is within this of its peak (e^-42 ~ 6e-19).
_WINDOW_DROP = 42.0
# Its root finding (the mode and the window's edges): Newton steps until they move less than this
# (converging quadratically, the last step leaves the root within ~1e-12).
_ROOT_TOLERANCE = 1e-6
_ROOT_STEPS = 100
# ... and its batches: at most this many integrand values in memory at once.
_QUADRATURE_CELLS = 2_000_000
# Gauss-Legendre nodes for the integral over the death time in `purchase_probabilities`.
_QUADRATURE_NODES = 64
# customers per chunk in `purchase_probabilities` (chunk x nodes x counts floats in memory)
_CHUNK_ROWS = 2048


class ParetoNbdModel(MaximumLikelihoodModel):
    """Pareto/NBD fitted by maximum likelihood, scikit-learn style.

    penalizer: weight of an L2 penalty on (r, alpha, s, beta) added to the mean negative
        log-likelihood per customer, as in `models.bgnbd.BetaGeoModel` (0 = plain maximum
        likelihood).
    time_unit_days: the length, in days, of the time unit that frequency/recency/T and t are
        measured in (the model itself is unit-free), e.g. `t = horizon_days / time_unit_days`.

    Fitted attributes: r_, alpha_, s_, beta_, log_likelihood_ (total, unpenalised, at the fitted
    parameters), n_customers_, converged_.

    What a fitted model gives per customer (x, t_x, T) about the purchases in (T, T + t]:
    - `expected_purchases`: the mean;
    - `purchase_probabilities`: the whole distribution P(Y = 0..k), from which quantiles follow
      (`np.cumsum` along the last axis);
    - `sample_purchases`: exact draws from the same distribution (P(alive), then lambda and mu
      from their posterior, then the lifetime and the Poisson count), for intervals that combine
      purchases with other random quantities such as spend.
    """

    PARAMETERS = PARAMETER_NAMES

    def __init__(self, penalizer: float = 0.0, time_unit_days: float = 7.0):
        self.penalizer = penalizer
        self.time_unit_days = time_unit_days

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, frequency, recency, T) -> ParetoNbdModel:  # noqa: N803
        """Maximise the Pareto/NBD log-likelihood over r, alpha, s, beta > 0."""
        (x_u, t_x_u, age_u), weights, n = distinct_rfm_rows(frequency, recency, T, "Pareto/NBD", self.penalizer)

        def value(log_params: np.ndarray) -> float:
            params = np.exp(log_params)
            ll = _log_likelihood(params, x_u, t_x_u, age_u)
            total = -np.sum(weights * ll) / n + self.penalizer * np.sum(params**2)
            # overflow far from the optimum (near the bounds): steer the search away
            return float(total) if np.isfinite(total) else 1e300

        def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            # The derivatives of 2F1 in its parameters (here r and s) have no closed form, so the
            # gradient is taken by central differences, each one vectorised over customers.
            steps = np.eye(4) * _GRADIENT_STEP
            gradient = np.array(
                [(value(log_params + step) - value(log_params - step)) / (2 * _GRADIENT_STEP) for step in steps]
            )
            return value(log_params), gradient

        best = minimise_from_starts(
            objective,
            _starting_points(np.average(x_u, weights=weights), np.average(age_u, weights=weights)),
            {"maxiter": 1000, "ftol": 1e-13, "gtol": 1e-8},
            polish=value,  # a flat ridge along (s, beta)
        )
        self._keep(best.x, n, best.success)
        self.log_likelihood_ = float(np.sum(weights * _log_likelihood(self._params, x_u, t_x_u, age_u)))
        return self

    @classmethod
    def from_params(
        cls,
        r: float,
        alpha: float,
        s: float,
        beta: float,
        time_unit_days: float = 7.0,
    ) -> ParetoNbdModel:
        """A model with given parameters (e.g. published ones), usable without fitting."""
        return cls._with_params({"r": r, "alpha": alpha, "s": s, "beta": beta}, time_unit_days=time_unit_days)

    # -- scoring ---------------------------------------------------------------------------
    def score_samples(self, frequency, recency, T) -> np.ndarray:  # noqa: N803
        """Each customer's log-likelihood under the fitted parameters."""
        return _log_likelihood(self._params, *check_rfm(frequency, recency, T))

    def score(self, frequency, recency, T) -> float:  # noqa: N803
        """Mean log-likelihood per customer."""
        return float(np.mean(self.score_samples(frequency, recency, T)))

    def probability_alive(self, frequency, recency, T) -> np.ndarray:  # noqa: N803
        """P(still alive at T | x, t_x, T).

        Below 1 also for x = 0, and for a fixed history it falls as T grows.
        """
        x, t_x, age = check_rfm(frequency, recency, T)
        return _probability_alive(self._params, x, t_x, age)

    def expected_purchases(self, t, frequency, recency, T) -> np.ndarray:  # noqa: N803
        """E[purchases in (T, T + t] | x, t_x, T]; t in the model's time unit.

        = P(alive) * E[lambda | alive] * E[min(remaining lifetime, t) | alive], with lambda ~
        Gamma(r + x, alpha + T) and mu ~ Gamma(s, beta + T) given alive (the note's conditional
        expectation). t, frequency, recency and T broadcast against each other.
        """
        x, t_x, age = check_rfm(frequency, recency, T)
        return self.expected_purchases_given_alive(t, x, t_x, age) * _probability_alive(self._params, x, t_x, age)

    def expected_purchases_given_alive(self, t, frequency, recency, T) -> np.ndarray:  # noqa: N803
        """E[purchases in (T, T + t] | x, t_x, T, alive at T]: `expected_purchases` before the P(alive)
        factor, which a caller asking for several horizons computes once."""
        t = _check_horizon(t)
        x, _, age = check_rfm(frequency, recency, T)
        r, alpha, s, beta = self._params
        return (r + x) / (alpha + age) * _expected_lifetime_within(s, beta + age, t)

    def expected_purchases_new_customer(self, t) -> np.ndarray:
        """E[X(t)]: expected repeat purchases in the t units after a first purchase."""
        t = _check_horizon(t)
        r, alpha, s, beta = self._params
        return r / alpha * _expected_lifetime_within(s, beta, t)

    # -- the distribution of future purchases ----------------------------------------------
    def purchase_probabilities(self, t, frequency, recency, T, max_purchases: int) -> np.ndarray:  # noqa: N803
        """P(Y = k | x, t_x, T) for k = 0..max_purchases, Y = purchases in (T, T + t].

        Shape: the broadcast shape of (t, frequency, recency, T) plus a last axis of length
        max_purchases + 1. The probabilities of larger counts are left out, so a row sums to
        1 - P(Y > max_purchases); choose max_purchases so that this tail is negligible.

        Given the history, the customer is dead with probability 1 - P(alive) (then Y = 0);
        alive, lambda ~ Gamma(r + x, alpha + T) and mu ~ Gamma(s, beta + T) independently, and Y
        is Poisson(lambda * min(lifetime, t)) with the remaining lifetime Exp(mu). Both cases
        integrate lambda out in closed form (a negative binomial); the death time is integrated
        by Gauss-Legendre quadrature.
        """
        if int(max_purchases) != max_purchases or max_purchases < 0:
            raise ValueError(f"max_purchases must be a whole number >= 0, got {max_purchases}")
        t = _check_horizon(t)
        x, t_x, age = check_rfm(frequency, recency, T)
        t, x, t_x, age = np.broadcast_arrays(t, x, t_x, age)
        alive = _probability_alive(self._params, x, t_x, age).ravel()
        t, x, age = t.ravel(), x.ravel(), age.ravel()
        n_counts = int(max_purchases) + 1
        out = np.empty((len(x), n_counts))
        # in chunks: the quadrature holds customers x nodes x counts values at once
        for start in range(0, len(x), _CHUNK_ROWS):
            rows = slice(start, start + _CHUNK_ROWS)
            out[rows] = _purchase_probabilities(self._params, t[rows], x[rows], age[rows], alive[rows], n_counts)
        return out.reshape(*t_x.shape, n_counts)

    def sample_purchases(self, t, frequency, recency, T, size: int, random_state=None) -> np.ndarray:  # noqa: N803
        """`size` draws of the purchases in (T, T + t] per customer, from the distribution of
        `purchase_probabilities`; shape (size, *broadcast shape of the inputs)."""
        t = _check_horizon(t)
        x, t_x, age = check_rfm(frequency, recency, T)
        t, x, t_x, age = np.broadcast_arrays(t, x, t_x, age)
        rng = np.random.default_rng(random_state)
        r, alpha, s, beta = self._params
        shape = (int(size), *t.shape)
        alive = rng.random(shape) < _probability_alive(self._params, x, t_x, age)
        rate = rng.gamma(r + x, 1.0 / (alpha + age), shape)
        dropout = rng.gamma(s, 1.0 / (beta + age), shape)
        with np.errstate(divide="ignore"):  # a dropout rate that underflows to 0: never leaves
            active_time = np.minimum(rng.exponential(1.0, shape) / dropout, t)
        return np.where(alive, rng.poisson(rate * active_time), 0)


# ---------------------------------------------------------------------------
# The likelihood and the closed forms, on plain arrays.
# ---------------------------------------------------------------------------
def _log_likelihood(params, x, t_x, age) -> np.ndarray:
    """Per-customer log-likelihood: ln of G(r+x) alpha^r beta^s / G(r) * (alive + died)."""
    r, alpha, s, beta = params
    ln_alive, ln_died = _log_alive_and_died(params, x, t_x, age)
    common = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    return common + np.logaddexp(ln_alive, ln_died)


def _probability_alive(params, x, t_x, age) -> np.ndarray:
    ln_alive, ln_died = _log_alive_and_died(params, x, t_x, age)
    return np.exp(ln_alive - np.logaddexp(ln_alive, ln_died))


def _log_alive_and_died(params, x, t_x, age) -> tuple[np.ndarray, np.ndarray]:
    """ln of the likelihood's two bracket terms, without the common factor:

      alive = (alpha + T)^-(r+x) (beta + T)^-s
      died  = s * int_{t_x}^T f,  f(tau) = (alpha + tau)^-(r+x) (beta + tau)^-(s+1)
            = s * (tail(t_x) - tail(T)),  tail(t) = int_t^inf f

    died is 0 when t_x = T (the last purchase is at the end of the window).
    """
    r, alpha, s, beta = params
    ln_alive = -(r + x) * np.log(alpha + age) - s * np.log(beta + age)
    # both tails in one call: for one customer its fixed costs are most of the work
    x, t_x, age = np.broadcast_arrays(x, t_x, age)
    ln_tail_tx, ln_tail_age = _log_tail(params, np.stack([x, x]), np.stack([t_x, age]))
    # tail is decreasing in t; rounding may put tail(T) a hair above tail(t_x) when t_x ~ T
    gap = np.minimum(ln_tail_age - ln_tail_tx, 0.0)
    with np.errstate(divide="ignore"):
        ln_died = np.log(s) + ln_tail_tx + np.log(-np.expm1(gap))
    return ln_alive, ln_died


def _log_tail(params, x, t) -> np.ndarray:
    """ln int_t^inf (alpha + tau)^-(r+x) (beta + tau)^-(s+1) dtau, through 2F1.

    With m = r + s + x the note's A0 pieces are (k + t)^-m 2F1(m, b; m + 1; |alpha - beta| / (k + t)) / m
    with k = max(alpha, beta) and b = s + 1 if alpha >= beta, else b = r + x: the case split keeps
    the argument z in [0, 1). Euler's transformation 2F1(m, b; m + 1; z) = (1 - z)^(1 - b)
    2F1(1, m + 1 - b; m + 1; z) then gives

      alpha >= beta: (alpha + t)^-(r+x) (beta + t)^-s * 2F1(1, r + x; m + 1; z) / m
      alpha <  beta: (alpha + t)^(1-r-x) (beta + t)^-(s+1) * 2F1(1, s + 1; m + 1; z) / m

    whose powers are taken in logs (no overflow for heavy buyers or long windows) and whose 2F1
    is a series with first parameter 1 and positive terms.

    scipy's 2F1 is trusted only for z <= _Z_TRUSTED. Compared with mpmath (several thousand
    random cases, parameters up to 3e6) it is accurate to ~1e-13 there, but nearer z = 1 it
    returns inf, nan or plainly wrong values (errors of 1e-5 to 100%) when c - a - b is within
    ~1e-5 of an integer (r or s a whole number, as in a starting point) or when its parameters
    are in the hundreds (heavy buyers, or the large s and beta of a population that hardly drops
    out). Those rows, and any non-finite result, go to `_log_tail_by_quadrature`.
    """
    r, alpha, s, beta = params
    x, t = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(t, dtype=float))
    m = r + s + x
    if alpha >= beta:
        z = (alpha - beta) / (alpha + t)
        ln_power = -(r + x) * np.log(alpha + t) - s * np.log(beta + t)
        upper = r + x
    else:
        z = (beta - alpha) / (beta + t)
        ln_power = (1 - r - x) * np.log(alpha + t) - (s + 1) * np.log(beta + t)
        upper = s + 1
    trusted = z <= _Z_TRUSTED
    out = np.empty(x.shape)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        hyp = special.hyp2f1(1.0, np.broadcast_to(upper, x.shape)[trusted], m[trusted] + 1, z[trusted])
        out[trusted] = ln_power[trusted] + np.log(hyp) - np.log(m[trusted])
    todo = ~trusted | ~np.isfinite(out)
    if todo.any():
        # customers share (x, t) pairs (every x = 0 customer has t_x = 0): integrate each once. The
        # pairs as complex numbers, whose 1-D unique is far cheaper than a unique of rows (axis=0)
        pairs, inverse = np.unique(x[todo] + 1j * t[todo], return_inverse=True)
        out[todo] = _log_tail_by_quadrature(params, pairs.real, pairs.imag)[inverse.ravel()]
    return out


def _log_tail_by_quadrature(params, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """`_log_tail` without 2F1, for 1-D x and t: the integral written as an expectation over a
    Beta variable, integrated by the trapezoidal rule in its logit.

    With A = alpha + t, B = beta + t, c = r + x, d = s + 1, k = c + d - 1, writing the two
    factors as gamma mixtures of exponentials gives

      tail = A^(1-c) B^(1-d) / k * E[1 / (A (1-V) + B V)],  V ~ Beta(c, d),

    and with V = logistic(y), E * Beta(c, d) = int exp(phi(y)) dy over the real line, where
    phi(y) = c y - k softplus(y) - softplus(y - y0) - ln A, y0 = ln(A / B). phi is concave and
    exp(phi) analytic in the strip |Im y| < pi, so the trapezoidal rule converges geometrically:
    a step of min(1/4, width/2) (width from phi'' at the mode) over the window where phi is
    within _WINDOW_DROP of its peak gives ~1e-12 relative error (checked against mpmath).
    When c < 1/2 the left tail exp(c y) is too long to sample: S(y) = exp(c y - ln A -
    softplus(y - p)), p = min(0, y0), whose integral is exp(c p) pi / (A sin(pi c)), is
    subtracted first, and the remainder decays like exp((c + 1) y) on the left and exp(-(1-c) y)
    on the right.
    """
    r, alpha, s, beta = params
    log_a, log_b = np.log(alpha + t), np.log(beta + t)
    c, d = r + x, s + 1.0
    k = c + d - 1.0
    y0 = log_a - log_b

    def phi(y):
        return c * y - k * np.logaddexp(0.0, y) - np.logaddexp(0.0, y - y0) - log_a

    def slope(y):
        return c - k * special.expit(y) - special.expit(y - y0)

    def slope_and_curvature(y):
        near, far = special.expit(y), special.expit(y - y0)
        return c - k * near - far, -(k * near * (1 - near) + far * (1 - far))

    # the mode, where phi' = c - k expit(y) - expit(y - y0) = 0: at or below where the first term
    # alone reaches c, and where the larger of the two expits reaches c / (k + 1) or above. Between
    # those bounds, a few units apart, Newton steps from the upper one
    high = np.log(c / (d - 1.0))
    low = np.log(c / d) + np.minimum(y0, 0.0)
    mode = _newton_in_bracket(slope_and_curvature, high, low, high)
    peak = phi(mode)
    step = np.minimum(0.25, 0.5 / np.sqrt(-slope_and_curvature(mode)[1]))
    # the window edges, where phi = peak - drop; beyond y_left phi' >= c/2, beyond y_right phi' <= -d/2
    drop = _WINDOW_DROP
    y_left = np.minimum(np.log(c / (4 * (c + d))), y0 + np.log(c / 4))
    y_right = np.maximum(y0 + np.log(3.0), np.log(4 * k))
    far_left = mode - np.maximum(0.0, mode - y_left) - 2 * (drop + 1) / c - 1
    far_right = mode + np.maximum(0.0, y_right - mode) + 2 * (drop + 1) / d + 1
    # the window's edges need no precision (phi is 42 below its peak there): Newton from outside,
    # where phi is nearly linear, reaches them in a few steps (both edges in one go)
    left, right = _newton_from_outside(phi, slope, peak - drop, np.stack([far_left, far_right]))
    subtract = c < 0.5
    pivot = np.minimum(0.0, y0)
    left = np.where(subtract, np.minimum(np.minimum(pivot, mode), y0) - 60.0, left)
    right = np.where(subtract, np.maximum(np.maximum(0.0, y0), mode) + 45.0 / (1.0 - np.minimum(c, 0.5)) + 10.0, right)

    nodes = np.ceil((right - left) / step).astype(int) + 1
    log_integral = np.empty(len(x))
    order = np.argsort(nodes, kind="stable")
    start = 0
    while start < len(order):
        # rows with similar node counts together, each batch within _QUADRATURE_CELLS values
        stop = start + 1
        while (
            stop < len(order)
            and nodes[order[stop]] <= 2 * nodes[order[start]]
            and nodes[order[stop]] * (stop - start + 1) <= _QUADRATURE_CELLS
        ):
            stop += 1
        rows = order[start:stop]
        n_nodes = int(nodes[rows].max())
        width = (right - left)[rows]
        y = left[rows, None] + width[:, None] * np.linspace(0.0, 1.0, n_nodes)[None, :]
        h = width / (n_nodes - 1)
        trapezoid = np.ones(n_nodes)
        trapezoid[[0, -1]] = 0.5
        c_, k_, y0_, log_a_ = c[rows, None], k[rows, None], y0[rows, None], log_a[rows, None]
        log_f = c_ * y - k_ * np.logaddexp(0.0, y) - np.logaddexp(0.0, y - y0_) - log_a_
        value = peak[rows] + np.log(h * np.sum(trapezoid * np.exp(log_f - peak[rows, None]), axis=1))
        if subtract[rows].any():
            pivot_ = pivot[rows, None]
            log_s = c_ * y - log_a_ - np.logaddexp(0.0, y - pivot_)
            gap = -k_ * np.logaddexp(0.0, y) - np.logaddexp(0.0, y - y0_) + np.logaddexp(0.0, y - pivot_)
            scale = c_ * pivot_ - log_a_  # ln of S's size at its pivot
            remainder = h * np.sum(trapezoid * np.exp(log_s - scale) * np.expm1(gap), axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                subtracted = scale[:, 0] + np.log(np.pi / np.sin(np.pi * c[rows]) + remainder)
            value = np.where(subtract[rows], subtracted, value)
        log_integral[rows] = value
        start = stop
    return (1 - c) * log_a + (1 - d) * log_b - np.log(k) + log_integral - special.betaln(c, d)


def _newton_in_bracket(value_and_derivative, start, low, high) -> np.ndarray:
    """Where a decreasing function crosses 0 in [low, high], elementwise: Newton steps, a halving of
    the bracket wherever a step would leave it (so it converges whatever the start).
    `value_and_derivative(y)` gives the function and its derivative at y."""
    y = start
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(_ROOT_STEPS):
            value, derivative = value_and_derivative(y)
            above = value > 0
            low, high = np.where(above, y, low), np.where(above, high, y)
            newton = y - value / derivative
            following = np.where((newton >= low) & (newton <= high), newton, 0.5 * (low + high))
            if not np.any(np.abs(following - y) > _ROOT_TOLERANCE):  # NaN rows (bad parameters) count as done
                return following
            y = following
    return y


def _newton_from_outside(concave, derivative, level: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Where a concave function rises (or falls) to `level`, elementwise, from a `start` below it on
    that side of its peak: Newton steps, which from there approach the crossing without passing it
    (the tangent lies above a concave function) and, the function being nearly linear far from its
    peak, take few steps."""
    y = start
    for _ in range(_ROOT_STEPS):
        step = (level - concave(y)) / derivative(y)
        y = y + step
        if not np.any(np.abs(step) > _ROOT_TOLERANCE):
            break
    return y


def _purchase_probabilities(params, t, x, age, alive, n_counts: int) -> np.ndarray:
    """`ParetoNbdModel.purchase_probabilities` on 1-D arrays, P(alive) given."""
    r, alpha, s, beta = params
    shape_r = (r + x)[:, None, None]
    scale_a = (alpha + age)[:, None, None]
    scale_b = (beta + age)[:, None, None]
    horizon = t[:, None, None]
    k = np.arange(n_counts, dtype=float)[None, None, :]

    def log_nbd(tau):
        """ln P(k purchases in a time tau while alive), lambda ~ Gamma(r + x, alpha + T)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            out = (
                special.gammaln(shape_r + k)
                - special.gammaln(shape_r)
                - special.gammaln(k + 1)
                - shape_r * np.log1p(tau / scale_a)
                + special.xlogy(k, tau / (scale_a + tau))
            )
        return np.where((tau == 0) & (k > 0), -np.inf, out)

    # alive past T + t: survival E[exp(-mu t)] = (beta' / (beta' + t))^s, beta' = beta + T
    survived = np.exp(-s * np.log1p(horizon / scale_b) + log_nbd(horizon))[:, 0, :]
    # dead at T + tau, 0 < tau < t: density s beta'^s / (beta' + tau)^(s + 1). The death time
    # is integrated in w = ln(1 + tau / c), c = min(alpha', beta'): the integrand's
    # singularities at tau = -alpha', -beta' move off to Im w = pi or -infinity, so
    # Gauss-Legendre converges fast even for horizons much longer than alpha' or beta'.
    nodes, node_weights = np.polynomial.legendre.leggauss(_QUADRATURE_NODES)
    c = np.minimum(scale_a, scale_b)
    w_end = np.log1p(horizon / c)
    w = (nodes[None, :, None] + 1) / 2 * w_end
    tau = c * np.expm1(w)
    log_density = np.log(s) - s * np.log1p(tau / scale_b) - np.log(scale_b + tau)
    jacobian = c * np.exp(w) * w_end / 2
    died = np.sum(node_weights[None, :, None] * jacobian * np.exp(log_density + log_nbd(tau)), axis=1)
    probabilities = alive[:, None] * (survived + died)
    probabilities[:, 0] += 1 - alive
    return probabilities


def _expected_lifetime_within(s, scale, t) -> np.ndarray:
    """E[min(lifetime, t)] for a lifetime Exp(mu), mu ~ Gamma(s, scale):

        scale / (s - 1) * (1 - (scale / (scale + t))^(s - 1)),  scale * ln(1 + t / scale) at s = 1,

    written with exprel so that s near 1 needs no special case.
    """
    log_ratio = np.log1p(t / scale)
    return scale * log_ratio * special.exprel(-(s - 1) * log_ratio)


def _check_horizon(t) -> np.ndarray:
    t = np.asarray(t, dtype=float)
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("t must be finite and >= 0")
    return t


def _starting_points(mean_x: float, mean_age: float) -> list[np.ndarray]:
    """Starting values from the data's scale: the purchase rate sets alpha (E[lambda] = r/alpha)
    and the observation window sets beta (E[mu] = s/beta, lifetimes of the order of the window)."""
    rate = max(mean_x, 0.1) / max(mean_age, 1e-6)
    window = max(mean_age, 1e-6)
    return [
        np.array([1.0, 1.0 / rate, 1.0, window]),
        np.array([0.5, 0.5 / rate, 0.5, 0.5 * window]),
        np.array([2.0, 2.0 / rate, 2.0, 4.0 * window]),
    ]
