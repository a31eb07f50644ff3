"""Real data through the product's own commands: MovieLens-100k, what a user with a ratings log gets.

    python -m bench.movielens [--work data/bench/movielens] [--write-docs] [--validate]

For each per-user protocol the ratings are split into a training and a test part:
- temporal: each user's ratings sorted by (timestamp, item id); the last ceil(25%) are test;
- random: a seeded random 25% of each user's ratings (rounded, at least one left to train).
The training part is written as a `ratings.csv` and driven through the commands, as subprocesses
with the default settings: `pipelines.ingest --format movielens` -> `pipelines.train --models
recommender` (which picks its own validation protocol and champion) -> `pipelines.score --k 10`.
The lists it writes are scored against the test part beside popularity, item-kNN and EASE fitted
on the same training part (EASE's l2 chosen on a split of the training part made the same way,
never on the test part). Every rating is an interaction; items a user rated in training are
never relevant (nobody rates a film twice). Reported: NDCG, precision, recall, MAP and hit rate
at 10 (`models.ranking_metrics`), catalogue coverage, and the per-user paired difference of NDCG@10
to EASE with its standard error.

`--validate` runs the same one level down (the training part split again, the test part never
read): what choices about the product's defaults were made on.
"""

from __future__ import annotations

import argparse
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from bench.public_data import fetch_movielens_100k
from bench.report import interval_text, replace_section, run_command
from features.schema import CUSTOMER_ID, PRODUCT_ID, QUANTITY
from models.evidence import bootstrap_rows, interval, mean_draws
from models.item_models import EaseRecommender, ItemKNNRecommender, PopularityRecommender
from models.names import RECOMMENDER
from models.ranking_metrics import catalogue_coverage, evaluate_ranking, metric_key, per_user_scores
from pipelines import registry

K = 10
TEST_SHARE = 0.25
SEED = 42
VALIDATION_SEED = SEED + 1
EASE_L2_GRID = (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)
KNN_NEIGHBOURS = 100
METRICS = ("ndcg", "precision", "recall", "map", "hit_rate")
DOCS_PATH = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"
DEFAULT_WORK = Path(__file__).resolve().parents[1] / "data" / "bench" / "movielens"
PRODUCT = "the product (train -> score)"
# Non-default settings also shown: a random hold-out is what the random protocol measures.
VARIANTS = {"random": "recommender.held_out=random"}
EASE = "EASE"
USER, ITEM, RATING, TIME = "userId", "movieId", "rating", "timestamp"  # the ratings.csv header


def read_ratings(path: Path) -> pd.DataFrame:
    """The RecBole `ml-100k.inter` file as ratings.csv columns (ids as strings, unix seconds)."""
    frame = pd.read_csv(path, sep="\t", dtype=str)
    frame.columns = [USER, ITEM, RATING, TIME]
    return frame.astype({TIME: np.int64})


# ---------------------------------------------------------------------------
# The two per-user protocols.
# ---------------------------------------------------------------------------
def split_temporal(ratings: pd.DataFrame, share: float = TEST_SHARE, seed: int | None = None):
    """Per user, the last ceil(share) of their ratings by (timestamp, item id) -> (train, test)."""
    ordered = ratings.sort_values([USER, TIME, ITEM], kind="stable")
    position = ordered.groupby(USER, sort=False).cumcount()
    size = ordered.groupby(USER, sort=False)[ITEM].transform("size")
    is_test = position >= size - np.ceil(share * size)
    return ordered[~is_test], ordered[is_test]


def split_random(ratings: pd.DataFrame, share: float = TEST_SHARE, seed: int = SEED):
    """Per user, a seeded random round(share) of their ratings, at least one left to train -> (train, test)."""
    shuffled = ratings.iloc[np.random.default_rng(seed).permutation(len(ratings))]
    position = shuffled.groupby(USER, sort=False).cumcount()
    size = shuffled.groupby(USER, sort=False)[ITEM].transform("size")
    is_test = position < np.minimum(np.round(size * share), size - 1)
    return shuffled[~is_test], shuffled[is_test]


PROTOCOLS = {"temporal": split_temporal, "random": split_random}


def relevant_items(train: pd.DataFrame, test: pd.DataFrame) -> pd.Series:
    """Per test user with training history: the test items they did not rate in training."""
    seen = set(zip(train[USER], train[ITEM], strict=True))
    fresh = [(user, item) not in seen for user, item in zip(test[USER], test[ITEM], strict=True)]
    kept = test[np.array(fresh, dtype=bool) & test[USER].isin(set(train[USER])).to_numpy()]
    return kept.groupby(USER)[ITEM].agg(set)


# ---------------------------------------------------------------------------
# The product, as a user runs it.
# ---------------------------------------------------------------------------
def run_product(
    train: pd.DataFrame, work: Path, overrides: tuple[str, ...] = ()
) -> tuple[pd.Series, dict[str, object]]:
    """ingest -> train --models recommender -> score --k 10 on the training part: (lists per user, facts).

    `overrides` are `--set key=value` settings for the training run (none for the table's main rows)."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ratings, data, store, out = work / "ratings.csv", work / "data", work / "mlruns", work / "lists.parquet"
    train.to_csv(ratings, index=False)
    seconds = {
        "ingest": run_command("pipelines.ingest", "--format", "movielens", "--input", ratings, "--out", data),
        "train": run_command(
            "pipelines.train",
            "--data",
            data,
            "--mlflow-store",
            store,
            "--models",
            RECOMMENDER,
            *(part for setting in overrides for part in ("--set", setting)),
        ),  # fmt: skip
        "score": run_command("pipelines.score", "--data", data, "--mlflow-store", store, "--k", str(K), "--out", out),
    }
    scored = pd.read_parquet(out)
    lists = pd.Series([list(found) for found in scored["recommendations"]], index=scored["customer_id"].astype(str))
    registry.connect(store)
    run = registry.recent_runs(RECOMMENDER, limit=1).iloc[0]
    facts = {
        "protocol": run["tags.protocol"],
        "served": run["tags.gate.served"],
        "decision": run["tags.gate.reason"],
        "internal": {
            name: run.get(f"metrics.{'' if name == 'model' else name + '.'}ndcg_at_10")
            for name in ("model", "ease", "item_knn", "popularity", "buy_again_first")
        },
        "training_groups": int(run["params.training_groups"]),
        "seconds": seconds,
    }
    return lists, facts


# ---------------------------------------------------------------------------
# The baselines, fitted on the same training part.
# ---------------------------------------------------------------------------
def baseline_lists(train: pd.DataFrame, users: pd.Index, split, seed: int) -> tuple[dict[str, list], float]:
    """Popularity, item-kNN and EASE lists for `users` (EASE's l2 chosen on a split of `train`); the l2."""
    interactions = as_interactions(train)
    l2 = tune_ease_l2(train, split, seed)
    models = {
        "popularity": PopularityRecommender(),
        f"item-kNN ({KNN_NEIGHBOURS} neighbours)": ItemKNNRecommender(n_neighbours=KNN_NEIGHBOURS),
        EASE: EaseRecommender(l2=l2),
    }
    lists = {}
    for name, model in models.items():
        model.fit(interactions)
        items, _ = model.recommend(users.to_numpy(), k=K, exclude_seen=True)
        lists[name] = [list(found) for found in items]
    return lists, l2


def tune_ease_l2(train: pd.DataFrame, split, seed: int) -> float:
    """The l2 of `EASE_L2_GRID` with the best NDCG@10 on a split of `train` made like the test split."""
    inner_train, inner_test = split(train, seed=seed)
    relevant = relevant_items(inner_train, inner_test)
    interactions = as_interactions(inner_train)
    scores = {}
    for l2 in EASE_L2_GRID:
        items, _ = EaseRecommender(l2=l2).fit(interactions).recommend(relevant.index.to_numpy(), k=K, exclude_seen=True)
        scores[l2] = evaluate_ranking([list(i) for i in items], list(relevant), ks=(K,))[metric_key("ndcg", K)]
    return max(scores, key=scores.get)


def as_interactions(ratings: pd.DataFrame) -> pd.DataFrame:
    """Ratings as the item models read transactions: one purchase per rating."""
    return pd.DataFrame({CUSTOMER_ID: ratings[USER], PRODUCT_ID: ratings[ITEM], QUANTITY: 1})


# ---------------------------------------------------------------------------
# Scoring.
# ---------------------------------------------------------------------------
def score_lists(name: str, lists: list[list[str]], relevant: pd.Series, catalogue: int, ease: np.ndarray) -> dict:
    result = evaluate_ranking(lists, list(relevant), ks=(K,))
    per_user = per_user_scores(lists, list(relevant), K)
    difference = per_user - ease
    rows = bootstrap_rows(len(per_user))  # the same seeded draws for every list: paired intervals
    return {
        "model": name,
        **{metric: result[metric_key(metric, K)] for metric in METRICS},
        "ndcg_interval": interval(float(np.mean(per_user)), mean_draws(per_user, rows)),
        "vs_ease_interval": interval(float(np.mean(difference)), mean_draws(difference, rows)),
        "coverage": catalogue_coverage(lists, catalogue, K),
        "users": int(result["users"]),
        "vs_ease": float(np.mean(difference)),
        "vs_ease_se": float(np.std(difference, ddof=1) / math.sqrt(len(difference))),
    }


def evaluate_protocol(ratings: pd.DataFrame, protocol: str, work: Path, validate: bool) -> tuple[list[dict], dict]:
    split = PROTOCOLS[protocol]
    train, test = split(ratings, seed=SEED)
    if validate:
        train, test = split(train, seed=VALIDATION_SEED)
    relevant = relevant_items(train, test)
    users = relevant.index
    product_lists, facts = run_product(train, work / protocol)
    lists = {PRODUCT: [product_lists.get(user, []) for user in users]}
    if protocol in VARIANTS:  # the same commands with one setting changed, labelled as such
        setting = VARIANTS[protocol]
        variant_lists, facts["variant"] = run_product(train, work / f"{protocol}-variant", (setting,))
        lists[f"the product, --set {setting}"] = [variant_lists.get(user, []) for user in users]
    baselines, l2 = baseline_lists(train, users, split, VALIDATION_SEED + 1)
    lists |= baselines
    catalogue = ratings[ITEM].nunique()
    ease = per_user_scores(lists[EASE], list(relevant), K)
    rows = [score_lists(name, found, relevant, catalogue, ease) for name, found in lists.items()]
    facts |= {"ease_l2": l2, "test_ratings": len(test), "train_ratings": len(train)}
    return [{"protocol": protocol, **row} for row in rows], facts


def run(work: Path, validate: bool = False) -> tuple[pd.DataFrame, dict[str, dict]]:
    ratings = read_ratings(fetch_movielens_100k())
    rows, facts = [], {}
    for protocol in PROTOCOLS:
        found, facts[protocol] = evaluate_protocol(ratings, protocol, work, validate)
        rows += found
    return pd.DataFrame(rows), facts


def to_markdown(table: pd.DataFrame, facts: dict[str, dict], validate: bool) -> str:
    part = "validation split of the training part" if validate else "test part"
    lines = [
        "MovieLens-100k (943 users, 1,682 movies, 100,000 ratings; every rating an interaction), top "
        f"{K}, scored on the {part}. **temporal**: each user's last ceil(25%) of ratings by (timestamp, item "
        f"id); **random**: a seeded (seed {SEED}) random 25% of each user's ratings. The product row is what "
        "`pipelines.ingest --format movielens` -> `pipelines.train --models recommender` -> `pipelines.score "
        "--k 10` give on the training part, run as subprocesses with the default settings; the baselines are "
        "fitted on the same part. NDCG@10 carries a 95% bootstrap interval over users; `vs EASE` is the mean "
        "per-user difference of NDCG@10 to EASE, with its paired 95% bootstrap interval (the same draws for "
        "every list) and its standard error. Produced by `python -m bench.movielens --write-docs`.",
        "",
        "| protocol | model | "
        + " | ".join(f"{m}@{K}" for m in METRICS)
        + " | coverage | users | vs EASE [95%] (SE) |",
        "| --- | --- | " + " | ".join("---" for _ in METRICS) + " | --- | --- | --- |",
    ]
    for row in table.itertuples(index=False):
        ndcg = row.ndcg_interval
        values = " | ".join(
            interval_text(ndcg.estimate, ndcg.low, ndcg.high) if m == "ndcg" else f"{getattr(row, m):.4f}"
            for m in METRICS
        )
        diff = row.vs_ease_interval
        versus = (
            "-"
            if row.model == EASE
            else f"{interval_text(diff.estimate, diff.low, diff.high, signed=True)} ({row.vs_ease_se:.4f})"
        )
        lines.append(f"| {row.protocol} | {row.model} | {values} | {row.coverage:.3f} | {row.users} | {versus} |")
    lines.append("")
    for protocol, found in _runs(facts):
        internal = ", ".join(
            f"{name} {value:.4f}" for name, value in found["internal"].items() if value is not None and value == value
        )
        seconds = ", ".join(f"{step} {value:.0f} s" for step, value in found["seconds"].items())
        # a variant shares its protocol's baselines, so only the main run names EASE's l2
        ease = f"; EASE l2 {found['ease_l2']:g} (chosen on a split of the training part)" if "ease_l2" in found else ""
        lines.append(
            f"- {protocol}: the training run validated **{found['protocol'].replace('_', ' ')}** and served "
            f"**{found['served']}** ({found['decision']}); its own held-out NDCG@10: {internal}; "
            f"{found['training_groups']:,} ranker training groups; {seconds}{ease}."
        )
    return "\n".join(lines) + "\n"


def _runs(facts: dict[str, dict]):
    """(label, facts) of every training run, the variants after their protocol's main run."""
    for protocol, found in facts.items():
        yield protocol, found
        if "variant" in found:
            yield f"{protocol} with --set {VARIANTS[protocol]}", found["variant"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="folder for the data, store and lists")
    parser.add_argument("--write-docs", action="store_true", help="write the table into docs/BENCHMARKS.md")
    parser.add_argument(
        "--validate", action="store_true", help="score on a split of the training part; the test part is never read"
    )
    args = parser.parse_args(argv)
    if args.validate and args.write_docs:
        parser.error("--validate does not write the docs")
    table, facts = run(args.work, args.validate)
    markdown = to_markdown(table, facts, args.validate)
    print(markdown)
    if args.write_docs:
        replace_section(DOCS_PATH, "movielens", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
