"""The materialised state: what the stored profiles were built with, kept in the store as plain JSON.

`pipelines.materialize` writes it beside the profiles; the service reads it to rebuild a profile
after POST /events with exactly the reference tables and windows of the batch build. It is data,
not a pickle of Python classes, so a store file survives a refactor of the code that wrote it; its
`state_version` says which layout it has, and a store of another version (or one written before the
state was JSON) is refused with a one-line message that says to re-run `pipelines.materialize`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.customer import FeatureWindows
from features.reference import ReferenceTables
from features.repeat_buying import BgNbdParameters
from models.due import ProductCycles
from pipelines.store.base import ProfileStore
from pipelines.store.codec import json_value

STATE_VERSION = 1
STATE_KEY = "materialized_state"
# Earlier stores kept the reference tables as a pickle under this key.
PICKLED_STATE_KEY = "reference_tables"
REMATERIALIZE = "re-run `python -m pipelines.materialize --data DATA_FOLDER` (or `make train`) to rebuild it"


class StaleStateError(RuntimeError):
    """The store's materialised state was written in a layout this code does not read."""


@dataclass(frozen=True)
class MaterializedState:
    """What the profiles in the store were built with."""

    reference: ReferenceTables
    windows: FeatureWindows
    as_of: pd.Timestamp
    churn_lookback_days: int
    # each product's typical cycle for POST /due; None in a store materialised before it existed
    product_cycles: ProductCycles | None = None


def write_materialized_state(store: ProfileStore, state: MaterializedState) -> None:
    store.set_meta({STATE_KEY: json.dumps(state_as_data(state), allow_nan=False)})


def read_materialized_state(store: ProfileStore, where: str = "the profile store") -> MaterializedState | None:
    """The state `pipelines.materialize` left in the store; None when it never ran there.

    Raises StaleStateError (one line, naming `where` and what to do) for a state of another layout.
    """
    text = store.get_meta(STATE_KEY)
    if text is None:
        if store.get_meta(PICKLED_STATE_KEY) is not None:
            raise StaleStateError(f"{where}: the materialised state was written by an older version; {REMATERIALIZE}")
        return None
    data = json.loads(text)
    version = data.get("state_version")
    if version != STATE_VERSION:
        raise StaleStateError(
            f"{where}: materialised state version {version}, but this code reads version {STATE_VERSION}; "
            f"{REMATERIALIZE}"
        )
    return state_from_data(data)


def state_as_data(state: MaterializedState) -> dict[str, Any]:
    """The state as JSON-ready data (NaN written as null)."""
    reference = state.reference
    return {
        "state_version": STATE_VERSION,
        "as_of": state.as_of.isoformat(),
        "churn_lookback_days": state.churn_lookback_days,
        "windows": {
            "windows_days": list(state.windows.windows_days),
            "behaviour_windows_days": list(state.windows.behaviour_windows_days),
        },
        "reference": {
            "as_of": reference.as_of.isoformat(),
            "top_categories": list(reference.top_categories),
            "rfm_breakpoints": {name: list(edges) for name, edges in reference.rfm_breakpoints.items()},
            "bgnbd": reference.bgnbd._asdict() if reference.bgnbd is not None else None,
            "products": _frame_as_data(reference.products),
        },
        "product_cycles": _cycles_as_data(state.product_cycles) if state.product_cycles is not None else None,
    }


def state_from_data(data: dict[str, Any]) -> MaterializedState:
    reference = data["reference"]
    bgnbd = reference["bgnbd"]
    state = MaterializedState(
        reference=ReferenceTables(
            as_of=pd.Timestamp(reference["as_of"]),
            products=_frame_from_data(reference["products"]),
            top_categories=tuple(reference["top_categories"]),
            rfm_breakpoints={name: tuple(edges) for name, edges in reference["rfm_breakpoints"].items()},
            bgnbd=BgNbdParameters(**bgnbd) if bgnbd is not None else None,
        ),
        windows=FeatureWindows(
            tuple(data["windows"]["windows_days"]), tuple(data["windows"]["behaviour_windows_days"])
        ),
        as_of=pd.Timestamp(data["as_of"]),
        churn_lookback_days=int(data["churn_lookback_days"]),
    )
    cycles = data.get("product_cycles")  # absent in a store of this version written before /due
    return state if cycles is None else dataclasses.replace(state, product_cycles=_cycles_from_data(cycles, state))


# The per-product arrays of `ProductCycles`, in the order of the reference's products.
_CYCLE_ARRAYS = ("typical_cycle_days", "gap_log_sd", "first_reorder_share", "reorder_share")


def _cycles_as_data(cycles: ProductCycles) -> dict[str, Any]:
    return {
        "as_of": cycles.as_of.isoformat(),
        "product_ids": [str(product) for product in cycles.lookup.product_index.tolist()],
        **{name: [json_value(value) for value in getattr(cycles, name).tolist()] for name in _CYCLE_ARRAYS},
    }


def _cycles_from_data(data: dict[str, Any], state: MaterializedState) -> ProductCycles:
    """The cycles over the reference's own product lookup (they were built from the same products)."""
    lookup = state.reference.product_lookup
    if [str(product) for product in lookup.product_index.tolist()] != data["product_ids"]:
        raise StaleStateError(f"the product cycles do not match the reference's products; {REMATERIALIZE}")
    arrays = {name: np.array([math.nan if v is None else v for v in data[name]], dtype=float) for name in _CYCLE_ARRAYS}
    return ProductCycles(as_of=pd.Timestamp(data["as_of"]), lookup=lookup, **arrays)


def _frame_as_data(frame: pd.DataFrame) -> dict[str, Any]:
    """Columns, their dtypes and their values (missing values as null; floats round-trip exactly)."""
    return {
        "columns": [str(column) for column in frame.columns],
        "dtypes": [str(dtype) for dtype in frame.dtypes],
        "values": [[json_value(value) for value in frame[column].tolist()] for column in frame.columns],
    }


def _frame_from_data(data: dict[str, Any]) -> pd.DataFrame:
    columns = {
        name: pd.Series(
            [math.nan if value is None and dtype.startswith("float") else value for value in values]
        ).astype(dtype)
        for name, dtype, values in zip(data["columns"], data["dtypes"], data["values"], strict=True)
    }
    return pd.DataFrame(columns, columns=data["columns"])
