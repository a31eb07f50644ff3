"""`python -m pipelines.materialize`: fill the online profile store the scoring service reads.

    python -m pipelines.materialize --data data/sample [--profiles data/profiles.sqlite] [--as-of 2025-10-01]

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

from features import schema as s
from pipelines.cli import (
    add_as_of_argument,
    add_config_arguments,
    add_data_argument,
    add_profiles_argument,
    now_utc,
    parse_as_of,
    refuse_store_option,
)
from pipelines.errors import exits_cleanly_on_user_error
from pipelines.profiles import materialize
from pipelines.settings import load_settings
from pipelines.store import default_store_path
from pipelines.validate import load_valid_tables


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.materialize", description=__doc__.split("\n")[0])
    add_data_argument(parser)
    add_as_of_argument(parser, "materialise the profiles as of this date")
    add_profiles_argument(parser, "profile store file (default: $SCORING_STORE_PATH or data/profiles.sqlite)")
    refuse_store_option(parser)
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    settings = load_settings(args.config, args.overrides)
    store_path = args.profiles or default_store_path()

    started = time.perf_counter()
    tables, _ = load_valid_tables(args.data, now_utc(), required_tables=[s.TRANSACTIONS])
    as_of = parse_as_of(args.as_of, tables)
    count = materialize(tables, as_of, settings, store_path)
    print(f"{count:,} customer profiles at {as_of.date()} -> {store_path} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
