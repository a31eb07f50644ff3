"""`train --models recommender` end to end into a temporary MLflow store: metrics beside the
baselines, the registered pyfunc, the gate on a retrain, and recommendations refreshed for scoring."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from features import schema as s
from models.names import RECOMMENDER
from models.recommender_evaluation import lists_from_frame
from pipelines import registry, score, train
from pipelines.settings import load_settings
from pipelines.training.recommender import train_recommender

pytestmark = pytest.mark.slow
KS = (5, 10, 20)
SOURCES = ("", "popularity.", "item_knn.")


@pytest.fixture(scope="module")
def trained_store(generated_data, tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("recommender") / "mlruns"
    argv = ["--data", str(generated_data.data_dir), "--mlflow-store", str(store), "--models", "recommender"]
    assert train.main(argv) == 0
    return store


@pytest.fixture
def store(trained_store) -> Path:
    """The trained store, connected: MLflow's tracking URI is process-wide, and other tests move it."""
    registry.connect(trained_store)
    return trained_store


def _aliases(store: Path) -> dict[str, str]:
    registry.connect(store)
    model = mlflow.MlflowClient().get_registered_model(RECOMMENDER)
    return {alias: str(version) for alias, version in model.aliases.items()}


def _data_end(generated_data) -> pd.Timestamp:
    return generated_data.transactions[s.TIMESTAMP].max().normalize() + pd.Timedelta(days=1)


def test_recommender_alone_logs_metrics_beside_the_baselines_and_becomes_champion(store):
    runs = registry.recent_runs(RECOMMENDER)
    assert len(runs) == 1
    latest = runs.iloc[0]
    assert latest["status"] == "FINISHED"
    assert isinstance(latest["tags.mlflow.parentRunId"], str)  # nested under the training run
    for k in KS:
        for source in SOURCES:
            for metric in ("ndcg", "precision", "recall", "map", "hit_rate"):
                assert math.isfinite(latest[f"metrics.{source}{metric}_at_{k}"]), (source, metric, k)
            assert 0 < latest[f"metrics.{source}coverage_at_{k}"] <= 1
            assert latest[f"metrics.{source}novelty_at_{k}"] > 0
    for split in ("buy_again", "new_items"):
        assert math.isfinite(latest[f"metrics.{split}.ndcg_at_10"])
        assert latest[f"metrics.{split}.test_customers"] > 0
    assert latest["metrics.test_customers"] > 100
    assert latest["metrics.ndcg_at_10"] > latest["metrics.popularity.ndcg_at_10"]
    assert latest["metrics.ndcg_at_10"] > latest["metrics.item_knn.ndcg_at_10"]
    assert latest["params.horizon_days"] == "30" and latest["params.n_cutoffs"] == "6"
    assert "params.candidates.n_per_source" in latest and "params.ranker.n_estimators" in latest
    assert latest["tags.gate.decision"] == "champion"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(latest["run_id"], "plots")}
    assert "plots/ndcg_at_k.png" in artifacts
    assert _aliases(store) == {"champion": "1"}
    assert registry.champion_version("churn") is None  # --models recommender trains nothing else


def test_registered_model_serves_recent_history_and_round_trips(store, generated_data):
    model = registry.load_model(RECOMMENDER)
    assert model.as_of_ == _data_end(generated_data)  # candidates refreshed on every purchase before as_of
    customers = [*generated_data.customers[s.CUSTOMER_ID].head(20).astype(str), "nobody-knows-me"]
    direct = model.recommend(customers, k=10)

    pyfunc = mlflow.pyfunc.load_model(f"models:/{RECOMMENDER}@champion")
    via_mlflow = pyfunc.predict(pd.DataFrame({s.CUSTOMER_ID: customers}), params={"k": 10})
    assert lists_from_frame(via_mlflow, customers) == lists_from_frame(direct, customers)
    pd.testing.assert_frame_equal(via_mlflow.reset_index(drop=True), direct, check_dtype=False)
    by_version = registry.load_version(RECOMMENDER, "1").recommend(customers, k=10)
    assert lists_from_frame(by_version, customers) == lists_from_frame(direct, customers)

    default_k = pyfunc.predict(pd.DataFrame({s.CUSTOMER_ID: customers}))
    assert default_k.groupby(s.CUSTOMER_ID).size().max() == registry.RECOMMEND_PARAMS["k"]
    top5 = pyfunc.predict(pd.DataFrame({s.CUSTOMER_ID: customers}), params={"k": 5})
    assert top5.groupby(s.CUSTOMER_ID).size().max() == 5
    assert set(top5.columns) == {
        s.CUSTOMER_ID,
        s.PRODUCT_ID,
        s.RECOMMENDATION_RANK,
        s.RECOMMENDATION_SCORE,
        s.RECOMMENDATION_REASON,
    }


def test_scoring_at_another_date_refreshes_the_candidates(store, generated_data):
    model = registry.load_model(RECOMMENDER)
    tables = generated_data.tables
    earlier = _data_end(generated_data) - pd.Timedelta(days=61)
    customers = generated_data.customers[s.CUSTOMER_ID].head(30).astype(str).tolist()
    lists = score.recommend_products(model, tables, earlier, customers, k=10, chunk_customers=7)
    refreshed = model.refresh_candidates(tables[s.TRANSACTIONS], tables[s.PRODUCTS], earlier)
    assert lists == lists_from_frame(refreshed.recommend(customers, k=10), customers)
    assert lists != lists_from_frame(model.recommend(customers, k=10), customers)
    assert all(len(found) <= 10 and len(set(found)) == len(found) for found in lists)


def test_retraining_on_the_same_data_keeps_the_champion(generated_data, tmp_path, capsys):
    # a store of its own: a second version must not show up in the other tests' store
    store = tmp_path / "mlruns"
    argv = ["--data", str(generated_data.data_dir), "--mlflow-store", str(store), "--models", "recommender"]
    assert train.main(argv) == 0
    capsys.readouterr()
    assert train.main(argv) == 0
    printed = capsys.readouterr().out
    assert "v2 serves" in printed and "NDCG@10" in printed
    assert _aliases(store) == {"champion": "1", "challenger": "2"}
    runs = registry.recent_runs(RECOMMENDER)
    ndcg = runs["metrics.ndcg_at_10"]
    assert ndcg.iloc[0] == ndcg.iloc[1]  # deterministic: same data, same lists
    # the champion was re-measured on the same window and scored the same: no gain beyond the noise
    reason = mlflow.MlflowClient().get_model_version(RECOMMENDER, "2").tags["gate.reason"]
    assert "does not beat champion v1 beyond the noise (0.0000 [0.0000, 0.0000] NDCG@10)" in reason
    assert runs["metrics.champion.test.gate_metric"].iloc[0] == ndcg.iloc[1]


def test_evaluate_at_moves_the_test_window_and_training_windows_end_before_it(generated_data):
    as_of = _data_end(generated_data)
    evaluate_at = pd.Timestamp("2025-09-01")
    result = train_recommender(generated_data.tables, as_of, load_settings(), evaluate_at)
    horizon = pd.Timedelta(days=result.horizon_days)
    assert result.plan.test == evaluate_at == result.window.cutoff
    assert all(cutoff + horizon <= evaluate_at for cutoff in result.plan.train)
    assert result.evaluated.as_of_ == evaluate_at  # metrics measured on history before the test window only
    assert result.served.as_of_ == as_of  # the served model sees everything before as_of
    assert result.ks == KS


def test_per_customer_protocol_through_the_command_logs_why_and_re_measures_the_champion(
    generated_data, tmp_path, capsys
):
    store = tmp_path / "mlruns"
    argv = [
        "--data", str(generated_data.data_dir), "--mlflow-store", str(store), "--models", "recommender",
        "--set", "recommender.protocol=per_customer",
    ]  # fmt: skip
    assert train.main(argv) == 0
    printed = capsys.readouterr().out
    assert "recommender: validated per customer: set by recommender.protocol" in printed
    assert "each customer's last 25% of purchases" in printed
    assert train.main(argv) == 0
    runs = registry.recent_runs(RECOMMENDER)
    latest = runs.iloc[0]
    assert latest["tags.protocol"] == "per_customer" and latest["params.protocol"] == "per_customer"
    assert latest["tags.test_set"] == "each customer's last 25% of purchases"
    assert latest["params.held_out_share"] == "0.25"
    # the champion, refreshed on the same histories, scores what it scored when it was trained
    assert latest["metrics.champion.test.gate_metric"] == runs["metrics.served.test.gate_metric"].iloc[1]
    assert _aliases(store) == {"champion": "1", "challenger": "2"}
