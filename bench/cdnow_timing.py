"""Real data: when each customer buys next, on the public CDNOW sample, every timing candidate side by side.

    python -m bench.cdnow_timing [--work data/bench/cdnow_value] [--write-docs] [--speed]

The standard split of `bench.cdnow_value` (calibration before as_of = 1997-10-01, holdout the 273
days from it). Candidates: the conditional wait of BG/NBD and of Pareto/NBD (`models.value`: the
median and 80% interval of the wait to the next order given the customer is still active) and
the two yardsticks of `models.timing_baseline` (the customer's own mean gap from their last order;
the days since their last order, which only ranks). Each predicts, from
the summary at a cutoff, the days to the next order; the outcome is the days to the first order
in the window, censored at its end for customers without one (`models.timing_metrics`).

Which candidate is served is decided before the holdout is looked at, on a validation split
inside the calibration period (cutoff 1997-07-01, window the 92 days to 1997-10-01): the count
model with the higher concordance there (when the two are within the noise of each other, the
paired 95% interval of their difference holding 0: the one with the lower MAE of days), served
when its paired 95% interval of concordance against the best baseline's (by validation
concordance) lies above 0; that baseline otherwise. The holdout then reports every candidate with 95% bootstrap
intervals over customers, and paired differences to BG/NBD (the same draws for every candidate).

"Next order within 14 days", at the customer level: predicted when the predicted median wait is
at most 14 days (the models' median is given alive, so P(alive) does not enter; `models.value`
does not expose P(order within d days)), against an order in the holdout's first 14 days.

`--speed` also times `concordance_index` on a million generated customers.
"""

from __future__ import annotations

import argparse
import time as clock
from pathlib import Path

import numpy as np
import pandas as pd

from bench.cdnow_value import AS_OF, HOLDOUT_DAYS, load_cdnow_transactions, observe_next_purchase
from bench.report import interval_text, replace_section
from features import schema as s
from features.repeat_buying import rfm_summary
from models import timing_metrics as tm
from models.evidence import bootstrap_rows, interval
from models.timing_baseline import GapTimingBaseline, RecencyTimingBaseline
from models.value import BGNBD, PARETO_NBD, BuyTillYouDieValue, ValueConfig

VALIDATION_AS_OF = pd.Timestamp("1997-07-01")
VALIDATION_DAYS = (AS_OF - VALIDATION_AS_OF).days
SOON_DAYS = 14
REFERENCE = "BG/NBD"
GAP_BASELINE = "own mean gap from the last order (baseline)"
RECENCY_BASELINE = "days since the last order (baseline)"
CANDIDATES = {
    REFERENCE: lambda: BuyTillYouDieValue(BGNBD),
    "Pareto/NBD": lambda: BuyTillYouDieValue(PARETO_NBD),
    GAP_BASELINE: GapTimingBaseline,
    RECENCY_BASELINE: RecencyTimingBaseline,
}
BASELINES = (GAP_BASELINE, RECENCY_BASELINE)
COUNT_MODELS = (REFERENCE, "Pareto/NBD")
DOCS = Path("docs/BENCHMARKS.md")
# The timing columns do not depend on the Monte Carlo draws (they are closed forms): few suffice.
_TIMING_ONLY = ValueConfig(draws=10)


def predict_waits(transactions: pd.DataFrame, as_of: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Each candidate fitted on the summary before as_of: its predicted wait and interval, in days."""
    summary = rfm_summary(transactions, as_of)
    waits = {}
    for name, make in CANDIDATES.items():
        predicted = make().fit(summary).predict(summary, _TIMING_ONLY)
        waits[name] = predicted[[s.NEXT_PURCHASE_DAYS, s.NEXT_PURCHASE_LOW_DAYS, s.NEXT_PURCHASE_HIGH_DAYS]]
    return waits


def evaluate_split(transactions: pd.DataFrame, as_of: pd.Timestamp, window_days: int, samples: int) -> dict:
    """Per candidate and metric: (full-sample estimate, bootstrap draws), on one window; and facts."""
    waits = predict_waits(transactions, as_of)
    customers = next(iter(waits.values())).index
    time, event = observe_next_purchase(transactions, customers, as_of, window_days)
    rows = bootstrap_rows(len(time), samples=samples, seed=0)
    soon = event & (time < SOON_DAYS)
    results = {}
    for name, predicted in waits.items():
        median, low, high = (predicted[c].to_numpy() for c in predicted.columns)
        said_soon = median <= SOON_DAYS
        counts = tm.precision_recall(soon, said_soon)
        metrics = {
            "C-index": (tm.concordance_index(time, event, median), tm.concordance_draws(time, event, median, rows)),
            "MAE days (buyers)": (
                tm.mae_days_of_buyers(time, event, median),
                tm.mae_days_draws(time, event, median, rows),
            ),
        }
        if np.isfinite(low).all() and np.isfinite(high).all():  # a candidate with an interval
            metrics |= _interval_metrics(time, event, low, high, window_days, rows)
        metrics |= {
            f"within {SOON_DAYS} days: precision": (
                counts[tm.PRECISION],
                tm.ratio_of_sums_draws(soon & said_soon, said_soon, rows),
            ),
            f"within {SOON_DAYS} days: recall": (
                counts[tm.RECALL],
                tm.ratio_of_sums_draws(soon & said_soon, soon, rows),
            ),
            f"within {SOON_DAYS} days: predicted": (counts[tm.PREDICTED_POSITIVE], None),
        }
        results[name] = metrics
    facts = {"customers": len(time), "buyers": int(event.sum()), f"bought within {SOON_DAYS} days": int(soon.sum())}
    return {"results": results, "facts": facts}


def _interval_metrics(time, event, low, high, window_days: int, rows: np.ndarray) -> dict:
    """Coverage among buyers and the two shares of non-buyers, each with its bootstrap draws."""
    found = tm.evaluate_timing_interval(time, event, low, high, window_days)
    outcomes = tm.timing_interval_outcomes(time, event, low, high, window_days)
    return {
        label: (found[name], tm.ratio_of_sums_draws(outcomes[name][0] & outcomes[name][1], outcomes[name][1], rows))
        for name, label in (
            (tm.COVERAGE_BUYERS, "80% coverage (buyers)"),
            (tm.NON_BUYERS_LOW_PAST_WINDOW, "non-buyers with low past the window"),
            (tm.NON_BUYERS_HIGH_INSIDE_WINDOW, "non-buyers with high inside the window"),
        )
    }


def choose_served(validation: dict) -> tuple[str, str]:
    """The candidate to serve and why, from the validation split only (see the module docstring)."""
    results = validation["results"]
    best, other = sorted(COUNT_MODELS, key=lambda name: -results[name]["C-index"][0])
    between = _paired(results, best, other, "C-index")
    reason = f"{best} has the higher validation C-index of the count models ({_text(between, True)})"
    if between.low <= 0 <= between.high:  # the same ordering within the noise: the closer median wins
        best, other = sorted(COUNT_MODELS, key=lambda name: results[name]["MAE days (buyers)"][0])
        reason = (
            f"the count models order customers alike on validation (C-index difference {_text(between, True)}); "
            f"{best} has the lower validation MAE of days "
            f"({_text(_paired(results, best, other, 'MAE days (buyers)'), True, days=True)} days)"
        )
    baseline = max(BASELINES, key=lambda name: results[name]["C-index"][0])
    against_baseline = _text(_paired(results, best, baseline, "C-index"), True)
    if _paired(results, best, baseline, "C-index").low > 0:
        return best, f"{reason}, and beats the best baseline's ({baseline}) C-index by {against_baseline}"
    return baseline, f"{reason}, but does not beat the best baseline's C-index beyond the noise ({against_baseline})"


def _paired(results: dict, first: str, second: str, metric: str):
    """first's metric minus second's, with the interval of the paired bootstrap differences."""
    (estimate, draws), (other_estimate, other_draws) = results[first][metric], results[second][metric]
    return interval(estimate - other_estimate, draws - other_draws)


def to_table(split: dict, reference: str | None) -> pd.DataFrame:
    """One row per candidate: every metric with its interval, and C-index and MAE minus the reference's."""
    table = []
    for name, metrics in split["results"].items():
        row = {"candidate": name}
        for metric, (estimate, draws) in metrics.items():  # a metric a candidate lacks stays empty
            days = metric.startswith("MAE days")
            row[metric] = f"{estimate:.0f}" if draws is None else _text(interval(estimate, draws), days=days)
            if reference is not None and metric in ("C-index", "MAE days (buyers)"):
                other_estimate, other_draws = split["results"][reference][metric]
                row[f"{metric} minus {reference}'s"] = (
                    ""
                    if name == reference
                    else _text(interval(estimate - other_estimate, draws - other_draws), True, days)
                )
        table.append(row)
    return pd.DataFrame(table)


def _text(value, signed: bool = False, days: bool = False) -> str:
    """An interval as text; days with one decimal (a fraction of a day is noise there)."""
    if np.isnan(value.estimate):
        return "n/a"
    if days:
        number = "{:+.1f}" if signed else "{:.1f}"
        return f"{number.format(value.estimate)} [{number.format(value.low)}, {number.format(value.high)}]"
    return interval_text(value.estimate, value.low, value.high, signed)


def measure_concordance_speed(n: int = 1_000_000, repeats: int = 3) -> list[float]:
    """Seconds per `concordance_index` on n generated customers (a 273-day window, 30% buyers)."""
    rng = np.random.default_rng(0)
    time = rng.integers(0, 273, size=n) + 0.5
    event = rng.random(n) < 0.3
    time[~event] = 273.0
    predicted = rng.exponential(50.0, size=n)
    seconds = []
    for _ in range(repeats):
        started = clock.perf_counter()
        tm.concordance_index(time, event, predicted)
        seconds.append(clock.perf_counter() - started)
    return seconds


def _markdown(table: pd.DataFrame) -> str:
    columns = list(table.columns)
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    table = table.fillna("")
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in table.to_dict("records")]
    return "\n".join(lines)


def to_markdown(validation: dict, holdout: dict, served: tuple[str, str], speed: list[float] | None) -> str:
    facts = holdout["facts"]
    text = [
        f"Validation (choosing what is served): cutoff {VALIDATION_AS_OF.date()}, window {VALIDATION_DAYS} days, "
        f"{validation['facts']['customers']:,} customers, {validation['facts']['buyers']:,} bought in the window.\n",
        _markdown(to_table(validation, REFERENCE)),
        f"\nServed: **{served[0]}**: {served[1]}.\n",
        f"Holdout: cutoff {AS_OF.date()}, window {HOLDOUT_DAYS} days, {facts['customers']:,} customers, "
        f"{facts['buyers']:,} bought in the window, {facts[f'bought within {SOON_DAYS} days']:,} within "
        f"{SOON_DAYS} days. Point estimates with 95% bootstrap intervals over customers (1,000 draws); "
        f"differences paired, against {REFERENCE}.\n",
        _markdown(to_table(holdout, REFERENCE)),
    ]
    if speed is not None:
        text.append(
            f"\n`concordance_index` on 1,000,000 generated customers: {min(speed):.2f} s "
            f"(best of {len(speed)}; all: {', '.join(f'{x:.2f}' for x in speed)} s)."
        )
    return "\n".join(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cdnow_timing", description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("data/bench/cdnow_value"))
    parser.add_argument("--samples", type=int, default=1000, help="bootstrap draws")
    parser.add_argument("--speed", action="store_true", help="also time concordance_index on a million customers")
    parser.add_argument("--write-docs", action="store_true", help=f"write the tables into {DOCS}")
    args = parser.parse_args(argv)
    transactions = load_cdnow_transactions(args.work)
    validation = evaluate_split(transactions, VALIDATION_AS_OF, VALIDATION_DAYS, args.samples)
    served = choose_served(validation)  # decided before the holdout is computed
    holdout = evaluate_split(transactions, AS_OF, HOLDOUT_DAYS, args.samples)
    text = to_markdown(validation, holdout, served, measure_concordance_speed() if args.speed else None)
    print(text)
    if args.write_docs:
        replace_section(DOCS, "cdnow-timing", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
