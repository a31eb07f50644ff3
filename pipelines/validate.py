"""Validate the contract tables in a data folder: a report, quarantine files and Data Docs.

    python -m pipelines.validate --data DIR [--out REPORT_DIR] [--now 2024-06-30T00:00:00]

Every table present in DIR (`<table>.parquet` or `<table>.csv`) is checked against the contract;
the input files are left untouched. Written to DIR/_validation/ unless --out is given:

- report.json: per table rows_in, accepted, quarantined, duplicates (repeated events, kept once:
  rows_in = accepted + quarantined + duplicates), failures per rule, and an overall `ok`;
- quarantine_<table>.csv: each rejected row as it was read, with `row_number` and `reasons`;
- data_docs/index.html: the Great Expectations Data Docs of the run, for people.

Exit code 0 when validation ran (quarantined rows are reported, not fatal); 2 with one line on
stderr when a whole table is unusable (no such folder or file, unreadable, empty, missing a
required column, no contract tables at all).

Later steps call `load_valid_tables(data_dir, now)` to read and validate in one go.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from features.schema import TABLES
from features.validation import ContractError, ValidationResult, drop_repeated_rows, validate_tables
from pipelines.errors import UserError, exits_cleanly_on_user_error
from pipelines.io import TABLE_SUFFIXES, find_table_files, read_table, write_table

REPORT_DIR_NAME = "_validation"
REPORT_FILE_NAME = "report.json"
DATA_DOCS_DIR_NAME = "data_docs"
_DATA_DOCS_SITE = "validation_report"


def quarantine_file_name(table_name: str) -> str:
    return f"quarantine_{table_name}.csv"


def load_valid_tables(
    data_dir: Path, now: pd.Timestamp, required_tables: Iterable[str] = ()
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Read and validate every contract table in data_dir: (accepted typed tables, report).

    `required_tables` names tables that must be present. Raises UserError (naming the file) for
    table-level problems; quarantined rows are only counted in the report, and so are repeated
    events, of which the first is accepted (`features.validation.drop_repeated_rows`).
    """
    files, result = _read_and_validate(Path(data_dir), now, required_tables)
    return result.accepted, build_report(files, result, now)


def build_report(files: dict[str, Path], result: ValidationResult, now: pd.Timestamp) -> dict[str, Any]:
    """The JSON-ready report: overall `ok`, the validation time, per-table counts and failures."""
    tables = {name: {"file": str(files[name]), **table_report} for name, table_report in result.report.items()}
    return {
        "ok": all(table_report["ok"] for table_report in result.report.values()),
        "now": pd.Timestamp(now).isoformat(),
        "tables": tables,
    }


def _read_and_validate(
    data_dir: Path, now: pd.Timestamp, required_tables: Iterable[str] = ()
) -> tuple[dict[str, Path], ValidationResult]:
    files = find_table_files(data_dir)
    suffixes = "|".join(suffix[1:] for suffix in TABLE_SUFFIXES)
    for table_name in required_tables:
        if table_name not in files:
            raise UserError(f"{data_dir / table_name}.{suffixes}: missing file (table {table_name} is required)")
    if not files:
        raise UserError(f"{data_dir}: no contract tables found (expected {', '.join(TABLES)} as .parquet or .csv)")
    raw_tables = {name: read_table(path) for name, path in files.items()}
    try:
        result = drop_repeated_rows(validate_tables(raw_tables, now))
    except ContractError as error:
        where = files.get(error.table, data_dir)
        raise UserError(f"{where}: {error.problem}") from error
    return files, result


# ---------------------------------------------------------------------------
# Outputs.
# ---------------------------------------------------------------------------
def write_outputs(out_dir: Path, report: dict[str, Any], result: ValidationResult) -> dict[str, Path]:
    """Write report.json, quarantine_<table>.csv per validated table and Data Docs under out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for table_name in TABLES:
        path = out_dir / quarantine_file_name(table_name)
        if table_name in result.quarantined:
            paths[f"quarantine_{table_name}"] = write_table(result.quarantined[table_name], path)
        elif path.exists():
            path.unlink()  # from an earlier run that had this table; would now be misleading
    paths["data_docs"] = write_data_docs(result, out_dir / DATA_DOCS_DIR_NAME)
    report_path = out_dir / REPORT_FILE_NAME
    report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    paths["report"] = report_path
    return paths


def write_data_docs(result: ValidationResult, site_dir: Path) -> Path:
    """Render the run's Great Expectations results as a static Data Docs site; return index.html."""
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    from features.expectations import quiet_great_expectations

    quiet_great_expectations()
    if site_dir.exists():
        shutil.rmtree(site_dir)
    context = gx.get_context(mode="ephemeral")
    context.add_data_docs_site(
        site_name=_DATA_DOCS_SITE,
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(site_dir.resolve()),  # GE refuses relative paths
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    run_id = RunIdentifier(run_name="validate", run_time=pd.Timestamp.now(tz="UTC").to_pydatetime())
    for table_name, suite_result in result.gx_results.items():
        # The suite pages of the site are rendered from the expectations the results carry.
        expectations = [r.expectation_config.to_domain_obj() for r in suite_result.results]
        for expectation in expectations:
            expectation.id = None  # a fresh copy, not the validating context's expectation
        context.suites.add(gx.ExpectationSuite(name=suite_result.suite_name, expectations=expectations))
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_result.suite_name),
            run_id=run_id,
            batch_identifier=table_name,
        )
        suite_result.meta["run_id"] = run_id  # shown as the run on the validation page
        context.validation_results_store.set(key, suite_result)
    context.build_data_docs(site_names=[_DATA_DOCS_SITE])
    return site_dir / "index.html"


def format_summary(report: dict[str, Any]) -> str:
    """A small text table: table, rows_in, accepted, quarantined; then a line per table with repeats."""
    header = ("table", "rows_in", "accepted", "quarantined")
    rows = [
        (name, str(t["rows_in"]), str(t["accepted"]), str(t["quarantined"])) for name, t in report["tables"].items()
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    lines += [
        f"{name}: {t['duplicates']:,} repeated row(s) counted as duplicates, the first of each kept"
        for name, t in report["tables"].items()
        if t.get("duplicates")
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Command line.
# ---------------------------------------------------------------------------
def _parse_now(text: str) -> pd.Timestamp:
    try:
        now = pd.Timestamp(text)
    except ValueError:
        now = pd.NaT
    if pd.isna(now):
        raise argparse.ArgumentTypeError(f"not a timestamp: {text!r} (use ISO 8601, e.g. 2024-06-30T00:00:00)")
    return now.tz_convert("UTC").tz_localize(None) if now.tzinfo is not None else now


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.validate",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--data", type=Path, required=True, help="folder holding <table>.parquet or <table>.csv")
    parser.add_argument("--out", type=Path, help=f"where to write the report (default: DATA/{REPORT_DIR_NAME})")
    parser.add_argument(
        "--now",
        type=_parse_now,
        default=None,
        help="validation time, naive UTC (default: now); later timestamps count as in the future",
    )
    return parser.parse_args(argv)


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    now = args.now if args.now is not None else pd.Timestamp.now(tz="UTC").tz_localize(None)
    out_dir = args.out if args.out is not None else args.data / REPORT_DIR_NAME
    files, result = _read_and_validate(args.data, now)
    report = build_report(files, result, now)
    try:
        paths = write_outputs(out_dir, report, result)
    except OSError as error:
        reason = error.strerror or error
        raise UserError(f"{out_dir}: cannot write the report ({reason})") from error
    print(format_summary(report))
    status = "all rows accepted" if report["ok"] else "some rows quarantined"
    print(f"{status}; report: {paths['report']}")
    print(f"data docs: {paths['data_docs']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
