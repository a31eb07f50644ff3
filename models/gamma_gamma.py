"""The Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005, "RFM and CLV: using
iso-value curves for customer base analysis"; Fader & Hardie 2013, "The Gamma-Gamma model of
monetary value"), fitted by maximum likelihood with numpy and scipy only, and the small step
that turns expected purchases into expected spend.

Each of a customer's transactions is worth z ~ Gamma(p, nu) (shape p, rate nu), so the customer's
mean spend per transaction is M = p / nu; across customers nu ~ Gamma(q, gamma). Spend is assumed
independent of the transaction process, so any count model (`models.bgnbd`, `models.pareto_nbd`)
can be combined with it. The model sees, per customer, x = the number of transactions whose
values are averaged (the repeat purchases, x > 0) and m_x = their mean value. Given (x, m_x), nu
is Gamma(q + p x, gamma + x m_x), so the customer's mean spend M is inverse-gamma with shape
q + p x and scale p (gamma + x m_x): its mean is a weighted average of the population mean
p gamma / (q - 1) and m_x, with weight p x / (p x + q - 1) on m_x.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import special, stats

from models.likelihood import MaximumLikelihoodModel, minimise_from_starts


class GammaGammaParameters(NamedTuple):
    """Gamma-Gamma parameters: spend per transaction ~ Gamma(p, nu), nu ~ Gamma(q, gamma)."""

    p: float
    q: float
    gamma: float


PARAMETER_NAMES = GammaGammaParameters._fields
# log-parameter bounds of the optimiser, as in models.bgnbd
DAYS_PER_YEAR = 365.25


class GammaGammaModel(MaximumLikelihoodModel):
    """Gamma-Gamma fitted by maximum likelihood, scikit-learn style.

    penalizer: weight of an L2 penalty on (p, q, gamma) added to the mean negative
        log-likelihood per customer (0 = plain maximum likelihood).

    Fitted attributes: p_, q_, gamma_, log_likelihood_ (total, unpenalised), n_customers_,
    converged_.

    Inputs: frequency = the number of transactions behind the average (whole, >= 1 to fit;
    0 is allowed when predicting and gives the population's prior), monetary_value = their
    average value (> 0 when frequency > 0). In the usual RFM convention these are the repeat
    purchases (all purchases after the first) and their mean value.
    """

    PARAMETERS = PARAMETER_NAMES

    def __init__(self, penalizer: float = 0.0):
        self.penalizer = penalizer

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, frequency, monetary_value) -> GammaGammaModel:
        """Maximise the likelihood of each customer's average spend over p, q, gamma > 0.

        Every customer must have frequency >= 1 (select repeat buyers first).
        """
        x, m_x = check_spend(frequency, monetary_value)
        x, m_x = x.ravel(), m_x.ravel()
        if len(x) == 0:
            raise ValueError("cannot fit Gamma-Gamma on zero customers")
        if np.any(x == 0):
            raise ValueError("frequency must be >= 1 for every customer to fit Gamma-Gamma: select repeat buyers first")
        if self.penalizer < 0:
            raise ValueError(f"penalizer must be >= 0, got {self.penalizer}")
        n = float(len(x))

        def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            params = np.exp(log_params)
            ll, grad = _log_likelihood_and_gradient(params, x, m_x)
            value = -np.sum(ll) / n + self.penalizer * np.sum(params**2)
            # chain rule to log-parameters: d/dlog(theta) = theta * d/dtheta
            gradient = -np.array([np.sum(g) for g in grad]) / n * params + 2.0 * self.penalizer * params**2
            return float(value), gradient

        best = minimise_from_starts(objective, _starting_points(m_x), {"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-10})
        self._keep(best.x, n, best.success)
        self.log_likelihood_ = float(np.sum(_log_likelihood_and_gradient(self._params, x, m_x, gradient=False)[0]))
        return self

    @classmethod
    def from_params(cls, p: float, q: float, gamma: float) -> GammaGammaModel:
        """A model with given parameters (e.g. published ones), usable without fitting."""
        return cls._with_params({"p": p, "q": q, "gamma": gamma})

    # -- scoring ---------------------------------------------------------------------------
    def score_samples(self, frequency, monetary_value) -> np.ndarray:
        """Each customer's log-likelihood (the density of the observed average, x >= 1)."""
        x, m_x = check_spend(frequency, monetary_value)
        if np.any(x == 0):
            raise ValueError("frequency must be >= 1 to score an observed average spend")
        return _log_likelihood_and_gradient(self._params, x, m_x, gradient=False)[0]

    def population_average_spend(self) -> float:
        """E[M] = p gamma / (q - 1) for a customer with no spend history (inf when q <= 1)."""
        p, q, gamma = self._params
        return float(p * gamma / (q - 1)) if q > 1 else float("inf")

    def conditional_expected_average_spend(self, frequency, monetary_value) -> np.ndarray:
        """E[M | x, m_x] = p (gamma + x m_x) / (p x + q - 1): the customer's expected spend per
        transaction. With x = 0 it is the population mean.

        Finite only while q + p x > 1 (inf otherwise: the posterior mean does not exist).
        """
        x, m_x = check_spend(frequency, monetary_value)
        shape, scale = self._posterior(x, m_x)
        with np.errstate(divide="ignore"):
            return np.where(shape > 1, scale / np.maximum(shape - 1, 0), np.inf)

    def conditional_average_spend_variance(self, frequency, monetary_value) -> np.ndarray:
        """Var[M | x, m_x] = E[M | x, m_x]^2 / (q + p x - 2): the spread of the customer's mean
        spend per transaction given their history (inf where q + p x <= 2).

        This is the uncertainty about the customer's long-run mean M, not the spread of the
        average of a finite number of future transactions (which adds each transaction's own
        Gamma(p, nu) noise, variance M^2 / p per transaction).
        """
        x, m_x = check_spend(frequency, monetary_value)
        shape, scale = self._posterior(x, m_x)
        with np.errstate(divide="ignore", invalid="ignore"):
            variance = scale**2 / ((shape - 1) ** 2 * (shape - 2))
        return np.where(shape > 2, variance, np.inf)

    def conditional_average_spend_distribution(self, frequency, monetary_value):
        """The posterior of the customer's mean spend per transaction M given (x, m_x), as a
        frozen scipy.stats.invgamma (shape q + p x, scale p (gamma + x m_x)), vectorised over
        customers: `.ppf([0.05, 0.95])`-style quantiles, `.rvs` draws, `.mean()`, `.var()`.
        """
        x, m_x = check_spend(frequency, monetary_value)
        shape, scale = self._posterior(x, m_x)
        return stats.invgamma(shape, scale=scale)

    def _posterior(self, x: np.ndarray, m_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shape, scale) of the inverse-gamma posterior of M = p / nu."""
        p, q, gamma = self._params
        # x = 0 carries no spend information, whatever monetary_value says
        total = np.where(x > 0, x * m_x, 0.0)
        return q + p * x, p * (gamma + total)


def estimate_spend(
    expected_purchases,
    average_spend,
    period_end_days=None,
    annual_discount_rate: float = 0.0,
) -> np.ndarray:
    """Expected spend = expected purchases x expected spend per purchase, optionally discounted.

    Any transaction-count model supplies `expected_purchases`; `average_spend` is e.g.
    `GammaGammaModel.conditional_expected_average_spend` (spend is independent of the number
    of purchases in Gamma-Gamma, so the expectation of the product is the product).

    - Undiscounted (the default): expected_purchases is one number per customer over the
      horizon, shape (n,), and the answer is expected_purchases * average_spend.
    - Discounted: expected_purchases holds cumulative expected purchases at the end of each
      period, shape (n, n_periods), with `period_end_days` (increasing, > 0, in days from the
      cutoff) giving those ends, e.g. from `model.expected_purchases(end_days / time_unit_days, ...)`
      for each end. Each period's increment is discounted from its end, by
      (1 + annual_discount_rate)^(end_days / 365.25) (the lifetimes convention); without a
      discount the answer equals the undiscounted one at the last period end.
    """
    purchases = np.asarray(expected_purchases, dtype=float)
    spend = np.asarray(average_spend, dtype=float)
    if not np.all(np.isfinite(purchases)) or np.any(purchases < 0):
        raise ValueError("expected_purchases must be finite and >= 0")
    if np.any(np.isnan(spend)) or np.any(spend < 0):
        raise ValueError("average_spend must be >= 0 (not NaN)")
    if not annual_discount_rate >= 0:
        raise ValueError(f"annual_discount_rate must be >= 0, got {annual_discount_rate}")
    if period_end_days is None:
        if annual_discount_rate > 0:
            raise ValueError("a discount needs period_end_days and cumulative expected_purchases per period")
        return purchases * spend
    ends = np.asarray(period_end_days, dtype=float)
    if ends.ndim != 1 or len(ends) == 0 or np.any(ends <= 0) or np.any(np.diff(ends) <= 0):
        raise ValueError("period_end_days must be a non-empty, increasing sequence of days > 0")
    if purchases.ndim == 0 or purchases.shape[-1] != len(ends):
        raise ValueError(
            f"expected_purchases must have one column per period end ({len(ends)}), got shape {purchases.shape}"
        )
    if np.any(np.diff(purchases, axis=-1) < 0):
        raise ValueError("expected_purchases must be cumulative: non-decreasing across periods")
    increments = np.diff(purchases, axis=-1, prepend=0.0)
    discount = (1.0 + annual_discount_rate) ** (-ends / DAYS_PER_YEAR)
    return np.sum(increments * discount, axis=-1) * spend


def check_spend(frequency, monetary_value) -> tuple[np.ndarray, np.ndarray]:
    """(frequency, monetary_value) as broadcast float arrays; ValueError naming the bad input."""
    x, m_x = np.broadcast_arrays(np.asarray(frequency, dtype=float), np.asarray(monetary_value, dtype=float))
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(m_x))):
        raise ValueError("frequency and monetary_value must be finite")
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise ValueError("frequency must be a whole number >= 0")
    if np.any((x > 0) & (m_x <= 0)):
        raise ValueError("monetary_value must be > 0 wherever frequency > 0")
    return x, m_x


# ---------------------------------------------------------------------------
# The likelihood, on plain arrays.
# ---------------------------------------------------------------------------
def _log_likelihood_and_gradient(params, x, m_x, gradient: bool = True):
    """Per-customer log-density of the average m_x of x Gamma(p, nu) values, nu ~ Gamma(q, gamma)
    (Fader & Hardie 2013): x m_x | nu ~ Gamma(p x, nu), nu integrated out,

      ln f = lnG(p x + q) - lnG(p x) - lnG(q) + q ln(gamma) + (p x - 1) ln(m_x) + p x ln(x)
             - (p x + q) ln(gamma + x m_x),

    and its gradient in (p, q, gamma), one array per parameter.
    """
    p, q, gamma = params
    px = p * x
    log_total = np.log(gamma + x * m_x)
    ll = (
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * np.log(m_x)
        + px * np.log(x)
        - (px + q) * log_total
    )
    if not gradient:
        return ll, None
    psi_all = special.digamma(px + q)
    d_p = x * (psi_all - special.digamma(px) + np.log(x * m_x) - log_total)
    d_q = psi_all - special.digamma(q) + np.log(gamma) - log_total
    d_gamma = q / gamma - (px + q) / (gamma + x * m_x)
    return ll, (d_p, d_q, d_gamma)


def _starting_points(m_x: np.ndarray) -> list[np.ndarray]:
    """Starting values from the data's scale: E[M] = p gamma / (q - 1) near the mean average."""
    mean = max(float(np.mean(m_x)), 1e-6)
    return [
        np.array([1.0, 2.0, mean]),
        np.array([5.0, 3.0, 0.4 * mean]),
        np.array([0.5, 1.5, 0.25 * mean]),
    ]
