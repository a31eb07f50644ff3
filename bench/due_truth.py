"""Generated data: the due products of `pipelines.score --due-within` against later purchases and the hidden truth.

    python -m bench.due_truth [--work data/bench/due_truth] [--customers 5000] [--seed 14]
                              [--as-of 2025-04-01 --as-of 2025-09-01] [--write-docs]

Runs `pipelines.generate` (data 2023-01-01 to 2025-12-31, truth in DIR/_truth/) and, at each
as_of, `pipelines.score --due-within 14` as a user would (no trained model: the due table needs
none), plus `--due-within 366` for every row whose interval starts within a year, which is where
the predicted date of a restock that is not due in the next 14 days is read. Then, per as_of:

- restock timing: for customers whose truth has a replenishment product, who bought it before
  as_of and again after it (before the data ends): the share whose predicted date (the row's
  due_date, or as_of for an overdue row: "due now") lies within +-7 days of the day of that next
  purchase, and the share whose [due_low, due_high] holds it. A customer with no row for the
  product counts as a miss;
- "due within 14 days" against the (customer, product) pairs bought in [as_of, as_of + 14):
  precision and recall for the table's rows (their 80% interval reaches into the window), for
  the rows whose due date itself is in the window or before it (overdue), and for the rows with
  due_probability >= 0.5 (more likely than not bought in the window), each by due_kind.
  Replenishment at the product level; recall over the pairs the customer had bought before
  (all a replenishment rule can know) and over the true restocks (the truth's replenishment
  product). Seasonal rows at the category level (the campaign is for the category): precision
  over (customer, category) rows, recall over the truth's seasonal purchases (the customer's
  seasonal category bought in the window, the window in the truth's seasonal month): all of them,
  and those of customers who bought that category in that month in two earlier years or more (the
  seasonal rule needs two seasons; a habit the history does not show, it cannot find).

And whether the probabilities are honest in total: the listed rows bought in the window over the
sum of their due_probability.

Every share comes with a 95% bootstrap interval over customers (1,000 draws, customers resampled
whole). Nothing in `models/due.py` was tuned on these windows.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import interval_text, replace_section, run_command
from features import schema as s
from models import timing_metrics as tm
from models.evidence import bootstrap_rows, interval
from pipelines.cli import now_utc
from pipelines.io import read_table
from pipelines.simulation import truth as t
from pipelines.validate import load_valid_tables

CUSTOMERS, SEED = 5000, 14
AS_OF_DATES = ("2025-04-01", "2025-09-01")
WITHIN_DAYS = 14
ALL_ROWS_DAYS = 366
RESTOCK_TOLERANCE_DAYS = 7
DOCS = Path("docs/BENCHMARKS.md")
DAY = pd.Timedelta(days=1)
IN_WINDOW = "due date in the window or overdue"
LISTED = "every row listed (interval reaches into the window)"
LIKELY = "due_probability >= 0.5"
LIKELY_PROBABILITY = 0.5  # fixed before any number was seen: "more likely than not within the window"


def generate(work: Path, customers: int, seed: int) -> Path:
    data = work / "data"
    run_command("pipelines.generate", "--customers", customers, "--seed", seed, "--out", data)
    return data


def score_due(data: Path, work: Path, as_of: str, within_days: int) -> pd.DataFrame:
    """The due table through the product's command, read back."""
    out, due_out = work / f"scores_{as_of}.parquet", work / f"due_{as_of}_{within_days}.parquet"
    run_command(
        "pipelines.score",
        *("--data", data, "--as-of", as_of, "--out", out, "--due-within", within_days, "--due-out", due_out),
        *("--mlflow-store", work / "mlruns"),
    )
    return read_table(due_out)


def purchases_between(transactions: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Purchase lines in [start, end) with their calendar day."""
    chosen = transactions[
        (transactions[s.TIMESTAMP] >= start)
        & (transactions[s.TIMESTAMP] < end)
        & s.is_purchase(transactions[s.QUANTITY])
    ]
    return chosen.assign(day=chosen[s.TIMESTAMP].dt.floor("D"))


def restock_timing(transactions, due_all: pd.DataFrame, truth: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per customer with a true replenishment product bought before as_of and again after:
    the day of that next purchase, the predicted row (if any), whether it is within the tolerance
    and whether the interval holds it."""
    repl = truth.dropna(subset=[t.TRUTH_REPLENISHMENT_PRODUCT_ID])[[s.CUSTOMER_ID, t.TRUTH_REPLENISHMENT_PRODUCT_ID]]
    repl = repl.rename(columns={t.TRUTH_REPLENISHMENT_PRODUCT_ID: s.PRODUCT_ID})
    before = purchases_between(transactions, pd.Timestamp.min, as_of)[[s.CUSTOMER_ID, s.PRODUCT_ID]].drop_duplicates()
    after = purchases_between(transactions, as_of, pd.Timestamp.max)
    next_day = after.groupby([s.CUSTOMER_ID, s.PRODUCT_ID], as_index=False)["day"].min()
    pairs = repl.merge(before, on=[s.CUSTOMER_ID, s.PRODUCT_ID]).merge(next_day, on=[s.CUSTOMER_ID, s.PRODUCT_ID])
    rows = due_all[due_all[s.DUE_KIND] == s.DUE_REPLENISHMENT][
        [s.CUSTOMER_ID, s.PRODUCT_ID, s.DUE_DATE, s.DUE_LOW, s.DUE_HIGH]
    ]
    pairs = pairs.merge(rows, on=[s.CUSTOMER_ID, s.PRODUCT_ID], how="left")
    predicted = pairs[s.DUE_DATE].clip(lower=as_of)  # an overdue row says "due now"
    error_days = (pairs["day"] - predicted).dt.days.abs()
    return pairs.assign(
        within=(error_days <= RESTOCK_TOLERANCE_DAYS).to_numpy(),
        covered=((pairs[s.DUE_LOW] <= pairs["day"]) & (pairs["day"] <= pairs[s.DUE_HIGH])).to_numpy(),
        listed=pairs[s.DUE_DATE].notna().to_numpy(),
    )


def per_customer(keys: pd.DataFrame, customers: pd.Index) -> np.ndarray:
    """How many of `keys`' rows each customer holds, in `customers` order."""
    return keys.groupby(s.CUSTOMER_ID).size().reindex(customers, fill_value=0).to_numpy(dtype=float)


def probability_check(due: pd.DataFrame, window: pd.DataFrame, customers: pd.Index, rows: np.ndarray) -> dict:
    """Are the probabilities honest: the listed rows bought in the window over the sum of their
    due_probability (1 when, in total, they are as likely as they say)."""
    keys = [s.CUSTOMER_ID, s.PRODUCT_ID]
    bought = due.merge(window[keys].drop_duplicates(), on=keys, how="left", indicator=True)["_merge"] == "both"
    expected = due.groupby(s.CUSTOMER_ID)[s.DUE_PROBABILITY].sum().reindex(customers, fill_value=0.0).to_numpy()
    hits = per_customer(due[bought.to_numpy()], customers)
    return {
        "measure": "listed rows bought in the window / sum of their due_probability",
        "estimate [95%]": _ratio(hits, expected, rows),
        "out of": f"{int(hits.sum()):,} bought, {expected.sum():,.1f} expected",
    }


def precision_recall_rows(predicted: pd.DataFrame, actual: pd.DataFrame, on: list[str], customers, rows) -> dict:
    """Precision and recall of predicted keys against actual keys, counted per customer so the
    bootstrap resamples customers whole: (estimate, draws) for each."""
    predicted, actual = predicted[on].drop_duplicates(), actual[on].drop_duplicates()
    hits = per_customer(predicted.merge(actual, on=on), customers)
    n_predicted, n_actual = per_customer(predicted, customers), per_customer(actual, customers)
    return {
        "precision": _ratio(hits, n_predicted, rows),
        "recall": _ratio(hits, n_actual, rows),
        "predicted": int(n_predicted.sum()),
        "actual": int(n_actual.sum()),
    }


def _ratio(numerator: np.ndarray, denominator: np.ndarray, rows: np.ndarray) -> str:
    if not denominator.sum():
        return "n/a"
    value = interval(numerator.sum() / denominator.sum(), tm.ratio_of_sums_draws(numerator, denominator, rows))
    return interval_text(value.estimate, value.low, value.high)


def seasonal_habit_seen(history: pd.DataFrame, truth: pd.DataFrame) -> pd.Index:
    """Customers who bought their true seasonal category in its true month in two years or more of
    `history`: those whose habit the data can show (the seasonal rule asks for two seasons)."""
    habit = truth.dropna(subset=[t.TRUTH_SEASONAL_MONTH])[
        [s.CUSTOMER_ID, t.TRUTH_SEASONAL_CATEGORY, t.TRUTH_SEASONAL_MONTH]
    ]
    habit = habit.rename(columns={t.TRUTH_SEASONAL_CATEGORY: s.CATEGORY})
    bought = history.merge(habit, on=[s.CUSTOMER_ID, s.CATEGORY])
    in_month = bought[bought[s.TIMESTAMP].dt.month == bought[t.TRUTH_SEASONAL_MONTH]]
    years = in_month.groupby(s.CUSTOMER_ID)[s.TIMESTAMP].agg(lambda days: days.dt.year.nunique())
    return pd.Index(years[years >= 2].index)


def evaluate_as_of(tables: dict, truth: pd.DataFrame, due: pd.DataFrame, due_all: pd.DataFrame, as_of) -> list[dict]:
    """Every measure at one as_of, one row each."""
    transactions, products = tables[s.TRANSACTIONS], tables[s.PRODUCTS]
    customers = pd.Index(truth[s.CUSTOMER_ID].astype(str))
    rows = bootstrap_rows(len(customers), seed=0)
    window = purchases_between(transactions, as_of, as_of + WITHIN_DAYS * DAY)
    window = window.merge(products[[s.PRODUCT_ID, s.CATEGORY]], on=s.PRODUCT_ID, how="left")
    bought_before = purchases_between(transactions, pd.Timestamp.min, as_of)[[s.CUSTOMER_ID, s.PRODUCT_ID]]
    repeat_pairs = window.merge(bought_before.drop_duplicates(), on=[s.CUSTOMER_ID, s.PRODUCT_ID])
    true_restocks = window.merge(
        truth[[s.CUSTOMER_ID, t.TRUTH_REPLENISHMENT_PRODUCT_ID]].rename(
            columns={t.TRUTH_REPLENISHMENT_PRODUCT_ID: s.PRODUCT_ID}
        ),
        on=[s.CUSTOMER_ID, s.PRODUCT_ID],
    )
    months = set(pd.date_range(as_of, as_of + (WITHIN_DAYS - 1) * DAY).month)
    seasonal_truth = truth[truth[t.TRUTH_SEASONAL_MONTH].isin(months)][[s.CUSTOMER_ID, t.TRUTH_SEASONAL_CATEGORY]]
    true_seasonal = window.merge(
        seasonal_truth.rename(columns={t.TRUTH_SEASONAL_CATEGORY: s.CATEGORY}), on=[s.CUSTOMER_ID, s.CATEGORY]
    )
    history = purchases_between(transactions, pd.Timestamp.min, as_of).merge(
        products[[s.PRODUCT_ID, s.CATEGORY]], on=s.PRODUCT_ID
    )
    seen = seasonal_habit_seen(history, truth)
    true_seasonal_seen = true_seasonal[true_seasonal[s.CUSTOMER_ID].isin(seen)]
    results = []
    restocks = restock_timing(transactions, due_all, truth, as_of)
    n = per_customer(restocks, customers)
    for measure, flag in (
        (f"true restocks predicted within +-{RESTOCK_TOLERANCE_DAYS} days", "within"),
        ("true restocks inside the 80% interval", "covered"),
        ("true restocks with a row at all", "listed"),
    ):
        hits = per_customer(restocks[restocks[flag]], customers)
        results.append({"measure": measure, "estimate [95%]": _ratio(hits, n, rows), "out of": len(restocks)})
    results.append(probability_check(due, window, customers, rows))
    for rule, chosen in (
        (LISTED, due),
        (IN_WINDOW, due[due[s.DUE_DATE] < as_of + WITHIN_DAYS * DAY]),
        (LIKELY, due[due[s.DUE_PROBABILITY] >= LIKELY_PROBABILITY]),
    ):
        replenish = chosen[chosen[s.DUE_KIND] == s.DUE_REPLENISHMENT]
        seasonal = chosen[chosen[s.DUE_KIND] == s.DUE_SEASONAL]
        product_level = [s.CUSTOMER_ID, s.PRODUCT_ID]
        for kind, predicted, actual, on in (
            ("any kind vs repeat pairs", chosen, repeat_pairs, product_level),
            ("replenishment vs repeat pairs", replenish, repeat_pairs, product_level),
            ("replenishment vs true restocks", replenish, true_restocks, product_level),
            ("seasonal vs true seasonal purchases (category)", seasonal, true_seasonal, [s.CUSTOMER_ID, s.CATEGORY]),
            (
                "seasonal vs true seasonal purchases of customers whose habit shows in 2+ earlier years",
                seasonal,
                true_seasonal_seen,
                [s.CUSTOMER_ID, s.CATEGORY],
            ),
        ):
            found = precision_recall_rows(predicted, actual, on, customers, rows)
            results.append(
                {
                    "measure": f"due within {WITHIN_DAYS} days, {rule}: {kind}",
                    "estimate [95%]": f"precision {found['precision']}; recall {found['recall']}",
                    "out of": f"{found['predicted']:,} predicted, {found['actual']:,} actual",
                }
            )
    return results


def run(work: Path, customers: int, seed: int, as_of_dates: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    if work.exists():
        shutil.rmtree(work)
    data = generate(work, customers, seed)
    tables, _ = load_valid_tables(data, now_utc())
    truth = read_table(data / t.TRUTH_DIR_NAME / f"{t.CUSTOMERS_TRUTH}.parquet")
    tables[s.TRANSACTIONS] = tables[s.TRANSACTIONS].astype({s.CUSTOMER_ID: str, s.PRODUCT_ID: str})
    out = {}
    for as_of in as_of_dates:
        due = score_due(data, work, as_of, WITHIN_DAYS)
        due_all = score_due(data, work, as_of, ALL_ROWS_DAYS)
        out[as_of] = pd.DataFrame(evaluate_as_of(tables, truth, due, due_all, pd.Timestamp(as_of)))
    return out


def to_markdown(results: dict[str, pd.DataFrame], customers: int, seed: int) -> str:
    parts = [
        f"`pipelines.generate --customers {customers} --seed {seed}` (2023-01-01 to 2025-12-31), then "
        f"`pipelines.score --as-of DATE --due-within {WITHIN_DAYS}` (and `--due-within {ALL_ROWS_DAYS}` for the "
        "restock dates). 95% bootstrap intervals over customers (1,000 draws)."
    ]
    for as_of, table in results.items():
        lines = ["| measure | estimate [95%] | out of |", "| --- | --- | --- |"]
        lines += [f"| {r['measure']} | {r['estimate [95%]']} | {r['out of']} |" for r in table.to_dict("records")]
        parts.append(f"\nas_of {as_of}:\n\n" + "\n".join(lines))
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.due_truth", description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("data/bench/due_truth"))
    parser.add_argument("--customers", type=int, default=CUSTOMERS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--as-of", action="append", default=None, help=f"repeatable (default: {', '.join(AS_OF_DATES)})"
    )
    parser.add_argument("--write-docs", action="store_true", help=f"write the tables into {DOCS}")
    args = parser.parse_args(argv)
    results = run(args.work, args.customers, args.seed, tuple(args.as_of or AS_OF_DATES))
    text = to_markdown(results, args.customers, args.seed)
    print(text)
    if args.write_docs:
        replace_section(DOCS, "due-truth", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
