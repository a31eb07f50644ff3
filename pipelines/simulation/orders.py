"""Orders and their lines: base, seasonal and replenishment purchases, bought-together groups, returns.

Every order falls before the customer's dropout, compared in whole seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.simulation.catalog import Catalog
from pipelines.simulation.config import SimulationConfig
from pipelines.simulation.profiles import Profiles
from pipelines.simulation.sampling import (
    draw_categorical,
    draw_rows_categorical,
    draw_time_of_day,
    ragged_arange,
    uniform_between,
    unique_values,
)
from pipelines.simulation.window import DAYS_PER_YEAR, Window, days_to_seconds


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
