"""Small contract tables built by hand or at random, for tests that need exact answers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import schema as s

CATEGORIES = ("shirts", "shoes", "lenses")


def products_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            s.PRODUCT_ID: pd.array(["p1", "p2", "p3", "lens"], dtype="str"),
            s.CATEGORY: pd.array(["shirts", "shirts", "shoes", "lenses"], dtype="str"),
            s.PRICE: [10.0, 15.0, 40.0, 30.0],
            s.BRAND: pd.array([None] * 4, dtype="str"),
            s.REPLENISHMENT_DAYS: [np.nan, np.nan, np.nan, 30.0],
        }
    )


def customers_table(ids, signup) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            s.CUSTOMER_ID: pd.array(list(ids), dtype="str"),
            s.SIGNUP_DATE: pd.to_datetime(list(signup)),
            s.BIRTH_YEAR: pd.array([1980] * n, dtype="Int64"),
            s.GENDER: pd.array(["female"] * n, dtype="str"),
            s.REGION: pd.array(["north"] * n, dtype="str"),
            s.MARKETING_OPT_IN: pd.array([True] * n, dtype="boolean"),
        }
    )


def transactions_table(rows) -> pd.DataFrame:
    """rows: (order_id, customer_id, product_id, quantity, unit_price, timestamp)."""
    rows = list(rows)
    columns = list(zip(*rows, strict=True)) if rows else [[]] * 6
    return pd.DataFrame(
        {
            s.ORDER_ID: pd.array(list(columns[0]), dtype="str"),
            s.CUSTOMER_ID: pd.array(list(columns[1]), dtype="str"),
            s.PRODUCT_ID: pd.array(list(columns[2]), dtype="str"),
            s.QUANTITY: np.asarray(columns[3], dtype=np.int64),
            s.UNIT_PRICE: np.asarray(columns[4], dtype=float),
            s.TIMESTAMP: pd.to_datetime(list(columns[5])).astype("datetime64[ns]"),
            s.CHANNEL: pd.array(["web"] * len(rows), dtype="str"),
            s.DISCOUNT: np.zeros(len(rows)),
        }
    )


def events_table(rows) -> pd.DataFrame:
    """rows: (customer_id, timestamp, event_type, product_id or None, value or nan)."""
    rows = list(rows)
    columns = list(zip(*rows, strict=True)) if rows else [[]] * 5
    return pd.DataFrame(
        {
            s.CUSTOMER_ID: pd.array(list(columns[0]), dtype="str"),
            s.TIMESTAMP: pd.to_datetime(list(columns[1])).astype("datetime64[ns]"),
            s.EVENT_TYPE: pd.array(list(columns[2]), dtype="str"),
            s.PRODUCT_ID: pd.array(list(columns[3]), dtype="str"),
            s.VALUE: np.asarray(columns[4], dtype=float),
        }
    )


def random_tables(seed: int, n_customers: int = 30, start="2023-01-01", days: int = 730) -> dict[str, pd.DataFrame]:
    """A random but valid history: purchases, returns, events of every type, a few prospects."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(start)
    ids = [f"c{i:03d}" for i in range(n_customers)]
    signup = start + pd.to_timedelta(rng.integers(0, days // 2, n_customers), unit="D")
    products = products_table()
    n_lines = n_customers * 8
    buyer = rng.integers(0, max(n_customers - 3, 1), n_lines)  # the last three never buy
    line_time = signup[buyer] + pd.to_timedelta(rng.uniform(0, days // 2, n_lines), unit="D")
    product = rng.integers(0, len(products), n_lines)
    quantity = np.where(rng.random(n_lines) < 0.08, -1, rng.integers(1, 4, n_lines))
    transactions = pd.DataFrame(
        {
            s.ORDER_ID: pd.array([f"o{i:05d}" for i in range(n_lines)], dtype="str"),
            s.CUSTOMER_ID: pd.array([ids[i] for i in buyer], dtype="str"),
            s.PRODUCT_ID: pd.array(products[s.PRODUCT_ID].to_numpy()[product], dtype="str"),
            s.QUANTITY: quantity.astype(np.int64),
            s.UNIT_PRICE: products[s.PRICE].to_numpy()[product],
            s.TIMESTAMP: line_time.floor("h").astype("datetime64[ns]"),
            s.CHANNEL: pd.array(rng.choice(s.CHANNELS[:3], n_lines), dtype="str"),
            s.DISCOUNT: np.where(rng.random(n_lines) < 0.2, 0.1, np.nan),
        }
    )
    n_events = n_customers * 15
    actor = rng.integers(0, n_customers, n_events)
    kind = rng.choice(s.EVENT_TYPES, n_events)
    value = np.where(
        kind == s.EVENT_NPS_RESPONSE,
        rng.integers(0, 11, n_events),
        np.where(kind == s.EVENT_SUPPORT_TICKET, rng.integers(1, 6, n_events), np.nan),
    )
    events = pd.DataFrame(
        {
            s.CUSTOMER_ID: pd.array([ids[i] for i in actor], dtype="str"),
            s.TIMESTAMP: (signup[actor] + pd.to_timedelta(rng.uniform(0, days // 2, n_events), unit="D"))
            .floor("h")
            .astype("datetime64[ns]"),
            s.EVENT_TYPE: pd.array(kind, dtype="str"),
            s.PRODUCT_ID: pd.array(
                np.where(
                    np.isin(kind, [s.EVENT_PRODUCT_VIEW, s.EVENT_ADD_TO_CART]),
                    rng.choice(products[s.PRODUCT_ID], n_events),
                    None,
                ),
                dtype="str",
            ),
            s.VALUE: value.astype(float),
        }
    )
    return {
        s.CUSTOMERS: customers_table(ids, signup),
        s.PRODUCTS: products,
        s.TRANSACTIONS: transactions,
        s.EVENTS: events,
    }


BURSTY_START = pd.Timestamp("2024-01-01")


def dated_frame(rows) -> pd.DataFrame:
    """(customer_id, product_id, quantity, timestamp) rows as a transactions frame."""
    frame = pd.DataFrame(rows, columns=[s.CUSTOMER_ID, s.PRODUCT_ID, s.QUANTITY, s.TIMESTAMP])
    return frame.assign(**{s.TIMESTAMP: pd.to_datetime(frame[s.TIMESTAMP])})


def bursty_log(n_customers: int = 800, seed: int = 7) -> dict[str, pd.DataFrame]:
    """A ratings-style log: each customer arrives on a day of the year, buys 4-16 products of their
    two favourite categories within three days, and never comes back."""
    rng = np.random.default_rng(seed)
    categories = [f"cat{c}" for c in range(8)]
    products = pd.DataFrame(
        {s.PRODUCT_ID: [f"P{i:03d}" for i in range(160)], s.CATEGORY: [categories[i % 8] for i in range(160)]}
    )
    popularity = rng.pareto(1.5, len(products)) + 1
    rows = []
    for number in range(n_customers):
        arrival = BURSTY_START + pd.Timedelta(days=int(rng.integers(0, 365)))
        favourites = rng.choice(8, 2, replace=False)
        allowed = np.flatnonzero(np.isin(np.arange(len(products)) % 8, favourites))
        weights = popularity[allowed] / popularity[allowed].sum()
        bought = rng.choice(allowed, int(rng.integers(4, 17)), replace=False, p=weights)
        for item in bought:
            moment = arrival + pd.Timedelta(minutes=int(rng.integers(0, 3 * 24 * 60)))
            rows.append((f"u{number:04d}", products[s.PRODUCT_ID].iloc[item], 1, moment))
    return {s.TRANSACTIONS: dated_frame(rows), s.PRODUCTS: products}


def as_of_after(transactions: pd.DataFrame) -> pd.Timestamp:
    """The day after the last record: the as_of a run on this history would use."""
    return transactions[s.TIMESTAMP].max().normalize() + pd.Timedelta(days=1)
