"""Customer value through the product's own commands, on generated data and on the CDNOW sample.

    python -m bench.value_product [--work data/bench/value] [--customers 5000] [--write-docs]

Generated: `pipelines.generate` (seed 42, the sample's), then `pipelines.train --models clv` at the
default as_of (the day after the data): the test window is the latest complete year.

CDNOW (../shared/DATASETS.md): `pipelines.ingest --format cdnow`, then `pipelines.train --models clv
--as-of 1998-07-01 --evaluate-at 1997-10-01 --set clv.horizon_days=273`: the standard split
(calibration to 1997-09-30, holdout 39 weeks to 1998-06-30). Every first purchase falls in Q1 1997,
so no training cutoff with a 39-week window fits before the holdout: the supervised candidate sits
out and the model is Pareto/NBD x Gamma-Gamma.

Each table row is a candidate of the `clv` family, read from the training run in MLflow: MAE of
spend (the gate metric) and Spearman's correlation with their 95% intervals (bootstrap over
customers), paired differences from BG/NBD x Gamma-Gamma, normalised Gini, top-decile capture,
aggregate bias and the 80% interval's coverage; then the next purchase, per count model. Then
`pipelines.score --models clv` is run on the same data (how many customers got a value).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from bench.public_data import fetch_cdnow_sample
from bench.report import logged_interval, replace_section, run_command, served_label
from pipelines import registry

CANDIDATES = ("model", "bgnbd_gamma_gamma", "spend_rate")
YARDSTICK = "bgnbd_gamma_gamma"
TIMING_MODELS = ("pareto_nbd", "bgnbd")
CDNOW_ARGS = ["--as-of", "1998-07-01", "--evaluate-at", "1997-10-01", "--set", "clv.horizon_days=273"]


def prepare(work: Path, source: str, customers: int) -> Path:
    """The data folder for `source` ("generated" or "cdnow"), written by the product's commands."""
    data = work / source / "data"
    if source == "generated":
        run_command("pipelines.generate", "--customers", customers, "--seed", 42, "--out", data)
    else:
        run_command("pipelines.ingest", "--format", "cdnow", "--input", fetch_cdnow_sample(), "--out", data)
    return data


def train_and_read(work: Path, source: str, data: Path) -> tuple[pd.Series, float]:
    """Train the clv family on `data` into a fresh store; (its nested run's row, seconds)."""
    store = work / source / "mlruns"
    extra = CDNOW_ARGS if source == "cdnow" else []
    seconds = run_command("pipelines.train", "--data", data, "--models", "clv", "--mlflow-store", store, *extra)
    registry.connect(store)
    return registry.recent_runs("clv", limit=1).iloc[0], seconds


def candidate_rows(run: pd.Series, source: str) -> list[dict]:
    rows = []
    for candidate in CANDIDATES:
        prefix = "metrics.test" if candidate == "model" else f"metrics.{candidate}.test"
        label = f"model ({run['tags.value.model_kind']})" if candidate == "model" else candidate
        rows.append(
            {
                "data": source,
                "candidate": label,
                "MAE of spend": logged_interval(run, f"{prefix}.gate_metric"),
                "gain over BG/NBD x GG": ""
                if candidate == YARDSTICK
                else logged_interval(run, f"metrics.diff.{candidate}_vs_{YARDSTICK}.gate_metric", signed=True),
                "Spearman": logged_interval(run, f"{prefix}.spearman"),
                "minus BG/NBD x GG": ""
                if candidate == YARDSTICK
                else logged_interval(run, f"metrics.diff.{candidate}_vs_{YARDSTICK}.spearman", signed=True),
                "Gini": f"{run[f'{prefix}.normalised_gini']:.3f}",
                "top-decile capture": f"{run[f'{prefix}.top_decile_capture']:.3f}",
                "bias": f"{run[f'{prefix}.aggregate_bias']:+.1%}",
                "80% coverage": _share(run.get(f"{prefix}.interval_coverage")),
                "served": served_label(run, candidate),
            }
        )
    return rows


def timing_rows(run: pd.Series, source: str) -> list[dict]:
    rows = []
    for count_model in TIMING_MODELS:
        prefix = f"metrics.timing.{count_model}.test"
        rows.append(
            {
                "data": source,
                "timing of": count_model,
                "concordance": logged_interval(run, f"{prefix}.concordance"),
                "MAE days (buyers)": f"{run[f'{prefix}.mae_days_buyers']:.1f}",
                "80% coverage (buyers)": _share(run[f"{prefix}.coverage_buyers"]),
                "non-buyers' interval ends inside the window": _share(run[f"{prefix}.non_buyers_high_inside_window"]),
                "buyers / non-buyers": f"{run[f'{prefix}.buyers']:.0f} / {run[f'{prefix}.non_buyers']:.0f}",
                "served": "yes" if run["tags.value.timing_model"] == count_model else "",
            }
        )
    return rows


def check_scores(work: Path, source: str, data: Path) -> float:
    """Run `pipelines.score --models clv` at the run's as_of; how many customers got a value."""
    store, out = work / source / "mlruns", work / source / "scores.parquet"
    extra = ["--as-of", "1998-07-01", "--set", "clv.horizon_days=273"] if source == "cdnow" else []
    run_command("pipelines.score", "--data", data, "--models", "clv", "--mlflow-store", store, "--out", out, *extra)
    scores = pd.read_parquet(out).dropna(subset=["clv"])
    return float(len(scores))


def _share(value) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.1%}"


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(str(value) for value in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def to_markdown(candidates: pd.DataFrame, timing: pd.DataFrame, facts: dict) -> str:
    lines = [
        "Produced by `python -m bench.value_product --write-docs` (2 cores, 24 GB). Rows come from the",
        "`clv` training runs in MLflow; intervals are 95% (bootstrap over customers, 1,000 draws; 200",
        "for concordance); differences are paired against BG/NBD x Gamma-Gamma (gain = lower MAE).",
        "",
        *(f"- {source}: {text}" for source, text in facts.items()),
        "",
        _markdown(candidates),
        "",
        "The next purchase (median wait given active, its 80% interval), per count model:",
        "",
        _markdown(timing),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.value_product", description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("data/bench/value"))
    parser.add_argument("--customers", type=int, default=5000, help="generated customers (the sample has 5,000)")
    parser.add_argument("--write-docs", action="store_true", help="write the tables into docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.work.exists():
        shutil.rmtree(args.work)
    candidates, timing, facts = [], [], {}
    for source in ("generated", "cdnow"):
        data = prepare(args.work, source, args.customers)
        run, seconds = train_and_read(args.work, source, data)
        candidates += candidate_rows(run, source)
        timing += timing_rows(run, source)
        scored = check_scores(args.work, source, data)
        facts[source] = (
            f"{run['tags.test_set']}, {int(run['params.test_rows']):,} test customers; trained in {seconds:.0f} s; "
            f"`pipelines.score --models clv` gave a value to {scored:,.0f} customers"
            + (f"; {run['tags.value.note']}" if isinstance(run.get("tags.value.note"), str) else "")
        )
    markdown = to_markdown(pd.DataFrame(candidates), pd.DataFrame(timing), facts)
    print(markdown)
    if args.write_docs:
        replace_section(Path("docs/BENCHMARKS.md"), "value-product", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
