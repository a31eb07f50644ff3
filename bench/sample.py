"""The generated sample through the product's own commands: what `make train` serves, beside every baseline.

    python -m bench.sample [--work data/bench/sample] [--write-docs]

Runs `pipelines.generate --customers 5000 --seed 42` (the Makefile's sample) and `pipelines.train`
with the default settings as subprocesses, into a fresh MLflow store, then reads each model's
training run: every candidate's gate metric with its 95% interval (ROC-AUC for churn and
propensity, NDCG@10 for the recommender), the model's paired difference to each baseline, which
candidate is served, and, for the recommender, the same NDCG@10 on the items new to the customer
and on the consumables bought again.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd

from bench.report import logged_interval, replace_section, run_command, served_label
from models.names import CHURN, PROPENSITY, RECOMMENDER
from pipelines import registry

CUSTOMERS, SEED = 5000, 42
DOCS_PATH = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"
DEFAULT_WORK = Path(__file__).resolve().parents[1] / "data" / "bench" / "sample"
CANDIDATES = {
    CHURN: ("model", "recency", "rfm_logistic", "bgnbd"),
    PROPENSITY: ("model", "recency", "rfm_logistic", "bgnbd"),
    RECOMMENDER: ("model", "popularity", "item_knn", "ease", "buy_again_first"),
}


def run(work: Path) -> tuple[pd.DataFrame, dict[str, float]]:
    if work.exists():
        shutil.rmtree(work)
    data, store = work / "data", work / "mlruns"
    seconds = {
        "generate": run_command("pipelines.generate", "--customers", CUSTOMERS, "--seed", SEED, "--out", data),
        "train": run_command("pipelines.train", "--data", data, "--mlflow-store", store),
    }
    registry.connect(store)
    rows = []
    for model_name, candidates in CANDIDATES.items():
        run_row = registry.recent_runs(model_name, limit=1).iloc[0]
        for candidate in candidates:
            prefix = "metrics.test" if candidate == "model" else f"metrics.{candidate}.test"
            row = {
                "model": model_name,
                "test set": run_row["tags.test_set"],
                "candidate": candidate,
                "gate metric [95%]": logged_interval(run_row, f"{prefix}.gate_metric"),
                "model - candidate [95%]": ""
                if candidate == "model"
                else logged_interval(run_row, f"metrics.diff.model_vs_{candidate}.gate_metric", signed=True),
                "served": served_label(run_row, candidate),
            }
            if model_name == RECOMMENDER:
                name = "" if candidate == "model" else f"{candidate}."
                row["new items"] = f"{run_row[f'metrics.{name}new_items.ndcg_at_10']:.4f}"
                row["buy again"] = f"{run_row[f'metrics.{name}buy_again.ndcg_at_10']:.4f}"
            rows.append(row)
    return pd.DataFrame(rows), seconds


def to_markdown(table: pd.DataFrame, seconds: dict[str, float]) -> str:
    lines = [
        f"The generated sample ({CUSTOMERS:,} customers, seed {SEED}: what `make train` builds), trained with the "
        "default settings into a fresh MLflow store. Gate metric: ROC-AUC for churn and propensity, NDCG@10 for "
        "the recommender, with 95% bootstrap intervals over the same test customers; `new items` and `buy again` "
        "are the recommender's NDCG@10 on the products new to the customer and on consumables bought again. "
        f"generate {seconds['generate']:.0f} s, train {seconds['train']:.0f} s. "
        "Produced by `python -m bench.sample --write-docs`.",
        "",
    ]
    for model_name, rows in table.groupby("model", sort=False):
        columns = [c for c in rows.columns if c not in ("model", "test set") and rows[c].notna().all()]
        lines += [
            f"**{model_name}** ({rows['test set'].iloc[0]})",
            "",
            "| " + " | ".join(columns) + " |",
            "|" + " --- |" * len(columns),
        ]
        lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for _, row in rows.iterrows()]
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--write-docs", action="store_true", help="write the tables into docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    table, seconds = run(args.work)
    markdown = to_markdown(table, seconds)
    print(markdown)
    if args.write_docs:
        replace_section(DOCS_PATH, "sample", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
