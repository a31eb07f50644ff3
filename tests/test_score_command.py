"""`pipelines.score` against registries holding only some champions: what is scored, what is left
out, and the one-line answers when a needed model has no champion; and `--due-within`'s due table,
which needs no model.

The stores hold copies of `service_workspace`'s small fitted models (registered with
`tests.test_service_handlers.register_champions`); the data is the `generated_data` folder.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features import schema as s
from models.due import OUTPUT_COLUMNS, build_due_products
from models.names import CHURN, RECOMMENDER
from pipelines import score
from pipelines.cli import now_utc
from pipelines.validate import load_valid_tables
from tests.workspace import register_champions

DUE_COLUMNS = list(OUTPUT_COLUMNS)  # the due table's contract, written once in models.due


@pytest.fixture(scope="module")
def recommender_only(service_workspace, tmp_path_factory):
    return register_champions(service_workspace, tmp_path_factory.mktemp("score") / "mlruns", [RECOMMENDER])


@pytest.fixture(scope="module")
def churn_only(service_workspace, tmp_path_factory):
    return register_champions(service_workspace, tmp_path_factory.mktemp("score") / "mlruns", [CHURN])


def score_argv(generated_data, mlflow_store, out, *options: str) -> list[str]:
    return [
        "--data",
        str(generated_data.data_dir),
        "--out",
        str(out),
        "--mlflow-store",
        str(mlflow_store),
        "--set",
        "features.n_jobs=1",
        *options,
    ]


def notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("note:")]


def test_a_recommender_alone_gives_lists_and_notes_the_missing_scores(
    recommender_only, generated_data, tmp_path, capsys
):
    out = tmp_path / "lists.parquet"
    assert score.main(score_argv(generated_data, recommender_only, out, "--k", "10")) == 0
    scores = pd.read_parquet(out)
    assert list(scores.columns) == [s.CUSTOMER_ID, s.RFM_SEGMENT, s.LIFECYCLE_STAGE, s.RECOMMENDATIONS]
    lists = scores[s.RECOMMENDATIONS].map(list)
    assert len(scores) > 0.8 * generated_data.n_customers
    assert lists.map(len).between(1, 10).all()
    assert notes(capsys.readouterr().err) == [
        "note: no champion of 'churn'; its columns are left out "
        "(train it with `python -m pipelines.train --data DIR --models churn`)",
        "note: no champion of 'propensity'; its columns are left out "
        "(train it with `python -m pipelines.train --data DIR --models propensity`)",
        "note: no champion of 'clv'; its columns are left out "
        "(train it with `python -m pipelines.train --data DIR --models clv`)",
    ]


def test_without_models_the_missing_ones_are_noted_and_left_out(churn_only, generated_data, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    assert score.main(score_argv(generated_data, churn_only, out)) == 0
    scores = pd.read_csv(out, dtype={s.CUSTOMER_ID: str})
    assert list(scores.columns) == [s.CUSTOMER_ID, s.CHURN_PROBABILITY, s.RFM_SEGMENT, s.LIFECYCLE_STAGE]
    assert scores[s.CHURN_PROBABILITY].dropna().between(0, 1).all()
    propensity_note, clv_note = notes(capsys.readouterr().err)
    assert "'propensity'" in propensity_note and "--models propensity" in propensity_note
    assert "'clv'" in clv_note and "--models clv" in clv_note


def test_a_named_model_without_a_champion_exits_2_naming_it_and_how_to_train_it(
    recommender_only, generated_data, tmp_path, capsys
):
    out = tmp_path / "x.parquet"
    assert score.main(score_argv(generated_data, recommender_only, out, "--models", "churn")) == 2
    (error,) = capsys.readouterr().err.strip().splitlines()
    assert error.startswith("error: no 'champion' version of model 'churn' in ")
    assert error.endswith("; train it with `python -m pipelines.train --data DIR --models churn`")
    # --k names the recommender: a registry without one is the same error
    assert score.main(score_argv(generated_data, tmp_path / "empty", out, "--k", "5")) == 2
    (error,) = capsys.readouterr().err.strip().splitlines()
    assert "model 'recommender'" in error and "--models recommender" in error
    assert not out.exists()


def test_no_model_to_score_with_and_bad_names_are_one_line_errors(recommender_only, generated_data, tmp_path, capsys):
    out = tmp_path / "x.parquet"
    # only a recommender, and no --k: nothing to score, and the line says where the lists are
    assert score.main(score_argv(generated_data, recommender_only, out)) == 2
    (error,) = capsys.readouterr().err.strip().splitlines()
    assert "churn or propensity" in error and "make train" in error and "--k K" in error
    assert score.main(score_argv(generated_data, recommender_only, out, "--models", "churn,nonsense")) == 2
    (error,) = capsys.readouterr().err.strip().splitlines()
    assert "nonsense" in error and "choose from churn, propensity, recommender" in error
    assert score.main(score_argv(generated_data, recommender_only, out, "--models", "recommender")) == 2
    (error,) = capsys.readouterr().err.strip().splitlines()
    assert "--k K" in error
    assert not out.exists()


def test_due_within_writes_the_due_products_beside_the_scores(churn_only, generated_data, tmp_path, capsys):
    out = tmp_path / "scores.parquet"
    as_of = (generated_data.end - pd.Timedelta(days=89)).normalize()  # scoring the past: both tables at as_of
    argv = score_argv(generated_data, churn_only, out, "--as-of", str(as_of.date()), "--due-within", "30")
    assert score.main(argv) == 0
    assert s.CHURN_PROBABILITY in pd.read_parquet(out).columns
    due_out = tmp_path / "scores_due.parquet"
    due = pd.read_parquet(due_out)
    assert list(due.columns) == DUE_COLUMNS
    assert len(due) > 100 and set(due[s.DUE_KIND]) <= {s.DUE_REPLENISHMENT, s.DUE_SEASONAL}

    # every interval reaches into [as_of, as_of + 30 days); what is due before as_of is overdue, due now
    window_end = as_of + pd.Timedelta(days=30)
    assert (due[s.DUE_LOW] < window_end).all()
    assert ((due[s.DUE_LOW] <= due[s.DUE_DATE]) & (due[s.DUE_DATE] <= due[s.DUE_HIGH])).all()
    assert (due[s.DUE_DATE] >= window_end).any()  # the interval, not the date, decides
    late = due[due[s.DUE_DATE] < as_of]
    assert len(late) and late[s.DUE_REASON].str.match("overdue: |due now: ").all()
    assert due[s.DUE_PROBABILITY].between(0, 1).all()
    # by customer, then soonest first
    assert due.sort_values([s.CUSTOMER_ID, s.DUE_DATE], kind="stable").index.equals(due.index)

    # the command adds nothing of its own: the rule over the validated tables at the same as_of
    tables, _ = load_valid_tables(generated_data.data_dir, now_utc())
    expected = build_due_products(tables[s.TRANSACTIONS], tables[s.PRODUCTS], as_of, within_days=30)
    pd.testing.assert_frame_equal(due, expected)

    captured = capsys.readouterr()
    assert (
        captured.out.strip()
        .splitlines()[-1]
        .startswith(
            f"{len(due):,} due products for {due[s.CUSTOMER_ID].nunique():,} customers within 30 days "
            f"of {as_of.date()} -> {due_out} ("
        )
    )
    assert f"due products within 30 days of {as_of.date()} ..." in captured.err


def test_due_within_needs_no_registered_model(generated_data, tmp_path, capsys):
    out, due_out, empty = tmp_path / "scores.csv", tmp_path / "campaigns" / "restock.csv", tmp_path / "empty"
    # without --due-within an empty registry is still an error, and nothing is written
    assert score.main(score_argv(generated_data, empty, out)) == 2
    assert "make train" in capsys.readouterr().err and not out.exists()

    assert score.main(score_argv(generated_data, empty, out, "--due-within", "14", "--due-out", str(due_out))) == 0
    scores = pd.read_csv(out, dtype={s.CUSTOMER_ID: str})
    assert list(scores.columns) == [s.CUSTOMER_ID, s.RFM_SEGMENT, s.LIFECYCLE_STAGE]
    captured = capsys.readouterr()
    assert [note.split(";")[0] for note in notes(captured.err)] == [
        "note: no champion of 'churn'",
        "note: no champion of 'propensity'",
        "note: no champion of 'clv'",
    ]
    due = pd.read_csv(due_out, dtype=str, keep_default_na=False)
    assert list(due.columns) == DUE_COLUMNS and len(due) > 0
    for column in (s.DUE_DATE, s.DUE_LOW, s.DUE_HIGH):  # ISO dates, no time of day
        assert due[column].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert f" -> {due_out} (" in captured.out
    assert not (tmp_path / "scores_due.csv").exists()


def test_the_due_table_goes_beside_out_unless_due_out_names_it():
    assert score.choose_due_out(Path("runs/scores.parquet"), None, 30) == Path("runs/scores_due.parquet")
    assert score.choose_due_out(Path("scores.v2.csv"), None, 30) == Path("scores.v2_due.csv")
    assert score.choose_due_out(Path("scores.csv"), Path("due.parquet"), 30) == Path("due.parquet")
    assert score.choose_due_out(Path("scores.csv"), None, None) is None


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (["--due-within", "0"], "error: --due-within 0: the window must be at least 1 day (e.g. --due-within 30)"),
        (["--due-within", "-7"], "error: --due-within -7: the window must be at least 1 day (e.g. --due-within 30)"),
        (["--due-within", "2.5"], "error: --due-within '2.5': not a whole number of days (e.g. --due-within 30)"),
        (
            ["--due-within", "30", "--due-out", "{tmp}/due.xlsx"],
            "error: --due-out {tmp}/due.xlsx: use a .parquet or .csv file name",
        ),
        (
            ["--due-within", "30", "--due-out", "{tmp}/x.parquet"],
            "error: --due-out {tmp}/x.parquet: the same file as --out; name another",
        ),
        (
            ["--due-out", "{tmp}/due.csv"],
            "error: --due-out {tmp}/due.csv: give --due-within DAYS too (e.g. --due-within 30)",
        ),
    ],
)
def test_bad_due_options_are_one_line_errors(options, error, generated_data, tmp_path, capsys):
    out = tmp_path / "x.parquet"
    options = [option.format(tmp=tmp_path) for option in options]
    assert score.main(score_argv(generated_data, tmp_path / "mlruns", out, *options)) == 2
    stderr = capsys.readouterr().err
    assert stderr.strip().splitlines() == [error.format(tmp=tmp_path)]
    assert list(tmp_path.iterdir()) == []  # refused before the registry, the data or any output
