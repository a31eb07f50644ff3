"""The ranker's training data and fit: labelled candidate groups per cutoff, then LightGBM lambdarank."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.schema import CUSTOMER_ID, PRODUCT_ID
from models.recommender.candidates import Candidates, build_candidates
from models.recommender.config import CandidateConfig, RankerConfig
from models.recommender.stage1 import Stage1

TrainingBlock = tuple[Candidates, np.ndarray, np.ndarray]  # candidates, label per row, group sizes


def build_training_block(
    stage1: Stage1,
    bought: pd.DataFrame,
    candidate_config: CandidateConfig,
    ranker_config: RankerConfig,
    number: int,
) -> TrainingBlock | None:
    """Candidates of the buyers in `bought` (customer_id, product_id pairs) with labels and group sizes.

    At most `max_customers_per_cutoff` buyers, drawn with the ranker's seed and the block `number`.
    None when no buyer has history in stage 1 or none has a bought candidate.
    """
    catalogue = stage1.catalogue
    buyer = stage1.codes_of(bought[CUSTOMER_ID].to_numpy(dtype=object))
    bought_item = catalogue.index.get_indexer(bought[PRODUCT_ID].to_numpy(dtype=object))
    customers = np.unique(buyer[buyer >= 0])
    if len(customers) > ranker_config.max_customers_per_cutoff:
        rng = np.random.default_rng([ranker_config.seed, number])
        customers = np.sort(rng.choice(customers, ranker_config.max_customers_per_cutoff, replace=False))
    if not len(customers):
        return None
    candidates = build_candidates(stage1.restricted_to(customers), customers, candidate_config)
    n_items = catalogue.size
    owner_of = np.searchsorted(customers, buyer)
    found = (buyer >= 0) & (bought_item >= 0) & (owner_of < len(customers))
    found[found] = customers[owner_of[found]] == buyer[found]
    positive = owner_of[found] * n_items + bought_item[found]
    label = np.isin(candidates.owner * n_items + candidates.item, positive)
    # a group without a bought candidate has nothing to rank above anything else
    with_positive = np.zeros(len(customers), dtype=bool)
    with_positive[candidates.owner[label]] = True
    keep = with_positive[candidates.owner]
    candidates, label = candidates.take(keep), label[keep]
    if not len(label):
        return None
    sizes = np.bincount(candidates.owner, minlength=len(customers))
    return candidates, label, sizes[sizes > 0]


def fit_ranker(blocks: list[TrainingBlock | None], ranker_config: RankerConfig) -> tuple[lgb.LGBMRanker, int, int]:
    """(ranker, groups, rows): LightGBM lambdarank fitted on the blocks' candidates, one group per customer.

    Raises ValueError when every block is None.
    """
    blocks = [block for block in blocks if block is not None]
    if not blocks:
        raise ValueError("no cutoff has a customer with a bought candidate in its label window")
    features = np.concatenate([candidates.features for candidates, _, _ in blocks])
    labels = np.concatenate([label for _, label, _ in blocks])
    sizes = np.concatenate([sizes for _, _, sizes in blocks])
    ranker = lgb.LGBMRanker(
        objective="lambdarank",
        n_estimators=ranker_config.n_estimators,
        learning_rate=ranker_config.learning_rate,
        num_leaves=ranker_config.num_leaves,
        min_child_samples=ranker_config.min_child_samples,
        random_state=ranker_config.seed,
        n_jobs=1,  # LightGBM's num_threads: one thread plus `deterministic` gives reproducible trees
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )
    ranker.fit(features, labels.astype(int), group=sizes)
    return ranker, len(sizes), len(features)
