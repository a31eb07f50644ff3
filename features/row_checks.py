"""The contract's row rules evaluated in numpy: the service's evaluator (`features.small_batches`).

Great Expectations takes about a second per batch, however small; the service checks a few rows per
request and has a few milliseconds. This module evaluates the *same* rule objects
(`features.rules.table_rules`) on the same check columns, with the semantics of the Great
Expectations expectations they become, so both quarantine the same rows for the same reasons (a
parity test holds them together):

- `not_null` / `null`: the cell is (not) null;
- `in_set` / `not_in_set` / `between`: null cells pass; `between` bounds are inclusive, and
  `max_is_now` compares against `now`;
- a rule with a `RowCondition` looks only at rows where the condition column equals the value
  (is null when the value is None); other rows pass.

Nothing here knows a column name: every rule comes from the schema through `table_rules`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from features.rules import RowCondition, Rule, SuiteRun, table_rules
from features.schema import Reference, Table


def evaluate_rules(
    table: Table,
    check_frame: pd.DataFrame | Mapping[str, np.ndarray],
    checked_references: tuple[Reference, ...],
    now: pd.Timestamp,
) -> SuiteRun:
    """Evaluate the table's rules on a check frame (RangeIndex); return failing positions per reason.

    Same inputs and output as `features.expectations.run_rules`, without a Great Expectations
    result (`gx_result` is None). Reasons are in rule order. The check frame may also be given as
    its columns in numpy arrays (`features.small_batches` builds them without a DataFrame).
    """
    columns = _Columns(check_frame)
    failed_rows: dict[str, np.ndarray] = {}
    for rule in table_rules(table, checked_references):
        fails = _FAILS[rule.kind](rule, columns, now)
        if rule.condition is not None:
            fails &= _applies(rule.condition, columns)
        failed_rows[rule.reason] = np.flatnonzero(fails).astype(np.int64)
    return SuiteRun(failed_rows=failed_rows, gx_result=None)


class _Columns:
    """Each column of the check frame as a numpy array, and its null mask, computed once.

    Most columns are looked at by several rules, and on a few rows the per-call overhead of a
    pandas operation (string columns especially) costs far more than the work itself.
    """

    def __init__(self, frame: pd.DataFrame | Mapping[str, np.ndarray]) -> None:
        self.frame = frame
        self.arrays: dict[str, np.ndarray] = {}
        self.null_masks: dict[str, np.ndarray] = {}

    def values(self, column: str) -> np.ndarray:
        if column not in self.arrays:
            values = self.frame[column]
            self.arrays[column] = values.to_numpy() if isinstance(values, pd.Series) else values
        return self.arrays[column]

    def nulls(self, column: str) -> np.ndarray:
        if column not in self.null_masks:
            self.null_masks[column] = pd.isna(self.values(column))
        return self.null_masks[column]


def _applies(condition: RowCondition, columns: _Columns) -> np.ndarray:
    if condition.equals is None:
        return columns.nulls(condition.column)
    return _is_in(columns.values(condition.column), (condition.equals,))


def _is_in(values: np.ndarray, value_set: tuple[Any, ...]) -> np.ndarray:
    """Elementwise `value in value_set` (null is in no set); equal numbers match across int and float."""
    if values.dtype == object:
        lookup = frozenset(value_set)
        return np.fromiter((value in lookup for value in values), dtype=bool, count=len(values))
    return np.isin(values, np.asarray(value_set))


def _not_null(rule: Rule, columns: _Columns, now: pd.Timestamp) -> np.ndarray:
    return columns.nulls(rule.column).copy()


def _null(rule: Rule, columns: _Columns, now: pd.Timestamp) -> np.ndarray:
    return ~columns.nulls(rule.column)


def _in_set(rule: Rule, columns: _Columns, now: pd.Timestamp) -> np.ndarray:
    return ~_is_in(columns.values(rule.column), rule.value_set) & ~columns.nulls(rule.column)


def _not_in_set(rule: Rule, columns: _Columns, now: pd.Timestamp) -> np.ndarray:
    return _is_in(columns.values(rule.column), rule.value_set) & ~columns.nulls(rule.column)


def _between(rule: Rule, columns: _Columns, now: pd.Timestamp) -> np.ndarray:
    values = columns.values(rule.column)
    maximum = now.to_datetime64() if rule.max_is_now else rule.max_value
    outside = np.zeros(len(values), dtype=bool)
    with np.errstate(invalid="ignore"):  # nulls compare False, and are masked below anyway
        if rule.min_value is not None:
            outside |= values < rule.min_value
        if maximum is not None:
            outside |= values > maximum
    return outside & ~columns.nulls(rule.column)


_FAILS: dict[str, Callable[[Rule, _Columns, pd.Timestamp], np.ndarray]] = {
    "not_null": _not_null,
    "null": _null,
    "in_set": _in_set,
    "not_in_set": _not_in_set,
    "between": _between,
}
