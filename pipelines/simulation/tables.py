"""Assembly: simulated blocks -> the four contract tables and the truth; `generate_tables`, the entry point."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa

from features import schema
from pipelines.simulation.blocks import Block, make_catalog, simulate_blocks
from pipelines.simulation.catalog import Catalog
from pipelines.simulation.columns import (
    concat_field,
    concat_profile,
    make_ids,
    nullable_ints,
    seconds_to_timestamps,
    string_values,
    take_strings,
)
from pipelines.simulation.config import DEFAULT_CONFIG, SimulationConfig
from pipelines.simulation.truth import (
    CUSTOMERS_TRUTH,
    PRODUCT_GROUPS,
    build_customers_truth,
    build_product_groups,
)
from pipelines.simulation.window import DEFAULT_END, DEFAULT_START, SECONDS_PER_DAY, Window


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
    """Behaviour events in time order (ties keep the simulation's order), with event ids numbered in
    that order, as a sender that keeps a counter would number them."""
    second = concat_field(blocks, "event_second")
    order = np.argsort(second, kind="stable")
    return pd.DataFrame(
        {
            schema.EVENT_ID: pd.Series(pd.array(make_ids("E", order.size, 9), dtype="str")),
            schema.CUSTOMER_ID: take_strings(customer_ids, concat_field(blocks, "event_customer")[order]),
            schema.TIMESTAMP: seconds_to_timestamps(second[order], window),
            schema.EVENT_TYPE: take_strings(
                string_values(schema.EVENT_TYPES), concat_field(blocks, "event_type")[order]
            ),
            schema.PRODUCT_ID: take_strings(product_ids, concat_field(blocks, "event_product")[order]),
            schema.VALUE: concat_field(blocks, "event_value")[order],
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
