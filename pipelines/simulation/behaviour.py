"""Browsing and email: research and checkout sessions before purchases, idle browsing, email opens."""

from __future__ import annotations

import numpy as np

from pipelines.simulation.catalog import Catalog
from pipelines.simulation.config import SimulationConfig
from pipelines.simulation.events import (
    ADD_TO_CART,
    EMAIL_CLICK,
    EMAIL_OPEN,
    PRODUCT_VIEW,
    SEARCH,
    SESSION_START,
    EventParts,
)
from pipelines.simulation.orders import Orders
from pipelines.simulation.profiles import Profiles
from pipelines.simulation.sampling import draw_rows_categorical, draw_time_of_day, ragged_arange, uniform_between
from pipelines.simulation.window import DAYS_PER_YEAR, MINUTE, Window


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
