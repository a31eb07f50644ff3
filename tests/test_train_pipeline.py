"""generate -> train -> train again -> score, into a temporary MLflow store.

The gate is tested in both directions, models come back from the registry by alias with the
same scores, and the generator's hidden structure is recovered.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from features import schema as s
from pipelines import generate, registry, score, train
from pipelines.store import SQLiteProfileStore
from pipelines.training.gate import decide_promotion

pytestmark = pytest.mark.slow
N_CUSTOMERS = 2000


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pipeline")
    data = root / "data"
    assert generate.main(["--customers", str(N_CUSTOMERS), "--seed", "11", "--out", str(data)]) == 0
    store = root / "mlruns"
    assert train.main(["--data", str(data), "--mlflow-store", str(store)]) == 0
    return {"data": data, "store": store, "root": root}


def aliases(store: Path, model_name: str) -> dict[str, str]:
    registry.connect(store)
    client = mlflow.MlflowClient()
    return {alias: str(version) for alias, version in client.get_registered_model(model_name).aliases.items()}


def nested_runs(store: Path, model_name: str) -> pd.DataFrame:
    registry.connect(store)
    return registry.recent_runs(model_name, limit=20)


def test_first_training_run_registers_champions_with_metrics_and_plots(workspace):
    for model_name in ("churn", "propensity"):
        assert aliases(workspace["store"], model_name) == {"champion": "1"}
        runs = nested_runs(workspace["store"], model_name)
        latest = runs.iloc[0]
        assert latest["status"] == "FINISHED"
        assert latest["metrics.test.roc_auc"] > latest["metrics.recency.test.roc_auc"]
        assert latest["tags.gate.decision"] == "champion"
        artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(latest["run_id"], "plots")}
        assert {"plots/roc.png", "plots/calibration.png", "plots/shap_summary.png"} <= artifacts
    # the recommender is one of the default models, in its own nested run under the same parent
    recommender = nested_runs(workspace["store"], "recommender").iloc[0]
    assert aliases(workspace["store"], "recommender") == {"champion": "1"}
    churn_run = nested_runs(workspace["store"], "churn").iloc[-1]
    assert recommender["tags.mlflow.parentRunId"] == churn_run["tags.mlflow.parentRunId"]


def test_churn_recovers_the_generated_dropout_well_above_recency(workspace):
    latest = nested_runs(workspace["store"], "churn").iloc[0]
    assert latest["metrics.test.roc_auc"] >= latest["metrics.recency.test.roc_auc"] + 0.02
    assert latest["metrics.test.roc_auc"] > 0.75


def test_gate_keeps_the_champion_unless_the_new_model_earns_it(workspace, tmp_path):
    # a store of its own: this test moves aliases, which the other tests must not see
    data, store = str(workspace["data"]), str(tmp_path / "mlruns")
    assert train.main(["--data", data, "--mlflow-store", store, "--models", "churn"]) == 0
    assert aliases(Path(store), "churn") == {"champion": "1"}
    # same data and config: no gain, so the new version is only a challenger
    assert train.main(["--data", data, "--mlflow-store", store, "--models", "churn"]) == 0
    assert aliases(Path(store), "churn") == {"champion": "1", "challenger": "2"}
    # fixed seeds: the same data and config give the same model, metric for metric
    auc = nested_runs(Path(store), "churn")["metrics.test.roc_auc"]
    assert auc.iloc[0] == auc.iloc[1]
    # a deliberately weakened model loses to the champion and gets a reason
    weak = ["--set", "churn.booster.num_boost_round=1", "--set", "churn.booster.num_leaves=2"]
    assert train.main(["--data", data, "--mlflow-store", store, "--models", "churn", *weak]) == 0
    assert aliases(Path(store), "churn")["champion"] == "1"
    version = mlflow.MlflowClient().get_model_version("churn", "3")
    assert "does not beat" in version.tags["gate.reason"]
    # with the margin lowered the gate lets an equal model through: the alias moves
    lowered = ["--set", "gate.min_auc_gain=-1"]
    assert train.main(["--data", data, "--mlflow-store", store, "--models", "churn", *lowered]) == 0
    assert aliases(Path(store), "churn")["champion"] == "4"


def test_decide_promotion_rules():
    baselines = {"recency": 0.70, "rfm_logistic": 0.72}
    assert decide_promotion(0.80, baselines, None, None, 0.01).promote
    assert not decide_promotion(0.71, baselines, None, None, 0.01).promote
    assert not decide_promotion(0.80, baselines, 0.795, "1", 0.01).promote
    assert decide_promotion(0.81, baselines, 0.795, "1", 0.01).promote


def test_scores_for_every_known_customer_match_the_registry_models(workspace, tmp_path):
    out = tmp_path / "scores.csv"
    assert (
        score.main(["--data", str(workspace["data"]), "--out", str(out), "--mlflow-store", str(workspace["store"])])
        == 0
    )
    scores = pd.read_csv(out, dtype={s.CUSTOMER_ID: str})
    customers = pd.read_parquet(workspace["data"] / "customers.parquet")
    assert set(scores[s.CUSTOMER_ID]) <= set(customers[s.CUSTOMER_ID])
    assert len(scores) > 0.8 * len(customers)
    for column in (s.CHURN_PROBABILITY, s.PURCHASE_PROBABILITY, s.RFM_SEGMENT, s.LIFECYCLE_STAGE):
        assert column in scores
    assert scores[s.PURCHASE_PROBABILITY].between(0, 1).all()
    assert scores[s.CHURN_PROBABILITY].dropna().between(0, 1).all()
    assert any(column.startswith(s.PURCHASE_PROBABILITY + "_") for column in scores)
    assert s.RECOMMENDATIONS not in scores  # only with --k
    # prospects are outside the churn population
    prospects = scores[scores[s.LIFECYCLE_STAGE] == "prospect"]
    assert len(prospects) and prospects[s.CHURN_PROBABILITY].isna().all()

    # the MLflow pyfunc and the unwrapped model agree, and match the scores file
    registry.connect(workspace["store"])
    pyfunc = mlflow.pyfunc.load_model("models:/propensity@champion")
    model = pyfunc.unwrap_python_model().model
    features = pd.read_parquet(_profiles(workspace, tmp_path))
    sample = features.head(50)
    via_mlflow = pyfunc.predict(sample[model.feature_names])[s.PURCHASE_PROBABILITY].to_numpy()
    direct = model.predict_frame(sample)[s.PURCHASE_PROBABILITY].to_numpy()
    np.testing.assert_allclose(via_mlflow, direct)
    from_file = scores.set_index(s.CUSTOMER_ID).loc[sample[s.CUSTOMER_ID], s.PURCHASE_PROBABILITY].to_numpy()
    np.testing.assert_allclose(from_file, direct, rtol=1e-6)


def test_score_with_k_adds_the_registered_recommenders_lists(workspace, tmp_path):
    out = tmp_path / "scores.parquet"
    argv = ["--data", str(workspace["data"]), "--out", str(out), "--mlflow-store", str(workspace["store"]), "--k", "10"]
    assert score.main(argv) == 0
    scores = pd.read_parquet(out)
    lists = scores[s.RECOMMENDATIONS].map(list)
    assert lists.map(len).between(1, 10).all()
    assert lists.map(lambda ids: len(set(ids)) == len(ids)).all()
    # scored at the model's own as_of: exactly the registered model's lists, best first
    registry.connect(workspace["store"])
    model = registry.load_model("recommender")
    sample = scores[s.CUSTOMER_ID].head(25).tolist()
    expected = model.recommend(sample, k=10).groupby(s.CUSTOMER_ID, sort=False)[s.PRODUCT_ID].agg(list)
    assert lists.head(25).tolist() == [expected.get(customer, []) for customer in sample]
    assert score.main([*argv[:-2], "--k", "0"]) == 2


def _profiles(workspace, tmp_path) -> Path:
    from pipelines import features as features_command

    out = tmp_path / "profiles.parquet"
    assert features_command.main(["--data", str(workspace["data"]), "--out", str(out)]) == 0
    return out


def test_a_more_recent_purchase_never_raises_churn_and_more_spend_never_lowers_propensity(workspace, tmp_path):
    registry.connect(workspace["store"])
    churn_model = registry.load_model("churn")
    propensity_model = registry.load_model("propensity")
    features = pd.read_parquet(_profiles(workspace, tmp_path))
    buyers = features[features[s.ORDERS_COUNT_TOTAL] > 0].head(300).reset_index(drop=True)

    recent = buyers.copy()
    for factor in (0.8, 0.5, 0.1):
        for column in (s.DAYS_SINCE_LAST_PURCHASE, s.RECENCY_OVER_TENURE, s.OVERDUE_RATIO):
            recent[column] = buyers[column] * factor
        # a more recent purchase also makes the customer more likely alive in BG/NBD's view
        recent[s.BGNBD_P_ALIVE] = 1 - (1 - buyers[s.BGNBD_P_ALIVE]) * factor
        recent[s.BGNBD_EXPECTED_PURCHASES_90D] = buyers[s.BGNBD_EXPECTED_PURCHASES_90D] / factor
        before = churn_model.predict_frame(buyers)[s.CHURN_PROBABILITY].to_numpy()
        after = churn_model.predict_frame(recent)[s.CHURN_PROBABILITY].to_numpy()
        assert (after <= before + 1e-12).all()

    richer = buyers.copy()
    for extra in (10.0, 100.0, 1000.0):
        for column in (s.spend_sum(90), s.spend_sum(365), s.SPEND_SUM_TOTAL):
            richer[column] = buyers[column] + extra
        richer[s.SPEND_TREND_90D] = np.minimum(buyers[s.SPEND_TREND_90D] + 0.5, 1.0)
        before = propensity_model.predict_frame(buyers)[s.PURCHASE_PROBABILITY].to_numpy()
        after = propensity_model.predict_frame(richer)[s.PURCHASE_PROBABILITY].to_numpy()
        assert (after >= before - 1e-12).all()


def test_score_without_a_champion_exits_2_and_says_run_make_train(workspace, tmp_path, capsys):
    code = score.main(
        [
            "--data",
            str(workspace["data"]),
            "--out",
            str(tmp_path / "x.parquet"),
            "--mlflow-store",
            str(tmp_path / "empty"),
        ]
    )
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert "make train" in error and len(error.splitlines()) == 1


def test_the_old_store_option_is_refused_with_a_pointer_to_its_replacements(workspace, tmp_path, capsys):
    assert train.main(["--data", str(workspace["data"]), "--store", str(tmp_path / "mlruns")]) == 2
    error = capsys.readouterr().err.strip()
    assert "--mlflow-store" in error and "--profiles" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "mlruns").exists()  # refused before anything was written


def test_train_on_data_that_fails_validation_exits_2(workspace, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    transactions = pd.read_parquet(workspace["data"] / "transactions.parquet").drop(columns=[s.UNIT_PRICE])
    transactions.to_parquet(broken / "transactions.parquet")
    code = train.main(["--data", str(broken), "--mlflow-store", str(tmp_path / "store")])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert "unit_price" in error and "transactions" in error and len(error.splitlines()) == 1


def test_promote_is_the_human_override_and_compare_lists_runs(workspace, capsys):
    from pipelines import compare, promote

    store = str(workspace["store"])
    assert promote.main(["--model", "propensity", "--version", "1", "--mlflow-store", store, "--reason", "audit"]) == 0
    assert aliases(workspace["store"], "propensity")["champion"] == "1"
    assert promote.main(["--model", "propensity", "--version", "99", "--mlflow-store", store]) == 2
    capsys.readouterr()
    assert compare.main(["--model", "churn", "--mlflow-store", store]) == 0
    printed = capsys.readouterr().out
    assert "roc_auc" in printed and "recency" in printed and "champion is v" in printed


def test_score_with_profiles_fills_the_service_store(workspace, tmp_path):
    out, profiles = tmp_path / "scores.parquet", tmp_path / "profiles.sqlite"
    argv = ["--data", str(workspace["data"]), "--out", str(out), "--mlflow-store", str(workspace["store"])]
    assert score.main([*argv, "--profiles", str(profiles)]) == 0
    scored = pd.read_parquet(out)
    transactions = pd.read_parquet(workspace["data"] / "transactions.parquet")
    buyer = transactions[s.CUSTOMER_ID].iloc[0]
    with SQLiteProfileStore(profiles) as store:
        stored = set(store.profile_ids())
        history = store.history(buyer)
    assert stored == set(scored[s.CUSTOMER_ID])  # the same customers, profiled at the same as_of
    # with the history the service rebuilds a profile from after an event
    assert len(history[s.TRANSACTIONS]) == (transactions[s.CUSTOMER_ID] == buyer).sum()
