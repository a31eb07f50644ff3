"""Real data: the public CDNOW sample through ingest -> train -> score, models beside baselines.

    python -m bench.cdnow [--work data/bench/cdnow] [--write-docs]

The standard protocol: history before as_of = 1997-10-01; churn = no
purchase in the 182 days from as_of, propensity = a purchase in the 91 days from as_of. Training
cutoffs end before as_of (`train --evaluate-at 1997-10-01`), so the test window holds only
purchases the models have never seen. The numbers come from the training run's test window and
are checked against `pipelines.score`'s output on the same customers.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd

from bench.public_data import fetch_cdnow_sample
from bench.report import replace_section
from features import schema as s
from features.labels import make_churn_labels, make_purchase_labels
from models.metrics import evaluate_binary
from pipelines import ingest, registry, score, train
from pipelines.io import read_table

AS_OF = "1997-10-01"
DATA_END = "1998-07-01"
HORIZONS = {"churn": 182, "propensity": 91}
SETTINGS = [
    # CDNOW sells a single product ("cd"): nothing to recommend
    "--models",
    "churn,propensity",
    "--set",
    f"churn.horizon_days={HORIZONS['churn']}",
    "--set",
    f"propensity.horizon_days={HORIZONS['propensity']}",
    # first purchases all fall in Q1 1997: step back two weeks at a time to get enough cutoffs
    "--set",
    "training.cutoff_step_days=14",
    "--set",
    "training.n_cutoffs=8",
]
SCORERS = ("model", "recency", "rfm_logistic", "bgnbd")
METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_at_10", "capture_at_20")


def run(work: Path) -> pd.DataFrame:
    if work.exists():
        shutil.rmtree(work)
    data, store = work / "data", work / "mlruns"
    source = fetch_cdnow_sample()
    assert ingest.main(["--format", "cdnow", "--input", str(source), "--out", str(data)]) == 0
    assert (
        train.main(
            ["--data", str(data), "--mlflow-store", str(store), "--as-of", DATA_END, "--evaluate-at", AS_OF, *SETTINGS]
        )
        == 0
    )
    registry.connect(store)
    rows = []
    for model_name in HORIZONS:
        run_row = registry.recent_runs(model_name, limit=1).iloc[0]
        for scorer in SCORERS:
            prefix = "metrics.test" if scorer == "model" else f"metrics.{scorer}.test"
            rows.append(
                {
                    "model": model_name,
                    "scorer": scorer,
                    **{m: run_row.get(f"{prefix}.{m}") for m in METRICS},
                    "gate": run_row["tags.gate.decision"] if scorer == "model" else "",
                }
            )
    return pd.DataFrame(rows)


def check_scores(work: Path) -> dict[str, float]:
    """ROC-AUC of `pipelines.score` output at as_of against the real future, per model."""
    data, store = work / "data", work / "mlruns"
    out = work / "scores.parquet"
    alias_args = []
    registry.connect(store)
    for model_name in HORIZONS:
        if registry.champion_version(model_name) is None:
            alias_args = ["--alias", "challenger"]
    assert (
        score.main(
            [
                "--data",
                str(data),
                "--mlflow-store",
                str(store),
                "--as-of",
                AS_OF,
                "--out",
                str(out),
                *SETTINGS,
                *alias_args,
            ]
        )
        == 0
    )
    scores = pd.read_parquet(out)
    transactions = read_table(data / "transactions.parquet")
    as_of = pd.Timestamp(AS_OF)
    population = scores.loc[scores[s.CHURN_PROBABILITY].notna(), s.CUSTOMER_ID]  # the churn population
    churn = make_churn_labels(transactions, population, as_of, HORIZONS["churn"]).merge(scores, on=s.CUSTOMER_ID)
    bought = make_purchase_labels(transactions, scores[s.CUSTOMER_ID], as_of, HORIZONS["propensity"]).merge(
        scores, on=s.CUSTOMER_ID
    )
    return {
        "churn": evaluate_binary(churn[s.CHURN_LABEL], churn[s.CHURN_PROBABILITY])["roc_auc"],
        "propensity": evaluate_binary(bought[s.PURCHASE_LABEL], bought[s.PURCHASE_PROBABILITY])["roc_auc"],
    }


def to_markdown(table: pd.DataFrame, scored: dict[str, float]) -> str:
    lines = [
        f"CDNOW sample (2,357 customers), as_of {AS_OF}, test window = the real future after as_of; "
        f"churn horizon {HORIZONS['churn']} days, propensity horizon {HORIZONS['propensity']} days. "
        "Baselines are fitted and calibrated on the same training cutoffs. "
        "Produced by `python -m bench.cdnow --write-docs`.",
        "",
        "| model | scorer | " + " | ".join(METRICS) + " | gate |",
        "| --- | --- | " + " | ".join("---" for _ in METRICS) + " | --- |",
    ]
    for row in table.itertuples(index=False):
        values = " | ".join(f"{getattr(row, m):.3f}" for m in METRICS)
        lines.append(f"| {row.model} | {row.scorer} | {values} | {row.gate} |")
    lines.append("")
    lines.append(
        "ROC-AUC of `pipelines.score` output at as_of against the same future: "
        + ", ".join(f"{name} {auc:.3f}" for name, auc in scored.items())
        + "."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("data/bench/cdnow"))
    parser.add_argument("--write-docs", action="store_true", help="write the table into docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    table = run(args.work)
    scored = check_scores(args.work)
    markdown = to_markdown(table, scored)
    print(markdown)
    if args.write_docs:
        replace_section(Path("docs/BENCHMARKS.md"), "cdnow", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
