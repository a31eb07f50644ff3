"""What a customer is worth over a horizon and when they buy next, from their RFM summary.

`BuyTillYouDieValue` joins a transaction-count model (BG/NBD or Pareto/NBD) with Gamma-Gamma spend
per order. From a customer's summary (`features.repeat_buying.rfm_summary`: frequency, recency, T
in weeks, monetary_value) at a cutoff it predicts, over `ValueConfig.horizon_days`:

- expected_orders: the count model's expected purchases in the horizon;
- clv: expected spend, expected_orders x the customer's expected spend per order (undiscounted
  unless `discount_rate_annual` is set; then each week's purchases are discounted from its end);
- clv_low, clv_high: the central `interval` (80%) of the predictive distribution of spend, drawn by
  Monte Carlo: whether the customer is still active, their purchase rate (and dropout), the number
  of purchases in the horizon, their mean spend per order from its posterior, and the orders' sum.
  Where spending nothing is more likely than the lower tail, the interval is [0, the `interval`
  quantile], so that it still holds `interval` of such customers. A customer who never repeated
  gets a wide interval: little is known about them;
- p_active: the probability the customer is still a customer (P(alive));
- next_purchase_days, with next_purchase_low_days and next_purchase_high_days: the median and the
  central interval of the time to their next order given they are still active. Given alive,
  the purchase rate has the posterior Gamma(r + x, alpha + T), so the waiting time is Lomax:
  P(wait > s) = ((alpha + T) / (alpha + T + s))^(r + x), whose quantiles are closed forms.

`SpendRateBaseline` is the yardstick every model must beat: the customer's past spend and orders per
day since their first purchase, times the horizon (no interval: it has no distribution).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import schema as s
from features.repeat_buying import AGE, FREQUENCY, MONETARY, RECENCY, WEEK_DAYS
from models.bgnbd import BetaGeoModel
from models.gamma_gamma import DAYS_PER_YEAR, GammaGammaModel
from models.pareto_nbd import ParetoNbdModel

BGNBD = "bgnbd"
PARETO_NBD = "pareto_nbd"
COUNT_MODELS = {BGNBD: BetaGeoModel, PARETO_NBD: ParetoNbdModel}
# Customers are drawn this many at a time: draws x customers floats stay a few tens of MB.
_CHUNK_CUSTOMERS = 20_000


@dataclass(frozen=True)
class ValueConfig:
    """How far ahead, how wide an interval, how many Monte Carlo draws."""

    horizon_days: int = 365
    interval: float = 0.8
    draws: int = 400
    discount_rate_annual: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.horizon_days > 0:
            raise ValueError(f"horizon_days must be > 0, got {self.horizon_days}")
        if not 0 < self.interval < 1:
            raise ValueError(f"interval must be in (0, 1), got {self.interval}")
        if self.draws < 10:
            raise ValueError(f"draws must be at least 10, got {self.draws}")
        if not self.discount_rate_annual >= 0:
            raise ValueError(f"discount_rate_annual must be >= 0, got {self.discount_rate_annual}")

    @property
    def quantiles(self) -> tuple[float, float, float]:
        tail = (1 - self.interval) / 2
        return tail, 0.5, 1 - tail


def check_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary's model columns, or ValueError naming the missing ones."""
    missing = [column for column in (FREQUENCY, RECENCY, AGE, MONETARY) if column not in summary]
    if missing:
        raise ValueError(f"the RFM summary has no column(s) {', '.join(missing)} (see features.repeat_buying)")
    return summary


def summary_arrays(summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T, monetary) of a checked summary, monetary 0 where there is no repeat purchase."""
    summary = check_summary(summary)
    x, t_x, age = (summary[column].to_numpy(dtype=float) for column in (FREQUENCY, RECENCY, AGE))
    return x, t_x, age, np.where(x > 0, summary[MONETARY].to_numpy(dtype=float), 0.0)


class BuyTillYouDieValue:
    """A count model (`count_model`: "bgnbd" or "pareto_nbd") x Gamma-Gamma, fitted on one summary."""

    def __init__(self, count_model: str = PARETO_NBD, penalizer: float = 0.0) -> None:
        if count_model not in COUNT_MODELS:
            raise ValueError(f"count_model must be one of {', '.join(COUNT_MODELS)}, got {count_model!r}")
        self.count_model = count_model
        self.penalizer = penalizer

    def fit(self, summary: pd.DataFrame) -> BuyTillYouDieValue:
        """Fit the count model on every customer and Gamma-Gamma on the repeat buyers."""
        summary = check_summary(summary)
        self.counts_ = COUNT_MODELS[self.count_model](penalizer=self.penalizer).fit(
            summary[FREQUENCY], summary[RECENCY], summary[AGE]
        )
        repeat = summary[summary[FREQUENCY] > 0]
        self.spend_ = GammaGammaModel(penalizer=self.penalizer).fit(repeat[FREQUENCY], repeat[MONETARY])
        return self

    def predict(
        self, summary: pd.DataFrame, config: ValueConfig = ValueConfig(), intervals: bool = True
    ) -> pd.DataFrame:
        """VALUE_COLUMNS per customer of `summary` (same index). `intervals=False` leaves clv_low and
        clv_high empty and skips their Monte Carlo draws, the costly part."""
        return pd.DataFrame(self.predict_arrays(*summary_arrays(summary), config, intervals), index=summary.index)

    def predict_arrays(
        self, x, t_x, age, monetary, config: ValueConfig = ValueConfig(), intervals: bool = True
    ) -> dict:
        """`predict` on the summary's arrays (monetary 0 where x = 0): VALUE_COLUMNS -> array. The
        service's path: one customer at a time, no DataFrame."""
        horizon = config.horizon_days / WEEK_DAYS
        # P(alive) once: for Pareto/NBD it can take an integral per customer
        p_active = self.counts_.probability_alive(x, t_x, age)
        orders = self.counts_.expected_purchases_given_alive(horizon, x, t_x, age) * p_active
        spend_per_order = self.spend_.conditional_expected_average_spend(x, monetary)
        clv = orders * spend_per_order * self._discount_factor(x, t_x, age, orders, config)
        if intervals:
            low, high = self._spend_interval(x, t_x, age, monetary, p_active, config)
        else:
            low, high = clv * np.nan, clv * np.nan
        wait = [self._wait_quantile(x, age, q) * WEEK_DAYS for q in config.quantiles]
        return {
            s.EXPECTED_ORDERS: orders,
            s.CLV: clv,
            s.CLV_LOW: np.minimum(low, clv),
            s.CLV_HIGH: np.maximum(high, clv),
            s.P_ACTIVE: p_active,
            s.NEXT_PURCHASE_DAYS: wait[1],
            s.NEXT_PURCHASE_LOW_DAYS: wait[0],
            s.NEXT_PURCHASE_HIGH_DAYS: wait[2],
        }

    # -- the pieces ---------------------------------------------------------------------------
    def _rate_posterior(self, x: np.ndarray, age: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shape, rate) of the purchase rate's Gamma posterior given alive: (r + x, alpha + T)."""
        params = self.counts_.params_
        return params["r"] + x, params["alpha"] + age

    def _wait_quantile(self, x: np.ndarray, age: np.ndarray, q: float) -> np.ndarray:
        """The q-quantile of the (Lomax) wait to the next purchase given alive, in weeks."""
        shape, rate = self._rate_posterior(x, age)
        return rate * ((1 - q) ** (-1 / shape) - 1)

    def _discount_factor(self, x, t_x, age, orders, config: ValueConfig) -> np.ndarray:
        """Discounted over undiscounted expected purchases (1 without a discount rate): each week's
        expected purchases discounted from the week's end."""
        if config.discount_rate_annual == 0:
            return np.ones_like(orders)
        ends = np.arange(1, int(np.ceil(config.horizon_days / WEEK_DAYS)) + 1) * WEEK_DAYS
        ends[-1] = config.horizon_days
        given_alive = self.counts_.expected_purchases_given_alive
        # the discount is a ratio of expectations, so the common P(alive) factor drops out
        cumulative = np.stack([given_alive(end / WEEK_DAYS, x, t_x, age) for end in ends], axis=-1)
        increments = np.diff(cumulative, axis=-1, prepend=0.0)
        discount = (1.0 + config.discount_rate_annual) ** (-ends / DAYS_PER_YEAR)
        with np.errstate(invalid="ignore", divide="ignore"):
            total = cumulative[:, -1]
            return np.where(total > 0, (increments * discount).sum(axis=-1) / total, 1.0)

    def _spend_interval(self, x, t_x, age, monetary, alive, config: ValueConfig) -> tuple[np.ndarray, np.ndarray]:
        """The interval's ends of the horizon's spend, by Monte Carlo, chunk by chunk."""
        rng = np.random.default_rng(config.seed)
        low, _, high = config.quantiles
        ends = [np.empty(len(x)), np.empty(len(x))]
        for start in range(0, len(x), _CHUNK_CUSTOMERS):
            part = slice(start, start + _CHUNK_CUSTOMERS)
            spend = self._draw_spend(x[part], age[part], monetary[part], alive[part], config, rng)
            bounds = np.quantile(spend, [low, high, config.interval], axis=0)
            # Spending nothing has a probability of its own: where it exceeds the lower tail, the
            # interval starts at 0 and ends where `interval` of the draws lie (an equal-tailed one
            # would hold more than `interval` of such customers)
            at_zero = bounds[0] <= 0
            ends[0][part] = np.where(at_zero, 0.0, bounds[0])
            ends[1][part] = np.where(at_zero, bounds[2], bounds[1])
        discount = (1.0 + config.discount_rate_annual) ** (-config.horizon_days / 2 / DAYS_PER_YEAR)
        return ends[0] * discount, ends[1] * discount  # mid-horizon discount: the interval, not the mean

    def _draw_spend(self, x, age, monetary, p_alive, config: ValueConfig, rng) -> np.ndarray:
        """draws x customers: the horizon's spend, drawn from the models' predictive distributions
        (`p_alive`: each customer's P(alive))."""
        shape = (config.draws, len(x))
        horizon = config.horizon_days / WEEK_DAYS
        alive = rng.random(shape) < p_alive
        rate_shape, rate_rate = self._rate_posterior(x, age)
        rate = rng.gamma(rate_shape, 1.0, size=shape) / rate_rate
        if self.count_model == BGNBD:
            # after each purchase the customer drops out with p ~ Beta(a, b + x) (posterior given alive)
            params = self.counts_.params_
            dropout = rng.beta(params["a"], params["b"] + x, size=shape)
            purchases = np.minimum(rng.poisson(rate * horizon), rng.geometric(dropout))
        else:
            # the lifetime ends at an exponential time of rate mu ~ Gamma(s, beta + T) (given alive)
            params = self.counts_.params_
            death_rate = rng.gamma(params["s"], 1.0, size=shape) / (params["beta"] + age)
            lifetime = np.minimum(rng.exponential(1.0, size=shape) / death_rate, horizon)
            purchases = rng.poisson(rate * lifetime)
        purchases = np.where(alive, purchases, 0)
        # each order's value ~ Gamma(p, nu); the customer's nu ~ Gamma(q + p x, gamma + x m) (posterior)
        p, q, gamma = (self.spend_.params_[name] for name in ("p", "q", "gamma"))
        nu = rng.gamma(q + p * x, 1.0, size=shape) / (gamma + x * monetary)
        total = np.zeros(shape)
        bought = purchases > 0
        total[bought] = rng.gamma(p * purchases[bought], 1.0) / nu[bought]
        return total


class SpendRateBaseline:
    """The customer's past spend and orders per day since their first purchase, times the horizon."""

    def fit(self, summary: pd.DataFrame) -> SpendRateBaseline:
        check_summary(summary)
        return self

    def predict(self, summary: pd.DataFrame, config: ValueConfig = ValueConfig()) -> pd.DataFrame:
        return pd.DataFrame(self.predict_arrays(*summary_arrays(summary), config), index=summary.index)

    def predict_arrays(
        self, x, t_x, age, monetary, config: ValueConfig = ValueConfig(), intervals: bool = False
    ) -> dict:
        """`predict` on the summary's arrays: VALUE_COLUMNS -> array (no interval, no timing)."""
        days = np.maximum(age * WEEK_DAYS, 1.0)  # a first purchase yesterday: one day of history
        # repeat orders per day; the first order is the customer's arrival, not their rate
        orders = x / days * config.horizon_days
        missing = np.full(len(x), np.nan)
        return {
            s.EXPECTED_ORDERS: orders,
            s.CLV: orders * monetary,
            s.CLV_LOW: missing,
            s.CLV_HIGH: missing,
            s.P_ACTIVE: missing,
            s.NEXT_PURCHASE_DAYS: missing,
            s.NEXT_PURCHASE_LOW_DAYS: missing,
            s.NEXT_PURCHASE_HIGH_DAYS: missing,
        }
