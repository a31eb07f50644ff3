"""Great Expectations suites built from the contract's rules (`features.rules`), and their runs.

One expectation per rule; each carries its rule's reason in `meta`, so results map back to rules.
Great Expectations evaluates the rules for files and renders the Data Docs (`pipelines.validate`).
It is imported only inside the functions that build or run suites, so importing this module stays
cheap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from features.rules import Rule, SuiteRun, table_rules
from features.schema import TABLES, Reference, Table

if TYPE_CHECKING:
    import pandas as pd

# The suite parameter holding the validation time (timestamps must not be after it).
NOW_PARAMETER = "now"


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
