"""generate -> train -> train again -> score, into a temporary MLflow store.

The gate is tested in both directions, models come back from the registry by alias with the
same scores, and the generator's hidden structure is recovered.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from features import schema as s
from models.baselines import RfmLogisticBaseline, ScoreColumnBaseline
from models.outcome import OutcomeModel
from pipelines import generate, registry, score, train
from pipelines.store import SQLiteProfileStore
from pipelines.training.outcome import BASELINES

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
    # propensity per category: every candidate's mean per-category ROC-AUC and top-1 accuracy, a chart
    propensity = nested_runs(workspace["store"], "propensity").iloc[0]
    for candidate in ("model", "past_share", "popularity"):
        assert 0.0 <= propensity[f"metrics.categories.{candidate}.top1_hit_rate"] <= 1.0
        assert (
            propensity[f"metrics.categories.{candidate}.mean_roc_auc_low"]
            <= (propensity[f"metrics.categories.{candidate}.mean_roc_auc"])
        )
    assert propensity["metrics.categories.model.mean_roc_auc"] > 0.6
    assert "category_affinity" in json.loads(propensity["tags.gate.served_per_output"])
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(propensity["run_id"], "plots")}
    assert "plots/categories_roc_auc.png" in artifacts
    # the recommender is one of the default models, in its own nested run under the same parent
    recommender = nested_runs(workspace["store"], "recommender").iloc[0]
    assert aliases(workspace["store"], "recommender") == {"champion": "1"}
    churn_run = nested_runs(workspace["store"], "churn").iloc[-1]
    assert recommender["tags.mlflow.parentRunId"] == churn_run["tags.mlflow.parentRunId"]


def test_churn_recovers_the_generated_dropout_well_above_recency(workspace):
    latest = nested_runs(workspace["store"], "churn").iloc[0]
    assert latest["metrics.test.roc_auc"] >= latest["metrics.recency.test.roc_auc"] + 0.02
    assert latest["metrics.test.roc_auc"] > 0.75


# A model too weak to beat the baselines: one tree of two leaves, no linear base.
WEAK = [
    "--set",
    "churn.booster.num_boost_round=1",
    "--set",
    "churn.booster.num_leaves=2",
    "--set",
    "churn.base_features=[]",
]


def test_gate_keeps_the_champion_unless_the_winner_beats_it_beyond_the_noise(workspace, tmp_path):
    # a store of its own: this test moves aliases, which the other tests must not see
    data, store = str(workspace["data"]), tmp_path / "mlruns"
    argv = ["--data", data, "--mlflow-store", str(store), "--models", "churn"]
    assert train.main(argv) == 0
    assert aliases(store, "churn") == {"champion": "1"}
    first = nested_runs(store, "churn").iloc[0]
    assert first["tags.gate.served"] == "model"  # the generated dropout is learnable well beyond the baselines
    assert first["metrics.diff.model_vs_bgnbd.gate_metric_low"] > 0
    # same data and config: the same model, which does not beat itself, so only a challenger
    assert train.main(argv) == 0
    assert aliases(store, "churn") == {"champion": "1", "challenger": "2"}
    runs = nested_runs(store, "churn")
    assert runs["metrics.test.roc_auc"].iloc[0] == runs["metrics.test.roc_auc"].iloc[1]
    assert runs["metrics.champion.test.gate_metric"].iloc[0] == runs["metrics.test.gate_metric"].iloc[1]
    assert "does not beat champion v1 beyond the noise" in runs["tags.gate.reason"].iloc[0]
    # a model too weak for the baselines: the run serves the best baseline, which loses to the champion
    assert train.main([*argv, *WEAK]) == 0
    assert aliases(store, "churn")["champion"] == "1"
    version = mlflow.MlflowClient().get_model_version("churn", "3")
    assert version.tags["gate.served"] in BASELINES and version.tags["gate.decision"] == "challenger"


def test_a_model_that_cannot_beat_the_baselines_leaves_the_best_baseline_as_champion(workspace, tmp_path, capsys):
    data, store = str(workspace["data"]), tmp_path / "mlruns"
    assert train.main(["--data", data, "--mlflow-store", str(store), "--models", "churn", *WEAK]) == 0
    assert aliases(store, "churn") == {"champion": "1"}
    run = nested_runs(store, "churn").iloc[0]
    served = run["tags.gate.served"]
    assert served in BASELINES and run["tags.gate.decision"] == "champion"
    assert f"does not beat {served} beyond the noise" in run["tags.gate.reason"]
    assert run["metrics.served.test.gate_metric"] == run[f"metrics.{served}.test.gate_metric"]
    assert f"serves baseline {served}; promoted to champion" in capsys.readouterr().out
    # the champion is the baseline itself, served and scored like any model
    champion = registry.load_model("churn")
    assert all(isinstance(c, RfmLogisticBaseline | ScoreColumnBaseline) for c in champion.classifiers.values())
    out = tmp_path / "scores.parquet"
    assert score.main(["--data", data, "--out", str(out), "--mlflow-store", str(store), "--models", "churn"]) == 0
    assert pd.read_parquet(out)[s.CHURN_PROBABILITY].dropna().between(0, 1).all()


def test_a_champion_that_cannot_be_remeasured_is_kept_with_a_warning(workspace, tmp_path, capsys):
    data, store = str(workspace["data"]), tmp_path / "mlruns"
    register_unmeasurable_champion(store)
    argv = ["--data", data, "--mlflow-store", str(store), "--models", "churn"]
    assert train.main(argv) == 0
    assert aliases(store, "churn") == {"champion": "1", "challenger": "2"}
    warning = capsys.readouterr().err
    assert "warning: churn: champion v1 cannot be re-measured" in warning and "--replace-unmeasurable" in warning
    version = mlflow.MlflowClient().get_model_version("churn", "2")
    assert "no_such_feature" in version.tags["gate.champion_unmeasurable"]
    # the human override replaces it
    assert train.main([*argv, "--replace-unmeasurable"]) == 0
    assert aliases(store, "churn")["champion"] == "3"


def register_unmeasurable_champion(store: Path) -> None:
    """A churn champion reading a column the features no longer have."""
    frame = pd.DataFrame({"no_such_feature": [1.0, 2.0, 3.0, 4.0]})
    labels = np.array([0, 1, 0, 1])
    classifier = ScoreColumnBaseline("no_such_feature").fit(frame, labels, frame, labels)
    model = OutcomeModel("churn", {s.CHURN_PROBABILITY: classifier}, ["no_such_feature"])
    registry.use_experiment(store)
    with registry.run("an old champion"):
        registry.set_alias("churn", registry.CHAMPION, registry.log_model(model, "churn", frame))


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
    # a probability for every category of the catalogue, and each customer's five most likely, best first
    catalogue = set(pd.read_parquet(workspace["data"] / "products.parquet")[s.CATEGORY])
    assert {s.category_purchase_probability(c) for c in catalogue} <= set(scores.columns)
    top = scores[s.TOP_CATEGORIES].map(json.loads)
    assert (top.map(len) == 5).all() and set(top.iloc[0]) <= catalogue
    first = scores.iloc[0]
    probabilities = [first[s.category_purchase_probability(c)] for c in top.iloc[0]]
    assert probabilities == sorted(probabilities, reverse=True)
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


def test_customer_value_is_gated_logged_registered_and_scored(workspace, tmp_path):
    run = nested_runs(workspace["store"], "clv").iloc[0]
    assert aliases(workspace["store"], "clv") == {"champion": "1"}
    assert run["tags.gate.metric"] == "MAE of spend"
    # every candidate measured on the same customers, with its interval where it has one
    for candidate in ("", "spend_rate.", "bgnbd_gamma_gamma."):
        for metric in ("mae", "rmse", "spearman", "normalised_gini", "top_decile_capture", "aggregate_bias"):
            assert np.isfinite(run[f"metrics.{candidate}test.{metric}"])
        assert run[f"metrics.{candidate}test.orders.mae"] >= 0
    assert 0.6 < run["metrics.bgnbd_gamma_gamma.test.interval_coverage"] < 0.95
    assert 0.6 < run["metrics.test.interval_coverage"] < 0.95
    # the served candidate's gate metric is the lowest MAE unless the model did not win
    served = run["tags.gate.served"]
    assert run["metrics.served.test.gate_metric"] == run[f"metrics.{'' if served == 'model' else served + '.'}test.mae"]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run["run_id"], "plots")}
    assert {"plots/deciles.png", "plots/evidence.png"} <= artifacts
    # the next purchase, measured for both count models on the test window, the served one named
    timing = run["tags.value.timing_model"]
    assert timing in ("pareto_nbd", "bgnbd")
    for count_model in ("pareto_nbd", "bgnbd"):
        assert 0.6 < run[f"metrics.timing.{count_model}.test.concordance"] <= 1.0
        assert run[f"metrics.timing.{count_model}.test.mae_days_buyers"] > 0
    assert 0.7 < run[f"metrics.timing.{timing}.test.coverage_buyers"] < 0.95

    out = tmp_path / "scores.parquet"
    argv = ["--data", str(workspace["data"]), "--out", str(out), "--mlflow-store", str(workspace["store"])]
    assert score.main([*argv, "--models", "clv"]) == 0
    scores = pd.read_parquet(out)
    buyers = scores.dropna(subset=[s.CLV])
    assert len(buyers) > 0.5 * len(scores)
    assert (buyers[s.CLV_LOW] <= buyers[s.CLV]).all() and (buyers[s.CLV] <= buyers[s.CLV_HIGH]).all()
    assert buyers[s.P_ACTIVE].between(0, 1).all()
    assert (buyers[s.NEXT_PURCHASE_LOW] <= buyers[s.NEXT_PURCHASE_DATE]).all()
    assert scores.loc[scores[s.LIFECYCLE_STAGE] == "prospect", s.CLV].isna().all()
    # another horizon at scoring time: the same model, asked about four months
    shorter = tmp_path / "shorter.parquet"
    assert score.main([*argv[:3], str(shorter), *argv[4:], "--models", "clv", "--set", "clv.horizon_days=120"]) == 0
    ratio = (pd.read_parquet(shorter)[s.CLV] / scores[s.CLV]).dropna()
    assert ratio.between(0.2, 0.6).mean() > 0.95
