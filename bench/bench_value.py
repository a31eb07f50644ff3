"""Benchmark: customer value, next purchase and due products for a million customers, beside the
feature build they follow.

    python -m bench.bench_value --data DIR [--as-of 2025-10-01] [--mlflow-store mlruns] [--n-jobs 2]

Generate the data first (`python -m pipelines.generate --customers 1000000 --seed 1 --out DIR`) and
train the value model on the sample (`make train`, or `pipelines.train --models clv`). The feature
rows are what `pipelines.score` builds anyway ("today's scoring"); what the issue bounds is what the
value and due outputs add on top (target: under 5 minutes together for 1M customers):

- the registered `clv` champion's `predict_frame` on every feature row (whatever it serves; on the
  sample, the LightGBM: four boosters plus the Pareto/NBD timing in closed form);
- Pareto/NBD x Gamma-Gamma fitted on the million customers' summaries and predicted with its Monte
  Carlo interval (400 draws a customer): the cost when the parametric model is what is served;
- `models.due.build_due_products` over every purchase before as_of, within 30 days.

Memory is sampled machine-wide (as in bench.bench_features). Results go to docs/BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from bench.bench_features import TOP_CATEGORIES, MemoryWatch, timed
from features import schema as s
from features.customer import FeatureWindows
from features.history import History
from features.parallel import build_customer_features_sharded
from models.due import build_due_products
from models.names import CLV
from models.value import PARETO_NBD, BuyTillYouDieValue, ValueConfig
from models.value_model import CustomerValueModel, summary_from_features
from pipelines import registry
from pipelines.io import read_tables
from pipelines.profiles import build_reference


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_value", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--as-of", default="2025-10-01")
    parser.add_argument("--mlflow-store", type=Path, default=Path("mlruns"))
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--due-within", type=int, default=30)
    args = parser.parse_args(argv)
    as_of = pd.Timestamp(args.as_of)
    registry.connect(args.mlflow_store)
    champion = registry.load_model(CLV)

    watch = MemoryWatch()
    tables, read_seconds = timed(read_tables, args.data)
    print(f"read {', '.join(f'{name} {len(frame):,}' for name, frame in tables.items())} in {read_seconds:.1f} s")
    reference, reference_seconds = timed(build_reference, tables, as_of, TOP_CATEGORIES)
    features, feature_seconds = timed(
        build_customer_features_sharded,
        History.from_tables(tables),
        as_of,
        reference,
        FeatureWindows(),
        n_jobs=args.n_jobs,
    )
    buyers = int((features[s.PURCHASE_DAYS_TOTAL] > 0).sum())
    print(
        f"features (today's scoring): {len(features):,} customers ({buyers:,} buyers) in "
        f"{reference_seconds + feature_seconds:.1f} s (reference {reference_seconds:.1f} s)"
    )

    served, served_seconds = timed(champion.predict_frame, features)
    print(
        f"clv champion ({champion.spend_name}, timing {champion.timing.count_model}): value, interval, p_active "
        f"and next purchase for {served[s.CLV].notna().sum():,} buyers in {served_seconds:.1f} s"
    )
    summary = summary_from_features(features)
    pareto, fit_seconds = timed(BuyTillYouDieValue(PARETO_NBD).fit, summary)
    parametric = CustomerValueModel("pareto_nbd_gamma_gamma", pareto, pareto, ValueConfig())
    drawn, drawn_seconds = timed(parametric.predict_frame, features)
    print(
        f"Pareto/NBD x Gamma-Gamma served instead: fit on {len(summary):,} summaries in {fit_seconds:.1f} s, "
        f"predicted with the 400-draw interval in {drawn_seconds:.1f} s"
    )
    due, due_seconds = timed(
        build_due_products, tables[s.TRANSACTIONS], tables.get(s.PRODUCTS), as_of, within_days=args.due_within
    )
    print(
        f"due products within {args.due_within} days: {len(due):,} rows for {due[s.CUSTOMER_ID].nunique():,} "
        f"customers in {due_seconds:.1f} s"
    )
    added = served_seconds + due_seconds
    print(
        f"added to today's scoring: value + next purchase + due = {added:.1f} s with the champion, "
        f"{fit_seconds + drawn_seconds + due_seconds:.1f} s with Pareto/NBD fitted and served (target 300 s); "
        f"peak memory above start (machine-wide) {watch.stop():.1f} GB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
