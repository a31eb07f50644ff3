"""Random /events bodies, good and broken rows mixed, over HTTP: never a 5xx, every row counted once,
and the same body posted again stores nothing new."""

from __future__ import annotations

import itertools

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import schema as s

_serial = itertools.count()
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=5), inner, max_size=2),
    max_leaves=4,
)
WHEN = st.datetimes(min_value=pd.Timestamp("2023-01-01"), max_value=pd.Timestamp("2025-12-31")).map(
    lambda moment: moment.isoformat()
)


def _events(customer: str):
    good = st.fixed_dictionaries(
        {s.CUSTOMER_ID: st.just(customer), s.TIMESTAMP: WHEN, s.EVENT_TYPE: st.sampled_from(s.EVENT_TYPES)},
        optional={
            s.PRODUCT_ID: st.sampled_from(["P00001", "P00002", "nope"]),
            s.VALUE: st.integers(-2, 12),
            # few ids, so that rows of one body share one and a retry meets them in the store
            s.EVENT_ID: st.sampled_from(["e1", "e2", "e3"]),
        },
    )
    broken = st.dictionaries(
        st.sampled_from([*s.EVENTS_TABLE.column_names, "extra"]), ANY_JSON | WHEN | st.just(customer), max_size=5
    )
    return st.lists(good | broken, max_size=6)


def _transactions(customer: str):
    good = st.fixed_dictionaries(
        {
            s.ORDER_ID: st.sampled_from(["o1", "o2", "o3"]),
            s.CUSTOMER_ID: st.just(customer),
            s.PRODUCT_ID: st.sampled_from(["P00001", "P00002", "nope"]),
            s.QUANTITY: st.integers(-2, 3),
            s.UNIT_PRICE: st.floats(-1, 50, allow_nan=False, allow_infinity=False),
            s.TIMESTAMP: WHEN,
        }
    )
    broken = st.dictionaries(st.sampled_from([*s.TRANSACTIONS_TABLE.column_names, "x"]), ANY_JSON, max_size=6)
    return st.lists(good | broken, max_size=4)


@st.composite
def bodies(draw):
    customer = f"fuzz-{next(_serial)}"  # a customer of its own: examples do not see each other's rows
    body = {"events": draw(_events(customer)), "transactions": draw(_transactions(customer))}
    return {name: rows for name, rows in body.items() if rows or draw(st.booleans())}


def _rows(body: dict) -> int:
    return sum(len(rows) for rows in body.values())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies())
def test_random_event_bodies_never_fail_the_server_and_a_retry_adds_nothing(client, body):
    first = client.post("/events", json=body)
    assert first.status_code < 500, first.text
    if first.status_code != 200:
        assert set(first.json()) == {"error", "field"}
        return
    answer = first.json()
    assert answer["accepted"] + len(answer["rejected"]) + answer["duplicates"] == _rows(body)
    again = client.post("/events", json=body).json()
    assert again["accepted"] == 0
    assert again["duplicates"] == answer["accepted"] + answer["duplicates"]
    assert len(again["rejected"]) == len(answer["rejected"])
