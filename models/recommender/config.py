"""The recommender's settings as frozen typed data: the candidate sources' and the ranker's."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CandidateConfig:
    """How many candidates each source proposes, and the stage-1 model settings."""

    n_per_source: int = 30
    n_top_categories: int = 3
    n_per_category: int = 10
    due_ratio_min: float = 0.5  # a consumable becomes a buy-again candidate at half its cycle
    popularity_days: int = 90
    trend_days: int = 30
    ease_l2: float = 200.0
    ease_max_items: int = 3_000  # the dense EASE inverse costs O(n^3): 3,000 items ~10 s, 5,000 ~45 s here
    knn_neighbours: int = 50
    # the `recent` source: a purchase's weight halves with every `recent_half_life` purchases made after it
    recent_half_life: float = 5.0
    batch_size: int = 1024  # customers scored together; bounds memory of the dense EASE scores


@dataclass(frozen=True)
class RankerConfig:
    """LightGBM lambdarank settings (one thread and `deterministic` so a fit is reproducible)."""

    n_estimators: int = 60  # prediction time grows with the trees: a million customers x ~70 candidates
    learning_rate: float = 0.08
    num_leaves: int = 7
    min_child_samples: int = 20
    seed: int = 0
    # customers drawn (seeded) per training cutoff: enough groups for a stable ranker, bounded fit time
    max_customers_per_cutoff: int = 5_000
