"""`python -m pipelines.features`: the customer profile table at an as_of date.

    python -m pipelines.features --data data/sample --as-of 2025-10-01 --out profiles.parquet

One row per customer known before as_of: every model feature, RFM scores, rfm_segment and
lifecycle_stage, plus age band, gender, region and favourite category for filtering.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pipelines.cli import add_as_of_argument, add_config_arguments, add_data_argument, now_utc, parse_as_of
from pipelines.errors import UserError, exits_cleanly_on_user_error
from pipelines.io import write_table
from pipelines.profiles import build_profiles, build_reference
from pipelines.settings import load_settings
from pipelines.validate import load_valid_tables


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.features", description=__doc__.split("\n")[0])
    add_data_argument(parser)
    add_as_of_argument(parser, "build the profiles as of this date")
    parser.add_argument("--out", type=Path, required=True, help="output .parquet or .csv")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    settings = load_settings(args.config, args.overrides)

    started = time.perf_counter()
    tables, _ = load_valid_tables(args.data, now_utc())
    as_of = parse_as_of(args.as_of, tables)
    reference = build_reference(tables, as_of, settings.propensity.top_categories)
    profiles = build_profiles(tables, as_of, settings.features, reference)
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
