"""Evaluation of top-k recommendations: pure functions, no I/O.

Conventions shared by every function here
- `recommended[u]` is user u's ranked list of item ids, best first; `relevant[u]` is the
  collection of items user u actually interacted with in the evaluation window. The two
  sequences are aligned by position (one entry per user, same length). Item ids are any
  hashable values, usually strings. Empty inputs, mismatched lengths, a bare string where a
  list is expected and k < 1 raise `ValueError`.
- Only the first k items of a list are scored. A list shorter than k is treated as if padded
  with misses: precision@k still divides by k, so recommending fewer items never inflates it.
- A repeated item keeps its slot in the list but counts once: only its first (best-ranked)
  occurrence can be a hit. Duplicates therefore cost precision and NDCG instead of being
  rewarded twice, and are left out of novelty.
- Users with no relevant items are skipped by the accuracy metrics (precision, recall, NDCG,
  MAP, hit rate): recall and NDCG are undefined for them, and scoring everyone on the same
  user set keeps the metrics comparable. Each metric is the mean over the remaining users
  ("users" in `evaluate_ranking`); it is NaN when no user has a relevant item.
- Relevance is binary. NDCG uses the log2 discount 1 / log2(rank + 1) with ranks from 1, and
  the ideal DCG puts min(k, |relevant|) hits at the top ranks, so a perfect list scores 1
  even when the user has more than k relevant items.
- AP@k = sum over ranks i <= k with a hit of precision@i, divided by min(k, |relevant|):
  the convention of Microsoft Recommenders (`map_at_k`), so a perfect top-k list scores 1.
  MAP@k is its mean over users.

The metric names below, joined to k by "@" (e.g. "ndcg@10"), are the keys of
`evaluate_ranking` and the names logged to MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import repeat

import numpy as np
import pandas as pd

PRECISION = "precision"
RECALL = "recall"
NDCG = "ndcg"
MAP = "map"
HIT_RATE = "hit_rate"
USERS = "users"

RANKING_METRIC_NAMES = (PRECISION, RECALL, NDCG, MAP, HIT_RATE)
DEFAULT_KS = (5, 10, 20)
DEFAULT_K = 10


def metric_key(name: str, k: int) -> str:
    """The key of metric `name` at cutoff k in `evaluate_ranking`, e.g. "ndcg@10"."""
    return f"{name}@{k}"


def precision_at_k(recommended: Sequence[Sequence[str]], relevant: Sequence[Collection[str]], k: int) -> float:
    """Mean over users with a relevant item of (hits in the top k) / k."""
    return _evaluate(recommended, relevant, (k,))[metric_key(PRECISION, k)]


def recall_at_k(recommended: Sequence[Sequence[str]], relevant: Sequence[Collection[str]], k: int) -> float:
    """Mean over users with a relevant item of (hits in the top k) / |relevant|."""
    return _evaluate(recommended, relevant, (k,))[metric_key(RECALL, k)]


def ndcg_at_k(recommended: Sequence[Sequence[str]], relevant: Sequence[Collection[str]], k: int) -> float:
    """Mean over users with a relevant item of DCG@k / ideal DCG@k (binary relevance, log2 discount)."""
    return _evaluate(recommended, relevant, (k,))[metric_key(NDCG, k)]


def average_precision_at_k(recommended: Sequence[Sequence[str]], relevant: Sequence[Collection[str]], k: int) -> float:
    """Mean over users with a relevant item of AP@k, normalised by min(k, |relevant|) (i.e. MAP@k)."""
    return _evaluate(recommended, relevant, (k,))[metric_key(MAP, k)]


map_at_k = average_precision_at_k


def hit_rate_at_k(recommended: Sequence[Sequence[str]], relevant: Sequence[Collection[str]], k: int) -> float:
    """Share of users with a relevant item who have at least one hit in their top k."""
    return _evaluate(recommended, relevant, (k,))[metric_key(HIT_RATE, k)]


def evaluate_ranking(
    recommended: Sequence[Sequence[str]],
    relevant: Sequence[Collection[str]],
    ks: Iterable[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Every ranking metric at every cutoff in `ks`, keyed "precision@k", "recall@k", "ndcg@k",
    "map@k", "hit_rate@k", plus "users": the number of users evaluated (those with at least one
    relevant item), an int. The lists are scanned once whatever the number of cutoffs.
    """
    return _evaluate(recommended, relevant, tuple(ks))


def per_user_scores(
    recommended: Sequence[Sequence[str]], relevant: Sequence[Collection[str]], k: int, name: str = NDCG
) -> np.ndarray:
    """One metric at k for each user, in input order; NaN for a user with no relevant item.

    The mean of the finite values is what `evaluate_ranking` reports; the values themselves are what a
    paired bootstrap over users resamples.
    """
    _check_k(k)
    if name not in RANKING_METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(RANKING_METRIC_NAMES)}")
    hits, n_relevant = _hit_matrix(recommended, relevant, k)
    out = np.full(len(n_relevant), np.nan)
    evaluated = n_relevant > 0
    if evaluated.any():
        out[evaluated] = _scores_at(hits[evaluated], n_relevant[evaluated], k)[name]
    return out


def catalogue_coverage(recommended: Sequence[Sequence[str]], catalogue_size: int, k: int = DEFAULT_K) -> float:
    """Share of the catalogue's `catalogue_size` items that appear in at least one user's top k.

    Raises `ValueError` if more distinct items are recommended than the catalogue holds.
    """
    _check_k(k)
    if isinstance(catalogue_size, bool) or not isinstance(catalogue_size, int | np.integer) or catalogue_size < 1:
        raise ValueError(f"catalogue_size must be a positive integer, got {catalogue_size!r}")
    _check_lists(recommended, "recommended")
    distinct: set = set()
    for items in recommended:
        _check_not_str(items, "recommended")
        distinct.update(items[:k])
    if len(distinct) > catalogue_size:
        raise ValueError(f"{len(distinct)} distinct items were recommended but catalogue_size is {catalogue_size}")
    return len(distinct) / catalogue_size


def novelty(
    recommended: Sequence[Sequence[str]],
    item_popularity: Mapping[str, float] | pd.Series,
    n_users: int,
    k: int = DEFAULT_K,
) -> float:
    """Mean self-information, in bits, of the recommended items.

    An item's self-information is -log2(popularity / n_users), where `item_popularity[item]` is
    the number of users who interacted with it (in the training data) and `n_users` the number
    of those users: an item everyone has seen scores 0, one seen by 1 in 1024 users scores 10.
    The mean is taken over every (user, item) pair in the top k lists, repeats within a list
    counted once, so an item recommended to many users weighs more (the Microsoft Recommenders
    definition). NaN if no items are recommended. Raises `ValueError` if a recommended item has
    no popularity or a popularity outside (0, n_users].
    """
    _check_k(k)
    if isinstance(n_users, bool) or not isinstance(n_users, int | np.integer) or n_users < 1:
        raise ValueError(f"n_users must be a positive integer, got {n_users!r}")
    _check_lists(recommended, "recommended")
    popularity = item_popularity if isinstance(item_popularity, pd.Series) else pd.Series(item_popularity, dtype=float)
    if not popularity.index.is_unique:
        raise ValueError("item_popularity has repeated items")
    flat: list = []
    for items in recommended:
        _check_not_str(items, "recommended")
        top = items[:k]
        flat.extend(dict.fromkeys(top) if len(set(top)) < len(top) else top)
    if not flat:
        return math.nan
    lookup = dict(zip(popularity.index, popularity.to_numpy(dtype=float), strict=True))
    counts = np.fromiter(map(lookup.get, flat, repeat(math.nan)), dtype=float, count=len(flat))
    if np.isnan(counts).any():
        missing = flat[int(np.argmax(np.isnan(counts)))]
        raise ValueError(f"item {missing!r} is recommended but has no popularity")
    if not ((counts > 0) & (counts <= n_users)).all():
        raise ValueError(f"item popularity must be in (0, n_users={n_users}] for every recommended item")
    return float(np.mean(-np.log2(counts / n_users)))


def _evaluate(recommended, relevant, ks: tuple[int, ...]) -> dict[str, float]:
    if not ks:
        raise ValueError("ks must hold at least one cutoff")
    for k in ks:
        _check_k(k)
    hits, n_relevant = _hit_matrix(recommended, relevant, max(ks))
    # users without relevant items are skipped (see the module docstring)
    evaluated = n_relevant > 0
    hits, n_relevant = hits[evaluated], n_relevant[evaluated]
    n_users = int(n_relevant.size)
    result: dict[str, float] = {}
    for k in ks:
        scores = _scores_at(hits[:, :k], n_relevant, k) if n_users else dict.fromkeys(RANKING_METRIC_NAMES)
        for name in RANKING_METRIC_NAMES:
            result[metric_key(name, k)] = math.nan if scores[name] is None else float(np.mean(scores[name]))
    result[USERS] = n_users
    return result


def _scores_at(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-user scores from the boolean hit matrix of the top k (users x k) and |relevant|."""
    n_hits = hits.sum(axis=1)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal_cumulative = np.cumsum(discounts)
    n_ideal = np.minimum(n_relevant, k)
    dcg = hits @ discounts
    precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    return {
        PRECISION: n_hits / k,
        RECALL: n_hits / n_relevant,
        NDCG: dcg / ideal_cumulative[n_ideal - 1],
        MAP: (precision_at_rank * hits).sum(axis=1) / n_ideal,
        HIT_RATE: (n_hits > 0).astype(float),
    }


def _hit_matrix(recommended, relevant, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Users x k boolean matrix (True where rank i holds a relevant item seen for the first time)
    and the number of relevant items per user."""
    _check_lists(recommended, "recommended")
    _check_lists(relevant, "relevant")
    if len(recommended) != len(relevant):
        raise ValueError(f"recommended has {len(recommended)} users but relevant has {len(relevant)}")
    n = len(recommended)
    n_relevant = np.empty(n, dtype=np.int64)
    lengths = np.empty(n, dtype=np.int64)
    flags: list[bool] = []
    # One pass in Python over short lists; set membership is the costly part and is done per item.
    for user, (items, wanted) in enumerate(zip(recommended, relevant, strict=True)):
        if isinstance(items, str) or isinstance(wanted, str):
            raise ValueError(f"user {user}: expected collections of item ids, got a string")
        wanted = wanted if isinstance(wanted, set | frozenset) else set(wanted)
        n_relevant[user] = len(wanted)
        top = items[:k]
        lengths[user] = len(top)
        if len(set(top)) == len(top):
            flags.extend([item in wanted for item in top])
        else:  # a repeat keeps its slot but cannot hit again
            seen: set = set()
            for item in top:
                flags.append(item in wanted and item not in seen)
                seen.add(item)
    hits = np.zeros((n, k), dtype=bool)
    hits[np.arange(k) < lengths[:, None]] = np.fromiter(flags, dtype=bool, count=len(flags))
    return hits, n_relevant


def _check_k(k) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")


def _check_lists(values, name: str) -> None:
    if isinstance(values, str) or not hasattr(values, "__len__"):
        raise ValueError(f"{name} must be a sequence with one entry per user")
    if len(values) == 0:
        raise ValueError(f"{name} is empty: cannot evaluate zero users")


def _check_not_str(items, name: str) -> None:
    if isinstance(items, str):
        raise ValueError(f"{name} must hold one list of item ids per user, got a string")
