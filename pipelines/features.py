"""`python -m pipelines.features`: the customer profile table at an as_of date.

    python -m pipelines.features --data data/sample --as-of 2025-10-01 --out profiles.parquet

One row per customer known before as_of: every model feature, RFM scores, rfm_segment and
lifecycle_stage, plus age band, gender, region and favourite category for filtering.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import pandas as pd

from features import schema as s
from features.customer import FeatureWindows, History, build_reference_tables
from features.parallel import build_customer_features_sharded
from pipelines.errors import UserError, exits_cleanly_on_user_error
from pipelines.io import write_table
from pipelines.settings import FeatureSettings, add_config_arguments, load_settings


def parse_as_of(text: str | None, tables: dict[str, pd.DataFrame], option: str = "--as-of") -> pd.Timestamp:
    """The cutoff: the given date, or the day after the last record when none is given."""
    if text is None:
        return data_end(tables)
    try:
        return pd.Timestamp(date.fromisoformat(text))
    except (ValueError, TypeError) as error:
        raise UserError(f"{option} {text!r}: not a date (use YYYY-MM-DD)") from error


def data_end(tables: dict[str, pd.DataFrame]) -> pd.Timestamp:
    """The day after the last transaction or event: the exclusive end of the history."""
    last = [
        tables[name][s.TIMESTAMP].max() for name in (s.TRANSACTIONS, s.EVENTS) if name in tables and len(tables[name])
    ]
    if not last:
        raise UserError("no transactions or events to build features from")
    return max(last).normalize() + pd.Timedelta(days=1)


def build_profiles(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, settings: FeatureSettings) -> pd.DataFrame:
    """The profile table: reference tables at as_of, then the sharded feature build."""
    reference = build_reference_tables(tables, as_of, settings.top_categories)
    windows = FeatureWindows(settings.windows_days, settings.behaviour_windows_days)
    return build_customer_features_sharded(
        History.from_tables(tables), as_of, reference, windows, n_jobs=settings.n_jobs
    )


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.features", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with the contract tables")
    parser.add_argument("--as-of", default=None, help="cutoff date YYYY-MM-DD (default: day after the last record)")
    parser.add_argument("--out", type=Path, required=True, help="output .parquet or .csv")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    settings = load_settings(args.config, args.overrides)

    from pipelines.validate import load_valid_tables

    started = time.perf_counter()
    tables, _ = load_valid_tables(args.data, pd.Timestamp.now("UTC").tz_localize(None))
    as_of = parse_as_of(args.as_of, tables)
    profiles = build_profiles(tables, as_of, settings.features)
    if profiles.empty:
        raise UserError(f"{args.data}: no customer is known before {as_of.date()}")
    write_table(profiles, args.out)
    elapsed = time.perf_counter() - started
    print(
        f"{len(profiles):,} customer profiles at {as_of.date()} -> {args.out} "
        f"({elapsed:.1f} s, {len(profiles) / max(elapsed, 1e-9):,.0f} rows/s)",
        file=sys.stdout,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
