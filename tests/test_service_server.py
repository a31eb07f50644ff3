"""Tier 3 of the service tests: a real `bentoml serve` subprocess driven over HTTP, and `bentoml build`."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from features import schema as s
from tests.server_process import REPO_ROOT, ServerProcess
from tests.workspace import lapsing_customer, purchase

pytestmark = pytest.mark.slow
API_KEY = "server-test-key"
KEY = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def server_setup(service_workspace, tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    store_path = service_workspace.copy_store(root / "profiles.sqlite")
    environment = service_workspace.environment(
        store_path, SCORING_API_KEY=API_KEY, BENTOML_HOME=str(root / "bentoml"), SCORING_MAX_BATCH="200"
    )
    server = ServerProcess(environment, log_path=root / "server.log").start()
    yield server
    server.stop()


@pytest.fixture
def server(server_setup) -> ServerProcess:
    return server_setup


def test_every_endpoint_answers(server, service_workspace):
    customer = lapsing_customer(service_workspace)
    status, body = server.post("/churn", {"customer_ids": [customer]}, KEY)
    assert status == 200 and body["results"][0]["known_customer"] is True
    assert len(body["results"][0]["contributions"]) == 5 and body["results"][0]["reasons"]
    status, body = server.post("/propensity", {"customer_ids": [customer]}, KEY)
    assert status == 200 and 0 <= body["results"][0]["purchase_probability"] <= 1
    status, body = server.post("/recommend", {"customer_id": customer, "k": 3}, KEY)
    assert status == 200 and len(body["items"]) == 3
    status, body = server.post("/similar_items", {"product_id": body["items"][0]["product_id"], "k": 3}, KEY)
    assert status == 200 and len(body["items"]) == 3
    status, body = server.post("/profile", {"customer_id": customer}, KEY)
    assert status == 200 and body["known_customer"] is True
    assert body["rfm_segment"] and body["lifecycle_stage"] and body["as_of"]
    status, body = server.post("/events", {"events": []}, KEY)
    assert status == 200 and body["accepted"] == 0
    status, body = server.post("/reload", {}, KEY)
    assert status == 200 and body["reloaded"] is False
    assert server.get("/livez")[0] == 200
    status, body = server.get("/readyz")
    assert status == 200 and body["model_versions"]["recommender"] == "1"
    status, metrics = server.get("/metrics")
    assert status == 200 and "bentoml_service_request" in metrics
    status, page = server.get("/docs.json", KEY)
    assert status == 200 and {"/churn", "/events", "/profile"} <= set(page["paths"])


def test_unknown_customer_and_bad_inputs(server):
    status, body = server.post("/churn", {"customer_ids": ["nobody-at-all"]}, KEY)
    assert status == 200 and body["results"][0]["known_customer"] is False
    status, body = server.post("/recommend", {"customer_id": "nobody-at-all", "k": 2}, KEY)
    assert status == 200 and body["known_customer"] is False and len(body["items"]) == 2
    for path, payload, expected, field in (
        ("/churn", {"customer_ids": 5}, 400, "customer_ids"),
        ("/churn", {"customer_ids": [str(i) for i in range(201)]}, 413, "customer_ids"),
        ("/recommend", {"k": 3}, 400, "customer_id"),
        ("/similar_items", {"product_id": "no-such-product"}, 404, "product_id"),
        ("/events", {"transaction": [{"order_id": "x"}]}, 400, "transaction"),
    ):
        status, body = server.post(path, payload, KEY)
        assert status == expected and body["field"] == field, (path, status, body)
    # a row that lacks columns is a rejected row, not a refused request
    status, body = server.post("/events", {"transactions": [{"order_id": "x"}]}, KEY)
    assert status == 200 and body["accepted"] == 0 and "customer_id: missing" in body["rejected"][0]["reason"]


def test_client_errors_are_one_info_line_each_with_the_request_id(server):
    request = urllib.request.Request(
        f"{server.url}/churn",
        data=b'{"customer_ids": [7]}',
        method="POST",
        headers={"Content-Type": "application/json", "X-Request-ID": "client-abc-1", **KEY},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 400 and refused.value.headers["x-request-id"] == "client-abc-1"
    status, _ = server.post("/churn", {"customer_ids": ["a"]}, {**KEY, "Content-Type": "multipart/form-data"})
    assert status == 415
    log = server.log_path.read_text()
    assert "[client-abc-1] 400 POST /churn customer_ids[0]: input should be a valid string" in log
    assert "] 415 POST /churn Content-Type: send the body as application/json" in log
    assert "Traceback" not in log and "ValidationError" not in log


def test_the_api_key_is_required(server):
    assert server.post("/churn", {"customer_ids": ["a"]})[0] == 401
    assert server.post("/churn", {"customer_ids": ["a"]}, {"X-API-Key": "wrong"})[0] == 401
    assert server.get("/readyz")[0] == 200


def test_an_event_changes_the_score_and_survives_a_restart(service_workspace, tmp_path):
    # a server and store of its own: it restarts its server and appends to its store
    store_path = service_workspace.copy_store(tmp_path / "profiles.sqlite")
    environment = service_workspace.environment(
        store_path, SCORING_API_KEY=API_KEY, BENTOML_HOME=str(tmp_path / "bentoml")
    )
    customer = lapsing_customer(service_workspace)
    with ServerProcess(environment, log_path=tmp_path / "server.log") as server:
        before = server.post("/churn", {"customer_ids": [customer]}, KEY)[1]["results"][0]["churn_probability"]
        product = str(service_workspace.tables[s.PRODUCTS][s.PRODUCT_ID].iloc[2])
        row = purchase(customer, product, service_workspace.as_of - pd.Timedelta(minutes=30), "server-order")
        status, body = server.post("/events", {"transactions": [row]}, KEY)
        assert status == 200
        assert body == {"accepted": 1, "rejected": [], "duplicates": 0, "customers_updated": [customer]}
        after = server.post("/churn", {"customer_ids": [customer]}, KEY)[1]["results"][0]["churn_probability"]
        assert after < before
        new_customer = {s.CUSTOMER_ID: "server-new", s.SIGNUP_DATE: "2025-06-01"}
        assert server.post("/events", {"customers": [new_customer]}, KEY)[1]["accepted"] == 1

    with ServerProcess(environment, log_path=tmp_path / "restart.log") as restarted:
        again = restarted.post("/churn", {"customer_ids": [customer, "server-new"]}, KEY)[1]["results"]
        assert again[0]["churn_probability"] == pytest.approx(after)
        assert again[1]["known_customer"] is True
        profile = restarted.post("/profile", {"customer_id": customer}, KEY)[1]
        assert profile["features"][s.DAYS_SINCE_LAST_PURCHASE] < 1


def test_two_workers_keep_every_concurrent_event_of_one_customer(service_workspace, tmp_path):
    store_path = service_workspace.copy_store(tmp_path / "profiles.sqlite")
    environment = service_workspace.environment(
        store_path, SCORING_API_KEY=API_KEY, BENTOML_HOME=str(tmp_path / "bentoml"), SCORING_WORKERS="2"
    )
    customer = lapsing_customer(service_workspace)
    product = str(service_workspace.tables[s.PRODUCTS][s.PRODUCT_ID].iloc[1])
    when = service_workspace.as_of - pd.Timedelta(minutes=20)
    with ServerProcess(environment, log_path=tmp_path / "server.log") as server:
        before = server.post("/profile", {"customer_id": customer}, KEY)[1]["features"][s.ORDERS_COUNT_TOTAL]
        calls = [{"transactions": [purchase(customer, product, when, f"workers-{n}")]} for n in range(8)]
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda body: server.post("/events", body, KEY), calls))
        assert [(status, body["accepted"]) for status, body in answers] == [(200, 1)] * 8
        # whichever worker answers, the profile holds all eight orders
        for _ in range(4):
            profile = server.post("/profile", {"customer_id": customer}, KEY)[1]
            assert profile["features"][s.ORDERS_COUNT_TOTAL] == before + 8


def test_bentoml_build_succeeds(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
    bentoml = Path(sys.executable).with_name("bentoml")
    result = subprocess.run(
        [str(bentoml), "build", str(REPO_ROOT)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (bento,) = (tmp_path / "bentoml" / "bentos" / "customer-intelligence").glob("*/src")
    packaged = {path.relative_to(bento).as_posix() for path in bento.rglob("*.py")}
    # every module the service imports, subpackages included; no tests
    assert {"service/service.py", "pipelines/store/sqlite.py", "models/recommender/__init__.py"} <= packaged
    assert not any(path.startswith("tests/") for path in packaged)
