"""Public data -> contract tables: `python -m pipelines.ingest --format F --input PATH --out DIR`.

Reads one source file (`pipelines.io`), converts it (`pipelines.sources`) and writes the
contract tables the source has, plus `DIR/_ingest/quarantine.csv` (every record that could
not be used, with its original fields and a `reason`) and `DIR/_ingest/report.json`
(lines_in, accepted, quarantined, merged, per-reason counts; lines_in = accepted +
quarantined).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipelines import io, sources
from pipelines.errors import UserError, exits_cleanly_on_user_error

FORMATS = ("cdnow", "online-retail", "movielens")
FILE_FORMATS = ("parquet", "csv")
INGEST_FOLDER = "_ingest"
QUARANTINE_FILE = "quarantine.csv"
REPORT_FILE = "report.json"


def convert_source(source_format: str, path: Path) -> sources.SourceConversion:
    """Read `path` as `source_format` and convert it to the contract."""
    path = Path(path)
    if source_format == "cdnow":
        return sources.convert_cdnow(io.read_raw_lines(path), source=str(path))
    if source_format == "online-retail":
        if path.suffix.lower() in io.RAW_EXCEL_SUFFIXES:
            raw = io.read_raw_excel_sheets(path)
        else:
            raw = io.read_raw_csv(path)
        return sources.convert_online_retail(raw, source=str(path))
    if source_format == "movielens":
        return sources.convert_movielens(io.read_raw_lines(path), source=str(path), file_name=path.name)
    raise UserError(f"unknown format {source_format!r}; use {', '.join(FORMATS)}")


def write_conversion(
    conversion: sources.SourceConversion,
    out_dir: Path,
    file_format: str,
    report_extra: dict[str, object],
) -> dict[str, Path]:
    """Write the tables, the quarantine and the report; return every path written."""
    out_dir = Path(out_dir)
    _refuse_stale_tables(out_dir, conversion.tables, file_format)
    written = io.write_tables(conversion.tables, out_dir, file_format)
    ingest_dir = out_dir / INGEST_FOLDER
    written["quarantine"] = io.write_table(conversion.quarantine, ingest_dir / QUARANTINE_FILE)
    report_path = ingest_dir / REPORT_FILE
    report = {**report_extra, **conversion.report()}
    report_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    written["report"] = report_path
    return written


def _refuse_stale_tables(out_dir: Path, tables: dict[str, object], file_format: str) -> None:
    """Refuse a folder holding table files this run would not replace (they would mix in)."""
    if not out_dir.exists():
        return
    for name, path in io.find_table_files(out_dir).items():
        if name not in tables or path.suffix != f".{file_format}":
            raise UserError(
                f"{out_dir}: already holds {path.name}, which this ingest (writing "
                f"{file_format}) would not replace; use an empty folder"
            )


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.ingest",
        description="Convert a public data set (CDNOW, UCI Online Retail, MovieLens) into the contract's table files.",
    )
    parser.add_argument("--format", required=True, help=f"source format: {', '.join(FORMATS)}")
    parser.add_argument("--input", required=True, type=Path, help="the source file")
    parser.add_argument("--out", required=True, type=Path, help="folder for the tables")
    parser.add_argument("--file-format", default="parquet", help=f"table files: {' or '.join(FILE_FORMATS)}")
    return parser.parse_args(argv)


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.format not in FORMATS:
        raise UserError(f"unknown format {args.format!r}; use {', '.join(FORMATS)}")
    if args.file_format not in FILE_FORMATS:
        raise UserError(f"unknown file format {args.file_format!r}; use parquet or csv")
    if not args.input.exists():
        raise UserError(f"{args.input}: file not found")
    conversion = convert_source(args.format, args.input)
    written = write_conversion(
        conversion,
        args.out,
        args.file_format,
        report_extra={"format": args.format, "input": str(args.input)},
    )
    counts = ", ".join(f"{name} {len(frame):,}" for name, frame in conversion.tables.items())
    print(
        f"{args.input.name} ({args.format}, {conversion.layout}): {conversion.lines_in:,} lines "
        f"-> {conversion.accepted:,} accepted ({conversion.merged:,} merged), "
        f"{conversion.quarantined:,} quarantined"
    )
    print(f"wrote {counts} to {args.out}; quarantine and report in {written['report'].parent}")
    for reason, count in conversion.reason_counts().items():
        print(f"  quarantined {count:,}: {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
