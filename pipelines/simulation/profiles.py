"""Customers: their attributes (what the customers table shows) and hidden traits (what drives them)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features import schema
from pipelines.simulation.catalog import Catalog
from pipelines.simulation.config import SimulationConfig
from pipelines.simulation.sampling import draw_categorical, draw_rows_categorical, uniform_between
from pipelines.simulation.window import DAYS_PER_YEAR, Window


@dataclass(frozen=True)
class Profiles:
    """Per-customer arrays for one block (index 0 is the block's first customer)."""

    signup_day: np.ndarray  # whole days from window start, negative before it
    active_from: np.ndarray  # float days: signup day or window start, whichever is later
    birth_year: np.ndarray  # float, NaN when missing
    gender: np.ndarray  # index into schema.GENDERS, -1 when missing
    region: np.ndarray  # index into config.regions, -1 when missing
    opted_in: np.ndarray  # the true opt-in, which drives emails
    opt_in_known: np.ndarray  # whether the customers table shows it
    is_buyer: np.ndarray
    satisfaction: np.ndarray
    purchase_rate: np.ndarray  # base orders per year, 0 for visitors
    session_rate: np.ndarray  # browsing sessions per year
    category_preference: np.ndarray  # (n, n_durable) rows sum to 1
    channel_cumulative: np.ndarray  # (n, n_channels)
    discount_affinity: np.ndarray
    replenishment_product: np.ndarray  # -1 when none
    replenishment_cycle: np.ndarray  # days, NaN when none
    seasonal_category: np.ndarray  # category index, -1 when none
    seasonal_month: np.ndarray  # 1-12, 0 when none

    @property
    def n(self) -> int:
        return len(self.signup_day)


def draw_profiles(
    rng: np.random.Generator, n: int, window: Window, catalog: Catalog, config: SimulationConfig
) -> Profiles:
    """Attributes and hidden traits for n customers."""
    before = rng.random(n) < config.signup_before_start_share
    history_days = config.signup_history_years * DAYS_PER_YEAR
    signup_day = np.where(
        before,
        -np.floor(rng.random(n) * history_days) - 1,
        np.floor(rng.random(n) * window.n_days),
    ).astype(np.int64)
    active_from = np.maximum(signup_day, 0).astype(np.float64)

    low_year, high_year = config.birth_year_range
    birth_year = np.clip(
        np.round(config.birth_year_mean + config.birth_year_sd * rng.standard_normal(n)),
        low_year,
        high_year,
    )
    birth_year[rng.random(n) < config.missing_share_birth_year] = np.nan
    gender = draw_categorical(rng, config.gender_weights, n)
    gender[rng.random(n) < config.missing_share_gender] = -1
    region = draw_categorical(rng, config.region_weights, n)
    region[rng.random(n) < config.missing_share_region] = -1
    opted_in = rng.random(n) < config.marketing_opt_in_share
    opt_in_known = rng.random(n) >= config.missing_share_marketing_opt_in

    is_buyer = rng.random(n) < config.buyer_share
    satisfaction = rng.standard_normal(n)
    shape = config.purchase_rate_shape
    purchase_rate = np.where(is_buyer, rng.gamma(shape, config.purchase_rate_mean / shape, n), 0.0)
    session_mean = np.where(is_buyer, config.buyer_sessions_rate, config.visitor_sessions_rate)
    session_rate = rng.gamma(config.session_rate_shape, 1.0, n) * session_mean / config.session_rate_shape

    n_durable = len(catalog.durable_categories)
    category_preference = rng.dirichlet(np.full(n_durable, config.category_preference_alpha), n)

    # Younger customers lean towards the app: a small, learnable link from attributes to behaviour.
    channel_alpha = np.tile(np.array(config.channel_alpha) * config.channel_concentration, (n, 1))
    young = birth_year >= config.young_birth_year  # NaN compares False
    channel_alpha[young, schema.CHANNELS.index("app")] *= 2.0
    channel_cumulative = np.cumsum(rng.gamma(channel_alpha), axis=1)
    channel_cumulative /= channel_cumulative[:, -1:]

    discount_affinity = rng.beta(*config.discount_affinity_beta, n)

    replenisher = is_buyer & (rng.random(n) < config.replenisher_share)
    replenishment_product = np.full(n, -1, dtype=np.int64)
    replenishment_cycle = np.full(n, np.nan)
    replenishment_category = rng.choice(catalog.replenishable_categories, int(replenisher.sum()))
    chosen = catalog.sample_products(rng, replenishment_category)
    replenishment_product[replenisher] = chosen
    spread = config.replenishment_cycle_spread
    replenishment_cycle[replenisher] = catalog.replenishment_days[chosen] * uniform_between(
        rng, (1 - spread, 1 + spread), len(chosen)
    )

    seasonal = is_buyer & (rng.random(n) < config.seasonal_share)
    seasonal_category = np.full(n, -1, dtype=np.int64)
    seasonal_month = np.zeros(n, dtype=np.int64)
    n_seasonal = int(seasonal.sum())
    categories = catalog.durable_categories[
        draw_rows_categorical(rng, np.cumsum(category_preference[seasonal], axis=1))
    ]
    peak_months = np.array([c.peak_month for c in config.categories])[categories]
    months = np.where(
        rng.random(n_seasonal) < config.seasonal_peak_month_share,
        peak_months,
        rng.integers(1, 13, n_seasonal),
    )
    seasonal_category[seasonal] = categories
    seasonal_month[seasonal] = months

    return Profiles(
        signup_day=signup_day,
        active_from=active_from,
        birth_year=birth_year,
        gender=gender,
        region=region,
        opted_in=opted_in,
        opt_in_known=opt_in_known,
        is_buyer=is_buyer,
        satisfaction=satisfaction,
        purchase_rate=purchase_rate,
        session_rate=session_rate,
        category_preference=category_preference,
        channel_cumulative=channel_cumulative,
        discount_affinity=discount_affinity,
        replenishment_product=replenishment_product,
        replenishment_cycle=replenishment_cycle,
        seasonal_category=seasonal_category,
        seasonal_month=seasonal_month,
    )
