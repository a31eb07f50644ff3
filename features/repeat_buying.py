"""Repeat buying: each buyer's RFM summary and the BG/NBD closed forms the features evaluate.

The BG/NBD model (Fader, Hardie & Lee 2005, "Counting your customers the easy way") describes a
customer whose first purchase was at time 0 and who is watched until T: while alive, purchases
follow a Poisson process of rate lambda ~ Gamma(r, alpha); after each repeat purchase the customer
drops out for good with probability p ~ Beta(a, b). Its parameters are fitted by maximum likelihood
in `models.bgnbd`, once per cutoff, and handed to the feature build through the reference tables;
this module holds what a feature needs per customer, given the parameters:

- `summarise_purchase_days` / `rfm_summary`: the model's inputs in its time unit (weeks),
  frequency x = repeat purchases (purchase days after the first), recency t_x = age at the last
  purchase, T = age at the end of the observation window;
- `probability_alive` (paper eq. 8) and `expected_purchases` (eq. 10), the closed forms.

The summary follows the CLV convention of lifetimes and pymc-marketing (time counted in whole
days): purchase lines (quantity > 0) strictly before `as_of`; all purchases of one calendar day
are one purchase; a customer's birth is their first purchase day; t_x = last purchase day - first
purchase day; T = last observed day - first purchase day, where the last observed day is the day
before a midnight `as_of` (pymc-marketing's `observation_period_end`). So at as_of = 1997-10-01 a
customer first seen on 1997-01-01 has T = 272 days = 38.86 weeks, as in the paper's data. On the
CDNOW sample this convention reproduces the published fit to every printed digit (log-likelihood
-9582.43; see tests/test_bgnbd.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import linalg, special

from features import schema as s
from features.records import max_by, min_by, pair_counts, sum_by

# The time unit of the fitted parameters and of the summary, in days.
WEEK_DAYS = 7.0

# The RFM summary's columns. They are the model's inputs, in its time unit, not contract or
# feature columns, so they live here. "recency" is the BG/NBD meaning (age at the last
# purchase, larger = more recent), the opposite of the feature days_since_last_purchase.
FREQUENCY = "frequency"
RECENCY = "recency"
AGE = "T"  # the paper's T: age at the end of the observation window
# The Gamma-Gamma spend model's input: the mean value of a customer's repeat purchase days (each
# day's lines summed, the first purchase day left out, so it averages exactly `frequency` days).
MONETARY = "monetary_value"

# Near a = 1 the conditional expectation is 0/0; it is evaluated at a = 1 +- this and averaged.
_A_NUDGE = 1e-5


class BgNbdParameters(NamedTuple):
    """Fitted BG/NBD parameters, in weekly time units."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class PurchaseDaySummary:
    """The RFM summary of every buyer, as arrays aligned with `buyers` (customer codes)."""

    buyers: np.ndarray
    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray  # noqa: N815 -- the paper's name
    monetary: np.ndarray | None = None  # mean value per repeat purchase day (NaN without one), when asked


def summarise_purchase_days(
    code: np.ndarray,
    day: np.ndarray,
    as_of: pd.Timestamp,
    n: int,
    time_unit_days: float = WEEK_DAYS,
    value: np.ndarray | None = None,
) -> PurchaseDaySummary:
    """The RFM summary of each customer code with a purchase, from purchase lines' calendar days.

    `code` and `day` (days since 1970-01-01) describe purchase lines strictly before as_of.
    Purchases on one calendar day count once; frequency = purchase days - 1; recency = last -
    first purchase day; T = last observed day (the day before a midnight as_of) - first day. With
    the lines' `value`, also the monetary value: the mean of the repeat purchase days' summed values.
    """
    if not time_unit_days > 0:
        raise ValueError(f"time_unit_days must be > 0, got {time_unit_days}")
    purchase_code, purchase_day = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if len(day):
        earliest = day.min()
        purchase_code, purchase_day, _ = pair_counts(code, day - earliest)
        purchase_day = purchase_day + earliest
    buyers = np.unique(purchase_code)
    first = min_by(purchase_code, purchase_day.astype(float), n)[buyers]
    last = max_by(purchase_code, purchase_day.astype(float), n)[buyers]
    last_observed = (as_of - pd.Timedelta(nanoseconds=1)).to_datetime64().astype("datetime64[D]").astype(np.int64)
    frequency = sum_by(purchase_code, n)[buyers] - 1
    return PurchaseDaySummary(
        buyers=buyers,
        frequency=frequency,
        recency=(last - first) / time_unit_days,
        T=(last_observed - first) / time_unit_days,
        monetary=None if value is None else _repeat_day_mean_value(code, day, value, n, buyers, frequency),
    )


def _repeat_day_mean_value(
    code: np.ndarray, day: np.ndarray, value: np.ndarray, n: int, buyers: np.ndarray, frequency: np.ndarray
) -> np.ndarray:
    """Per buyer, the mean summed value of their purchase days after the first (NaN with none)."""
    if not len(day):
        return np.zeros(0)
    width = int(day.max() - day.min()) + 1
    keys, position = np.unique(code * width + (day - day.min()), return_inverse=True)  # by code, then day
    day_code = keys // width
    day_value = np.bincount(position.ravel(), weights=value, minlength=len(keys))
    repeat = np.r_[False, day_code[1:] == day_code[:-1]]  # not the first purchase day of its customer
    repeat_value = sum_by(day_code[repeat], n, day_value[repeat])[buyers]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(frequency > 0, repeat_value / frequency, np.nan)


def rfm_summary(transactions: pd.DataFrame, as_of, time_unit_days: float = WEEK_DAYS) -> pd.DataFrame:
    """frequency, recency, T and monetary_value per customer from purchase lines strictly before as_of.

    Indexed by customer_id (sorted), one row per customer with a purchase, in units of
    `time_unit_days` days (see the module docstring for the convention). Raises ValueError when
    there is no purchase before as_of.
    """
    summary = summarise_customers(transactions, as_of, time_unit_days)
    if summary.empty:
        raise ValueError(f"no purchase before as_of={pd.Timestamp(as_of)}: the RFM summary would be empty")
    return summary


def summarise_customers(transactions: pd.DataFrame, as_of, time_unit_days: float = WEEK_DAYS) -> pd.DataFrame:
    """`rfm_summary`, empty (not an error) when nobody bought before as_of."""
    as_of = pd.Timestamp(as_of)
    bought = ((transactions[s.TIMESTAMP] < as_of) & s.is_purchase(transactions[s.QUANTITY])).to_numpy()
    purchases = transactions.loc[bought]
    codes, customer_ids = pd.factorize(purchases[s.CUSTOMER_ID].astype("str"), sort=True)
    days = purchases[s.TIMESTAMP].to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64)
    value = s.line_value(purchases[s.QUANTITY].to_numpy(dtype=float), purchases[s.UNIT_PRICE].to_numpy(dtype=float))
    summary = summarise_purchase_days(codes.astype(np.int64), days, as_of, len(customer_ids), time_unit_days, value)
    return pd.DataFrame(
        {FREQUENCY: summary.frequency, RECENCY: summary.recency, AGE: summary.T, MONETARY: summary.monetary},
        index=pd.Index(np.asarray(customer_ids, dtype=object)[summary.buyers], dtype="str", name=s.CUSTOMER_ID),
    )


# ---------------------------------------------------------------------------
# The closed forms, given parameters (r, alpha, a, b) in the summary's time unit.
# ---------------------------------------------------------------------------
def check_rfm(frequency, recency, T) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # noqa: N803
    """The summary as broadcast float arrays; ValueError when it cannot be a BG/NBD summary."""
    x, t_x, age = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (frequency, recency, T)))
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(t_x)) and np.all(np.isfinite(age))):
        raise ValueError("frequency, recency and T must be finite")
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise ValueError("frequency must be a whole number >= 0")
    if np.any(t_x < 0) or np.any(t_x > age):
        raise ValueError("recency must satisfy 0 <= recency <= T")
    return x, t_x, age


def _check_horizon(t) -> np.ndarray:
    t = np.asarray(t, dtype=float)
    if np.any(t < 0) or not np.all(np.isfinite(t)):
        raise ValueError("t must be finite and >= 0")
    return t


def probability_alive(params, frequency, recency, T) -> np.ndarray:  # noqa: N803
    """P(still active at T | x, t_x, T) (paper eq. 8). It is 1 for every customer with x = 0:
    in BG/NBD a customer can only drop out right after a repeat purchase."""
    x, t_x, age = check_rfm(frequency, recency, T)
    return 1.0 / (1.0 + _odds_dead(params, x, t_x, age))


def expected_purchases(params, t, frequency, recency, T) -> np.ndarray:  # noqa: N803
    """E[purchases in (T, T + t] | x, t_x, T] (paper eq. 10); t in the summary's time unit.

    t, frequency, recency and T broadcast against each other.
    """
    x, t_x, age = check_rfm(frequency, recency, T)
    alive = 1.0 / (1.0 + _odds_dead(params, x, t_x, age))
    # eq. 10 = E[purchases | alive at T] * P(alive at T)
    return expected_purchases_given_alive(params, t, x, t_x, age) * alive


def expected_purchases_given_alive(params, t, frequency, recency, T) -> np.ndarray:  # noqa: N803
    """E[purchases in (T, T + t] | x, t_x, T, alive at T] (eq. 10 before its P(alive) factor)."""
    t = _check_horizon(t)
    x, _, age = check_rfm(frequency, recency, T)
    return np.maximum(_expected_given_alive(*params, t, x, age), 0.0)


def expected_purchases_new_customer(params, t) -> np.ndarray:
    """E[X(t)]: expected repeat purchases in the t units after a first purchase (eq. 7)."""
    t = _check_horizon(t)
    zeros = np.zeros_like(t)
    return np.maximum(_expected_given_alive(*params, t, zeros, zeros), 0.0)


def score_buyers(
    params: BgNbdParameters | None,
    summary: PurchaseDaySummary,
    horizon: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(P(alive), expected purchases in `horizon` time units) for the summary's buyers.

    Without parameters (too little data to fit), every buyer gets P(alive) 1 and the
    expectation NaN.
    """
    n = len(summary.buyers)
    if params is None or n == 0:
        return np.ones(n), np.full(n, np.nan)
    alive = probability_alive(params, summary.frequency, summary.recency, summary.T)
    # eq. 10 as `expected_purchases` computes it, with P(alive) computed once
    given_alive = expected_purchases_given_alive(params, horizon, summary.frequency, summary.recency, summary.T)
    return alive, given_alive * alive


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
