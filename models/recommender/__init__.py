"""The two-stage recommender: candidate sources, then a LightGBM lambdarank ranker over their features.

Stage 1 (candidates), fitted on the purchases strictly before a cutoff `as_of`:
- `ease`: the top items of an `EaseRecommender` over the `ease_max_items` most bought products
  (EASE keeps a dense item x item matrix, so it covers the catalogue only while that fits);
- `knn`: the top items of an `ItemKNNRecommender` (cosine over co-purchases) on the whole catalogue;
- `recent`: item-kNN again, over the customer's purchases weighted by recency: a purchase counts
  half as much with every `recent_half_life` (5) products bought after it, since what someone
  wants next follows what they just bought (MovieLens, a validation split: the ranker 0.167 -> 0.234 NDCG@10);
- `category_popularity`: the most bought items of the customer's top categories (and of any
  category a query asks for), scored by the customer's share of purchases in the category times
  the item's popularity;
- `popular`: the overall most popular items of the last 90 days (also the cold-start answer);
- `buy_again`: replenishable products the customer bought whose cycle is at least half over.
Durable products the customer already bought are never candidates (unless `recommend` is asked
to keep purchased items): the label window counts only new durables and any consumable.

Stage 2 (ranker): one row per (customer, candidate) with each source's score and rank (empty
when the source did not propose the item), the recency-weighted similarity for every candidate,
the item's popularity and trend, the customer's share
of purchases in the item's category and days since they last bought it, how often and how long
ago the customer bought the item, its replenishment due ratio, and how far its price is from what
the customer usually pays. It is trained with objective `lambdarank`, one group per (cutoff,
customer), on the products `make_product_pairs` says were bought in [cutoff, cutoff + horizon).

Everything after the fit runs on integer codes and numpy arrays (ids are factorised once per
fit, customers and products sorted by id), so one customer's top 10 takes a few milliseconds and
a million customers go through in batches.

Serving time: `fit` refits stage 1 once more on every purchase before
`as_of_ = max(as_of_cutoffs) + horizon_days`, the end of the last label window (the ranker has
seen nothing after it); `refresh_candidates` moves stage 1 to a later moment without touching
the ranker. Query-time rules (`RecommendationRules`) filter and cap the ranked lists. Pure code,
no I/O.

Modules, each importing at run time only modules above it:
- `arrays`: small numpy/scipy helpers over index arrays (runs, ranges, CSR rows and columns);
- `catalogue`: `Catalogue` and `Lines`, products and purchase lines as integer codes;
- `config`: `CandidateConfig` and `RankerConfig`, the frozen settings;
- `sources`: the six candidate sources, each proposing (customer, product, score, rank);
- `reasons`: the reason wording and the rule that picks one per recommended product;
- `stage1`: `Stage1`, `PairTable` and `fit_stage1`, the sources' models and per-customer tables;
- `candidates`: `Candidates`, `FEATURES` and `build_candidates`, the ranker's input rows;
- `rules`: `RecommendationRules`, the query-time rules, and their form as catalogue codes;
- `training`: labelled candidate groups per cutoff and the LightGBM lambdarank fit;
- `ranking`: scored candidates to lists (rules, per-category cap, cold start, the result frame);
- `model`: `TwoStageRecommender`, fit and serve (recommend, similar_items, bought_together), and
  `BaselineRecommender`: the same with a baseline rule for a ranker;
- `baselines`: the baseline rules (popularity, item-kNN, EASE, buy-again) over the same candidates;
- `parallel`: `recommend_in_parallel`, many customers over forked worker processes.
"""

from models.recommender.baselines import (
    BASELINE_BUY_AGAIN,
    BASELINE_EASE,
    BASELINE_ITEM_KNN,
    BASELINE_POPULARITY,
    BASELINES,
)
from models.recommender.candidates import FEATURES, Candidates, build_candidates
from models.recommender.catalogue import Catalogue, Lines, build_catalogue, code_lines
from models.recommender.config import CandidateConfig, RankerConfig
from models.recommender.model import SIMILARITY, BaselineRecommender, TwoStageRecommender
from models.recommender.parallel import recommend_in_parallel
from models.recommender.ranking import RecommendationLists
from models.recommender.reasons import (
    REASON_BOUGHT_BEFORE,
    REASON_BOUGHT_TOGETHER,
    REASON_POPULAR,
    REASON_RESTOCK,
    REASON_SIMILAR_CUSTOMERS,
)
from models.recommender.rules import RULE_NAMES, RecommendationRules
from models.recommender.sources import (
    SIMILARITY_SOURCES,
    SOURCE_BUY_AGAIN,
    SOURCE_CATEGORY_POPULARITY,
    SOURCE_EASE,
    SOURCE_KNN,
    SOURCE_POPULAR,
    SOURCES,
)
from models.recommender.stage1 import ITEM_FEATURES, PairTable, Stage1, fit_stage1

__all__ = [
    "BASELINES",
    "BASELINE_BUY_AGAIN",
    "BASELINE_EASE",
    "BASELINE_ITEM_KNN",
    "BASELINE_POPULARITY",
    "BaselineRecommender",
    "FEATURES",
    "ITEM_FEATURES",
    "REASON_BOUGHT_BEFORE",
    "REASON_BOUGHT_TOGETHER",
    "REASON_POPULAR",
    "REASON_RESTOCK",
    "REASON_SIMILAR_CUSTOMERS",
    "RULE_NAMES",
    "SIMILARITY",
    "SIMILARITY_SOURCES",
    "SOURCES",
    "SOURCE_BUY_AGAIN",
    "SOURCE_CATEGORY_POPULARITY",
    "SOURCE_EASE",
    "SOURCE_KNN",
    "SOURCE_POPULAR",
    "CandidateConfig",
    "Candidates",
    "Catalogue",
    "Lines",
    "PairTable",
    "RankerConfig",
    "RecommendationLists",
    "RecommendationRules",
    "Stage1",
    "TwoStageRecommender",
    "build_candidates",
    "build_catalogue",
    "code_lines",
    "fit_stage1",
    "recommend_in_parallel",
]

# Registered models are pickles that name each class by `__module__` + `__qualname__`. Pinning the
# classes a fitted model holds to this package's path keeps those names off the internal layout:
# models pickled before the split load here, models pickled here load in the code before it, and
# moving a class between modules later breaks neither.
PICKLED_CLASSES = (
    TwoStageRecommender,
    BaselineRecommender,
    Stage1,
    Catalogue,
    PairTable,
    CandidateConfig,
    RankerConfig,
)
for _pickled in PICKLED_CLASSES:
    _pickled.__module__ = __name__
