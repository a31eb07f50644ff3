"""Blocks of customers, each simulated from its own random stream, and the catalogue's stream.

A block's stream is derived from (seed, block index), so the output depends only on the
arguments and not on how the blocks are scheduled.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pipelines.simulation.behaviour import add_browsing_sessions, add_email_events, add_pre_purchase_bursts
from pipelines.simulation.catalog import Catalog, build_catalog
from pipelines.simulation.config import DEFAULT_CONFIG, SimulationConfig
from pipelines.simulation.dropout import simulate_support_and_dropout
from pipelines.simulation.events import EventParts, clamp_event_seconds
from pipelines.simulation.orders import concatenate_lines, concatenate_orders, simulate_orders, simulate_returns
from pipelines.simulation.profiles import Profiles, draw_profiles
from pipelines.simulation.window import Window, days_to_seconds


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
