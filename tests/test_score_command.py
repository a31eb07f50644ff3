"""`pipelines.score` against registries holding only some champions: what is scored, what is left
out, and the one-line answers when a needed model has no champion.

The stores hold copies of `service_workspace`'s small fitted models (registered with
`tests.test_service_handlers.register_champions`); the data is the `generated_data` folder.
"""

from __future__ import annotations

import pandas as pd
import pytest

from features import schema as s
from models.names import CHURN, RECOMMENDER
from pipelines import score
from tests.workspace import register_champions


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
    ]


def test_without_models_the_missing_ones_are_noted_and_left_out(churn_only, generated_data, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    assert score.main(score_argv(generated_data, churn_only, out)) == 0
    scores = pd.read_csv(out, dtype={s.CUSTOMER_ID: str})
    assert list(scores.columns) == [s.CUSTOMER_ID, s.CHURN_PROBABILITY, s.RFM_SEGMENT, s.LIFECYCLE_STAGE]
    assert scores[s.CHURN_PROBABILITY].dropna().between(0, 1).all()
    (note,) = notes(capsys.readouterr().err)
    assert "'propensity'" in note and "--models propensity" in note


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
