"""Training cutoffs as `pipelines.train` plans them: the history starts at the first purchase, and a
history too short for the settings stops the run in one line that names a setting that fits."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from features import schema as s
from features.history import first_purchase
from models.names import CHURN
from pipelines import generate, train
from pipelines.errors import UserError
from pipelines.io import read_table, write_table
from pipelines.settings import load_settings
from pipelines.training.cache import FeatureCache
from pipelines.training.outcome import outcome_families, plan_family
from pipelines.training.recommender import train_recommender
from tests.builders import events_table, products_table, transactions_table

FIRST_PURCHASE = pd.Timestamp("2024-01-01 10:00")
# a generated shop whose purchases span 184 days, too few for churn's 90-day windows
PURCHASES_FROM_MAY = ["--start", "2025-05-01", "--end", "2025-10-31"]
SUGGESTION = re.compile(r"--set (\S+=\d+)|--evaluate-at (\d{4}-\d\d-\d\d)")


def history(purchase_days: int, events_from: str = "2023-03-01") -> dict[str, pd.DataFrame]:
    """Two customers buying every ten days over purchase_days days from FIRST_PURCHASE (the last
    purchase on the last day), and browsing from events_from, long before."""
    days = [*range(0, purchase_days - 1, 10), purchase_days - 1]
    rows = [
        (f"o{customer}{day}", customer, product, 1, 10.0, FIRST_PURCHASE + pd.Timedelta(days=day))
        for customer, product in (("a", "p1"), ("b", "p2"))
        for day in days
    ]
    browsing = pd.date_range(events_from, FIRST_PURCHASE, freq="7D")
    return {
        s.TRANSACTIONS: transactions_table(rows),
        s.EVENTS: events_table([("a", when, s.EVENT_PRODUCT_VIEW, "p1", float("nan")) for when in browsing]),
        s.PRODUCTS: products_table(),
    }


def data_end(tables: dict[str, pd.DataFrame]) -> pd.Timestamp:
    return tables[s.TRANSACTIONS][s.TIMESTAMP].max().normalize() + pd.Timedelta(days=1)


def plan_churn(tables, overrides=(), evaluate_at=None):
    settings = load_settings(overrides=list(overrides))
    horizon = outcome_families(settings, tables, ())[CHURN].horizon_days
    return plan_family(CHURN, horizon, FeatureCache(tables, settings), data_end(tables), settings, evaluate_at)


def suggestions(message: str) -> tuple[list[str], list[pd.Timestamp]]:
    """The `--set key=value` overrides and `--evaluate-at` dates a message suggests."""
    found = SUGGESTION.findall(message)
    return [override for override, _ in found if override], [pd.Timestamp(when) for _, when in found if when]


def test_cutoffs_before_the_first_purchase_are_skipped_with_a_one_line_note(capsys):
    # events start ten months before the first purchase; 3 of churn's 7 cutoffs have no purchase before
    # them, the last at midnight on the first purchase's day
    tables = history(300)
    plan = plan_churn(tables)
    assert plan.skipped[-1] == FIRST_PURCHASE.normalize() and len(plan.skipped) == 3 and len(plan.train) == 4
    assert all(cutoff > FIRST_PURCHASE for cutoff in plan.train)  # each has a purchase strictly before it
    note = capsys.readouterr().err.strip()
    assert note.count("\n") == 0 and note.startswith("note: churn: skipped 3 of 7 training cutoffs")
    assert "no purchase before them (the first is on 2024-01-01)" in note


def test_a_short_history_names_the_days_needed_the_days_there_are_and_settings_that_fit():
    tables = history(100)
    with pytest.raises(UserError) as raised:
        plan_churn(tables)
    message = str(raised.value)
    assert "\n" not in message and message.startswith("churn: the history is too short for 90-day windows")
    # 90-day test window + 90-day label window + one 30-day step between 2 training cutoffs + 1 day
    assert "211 days are needed" in message and "there are 100 (2024-01-01 to 2024-04-10)" in message
    assert "--set churn.horizon_days=34" in message  # the longest horizon that fits: 2 x 34 + 30 + 1 = 99
    overrides, _ = suggestions(message)
    assert overrides
    for override in overrides:
        assert len(plan_churn(tables, [override]).train) >= 2
    # one day longer than the suggestion no longer fits: it is the longest
    with pytest.raises(UserError, match="too short"):
        plan_churn(tables, ["churn.horizon_days=35"])


def test_a_too_early_evaluate_at_suggests_the_earliest_date_that_fits():
    tables = history(400)
    with pytest.raises(UserError, match="too short") as raised:
        plan_churn(tables, evaluate_at=pd.Timestamp("2024-04-01"))
    _, dates = suggestions(str(raised.value))
    assert dates == [pd.Timestamp("2024-05-01")]  # 211 days after the first purchase's day, less the test window
    assert len(plan_churn(tables, evaluate_at=dates[0]).train) == 2
    with pytest.raises(UserError, match="too short"):
        plan_churn(tables, evaluate_at=dates[0] - pd.Timedelta(days=1))


def test_the_recommender_counts_the_days_the_same_way():
    tables = history(100)
    settings = load_settings(overrides=["recommender.protocol=temporal", "recommender.horizon_days=90"])
    with pytest.raises(UserError) as raised:
        train_recommender(tables, data_end(tables), settings)
    message = str(raised.value)
    assert message.startswith("recommender: the history is too short") and "\n" not in message
    # a 90-day test window + one 90-day label window + 1 day; the longest that fits: 2 x 49 + 1 = 99
    assert "181 days are needed" in message and "there are 100" in message
    assert "--set recommender.horizon_days=49 or --set recommender.protocol=per_customer" in message


@pytest.mark.slow
def test_train_with_events_long_before_purchases_fails_in_one_line_then_trains_as_told(tmp_path, capsys):
    data, store = tmp_path / "data", tmp_path / "mlruns"
    assert generate.main(["--customers", "400", "--seed", "3", "--out", str(data), *PURCHASES_FROM_MAY]) == 0
    # a third of the events again, a year earlier: browsing long before anyone bought
    events = read_table(data / "events.parquet")
    early = events.sample(frac=0.3, random_state=0)
    early = early.assign(**{s.TIMESTAMP: early[s.TIMESTAMP] - pd.Timedelta(days=365)})
    write_table(pd.concat([early, events], ignore_index=True), data / "events.parquet")
    argv = ["--data", str(data), "--mlflow-store", str(store), "--models", CHURN]
    days = (pd.Timestamp("2025-11-01") - first_purchase(read_table(data / "transactions.parquet")).normalize()).days

    assert train.main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: churn: the history is too short") and "Traceback" not in error
    assert "211 days are needed from the first purchase" in error and f"there are {days} " in error
    overrides, _ = suggestions(error)
    assert overrides

    assert train.main([*argv, "--set", overrides[0]]) == 0
    assert "note: churn: skipped" in capsys.readouterr().err
