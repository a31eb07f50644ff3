"""`python -m pipelines.score`: the champion models' outputs for every customer known before as_of.

    python -m pipelines.score --data data/sample [--as-of 2025-10-01] --out scores.parquet [--k 10]

Columns: customer_id, churn_probability, purchase_probability, purchase_probability_<category>
for the top categories, rfm_segment, lifecycle_stage. Parquet, or CSV by the file's extension.
Customers are scored in chunks (memory stays bounded), with a progress bar.

With `--k K`, the registered recommender adds `recommendations`: each customer's top K product
ids, best first (products they own are left out, consumables due for restock kept; customers
with no purchase get the most popular items). A Parquet list column; in CSV, a JSON array
(`["P0012", "P0007"]`). Its candidate sources are refitted on the purchases before as_of when
as_of is not the model's own (new data since training, or scoring the past).

churn_probability is empty for customers outside the churn population (no purchase in the
lookback): they are prospects or already lapsed, and cannot churn.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from features import schema as s
from features.customer import FeatureWindows, History, build_reference_tables
from features.parallel import build_customer_features_sharded, shard_positions, take_shard
from models import churn, propensity
from models.recommender_evaluation import lists_from_frame
from pipelines.errors import UserError, exits_cleanly_on_user_error
from pipelines.features import parse_as_of
from pipelines.io import write_table
from pipelines.materialize import add_profiles_argument, fill_profile_store
from pipelines.settings import Settings, add_config_arguments, load_settings

DEFAULT_CHUNK_CUSTOMERS = 200_000
PROFILE_COLUMNS = (s.RFM_SEGMENT, s.LIFECYCLE_STAGE)


def score_features(features: pd.DataFrame, models: dict, lookback_days: int) -> pd.DataFrame:
    """The output rows for a feature table: ids, every model output, segment and stage."""
    scores = pd.DataFrame({s.CUSTOMER_ID: features[s.CUSTOMER_ID].to_numpy()})
    for model in models.values():
        predicted = model.predict_frame(features.reset_index(drop=True))
        for column in predicted:
            scores[column] = predicted[column].to_numpy()
    if s.CHURN_PROBABILITY in scores:
        in_population = features[s.DAYS_SINCE_LAST_PURCHASE].to_numpy() < lookback_days
        in_population &= features[s.ORDERS_COUNT_TOTAL].to_numpy() > 0
        scores[s.CHURN_PROBABILITY] = np.where(in_population, scores[s.CHURN_PROBABILITY], np.nan)
    for column in PROFILE_COLUMNS:
        scores[column] = features[column].to_numpy()
    return scores


def score_tables(
    tables: dict[str, pd.DataFrame],
    as_of: pd.Timestamp,
    models: dict,
    settings: Settings,
    chunk_customers: int = DEFAULT_CHUNK_CUSTOMERS,
) -> pd.DataFrame:
    """Score every customer known before as_of, chunk by chunk (same shards as feature building)."""
    reference = build_reference_tables(tables, as_of, settings.features.top_categories)
    history = History.from_tables(tables)
    n_customers = pd.concat([history.customers[s.CUSTOMER_ID], history.transactions[s.CUSTOMER_ID]]).nunique()
    n_chunks = max(1, math.ceil(n_customers / chunk_customers))
    windows = FeatureWindows(settings.features.windows_days, settings.features.behaviour_windows_days)
    # one chunk of customers in memory at a time: positions are cheap, rows are taken per chunk
    positions = shard_positions(history, n_chunks, as_of)
    parts = []
    for chunk in tqdm(range(n_chunks), desc="scoring", unit="chunk", disable=n_chunks == 1):
        features = build_customer_features_sharded(
            take_shard(history, positions, chunk), as_of, reference, windows, n_jobs=settings.features.n_jobs
        )
        if len(features):
            parts.append(score_features(features, models, settings.churn.lookback_days))
    if not parts:
        raise UserError(f"no customer is known before {as_of.date()}")
    return pd.concat(parts, ignore_index=True).sort_values(s.CUSTOMER_ID, ignore_index=True)


def recommend_products(
    recommender,
    tables: dict[str, pd.DataFrame],
    as_of: pd.Timestamp,
    customer_ids: list[str],
    k: int,
    chunk_customers: int = DEFAULT_CHUNK_CUSTOMERS,
) -> list[list[str]]:
    """Each customer's top-k product ids, best first, as of `as_of` (candidates refreshed when needed)."""
    if pd.Timestamp(recommender.as_of_) != as_of:
        if s.PRODUCTS not in tables:
            raise UserError(f"--k {k}: recommendations need the products table")
        recommender = recommender.refresh_candidates(tables[s.TRANSACTIONS], tables[s.PRODUCTS], as_of)
    lists: list[list[str]] = []
    for start in tqdm(
        range(0, len(customer_ids), chunk_customers),
        desc="recommending",
        unit="chunk",
        disable=len(customer_ids) <= chunk_customers,
    ):
        chunk = customer_ids[start : start + chunk_customers]
        lists.extend(lists_from_frame(recommender.recommend(chunk, k=k), chunk))
    return lists


def load_models(store: Path, alias: str) -> dict:
    from pipelines import registry

    registry.connect(store)
    return {name: registry.load_model(name, alias) for name in (churn.MODEL_NAME, propensity.MODEL_NAME)}


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.score", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with the contract tables")
    parser.add_argument("--as-of", default=None, help="score as of this date (default: day after the last record)")
    parser.add_argument("--out", type=Path, required=True, help="output .parquet or .csv")
    parser.add_argument(
        "--store",
        type=Path,
        default=Path("mlruns"),
        help="local MLflow store folder (ignored when MLFLOW_TRACKING_URI is set)",
    )
    parser.add_argument("--alias", default="champion", help="which registered version to use (default: champion)")
    parser.add_argument(
        "--chunk-customers", type=int, default=DEFAULT_CHUNK_CUSTOMERS, help="customers per scoring chunk"
    )
    parser.add_argument(
        "--k",
        type=int,
        default=None,
        help="add a 'recommendations' column: each customer's top K product ids from the recommender",
    )
    add_profiles_argument(parser)
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    settings = load_settings(args.config, args.overrides)
    if args.out.suffix not in (".parquet", ".csv"):
        raise UserError(f"--out {args.out}: use a .parquet or .csv file name")
    if args.k is not None and args.k < 1:
        raise UserError(f"--k {args.k}: the number of recommendations must be at least 1")

    from pipelines.validate import load_valid_tables

    started = time.perf_counter()
    models = load_models(args.store, args.alias)
    recommender = None
    if args.k is not None:
        from pipelines import registry
        from pipelines.train import RECOMMENDER

        recommender = registry.load_model(RECOMMENDER, args.alias)
    tables, _ = load_valid_tables(args.data, pd.Timestamp.now("UTC").tz_localize(None))
    as_of = parse_as_of(args.as_of, tables)
    scores = score_tables(tables, as_of, models, settings, args.chunk_customers)
    if recommender is not None:
        lists = recommend_products(
            recommender, tables, as_of, scores[s.CUSTOMER_ID].tolist(), args.k, args.chunk_customers
        )
        scores[s.RECOMMENDATIONS] = [json.dumps(ids) for ids in lists] if args.out.suffix == ".csv" else lists
    write_table(scores, args.out)
    print(f"{len(scores):,} customers scored at {as_of.date()} -> {args.out} ({time.perf_counter() - started:.1f} s)")
    if args.profiles is not None:
        fill_profile_store(tables, as_of, settings, args.profiles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
