"""The BentoML scoring service: thin HTTP wiring around `service.scorer.Scorer`.

    bentoml serve service.service:CustomerIntelligence --host 127.0.0.1 --port 3000   (or `make serve`)

Configuration comes from the environment (see `service.loading.ServiceSettings`):
SCORING_STORE_PATH (profile store, default data/profiles.sqlite), SCORING_MLFLOW_STORE (local MLflow
folder, default mlruns; MLFLOW_TRACKING_URI overrides it), SCORING_API_KEY (when set, every scoring
endpoint needs the header X-API-Key; the health endpoints, /metrics and the API docs stay open),
SCORING_MAX_BATCH (default 1000) and SCORING_RELOAD_INTERVAL_S (> 0: look for a new champion this
often; default 0, use POST /reload),
SCORING_ACCESS_LOG=1 (a log line per request; off by default, /metrics counts requests) and
SCORING_WORKERS (worker processes, default 1; read when this module is imported).

It serves whichever champions exist (at least one): an endpoint whose model has none answers 503
saying how to train it, and GET /readyz lists such models under `missing_models`.
"""

from __future__ import annotations

import gc
import hmac
import json
import os
import threading
import time
from typing import Annotated, Any

import bentoml
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from pipelines.errors import UserError
from service.errors import RequestError
from service.loading import ServiceSettings, build_scorer, champion_versions, load_serving_models
from service.logs import install_client_error_filter, log_client_error, logger
from service.openapi import describe_api
from service.requests import RequestShape, send_error, send_json
from service.schemas import (
    ChurnAnswer,
    Count,
    EventsAnswer,
    ProfileAnswer,
    PropensityAnswer,
    RecommendAnswer,
    RecommendRequest,
    ReloadAnswer,
    SimilarItemsAnswer,
)
from service.scorer import Scorer, ServingModels

API_KEY_ENV = "SCORING_API_KEY"
WORKERS_ENV = "SCORING_WORKERS"
API_KEY_HEADER = "x-api-key"
# Paths that never need the API key: BentoML's health and metrics endpoints, and the API's own
# documentation (the OpenAPI page, its document and the page's static files), which hold no data.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/", "/docs.json"})
OPEN_PREFIXES = ("/static_content/", "/assets/")
# gen-2 threshold of the garbage collector in the serving process (CPython default 10; see __init__)
FULL_COLLECTION_THRESHOLD = 1000

# The corrected OpenAPI document, built at the first GET /docs.json of the process.
DOCS: dict[str, Any] = {}

# What GET /readyz reports beside BentoML's own check (one service instance per worker process):
# the served versions, the model families without a champion (their endpoints answer 503), the registry.
STATUS: dict[str, Any] = {
    "model_versions": {},
    "missing_models": [],
    "registry": {"ok": None, "error": None, "checked_at": None},
}


class ServiceMiddleware:
    """API key check on every path but the health ones, and a JSON detail on GET /readyz."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        api_key = os.environ.get(API_KEY_ENV)  # read per request (microseconds): one app per process
        if api_key and path not in OPEN_PATHS and not path.startswith(OPEN_PREFIXES):
            headers = dict(scope.get("headers") or [])
            if not hmac.compare_digest(headers.get(API_KEY_HEADER.encode(), b""), api_key.encode()):
                error = RequestError("X-API-Key", f"missing or wrong {API_KEY_HEADER} header", 401)
                log_client_error(error.status, f"{scope.get('method')} {path}", "-", str(error))
                await send_error(send, error)
                return
        if path == "/readyz" and scope.get("method") == "GET":
            await self._readyz(scope, receive, send)
            return
        if path == "/docs.json" and scope.get("method") == "GET":
            await self._docs(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _docs(self, scope, receive, send) -> None:
        """BentoML's OpenAPI document, corrected to describe the service (`service.openapi`)."""
        if "document" not in DOCS:
            captured: dict[str, Any] = {"body": b""}

            async def capture(message) -> None:
                if message["type"] == "http.response.start":
                    captured["status"] = message["status"]
                elif message["type"] == "http.response.body":
                    captured["body"] += message.get("body", b"")

            await self.app(scope, receive, capture)
            if captured.get("status") != 200:
                await send_json(send, 503, {"error": "the OpenAPI document is not available yet", "field": "path"})
                return
            DOCS["document"] = describe_api(json.loads(captured["body"]))
        await send_json(send, 200, DOCS["document"])

    async def _readyz(self, scope, receive, send) -> None:
        status = {}

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]

        await self.app(scope, receive, capture)
        code = status.get("code", 503)
        await send_json(send, code, {"ready": code == 200, **STATUS})


def _answer(answer_model: type[BaseModel], call) -> BaseModel | JSONResponse:
    """The handler's answer as the endpoint's model, or its RequestError as a 4xx body naming the field.

    Returning a pydantic model (not a dict) also spares BentoML a JSON-schema build per response.
    """
    try:
        return answer_model.model_validate(call())
    except RequestError as error:
        return JSONResponse(error.as_dict(), status_code=error.status)


def report_models(models: ServingModels) -> None:
    """Put the served versions and the missing model families into what GET /readyz reports."""
    STATUS["model_versions"] = dict(models.versions)
    STATUS["missing_models"] = list(models.missing)


def workers_from_env(environ: dict[str, str] | None = None) -> int:
    """SCORING_WORKERS as a whole number >= 1 (default 1). The service decorator needs it at import
    time, before `ServiceSettings.from_env` runs, so it is read here."""
    raw = (os.environ if environ is None else environ).get(WORKERS_ENV, "1")
    try:
        workers = int(raw)
    except ValueError:
        workers = 0
    if workers < 1:
        raise UserError(f"{WORKERS_ENV}: expected a whole number of worker processes >= 1, got {raw!r}")
    return workers


CustomerIds = Annotated[list[str], Field(min_length=1, description="customer ids (at most SCORING_MAX_BATCH)")]
Rows = Annotated[list[dict[str, Any]], Field(description="rows with the data contract's columns")]


@bentoml.service(
    name="customer_intelligence",
    # each worker process loads its own models and store connection; /events stays safe across them
    # because the store guards each customer's read-rebuild-write (ProfileStore.guarded)
    workers=workers_from_env(),
    traffic={"timeout": 60},
    http={"host": "127.0.0.1"},
    # a log line per request costs about a tenth of a scoring request: off unless SCORING_ACCESS_LOG=1
    logging={"access": {"enabled": os.environ.get("SCORING_ACCESS_LOG") == "1"}},
)
class CustomerIntelligence:
    """Churn, purchase propensity, recommendations and live customer profiles."""

    def __init__(self) -> None:
        install_client_error_filter()
        self.settings = ServiceSettings.from_env()
        self.scorer: Scorer = build_scorer(self.settings)
        self._reload_lock = threading.Lock()
        report_models(self.scorer.models)
        STATUS["registry"] = {"ok": True, "error": None, "checked_at": time.time()}
        logger.info("serving model versions %s from %s", self.scorer.models.versions, self.settings.store_path)
        if self.scorer.models.missing:
            logger.warning("no champion of %s: their endpoints answer 503", ", ".join(self.scorer.models.missing))
        if self.settings.reload_interval_s > 0:
            threading.Thread(target=self._check_periodically, name="champion-check", daemon=True).start()
        # the models, reference tables and imported modules live as long as the process: keep them out of
        # the garbage collector's scans, whose pauses otherwise show up in the p99 latency
        gc.collect()
        gc.freeze()
        # Full collections still scan what requests leave alive for a while: BentoML keeps each request's
        # OpenTelemetry span and asyncio timer for seconds, ~50,000 objects at 200 req/s, and a full pass
        # over them took 20-30 ms, every second or two, which was most of the p99. Young collections stay
        # as they are; a full one now waits for 100x as many of them (minutes at that load).
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, FULL_COLLECTION_THRESHOLD)

    def __is_ready__(self) -> bool:
        return self.scorer is not None

    # /churn, /propensity and /similar_items are async: they take about a millisecond of CPU, less than
    # a hop to a worker thread costs. /recommend and /profile read a customer's history and build the
    # recommender's candidates (tens of milliseconds for a long history), and /events and /reload do
    # more (validation, feature builds, model loads): they run on BentoML's thread pool, so that one
    # slow call does not stall the event loop and every other request of the worker with it.
    @bentoml.api
    async def churn(self, customer_ids: CustomerIds) -> ChurnAnswer:
        """Churn probability, risk tier and the top 5 reasons (SHAP contributions) per customer."""
        return _answer(ChurnAnswer, lambda: self.scorer.churn(customer_ids))

    @bentoml.api
    async def propensity(self, customer_ids: CustomerIds) -> PropensityAnswer:
        """Probability of a purchase in the horizon, overall and per top category."""
        return _answer(PropensityAnswer, lambda: self.scorer.propensity(customer_ids))

    @bentoml.api(input_spec=RecommendRequest)
    def recommend(self, **request: Any) -> RecommendAnswer:
        """The customer's top-k products with a score and a reason (cold start: the most popular)."""
        rules = RecommendRequest.rules_of(request)
        return _answer(
            RecommendAnswer, lambda: self.scorer.recommend(request["customer_id"], k=request["k"], rules=rules)
        )

    @bentoml.api
    async def similar_items(self, product_id: str, k: Count = 10) -> SimilarItemsAnswer:
        """The products most often bought by the same customers."""
        return _answer(SimilarItemsAnswer, lambda: self.scorer.similar_items(product_id, k))

    @bentoml.api
    def profile(self, customer_id: str) -> ProfileAnswer:
        """The customer's feature snapshot, segment, lifecycle stage, every score and top recommendations."""
        return _answer(ProfileAnswer, lambda: self.scorer.profile(customer_id))

    @bentoml.api
    def events(
        # each list may be left out, but not sent as null (typed `Rows`: a default is not validated)
        self,
        transactions: Rows = None,  # type: ignore[assignment]
        events: Rows = None,  # type: ignore[assignment]
        customers: Rows = None,  # type: ignore[assignment]
    ) -> EventsAnswer:
        """Validate and store contract rows; the affected customers' profiles are rebuilt at once."""
        sent = {"customers": customers, "transactions": transactions, "events": events}
        tables = {name: rows for name, rows in sent.items() if rows is not None}
        return _answer(EventsAnswer, lambda: self.scorer.events(tables))

    @bentoml.api
    def reload(self) -> ReloadAnswer:
        """Load the registry's current champions when they changed; keep the current ones if it fails."""
        result = self.reload_champions()
        if result.get("error"):
            return JSONResponse(ReloadAnswer.model_validate(result).model_dump(), status_code=503)
        return ReloadAnswer.model_validate(result)

    # -- reloading ------------------------------------------------------------------------------
    def reload_champions(self) -> dict[str, Any]:
        with self._reload_lock:
            current = dict(self.scorer.models.versions)
            try:
                versions = champion_versions(self.settings.mlflow_store)
                # compared as dicts: a newly registered champion of a missing model (a new key) is a change too
                changed = versions != current
                if changed:
                    models = load_serving_models(self.settings.mlflow_store, versions)
                    # the profiles do not depend on the models: same store; in-flight requests finish on the old Scorer
                    old = self.scorer
                    self.scorer = Scorer(models, old.store, old.state, max_batch=self.settings.max_batch)
                    logger.info("now serving model versions %s (were %s)", versions, current)
            except Exception as error:  # the registry or a model load failed: keep serving what we have
                logger.error("champion reload failed, still serving %s: %s", current, error)
                STATUS["registry"] = {"ok": False, "error": str(error), "checked_at": time.time()}
                return {"reloaded": False, "model_versions": current, "error": str(error)}
            report_models(self.scorer.models)
            STATUS["registry"] = {"ok": True, "error": None, "checked_at": time.time()}
            return {"reloaded": changed, "model_versions": dict(self.scorer.models.versions), "error": None}

    def _check_periodically(self) -> None:
        while True:
            time.sleep(self.settings.reload_interval_s)
            self.reload_champions()


def endpoint_fields(service) -> dict[str, frozenset[str]]:
    """Each endpoint's path and the top-level keys its body may have."""
    return {api.route: frozenset(api.input_spec.model_fields) for api in service.apis.values()}


# the first added wraps the others: the key is checked before anything about the body is said
CustomerIntelligence.add_asgi_middleware(ServiceMiddleware)
CustomerIntelligence.add_asgi_middleware(RequestShape, fields_by_path=endpoint_fields(CustomerIntelligence))
