"""Validation that loses nothing: raw tables in, typed accepted rows and quarantined rows out.

`validate_tables` types each raw frame to the contract's dtypes, runs the Great Expectations suites
built from the contract's rules (`features.rules`, `features.expectations`) and splits every table into

- accepted rows: typed per contract (ids and strings `str`, timestamps `datetime64[ns]` naive
  UTC, ints `int64` (`Int64` when optional), floats `float64`, bools `boolean`), contract columns
  only, in contract order, absent optional columns added as nulls;
- quarantined rows: the original raw values, plus `row_number` (0-based position in the input) and
  `reasons` (every rule the row broke, "; "-joined, each naming the column and the rule).

Every input row ends up in exactly one of the two. The rules:

- a non-empty cell that cannot be read as its dtype is a failure, in optional columns too; text is
  stripped first and a blank cell is empty. Numbers are plain decimal text; integers must be whole;
  booleans are true/false, t/f, yes/no, y/n or 1/0 (any case); timestamps are ISO 8601 (a date, or a
  date and time, with an optional offset that is converted to UTC) between 1677-09-22 and
  2262-04-11 (the datetime64[ns] range);
- required columns are not empty; allowed values, minimum/maximum and non-zero as in the contract;
  event values within the range for their event type; timestamps not after `now`;
- rows repeating a unique key: the first row in the input is kept, later ones are quarantined (if
  the first row breaks another rule it is quarantined too, so that key has no accepted row);
- references (`transactions.customer_id` -> `customers.customer_id`, ...) are checked when the
  referenced table is in the batch or its ids are passed in `reference_ids`, against the *accepted*
  rows of the referenced table plus those ids. So a quarantined customer takes their transactions
  and events with them, with the reason "customer_id: customer was quarantined in customers":
  everything accepted is consistent, and the quarantine file says where to look.

Problems with a whole table (not a table of the contract, missing required column, no rows) raise
`ContractError` naming the table. Nothing here reads or writes files.

Behaviour events have no unique key, so a repeated event is not a broken row: `drop_repeated_rows`,
run by the batch pipeline after validation, keeps the first row of each identity
(`schema.identify_rows`) and counts the others as `duplicates`. The service finds repeats itself,
against the stored history too (`service.events`).

Great Expectations evaluates the row rules here (its results feed the Data Docs). For a few rows on
the service's request path, where a Great Expectations run costs a second, `features.small_batches`
types the same cells and evaluates the same rules with `features.row_checks` in milliseconds; a
parity test holds the two to identical verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as pdtypes

from features import expectations, rules
from features.schema import (
    PANDAS_DTYPES,
    REASONS,
    ROW_IDENTITY,
    ROW_NUMBER,
    TABLES,
    TIMESTAMP_DTYPE,
    Column,
    Reference,
    Table,
    accepted_dtypes,
    identify_rows,
    pandas_dtype_of,
)

REASON_SEPARATOR = "; "
TRUE_WORDS = ("true", "t", "yes", "y", "1")
FALSE_WORDS = ("false", "f", "no", "n", "0")
# Whole numbers are read through float64, exact up to 2**53; larger ones are not valid integers.
_LARGEST_EXACT_INTEGER = 2**53


class ContractError(ValueError):
    """A whole table breaks the contract (missing required column, no rows, not a table)."""

    def __init__(self, table: str | None, problem: str) -> None:
        self.table = table
        self.problem = problem
        super().__init__(f"{table}: {problem}" if table else problem)


@dataclass(frozen=True)
class ValidationResult:
    """Accepted (typed) and quarantined (raw) rows per table, and the report.

    `gx_results` holds the Great Expectations suite results per table (without the per-row lists),
    for rendering Data Docs; it is empty for `features.small_batches.check_rows`.
    """

    accepted: dict[str, pd.DataFrame]
    quarantined: dict[str, pd.DataFrame]
    report: dict[str, dict[str, Any]]
    gx_results: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def validate_tables(
    raw_tables: Mapping[str, pd.DataFrame],
    now: pd.Timestamp,
    reference_ids: Mapping[str, set[str] | pd.Index] | None = None,
) -> ValidationResult:
    """Validate raw contract tables (keyed by table name) as of `now` (naive UTC, or tz-aware).

    `reference_ids` supplies known ids of referenced tables, keyed by table name
    (`{"customers": {...}, "products": {...}}`), e.g. for a batch of events when those tables are
    not in the batch; a pandas Index of str also works and saves a conversion on repeated calls.
    Input frames are not modified. Raises ContractError for table-level problems.
    """
    now, reference_ids = _checked_call(raw_tables, now, reference_ids)

    accepted: dict[str, pd.DataFrame] = {}
    quarantined: dict[str, pd.DataFrame] = {}
    report: dict[str, dict[str, Any]] = {}
    gx_results: dict[str, Any] = {}
    quarantined_ids: dict[tuple[str, str], pd.Series] = {}
    for name in _validation_order(raw_tables):
        table = TABLES[name]
        raw = raw_tables[name]
        checked = tuple(ref for ref in table.references if ref.to_table in raw_tables or ref.to_table in reference_ids)
        typed, unparsed = type_table(table, raw)
        check_frame = _check_frame(table, typed, unparsed, checked, accepted, quarantined_ids, reference_ids)
        run = expectations.run_rules(table, check_frame, checked, now)

        bad = _failed_any_rule(run, len(raw))
        bad_positions = np.flatnonzero(bad)
        accepted[name] = _accepted_frame(table, typed.loc[~bad])
        quarantined[name] = _quarantined_frame(raw, bad_positions, _join_reasons(run.failed_rows, bad, bad_positions))
        for column in _referenced_columns(name):
            quarantined_ids[(name, column)] = typed.loc[bad, column]
        report[name] = _table_report(table, raw, run, checked, len(accepted[name]), len(bad_positions))
        if run.gx_result is not None:
            gx_results[name] = run.gx_result
    return ValidationResult(accepted=accepted, quarantined=quarantined, report=report, gx_results=gx_results)


def drop_repeated_rows(result: ValidationResult) -> ValidationResult:
    """The result with every accepted row that repeats an earlier accepted row of its table dropped,
    and counted in its table's report as `duplicates`: rows_in = accepted + quarantined + duplicates.

    A repeat has the identity of an earlier row (`schema.identify_rows`: an event with the same
    customer and event_id, or without an event_id, the same everything), so a file that holds an
    event twice adds it once, as POST /events does with a repeat in its body. The first row is kept,
    in input order. The result is not modified.
    """
    accepted: dict[str, pd.DataFrame] = {}
    report: dict[str, dict[str, Any]] = {}
    for name, frame in result.accepted.items():
        repeated = _repeated_rows(name, frame)
        accepted[name] = frame.loc[~repeated].reset_index(drop=True) if repeated.any() else frame
        report[name] = _report_with_duplicates(result.report[name], int(repeated.sum()))
    return replace(result, accepted=accepted, report=report)


def _repeated_rows(table_name: str, frame: pd.DataFrame) -> np.ndarray:
    """Which rows have the identity of an earlier row of the frame."""
    repeated = np.zeros(len(frame), dtype=bool)
    # validation keeps one row per unique key, and each such table's identity holds its key
    if table_name not in ROW_IDENTITY or TABLES[table_name].unique_key:
        return repeated
    for group in identify_rows(table_name, frame):
        if group.rows.any():
            # duplicated() holds an empty cell equal to an empty one, as the identity wants
            repeated[group.rows] = frame.loc[group.rows, list(group.key)].duplicated().to_numpy(dtype=bool)
    return repeated


def _report_with_duplicates(table_report: dict[str, Any], duplicates: int) -> dict[str, Any]:
    """The table's report with `duplicates` after `quarantined`, and the repeats out of `accepted`."""
    report: dict[str, Any] = {}
    for key, value in table_report.items():
        report[key] = value - duplicates if key == "accepted" else value
        if key == "quarantined":
            report["duplicates"] = duplicates
    return report


def type_table(table: Table, raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Type a raw frame to the contract: (typed contract columns, raw text of unreadable cells).

    Both frames have a RangeIndex of input positions. `typed` has every contract column in
    contract order (nulls where a cell is empty, unreadable or the column is absent). The second
    frame has one column per parsed column (`<column>__unparsed`), null except where a non-empty
    cell could not be read.
    """
    typed: dict[str, pd.Series] = {}
    unparsed: dict[str, pd.Series] = {}
    for column in table.columns:
        raw_column = raw[column.name].reset_index(drop=True) if column.name in raw.columns else None
        values, failed_text = _type_column(column, raw_column, len(raw))
        typed[column.name] = values
        if column.dtype in rules.PARSED_DTYPES:
            unparsed[rules.unparsed_column(column.name)] = failed_text
    index = pd.RangeIndex(len(raw))
    return pd.DataFrame(typed, index=index), pd.DataFrame(unparsed, index=index)


# ---------------------------------------------------------------------------
# Table-level checks and ordering.
# ---------------------------------------------------------------------------
def _checked_call(
    raw_tables: Mapping[str, pd.DataFrame], now: pd.Timestamp, reference_ids: Mapping[str, Any] | None
) -> tuple[pd.Timestamp, dict[str, Any]]:
    """(now as naive UTC, reference_ids as a dict) after the table-level checks (ContractError)."""
    reference_ids = dict(reference_ids or {})
    _check_tables(raw_tables, reference_ids)
    return _naive_utc(now), reference_ids


def _failed_any_rule(run: rules.SuiteRun, n_rows: int) -> np.ndarray:
    bad = np.zeros(n_rows, dtype=bool)
    for rows in run.failed_rows.values():
        bad[rows] = True
    return bad


def _check_tables(raw_tables: Mapping[str, pd.DataFrame], reference_ids: Mapping[str, Any]) -> None:
    if not raw_tables:
        raise ContractError(None, f"no contract tables given (expected any of {', '.join(TABLES)})")
    for name in reference_ids:
        if name not in TABLES:
            raise ContractError(None, f"reference_ids: {name!r} is not a contract table")
    for name, raw in raw_tables.items():
        if name not in TABLES:
            raise ContractError(name, f"not a contract table (expected one of {', '.join(TABLES)})")
        if not isinstance(raw, pd.DataFrame):
            raise ContractError(name, f"not a table (got {type(raw).__name__})")
        repeated = sorted({str(c) for c in raw.columns[raw.columns.duplicated()]})
        if repeated:
            raise ContractError(name, f"repeated column name(s) {', '.join(repeated)}")
        missing = [c for c in TABLES[name].required_columns if c not in raw.columns]
        if missing:
            raise ContractError(name, f"missing required column(s) {', '.join(missing)}")
        if raw.empty:
            raise ContractError(name, "empty table (no rows)")


def _validation_order(raw_tables: Mapping[str, pd.DataFrame]) -> list[str]:
    """Tables in contract order, each after the tables it references (accepted ids are needed)."""
    order: list[str] = []
    pending = [name for name in TABLES if name in raw_tables]
    while pending:
        ready = next(
            name
            for name in pending
            if all(r.to_table in order or r.to_table not in raw_tables for r in TABLES[name].references)
        )
        order.append(ready)
        pending.remove(ready)
    return order


def _referenced_columns(table_name: str) -> set[str]:
    return {ref.to_column for table in TABLES.values() for ref in table.references if ref.to_table == table_name}


# ---------------------------------------------------------------------------
# The check frame: typed columns plus the derived columns the suites look at.
# ---------------------------------------------------------------------------
def _check_frame(
    table: Table,
    typed: pd.DataFrame,
    unparsed: pd.DataFrame,
    checked: tuple[Reference, ...],
    accepted: dict[str, pd.DataFrame],
    quarantined_ids: dict[tuple[str, str], pd.Series],
    reference_ids: Mapping[str, Any],
) -> pd.DataFrame:
    derived: dict[str, pd.Series] = {}
    if table.unique_key:
        # cumcount is NaN for rows with an empty key part: those fail "missing (required)" instead.
        occurrence = typed.groupby(list(table.unique_key), sort=False, dropna=True).cumcount()
        derived[rules.occurrence_column(table.unique_key)] = occurrence.reindex(typed.index)
    for ref in checked:
        supplied = reference_ids.get(ref.to_table, ())
        known = supplied if isinstance(supplied, pd.Index) else pd.Index(list(supplied), dtype="str")
        if ref.to_table in accepted:
            known = known.append(pd.Index(accepted[ref.to_table][ref.to_column]))
        dropped = quarantined_ids.get((ref.to_table, ref.to_column), pd.Series([], dtype="str"))
        derived[rules.reference_column(ref)] = _reference_status(typed[ref.column], known, dropped)
    # Great Expectations compares numpy int/float and datetime64[ns] columns vectorised but other
    # dtypes row by row, so the suites see nullable ints as float64 (exact below 2**53).
    compared = typed.astype({c.name: "float64" for c in table.columns if c.dtype == "int"})
    return pd.concat([compared, unparsed, pd.DataFrame(derived, index=typed.index)], axis=1)


def _reference_status(ids: pd.Series, known: pd.Index, quarantined: pd.Series) -> pd.Series:
    is_known = ids.isin(known).to_numpy()
    is_quarantined = ids.isin(quarantined).to_numpy() & ~is_known
    status = np.select(
        [is_known, is_quarantined],
        [rules.REFERENCE_KNOWN, rules.REFERENCE_QUARANTINED],
        rules.REFERENCE_UNKNOWN,
    )
    return pd.Series(status, index=ids.index, dtype="str").mask(ids.isna())


# ---------------------------------------------------------------------------
# Typing one column: (typed values, raw text of unreadable cells). Text columns are cleaned once
# (stripped, blank -> null) before the per-dtype readers see them.
# ---------------------------------------------------------------------------
def _type_column(column: Column, raw: pd.Series | None, n_rows: int) -> tuple[pd.Series, pd.Series]:
    no_failures = pd.Series(None, index=pd.RangeIndex(n_rows), dtype="str")
    if raw is None:
        return pd.Series(None, index=pd.RangeIndex(n_rows), dtype=PANDAS_DTYPES[column.dtype]), no_failures
    if isinstance(raw.dtype, pd.CategoricalDtype):
        raw = raw.astype(raw.dtype.categories.dtype)
    if _is_text(raw):
        raw = _clean_text(raw)
    if column.dtype in ("id", "string"):
        return _to_text(raw), no_failures
    typer = {"int": _to_int, "float": _to_float, "bool": _to_bool, "timestamp": _to_timestamp}
    values, ok = typer[column.dtype](raw)
    failed = raw.notna() & ~ok
    failed_text = _to_text(raw).where(failed) if failed.any() else no_failures
    return values.where(~failed), failed_text


def _is_text(raw: pd.Series) -> bool:
    return pdtypes.is_object_dtype(raw.dtype) or pdtypes.is_string_dtype(raw.dtype)


def _is_number(raw: pd.Series) -> bool:
    return pdtypes.is_numeric_dtype(raw.dtype) and not pdtypes.is_bool_dtype(raw.dtype)


def _clean_text(raw: pd.Series) -> pd.Series:
    """Text with surrounding whitespace removed; blank cells become null."""
    text = raw.astype("str").str.strip()
    return text.mask(text == "")


def _to_text(raw: pd.Series) -> pd.Series:
    """Ids and strings as `str`; whole numbers stored as floats lose their `.0`."""
    if pdtypes.is_float_dtype(raw.dtype):
        whole = raw.notna() & (raw % 1 == 0) & (raw.abs() < _LARGEST_EXACT_INTEGER)
        text = raw.astype("str")
        text[whole] = raw[whole].astype("int64").astype("str")
        return text.where(raw.notna())
    if _is_text(raw):
        return raw.astype("str")
    return raw.astype("str").where(raw.notna())


def _to_number(raw: pd.Series) -> pd.Series:
    if _is_number(raw):
        return raw.astype("float64")
    if _is_text(raw):
        return pd.to_numeric(raw, errors="coerce").astype("float64")
    return pd.Series(np.nan, index=raw.index)


def _to_float(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    numbers = _to_number(raw)
    return numbers, pd.Series(np.isfinite(numbers.to_numpy()), index=raw.index)


def _to_int(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pdtypes.is_integer_dtype(raw.dtype):
        return raw.astype("Int64"), pd.Series(True, index=raw.index)
    numbers = _to_number(raw)
    values = numbers.to_numpy()
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(values) & (values % 1 == 0) & (np.abs(values) <= _LARGEST_EXACT_INTEGER)
    return numbers.where(ok).astype("Int64"), pd.Series(ok, index=raw.index)


def _to_bool(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pdtypes.is_bool_dtype(raw.dtype):
        return raw.astype("boolean"), pd.Series(True, index=raw.index)
    if _is_number(raw):
        is_true, is_false = raw == 1, raw == 0
    elif _is_text(raw):
        words = raw.str.lower()
        is_true, is_false = words.isin(TRUE_WORDS), words.isin(FALSE_WORDS)
    else:
        is_true = is_false = pd.Series(False, index=raw.index)
    # nullable numbers compare to NA where they are missing: neither true nor false
    ok = (is_true | is_false).to_numpy(dtype=bool, na_value=False)
    true = is_true.to_numpy(dtype=bool, na_value=False)
    return pd.Series(pd.array(true, dtype="boolean"), index=raw.index).where(ok), pd.Series(ok, index=raw.index)


def _to_timestamp(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        values = raw.dt.tz_convert("UTC").dt.tz_localize(None)
    elif pdtypes.is_datetime64_dtype(raw.dtype):
        values = raw
    elif _is_text(raw):
        parsed = pd.to_datetime(raw, format="ISO8601", utc=True, errors="coerce")
        values = parsed.dt.tz_localize(None)
    else:  # numbers (epoch of unknown unit), bools: not timestamps
        values = pd.Series(pd.NaT, index=raw.index)
    # Parsed text comes back in microseconds; outside the nanosecond range a value is unreadable.
    in_range = (values >= pd.Timestamp.min) & (values <= pd.Timestamp.max)
    return values.where(in_range).astype(TIMESTAMP_DTYPE), in_range


def _naive_utc(now: pd.Timestamp) -> pd.Timestamp:
    now = pd.Timestamp(now)
    if pd.isna(now):
        raise ValueError("now must be a timestamp, not NaT")
    if now.tzinfo is not None:
        now = now.tz_convert("UTC").tz_localize(None)
    return now


# ---------------------------------------------------------------------------
# Outputs.
# ---------------------------------------------------------------------------
def _accepted_frame(table: Table, typed: pd.DataFrame) -> pd.DataFrame:
    """The typed rows with the accepted dtypes (required ints lose their nullable dtype)."""
    frame = typed.reset_index(drop=True)
    narrowed = {
        column.name: dtype
        for column, dtype in zip(table.columns, accepted_dtypes(table).values(), strict=True)
        if dtype != PANDAS_DTYPES[column.dtype]
    }
    return frame.astype(narrowed) if narrowed else frame


def _quarantined_frame(raw: pd.DataFrame, bad_positions: np.ndarray, reasons: np.ndarray) -> pd.DataFrame:
    """The raw values of the bad rows, with their input positions and reasons."""
    # a slice when no row is bad (most batches): cheaper than taking no positions; the two columns
    # are inserted into this new frame (no copy of it, as `assign` makes)
    quarantined = raw.iloc[bad_positions] if len(bad_positions) else raw.iloc[:0]
    quarantined.index = pd.RangeIndex(len(bad_positions))
    added = {ROW_NUMBER: bad_positions.astype(np.int64), REASONS: pd.array(reasons, dtype=pandas_dtype_of("str"))}
    for name, values in added.items():
        if name in quarantined.columns:  # sent as a column of the input: replaced where it stands
            quarantined[name] = values
        else:
            quarantined.insert(quarantined.shape[1], name, values)
    return quarantined


def _join_reasons(failed_rows: dict[str, np.ndarray], bad: np.ndarray, bad_positions: np.ndarray) -> np.ndarray:
    """For each bad row, every reason it failed, in rule order, joined by REASON_SEPARATOR."""
    joined = np.full(len(bad_positions), "", dtype=object)
    hit_by_rule = np.zeros(len(bad), dtype=bool)
    for reason, rows in failed_rows.items():
        if not len(rows):
            continue
        hit_by_rule[:] = False
        hit_by_rule[rows] = True
        hit = hit_by_rule[bad_positions]
        first = hit & (joined == "")
        joined[first] = reason
        later = hit & ~first
        joined[later] = joined[later] + (REASON_SEPARATOR + reason)
    return joined


def _table_report(
    table: Table,
    raw: pd.DataFrame,
    run: rules.SuiteRun,
    checked: tuple[Reference, ...],
    n_accepted: int,
    n_quarantined: int,
) -> dict[str, Any]:
    rows_in = len(raw)
    if rows_in != n_accepted + n_quarantined:
        raise AssertionError(f"{table.name}: {rows_in} rows in, {n_accepted} accepted + {n_quarantined} quarantined")
    return {
        "rows_in": rows_in,
        "accepted": n_accepted,
        "quarantined": n_quarantined,
        "ok": n_quarantined == 0,
        "failures": {reason: len(rows) for reason, rows in run.failed_rows.items() if len(rows)},
        "expectations_evaluated": len(run.failed_rows),
        "references_checked": [f"{r.column} -> {r.to_table}.{r.to_column}" for r in checked],
        "missing_optional_columns": [c for c in table.optional_columns if c not in raw.columns],
        "extra_columns": [str(c) for c in raw.columns.tolist() if c not in table.column_names],
    }
