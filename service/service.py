"""The BentoML scoring service: thin HTTP wiring around `service.scorer.Scorer`.

    bentoml serve service.service:CustomerIntelligence --host 127.0.0.1 --port 3000   (or `make serve`)

Configuration comes from the environment (see `service.loading.ServiceSettings`):
SCORING_STORE_PATH (profile store, default data/profiles.sqlite), SCORING_MLFLOW_STORE (local MLflow
folder, default mlruns; MLFLOW_TRACKING_URI overrides it), SCORING_API_KEY (when set, every scoring
endpoint needs the header X-API-Key; the health endpoints, /metrics and the API docs stay open),
SCORING_MAX_BATCH (default 1000) and SCORING_RELOAD_INTERVAL_S (> 0: look for a new champion this
often; default 0, use POST /reload),
SCORING_ACCESS_LOG=1 (a log line per request; off by default, /metrics counts requests),
SCORING_WORKERS (worker processes, default 1; read when this module is imported),
SCORING_REGISTRY_RETRY_S (default 5: while no champion is loaded, try the registry again this often)
and SCORING_STORE_BUSY_TIMEOUT_S (default 5: how long a write waits for another writer's lock on the
profile store). MLflow's own HTTP retries are shortened to seconds unless MLFLOW_HTTP_REQUEST_MAX_RETRIES,
MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR or MLFLOW_HTTP_REQUEST_TIMEOUT are set (`registry.SHORT_HTTP_RETRIES`).

It serves whichever champions exist (at least one): an endpoint whose model has none answers 503
saying how to train it, and GET /readyz lists such models under `missing_models`.

Faults:
- a profile store that is missing, not a SQLite file, another application's SQLite file, or a store
  of another version stops `bentoml serve` before any worker starts, with one line naming the file
  and what to run, and exit code 2 (`check_store`);
- no champion can be loaded at start (the registry does not answer, or holds none): the service
  starts anyway; GET /readyz answers 503 with the `reason` and `registry.error`, the scoring endpoints
  answer 503 with that reason and Retry-After, POST /events works, and the registry is tried again
  every SCORING_REGISTRY_RETRY_S until the champions load; later registry failures keep the models;
- another writer holds the store longer than SCORING_STORE_BUSY_TIMEOUT_S: POST /events answers 503
  with Retry-After and stores nothing of that request, so the same body can be sent again.
"""

from __future__ import annotations

import functools
import hmac
import json
import os
import sys
import threading
import time
from typing import Annotated, Any

import anyio
import bentoml
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from pipelines.errors import EXIT_USER_ERROR, UserError
from pipelines.registry import use_short_http_retries
from service.collector import collect_fully_less_often, keep_out_of_collections
from service.errors import RequestError, retry_after
from service.loading import ServiceSettings, champion_versions, load_changed_champions, open_store, read_number
from service.logs import install_client_error_filter, install_request_id_prefix, log_client_error, logger
from service.openapi import describe_api, request_examples
from service.processes import ScorerProcesses, Served
from service.request_timeout import cancel_request_timers
from service.requests import HttpMiddleware, RequestIds, RequestShape, header_value, send_error, send_json
from service.schemas import (
    ChurnAnswer,
    ClvAnswer,
    Count,
    DueAnswer,
    EventsAnswer,
    ProfileAnswer,
    PropensityAnswer,
    RecommendAnswer,
    RecommendRequest,
    ReloadAnswer,
    SimilarItemsAnswer,
    WithinDays,
)
from service.scorer import Scorer, ServingModels

API_KEY_ENV = "SCORING_API_KEY"
WORKERS_ENV = "SCORING_WORKERS"
API_KEY_HEADER = b"x-api-key"
# Paths that never need the API key: BentoML's health and metrics endpoints, and the API's own
# documentation (the OpenAPI page, its document and the page's static files), which hold no data.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/", "/docs.json"})
OPEN_PREFIXES = ("/static_content/", "/assets/")

# The corrected OpenAPI document, built at the first GET /docs.json of the process.
DOCS: dict[str, Any] = {}

# What GET /readyz reports beside BentoML's own check (one service instance per worker process):
# the served versions, the model families without a champion (their endpoints answer 503), the registry,
# and while no model is loaded, why (`reason`).
STATUS: dict[str, Any] = {
    "model_versions": {},
    "missing_models": [],
    "registry": {"ok": None, "error": None, "checked_at": None},
    "reason": None,
}
# What the service serves until the registry gives it a champion: no model (the store still takes /events).
NO_MODELS = ServingModels.of({}, {})


class ServiceMiddleware(HttpMiddleware):
    """API key check on every path but the health ones, and a JSON detail on GET /readyz."""

    async def handle(self, scope, receive, send) -> None:
        path = scope["path"]
        api_key = os.environ.get(API_KEY_ENV)  # read per request (microseconds): one app per process
        if api_key and not is_open(path) and not key_matches(header_value(scope, API_KEY_HEADER), api_key):
            error = RequestError("X-API-Key", f"missing or wrong {API_KEY_HEADER.decode()} header", 401)
            log_client_error(error.status, f"{scope.get('method')} {path}", str(error))
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
            examples = served_examples()
            document = describe_api(json.loads(captured["body"]), examples)
            if not examples:  # no data served yet: build it again (with its examples) next time
                await send_json(send, 200, document)
                return
            DOCS["document"] = document
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
        return JSONResponse(error.as_dict(), status_code=error.status, headers=error.headers or None)


def is_open(path: str) -> bool:
    """Whether a path is served without the API key."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def key_matches(sent: bytes, api_key: str) -> bool:
    """The key check, in constant time (the time taken says nothing about how much of the key was right)."""
    return hmac.compare_digest(sent, api_key.encode())


def served_examples() -> dict[str, Any]:
    """Request examples made of the served data, for the OpenAPI document ({} while nothing is served)."""
    scorer = getattr(bentoml.get_current_service(), "scorer", None)
    return request_examples(*scorer.example_data()) if scorer is not None else {}


def report_models(models: ServingModels) -> None:
    """Put the served versions and the missing model families into what GET /readyz reports."""
    STATUS["model_versions"] = dict(models.versions)
    STATUS["missing_models"] = list(models.missing)


def workers_from_env(environ: dict[str, str] | None = None) -> int:
    """SCORING_WORKERS as a whole number >= 1 (default 1). The service decorator needs it at import
    time, before `ServiceSettings.from_env` runs, so it is read here."""
    return int(read_number(os.environ if environ is None else environ, WORKERS_ENV, int, "1", least=1))


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
    """Churn, purchase propensity, customer value, recommendations, due products and live customer profiles."""

    def __init__(self) -> None:
        install_client_error_filter()
        install_request_id_prefix()
        self.settings = ServiceSettings.from_env()
        use_short_http_retries()
        store, state = open_store(self.settings.store_path, self.settings.store_busy_timeout_s)
        # the store first and on its own: /events needs no model, and the champions may come later
        self.scorer: Scorer = Scorer(NO_MODELS, store, state, max_batch=self.settings.max_batch)
        self.processes = ScorerProcesses(self.settings) if self.settings.own_processes else None
        self._reload_lock = threading.Lock()
        if self.reload_champions()["error"] is None and self.scorer.models.missing:
            logger.warning("no champion of %s: their endpoints answer 503", ", ".join(self.scorer.models.missing))
        if self.processes is not None:  # their models loaded now, not by the first requests
            self.processes.warm(self._served())
        if not self.__is_ready__() or self.settings.reload_interval_s > 0:
            threading.Thread(target=self._check_periodically, name="champion-check", daemon=True).start()
        keep_out_of_collections()
        collect_fully_less_often()

    @bentoml.on_deployment
    def check_store() -> None:
        """Once, in `bentoml serve`'s own process before any worker starts: settings or a profile store
        the service cannot use stop the server with one line and exit code 2 (a worker failing in
        __init__ would be restarted again and again, each time with a traceback)."""
        try:
            settings = ServiceSettings.from_env()
            store, _ = open_store(settings.store_path, settings.store_busy_timeout_s)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            raise SystemExit(EXIT_USER_ERROR) from None
        store.close()

    def __is_ready__(self) -> bool:
        """Ready once at least one champion is loaded."""
        return bool(self.scorer.models.versions)

    def _served(self) -> Served:
        return Served.of(self.settings.mlflow_store, self.scorer.models.versions)

    def _serving(self, field: str) -> Scorer:
        """The scorer, or, while no model is loaded yet, the 503 saying why and when to try again."""
        scorer = self.scorer
        if not scorer.models.versions:
            reason = STATUS["reason"] or "no model is loaded yet"
            raise RequestError(field, reason, 503, retry_after(self.settings.registry_retry_s))
        return scorer

    # /churn, /propensity, /clv and /similar_items read a profile row or a fitted table: about a millisecond
    # of CPU, answered on the event loop. /recommend, /due and /profile read the customer's whole history
    # and /events rebuilds a profile: their cost grows with the history, so they are answered in
    # processes of their own (`service.processes`), and one long history never stalls the loop.
    @bentoml.api
    async def churn(self, customer_ids: CustomerIds) -> ChurnAnswer:
        """Churn probability, risk tier, the top 3 reasons in words and the top 5 SHAP contributions per customer."""
        return _answer(ChurnAnswer, lambda: self._serving("customer_ids").churn(customer_ids))

    @bentoml.api
    async def propensity(self, customer_ids: CustomerIds) -> PropensityAnswer:
        """Probability of a purchase in the horizon, overall and per top category."""
        return _answer(PropensityAnswer, lambda: self._serving("customer_ids").propensity(customer_ids))

    @bentoml.api
    async def clv(self, customer_ids: CustomerIds) -> ClvAnswer:
        """Value over the model's horizon (expected orders, spend and its 80% interval), the chance the
        customer is still active and their next purchase as dates, with reasons, per customer."""
        return _answer(ClvAnswer, lambda: self._serving("customer_ids").clv(customer_ids))

    @bentoml.api(input_spec=RecommendRequest)
    async def recommend(self, **request: Any) -> RecommendAnswer:
        """The customer's top-k products with a score and a reason (cold start: the most popular)."""
        rules = RecommendRequest.rules_of(request)
        return await self._answer_elsewhere(
            RecommendAnswer, "recommend", "customer_id", request["customer_id"], k=request["k"], rules=rules
        )

    @bentoml.api
    async def similar_items(self, product_id: str, k: Count = 10) -> SimilarItemsAnswer:
        """The products most often bought by the same customers."""
        return _answer(SimilarItemsAnswer, lambda: self._serving("product_id").similar_items(product_id, k))

    @bentoml.api
    async def due(self, customer_id: str, within_days: WithinDays = 30) -> DueAnswer:
        """What the customer is due to buy next within the days given, soonest first, each with a reason."""
        # needs no model (only the store's product cycles): answered while none is loaded too
        return await self._answer_elsewhere(DueAnswer, "due", None, customer_id, within_days)

    @bentoml.api
    async def profile(self, customer_id: str) -> ProfileAnswer:
        """The customer's feature snapshot, segment, lifecycle stage, every score and top recommendations."""
        return await self._answer_elsewhere(ProfileAnswer, "profile", "customer_id", customer_id)

    @bentoml.api
    async def events(
        # each list may be left out, but not sent as null (typed `Rows`: a default is not validated)
        self,
        transactions: Rows = None,  # type: ignore[assignment]
        events: Rows = None,  # type: ignore[assignment]
        customers: Rows = None,  # type: ignore[assignment]
    ) -> EventsAnswer:
        """Validate and store contract rows; the affected customers' profiles are rebuilt at once."""
        sent = {"customers": customers, "transactions": transactions, "events": events}
        tables = {name: rows for name, rows in sent.items() if rows is not None}
        return await self._answer_elsewhere(EventsAnswer, "events", None, tables)

    async def _answer_elsewhere(
        self, answer_model: type[BaseModel], method: str, needs_models: str | None, *args: Any, **kwargs: Any
    ) -> BaseModel | JSONResponse:
        """`Scorer.<method>` answered in its process (on the thread pool with SCORING_PROCESSES=0), as
        the endpoint's model or a RequestError's body. `needs_models`: the field a 503 names while no
        model is loaded (None: the call needs none)."""
        try:
            if needs_models is not None:
                self._serving(needs_models)
            if self.processes is None:
                call = functools.partial(getattr(self.scorer, method), *args, **kwargs)
                answer = await anyio.to_thread.run_sync(call)
            else:
                answer = await self.processes.call(method, self._served(), *args, **kwargs)
            return answer_model.model_validate(answer)
        except RequestError as error:
            return JSONResponse(error.as_dict(), status_code=error.status, headers=error.headers or None)

    @bentoml.api
    def reload(self) -> ReloadAnswer:
        """Load the registry's current champions when they changed; keep the current ones if it fails."""
        result = self.reload_champions()
        if result.get("error"):
            return JSONResponse(ReloadAnswer.model_validate(result).model_dump(), status_code=503)
        return ReloadAnswer.model_validate(result)

    # -- reloading ------------------------------------------------------------------------------
    def reload_champions(self) -> dict[str, Any]:
        """Serve the registry's current champions: those whose version changed are loaded, and one that
        cannot be loaded leaves its family on the current model (or without one) while the others
        change. The answer says what is served and, when something could not be loaded, why."""
        with self._reload_lock:
            current = dict(self.scorer.models.versions)
            try:
                versions = champion_versions(self.settings.mlflow_store)
                # compared as dicts: a newly registered champion of a missing model (a new key) is a change too
                loaded = (
                    load_changed_champions(self.settings.mlflow_store, versions, self.scorer.models)
                    if versions != current
                    else None
                )
            except Exception as error:  # the registry failed: keep serving what we have
                return self._reload_failed(current, str(error))
            if loaded is not None and loaded.models.versions != current:
                # the profiles do not depend on the models: same store; in-flight requests finish on the old Scorer
                old = self.scorer
                self.scorer = Scorer(loaded.models, old.store, old.state, max_batch=self.settings.max_batch)
                were = f"were {current}" if current else f"profiles from {self.settings.store_path}"
                logger.info("now serving model versions %s (%s)", loaded.models.versions, were)
                if not current:  # the first models, maybe loaded by the retry thread after start-up
                    keep_out_of_collections()
            report_models(self.scorer.models)
            served = dict(self.scorer.models.versions)
            if loaded is not None and loaded.failures:
                failed = "; ".join(loaded.failures.values())
                return {**self._reload_failed(served, failed), "reloaded": served != current}
            STATUS["registry"] = {"ok": True, "error": None, "checked_at": time.time()}
            STATUS["reason"] = None
            return {"reloaded": served != current, "model_versions": served, "error": None}

    def _reload_failed(self, serving: dict[str, str], error: str) -> dict[str, Any]:
        """Say in /readyz (and once in the log) that champions could not be loaded, and what is served."""
        if error != STATUS["registry"]["error"]:  # once per new failure, not at every retry
            logger.error("champion reload failed, serving %s: %s", serving or "no model", error)
        STATUS["registry"] = {"ok": False, "error": error, "checked_at": time.time()}
        STATUS["reason"] = (
            None
            if serving
            else f"no model is loaded yet ({error}); the registry is tried again every "
            f"{self.settings.registry_retry_s:g} s"
        )
        return {"reloaded": False, "model_versions": serving, "error": error}

    def _check_periodically(self) -> None:
        """Until a champion is loaded, try the registry every SCORING_REGISTRY_RETRY_S; then, when
        SCORING_RELOAD_INTERVAL_S > 0, look for a new champion that often."""
        while True:
            ready = self.__is_ready__()
            if ready and self.settings.reload_interval_s <= 0:
                return
            time.sleep(self.settings.reload_interval_s if ready else self.settings.registry_retry_s)
            self.reload_champions()


def endpoint_fields(service) -> dict[str, frozenset[str]]:
    """Each endpoint's path and the top-level keys its body may have."""
    return {api.route: frozenset(api.input_spec.model_fields) for api in service.apis.values()}


# BentoML's request timeout, with its timer cancelled when the request ends (`service.request_timeout`)
cancel_request_timers()
# the first added wraps the others: every request has its id before anything is logged, and the key
# is checked before anything about the body is said
CustomerIntelligence.add_asgi_middleware(RequestIds)
CustomerIntelligence.add_asgi_middleware(ServiceMiddleware)
CustomerIntelligence.add_asgi_middleware(RequestShape, fields_by_path=endpoint_fields(CustomerIntelligence))
