"""Propensity per category on generated data, through the product's own commands.

    python -m bench.affinity [--work data/bench/affinity] [--customers 5000] [--seed 11] [--write-docs]

Runs `pipelines.generate` and `pipelines.train --models propensity` as subprocesses into a fresh
MLflow store, then reads the propensity run: every category candidate's (model, past share, RFM
and share logistic, popularity) mean per-category ROC-AUC, top-1 accuracy and top-3 hit rate with their 95% intervals,
Brier and ECE, the model's paired difference to each baseline, which one serves the categories,
and each category's ROC-AUC with its interval.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pandas as pd

from bench.report import interval_text, logged_interval, replace_section, run_command
from features import schema as s
from features.labels import product_categories
from models.names import PROPENSITY
from pipelines import registry

DOCS_PATH = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"
DEFAULT_WORK = Path(__file__).resolve().parents[1] / "data" / "bench" / "affinity"
CANDIDATES = ("model", "past_share", "rfm_share_logistic", "popularity")


def run(work: Path, customers: int, seed: int) -> dict:
    if work.exists():
        shutil.rmtree(work)
    data, store = work / "data", work / "mlruns"
    seconds = {
        "generate": run_command("pipelines.generate", "--customers", customers, "--seed", seed, "--out", data),
        "train": run_command("pipelines.train", "--data", data, "--models", PROPENSITY, "--mlflow-store", store),
    }
    registry.connect(store)
    run_row = registry.recent_runs(PROPENSITY, limit=1).iloc[0]
    served = json.loads(run_row["tags.gate.served_per_output"])["category_affinity"]
    summary = []
    for candidate in CANDIDATES:
        prefix = f"metrics.categories.{candidate}"
        summary.append(
            {
                "candidate": candidate,
                "mean per-category ROC-AUC [95%]": logged_interval(run_row, f"{prefix}.mean_roc_auc"),
                "model - candidate [95%]": _versus(run_row, candidate, "mean_roc_auc"),
                "top-1 accuracy [95%]": logged_interval(run_row, f"{prefix}.top1_hit_rate"),
                "model - candidate, top-1": _versus(run_row, candidate, "top1_hit_rate"),
                "top-3 hit rate [95%]": logged_interval(run_row, f"{prefix}.top3_hit_rate"),
                "model - candidate, top-3": _versus(run_row, candidate, "top3_hit_rate"),
                "Brier": f"{run_row[f'{prefix}.brier']:.4f}",
                "ECE": f"{run_row[f'{prefix}.ece']:.4f}",
                "serves the categories": "yes" if candidate == served else "",
            }
        )
    products = pd.read_parquet(data / f"{s.PRODUCTS}.parquet")
    catalogue = product_categories(products)
    share_of_catalogue = products[s.CATEGORY].value_counts(normalize=True)
    per_category = []
    for category in catalogue:
        output = s.category_purchase_probability(category, catalogue)
        row = {"category": category, "share of products": f"{share_of_catalogue[category]:.0%}"}
        for candidate in CANDIDATES[:3]:
            row[f"{candidate} ROC-AUC [95%]"] = logged_interval(run_row, f"metrics.{output}.{candidate}.roc_auc")
        per_category.append(row)
    return {
        "seconds": seconds,
        "customers": customers,
        "seed": seed,
        "test_set": run_row["tags.test_set"],
        "buyers": int(run_row["metrics.categories.buyers"]),
        "overall": interval_text(
            run_row["metrics.test.gate_metric"],
            run_row["metrics.test.gate_metric_low"],
            run_row["metrics.test.gate_metric_high"],
        ),
        "ece_before": run_row["metrics.categories.model.ece_before_calibration"],
        "summary": pd.DataFrame(summary),
        "per_category": pd.DataFrame(per_category),
        "reason": run_row["tags.gate.reason"],
    }


def _versus(run_row: pd.Series, candidate: str, metric: str) -> str:
    """The model's paired difference to the candidate in a category metric, with its interval."""
    if candidate == "model":
        return ""
    return logged_interval(run_row, f"metrics.categories.diff.model_vs_{candidate}.{metric}", signed=True)


def _markdown_table(frame: pd.DataFrame) -> list[str]:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + " --- |" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return lines


def to_markdown(result: dict) -> str:
    seconds = result["seconds"]
    lines = [
        "## Propensity per category (`bench/affinity.py`, issue 14)",
        "",
        f"Generated data ({result['customers']:,} customers, seed {result['seed']}, 12 categories, three of them "
        "at 3% of the catalogue), `pipelines.generate` then `pipelines.train --models propensity` with the default "
        f"settings into a fresh MLflow store; {result['test_set']}, {result['buyers']:,} test customers bought in "
        "some category. 95% intervals from 1,000 paired bootstrap draws over the test customers (top-k rates: over "
        f"the buyers). generate {seconds['generate']:.0f} s, train {seconds['train']:.0f} s on 2 cores, 24 GB. "
        "Produced by `python -m bench.affinity --write-docs`.",
        "",
        *_markdown_table(result["summary"]),
        "",
        f"Overall purchase propensity (unchanged, its own gate): ROC-AUC {result['overall']}. The model's "
        f"ECE over every (customer, category) cell before Platt calibration: {result['ece_before']:.4f}.",
        "",
        "Each category's ROC-AUC (popularity is 0.5 everywhere):",
        "",
        *_markdown_table(result["per_category"]),
        "",
        f"The gate's words: {result['reason']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.affinity", description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.work, args.customers, args.seed)
    text = to_markdown(result)
    print(text)
    if args.write_docs:
        replace_section(DOCS_PATH, "affinity", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
