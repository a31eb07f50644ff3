"""A customer's history: the validated contract tables every feature build starts from.

`History` holds the three tables a customer's row is built from (customers, transactions,
events); `before(as_of)` is the point-in-time cut: records strictly before as_of.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import schema as s

# The tables of a history, in the order they are read.
HISTORY_TABLES = (s.CUSTOMERS, s.TRANSACTIONS, s.EVENTS)


@dataclass(frozen=True)
class History:
    """Validated contract tables (any may be empty); the input of every feature build."""

    customers: pd.DataFrame
    transactions: pd.DataFrame
    events: pd.DataFrame

    @classmethod
    def from_tables(cls, tables: dict[str, pd.DataFrame]) -> History:
        """The history tables of a set of contract tables; a missing table is an empty one."""
        return cls(
            **{name: tables[name] if name in tables else s.empty_table(s.TABLES[name]) for name in HISTORY_TABLES}
        )

    def for_customers(self, customer_ids: Iterable[str]) -> History:
        """The records of these customers only."""
        wanted = pd.Index(pd.unique(pd.Series(list(customer_ids), dtype="str")))
        return History(
            customers=self.customers[self.customers[s.CUSTOMER_ID].isin(wanted)],
            transactions=self.transactions[self.transactions[s.CUSTOMER_ID].isin(wanted)],
            events=self.events[self.events[s.CUSTOMER_ID].isin(wanted)],
        )

    def before(self, as_of: pd.Timestamp) -> History:
        """Records strictly before as_of (customers by signup date)."""
        return History(
            customers=rows_before(self.customers, s.SIGNUP_DATE, as_of),
            transactions=rows_before(self.transactions, s.TIMESTAMP, as_of),
            events=rows_before(self.events, s.TIMESTAMP, as_of),
        )


def rows_before(frame: pd.DataFrame, column: str, as_of: pd.Timestamp) -> pd.DataFrame:
    """Rows with column < as_of; the frame itself (no copy) when every row already is."""
    times, as_of = frame[column], pd.Timestamp(as_of)
    if isinstance(times.dtype, np.dtype) and times.dtype.kind == "M" and as_of.tz is None:
        # numpy on the column (NaT compares False, as in pandas): a pandas comparison builds a Series
        before = times.to_numpy() < as_of.to_datetime64()
    else:  # text, time zones: pandas compares (and raises on what it cannot compare)
        before = times < as_of
    return frame if before.all() else frame[before]


def tables_before(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The contract tables with every history record at or after as_of dropped ("pretend today is
    as_of"); products are kept as they are."""
    restricted = dict(tables)
    for name in HISTORY_TABLES:
        if name in tables:
            restricted[name] = rows_before(tables[name], s.TABLES[name].time_column, as_of)
    return restricted


# The tables whose records carry the time of an activity (signup dates are not activity).
ACTIVITY_TABLES = (s.TRANSACTIONS, s.EVENTS)


def first_record(tables: dict[str, pd.DataFrame]) -> pd.Timestamp | None:
    """The earliest transaction or event (None when there is none)."""
    times = [tables[name][s.TIMESTAMP].min() for name in ACTIVITY_TABLES if name in tables and len(tables[name])]
    return min(times) if times else None


def last_record(tables: dict[str, pd.DataFrame]) -> pd.Timestamp | None:
    """The latest transaction or event (None when there is none)."""
    times = [tables[name][s.TIMESTAMP].max() for name in ACTIVITY_TABLES if name in tables and len(tables[name])]
    return max(times) if times else None


def first_purchase(transactions: pd.DataFrame) -> pd.Timestamp | None:
    """The time of the earliest purchase (a line with a positive quantity; None when there is none).

    Where a training history starts: before it, features hold no purchase to learn from, however
    early the events begin.
    """
    purchases = transactions.loc[s.is_purchase(transactions[s.QUANTITY]), s.TIMESTAMP]
    return purchases.min() if len(purchases) else None
