"""Tier 2 of the service tests: HTTP through the BentoML service's ASGI app, in process."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import bentoml
import pandas as pd
import pytest

from features import schema as s
from models.names import CHURN, CLV, PROPENSITY, RECOMMENDER
from pipelines import registry
from service import service as service_module
from service.logs import install_request_id_prefix, logger
from service.scorer import Scorer
from tests.workspace import lapsing_customer, purchase, register_champions, train_hint

API_KEY = "test-key"


def test_churn_and_propensity_over_http(client, service_workspace):
    customer = lapsing_customer(service_workspace)
    response = client.post("/churn", json={"customer_ids": [customer, "nobody"]})
    assert response.status_code == 200, response.text
    known, unknown = response.json()["results"]
    assert known["known_customer"] is True and len(known["contributions"]) == 5 and known["reasons"]
    assert unknown["known_customer"] is False
    response = client.post("/propensity", json={"customer_ids": [customer]})
    assert response.status_code == 200
    assert response.json()["results"][0]["top_categories"]
    response = client.post("/clv", json={"customer_ids": [customer, "nobody"]})
    assert response.status_code == 200, response.text
    known, unknown = response.json()["results"]
    assert known["clv"] >= 0 and known["next_purchase_date"] and known["reasons"]
    assert unknown["known_customer"] is False and unknown["clv"] is None


def test_recommend_similar_items_and_profile_over_http(client, service_workspace):
    customer = lapsing_customer(service_workspace)
    response = client.post("/recommend", json={"customer_id": customer, "k": 3, "exclude_purchased": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customer_id"] == customer and len(body["items"]) == 3
    product = body["items"][0]["product_id"]
    response = client.post("/similar_items", json={"product_id": product, "k": 2})
    assert response.status_code == 200 and len(response.json()["items"]) == 2
    response = client.post("/profile", json={"customer_id": customer})
    assert response.status_code == 200
    assert response.json()[s.RFM_SEGMENT]


@pytest.mark.parametrize("path", ["/recommend", "/profile", "/due"])
def test_a_slow_history_read_does_not_stall_the_other_requests(client, service_workspace, monkeypatch, path):
    """A /recommend, /profile or /due call that takes long (a long history, a busy disk) holds its
    own request only: a /churn sent meanwhile is answered while it is still running."""
    customer = lapsing_customer(service_workspace)
    entered, churn_answered = threading.Event(), threading.Event()
    waited: list[bool] = []
    method = path.strip("/")
    original = getattr(Scorer, method)

    def slow(self, *args, **kwargs):
        entered.set()
        # on the event loop this wait would hold /churn back too, and time out
        waited.append(churn_answered.wait(timeout=5))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Scorer, method, slow)
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow_call = pool.submit(client.post, path, json={"customer_id": customer})
        assert entered.wait(timeout=30)
        assert client.post("/churn", json={"customer_ids": [customer]}).status_code == 200
        churn_answered.set()
        assert slow_call.result().status_code == 200
    assert waited == [True]


def test_every_line_logged_during_a_request_starts_with_its_id(client, service_workspace, monkeypatch):
    customer = lapsing_customer(service_workspace)
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    original = Scorer.profile

    def logging_profile(self, customer_id):  # runs on the thread pool: the id must follow the request there
        logger.info("reading the profile of %s", customer_id)
        return original(self, customer_id)

    monkeypatch.setattr(Scorer, "profile", logging_profile)
    handler = Collect()
    install_request_id_prefix([handler])
    level = logger.level
    logger.setLevel(logging.INFO)  # (setLevel, not the attribute: it clears the logger's cached answers)
    logger.addHandler(handler)
    try:
        answered = client.post("/profile", json={"customer_id": customer}, headers={"X-Request-ID": "trace-me-1"})
        refused = client.post("/churn", json={"customer_ids": [7]}, headers={"X-Request-ID": "not usable %s"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert answered.headers["x-request-id"] == "trace-me-1"
    assert f"[trace-me-1] reading the profile of {customer}" in lines
    generated = refused.headers["x-request-id"]
    assert generated != "not usable %s"
    assert f"[{generated}] 400 POST /churn customer_ids[0]: input should be a valid string" in lines
    assert client.get("/livez").headers["x-request-id"]


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/churn", {"customer_ids": "c1"}, 400, "customer_ids"),
        ("/churn", {}, 400, "customer_ids"),
        ("/churn", {"customer_ids": [f"c{i}" for i in range(101)]}, 413, "customer_ids"),
        ("/recommend", {"customer_id": "c1", "k": 0}, 400, "k"),
        ("/recommend", {"customer_id": "c1", "include_categories": ["nope"]}, 404, "include_categories"),
        ("/similar_items", {"product_id": "nope"}, 404, "product_id"),
        ("/events", {"transactions": "not rows"}, 400, "transactions"),
        ("/events", {}, 400, "body"),
        ("/events", {"transaction": []}, 400, "transaction"),
        ("/churn", {"customer_ids": ["c1"], "customer_id": "c1"}, 400, "customer_id"),
        ("/churn", {"customer_ids": [1]}, 400, "customer_ids[0]"),
        ("/clv", {"customer_ids": []}, 400, "customer_ids"),
        ("/clv", {"customer_ids": [f"c{i}" for i in range(101)]}, 413, "customer_ids"),
        ("/churn", [1, 2], 400, "body"),
        ("/recommend", {"customer_id": "c1", "exclude_product_ids": ["nope"]}, 404, "exclude_product_ids"),
        ("/recommend", {"customer_id": "c1", "k": "5"}, 400, "k"),
        ("/recommend", {"customer_id": "c1", "exclude_purchased": 0}, 400, "exclude_purchased"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_field(client, path, body, status, field):
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.json() == {"error": response.json()["error"], "field": field}  # one error shape
    assert response.json()["error"].startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("path", "content", "content_type", "status", "field"),
    [
        ("/churn", b'{"customer_ids": ["c1"]}', "multipart/form-data", 415, "Content-Type"),
        ("/events", b'{"events": []}', "text/plain", 415, "Content-Type"),
        ("/events", b'{"events": [', "application/json", 400, "body"),
        ("/profile", b"", "application/json", 400, "body"),
        ("/recommend", b"\xff\xfe", "application/json", 400, "body"),
    ],
)
def test_bodies_that_are_not_a_json_object_get_a_4xx_not_a_500(client, path, content, content_type, status, field):
    response = client.post(path, content=content, headers={"content-type": content_type})
    assert response.status_code == status, response.text
    assert response.json()["field"] == field


def test_rows_missing_a_column_are_rejected_one_by_one_alone_or_beside_good_rows(client, service_workspace):
    customer = lapsing_customer(service_workspace)
    product = str(service_workspace.tables[s.PRODUCTS][s.PRODUCT_ID].iloc[2])
    good = purchase(customer, product, service_workspace.as_of - pd.Timedelta(hours=2), "http-missing-column")
    incomplete = {key: value for key, value in good.items() if key != s.CUSTOMER_ID} | {s.ORDER_ID: "other-order"}
    for rows, accepted in (([incomplete], 0), ([incomplete, good], 1), ([{}], 0)):
        response = client.post("/events", json={"transactions": rows})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["accepted"] + len(body["rejected"]) == len(rows) and body["accepted"] == accepted
        assert body["rejected"][0]["index"] == 0 and "customer_id: missing" in body["rejected"][0]["reason"]
    response = client.post("/events", json={"customers": [{}]})
    assert response.status_code == 200 and "customer_id: missing" in response.json()["rejected"][0]["reason"]


def test_every_request_example_in_the_api_document_is_answered_and_the_events_one_adds_nothing(client):
    document = client.get("/docs.json").json()
    stored = set(bentoml.get_current_service().scorer.store.profile_ids())
    examples = {
        path: operation["requestBody"]["content"]["application/json"]["example"]
        for path, item in document["paths"].items()
        for operation in item.values()
        if "example" in operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    }
    assert set(examples) == {
        "/churn",
        "/propensity",
        "/clv",
        "/recommend",
        "/similar_items",
        "/profile",
        "/due",
        "/events",
    }
    assert examples["/churn"]["customer_ids"][0] in stored
    for path, example in examples.items():
        response = client.post(path, json=example)
        assert response.status_code == 200, (path, response.text)
    sent = sum(len(rows) for rows in examples["/events"].values())
    answer = client.post("/events", json=examples["/events"]).json()
    assert sent >= 1 and answer["duplicates"] == sent and answer["accepted"] == 0


def test_an_oversized_batch_names_every_table_and_the_total(client):
    rows = [{"customer_id": "c1"}] * 60
    response = client.post("/events", json={"events": rows, "transactions": rows})
    assert response.status_code == 413
    assert response.json() == {
        "error": "body: at most 100 rows per request in all, got 120 (transactions 60, events 60)",
        "field": "body",
    }


def test_an_event_over_http_changes_the_next_churn_answer(client, service_workspace):
    customer = lapsing_customer(service_workspace)
    before = client.post("/churn", json={"customer_ids": [customer]}).json()["results"][0]
    product = str(service_workspace.tables[s.PRODUCTS][s.PRODUCT_ID].iloc[1])
    row = purchase(customer, product, service_workspace.as_of - pd.Timedelta(hours=1), "http-order")
    response = client.post("/events", json={"transactions": [row]})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    after = client.post("/churn", json={"customer_ids": [customer]}).json()["results"][0]
    assert after["churn_probability"] < before["churn_probability"]


def test_health_endpoints_and_readiness_detail(client):
    # (/metrics is checked against the real server: in process, BentoML's metrics client never answers)
    assert client.get("/livez").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    detail = ready.json()
    assert detail["ready"] is True
    assert detail["model_versions"] == {"churn": "1", "propensity": "1", "recommender": "1", "clv": "1"}
    assert detail["missing_models"] == []


def test_reload_keeps_the_models_when_the_registry_fails(client, monkeypatch):
    response = client.post("/reload", json={})
    assert response.status_code == 200 and response.json()["reloaded"] is False

    def unreachable(store):
        raise ConnectionError("registry unreachable")

    monkeypatch.setattr(service_module, "champion_versions", unreachable)
    response = client.post("/reload", json={})
    assert response.status_code == 503
    assert "unreachable" in response.json()["error"]
    detail = client.get("/readyz").json()
    assert detail["registry"]["ok"] is False and "unreachable" in detail["registry"]["error"]
    assert detail["model_versions"]["churn"] == "1"
    assert client.post("/churn", json={"customer_ids": ["nobody"]}).status_code == 200
    monkeypatch.undo()
    assert client.post("/reload", json={}).json()["error"] is None
    assert client.get("/readyz").json()["registry"]["ok"] is True


def test_the_api_key_guards_every_endpoint_but_health(client, monkeypatch):
    monkeypatch.setenv("SCORING_API_KEY", API_KEY)
    assert client.post("/churn", json={"customer_ids": ["nobody"]}).status_code == 401
    wrong = client.post("/churn", json={"customer_ids": ["nobody"]}, headers={"X-API-Key": "wrong"})
    assert wrong.status_code == 401
    right = client.post("/churn", json={"customer_ids": ["nobody"]}, headers={"X-API-Key": API_KEY})
    assert right.status_code == 200
    assert client.post("/events", json={}).status_code == 401
    # the key is checked before the body: a stranger learns nothing about what a request should hold
    assert client.post("/events", content=b"{", headers={"content-type": "text/plain"}).status_code == 401
    for path in ("/livez", "/readyz", "/healthz", "/", "/docs.json"):
        assert client.get(path).status_code == 200, path
    assert "/churn" in client.get("/docs.json").json()["paths"]


def test_reload_picks_up_a_new_champion(client, service_workspace):
    registry.connect(service_workspace.mlflow_store)
    model = registry.load_version("churn", "1")
    new_version = registry.log_model(model, "churn", service_workspace.profiles.head(3))
    registry.set_alias("churn", registry.CHAMPION, new_version)
    try:
        response = client.post("/reload", json={})
        assert response.status_code == 200
        assert response.json()["reloaded"] is True
        assert response.json()["model_versions"]["churn"] == new_version
        answer = client.post("/churn", json={"customer_ids": ["nobody"]}).json()["results"][0]
        assert answer["model_version"] == new_version
    finally:
        registry.set_alias("churn", registry.CHAMPION, "1")
        assert client.post("/reload", json={}).json()["model_versions"]["churn"] == "1"


def test_a_champion_fitted_by_older_code_is_refused_and_its_family_keeps_the_last_good_one(client, service_workspace):
    registry.connect(service_workspace.mlflow_store)
    model = registry.load_version(RECOMMENDER, "1")
    model.feature_names_ = model.feature_names_[:-3]  # what a pickle of a version with fewer features holds
    customers = service_workspace.profiles[s.CUSTOMER_ID].head(3).tolist()
    stale_version = registry.log_recommender(model, RECOMMENDER, customers)
    registry.set_alias(RECOMMENDER, registry.CHAMPION, stale_version)
    # a good new churn champion registered at the same time is served all the same
    churn_version = registry.log_model(registry.load_version(CHURN, "1"), CHURN, service_workspace.profiles.head(3))
    registry.set_alias(CHURN, registry.CHAMPION, churn_version)
    try:
        with pytest.raises(registry.StaleModelError, match=f"models:/{RECOMMENDER}/{stale_version} cannot run"):
            registry.load_version(RECOMMENDER, stale_version)
        response = client.post("/reload", json={})
        assert response.status_code == 503
        assert "cannot run on this code" in response.json()["error"]
        assert "\n" not in response.json()["error"]
        assert response.json()["model_versions"] == {
            CHURN: churn_version,
            PROPENSITY: "1",
            RECOMMENDER: "1",
            CLV: "1",
        }
        answer = client.post("/recommend", json={"customer_id": customers[0]})
        assert answer.status_code == 200 and answer.json()["model_version"] == "1"
        churn = client.post("/churn", json={"customer_ids": [customers[0]]}).json()["results"][0]
        assert churn["model_version"] == churn_version
        ready = client.get("/readyz").json()
        assert (
            ready["registry"]["ok"] is False and f"models:/{RECOMMENDER}/{stale_version}" in ready["registry"]["error"]
        )
    finally:
        registry.set_alias(RECOMMENDER, registry.CHAMPION, "1")
        registry.set_alias(CHURN, registry.CHAMPION, "1")
        assert client.post("/reload", json={}).json()["error"] is None


def test_a_partial_registry_is_served_and_readyz_names_the_missing_models(client, service_workspace, tmp_path):
    # one BentoML app per process (its Prometheus metrics are global), so the running service is
    # pointed at a registry holding only a recommender and reloaded, then pointed back
    service = bentoml.get_current_service()
    full_settings = service.settings
    mlflow_store = register_champions(service_workspace, tmp_path / "mlruns", [RECOMMENDER])
    customer = lapsing_customer(service_workspace)
    try:
        service.settings = replace(full_settings, mlflow_store=mlflow_store)
        assert client.post("/reload", json={}).json()["model_versions"] == {RECOMMENDER: "1"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["model_versions"] == {RECOMMENDER: "1"}
        assert ready.json()["missing_models"] == [CHURN, PROPENSITY, CLV]
        response = client.post("/churn", json={"customer_ids": [customer]})
        assert response.status_code == 503
        assert response.json() == {"error": f"customer_ids: {train_hint(CHURN)}", "field": "customer_ids"}
        response = client.post("/profile", json={"customer_id": customer})
        assert response.status_code == 200, response.text
        assert response.json()["scores"]["churn_probability"] is None
        assert response.json()["scores"]["risk_tier"] == "not_applicable"
        assert len(response.json()["recommendations"]) == 5

        # a champion registered later for a missing model is served after POST /reload
        register_champions(service_workspace, mlflow_store, [CHURN])
        response = client.post("/reload", json={})
        assert response.status_code == 200, response.text
        assert response.json()["reloaded"] is True
        assert response.json()["model_versions"] == {CHURN: "1", RECOMMENDER: "1"}
        assert client.post("/churn", json={"customer_ids": [customer]}).status_code == 200
        assert client.get("/readyz").json()["missing_models"] == [PROPENSITY, CLV]
    finally:
        service.settings = full_settings
        client.post("/reload", json={})
    assert client.get("/readyz").json()["missing_models"] == []
