"""Great Expectations suites generated from the data contract in `features.schema`.

Nothing here is listed per column: every rule is derived from `schema.TABLES` (dtype, required,
allowed values, ranges, `nonzero`, unique key, references) and `schema.EVENT_VALUE_RANGES`.

The suites check a *check frame* that `features.validation` builds from a raw table: the contract
columns already typed (null where a cell is empty or unreadable) plus derived columns holding the
facts one typed column cannot show on its own:

- `<column>__unparsed`: the raw text of a cell that could not be read as the column's dtype;
- `<key>__occurrence`: 0 for the first row with a unique-key value, 1 for the next, and so on;
- `<column>__in_<table>`: `known`, `quarantined` or `unknown` for a referenced id.

Each rule carries the reason quoted in the quarantine ("unit_price: below minimum 0"), stored in the
expectation's `meta` so results map back to rules. Great Expectations is imported only inside the
functions that build or run suites, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from features.schema import EVENT_TYPE, EVENT_VALUE_RANGES, EVENTS, TABLES, VALUE, Reference, Table

if TYPE_CHECKING:
    import pandas as pd

# Dtypes whose cells are parsed from text and can therefore be unreadable.
PARSED_DTYPES = ("timestamp", "int", "float", "bool")
DTYPE_WORDS = {"timestamp": "timestamp", "int": "integer", "float": "number", "bool": "boolean"}

# Values of a `<column>__in_<table>` column.
REFERENCE_KNOWN = "known"
REFERENCE_QUARANTINED = "quarantined"
REFERENCE_UNKNOWN = "unknown"

# The suite parameter holding the validation time (timestamps must not be after it).
NOW_PARAMETER = "now"

RuleKind = Literal["not_null", "null", "in_set", "not_in_set", "between"]


def unparsed_column(column: str) -> str:
    """The derived column holding the raw text of cells of `column` that could not be parsed."""
    return f"{column}__unparsed"


def occurrence_column(unique_key: tuple[str, ...]) -> str:
    """The derived column numbering the rows that share a unique-key value (0 = first)."""
    return f"{key_label(unique_key)}__occurrence"


def reference_column(reference: Reference) -> str:
    """The derived column saying whether a referenced id is known in the referenced table."""
    return f"{reference.column}__in_{reference.to_table}"


def key_label(unique_key: tuple[str, ...]) -> str:
    return "+".join(unique_key)


@dataclass(frozen=True)
class RowCondition:
    """Apply a rule only to rows where `column` equals `equals` (is null when `equals` is None)."""

    column: str
    equals: str | None = None


@dataclass(frozen=True)
class Rule:
    """One expectation on one column of the check frame, with the reason a failing row gets."""

    reason: str
    kind: RuleKind
    column: str
    value_set: tuple[Any, ...] = ()
    min_value: float | None = None
    max_value: float | None = None
    max_is_now: bool = False
    condition: RowCondition | None = None


def table_rules(table: Table, checked_references: Iterable[Reference] = ()) -> tuple[Rule, ...]:
    """Every row-level rule of a contract table, in the order reasons are listed.

    References are included only for `checked_references` (the ones whose ids are known for this
    validation); unchecked references would otherwise pass trivially and look verified.
    """
    rules: list[Rule] = []
    for column in table.columns:
        name = column.name
        parsed = column.dtype in PARSED_DTYPES
        if parsed:
            rules.append(
                Rule(
                    f"{name}: not a valid {DTYPE_WORDS[column.dtype]}",
                    "null",
                    unparsed_column(name),
                )
            )
        if column.required:
            # An unreadable cell is reported as such, not also as missing.
            only_readable = RowCondition(unparsed_column(name)) if parsed else None
            rules.append(Rule(f"{name}: missing (required)", "not_null", name, condition=only_readable))
        if column.allowed:
            rules.append(
                Rule(
                    f"{name}: not one of {', '.join(column.allowed)}",
                    "in_set",
                    name,
                    column.allowed,
                )
            )
        if column.min_value is not None:
            rules.append(
                Rule(
                    f"{name}: below minimum {column.min_value:g}",
                    "between",
                    name,
                    min_value=column.min_value,
                )
            )
        if column.max_value is not None:
            rules.append(
                Rule(
                    f"{name}: above maximum {column.max_value:g}",
                    "between",
                    name,
                    max_value=column.max_value,
                )
            )
        if column.nonzero:
            rules.append(Rule(f"{name}: must not be 0", "not_in_set", name, (0,)))
        if column.dtype == "timestamp":
            rules.append(Rule(f"{name}: in the future", "between", name, max_is_now=True))
    if table.name == EVENTS:
        for event_type, low, high in EVENT_VALUE_RANGES:
            rules.append(
                Rule(
                    f"{VALUE}: outside {low:g} to {high:g} for {event_type}",
                    "between",
                    VALUE,
                    min_value=low,
                    max_value=high,
                    condition=RowCondition(EVENT_TYPE, event_type),
                )
            )
    if table.unique_key:
        rules.append(
            Rule(
                f"{key_label(table.unique_key)}: duplicate {table.row_name} (first row kept)",
                "in_set",
                occurrence_column(table.unique_key),
                (0,),
            )
        )
    for reference in checked_references:
        noun = TABLES[reference.to_table].row_name
        status = reference_column(reference)
        rules.append(
            Rule(
                f"{reference.column}: unknown {noun} (not in {reference.to_table})",
                "not_in_set",
                status,
                (REFERENCE_UNKNOWN,),
            )
        )
        rules.append(
            Rule(
                f"{reference.column}: {noun} was quarantined in {reference.to_table}",
                "not_in_set",
                status,
                (REFERENCE_QUARANTINED,),
            )
        )
    reasons = [rule.reason for rule in rules]
    if len(set(reasons)) != len(reasons):
        raise ValueError(f"{table.name}: two rules share a reason; reasons must be unique")
    return tuple(rules)


def suite_name(table: Table, checked_references: Iterable[Reference]) -> str:
    """`transactions` when every reference is checked, else `transactions (no products check)`."""
    checked = tuple(checked_references)
    skipped = [r.to_table for r in table.references if r not in checked]
    if not skipped:
        return table.name
    return f"{table.name} (no {', '.join(skipped)} check)"


def build_suite(name: str, rules: tuple[Rule, ...]):
    """A Great Expectations ExpectationSuite with one expectation per rule."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=name)
    for rule in rules:
        suite.add_expectation(_to_expectation(rule))
    return suite


def _to_expectation(rule: Rule):
    import great_expectations as gx
    from great_expectations.expectations.row_conditions import Column as ConditionColumn

    kwargs: dict[str, Any] = {"column": rule.column, "meta": {"reason": rule.reason}}
    if rule.condition is not None:
        condition_column = ConditionColumn(rule.condition.column)
        kwargs["row_condition"] = (
            condition_column.is_null() if rule.condition.equals is None else condition_column == rule.condition.equals
        )
    expectations = gx.expectations
    if rule.kind == "not_null":
        return expectations.ExpectColumnValuesToNotBeNull(**kwargs)
    if rule.kind == "null":
        return expectations.ExpectColumnValuesToBeNull(**kwargs)
    if rule.kind == "in_set":
        return expectations.ExpectColumnValuesToBeInSet(value_set=list(rule.value_set), **kwargs)
    if rule.kind == "not_in_set":
        return expectations.ExpectColumnValuesToNotBeInSet(value_set=list(rule.value_set), **kwargs)
    if rule.kind == "between":
        maximum: Any = {"$PARAMETER": NOW_PARAMETER} if rule.max_is_now else rule.max_value
        return expectations.ExpectColumnValuesToBeBetween(min_value=rule.min_value, max_value=maximum, **kwargs)
    raise ValueError(f"unknown rule kind {rule.kind!r}")


# ---------------------------------------------------------------------------
# Running suites: one ephemeral context per process, created on first use.
# ---------------------------------------------------------------------------
_RESULT_FORMAT = {"result_format": "COMPLETE", "return_unexpected_index_query": False}
# Lists dropped from results once the failing rows are known: they can hold millions of values,
# and the quarantine already keeps every failing row.
_BULKY_RESULT_KEYS = ("unexpected_list", "unexpected_index_list")


@dataclass(frozen=True)
class SuiteRun:
    """What one suite found: failing row positions per reason (in rule order), and the GE result."""

    failed_rows: dict[str, np.ndarray]
    gx_result: Any


class _Runner:
    def __init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        quiet_great_expectations()
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = self.context.data_sources.add_pandas("contract_tables")
        self.batch_definitions = {
            name: source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("whole_table")
            for name in TABLES
        }
        self.suites: dict[str, Any] = {}
        self.lock = threading.Lock()

    def suite(self, name: str, rules: tuple[Rule, ...]):
        if name not in self.suites:
            self.suites[name] = self.context.suites.add(build_suite(name, rules))
        return self.suites[name]


_runner: _Runner | None = None
_runner_lock = threading.Lock()


def _get_runner() -> _Runner:
    global _runner
    with _runner_lock:
        if _runner is None:
            _runner = _Runner()
        return _runner


def quiet_great_expectations() -> None:
    """Keep Great Expectations' info logging off the console of command-line users."""
    logging.getLogger("great_expectations").setLevel(logging.ERROR)


def run_rules(
    table: Table,
    check_frame: pd.DataFrame,
    checked_references: tuple[Reference, ...],
    now: pd.Timestamp,
) -> SuiteRun:
    """Validate a check frame (RangeIndex) against the table's suite; return failing positions.

    Raises RuntimeError if Great Expectations could not evaluate a rule: a rule that did not run
    must never let rows through as if they had passed.
    """
    rules = table_rules(table, checked_references)
    runner = _get_runner()
    with runner.lock:
        suite = runner.suite(suite_name(table, checked_references), rules)
        batch = runner.batch_definitions[table.name].get_batch(batch_parameters={"dataframe": check_frame})
        result = batch.validate(suite, result_format=_RESULT_FORMAT, expectation_parameters={NOW_PARAMETER: now})
    failed_rows: dict[str, np.ndarray] = {}
    for expectation_result in result.results:
        reason = expectation_result.expectation_config.meta["reason"]
        _raise_if_not_evaluated(table.name, reason, expectation_result.exception_info)
        details = expectation_result.result
        rows = np.asarray(details.get("unexpected_index_list") or [], dtype=np.int64)
        if len(rows) != int(details.get("unexpected_count") or 0):
            raise RuntimeError(
                f"{table.name}: Great Expectations reported {details.get('unexpected_count')} "
                f"failures for '{reason}' but listed {len(rows)} rows"
            )
        failed_rows[reason] = rows
        for key in _BULKY_RESULT_KEYS:
            details.pop(key, None)
    missing = [rule.reason for rule in rules if rule.reason not in failed_rows]
    if missing:
        raise RuntimeError(f"{table.name}: no result for rules {missing}")
    # In rule order (GE returns results in its own order), so reasons read in contract order.
    in_rule_order = {rule.reason: failed_rows[rule.reason] for rule in rules}
    return SuiteRun(failed_rows=in_rule_order, gx_result=result)


def _raise_if_not_evaluated(table_name: str, reason: str, exception_info: Any) -> None:
    if not exception_info:
        return
    infos = [exception_info] if "raised_exception" in exception_info else exception_info.values()
    for info in infos:
        if info.get("raised_exception"):
            message = str(info.get("exception_message") or "").strip().splitlines()
            raise RuntimeError(
                f"{table_name}: Great Expectations could not evaluate '{reason}'"
                f" ({message[0] if message else 'no message'})"
            )
