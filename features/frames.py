"""Frames made from columns that already have their final dtypes, without pandas' inference.

`pd.DataFrame(dict)` checks and converts every column (about 10 microseconds each, ~80 for a small
table); a service request builds a few such frames per call. Here each column becomes a block as it
is: numpy arrays of a numpy dtype (numbers, booleans, datetime64) and pandas extension arrays (text,
nullable ints and booleans). The frame owns the arrays: pass arrays made for it, not views of others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray
from pandas.api.internals import create_dataframe_from_blocks

from features.schema import pandas_dtype_of


def frame_of_arrays(columns: Mapping[str, Any], n_rows: int) -> pd.DataFrame:
    """The frame of these columns, on a 0..n_rows-1 index; what `pd.DataFrame(columns)` gives for
    columns of these kinds (anything else, an object array say, goes through it)."""
    blocks = []
    for position, values in enumerate(columns.values()):
        if isinstance(values, pd.arrays.NumpyExtensionArray):  # what pd.array gives for a numpy dtype
            values = values.to_numpy()
        if isinstance(values, np.ndarray) and values.dtype.kind in "biufcmM" and values.ndim == 1:
            blocks.append((values.reshape(1, -1), np.array([position])))
        elif isinstance(values, ExtensionArray):
            blocks.append((values, np.array([position])))
        else:
            return pd.DataFrame(columns, index=pd.RangeIndex(n_rows), copy=False)
        if len(values) != n_rows:
            raise ValueError(f"column {list(columns)[position]!r} has {len(values)} values, not {n_rows}")
    labels = pd.Index(list(columns), dtype=pandas_dtype_of("str"))
    return create_dataframe_from_blocks(blocks, index=pd.RangeIndex(n_rows), columns=labels)
