"""Generate a deterministic sample data set: the four contract tables plus hidden ground truth.

    python -m pipelines.generate --customers 10000 --seed 1 --out data/sample [--format csv]
        [--start 2023-01-01] [--end 2025-12-31]

Writes DIR/customers.parquet, products, transactions and events (or .csv), and the ground truth
that later tests and benchmarks score models against in DIR/_truth/ (always Parquet, so NaT and
nullable integers survive): customers_truth.parquet, product_groups.parquet and truth.json.
Every event has an `event_id`, numbered in time order, as a sender that makes retries safe sends
them; the contract does not require one.
The same options always give byte-identical files; the dates default to fixed values, never
today. The simulation itself lives in `pipelines.simulation`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from datetime import date
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from features import schema
from pipelines import simulation
from pipelines.errors import UserError, exits_cleanly_on_user_error
from pipelines.io import TABLE_SUFFIXES, read_table, write_table, write_tables

FILE_FORMATS = ("parquet", "csv")
MAX_CUSTOMERS = 5_000_000  # about 100 million transactions: beyond that, memory on one machine
PROGRESS_MIN_CUSTOMERS = 200_000  # smaller runs take seconds; a bar would only add noise
TRUTH_FORMAT = "parquet"


@dataclasses.dataclass(frozen=True)
class GenerateOptions:
    """The command line, parsed and checked."""

    customers: int
    seed: int
    out: Path
    file_format: str
    start: date
    end: date


class _OneLineErrorParser(argparse.ArgumentParser):
    """argparse prints usage and exits itself; here a bad option is a one-line UserError."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(
        prog="python -m pipelines.generate",
        description="Write a deterministic sample data set with hidden ground truth.",
    )
    parser.add_argument("--customers", required=True, help="number of customers, e.g. 10000")
    parser.add_argument("--seed", required=True, help="random seed (a non-negative integer)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--format", default="parquet", dest="file_format", help="parquet or csv")
    parser.add_argument("--start", default=simulation.DEFAULT_START, help="first day, YYYY-MM-DD")
    parser.add_argument("--end", default=simulation.DEFAULT_END, help="last day, YYYY-MM-DD")
    return parser


def parse_options(argv: list[str] | None) -> GenerateOptions:
    """Parse and check the command line; raise UserError naming the bad option."""
    args = build_parser().parse_args(argv)
    customers = parse_int("--customers", args.customers, minimum=1, maximum=MAX_CUSTOMERS)
    seed = parse_int("--seed", args.seed, minimum=0)
    if args.file_format not in FILE_FORMATS:
        raise UserError(f"--format {args.file_format!r}: use one of {', '.join(FILE_FORMATS)}")
    start, end = parse_date("--start", args.start), parse_date("--end", args.end)
    if end <= start:
        raise UserError(f"--end {end} must be after --start {start}")
    check_output_folder(args.out, args.file_format)
    return GenerateOptions(customers, seed, args.out, args.file_format, start, end)


def parse_int(option: str, text: str, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise UserError(f"{option} {text!r} is not a whole number") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum:,}" if maximum is not None else ""
        raise UserError(f"{option} {value:,} is out of range: use at least {minimum:,}{upper}")
    return value


def parse_date(option: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{option} {text!r} is not a date; use YYYY-MM-DD") from None


def check_output_folder(out: Path, file_format: str) -> None:
    """Refuse a file as the folder, or a folder holding the same tables in the other format."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    other_suffixes = [suffix for suffix in TABLE_SUFFIXES if suffix != f".{file_format}"]
    for table_name in schema.TABLES:
        for suffix in other_suffixes:
            clash = out / f"{table_name}{suffix}"
            if clash.exists():
                raise UserError(f"--out {out}: already holds {clash.name}; remove it or use --format {suffix[1:]}")


def truth_dir(data_dir: Path) -> Path:
    return Path(data_dir) / simulation.TRUTH_DIR_NAME


def write_generated(
    tables: dict[str, pd.DataFrame],
    truth: dict[str, pd.DataFrame],
    summary: dict,
    out_dir: Path,
    file_format: str = "parquet",
    show_progress: bool = False,
) -> dict[str, Path]:
    """Write the tables to out_dir and the ground truth to out_dir/_truth; return the paths."""
    items = tqdm(tables.items(), desc="writing", unit="table", disable=not show_progress)
    paths = {}
    for name, frame in items:
        paths.update(write_tables({name: frame}, out_dir, file_format))
    for name, frame in truth.items():
        paths[name] = write_table(frame, truth_dir(out_dir) / f"{name}.{TRUTH_FORMAT}")
    summary_path = truth_dir(out_dir) / simulation.TRUTH_SUMMARY_FILE
    # A small JSON note, not a table, so it does not go through pipelines.io.
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    paths[simulation.TRUTH_SUMMARY_FILE] = summary_path
    return paths


def read_truth(data_dir: Path) -> dict[str, pd.DataFrame]:
    """The ground-truth frames written next to a generated data set, keyed by name."""
    folder = truth_dir(data_dir)
    return {
        name: read_table(folder / f"{name}.{TRUTH_FORMAT}")
        for name in (simulation.CUSTOMERS_TRUTH, simulation.PRODUCT_GROUPS)
    }


def summarize_truth(
    tables: dict[str, pd.DataFrame],
    truth: dict[str, pd.DataFrame],
    seed: int,
    start: date | str,
    end: date | str,
    config: simulation.SimulationConfig = simulation.DEFAULT_CONFIG,
) -> dict:
    """What truth.json records: inputs, row counts, headline truths and every parameter.

    Deliberately free of timings and paths, so the same seed gives the same file.
    """
    customers_truth = truth[simulation.CUSTOMERS_TRUTH]
    return {
        "seed": seed,
        "n_customers": len(tables[schema.CUSTOMERS]),
        "start": str(start),
        "end": str(end),
        "rows": {name: len(frame) for name, frame in tables.items()},
        "buyers": int(customers_truth[simulation.TRUTH_IS_BUYER].sum()),
        "dropouts_in_window": int(customers_truth[simulation.TRUTH_DROPOUT_DATE].notna().sum()),
        "replenishers": int(customers_truth[simulation.TRUTH_REPLENISHMENT_PRODUCT_ID].notna().sum()),
        "seasonal_buyers": int(customers_truth[simulation.TRUTH_SEASONAL_MONTH].notna().sum()),
        "bought_together_groups": int(truth[simulation.PRODUCT_GROUPS][simulation.TRUTH_GROUP_ID].nunique()),
        "truth_files": {
            simulation.CUSTOMERS_TRUTH: f"{simulation.CUSTOMERS_TRUTH}.{TRUTH_FORMAT}",
            simulation.PRODUCT_GROUPS: f"{simulation.PRODUCT_GROUPS}.{TRUTH_FORMAT}",
        },
        "preferred_categories_separator": simulation.PREFERRED_CATEGORIES_SEPARATOR,
        "config": dataclasses.asdict(config),
    }


def generate_with_progress(
    options: GenerateOptions, config: simulation.SimulationConfig = simulation.DEFAULT_CONFIG
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """simulation.generate_tables, with a progress bar over customer blocks for large runs."""
    window = simulation.Window.from_dates(options.start.isoformat(), options.end.isoformat())
    catalog = simulation.make_catalog(options.customers, options.seed, config)
    blocks = tqdm(
        simulation.simulate_blocks(options.customers, options.seed, window, catalog, config),
        total=simulation.count_blocks(options.customers, config),
        desc="simulating",
        unit="block",
        disable=options.customers < PROGRESS_MIN_CUSTOMERS,
    )
    return simulation.assemble_tables(blocks, options.customers, window, catalog, config)


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    started = time.perf_counter()
    tables, truth = generate_with_progress(options)
    summary = summarize_truth(tables, truth, options.seed, options.start, options.end)
    write_generated(
        tables,
        truth,
        summary,
        options.out,
        options.file_format,
        show_progress=options.customers >= PROGRESS_MIN_CUSTOMERS,
    )
    elapsed = time.perf_counter() - started
    counts = ", ".join(f"{len(frame):,} {name}" for name, frame in tables.items())
    print(
        f"generated {counts} in {elapsed:.1f}s -> {options.out} "
        f"({options.file_format}; ground truth in {truth_dir(options.out)})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
