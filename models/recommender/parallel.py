"""Lists for many customers at once: chunks of customers spread over forked worker processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence

import pandas as pd
from tqdm import tqdm

from models.recommender.model import TwoStageRecommender
from models.recommender.rules import RecommendationRules, make_rules

_WORK: dict = {}  # what forked workers read from the parent's memory


def recommend_in_parallel(
    model: TwoStageRecommender,
    customer_ids: Sequence[str],
    k: int = 10,
    n_jobs: int = 2,
    chunk_size: int = 20_000,
    progress: bool = False,
    rules: RecommendationRules | None = None,
    **rule_values,
) -> pd.DataFrame:
    """`model.recommend` for many customers, in chunks spread over `n_jobs` forked processes.

    The same rows, in the same order, as one `recommend(customer_ids, k, rules)` call (rules as one
    `RecommendationRules` or as its fields by keyword, not both): each customer's list depends only
    on that customer and the fitted model, so chunks are independent. Workers read the model
    through the parent's memory (fork, copy-on-write).
    """
    rules = make_rules(rules, rule_values)  # checked once here, not in every worker
    wanted = list(dict.fromkeys(customer_ids))
    chunks = [wanted[start : start + chunk_size] for start in range(0, len(wanted), chunk_size)]
    if n_jobs <= 1 or len(chunks) <= 1:
        parts = [model.recommend(chunk, k, rules) for chunk in tqdm(chunks, disable=not progress, unit="chunk")]
    else:
        _WORK.update(model=model, chunks=chunks, k=k, rules=rules)
        try:
            with multiprocessing.get_context("fork").Pool(n_jobs) as pool:
                work = pool.imap(_recommend_chunk, range(len(chunks)))
                parts = list(tqdm(work, total=len(chunks), disable=not progress, unit="chunk", desc="recommend"))
        finally:
            _WORK.clear()
    return pd.concat(parts, ignore_index=True) if parts else model.recommend([], k, rules)


def _recommend_chunk(number: int) -> pd.DataFrame:
    return _WORK["model"].recommend(_WORK["chunks"][number], _WORK["k"], _WORK["rules"])
