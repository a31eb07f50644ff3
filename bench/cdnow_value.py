"""Real data: customer value on the public CDNOW sample, every candidate of `models.value` side by side.

    python -m bench.cdnow_value [--work data/bench/cdnow_value] [--write-docs] [--draws 400]

The standard split (../shared/DATASETS.md): the sample through `pipelines.ingest --format cdnow`,
calibration before as_of = 1997-10-01, holdout the 39 weeks (273 days) from it. Each candidate is
fitted on the calibration summary and predicts the holdout's orders and spend per customer; the
metrics (`models.value_metrics`) come with 95% bootstrap intervals over customers, and the
differences to BG/NBD x Gamma-Gamma are paired (the same draws for every candidate). For customers
who bought in the holdout, the days to their first holdout purchase are compared with the predicted
median wait (MAE) and its 80% interval (coverage). A benchmark of the building blocks: the value
family does not run through `pipelines.train` yet.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from bench.public_data import fetch_cdnow_sample
from bench.report import replace_section
from features import schema as s
from features.labels import make_value_labels
from features.repeat_buying import rfm_summary
from models import value_metrics as vm
from models.evidence import bootstrap_rows, interval, mean_draws
from models.value import BGNBD, PARETO_NBD, BuyTillYouDieValue, SpendRateBaseline, ValueConfig
from pipelines import ingest
from pipelines.cli import now_utc
from pipelines.validate import load_valid_tables

AS_OF = pd.Timestamp("1997-10-01")
HOLDOUT_DAYS = 273
REFERENCE = "BG/NBD x Gamma-Gamma"
CANDIDATES = {
    REFERENCE: lambda: BuyTillYouDieValue(BGNBD),
    "Pareto/NBD x Gamma-Gamma": lambda: BuyTillYouDieValue(PARETO_NBD),
    "past spend rate x horizon (baseline)": SpendRateBaseline,
}
DOCS = Path("docs/BENCHMARKS.md")


def load_cdnow_transactions(work: Path) -> pd.DataFrame:
    """The CDNOW sample's transactions, through `pipelines.ingest` and validation, as a user gets them."""
    data = work / "data"
    assert ingest.main(["--format", "cdnow", "--input", str(fetch_cdnow_sample()), "--out", str(data)]) == 0
    tables, _ = load_valid_tables(data, now_utc())
    return tables[s.TRANSACTIONS]


def observe_next_purchase(
    transactions: pd.DataFrame, customer_ids: pd.Index, as_of: pd.Timestamp, window_days: int
) -> tuple[np.ndarray, np.ndarray]:
    """(time, event) per customer of `customer_ids`: the product's next-purchase labels
    (`features.labels.make_value_labels`: the wait to the first purchase in the window, censored at
    `window_days`, and whether there was one)."""
    labels = make_value_labels(transactions, customer_ids, as_of, window_days)
    return labels[s.NEXT_PURCHASE_WAIT].to_numpy(dtype=float), labels[s.NEXT_PURCHASE_SEEN].to_numpy()


def run(work: Path, draws: int) -> tuple[pd.DataFrame, dict]:
    transactions = load_cdnow_transactions(work)
    summary = rfm_summary(transactions, AS_OF)
    actual = make_value_labels(transactions, summary.index.tolist(), AS_OF, HOLDOUT_DAYS).set_index(s.CUSTOMER_ID)
    config = ValueConfig(horizon_days=HOLDOUT_DAYS, draws=draws)
    predictions = {name: make().fit(summary).predict(summary, config) for name, make in CANDIDATES.items()}
    spend = actual[s.FUTURE_SPEND].to_numpy()
    rows = bootstrap_rows(len(spend), seed=0)
    errors = {name: np.abs(p[s.CLV].to_numpy() - spend) for name, p in predictions.items()}
    ranks = {name: vm.spearman_draws(spend, p[s.CLV].to_numpy(), rows) for name, p in predictions.items()}
    table = []
    for name, predicted in predictions.items():
        clv = predicted[s.CLV].to_numpy()
        metrics = vm.evaluate_value(spend, clv)
        mae_draws = mean_draws(errors[name], rows)
        row = {
            "candidate": name,
            "MAE of spend": str(interval(metrics[vm.MAE], mae_draws)),
            "Spearman": str(interval(metrics[vm.SPEARMAN], ranks[name])),
            "Spearman minus the reference's": str(
                interval(
                    metrics[vm.SPEARMAN] - vm.spearman(spend, predictions[REFERENCE][s.CLV]),
                    ranks[name] - ranks[REFERENCE],
                )
            ),
            "MAE minus the reference's": str(
                interval(metrics[vm.MAE] - errors[REFERENCE].mean(), mae_draws - mean_draws(errors[REFERENCE], rows))
            ),
            "RMSE": f"{metrics[vm.RMSE]:.2f}",
            "Gini": f"{metrics[vm.NORMALISED_GINI]:.3f}",
            "top-decile capture": f"{metrics[vm.TOP_DECILE_CAPTURE]:.3f}",
            "bias": f"{metrics[vm.AGGREGATE_BIAS]:+.3f}",
            "MAE of orders": f"{np.abs(predicted[s.EXPECTED_ORDERS] - actual[s.FUTURE_ORDERS]).mean():.3f}",
        }
        if predicted[s.CLV_LOW].notna().all():
            covered = vm.evaluate_interval(spend, predicted[s.CLV_LOW], predicted[s.CLV_HIGH])
            row["80% interval: coverage, mean width"] = (
                f"{covered[vm.INTERVAL_COVERAGE]:.3f}, {covered[vm.INTERVAL_WIDTH]:.1f}"
            )
            row |= _next_purchase(transactions, predicted)
        table.append(row)
    facts = {"customers": len(spend), "holdout buyers": int((actual[s.FUTURE_ORDERS] > 0).sum())}
    return pd.DataFrame(table), facts


def _next_purchase(transactions: pd.DataFrame, predicted: pd.DataFrame) -> dict[str, str]:
    """For customers who bought in the holdout: the predicted median wait's MAE in days, and how many
    first holdout purchases fall in the 80% interval."""
    time, event = observe_next_purchase(transactions, predicted.index, AS_OF, HOLDOUT_DAYS)
    days = time[event]
    chosen = predicted[event]
    inside = (chosen[s.NEXT_PURCHASE_LOW_DAYS] <= days) & (days <= chosen[s.NEXT_PURCHASE_HIGH_DAYS])
    return {
        "next purchase: MAE days (buyers)": f"{np.abs(chosen[s.NEXT_PURCHASE_DAYS] - days).mean():.1f}",
        "next purchase: 80% coverage (buyers)": f"{inside.mean():.3f}",
    }


def to_markdown(table: pd.DataFrame, facts: dict) -> str:
    columns = list(table.columns)
    lines = [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
        *(
            "| " + " | ".join(str(row.get(c, "")) if pd.notna(row.get(c)) else "" for c in columns) + " |"
            for row in table.to_dict("records")
        ),
    ]
    return (
        f"CDNOW sample, calibration before {AS_OF.date()}, holdout {HOLDOUT_DAYS} days; "
        f"{facts['customers']:,} customers, {facts['holdout buyers']:,} of them bought in the holdout. "
        "Point estimates with 95% bootstrap intervals over customers; differences paired.\n\n" + "\n".join(lines)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cdnow_value", description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("data/bench/cdnow_value"))
    parser.add_argument("--draws", type=int, default=400, help="Monte Carlo draws per customer for the interval")
    parser.add_argument("--write-docs", action="store_true", help=f"write the table into {DOCS}")
    args = parser.parse_args(argv)
    table, facts = run(args.work, args.draws)
    text = to_markdown(table, facts)
    print(text)
    if args.write_docs:
        replace_section(DOCS, "cdnow-value", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
