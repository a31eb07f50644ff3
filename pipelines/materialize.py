"""`python -m pipelines.materialize`: fill the online profile store the scoring service reads.

    python -m pipelines.materialize --data data/sample [--store data/profiles.sqlite] [--as-of 2025-10-01]

Validates the data folder like every pipeline step, builds every customer's profile at as_of (default:
the day after the last record), and writes into the SQLite store (default `data/profiles.sqlite`, or
`$SCORING_STORE_PATH`): the batch history rows (customers, transactions, events; the service rebuilds
a profile from them after POST /events), the profiles, and the reference tables and feature windows
they were built with. The store is a copy of the data folder afterwards: rows appended through
/events since the last materialisation are replaced, so feed them into the data folder first.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from features import schema as s
from features.customer import FeatureWindows, History, build_reference_tables
from features.parallel import build_customer_features_sharded
from pipelines.errors import UserError, exits_cleanly_on_user_error
from pipelines.features import parse_as_of
from pipelines.settings import Settings, add_config_arguments, load_settings
from service.handlers import MaterializedState, write_materialized_state
from service.store import HISTORY_TABLES, SQLiteProfileStore, default_store_path


def materialize(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, settings: Settings, store_path: Path) -> int:
    """Write the history before as_of, the profiles at as_of and their reference state; returns the profile count."""
    past = History.from_tables(tables).before(as_of)
    tables = {**tables, s.CUSTOMERS: past.customers, s.TRANSACTIONS: past.transactions, s.EVENTS: past.events}
    reference = build_reference_tables(tables, as_of, settings.features.top_categories)
    windows = FeatureWindows(settings.features.windows_days, settings.features.behaviour_windows_days)
    profiles = build_customer_features_sharded(past, as_of, reference, windows, n_jobs=settings.features.n_jobs)
    if profiles.empty:
        raise UserError(f"no customer is known before {as_of.date()}")
    with SQLiteProfileStore(store_path) as store:
        store.clear_history()
        store.append_rows({name: tables[name] for name in HISTORY_TABLES if name in tables})
        store.put_profiles(profiles, as_of, replace=True)
        write_materialized_state(
            store, MaterializedState(reference, windows, as_of, churn_lookback_days=settings.churn.lookback_days)
        )
    return len(profiles)


def add_profiles_argument(parser) -> None:
    """`--profiles FILE` for pipelines.train and pipelines.score: also fill the service's profile store."""
    parser.add_argument(
        "--profiles",
        type=Path,
        default=None,
        help="also fill this profile store for the scoring service (history and profiles at as_of), "
        "as pipelines.materialize does",
    )


def fill_profile_store(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, settings: Settings, path: Path) -> None:
    started = time.perf_counter()
    count = materialize(tables, as_of, settings, path)
    print(f"{count:,} customer profiles at {as_of.date()} -> {path} ({time.perf_counter() - started:.1f} s)")


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.materialize", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with the contract tables")
    parser.add_argument("--as-of", default=None, help="cutoff date YYYY-MM-DD (default: day after the last record)")
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        help="profile store file (default: $SCORING_STORE_PATH or data/profiles.sqlite)",
    )
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    settings = load_settings(args.config, args.overrides)
    store_path = args.store or default_store_path()

    from pipelines.validate import load_valid_tables

    started = time.perf_counter()
    tables, _ = load_valid_tables(
        args.data, pd.Timestamp.now("UTC").tz_localize(None), required_tables=[s.TRANSACTIONS]
    )
    as_of = parse_as_of(args.as_of, tables)
    count = materialize(tables, as_of, settings, store_path)
    print(f"{count:,} customer profiles at {as_of.date()} -> {store_path} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
