"""A vectorised simulation of customers who browse, buy, return, complain and drop out.

Pure numpy: no file I/O, no clock, no global random state. `generate_tables` is the entry point;
`simulate_blocks` + `assemble_tables` are the same thing split so a caller can show progress.

What is hidden in the data (and returned separately as ground truth):
- every customer has a latent satisfaction that lowers the support-ticket rate, raises NPS
  scores and lowers the dropout hazard; a severe ticket raises the hazard for weeks afterwards;
- after the true dropout date a customer makes no purchases and no visits (only rare email opens);
- buyers have gamma-distributed order rates with a mild December peak; visitors who never buy
  (about 18 %) only browse;
- category tastes are Dirichlet draws (a few dominant categories), product popularity is Zipf-like
  within a category, and some products form groups that are bought together;
- some buyers reorder one consumable on their own cycle near the product's replenishment_days,
  and some buy one category in the same month every year;
- purchases are preceded by browsing: often a research session one to seven days before
  (views of the product and its neighbours, maybe a search), always a checkout session with a
  cart add minutes before; browsing sessions with no purchase leave abandoned carts.

Determinism: customers are simulated in fixed-size blocks, each with its own random stream
derived from (seed, block index) by `numpy.random.SeedSequence`, so the output depends only on
(n_customers, seed, start, end, config) and not on how the work is scheduled.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features import schema

DEFAULT_START = "2023-01-01"
DEFAULT_END = "2025-12-31"

SECONDS_PER_DAY = 86_400
DAYS_PER_YEAR = 365.25
MINUTE = 1 / (24 * 60)  # in days, the simulation's time unit

# ---------------------------------------------------------------------------
# Ground truth: names of the hidden files and their columns. They are not contract columns and
# never appear in the four tables; they live only in DIR/_truth/.
# ---------------------------------------------------------------------------
TRUTH_DIR_NAME = "_truth"
CUSTOMERS_TRUTH = "customers_truth"
PRODUCT_GROUPS = "product_groups"
TRUTH_SUMMARY_FILE = "truth.json"

TRUTH_IS_BUYER = "is_buyer"
TRUTH_SATISFACTION = "satisfaction"
TRUTH_DROPOUT_DATE = "dropout_date"
TRUTH_BASE_PURCHASE_RATE = "base_purchase_rate_per_year"
TRUTH_PREFERRED_CATEGORIES = "preferred_categories"
TRUTH_REPLENISHMENT_PRODUCT_ID = "replenishment_product_id"
TRUTH_REPLENISHMENT_CYCLE_DAYS = "replenishment_cycle_days"
TRUTH_SEASONAL_CATEGORY = "seasonal_category"
TRUTH_SEASONAL_MONTH = "seasonal_month"
TRUTH_GROUP_ID = "group_id"

PREFERRED_CATEGORIES_SEPARATOR = "|"
PREFERRED_CATEGORIES_COUNT = 3


# ---------------------------------------------------------------------------
# Configuration as data.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Category:
    """A product category: its price level, catalogue share and buying rhythm."""

    name: str
    price_median: float
    price_sigma: float
    catalogue_share: float
    peak_month: int  # the month seasonal buyers of this category usually buy in
    replenishment_days: tuple[float, ...] = ()  # pack sizes; empty for durable goods

    @property
    def is_replenishable(self) -> bool:
        return bool(self.replenishment_days)


DEFAULT_CATEGORIES: tuple[Category, ...] = (
    Category("electronics", 150.0, 0.8, 0.12, 11),
    Category("fashion", 45.0, 0.6, 0.16, 4),
    Category("home", 60.0, 0.7, 0.12, 10),
    Category("kitchen", 35.0, 0.6, 0.10, 12),
    Category("garden", 40.0, 0.7, 0.08, 5),
    Category("toys", 30.0, 0.6, 0.09, 12),
    Category("sports", 55.0, 0.7, 0.09, 6),
    Category("books", 15.0, 0.4, 0.09, 9),
    Category("beauty", 25.0, 0.5, 0.06, 2),
    Category("contact_lenses", 40.0, 0.3, 0.03, 1, (30.0, 90.0)),
    Category("coffee", 14.0, 0.3, 0.03, 1, (14.0, 21.0, 30.0)),
    Category("pet_food", 35.0, 0.3, 0.03, 1, (21.0, 30.0, 45.0)),
)

REGIONS = ("north", "south", "east", "west", "central", "capital")
BRAND_STEMS = ("Nor", "Vel", "Ast", "Kel", "Mar", "Oro", "Tal", "Zen", "Bri", "Cas", "Lum", "Pra")
BRAND_ENDINGS = ("vik", "ora", "ex", "ton", "ia", "ent", "ix", "wood", "line", "co")


@dataclass(frozen=True)
class SimulationConfig:
    """Every knob of the simulation. Rates are per year unless the name says otherwise."""

    categories: tuple[Category, ...] = DEFAULT_CATEGORIES
    regions: tuple[str, ...] = REGIONS
    region_weights: tuple[float, ...] = (0.2, 0.2, 0.15, 0.15, 0.1, 0.2)
    gender_weights: tuple[float, ...] = (0.48, 0.45, 0.02, 0.05)  # in schema.GENDERS order

    # Catalogue: about 50 products per 1,000 customers, at least 200 and at most 50,000, so a
    # small test set still has a real long tail and a large one stays a plausible shop.
    products_per_customer: float = 0.05
    min_products: int = 200
    max_products: int = 50_000
    zipf_exponent: float = 1.1
    grouped_product_share: float = 0.3  # of durable products
    group_sizes: tuple[int, ...] = (2, 3, 4)
    group_join_probability: float = 0.8  # each other member joins the order
    brand_missing_share: float = 0.05

    # Customers.
    block_size: int = 50_000  # customers per random stream; part of the output's definition
    buyer_share: float = 0.82
    signup_before_start_share: float = 0.25
    signup_history_years: float = 3.0
    birth_year_mean: float = 1983.0
    birth_year_sd: float = 13.0
    birth_year_range: tuple[int, int] = (1935, 2006)
    young_birth_year: int = 1990  # born this year or later: twice the taste for the app
    marketing_opt_in_share: float = 0.6
    missing_share_birth_year: float = 0.08
    missing_share_gender: float = 0.06
    missing_share_region: float = 0.04
    missing_share_marketing_opt_in: float = 0.05
    category_preference_alpha: float = 0.35  # Dirichlet; small means a few dominant categories
    channel_alpha: tuple[float, ...] = (3.0, 2.0, 1.2, 0.3, 0.8, 0.1)  # in schema.CHANNELS order
    # Scales channel_alpha: a small sum gives each customer a dominant channel, a large one
    # would give everyone the population mix.
    channel_concentration: float = 0.25

    # Purchases.
    purchase_rate_mean: float = 5.0  # base orders per year
    purchase_rate_shape: float = 1.2  # gamma shape: heterogeneity between buyers
    december_amplitude: float = 0.3  # base order rate swings +-30 % over the year
    december_peak_day_of_year: float = 345.0
    extra_items_per_order: float = 0.7  # Poisson, on top of the first item
    first_order_probability: float = 0.6  # many buyers sign up at their first checkout
    first_order_mean_days: float = 3.0
    extra_units_per_line: float = 0.25  # Poisson, on top of one unit
    hour_weights: tuple[float, ...] = (
        1,
        0.5,
        0.3,
        0.2,
        0.2,
        0.4,
        1,
        2,
        3,
        4,
        4.5,
        5,
        5.5,
        5,
        4.5,
        4.5,
        5,
        5.5,
        6.5,
        7.5,
        8,
        7,
        5,
        2.5,
    )
    replenisher_share: float = 0.3  # of buyers
    replenishment_cycle_spread: float = 0.1  # a customer's cycle is days * U(0.9, 1.1)
    replenishment_jitter: float = 0.05  # sd of each gap relative to the cycle
    replenishment_skip_probability: float = 0.05
    seasonal_share: float = 0.35  # of buyers
    seasonal_peak_month_share: float = 0.7  # others pick a random month
    seasonal_yearly_probability: float = 0.9
    seasonal_extra_items: float = 0.3
    discount_affinity_beta: tuple[float, float] = (1.5, 6.0)  # share of a buyer's orders on promo
    discount_levels: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5)
    discount_level_weights: tuple[float, ...] = (0.15, 0.3, 0.15, 0.2, 0.1, 0.07, 0.03)
    return_probability: float = 0.035  # per durable line, at average satisfaction
    consumable_return_probability: float = 0.005
    return_satisfaction_effect: float = 0.4
    return_delay_days: tuple[float, float] = (3.0, 30.0)

    # Satisfaction, support and dropout (satisfaction is standard normal).
    dropout_hazard: float = 0.25
    satisfaction_hazard_effect: float = 0.8
    ticket_rate: float = 0.4
    satisfaction_ticket_effect: float = 0.8
    severity_logit_base: float = -0.6
    severity_satisfaction_effect: float = 0.7
    severe_ticket_severity: int = 4
    severe_ticket_hazard_jump: float = 3.0  # hazard multiplier (1 + boost) right after a severe ticket
    severe_ticket_half_life_weeks: float = 8.0
    nps_rate: float = 0.5
    nps_mean: float = 7.2
    nps_satisfaction_slope: float = 1.8
    nps_boost_penalty: float = 1.0
    nps_noise_sd: float = 1.2

    # Behaviour events.
    buyer_sessions_rate: float = 2.0  # browsing sessions that do not lead to a purchase
    visitor_sessions_rate: float = 6.0  # for those who never buy
    session_rate_shape: float = 2.0
    extra_views_per_session: float = 0.8
    search_probability: float = 0.3
    buyer_abandon_probability: float = 0.15
    visitor_abandon_probability: float = 0.3
    replenisher_views_own_product_probability: float = 0.2
    research_session_probability: float = 0.5
    research_days_before: tuple[float, float] = (1.0, 7.0)
    research_extra_views: float = 0.5
    purchase_session_minutes_before: tuple[float, float] = (3.0, 30.0)
    cart_minutes_before: tuple[float, float] = (0.5, 3.0)
    email_open_rate: float = 2.0  # for opted-in customers while active
    email_open_rate_after_dropout: float = 0.4
    email_click_probability: float = 0.2

    def __post_init__(self) -> None:
        if len(self.channel_alpha) != len(schema.CHANNELS):
            raise ValueError("channel_alpha needs one weight per schema.CHANNELS entry")
        if len(self.gender_weights) != len(schema.GENDERS):
            raise ValueError("gender_weights needs one weight per schema.GENDERS entry")
        if len(self.hour_weights) != 24:
            raise ValueError("hour_weights needs 24 weights")
        if not any(c.is_replenishable for c in self.categories):
            raise ValueError("at least one category must be replenishable")
        if not any(not c.is_replenishable for c in self.categories):
            raise ValueError("at least one category must be durable")

    def n_products(self, n_customers: int) -> int:
        wanted = round(n_customers * self.products_per_customer)
        return int(min(self.max_products, max(self.min_products, wanted)))


DEFAULT_CONFIG = SimulationConfig()

# Event codes are positions in schema.EVENT_TYPES.
_EVENT_CODE = {event_type: code for code, event_type in enumerate(schema.EVENT_TYPES)}
SESSION_START = _EVENT_CODE[schema.EVENT_SESSION_START]
PRODUCT_VIEW = _EVENT_CODE[schema.EVENT_PRODUCT_VIEW]
ADD_TO_CART = _EVENT_CODE[schema.EVENT_ADD_TO_CART]
SEARCH = _EVENT_CODE[schema.EVENT_SEARCH]
EMAIL_OPEN = _EVENT_CODE[schema.EVENT_EMAIL_OPEN]
EMAIL_CLICK = _EVENT_CODE[schema.EVENT_EMAIL_CLICK]
SUPPORT_TICKET = _EVENT_CODE[schema.EVENT_SUPPORT_TICKET]
NPS_RESPONSE = _EVENT_CODE[schema.EVENT_NPS_RESPONSE]

NO_PRODUCT = -1


# ---------------------------------------------------------------------------
# The time window.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    """The simulated period: from start (midnight) through the whole of the end day."""

    start: pd.Timestamp
    end: pd.Timestamp

    @classmethod
    def from_dates(cls, start: str | pd.Timestamp, end: str | pd.Timestamp) -> Window:
        start_ts, end_ts = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
        if start_ts.tzinfo is not None or end_ts.tzinfo is not None:
            raise ValueError("start and end must be timezone-naive dates")
        if end_ts <= start_ts:
            raise ValueError(f"end {end_ts.date()} must be after start {start_ts.date()}")
        return cls(start_ts, end_ts)

    @property
    def n_days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def n_seconds(self) -> int:
        return self.n_days * SECONDS_PER_DAY

    @property
    def start_microseconds(self) -> int:
        return int(np.datetime64(self.start.to_datetime64(), "us").astype(np.int64))

    @property
    def start_day_of_year(self) -> int:
        return self.start.dayofyear - 1

    def month_starts(self) -> tuple[np.ndarray, np.ndarray]:
        """Start offset (days from start) and length of every month of every touched year.

        Both arrays have shape (n_years, 12); offsets can fall outside the window.
        """
        years = np.arange(self.start.year, self.end.year + 1)
        firsts = pd.to_datetime([f"{year}-{month:02d}-01" for year in years for month in range(1, 13)])
        offsets = ((firsts - self.start).days.to_numpy()).reshape(len(years), 12)
        lengths = firsts.days_in_month.to_numpy().reshape(len(years), 12)
        return offsets.astype(np.float64), lengths.astype(np.float64)


# ---------------------------------------------------------------------------
# Small numpy helpers.
# ---------------------------------------------------------------------------
def ragged_arange(counts: np.ndarray) -> np.ndarray:
    """[0..c0-1, 0..c1-1, ...] for counts [c0, c1, ...]."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(starts, counts)


def draw_rows_categorical(rng: np.random.Generator, cumulative: np.ndarray) -> np.ndarray:
    """One category per row of a row-wise cumulative probability matrix."""
    draws = rng.random(cumulative.shape[0])[:, None]
    chosen = (draws > cumulative).sum(axis=1)
    return np.minimum(chosen, cumulative.shape[1] - 1)


def draw_categorical(rng: np.random.Generator, weights: Iterable[float], size: int) -> np.ndarray:
    """`size` draws from one fixed set of weights."""
    weights = np.asarray(tuple(weights), dtype=np.float64)
    cumulative = np.cumsum(weights / weights.sum())
    return np.minimum(np.searchsorted(cumulative, rng.random(size), side="right"), len(weights) - 1)


def uniform_between(rng: np.random.Generator, bounds: tuple[float, float], size: int) -> np.ndarray:
    low, high = bounds
    return low + (high - low) * rng.random(size)


def unique_values(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (np.unique without its hashing detour, which is slow here)."""
    ordered = np.sort(values)
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])] if ordered.size else ordered


def days_to_seconds(days: np.ndarray) -> np.ndarray:
    """Simulation days (floats from window start) to whole seconds from window start."""
    return np.floor(np.asarray(days) * SECONDS_PER_DAY).astype(np.int64)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# ---------------------------------------------------------------------------
# The catalogue.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Catalog:
    """Products as arrays indexed by product number, plus what is needed to sample them."""

    category: np.ndarray  # int, index into config.categories
    price: np.ndarray
    brand: np.ndarray  # int, index into brand_names, -1 when unknown
    brand_names: tuple[str, ...]
    replenishment_days: np.ndarray  # NaN for durable goods
    group: np.ndarray  # int, -1 when in no group
    group_offsets: np.ndarray  # members of group g: group_members[offsets[g]:offsets[g+1]]
    group_members: np.ndarray
    sampling_order: np.ndarray  # products sorted by category
    sampling_keys: np.ndarray  # category index + cumulative popularity within it, increasing
    durable_categories: np.ndarray  # category indexes
    replenishable_categories: np.ndarray

    @property
    def n_products(self) -> int:
        return len(self.category)

    @property
    def n_groups(self) -> int:
        return len(self.group_offsets) - 1

    def sample_products(self, rng: np.random.Generator, categories: np.ndarray) -> np.ndarray:
        """One product per requested category, by Zipf-like popularity within the category."""
        # Each category owns the key interval (c, c + 1]; the popularity CDF lives inside it.
        keys = categories + rng.random(len(categories))
        positions = np.searchsorted(self.sampling_keys, keys, side="left")
        return self.sampling_order[np.minimum(positions, len(self.sampling_order) - 1)]


def split_counts(total: int, shares: np.ndarray, minimum: int) -> np.ndarray:
    """Integer counts proportional to shares, each at least `minimum`, summing to `total`."""
    counts = np.maximum(minimum, np.floor(shares / shares.sum() * total).astype(np.int64))
    while counts.sum() < total:
        counts[np.argmax(shares / shares.sum() * total - counts)] += 1
    while counts.sum() > total:
        counts[np.argmax(counts)] -= 1
    return counts


def build_catalog(rng: np.random.Generator, n_products: int, config: SimulationConfig) -> Catalog:
    """Products with categories, prices, brands, pack sizes, popularity and groups."""
    categories = config.categories
    n_categories = len(categories)
    shares = np.array([c.catalogue_share for c in categories])
    counts = split_counts(n_products, shares, minimum=4)
    # Shuffle so a product's number says nothing about its category.
    category = rng.permutation(np.repeat(np.arange(n_categories), counts))

    median = np.array([c.price_median for c in categories])[category]
    sigma = np.array([c.price_sigma for c in categories])[category]
    price = np.maximum(0.99, np.round(median * np.exp(sigma * rng.standard_normal(n_products)), 2))

    brand_names = tuple(stem + ending for stem in BRAND_STEMS for ending in BRAND_ENDINGS)
    brand = rng.integers(0, len(brand_names), n_products)
    brand[rng.random(n_products) < config.brand_missing_share] = -1

    replenishment_days = np.full(n_products, np.nan)
    for index, spec in enumerate(categories):
        if spec.is_replenishable:
            members = np.flatnonzero(category == index)
            replenishment_days[members] = rng.choice(spec.replenishment_days, len(members))

    # Zipf popularity: a random rank within the category, weight 1 / rank^s.
    popularity = np.empty(n_products)
    for index in range(n_categories):
        members = np.flatnonzero(category == index)
        ranks = rng.permutation(len(members)) + 1
        popularity[members] = ranks.astype(np.float64) ** -config.zipf_exponent
    sampling_order = np.lexsort((np.arange(n_products), category))
    sorted_category = category[sampling_order]
    sorted_popularity = popularity[sampling_order]
    within = np.empty(n_products)
    for index in range(n_categories):
        span = sorted_category == index
        cumulative = np.cumsum(sorted_popularity[span])
        within[span] = cumulative / cumulative[-1]
    sampling_keys = sorted_category + within

    is_replenishable = np.array([c.is_replenishable for c in categories])
    group, group_offsets, group_members = build_groups(rng, category, is_replenishable, config)
    return Catalog(
        category=category,
        price=price,
        brand=brand,
        brand_names=brand_names,
        replenishment_days=replenishment_days,
        group=group,
        group_offsets=group_offsets,
        group_members=group_members,
        sampling_order=sampling_order,
        sampling_keys=sampling_keys,
        durable_categories=np.flatnonzero(~is_replenishable),
        replenishable_categories=np.flatnonzero(is_replenishable),
    )


def build_groups(
    rng: np.random.Generator,
    category: np.ndarray,
    is_replenishable: np.ndarray,
    config: SimulationConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bought-together groups of 2-4 durable products from the same category."""
    group = np.full(len(category), -1, dtype=np.int64)
    members_by_group: list[np.ndarray] = []
    for index in np.flatnonzero(~is_replenishable):
        candidates = rng.permutation(np.flatnonzero(category == index))
        budget = int(round(len(candidates) * config.grouped_product_share))
        position = 0
        while True:
            size = int(rng.choice(config.group_sizes))
            if position + size > budget:
                break
            members = np.sort(candidates[position : position + size])
            group[members] = len(members_by_group)
            members_by_group.append(members)
            position += size
    sizes = np.array([len(m) for m in members_by_group], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    members = np.concatenate(members_by_group).astype(np.int64) if members_by_group else np.empty(0, dtype=np.int64)
    return group, offsets, members


# ---------------------------------------------------------------------------
# Customers: attributes and hidden traits.
# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# Event buffers (integer codes; strings are made once, at assembly).
# ---------------------------------------------------------------------------
@dataclass
class EventParts:
    """Columns of behaviour events, collected in parts and concatenated once."""

    customer: list[np.ndarray] = field(default_factory=list)
    day: list[np.ndarray] = field(default_factory=list)
    event_type: list[np.ndarray] = field(default_factory=list)
    product: list[np.ndarray] = field(default_factory=list)
    value: list[np.ndarray] = field(default_factory=list)

    def add(
        self,
        customer: np.ndarray,
        day: np.ndarray,
        event_type: int,
        product: np.ndarray | None = None,
        value: np.ndarray | None = None,
    ) -> None:
        customer = np.asarray(customer, dtype=np.int64)
        size = len(customer)
        self.customer.append(customer)
        self.day.append(np.asarray(day, dtype=np.float64))
        self.event_type.append(np.broadcast_to(np.int8(event_type), (size,)).astype(np.int8))
        self.product.append(np.full(size, NO_PRODUCT, dtype=np.int64) if product is None else np.asarray(product))
        self.value.append(np.full(size, np.nan) if value is None else np.asarray(value, float))

    def concatenate(self) -> EventArrays:
        return EventArrays(
            customer=np.concatenate(self.customer),
            day=np.concatenate(self.day),
            event_type=np.concatenate(self.event_type),
            product=np.concatenate(self.product).astype(np.int64),
            value=np.concatenate(self.value),
        )


@dataclass(frozen=True)
class EventArrays:
    customer: np.ndarray  # local customer index
    day: np.ndarray
    event_type: np.ndarray  # index into schema.EVENT_TYPES
    product: np.ndarray  # NO_PRODUCT when the event is not about a product
    value: np.ndarray  # NaN unless NPS score or ticket severity


# ---------------------------------------------------------------------------
# Support, satisfaction and dropout.
# ---------------------------------------------------------------------------
def simulate_support_and_dropout(
    rng: np.random.Generator,
    profiles: Profiles,
    window: Window,
    config: SimulationConfig,
    events: EventParts,
) -> np.ndarray:
    """Tickets, NPS answers and dropout days (inf when still active at the end).

    Tickets and NPS answers are drawn for the whole window, then cut at the dropout. The
    dropout hazard is constant within a week and scaled by (1 + boost), where the boost sums
    the severe tickets of *earlier* weeks, halving every few weeks; the dropout day is drawn
    exactly by inverting the cumulative hazard, vectorised over a (customer, week) matrix.
    """
    n = profiles.n
    z = profiles.satisfaction
    n_weeks = math.ceil(window.n_days / 7)
    duration = window.n_days - profiles.active_from

    ticket_rate = config.ticket_rate * np.exp(-config.satisfaction_ticket_effect * z)
    ticket_customer, ticket_day = draw_poisson_process(rng, ticket_rate, profiles.active_from, duration)
    severe_probability = sigmoid(config.severity_logit_base - config.severity_satisfaction_effect * z)
    severity = 1 + rng.binomial(4, severe_probability[ticket_customer])
    answer_customer, answer_day = draw_poisson_process(rng, np.full(n, config.nps_rate), profiles.active_from, duration)

    daily_base_hazard = config.dropout_hazard / DAYS_PER_YEAR * np.exp(-config.satisfaction_hazard_effect * z)
    threshold = rng.exponential(1.0, n)  # dropout when the cumulative hazard reaches it
    # Without severe tickets the hazard is constant, so the dropout day has a closed form.
    dropout = profiles.active_from + threshold / daily_base_hazard
    dropout[dropout >= window.n_days] = np.inf

    severe = severity >= config.severe_ticket_severity
    complainers = unique_values(ticket_customer[severe])
    boost = np.zeros((complainers.size, n_weeks))
    if complainers.size:
        row_of = np.full(n, -1, dtype=np.int64)
        row_of[complainers] = np.arange(complainers.size)
        severe_counts = np.bincount(
            row_of[ticket_customer[severe]] * n_weeks + (ticket_day[severe] // 7).astype(np.int64),
            minlength=complainers.size * n_weeks,
        ).reshape(complainers.size, n_weeks)
        boost = severe_ticket_boost(severe_counts, config)
        dropout[complainers] = draw_boosted_dropout(
            profiles.active_from[complainers],
            daily_base_hazard[complainers],
            boost,
            threshold[complainers],
            window,
        )

    before_ticket = ticket_day < dropout[ticket_customer]
    events.add(
        ticket_customer[before_ticket],
        ticket_day[before_ticket],
        SUPPORT_TICKET,
        value=severity[before_ticket],
    )
    before_answer = answer_day < dropout[answer_customer]
    answer_customer, answer_day = answer_customer[before_answer], answer_day[before_answer]
    answer_boost = np.zeros(answer_customer.size)
    if complainers.size:
        answer_row = row_of[answer_customer]
        has_boost = answer_row >= 0
        answer_boost[has_boost] = boost[answer_row[has_boost], (answer_day[has_boost] // 7).astype(np.int64)]
    score = (
        config.nps_mean
        + config.nps_satisfaction_slope * z[answer_customer]
        - config.nps_boost_penalty * answer_boost
        + config.nps_noise_sd * rng.standard_normal(answer_customer.size)
    )
    events.add(
        answer_customer,
        answer_day,
        NPS_RESPONSE,
        value=np.clip(np.rint(score), schema.NPS_MIN, schema.NPS_MAX),
    )
    return dropout


def draw_boosted_dropout(
    active_from: np.ndarray,
    daily_base_hazard: np.ndarray,
    boost: np.ndarray,
    threshold: np.ndarray,
    window: Window,
) -> np.ndarray:
    """Dropout days under a hazard of base * (1 + boost[week]), inf when beyond the window.

    The hazard is constant within a week, so the cumulative hazard is piecewise linear and the
    day it reaches `threshold` (an Exp(1) draw) is found exactly.
    """
    n_weeks = boost.shape[1]
    week_start = 7.0 * np.arange(n_weeks)
    lower = np.maximum(week_start[None, :], active_from[:, None])
    upper = np.minimum(week_start + 7.0, float(window.n_days))[None, :]
    exposure = np.maximum(upper - lower, 0.0)
    daily_hazard = daily_base_hazard[:, None] * (1.0 + boost)
    cumulative = np.cumsum(daily_hazard * exposure, axis=1)
    crossed = cumulative >= threshold[:, None]
    dropout = np.full(len(active_from), np.inf)
    who = np.flatnonzero(crossed[:, -1])
    week = np.argmax(crossed[who], axis=1)
    hazard_before = cumulative[who, week] - daily_hazard[who, week] * exposure[who, week]
    dropout[who] = lower[who, week] + (threshold[who] - hazard_before) / daily_hazard[who, week]
    return dropout


def severe_ticket_boost(severe_counts: np.ndarray, config: SimulationConfig) -> np.ndarray:
    """Boost in each week from severe tickets in earlier weeks, halving every half-life."""
    decay = 0.5 ** (1.0 / config.severe_ticket_half_life_weeks)
    boost = np.zeros(severe_counts.shape)
    running = np.zeros(severe_counts.shape[0])
    for week in range(1, severe_counts.shape[1]):  # a loop over weeks, vectorised over customers
        running = running * decay + config.severe_ticket_hazard_jump * severe_counts[:, week - 1]
        boost[:, week] = running
    return boost


def draw_poisson_process(
    rng: np.random.Generator, rate_per_year: np.ndarray, start: np.ndarray, duration: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Times of independent Poisson processes, one per customer, on [start, start + duration)."""
    duration = np.maximum(duration, 0.0)
    counts = rng.poisson(rate_per_year * duration / DAYS_PER_YEAR)
    customer = np.repeat(np.arange(len(counts)), counts)
    day = start[customer] + rng.random(customer.size) * duration[customer]
    return customer, day


# ---------------------------------------------------------------------------
# Orders.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Orders:
    customer: np.ndarray  # local customer index
    day: np.ndarray
    main_product: np.ndarray  # the item the customer came for (what the pre-purchase burst shows)
    channel: np.ndarray
    discount: np.ndarray  # NaN when none

    def __len__(self) -> int:
        return len(self.customer)


@dataclass(frozen=True)
class Lines:
    order: np.ndarray  # local order index
    product: np.ndarray
    quantity: np.ndarray


def december_multiplier(day: np.ndarray, window: Window, config: SimulationConfig) -> np.ndarray:
    day_of_year = day + window.start_day_of_year
    phase = 2 * np.pi * (day_of_year - config.december_peak_day_of_year) / DAYS_PER_YEAR
    return 1.0 + config.december_amplitude * np.cos(phase)


def draw_base_order_days(
    rng: np.random.Generator,
    profiles: Profiles,
    active_until: np.ndarray,
    window: Window,
    config: SimulationConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson order times at each buyer's rate, thinned to follow the yearly cycle."""
    buyers = np.flatnonzero(profiles.is_buyer)
    duration = np.maximum(active_until[buyers] - profiles.active_from[buyers], 0.0)
    ceiling = 1.0 + config.december_amplitude
    n_candidates = rng.poisson(profiles.purchase_rate[buyers] * duration / DAYS_PER_YEAR * ceiling)
    customer = np.repeat(buyers, n_candidates)
    day = profiles.active_from[customer] + rng.random(customer.size) * np.repeat(duration, n_candidates)
    keep = rng.random(customer.size) * ceiling < december_multiplier(day, window, config)

    # Customers who join during the window often sign up while placing their first order.
    newcomers = buyers[profiles.signup_day[buyers] >= 0]
    first = newcomers[rng.random(newcomers.size) < config.first_order_probability]
    first_day = profiles.active_from[first] + rng.exponential(config.first_order_mean_days, first.size)
    return np.concatenate([customer[keep], first]), np.concatenate([day[keep], first_day])


def draw_seasonal_order_days(
    rng: np.random.Generator,
    profiles: Profiles,
    active_until: np.ndarray,
    window: Window,
    config: SimulationConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """One order in the customer's seasonal month of most years they are active in."""
    seasonal = np.flatnonzero(profiles.seasonal_month > 0)
    offsets, lengths = window.month_starts()
    n_years = offsets.shape[0]
    customer = np.repeat(seasonal, n_years)
    year = np.tile(np.arange(n_years), seasonal.size)
    month = profiles.seasonal_month[customer] - 1
    day = offsets[year, month] + rng.random(customer.size) * lengths[year, month]
    keep = (
        (rng.random(customer.size) < config.seasonal_yearly_probability)
        & (day >= profiles.active_from[customer])
        & (day < active_until[customer])
    )
    return customer[keep], day[keep]


def draw_replenishment_order_days(
    rng: np.random.Generator, profiles: Profiles, active_until: np.ndarray, config: SimulationConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Reorders of the customer's consumable, one cycle (with a little jitter) apart."""
    replenishers = np.flatnonzero(profiles.replenishment_product >= 0)
    if replenishers.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    cycle = profiles.replenishment_cycle[replenishers]
    start = profiles.active_from[replenishers]
    duration = np.maximum(active_until[replenishers] - start, 0.0)
    shortest_gap = cycle * (1 - 4 * config.replenishment_jitter)
    n_slots = int(np.ceil((duration / shortest_gap).max())) + 1
    gaps = cycle[:, None] * np.clip(
        1 + config.replenishment_jitter * rng.standard_normal((replenishers.size, n_slots)),
        1 - 4 * config.replenishment_jitter,
        1 + 4 * config.replenishment_jitter,
    )
    gaps[:, 0] = rng.random(replenishers.size) * cycle  # the first order comes any time in a cycle
    day = start[:, None] + np.cumsum(gaps, axis=1)
    keep = (day < active_until[replenishers][:, None]) & (
        rng.random(day.shape) >= config.replenishment_skip_probability
    )
    rows, _ = np.nonzero(keep)
    return replenishers[rows], day[keep]


def draw_time_of_day(rng: np.random.Generator, day: np.ndarray, config: SimulationConfig) -> np.ndarray:
    """Keep the date, redraw the time from the hourly profile (people shop in the evening)."""
    hour = draw_categorical(rng, config.hour_weights, len(day))
    return np.floor(day) + (hour + rng.random(len(day))) / 24.0


def simulate_orders(
    rng: np.random.Generator,
    profiles: Profiles,
    active_until: np.ndarray,
    window: Window,
    catalog: Catalog,
    config: SimulationConfig,
) -> tuple[Orders, Lines]:
    """Purchase orders (base, seasonal, replenishment) and their de-duplicated lines."""
    base_customer, base_day = draw_base_order_days(rng, profiles, active_until, window, config)
    seasonal_customer, seasonal_day = draw_seasonal_order_days(rng, profiles, active_until, window, config)
    refill_customer, refill_day = draw_replenishment_order_days(rng, profiles, active_until, config)
    customer = np.concatenate([base_customer, seasonal_customer, refill_customer])
    day = draw_time_of_day(rng, np.concatenate([base_day, seasonal_day, refill_day]), config)
    kind = np.repeat(np.arange(3), [base_customer.size, seasonal_customer.size, refill_customer.size])
    # Compare in whole seconds, the resolution of the tables, so "before dropout" stays exact.
    keep = days_to_seconds(day) < days_to_seconds(active_until[customer])
    customer, day, kind = customer[keep], day[keep], kind[keep]
    n_orders = customer.size

    # First items: base orders follow the customer's tastes, seasonal ones the seasonal category.
    n_items = np.ones(n_orders, dtype=np.int64)
    n_items[kind == 0] += rng.poisson(config.extra_items_per_order, int((kind == 0).sum()))
    n_items[kind == 1] += rng.poisson(config.seasonal_extra_items, int((kind == 1).sum()))
    item_order = np.repeat(np.arange(n_orders), n_items)
    item_customer = customer[item_order]
    item_kind = kind[item_order]
    item_category = np.full(item_order.size, -1, dtype=np.int64)
    from_taste = item_kind == 0
    item_category[from_taste] = catalog.durable_categories[
        draw_rows_categorical(rng, np.cumsum(profiles.category_preference[item_customer[from_taste]], axis=1))
    ]
    from_season = item_kind == 1
    item_category[from_season] = profiles.seasonal_category[item_customer[from_season]]
    item_product = np.empty(item_order.size, dtype=np.int64)
    refill = item_kind == 2
    item_product[~refill] = catalog.sample_products(rng, item_category[~refill])
    item_product[refill] = profiles.replenishment_product[item_customer[refill]]
    first_item = np.cumsum(n_items) - n_items
    main_product = item_product[first_item]

    # Bought-together groups: every other member joins with high probability.
    partner_order, partner_product = draw_group_partners(rng, item_order, item_product, catalog, config)
    line_order = np.concatenate([item_order, partner_order])
    line_product = np.concatenate([item_product, partner_product])
    line_key = unique_values(line_order * catalog.n_products + line_product)
    line_order, line_product = line_key // catalog.n_products, line_key % catalog.n_products

    consumable = ~np.isnan(catalog.replenishment_days[line_product])
    quantity = 1 + rng.poisson(config.extra_units_per_line, line_key.size)
    quantity[consumable] = 1  # one pack per cycle keeps the reorder rhythm readable

    channel = draw_rows_categorical(rng, profiles.channel_cumulative[customer])
    on_promo = rng.random(n_orders) < profiles.discount_affinity[customer]
    discount = np.full(n_orders, np.nan)
    discount[on_promo] = np.asarray(config.discount_levels)[
        draw_categorical(rng, config.discount_level_weights, int(on_promo.sum()))
    ]
    orders = Orders(customer, day, main_product, channel, discount)
    return orders, Lines(line_order, line_product, quantity.astype(np.int64))


def draw_group_partners(
    rng: np.random.Generator,
    item_order: np.ndarray,
    item_product: np.ndarray,
    catalog: Catalog,
    config: SimulationConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """The other members of each grouped item's group, each kept with the join probability."""
    grouped = np.flatnonzero(catalog.group[item_product] >= 0)
    group = catalog.group[item_product[grouped]]
    sizes = np.diff(catalog.group_offsets)[group]
    source = np.repeat(grouped, sizes)
    member = catalog.group_members[np.repeat(catalog.group_offsets[group], sizes) + ragged_arange(sizes)]
    keep = (member != item_product[source]) & (rng.random(member.size) < config.group_join_probability)
    return item_order[source[keep]], member[keep]


def simulate_returns(
    rng: np.random.Generator,
    profiles: Profiles,
    orders: Orders,
    lines: Lines,
    active_until: np.ndarray,
    catalog: Catalog,
    config: SimulationConfig,
) -> tuple[Orders, Lines]:
    """Returns as their own single-line orders, days after the purchase and before dropout."""
    customer = orders.customer[lines.order]
    consumable = ~np.isnan(catalog.replenishment_days[lines.product])
    probability = np.where(
        consumable,
        config.consumable_return_probability,
        config.return_probability * np.exp(-config.return_satisfaction_effect * profiles.satisfaction[customer]),
    )
    returned = np.flatnonzero(rng.random(lines.order.size) < probability)
    source_order = lines.order[returned]
    day = orders.day[source_order] + uniform_between(rng, config.return_delay_days, returned.size)
    quantity = -rng.integers(1, lines.quantity[returned] + 1)  # partial returns happen
    keep = days_to_seconds(day) < days_to_seconds(active_until[customer[returned]])
    returned, source_order, day, quantity = (
        returned[keep],
        source_order[keep],
        day[keep],
        quantity[keep],
    )
    return_orders = Orders(
        customer=orders.customer[source_order],
        day=day,
        main_product=lines.product[returned],
        channel=orders.channel[source_order],
        discount=orders.discount[source_order],
    )
    return_lines = Lines(
        order=len(orders) + np.arange(returned.size),
        product=lines.product[returned],
        quantity=quantity.astype(np.int64),
    )
    return return_orders, return_lines


def concatenate_orders(first: Orders, second: Orders) -> Orders:
    return Orders(
        *(
            np.concatenate([getattr(first, name), getattr(second, name)])
            for name in ("customer", "day", "main_product", "channel", "discount")
        )
    )


def concatenate_lines(first: Lines, second: Lines) -> Lines:
    return Lines(
        *(np.concatenate([getattr(first, name), getattr(second, name)]) for name in ("order", "product", "quantity"))
    )


# ---------------------------------------------------------------------------
# Behaviour events.
# ---------------------------------------------------------------------------
def add_pre_purchase_bursts(
    rng: np.random.Generator,
    profiles: Profiles,
    orders: Orders,
    catalog: Catalog,
    config: SimulationConfig,
    events: EventParts,
) -> None:
    """Before each purchase: maybe a research session 1-7 days earlier, then the buying session."""
    n = len(orders)
    researched = rng.random(n) < config.research_session_probability
    research_day = orders.day - uniform_between(rng, config.research_days_before, n)
    # Visits before signup are not on record: an early first order simply has no research session.
    researched = np.flatnonzero(researched & (research_day >= profiles.active_from[orders.customer]))
    session_day = research_day[researched]
    customer = orders.customer[researched]
    events.add(customer, session_day, SESSION_START)
    n_views = 1 + rng.poisson(config.research_extra_views, researched.size)
    view_session = np.repeat(np.arange(researched.size), n_views)
    view_rank = ragged_arange(n_views)
    main = orders.main_product[researched][view_session]
    # The first view is the product bought; the others are its neighbours in the category.
    viewed = np.where(view_rank == 0, main, catalog.sample_products(rng, catalog.category[main]))
    view_day = session_day[view_session] + (1 + view_rank + rng.random(view_session.size)) * 2 * MINUTE
    events.add(customer[view_session], view_day, PRODUCT_VIEW, product=viewed)
    searched = rng.random(researched.size) < config.search_probability
    events.add(customer[searched], session_day[searched] + 0.5 * MINUTE, SEARCH)

    buying_session = orders.day - uniform_between(rng, config.purchase_session_minutes_before, n) * MINUTE
    events.add(orders.customer, buying_session, SESSION_START)
    cart_day = orders.day - uniform_between(rng, config.cart_minutes_before, n) * MINUTE
    events.add(orders.customer, cart_day, ADD_TO_CART, product=orders.main_product)


def add_browsing_sessions(
    rng: np.random.Generator,
    profiles: Profiles,
    active_until: np.ndarray,
    catalog: Catalog,
    config: SimulationConfig,
    events: EventParts,
) -> None:
    """Sessions with no purchase behind them: views, searches and abandoned carts."""
    duration = np.maximum(active_until - profiles.active_from, 0.0)
    n_sessions = rng.poisson(profiles.session_rate * duration / DAYS_PER_YEAR)
    # Every visitor who never buys browses at least once: that is what makes them a visitor.
    n_sessions[~profiles.is_buyer & (duration > 0)] = np.maximum(n_sessions[~profiles.is_buyer & (duration > 0)], 1)
    customer = np.repeat(np.arange(profiles.n), n_sessions)
    session_day = profiles.active_from[customer] + rng.random(customer.size) * duration[customer]
    session_day = draw_time_of_day(rng, session_day, config)
    events.add(customer, session_day, SESSION_START)

    n_views = 1 + rng.poisson(config.extra_views_per_session, customer.size)
    view_session = np.repeat(np.arange(customer.size), n_views)
    view_customer = customer[view_session]
    category = catalog.durable_categories[
        draw_rows_categorical(rng, np.cumsum(profiles.category_preference[view_customer], axis=1))
    ]
    viewed = catalog.sample_products(rng, category)
    own_refill = profiles.replenishment_product[view_customer]
    looks_at_refill = (own_refill >= 0) & (
        rng.random(view_session.size) < config.replenisher_views_own_product_probability
    )
    viewed[looks_at_refill] = own_refill[looks_at_refill]
    view_day = session_day[view_session] + (1 + ragged_arange(n_views) + rng.random(view_session.size)) * 2 * MINUTE
    events.add(view_customer, view_day, PRODUCT_VIEW, product=viewed)

    searched = rng.random(customer.size) < config.search_probability
    events.add(customer[searched], session_day[searched] + 0.5 * MINUTE, SEARCH)

    abandon_probability = np.where(
        profiles.is_buyer[customer],
        config.buyer_abandon_probability,
        config.visitor_abandon_probability,
    )
    abandoned = np.flatnonzero(rng.random(customer.size) < abandon_probability)
    first_view = (np.cumsum(n_views) - n_views)[abandoned]
    events.add(
        customer[abandoned],
        view_day[first_view] + (1 + rng.random(abandoned.size)) * MINUTE,
        ADD_TO_CART,
        product=viewed[first_view],
    )

    # Signing up happens in a session, so new customers' first record is on their signup day.
    new = np.flatnonzero((profiles.signup_day >= 0) & (duration > 0))
    events.add(new, draw_time_of_day(rng, profiles.active_from[new], config), SESSION_START)


def add_email_events(
    rng: np.random.Generator,
    profiles: Profiles,
    active_until: np.ndarray,
    window: Window,
    config: SimulationConfig,
    events: EventParts,
) -> None:
    """Email opens for opted-in customers, rarer after dropout; clicks only while active."""
    receivers = np.flatnonzero(profiles.opted_in)
    start = profiles.active_from[receivers]
    stop = active_until[receivers]
    active_days = np.maximum(stop - start, 0.0)
    n_active = rng.poisson(config.email_open_rate * active_days / DAYS_PER_YEAR)
    customer = np.repeat(receivers, n_active)
    open_day = np.repeat(start, n_active) + rng.random(customer.size) * np.repeat(active_days, n_active)
    events.add(customer, open_day, EMAIL_OPEN)
    clicked = rng.random(customer.size) < config.email_click_probability
    events.add(
        customer[clicked],
        open_day[clicked] + rng.random(int(clicked.sum())) * 10 * MINUTE,
        EMAIL_CLICK,
    )

    after_days = np.maximum(window.n_days - stop, 0.0)
    n_after = rng.poisson(config.email_open_rate_after_dropout * after_days / DAYS_PER_YEAR)
    customer = np.repeat(receivers, n_after)
    open_day = np.repeat(stop, n_after) + rng.random(customer.size) * np.repeat(after_days, n_after)
    events.add(customer, open_day, EMAIL_OPEN)


# ---------------------------------------------------------------------------
# One block of customers.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Block:
    """Everything simulated for one block of customers, as integer-coded arrays."""

    first_customer: int
    profiles: Profiles
    dropout_second: np.ndarray  # seconds from window start; -1 when no dropout in the window
    order_customer: np.ndarray  # global customer numbers
    order_second: np.ndarray
    order_channel: np.ndarray
    order_discount: np.ndarray
    line_order: np.ndarray  # local order index
    line_product: np.ndarray
    line_quantity: np.ndarray
    line_unit_price: np.ndarray
    event_customer: np.ndarray  # global customer numbers
    event_second: np.ndarray
    event_type: np.ndarray
    event_product: np.ndarray
    event_value: np.ndarray


def block_seed(seed: int, block_index: int) -> np.random.SeedSequence:
    """The random stream of one block: fixed by (seed, block index), independent of the others."""
    return np.random.SeedSequence(entropy=seed, spawn_key=(1, block_index))


def catalog_seed(seed: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(entropy=seed, spawn_key=(0,))


def simulate_block(
    block_index: int,
    first_customer: int,
    n: int,
    seed: int,
    window: Window,
    catalog: Catalog,
    config: SimulationConfig,
) -> Block:
    """Simulate customers first_customer .. first_customer + n - 1."""
    rng = np.random.default_rng(block_seed(seed, block_index))
    profiles = draw_profiles(rng, n, window, catalog, config)
    events = EventParts()
    dropout = simulate_support_and_dropout(rng, profiles, window, config, events)
    active_until = np.minimum(dropout, float(window.n_days))

    orders, lines = simulate_orders(rng, profiles, active_until, window, catalog, config)
    add_pre_purchase_bursts(rng, profiles, orders, catalog, config, events)
    return_orders, return_lines = simulate_returns(rng, profiles, orders, lines, active_until, catalog, config)
    all_orders = concatenate_orders(orders, return_orders)
    all_lines = concatenate_lines(lines, return_lines)
    add_browsing_sessions(rng, profiles, active_until, catalog, config, events)
    add_email_events(rng, profiles, active_until, window, config, events)

    # Sort orders by time and lines by (order, product) inside the block, so assembly only
    # has to merge already-sorted runs (a full sort of 20 million lines is the slow path).
    order_second = days_to_seconds(all_orders.day)
    chronological = np.argsort(order_second, kind="stable")
    rank = np.empty_like(chronological)
    rank[chronological] = np.arange(chronological.size)
    line_sort = np.argsort(rank[all_lines.order] * catalog.n_products + all_lines.product, kind="stable")
    line_order = rank[all_lines.order][line_sort]
    line_product = all_lines.product[line_sort]
    order_discount = all_orders.discount[chronological]
    discount = np.nan_to_num(order_discount[line_order], nan=0.0)
    unit_price = np.round(catalog.price[line_product] * (1.0 - discount), 2)

    event_arrays = events.concatenate()
    event_second = clamp_event_seconds(event_arrays, profiles, active_until, window)
    event_sort = np.argsort(event_second, kind="stable")
    dropout_second = np.where(np.isinf(dropout), -1, days_to_seconds(np.where(np.isinf(dropout), 0.0, dropout)))
    return Block(
        first_customer=first_customer,
        profiles=profiles,
        dropout_second=dropout_second,
        order_customer=all_orders.customer[chronological] + first_customer,
        order_second=order_second[chronological],
        order_channel=all_orders.channel[chronological].astype(np.int8),
        order_discount=order_discount,
        line_order=line_order,
        line_product=line_product,
        line_quantity=all_lines.quantity[line_sort],
        line_unit_price=unit_price,
        event_customer=event_arrays.customer[event_sort] + first_customer,
        event_second=event_second[event_sort],
        event_type=event_arrays.event_type[event_sort],
        event_product=event_arrays.product[event_sort],
        event_value=event_arrays.value[event_sort],
    )


def clamp_event_seconds(
    events: EventArrays, profiles: Profiles, active_until: np.ndarray, window: Window
) -> np.ndarray:
    """Whole seconds, inside each customer's active span (emails after dropout: up to the end).

    Checkout sessions just after signup and views just before dropout can spill a few minutes
    over the edges; clamping keeps "signup <= first record" and "nothing but emails after dropout".
    """
    second = days_to_seconds(events.day)
    earliest = days_to_seconds(profiles.active_from)[events.customer]
    latest = days_to_seconds(active_until)[events.customer] - 1
    latest = np.where(events.event_type == EMAIL_OPEN, window.n_seconds - 1, latest)
    return np.clip(second, earliest, latest)


def simulate_blocks(
    n_customers: int,
    seed: int,
    window: Window,
    catalog: Catalog,
    config: SimulationConfig = DEFAULT_CONFIG,
) -> Iterator[Block]:
    """Blocks of config.block_size customers, lazily, in order."""
    for block_index, first in enumerate(range(0, n_customers, config.block_size)):
        size = min(config.block_size, n_customers - first)
        yield simulate_block(block_index, first, size, seed, window, catalog, config)


def count_blocks(n_customers: int, config: SimulationConfig = DEFAULT_CONFIG) -> int:
    return math.ceil(n_customers / config.block_size)


def make_catalog(n_customers: int, seed: int, config: SimulationConfig = DEFAULT_CONFIG) -> Catalog:
    return build_catalog(np.random.default_rng(catalog_seed(seed)), config.n_products(n_customers), config)


# ---------------------------------------------------------------------------
# Assembly: integer codes -> contract frames.
# ---------------------------------------------------------------------------
def make_ids(prefix: str, count: int, min_digits: int) -> pa.Array:
    """prefix + zero-padded 1-based numbers, built straight into an Arrow string buffer."""
    digits = max(min_digits, len(str(count)))
    width = len(prefix) + digits
    chars = np.empty((count, width), dtype=np.uint8)
    chars[:, : len(prefix)] = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    numbers = np.arange(1, count + 1, dtype=np.int64)
    for position in range(width - 1, len(prefix) - 1, -1):
        chars[:, position] = ord("0") + numbers % 10
        numbers //= 10
    offsets = np.arange(0, count * width + 1, width, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(chars.reshape(-1)))


def take_strings(values: pa.Array, codes: np.ndarray) -> pd.Series:
    """A pandas "str" column of values[codes]; negative codes become missing."""
    missing = codes < 0
    indices = pa.array(np.where(missing, 0, codes), mask=missing if missing.any() else None)
    return pd.Series(pd.array(values.take(indices), dtype="str"))


def string_values(values: Iterable[str]) -> pa.Array:
    return pa.array(list(values), type=pa.large_string())


def seconds_to_timestamps(second: np.ndarray, window: Window, missing: np.ndarray | None = None) -> pd.Series:
    """Seconds from window start to tz-naive datetime64[us] (the pandas 3 default unit)."""
    stamps = (window.start_microseconds + second.astype(np.int64) * 1_000_000).view("datetime64[us]")
    if missing is not None:
        stamps[missing] = np.datetime64("NaT")
    return pd.Series(stamps)


def assemble_tables(
    blocks: Iterable[Block],
    n_customers: int,
    window: Window,
    catalog: Catalog,
    config: SimulationConfig = DEFAULT_CONFIG,
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Concatenate blocks into the four contract tables and the ground-truth tables."""
    blocks = list(blocks)
    customer_ids = make_ids("C", n_customers, 7)
    product_ids = make_ids("P", catalog.n_products, 5)
    tables = {
        schema.CUSTOMERS: build_customers(blocks, customer_ids, window, config),
        schema.PRODUCTS: build_products(catalog, product_ids, config),
        schema.TRANSACTIONS: build_transactions(blocks, customer_ids, product_ids, window),
        schema.EVENTS: build_events(blocks, customer_ids, product_ids, window),
    }
    truth = {
        CUSTOMERS_TRUTH: build_customers_truth(blocks, customer_ids, product_ids, window, catalog, config),
        PRODUCT_GROUPS: build_product_groups(catalog, product_ids),
    }
    return tables, truth


def concat_field(blocks: list[Block], name: str) -> np.ndarray:
    return np.concatenate([getattr(block, name) for block in blocks])


def concat_profile(blocks: list[Block], name: str) -> np.ndarray:
    return np.concatenate([getattr(block.profiles, name) for block in blocks])


def build_customers(
    blocks: list[Block], customer_ids: pa.Array, window: Window, config: SimulationConfig
) -> pd.DataFrame:
    signup_second = concat_profile(blocks, "signup_day") * SECONDS_PER_DAY
    birth_year = concat_profile(blocks, "birth_year")
    return pd.DataFrame(
        {
            schema.CUSTOMER_ID: pd.Series(pd.array(customer_ids, dtype="str")),
            schema.SIGNUP_DATE: seconds_to_timestamps(signup_second, window),
            schema.BIRTH_YEAR: nullable_ints(birth_year, np.isnan(birth_year)),
            schema.GENDER: take_strings(string_values(schema.GENDERS), concat_profile(blocks, "gender")),
            schema.REGION: take_strings(string_values(config.regions), concat_profile(blocks, "region")),
            schema.MARKETING_OPT_IN: pd.arrays.BooleanArray(
                concat_profile(blocks, "opted_in"), ~concat_profile(blocks, "opt_in_known")
            ),
        }
    )


def nullable_ints(values: np.ndarray, missing: np.ndarray) -> pd.arrays.IntegerArray:
    """An Int64 column: what a Parquet reader returns for an integer column with gaps."""
    return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), missing.copy())


def build_products(catalog: Catalog, product_ids: pa.Array, config: SimulationConfig) -> pd.DataFrame:
    category_names = string_values(c.name for c in config.categories)
    return pd.DataFrame(
        {
            schema.PRODUCT_ID: pd.Series(pd.array(product_ids, dtype="str")),
            schema.CATEGORY: take_strings(category_names, catalog.category),
            schema.PRICE: catalog.price.astype(np.float64),
            schema.BRAND: take_strings(string_values(catalog.brand_names), catalog.brand),
            schema.REPLENISHMENT_DAYS: catalog.replenishment_days.astype(np.float64),
        }
    )


def build_transactions(
    blocks: list[Block], customer_ids: pa.Array, product_ids: pa.Array, window: Window
) -> pd.DataFrame:
    """Order lines, with order ids numbered in time order and lines sorted by order."""
    order_offsets = np.cumsum([0] + [len(block.order_second) for block in blocks])
    order_second = concat_field(blocks, "order_second")
    order_customer = concat_field(blocks, "order_customer")
    # Invoice numbers rise with time, as in a real order system; ties keep block order.
    chronological = np.argsort(order_second, kind="stable")
    order_number = np.empty_like(chronological)
    order_number[chronological] = np.arange(chronological.size)

    line_order = np.concatenate(
        [block.line_order + offset for block, offset in zip(blocks, order_offsets[:-1], strict=True)]
    )
    line_number = order_number[line_order]
    # Blocks are sorted runs already; a stable sort merges them and keeps products in order.
    line_sort = np.argsort(line_number, kind="stable")
    line_order, line_number = line_order[line_sort], line_number[line_sort]
    line_product = concat_field(blocks, "line_product")[line_sort]

    order_ids = make_ids("O", chronological.size, 8)
    return pd.DataFrame(
        {
            schema.ORDER_ID: take_strings(order_ids, line_number),
            schema.CUSTOMER_ID: take_strings(customer_ids, order_customer[line_order]),
            schema.PRODUCT_ID: take_strings(product_ids, line_product),
            schema.QUANTITY: concat_field(blocks, "line_quantity")[line_sort],
            schema.UNIT_PRICE: concat_field(blocks, "line_unit_price")[line_sort],
            schema.TIMESTAMP: seconds_to_timestamps(order_second[line_order], window),
            schema.CHANNEL: take_strings(
                string_values(schema.CHANNELS), concat_field(blocks, "order_channel")[line_order]
            ),
            schema.DISCOUNT: concat_field(blocks, "order_discount")[line_order],
        }
    )


def build_events(blocks: list[Block], customer_ids: pa.Array, product_ids: pa.Array, window: Window) -> pd.DataFrame:
    """Behaviour events in time order (ties keep the simulation's order)."""
    second = concat_field(blocks, "event_second")
    order = np.argsort(second, kind="stable")
    return pd.DataFrame(
        {
            schema.CUSTOMER_ID: take_strings(customer_ids, concat_field(blocks, "event_customer")[order]),
            schema.TIMESTAMP: seconds_to_timestamps(second[order], window),
            schema.EVENT_TYPE: take_strings(
                string_values(schema.EVENT_TYPES), concat_field(blocks, "event_type")[order]
            ),
            schema.PRODUCT_ID: take_strings(product_ids, concat_field(blocks, "event_product")[order]),
            schema.VALUE: concat_field(blocks, "event_value")[order],
        }
    )


def build_customers_truth(
    blocks: list[Block],
    customer_ids: pa.Array,
    product_ids: pa.Array,
    window: Window,
    catalog: Catalog,
    config: SimulationConfig,
) -> pd.DataFrame:
    """The hidden traits of every customer, one row each, in customer order."""
    category_names = string_values(c.name for c in config.categories)
    preference = concat_profile(blocks, "category_preference")
    top = np.argsort(-preference, axis=1, kind="stable")[:, :PREFERRED_CATEGORIES_COUNT]
    top_names = [category_names.take(pa.array(catalog.durable_categories[top[:, k]])) for k in range(top.shape[1])]
    preferred = pc.binary_join_element_wise(
        *top_names, pa.scalar(PREFERRED_CATEGORIES_SEPARATOR, type=pa.large_string())
    )
    dropout_second = concat_field(blocks, "dropout_second")
    dropout_date = seconds_to_timestamps(np.maximum(dropout_second, 0), window, dropout_second < 0)
    seasonal_month = concat_profile(blocks, "seasonal_month")
    return pd.DataFrame(
        {
            schema.CUSTOMER_ID: pd.Series(pd.array(customer_ids, dtype="str")),
            TRUTH_IS_BUYER: concat_profile(blocks, "is_buyer"),
            TRUTH_SATISFACTION: concat_profile(blocks, "satisfaction"),
            TRUTH_DROPOUT_DATE: dropout_date,
            TRUTH_BASE_PURCHASE_RATE: concat_profile(blocks, "purchase_rate"),
            TRUTH_PREFERRED_CATEGORIES: pd.Series(pd.array(preferred, dtype="str")),
            TRUTH_REPLENISHMENT_PRODUCT_ID: take_strings(product_ids, concat_profile(blocks, "replenishment_product")),
            TRUTH_REPLENISHMENT_CYCLE_DAYS: concat_profile(blocks, "replenishment_cycle"),
            TRUTH_SEASONAL_CATEGORY: take_strings(category_names, concat_profile(blocks, "seasonal_category")),
            TRUTH_SEASONAL_MONTH: nullable_ints(seasonal_month, seasonal_month == 0),
        }
    )


def build_product_groups(catalog: Catalog, product_ids: pa.Array) -> pd.DataFrame:
    """product_id -> group_id for every product in a bought-together group."""
    grouped = np.flatnonzero(catalog.group >= 0)
    group_ids = make_ids("G", max(catalog.n_groups, 1), 4)
    return pd.DataFrame(
        {
            schema.PRODUCT_ID: take_strings(product_ids, grouped),
            TRUTH_GROUP_ID: take_strings(group_ids, catalog.group[grouped]),
        }
    )


def generate_tables(
    n_customers: int,
    seed: int,
    start: str | pd.Timestamp = DEFAULT_START,
    end: str | pd.Timestamp = DEFAULT_END,
    config: SimulationConfig = DEFAULT_CONFIG,
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Simulate n_customers over [start, end] (both whole days, inclusive).

    Returns (tables, truth): the four contract tables keyed by schema table name, and the
    ground-truth frames keyed by CUSTOMERS_TRUTH and PRODUCT_GROUPS. The same arguments
    always give identical frames.
    """
    if n_customers < 1:
        raise ValueError("n_customers must be at least 1")
    window = Window.from_dates(start, end)
    catalog = make_catalog(n_customers, seed, config)
    blocks = simulate_blocks(n_customers, seed, window, catalog, config)
    return assemble_tables(blocks, n_customers, window, catalog, config)
