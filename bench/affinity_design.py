"""Which design gives every category its probability: one shared model or one model per category?

    python -m bench.affinity_design --data DIR --evaluate-at DATE [--customers-note TEXT]

Decided on a validation window, never on the test window: `--evaluate-at` puts the window a month
before the test window `pipelines.train` uses, and training cutoffs end before it, as in training.
On the propensity family's rows (the same train, held-out and validation rows for every design):
- shared: `models.affinity.CategoryAffinityModel`, one LightGBM over (customer, category) rows;
- per category: one calibrated LightGBM per category over the customer rows (`fit_outcome_model`
  with one output per category, the design the per-top-category outputs used before);
- the baselines (past share, RFM and share logistic, popularity).
Prints the mean per-category ROC-AUC, top-1 accuracy and top-3 hit rate with 95% intervals and the
shared model's paired differences.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import interval_text
from features import schema as s
from features.customer import feature_columns
from features.history import tables_before
from models.affinity import CategoryLayout
from models.affinity_evaluation import TOP_KS, evaluate_affinity
from models.names import PROPENSITY
from models.outcome import fit_outcome_model
from pipelines.cli import now_utc, parse_as_of
from pipelines.settings import load_settings
from pipelines.training import affinity
from pipelines.training.cache import FeatureCache
from pipelines.training.outcome import (
    booster_arguments,
    build_training_set,
    labelled_frame,
    outcome_families,
    plan_family,
)
from pipelines.validate import load_valid_tables

PER_CATEGORY = "per_category_models"


def compare(data: Path, evaluate_at: str) -> tuple[pd.DataFrame, dict]:
    settings = load_settings()
    tables, _ = load_valid_tables(data, now_utc(), required_tables=[s.TRANSACTIONS])
    as_of = parse_as_of(None, tables)
    tables = tables_before(tables, as_of)
    cache = FeatureCache(tables, settings)
    plan = plan_family(PROPENSITY, settings.propensity.horizon_days, cache, as_of, settings, pd.Timestamp(evaluate_at))
    catalogue = cache.at(plan.test).reference.categories
    family = outcome_families(settings, tables, tuple(catalogue))[PROPENSITY]
    train = build_training_set(family, cache, plan.train[:-1])
    holdout, validation = labelled_frame(family, cache, plan.train[-1]), labelled_frame(family, cache, plan.test)
    names = feature_columns(cache.at(plan.train[-1]).features)
    layout = CategoryLayout.of(names, family.categories, catalogue)
    boost = booster_arguments(settings.propensity.booster, settings.training.seed)
    started = time.perf_counter()
    shared = affinity.train_affinity(
        layout,
        family.category_labels,
        (train, holdout, validation),
        {**boost, "monotone_rules": settings.propensity.monotone, "base_features": settings.propensity.base_features},
        settings.propensity.top_categories,
        settings.gate.bootstrap_samples,
        settings.gate.confidence,
    )
    seconds = {"shared model and baselines": time.perf_counter() - started}
    started = time.perf_counter()
    outputs = dict(zip(layout.outputs, family.category_labels, strict=True))
    per_category = fit_outcome_model(
        PROPENSITY,
        train,
        holdout,
        names,
        outputs,
        **boost,
        monotone_rules=settings.propensity.monotone,
        base_features=settings.propensity.base_features,
    )
    predicted = per_category.predict_frame(validation)
    # a category a per-category model could not be fitted for (one class in its rows) gets its base rate
    base_rates = train[list(family.category_labels)].mean().to_numpy()
    table = np.column_stack(
        [
            predicted[output].to_numpy() if output in predicted else np.full(len(validation), base_rates[j])
            for j, output in enumerate(layout.outputs)
        ]
    )
    seconds["per-category models"] = time.perf_counter() - started
    tables_by_design = {affinity.MODEL: shared.tables[affinity.MODEL], PER_CATEGORY: table}
    tables_by_design |= {name: shared.tables[name] for name in affinity.BASELINES}
    evaluation = evaluate_affinity(
        shared.labels, tables_by_design, layout.categories, settings.gate.bootstrap_samples, settings.gate.confidence
    )
    rows = []
    for name in tables_by_design:
        row = {"design": "shared model" if name == affinity.MODEL else name}
        row["mean per-category ROC-AUC [95%]"] = str(evaluation.evidence.metrics[name])
        row["shared - design"] = (
            "" if name == affinity.MODEL else _signed(evaluation.evidence.difference(affinity.MODEL, name))
        )
        for k in TOP_KS:
            row[f"top-{k} [95%]"] = str(evaluation.top_k[name][k])
            row[f"shared - design, top-{k}"] = (
                "" if name == affinity.MODEL else _signed(evaluation.top_k_difference(affinity.MODEL, name, k))
            )
        row |= {key: f"{value:.4f}" for key, value in evaluation.calibration[name].items()}
        rows.append(row)
    facts = {"window": f"{plan.test.date()} +{plan.horizon_days}d", "buyers": evaluation.buyers, "seconds": seconds}
    return pd.DataFrame(rows), facts


def _signed(value) -> str:
    return interval_text(value.estimate, value.low, value.high, signed=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.affinity_design", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--evaluate-at", required=True, help="the validation window's start (before the test window)")
    args = parser.parse_args(argv)
    table, facts = compare(args.data, args.evaluate_at)
    print(f"validation window {facts['window']}, {facts['buyers']} buyers; fit seconds {facts['seconds']}")
    print("| " + " | ".join(table.columns) + " |")
    print("|" + " --- |" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(map(str, row)) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
