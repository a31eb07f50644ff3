"""Reading and writing tables: the only module that touches data files.

Files are found by table name (`transactions.parquet` or `transactions.csv`). CSV cells are
read as text, exactly as written, so that validation sees the original values and can quote
them in the quarantine; typing happens in `features.validation`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.schema import TABLES
from pipelines.errors import UserError

TABLE_SUFFIXES = (".parquet", ".csv")


def find_table_files(data_dir: Path) -> dict[str, Path]:
    """Map each contract table present in data_dir to its file; raise UserError on ambiguity."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"{data_dir}: no such data folder")
    found: dict[str, Path] = {}
    for table_name in TABLES:
        candidates = [data_dir / f"{table_name}{suffix}" for suffix in TABLE_SUFFIXES]
        present = [path for path in candidates if path.exists()]
        if len(present) > 1:
            raise UserError(f"{data_dir}: both {present[0].name} and {present[1].name} exist; keep one")
        if present:
            found[table_name] = present[0]
    return found


def read_table(path: Path) -> pd.DataFrame:
    """Read one table file as it is (CSV cells as text); raise UserError if it cannot be read."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.ParserError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path}: unreadable {path.suffix[1:]} file ({first_line})") from error
    raise UserError(f"{path}: unsupported file type {path.suffix!r}; use .parquet or .csv")


def read_tables(data_dir: Path) -> dict[str, pd.DataFrame]:
    """Read every contract table present in data_dir, keyed by table name."""
    return {name: read_table(path) for name, path in find_table_files(data_dir).items()}


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write a frame as Parquet or CSV, chosen by the file's extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        raise UserError(f"{path}: unsupported output type {path.suffix!r}; use .parquet or .csv")
    return path


def write_tables(tables: dict[str, pd.DataFrame], out_dir: Path, file_format: str = "parquet") -> dict[str, Path]:
    """Write each table as out_dir/<name>.<format>; return the paths written."""
    if file_format not in ("parquet", "csv"):
        raise UserError(f"unknown format {file_format!r}; use parquet or csv")
    return {name: write_table(frame, Path(out_dir) / f"{name}.{file_format}") for name, frame in tables.items()}


# Raw public-data sources
# Read exactly as stored (lines and cells as text); `pipelines.sources` turns them into the
# contract. Text that is not UTF-8 is read as Latin-1 (the UCI Online Retail CSV is), so a
# byte is never lost to a decoding error.

RAW_EXCEL_SUFFIXES = (".xlsx", ".xlsm")


def _require_file(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if not path.is_file():
        raise UserError(f"{path}: is a folder, expected a file")
    return path


def _decode_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_raw_lines(path: Path) -> list[str]:
    """The lines of a text file, without line endings (LF or CRLF), blank lines included."""
    path = _require_file(path)
    text = _decode_text(path.read_bytes())
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()  # the file's final newline ends the last line; it is not an extra line
    return lines


def read_raw_csv(path: Path) -> pd.DataFrame:
    """A CSV file with a header row, every cell as text and empty cells as missing."""
    path = _require_file(path)
    options = {"dtype": str, "keep_default_na": False, "na_values": [""]}
    try:
        try:
            return pd.read_csv(path, encoding="utf-8-sig", **options)
        except UnicodeDecodeError:
            return pd.read_csv(path, encoding="latin-1", **options)
    except pd.errors.EmptyDataError as error:
        raise UserError(f"{path}: empty file") from error
    except (OSError, ValueError, pd.errors.ParserError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path}: unreadable csv file ({message})") from error


def read_raw_excel_sheets(path: Path) -> dict[str, pd.DataFrame]:
    """Every sheet of an Excel workbook in workbook order, keyed by sheet name, cells as text."""
    from zipfile import BadZipFile  # what openpyxl raises for a file that is not a workbook

    path = _require_file(path)
    try:
        return pd.read_excel(path, sheet_name=None, dtype=str, engine="openpyxl")
    except (OSError, ValueError, KeyError, BadZipFile) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path}: unreadable Excel file ({message})") from error
