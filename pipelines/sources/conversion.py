"""What every converter returns, and the steps at least two converters share.

`SourceConversion` holds the contract tables and the quarantine and checks, on construction,
that no record was lost. The helpers number the input lines, pick each record's first failed
check, and build the customers, products and final contract-typed tables from transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features import schema

# ---------------------------------------------------------------------------
# Quarantine columns shared by the line-based converters (CDNOW, MovieLens) and Online Retail.
# ---------------------------------------------------------------------------
REASON = "reason"
LINE_NUMBER = "line_number"  # 1-based line of the input file
LINE = "line"  # the raw line, as read

# Source timestamps stay in microseconds, not the validated frames' nanoseconds
# (`schema.TIMESTAMP_DTYPE`): a far-future date then reaches validation, which quarantines it
# with a reason, instead of overflowing here.
TIMESTAMP_DTYPE = "datetime64[us]"

# Reasons more than one converter gives.
REASON_BAD_DATE = "bad date"


def reason_wrong_field_count(expected: int, found: int) -> str:
    return f"expected {expected} fields, found {found}"


# ---------------------------------------------------------------------------
# The result.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceConversion:
    """Contract tables from one source, and the records that could not be used.

    `lines_in` counts input records (data lines or rows, not headers or blank lines);
    `accepted` those that reached `transactions`, `merged` of which were folded into another
    line of the same order and product, so `len(transactions) == accepted - merged`.
    """

    tables: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    lines_in: int
    accepted: int
    merged: int = 0
    blank_lines: int = 0
    layout: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.lines_in != self.accepted + len(self.quarantine):
            raise AssertionError(
                f"lost records: {self.lines_in} in, {self.accepted} accepted, {len(self.quarantine)} quarantined"
            )
        transactions = self.tables[schema.TRANSACTIONS]
        if len(transactions) != self.accepted - self.merged:
            raise AssertionError(
                f"{len(transactions)} transactions from {self.accepted} accepted lines and {self.merged} merges"
            )

    @property
    def quarantined(self) -> int:
        return len(self.quarantine)

    def reason_counts(self) -> dict[str, int]:
        """Quarantined records per reason, most frequent first."""
        if self.quarantine.empty:
            return {}
        counts = self.quarantine[REASON].value_counts()
        return {str(reason): int(count) for reason, count in counts.items()}

    def report(self) -> dict[str, object]:
        """The numbers for `_ingest/report.json`."""
        return {
            "layout": self.layout,
            "lines_in": self.lines_in,
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "merged": self.merged,
            "blank_lines_skipped": self.blank_lines,
            "reasons": self.reason_counts(),
            "tables": {name: len(frame) for name, frame in self.tables.items()},
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------
# Reading records and deciding their fate.
# ---------------------------------------------------------------------------
def select_non_blank_lines(lines: Sequence[str]) -> pd.Series:
    """Non-blank lines as text, indexed by their 1-based line number."""
    series = pd.Series(list(lines), index=np.arange(1, len(lines) + 1), dtype="str")
    return series[series.str.strip() != ""]


def is_blank(values: pd.Series) -> pd.Series:
    return values.isna() | (values.fillna("").str.strip() == "")


def is_whole(numbers: pd.Series) -> pd.Series:
    finite = np.isfinite(numbers.fillna(np.nan).astype("float64"))
    return finite & (numbers.where(finite, 0) % 1 == 0)


def assign_first_reasons(index: pd.Index, checks: Sequence[tuple[pd.Series, str | pd.Series]]) -> pd.Series:
    """Per record, the reason of the first failed check (missing where all pass)."""
    reasons = pd.Series(None, index=index, dtype="object")
    for failed, reason in checks:
        hit = reasons.isna() & failed.reindex(index, fill_value=False).fillna(False).astype(bool)
        if hit.any():
            reasons[hit] = reason[hit] if isinstance(reason, pd.Series) else reason
    return reasons


def build_line_quarantine(numbered: pd.Series, reasons: pd.Series) -> pd.DataFrame:
    """The lines that have a reason: line number, the line as read, and the reason, all text."""
    bad = reasons.notna()
    return pd.DataFrame(
        {
            LINE_NUMBER: numbered.index[bad].astype("str"),
            LINE: numbered[bad].to_numpy(),
            REASON: reasons[bad].to_numpy(),
        }
    ).astype("str")


# ---------------------------------------------------------------------------
# Building the contract tables from accepted transactions.
# ---------------------------------------------------------------------------
def build_customers(transactions: pd.DataFrame, regions: pd.Series | None = None) -> pd.DataFrame:
    """One row per customer: signup = first transaction; region = that of the first line."""
    ordered = transactions.assign(_region=regions).sort_values(schema.TIMESTAMP, kind="stable")
    first = ordered.drop_duplicates(schema.CUSTOMER_ID)
    customers = pd.DataFrame(
        {
            schema.CUSTOMER_ID: first[schema.CUSTOMER_ID].to_numpy(),
            schema.SIGNUP_DATE: first[schema.TIMESTAMP].to_numpy(),
        }
    )
    if regions is not None:
        customers[schema.REGION] = first["_region"].to_numpy()
    return customers


def build_products(transactions: pd.DataFrame, categories: pd.Series) -> pd.DataFrame:
    """One row per product sold: its category and the median unit price paid."""
    price = transactions.groupby(schema.PRODUCT_ID, sort=False)[schema.UNIT_PRICE].median()
    return pd.DataFrame(
        {
            schema.PRODUCT_ID: price.index.to_numpy(),
            schema.CATEGORY: categories.reindex(price.index).to_numpy(),
            schema.PRICE: price.to_numpy(),
        }
    )


def make_output_dtypes(table: schema.Table) -> dict[str, str]:
    """The dtype of each column in a converter's output: the validated one, timestamps excepted.

    `schema.accepted_dtypes` gives `int64` for required int columns (the only ints the converters
    write) and derives the rest from `schema.PANDAS_DTYPES`; timestamps stay `TIMESTAMP_DTYPE`.
    """
    return {
        name: TIMESTAMP_DTYPE if table.column(name).dtype == "timestamp" else dtype
        for name, dtype in schema.accepted_dtypes(table).items()
    }


def finish_tables(
    transactions: pd.DataFrame, customers: pd.DataFrame, products: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """Contract column order and dtypes, rows in a stable order."""
    frames = {
        schema.CUSTOMERS: customers.sort_values(schema.CUSTOMER_ID),
        schema.PRODUCTS: products.sort_values(schema.PRODUCT_ID),
        schema.TRANSACTIONS: transactions.sort_values([schema.TIMESTAMP, schema.ORDER_ID, schema.PRODUCT_ID]),
    }
    finished: dict[str, pd.DataFrame] = {}
    for name, frame in frames.items():
        table = schema.TABLES[name]
        columns = [column for column in table.column_names if column in frame.columns]
        dtypes = make_output_dtypes(table)
        finished[name] = frame[columns].astype({column: dtypes[column] for column in columns}).reset_index(drop=True)
    return finished
