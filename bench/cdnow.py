"""Real data: the public CDNOW sample through ingest -> train -> score, models beside baselines.

    python -m bench.cdnow [--work data/bench/cdnow] [--write-docs] [--validate] [--set key=value ...]

The standard protocol: history before as_of = 1997-10-01; churn = no
purchase in the 182 days from as_of, propensity = a purchase in the 91 days from as_of. Training
cutoffs end before as_of (`train --evaluate-at 1997-10-01`), so the test window holds only
purchases the models have never seen. The numbers come from the training run's test window and
are checked against `pipelines.score`'s output on the same customers.

`--validate` is where choices are made without reading the test window: data cut at as_of, the
propensity window [1997-07-02, as_of) scored, training windows ending before it (a churn window
of 182 days does not fit before as_of with any training window, so churn has none). `--set`
passes settings to the training run, as `pipelines.train --set` does.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd

from bench.public_data import fetch_cdnow_sample
from bench.report import logged_interval, replace_section, served_label
from features import schema as s
from features.labels import make_churn_labels, make_purchase_labels
from models.metrics import evaluate_binary
from pipelines import ingest, registry, score, train
from pipelines.io import read_table

AS_OF = "1997-10-01"
VALIDATION_AT = "1997-07-02"  # as_of - 91 days: the last propensity window before the test one
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
METRICS = ("pr_auc", "brier", "ece", "lift_at_10", "capture_at_20")


def run(work: Path, validate: bool = False, overrides: tuple[str, ...] = ()) -> pd.DataFrame:
    if work.exists():
        shutil.rmtree(work)
    data, store = work / "data", work / "mlruns"
    source = fetch_cdnow_sample()
    assert ingest.main(["--format", "cdnow", "--input", str(source), "--out", str(data)]) == 0
    as_of, evaluate_at = (AS_OF, VALIDATION_AT) if validate else (DATA_END, AS_OF)
    window = ["--as-of", as_of, "--evaluate-at", evaluate_at]
    settings = [*SETTINGS, *(part for setting in overrides for part in ("--set", setting))]
    if validate:
        settings[settings.index("churn,propensity")] = "propensity"
    assert train.main(["--data", str(data), "--mlflow-store", str(store), *window, *settings]) == 0
    registry.connect(store)
    rows = []
    for model_name in ("propensity",) if validate else HORIZONS:
        run_row = registry.recent_runs(model_name, limit=1).iloc[0]
        for scorer in SCORERS:
            prefix = "metrics.test" if scorer == "model" else f"metrics.{scorer}.test"
            gate = f"{prefix}.gate_metric"
            difference = f"metrics.diff.model_vs_{scorer}.gate_metric"
            rows.append(
                {
                    "model": model_name,
                    "candidate": scorer,
                    "roc_auc": logged_interval(run_row, gate),
                    **{m: run_row.get(f"{prefix}.{m}") for m in METRICS},
                    "model_minus_candidate": ""
                    if scorer == "model"
                    else logged_interval(run_row, difference, signed=True),
                    "served": served_label(run_row, scorer),
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
    columns = ("candidate", "roc_auc", *METRICS, "model_minus_candidate", "served")
    lines = [
        f"CDNOW sample (2,357 customers), as_of {AS_OF}, test window = the real future after as_of; "
        f"churn horizon {HORIZONS['churn']} days, propensity horizon {HORIZONS['propensity']} days. "
        "Every candidate is fitted on the same training cutoffs and scored on the same customers; ROC-AUC and "
        "the model's paired difference to each baseline carry 95% bootstrap intervals over customers. "
        "Produced by `python -m bench.cdnow --write-docs` (ingest -> train -> score).",
        "",
    ]
    for model_name, rows in table.groupby("model", sort=False):
        lines += [f"**{model_name}**", "", "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        for row in rows.itertuples(index=False):
            cells = [getattr(row, c) for c in columns]
            lines.append("| " + " | ".join(f"{c:.3f}" if isinstance(c, float) else str(c) for c in cells) + " |")
        lines.append("")
    lines.append(
        "ROC-AUC of `pipelines.score` output (the champions) at as_of against the same future: "
        + ", ".join(f"{name} {auc:.3f}" for name, auc in scored.items())
        + "."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("data/bench/cdnow"))
    parser.add_argument("--write-docs", action="store_true", help="write the table into docs/BENCHMARKS.md")
    parser.add_argument("--validate", action="store_true", help="score the window before as_of; the test is not read")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="a training setting key=value")
    args = parser.parse_args(argv)
    if args.write_docs and (args.validate or args.overrides):
        parser.error("the docs hold the default settings on the test window")
    table = run(args.work, args.validate, tuple(args.overrides))
    if args.validate:
        print(table.to_string(index=False))
        return 0
    scored = check_scores(args.work)
    markdown = to_markdown(table, scored)
    print(markdown)
    if args.write_docs:
        replace_section(Path("docs/BENCHMARKS.md"), "cdnow", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
