"""`python -m pipelines.compare --model NAME`: recent training runs and their test metrics."""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from models.names import MODEL_NAMES
from pipelines import registry
from pipelines.cli import add_mlflow_store_argument
from pipelines.errors import UserError, exits_cleanly_on_user_error

COLUMNS = {
    "tags.mlflow.runName": "run",
    "tags.as_of": "as_of",
    "metrics.test.roc_auc": "roc_auc",
    "metrics.test.pr_auc": "pr_auc",
    "metrics.test.brier": "brier",
    "metrics.test.ece": "ece",
    "metrics.test.lift_at_10": "lift@10%",
    "metrics.recency.test.roc_auc": "recency",
    "metrics.rfm_logistic.test.roc_auc": "rfm_logit",
    "metrics.bgnbd.test.roc_auc": "bgnbd",
    # the recommender
    "metrics.ndcg_at_10": "ndcg@10",
    "metrics.recall_at_10": "recall@10",
    "metrics.coverage_at_10": "coverage@10",
    "metrics.popularity.ndcg_at_10": "popularity",
    "metrics.item_knn.ndcg_at_10": "item_knn",
    "tags.gate.decision": "gate",
}


def comparison_table(runs: pd.DataFrame) -> pd.DataFrame:
    present = {source: name for source, name in COLUMNS.items() if source in runs}
    table = runs[list(present)].rename(columns=present)
    return table.round(4)


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.compare", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help=", ".join(MODEL_NAMES))
    parser.add_argument("--limit", type=int, default=10, help="how many runs, newest first")
    add_mlflow_store_argument(parser)
    args = parser.parse_args(argv)

    registry.connect(args.mlflow_store)
    runs = registry.recent_runs(args.model, args.limit)
    if runs.empty:
        raise UserError(
            f"no training runs of model '{args.model}' in {registry.tracking_uri(args.mlflow_store)}; run `make train`"
        )
    champion = registry.champion_version(args.model)
    print(f"{args.model}: champion is v{champion}" if champion else f"{args.model}: no champion yet")
    print(comparison_table(runs).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
