"""`check_rows`: `validate_tables` for a few rows (the service's POST /events), cell by cell.

`features.validation.validate_tables` types a table column by column in pandas and runs the Great
Expectations suites: right for files of millions of rows, but a Great Expectations run costs about a
second whatever its size, and pandas' typing about a hundred operations of 0.1-0.5 ms each (the
numbers are in docs/BENCHMARKS.md). Here the same steps run on Python lists and numpy arrays, with the
same outcome (a parity test holds the two together on random messy batches):

- typing keeps validation's rules and readers: text is stripped and a blank cell is empty; numbers
  are read by `pd.to_numeric` and timestamps by `pd.to_datetime(format="ISO8601")`, called once per
  column on a numpy array; a column of a dtype not read here (datetimes, categoricals, nullable or
  narrow numbers, booleans) is typed by validation's own column reader;
- the derived check columns (unique-key occurrence, reference status) come from dicts and sets;
- the rules (`features.rules`, the ones the Great Expectations suites are built from) are
  evaluated by `features.row_checks.evaluate_rules`;
- the result is the same `ValidationResult`: accepted frames in the accepted dtypes, quarantined raw
  rows with row numbers and reasons, the same report.

It is built for the service's batches (at most `SCORING_MAX_BATCH` rows, 1,000 by default); files go
through `validate_tables`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features import row_checks, rules
from features.frames import frame_of_arrays
from features.schema import TABLES, TIMESTAMP_DTYPE, Column, Reference, Table, accepted_dtypes, pandas_dtype_of
from features.validation import (
    _LARGEST_EXACT_INTEGER,
    FALSE_WORDS,
    TRUE_WORDS,
    ValidationResult,
    _checked_call,
    _failed_any_rule,
    _is_text,
    _join_reasons,
    _quarantined_frame,
    _referenced_columns,
    _table_report,
    _type_column,
    _validation_order,
)

# Raw numpy dtypes read here directly; other dtypes go through validation's column reader.
_NUMBER_DTYPES = (np.dtype("int64"), np.dtype("float64"))


def check_rows(
    raw_tables: Mapping[str, pd.DataFrame],
    now: pd.Timestamp,
    reference_ids: Mapping[str, set[str] | pd.Index] | None = None,
) -> ValidationResult:
    """`validate_tables` for small batches: the same rules, reasons and outputs, in milliseconds.

    For the request path of the service (POST /events); no `gx_results`.
    """
    now, reference_ids = _checked_call(raw_tables, now, reference_ids)

    accepted: dict[str, pd.DataFrame] = {}
    quarantined: dict[str, pd.DataFrame] = {}
    report: dict[str, dict[str, Any]] = {}
    ids_by_outcome: dict[tuple[str, str], _Outcome] = {}
    for name in _validation_order(raw_tables):
        table = TABLES[name]
        raw = raw_tables[name]
        checked = tuple(ref for ref in table.references if ref.to_table in raw_tables or ref.to_table in reference_ids)
        typed = {column.name: _type_cells(column, raw) for column in table.columns}
        check_columns = _check_columns(table, typed, checked, ids_by_outcome, reference_ids)
        run = row_checks.evaluate_rules(table, check_columns, checked, now)

        bad = _failed_any_rule(run, len(raw))
        bad_positions = np.flatnonzero(bad)
        accepted[name] = _accepted_frame(table, typed, ~bad)
        quarantined[name] = _quarantined_frame(raw, bad_positions, _join_reasons(run.failed_rows, bad, bad_positions))
        for column in _referenced_columns(name):
            values = typed[column].values
            ids_by_outcome[(name, column)] = _Outcome(
                accepted=frozenset(values[~bad].tolist()), quarantined=frozenset(values[bad].tolist())
            )
        report[name] = _table_report(table, raw, run, checked, int((~bad).sum()), len(bad_positions))
    return ValidationResult(accepted=accepted, quarantined=quarantined, report=report)


@dataclass(frozen=True)
class _Typed:
    """One typed column: values (see `_type_cells`) and the raw text of unreadable cells (None: none)."""

    values: np.ndarray
    failed_text: np.ndarray | None


@dataclass(frozen=True)
class _Outcome:
    """The ids of a referenced column that were accepted / quarantined earlier in this batch."""

    accepted: frozenset[Any]
    quarantined: frozenset[Any]


# ---------------------------------------------------------------------------
# Typing. Values per contract dtype: id/string -> object array of str or None; int -> object array
# of int or None (exact; the checks see them as float64, like the pandas engine); float -> float64;
# timestamp -> datetime64[ns]; bool -> object array of bool or None.
# ---------------------------------------------------------------------------
def _type_cells(column: Column, raw: pd.DataFrame) -> _Typed:
    if column.name not in raw.columns:
        return _Typed(_nulls(column.dtype, len(raw)), None)
    series = raw[column.name]
    if isinstance(series.dtype, pd.CategoricalDtype):
        return _typed_by_validation(column, series)
    if _is_text(series):
        return _from_text(column.dtype, [_clean(cell) for cell in series.tolist()])
    if series.dtype in _NUMBER_DTYPES:
        return _from_numbers(column.dtype, series.to_numpy())
    return _typed_by_validation(column, series)


def _nulls(dtype: str, n_rows: int) -> np.ndarray:
    if dtype == "float":
        return np.full(n_rows, np.nan)
    if dtype == "timestamp":
        return np.full(n_rows, np.datetime64("NaT"), dtype=TIMESTAMP_DTYPE)
    return np.full(n_rows, None, dtype=object)


def _clean(cell: Any) -> str | None:
    """Like validation's text cleaning: the cell as text, stripped; empty and blank cells are None."""
    if cell is None or cell is pd.NA or cell is pd.NaT or (isinstance(cell, float) and math.isnan(cell)):
        return None
    return str(cell).strip() or None


def _from_text(dtype: str, texts: list[str | None]) -> _Typed:
    text = np.array(texts, dtype=object)
    present = np.array([value is not None for value in texts], dtype=bool)
    if dtype in ("id", "string"):
        return _Typed(text, None)
    if dtype in ("int", "float"):
        numbers = pd.to_numeric(text, errors="coerce").astype(np.float64)
        return _numbers(dtype, numbers, present, text)
    if dtype == "bool":
        words = [None if value is None else value.lower() for value in texts]
        return _booleans(
            np.array([word in TRUE_WORDS for word in words]), np.array([word in FALSE_WORDS for word in words]), text
        )
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce").tz_localize(None).to_numpy()
    # parsed text may come back in microseconds; outside the nanosecond range a value is unreadable
    in_range = _in_nanosecond_range(parsed)
    values = np.where(in_range, parsed, np.datetime64("NaT")).astype(TIMESTAMP_DTYPE)
    return _Typed(values, _failed_text(text, present & ~in_range))


_NANOSECOND_RANGE = (pd.Timestamp.min.value, pd.Timestamp.max.value)


def _in_nanosecond_range(moments: np.ndarray) -> np.ndarray:
    """Which datetime64 values (of any unit) lie within pandas' nanosecond range (NaT: none).

    Compared as integer ticks of their own unit: numpy would convert them to nanoseconds first, and
    wrap around silently for those out of range.
    """
    unit, count = np.datetime_data(moments.dtype)
    ns_per_tick = int(np.timedelta64(count, unit) // np.timedelta64(1, "ns"))
    low, high = _NANOSECOND_RANGE
    ticks = moments.view(np.int64)  # NaT is the smallest int64: below the range
    return (ticks >= -(-low // ns_per_tick)) & (ticks <= high // ns_per_tick)


def _from_numbers(dtype: str, numbers: np.ndarray) -> _Typed:
    present = ~np.isnan(numbers) if numbers.dtype.kind == "f" else np.ones(len(numbers), dtype=bool)
    if dtype in ("id", "string"):
        return _Typed(_number_text(numbers), None)
    if dtype == "int" and numbers.dtype.kind == "i":
        return _Typed(np.array(numbers.tolist(), dtype=object), None)
    if dtype in ("int", "float"):
        return _numbers(dtype, numbers.astype(np.float64), present, None, numbers)
    if dtype == "bool":
        return _booleans(numbers == 1, numbers == 0, None, numbers)
    return _Typed(_nulls(dtype, len(numbers)), _failed_text(_number_text(numbers), present))


def _numbers(
    dtype: str, numbers: np.ndarray, present: np.ndarray, text: np.ndarray | None, raw: np.ndarray | None = None
) -> _Typed:
    """Numbers read from text (`text`) or a numeric column (`raw`): unreadable where not finite, or
    for ints, not whole or beyond exact float64 integers."""
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(numbers)
        if dtype == "int":
            ok &= (numbers % 1 == 0) & (np.abs(numbers) <= _LARGEST_EXACT_INTEGER)
    failed = present & ~ok
    failed_text = _failed_text(text if text is not None else _number_text(raw), failed) if failed.any() else None
    if dtype == "float":
        return _Typed(np.where(ok, numbers, np.nan), failed_text)
    ints = [int(number) if good else None for number, good in zip(numbers.tolist(), ok.tolist(), strict=True)]
    return _Typed(np.array(ints, dtype=object), failed_text)


def _booleans(
    is_true: np.ndarray, is_false: np.ndarray, text: np.ndarray | None, raw: np.ndarray | None = None
) -> _Typed:
    ok = is_true | is_false
    present = np.array([value is not None for value in text]) if text is not None else ~pd.isna(raw)
    failed = present & ~ok
    values = np.array([bool(true) if good else None for true, good in zip(is_true, ok, strict=True)], dtype=object)
    failed_text = _failed_text(text if text is not None else _number_text(raw), failed) if failed.any() else None
    return _Typed(values, failed_text)


def _number_text(numbers: np.ndarray) -> np.ndarray:
    """Numbers as id text, like validation's: whole floats lose their `.0`; NaN is None."""
    if numbers.dtype.kind != "f":
        return np.array([str(number) for number in numbers.tolist()], dtype=object)
    return np.array(
        [
            None
            if math.isnan(number)
            else str(int(number))
            if number % 1 == 0 and abs(number) < _LARGEST_EXACT_INTEGER
            else str(number)
            for number in numbers.tolist()
        ],
        dtype=object,
    )


def _failed_text(text: np.ndarray, failed: np.ndarray) -> np.ndarray | None:
    if not failed.any():
        return None
    return np.where(failed, text, None).astype(object)


def _typed_by_validation(column: Column, series: pd.Series) -> _Typed:
    """A column of a dtype not read cell by cell here: validation's reader, converted to `_Typed`."""
    values, failed_text = _type_column(column, series.reset_index(drop=True), len(series))
    if column.dtype == "float":
        typed = values.to_numpy(dtype=np.float64, na_value=np.nan)
    elif column.dtype == "timestamp":
        typed = values.to_numpy(dtype=TIMESTAMP_DTYPE)
    else:  # ids, strings, nullable ints and booleans: Python objects, None for missing
        typed = np.array([None if pd.isna(value) else value for value in values.tolist()], dtype=object)
    return _Typed(typed, _failed_text(failed_text.to_numpy(dtype=object), failed_text.notna().to_numpy()))


# ---------------------------------------------------------------------------
# The check columns: what `features.validation` puts in its check frame, as numpy arrays.
# ---------------------------------------------------------------------------
def _check_columns(
    table: Table,
    typed: dict[str, _Typed],
    checked: tuple[Reference, ...],
    ids_by_outcome: dict[tuple[str, str], _Outcome],
    reference_ids: Mapping[str, Any],
) -> dict[str, np.ndarray]:
    n_rows = len(next(iter(typed.values())).values)
    columns: dict[str, np.ndarray] = {}
    for column in table.columns:
        values = typed[column.name].values
        # the rules compare ints as float64, as in the pandas engine's check frame
        columns[column.name] = (
            np.array([np.nan if value is None else float(value) for value in values])
            if column.dtype == "int"
            else values
        )
        if column.dtype in rules.PARSED_DTYPES:
            failed_text = typed[column.name].failed_text
            columns[rules.unparsed_column(column.name)] = (
                failed_text if failed_text is not None else np.full(n_rows, None, dtype=object)
            )
    if table.unique_key:
        key_values = [typed[name].values.tolist() for name in table.unique_key]
        columns[rules.occurrence_column(table.unique_key)] = _occurrence(list(zip(*key_values, strict=True)))
    for ref in checked:
        earlier = ids_by_outcome.get((ref.to_table, ref.to_column), _Outcome(frozenset(), frozenset()))
        known = _KnownIds(reference_ids.get(ref.to_table, ()), earlier.accepted)
        columns[rules.reference_column(ref)] = np.array(
            [_reference_status(value, known, earlier.quarantined) for value in typed[ref.column].values.tolist()],
            dtype=object,
        )
    return columns


def _occurrence(keys: list[tuple[Any, ...]]) -> np.ndarray:
    """0 for the first row of each unique-key value, 1 for the next, ...; NaN where a key part is empty."""
    seen: dict[tuple[Any, ...], int] = {}
    occurrence = np.full(len(keys), np.nan)
    for position, key in enumerate(keys):
        if any(part is None for part in key):
            continue
        occurrence[position] = seen.get(key, 0)
        seen[key] = seen.get(key, 0) + 1
    return occurrence


class _KnownIds:
    """Supplied reference ids (a pandas Index is looked up in place, a set is read as text) plus the
    ids accepted earlier in this batch."""

    def __init__(self, supplied: set[str] | pd.Index, accepted_here: frozenset[Any]) -> None:
        self.supplied = supplied if isinstance(supplied, pd.Index) else frozenset(str(value) for value in supplied)
        self.accepted_here = accepted_here

    def __contains__(self, value: str) -> bool:
        return value in self.accepted_here or value in self.supplied


def _reference_status(value: str | None, known: _KnownIds, quarantined: frozenset[Any]) -> str | None:
    if value is None:
        return None
    if value in known:
        return rules.REFERENCE_KNOWN
    if value in quarantined:
        return rules.REFERENCE_QUARANTINED
    return rules.REFERENCE_UNKNOWN


# ---------------------------------------------------------------------------
# Output: the accepted rows, typed like validation's accepted frames.
# ---------------------------------------------------------------------------
def _accepted_frame(table: Table, typed: dict[str, _Typed], keep: np.ndarray) -> pd.DataFrame:
    dtypes = accepted_dtypes(table)
    columns = {
        column.name: _accepted_column(typed[column.name].values[keep], dtypes[column.name]) for column in table.columns
    }
    return frame_of_arrays(columns, int(keep.sum()))


def _accepted_column(values: np.ndarray, dtype: str) -> Any:
    if dtype == "int64":
        return np.array(values.tolist(), dtype=np.int64)
    if dtype in ("float64", TIMESTAMP_DTYPE):
        return values.copy()
    return pd.array(values.tolist(), dtype=pandas_dtype_of(dtype))  # the object: a name is read anew per call
