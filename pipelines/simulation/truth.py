"""The hidden ground truth: its file and column names, and the frames that hold it.

These are not contract columns and never appear in the four tables; they live only in DIR/_truth/.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features import schema
from pipelines.simulation.blocks import Block
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
from pipelines.simulation.config import SimulationConfig
from pipelines.simulation.window import Window

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
