"""`python -m pipelines.score`: the champion models' outputs for every customer known before as_of.

    python -m pipelines.score --data data/sample [--as-of 2025-10-01] --out scores.parquet [--k 10]
                              [--models churn,propensity,clv,recommender] [--due-within 30 [--due-out FILE]]
                              [--set clv.horizon_days=120 ...]

Columns: customer_id, churn_probability, purchase_probability, purchase_probability_<category>
for every category, top_categories (the customer's `propensity.top_categories` most likely
categories, best first: a list column, in CSV a JSON array), the customer value columns,
rfm_segment, lifecycle_stage. Parquet, or CSV by the file's extension. Customers are scored in
chunks (memory stays bounded), with a progress bar.

Customer value (`clv`, `models.value_model`) over the model's horizon (365 days unless trained
otherwise; another with `--set clv.horizon_days=N`, likewise clv.interval and
clv.discount_rate_annual): expected_orders, clv (expected spend), clv_low and clv_high (the 80 %
prediction interval), p_active (the chance the customer is still a customer), next_purchase_days
with next_purchase_low_days and next_purchase_high_days (the median wait to the next order given
they are active, and its interval), and the same as dates: next_purchase_date, next_purchase_low,
next_purchase_high. Empty for customers who never bought (nothing to extrapolate from).

Which models: those named by `--models`, each of which must have a version with `--alias`; by
default every feature-row model (churn, propensity, clv) that has one (a missing one is noted on
stderr and its columns are left out), and the recommender when `--k` asks for lists. Without
`--models` and `--k`, a registry with no model at all is an error, unless `--due-within` asks for
the due table, which needs none: then the scores hold customer_id, rfm_segment and lifecycle_stage
only.

With `--k K`, the registered recommender adds `recommendations`: each customer's top K product
ids, best first (products they own are left out, consumables due for restock kept; customers
with no purchase get the most popular items). A Parquet list column; in CSV, a JSON array
(`["P0012", "P0007"]`). Its candidate sources are refitted on the purchases before as_of when
as_of is not the model's own (new data since training, or scoring the past).

churn_probability is empty for customers outside the churn population (`features.population`: no
purchase in the lookback): they are prospects or already lapsed, and cannot churn.

With `--due-within DAYS` (a whole number, at least 1), a second table lists what each customer is
due to buy in [as_of, as_of + DAYS): `models.due.build_due_products` over the same validated tables
at the same as_of, a rule over the purchase history that needs no registered model. One row per
(customer, product) whose 80 % interval reaches into the window, overdue ones included (due now),
sorted by customer then due date. Columns: customer_id, product_id, category, due_date, due_low,
due_high (the interval's first and last day), due_probability (of buying inside the window),
due_reason (in words), due_kind (replenishment or seasonal), expected_quantity. It goes to
`--due-out` (.parquet or .csv), by default beside `--out` with `_due` before the extension
(scores.parquet -> scores_due.parquet); in CSV, dates are written as YYYY-MM-DD.
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
from features.history import History
from features.parallel import build_customer_features_sharded, shard_positions, take_shard
from features.population import churn_population
from models.affinity import top_categories
from models.due import build_due_products
from models.names import CLV, FEATURE_ROW_MODELS, MODEL_NAMES, RECOMMENDER
from models.recommender_evaluation import lists_from_frame
from pipelines import registry
from pipelines.cli import (
    add_as_of_argument,
    add_config_arguments,
    add_data_argument,
    add_mlflow_store_argument,
    add_profiles_argument,
    now_utc,
    parse_as_of,
    parse_models,
    train_command,
)
from pipelines.errors import UserError, exits_cleanly_on_user_error
from pipelines.io import write_table
from pipelines.profiles import build_reference, feature_windows, fill_profile_store
from pipelines.settings import Settings, load_settings
from pipelines.training.value import scoring_config
from pipelines.validate import load_valid_tables

DEFAULT_CHUNK_CUSTOMERS = 200_000
PROFILE_COLUMNS = (s.RFM_SEGMENT, s.LIFECYCLE_STAGE)


def score_features(features: pd.DataFrame, models: dict, lookback_days: int) -> pd.DataFrame:
    """The output rows for a feature table: ids, every model output, segment and stage."""
    scores = pd.DataFrame({s.CUSTOMER_ID: features[s.CUSTOMER_ID].to_numpy()})
    for model in models.values():
        predicted = model.predict_frame(features.reset_index(drop=True))
        for column in predicted:
            scores[column] = predicted[column].to_numpy()
        scorer = getattr(model, "category_scorer", None)
        if scorer is not None:
            table = predicted[scorer.outputs].to_numpy()
            scores[s.TOP_CATEGORIES] = [
                [category for category, _ in top] for top in top_categories(table, scorer.categories, scorer.top_k)
            ]
    if s.CHURN_PROBABILITY in scores:
        in_population = churn_population(features, lookback_days)
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
    reference = build_reference(tables, as_of, settings.propensity.top_categories)
    history = History.from_tables(tables)
    n_customers = pd.concat([history.customers[s.CUSTOMER_ID], history.transactions[s.CUSTOMER_ID]]).nunique()
    n_chunks = max(1, math.ceil(n_customers / chunk_customers))
    windows = feature_windows(settings.features)
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


def parse_due_within(text: str) -> int:
    """`--due-within DAYS`: a whole number of days, at least 1 (a one-line UserError otherwise)."""
    try:
        days = int(text)
    except ValueError:
        raise UserError(f"--due-within {text!r}: not a whole number of days (e.g. --due-within 30)") from None
    if days < 1:
        raise UserError(f"--due-within {days}: the window must be at least 1 day (e.g. --due-within 30)")
    return days


def choose_due_out(out: Path, due_out: Path | None, due_within: int | None) -> Path | None:
    """Where the due table goes: `--due-out`, else beside `out` with `_due` before the extension
    (scores.parquet -> scores_due.parquet); None without `--due-within`. UserError for a bad name."""
    if due_within is None:
        if due_out is not None:
            raise UserError(f"--due-out {due_out}: give --due-within DAYS too (e.g. --due-within 30)")
        return None
    if due_out is None:
        return out.with_name(f"{out.stem}_due{out.suffix}")
    if due_out.suffix not in (".parquet", ".csv"):
        raise UserError(f"--due-out {due_out}: use a .parquet or .csv file name")
    if due_out.resolve() == out.resolve():
        raise UserError(f"--due-out {due_out}: the same file as --out; name another")
    return due_out


def choose_versions(
    requested: list[str] | None, alias: str, with_lists: bool, uri: str, none_needed: bool = False
) -> dict[str, str]:
    """The version holding `alias` of each model to score with (model name -> version).

    Named models (`--models`, and the recommender when `with_lists`) must all have one: UserError
    naming the missing ones. Otherwise every outcome model that has one is used and each missing one
    is noted on stderr; UserError when none has one, unless `none_needed` (the command has output
    that needs no model, the due table): then every missing one is only noted.
    """
    wanted = list(requested) if requested is not None else list(FEATURE_ROW_MODELS)
    required = set(wanted) if requested is not None else set()
    if with_lists:
        # --k asks for the recommender by name, whatever --models says
        wanted = list(dict.fromkeys([*wanted, RECOMMENDER]))
        required.add(RECOMMENDER)
    elif RECOMMENDER in wanted:
        raise UserError(f"--models: {RECOMMENDER} gives lists only with --k K (e.g. --k 10)")
    found = {name: registry.version_with_alias(name, alias) for name in wanted}
    missing = [name for name in wanted if found[name] is None]
    missing_required = [name for name in missing if name in required]
    if missing_required:
        model, it = ("model", "it") if len(missing_required) == 1 else ("models", "them")
        raise UserError(
            f"no '{alias}' version of {model} {', '.join(map(repr, missing_required))} in {uri}; "
            f"train {it} with {train_command(missing_required)}"
        )
    if len(missing) == len(wanted) and not none_needed:
        # a user who trained only the recommender and forgot --k is told where the lists are
        lists_hint = ""
        if not with_lists and registry.version_with_alias(RECOMMENDER, alias) is not None:
            lists_hint = f"; the registered {RECOMMENDER} gives lists with --k K"
        raise UserError(
            f"no '{alias}' version of {' or '.join(wanted)} in {uri}; "
            f"run `make train` first (or {train_command(wanted)}){lists_hint}"
        )
    for name in missing:
        print(
            f"note: no {alias} of {name!r}; its columns are left out (train it with {train_command([name])})",
            file=sys.stderr,
        )
    return {name: version for name, version in found.items() if version is not None}


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.score", description=__doc__.split("\n")[0])
    add_data_argument(parser)
    add_as_of_argument(parser, "score as of this date")
    parser.add_argument("--out", type=Path, required=True, help="output .parquet or .csv")
    add_mlflow_store_argument(parser)
    parser.add_argument(
        "--alias", default=registry.CHAMPION, help=f"which registered version to use (default: {registry.CHAMPION})"
    )
    parser.add_argument(
        "--chunk-customers", type=int, default=DEFAULT_CHUNK_CUSTOMERS, help="customers per scoring chunk"
    )
    parser.add_argument(
        "--k",
        type=int,
        default=None,
        help="add a 'recommendations' column: each customer's top K product ids from the recommender",
    )
    parser.add_argument(
        "--models",
        default=None,
        help=f"comma-separated: {', '.join(MODEL_NAMES)} (default: every model with an --alias version; "
        "the recommender with --k)",
    )
    parser.add_argument(
        "--due-within",
        type=parse_due_within,
        default=None,
        metavar="DAYS",
        help="also write what each customer is due to buy within DAYS days of as_of (needs no registered model)",
    )
    parser.add_argument(
        "--due-out",
        type=Path,
        default=None,
        metavar="FILE",
        help="the due table's .parquet or .csv (default: beside --out, with _due before the extension)",
    )
    add_profiles_argument(parser)
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    settings = load_settings(args.config, args.overrides)
    if args.out.suffix not in (".parquet", ".csv"):
        raise UserError(f"--out {args.out}: use a .parquet or .csv file name")
    if args.k is not None and args.k < 1:
        raise UserError(f"--k {args.k}: the number of recommendations must be at least 1")
    due_out = choose_due_out(args.out, args.due_out, args.due_within)
    requested = parse_models(args.models) if args.models is not None else None

    started = time.perf_counter()
    uri = registry.connect(args.mlflow_store)
    versions = choose_versions(requested, args.alias, args.k is not None, uri, none_needed=due_out is not None)
    recommender_version = versions.pop(RECOMMENDER, None)
    models = registry.load_models(versions)
    if CLV in models:
        models[CLV] = models[CLV].with_config(scoring_config(models[CLV], settings))
    recommender = registry.load_version(RECOMMENDER, recommender_version) if recommender_version else None
    tables, _ = load_valid_tables(args.data, now_utc())
    if due_out is not None and s.TRANSACTIONS not in tables:  # said before the scoring, not after it
        raise UserError(f"--due-within {args.due_within}: due products need the transactions table")
    as_of = parse_as_of(args.as_of, tables)
    scores = score_tables(tables, as_of, models, settings, args.chunk_customers)
    if recommender is not None:
        lists = recommend_products(
            recommender, tables, as_of, scores[s.CUSTOMER_ID].tolist(), args.k, args.chunk_customers
        )
        scores[s.RECOMMENDATIONS] = [json.dumps(ids) for ids in lists] if args.out.suffix == ".csv" else lists
    if s.TOP_CATEGORIES in scores and args.out.suffix == ".csv":
        scores[s.TOP_CATEGORIES] = [json.dumps(names) for names in scores[s.TOP_CATEGORIES]]
    write_table(scores, args.out)
    print(f"{len(scores):,} customers scored at {as_of.date()} -> {args.out} ({time.perf_counter() - started:.1f} s)")
    if due_out is not None:
        started = time.perf_counter()
        # about 30 s for a million customers, with no bar of its own: say what is running
        print(f"due products within {args.due_within} days of {as_of.date()} ...", file=sys.stderr, flush=True)
        due = build_due_products(tables[s.TRANSACTIONS], tables.get(s.PRODUCTS), as_of, within_days=args.due_within)
        write_table(due, due_out)
        print(
            f"{len(due):,} due products for {due[s.CUSTOMER_ID].nunique():,} customers within {args.due_within} days "
            f"of {as_of.date()} -> {due_out} ({time.perf_counter() - started:.1f} s)"
        )
    if args.profiles is not None:
        fill_profile_store(tables, as_of, settings, args.profiles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
