"""Small numpy/scipy helpers over index arrays: runs, ranges, CSR rows and columns, per-row thresholds.

Each builds its answer from the index arrays directly: at a handful of rows scipy's fancy
indexing costs more, and at a million customers sorting or densifying whole matrices does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.records import FEW_VALUES


def prepend(value, values: np.ndarray) -> np.ndarray:
    """`np.r_[value, values]` for a scalar and an int64, float64 or bool array: np.r_ parses its
    arguments in Python (about 5 us a call, a tenth of one customer's request over a dozen calls)."""
    return np.concatenate((np.asarray([value], dtype=values.dtype), values))


def append(values: np.ndarray, value) -> np.ndarray:
    """`np.r_[values, value]`, the same way as `prepend`."""
    return np.concatenate((values, np.asarray([value], dtype=values.dtype)))


def rank_in_runs(groups: np.ndarray) -> np.ndarray:
    """0-based position of each element within its run of equal consecutive `groups` values."""
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    index = np.arange(len(groups))
    run_start = prepend(True, groups[1:] != groups[:-1])
    return index - np.maximum.accumulate(np.where(run_start, index, 0))


def count_and_max_by_key(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the distinct keys, sorted; how many values each has; the largest of them)."""
    if len(values) > FEW_VALUES:
        grouped = pd.Series(values).groupby(keys, sort=True)
        counts = grouped.size()
        return counts.index.to_numpy(np.int64), counts.to_numpy(np.int64), grouped.max().to_numpy(np.float64)
    order = np.lexsort((values, keys))
    keys, values = keys[order], values[order]
    last = append(keys[1:] != keys[:-1], True) if len(keys) else np.zeros(0, dtype=bool)
    counts = np.diff(prepend(0, np.flatnonzero(last) + 1))
    return keys[last].astype(np.int64), counts, values[last]  # sorted by value within a key: its largest


def expand_ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, position) for every position in [starts[i], ends[i]) of every i, in order."""
    lengths = np.maximum(ends - starts, 0)
    owner = np.repeat(np.arange(len(starts)), lengths)
    offsets = np.arange(len(owner)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return owner, np.repeat(starts, lengths) + offsets


def get_entry_rows(matrix: sp.csr_matrix) -> np.ndarray:
    """The row of each stored entry of a CSR matrix, in storage order."""
    return np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))


def select_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """matrix[rows] built from the index arrays (scipy's fancy indexing costs more for a handful of rows)."""
    if len(rows) == matrix.shape[0] and (rows == np.arange(len(rows))).all():  # every row in order: itself
        return matrix
    starts, ends = matrix.indptr[rows], matrix.indptr[rows + 1]
    _, position = expand_ranges(starts, ends)
    indptr = prepend(0, np.cumsum(ends - starts))
    return sp.csr_matrix((matrix.data[position], matrix.indices[position], indptr), shape=(len(rows), matrix.shape[1]))


def select_columns(matrix: sp.csr_matrix, columns: np.ndarray) -> sp.csr_matrix:
    """matrix[:, columns] for sorted `columns`, from the index arrays (scipy's column indexing costs more)."""
    position = np.minimum(np.searchsorted(columns, matrix.indices), len(columns) - 1)
    keep = columns[position] == matrix.indices
    per_row = np.bincount(get_entry_rows(matrix)[keep], minlength=matrix.shape[0])
    indptr = prepend(0, np.cumsum(per_row))
    return sp.csr_matrix((matrix.data[keep], position[keep], indptr), shape=(matrix.shape[0], len(columns)))


def lookup_entries(matrix: sp.csr_matrix, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """matrix[rows[i], columns[i]] for each i (0 where nothing is stored), without densifying the matrix."""
    out = np.zeros(len(rows), dtype=np.float64)
    if not matrix.nnz:
        return out
    if not matrix.has_sorted_indices:
        matrix = matrix.sorted_indices()
    stored = get_entry_rows(matrix) * matrix.shape[1] + matrix.indices  # sorted: rows, then sorted columns
    wanted = rows.astype(np.int64) * matrix.shape[1] + columns
    position = np.minimum(np.searchsorted(stored, wanted), len(stored) - 1)
    hit = stored[position] == wanted
    out[hit] = matrix.data[position[hit]]
    return out


def find_nth_largest_per_row(matrix: sp.csr_matrix, n: int) -> np.ndarray:
    """Each row's n-th largest stored value (-inf when the row holds fewer than n values).

    Rows are laid out in a padded dense block and partitioned: at a million customers and 50,000
    products, sorting every stored score of a batch took most of its time.
    """
    lengths = np.diff(matrix.indptr)
    threshold = np.full(matrix.shape[0], -np.inf)
    if not len(lengths) or lengths.max() <= n:
        return threshold
    row = get_entry_rows(matrix)
    block = np.full((matrix.shape[0], lengths.max()), -np.inf)
    block[row, np.arange(len(row)) - matrix.indptr[row]] = matrix.data
    nth = -np.partition(-block, n - 1, axis=1)[:, n - 1]
    long_rows = lengths > n
    threshold[long_rows] = nth[long_rows]
    return threshold


def locate(index: pd.Index, key) -> int:
    """Position of `key` in `index`, or -1 when it is absent or not unique."""
    try:
        position = index.get_loc(key)
    except KeyError:
        return -1
    return position if isinstance(position, (int, np.integer)) else -1
