"""Configuration as data: every knob of the simulation, frozen, with the defaults.

The category table fixes each category's price level, catalogue share, seasonal month and pack
sizes; `SimulationConfig` holds the rates. Both are part of the output's definition: the same
config and seed always give the same tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from features import schema


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
