"""A vectorised simulation of customers who browse, buy, return, complain and drop out.

Pure numpy until assembly: no file I/O, no clock, no global random state. `generate_tables` is the
entry point; `make_catalog` + `simulate_blocks` + `assemble_tables` are the same thing split so a
caller can show progress (`count_blocks` says how many blocks to expect).

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

Modules, in the order the data flows:
- `window`: the simulated period, the default dates and the time units (days inside, seconds out);
- `config`: `SimulationConfig`, the category table and the other defaults, as frozen data;
- `sampling`: small vectorised helpers (ragged ranges, categorical, uniform and Poisson draws);
- `catalog`: the products, their Zipf popularity and the bought-together groups;
- `profiles`: each customer's attributes and hidden traits;
- `events`: the integer-coded event buffers and the clamping of event times;
- `dropout`: support tickets, NPS answers and the dropout day, all driven by satisfaction;
- `orders`: base, seasonal and replenishment orders, their lines, group partners and returns;
- `behaviour`: pre-purchase browsing, idle browsing sessions and email opens;
- `blocks`: one block of customers simulated from its own random stream, and the block sequence;
- `columns`: integer codes -> Arrow strings, ids, timestamps and nullable integer columns;
- `truth`: the ground-truth file and column names and the truth frames;
- `tables`: blocks -> the four contract tables, and `generate_tables`.
"""

from pipelines.simulation.blocks import Block, count_blocks, make_catalog, simulate_blocks
from pipelines.simulation.catalog import Catalog
from pipelines.simulation.config import DEFAULT_CATEGORIES, DEFAULT_CONFIG, Category, SimulationConfig
from pipelines.simulation.tables import assemble_tables, generate_tables
from pipelines.simulation.truth import (
    CUSTOMERS_TRUTH,
    PREFERRED_CATEGORIES_COUNT,
    PREFERRED_CATEGORIES_SEPARATOR,
    PRODUCT_GROUPS,
    TRUTH_BASE_PURCHASE_RATE,
    TRUTH_DIR_NAME,
    TRUTH_DROPOUT_DATE,
    TRUTH_GROUP_ID,
    TRUTH_IS_BUYER,
    TRUTH_PREFERRED_CATEGORIES,
    TRUTH_REPLENISHMENT_CYCLE_DAYS,
    TRUTH_REPLENISHMENT_PRODUCT_ID,
    TRUTH_SATISFACTION,
    TRUTH_SEASONAL_CATEGORY,
    TRUTH_SEASONAL_MONTH,
    TRUTH_SUMMARY_FILE,
)
from pipelines.simulation.window import DEFAULT_END, DEFAULT_START, Window

__all__ = [
    "CUSTOMERS_TRUTH",
    "DEFAULT_CATEGORIES",
    "DEFAULT_CONFIG",
    "DEFAULT_END",
    "DEFAULT_START",
    "PREFERRED_CATEGORIES_COUNT",
    "PREFERRED_CATEGORIES_SEPARATOR",
    "PRODUCT_GROUPS",
    "TRUTH_BASE_PURCHASE_RATE",
    "TRUTH_DIR_NAME",
    "TRUTH_DROPOUT_DATE",
    "TRUTH_GROUP_ID",
    "TRUTH_IS_BUYER",
    "TRUTH_PREFERRED_CATEGORIES",
    "TRUTH_REPLENISHMENT_CYCLE_DAYS",
    "TRUTH_REPLENISHMENT_PRODUCT_ID",
    "TRUTH_SATISFACTION",
    "TRUTH_SEASONAL_CATEGORY",
    "TRUTH_SEASONAL_MONTH",
    "TRUTH_SUMMARY_FILE",
    "Block",
    "Catalog",
    "Category",
    "SimulationConfig",
    "Window",
    "assemble_tables",
    "count_blocks",
    "generate_tables",
    "make_catalog",
    "simulate_blocks",
]
