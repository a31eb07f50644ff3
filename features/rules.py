"""The contract's row rules, generated from `features.schema`: what every validation evaluates.

Nothing here is listed per column: every rule is derived from `schema.TABLES` (dtype, required,
allowed values, ranges, `nonzero`, unique key, references) and `schema.EVENT_VALUE_RANGES`. Two
evaluators read these rules and must agree (a parity test holds them together): Great Expectations,
for files and the Data Docs (`features.expectations`), and numpy, for the service's small batches
(`features.row_checks`).

The rules look at a *check frame* built from a raw table (`features.validation` in pandas,
`features.small_batches` cell by cell): the contract columns already typed (null where a cell is
empty or unreadable) plus derived columns holding the facts one typed column cannot show on its own:

- `<column>__unparsed`: the raw text of a cell that could not be read as the column's dtype;
- `<key>__occurrence`: 0 for the first row with a unique-key value, 1 for the next, and so on;
- `<column>__in_<table>`: `known`, `quarantined` or `unknown` for a referenced id.

Each rule carries the reason quoted in the quarantine ("unit_price: below minimum 0").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from features.schema import EVENT_TYPE, EVENT_VALUE_RANGES, EVENTS, TABLES, VALUE, Reference, Table

# Dtypes whose cells are parsed from text and can therefore be unreadable.
PARSED_DTYPES = ("timestamp", "int", "float", "bool")
DTYPE_WORDS = {"timestamp": "timestamp", "int": "integer", "float": "number", "bool": "boolean"}

# Values of a `<column>__in_<table>` column.
REFERENCE_KNOWN = "known"
REFERENCE_QUARANTINED = "quarantined"
REFERENCE_UNKNOWN = "unknown"

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


@dataclass(frozen=True)
class SuiteRun:
    """What one evaluation found: failing row positions per reason (in rule order), and the Great
    Expectations result (None from `features.row_checks`)."""

    failed_rows: dict[str, np.ndarray]
    gx_result: Any
