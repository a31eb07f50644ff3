"""The scoring service's logic: plain values in, plain JSON-ready dicts out (no BentoML here).

`Scorer` holds the champion models, the online profile store and the reference tables the profiles
were materialised with. Per request it reads feature rows from the store as one numpy matrix in each
model's feature order and calls the boosters directly (no DataFrame on the scoring path).

Who gets what:
- a customer with a profile (`known_customer: true`) is scored on it; churn applies only to the
  churn population (a purchase within the lookback), as in `pipelines.score`: anyone else gets
  `churn_probability: null` and risk tier "not_applicable";
- a customer without a profile gets the cold-start answer (`known_customer: false`): the mean
  prediction over the stored profiles (churn: over its population), no reasons, and the
  recommender's cold-start list (most popular products).

POST /events rows pass `features.small_batches.check_rows`: the batch pipeline's rules and reasons,
evaluated cell by cell. A customer id first seen in transactions or events becomes a customer (a
`customers` row may come with it, and then must pass validation too, or its rows are rejected with
it). Accepted rows are appended to the store and the affected customers' profiles are rebuilt
with `build_customer_features`, from their full stored history, at `as_of` = the materialised
as_of, or just after their latest record when that is later.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import pickle
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features import schema as s
from features.customer import FeatureWindows, History, ReferenceTables, build_customer_features
from features.small_batches import check_rows
from features.validation import ContractError
from models.outcome import OutcomeModel
from service.store import HISTORY_TABLES, ProfileStore

# Risk tiers by churn probability, highest first: the first tier whose floor the probability reaches.
RISK_TIERS: tuple[tuple[float, str], ...] = ((0.6, "high"), (0.3, "medium"), (0.0, "low"))
NOT_APPLICABLE = "not_applicable"
TOP_REASONS = 5
PROFILE_RECOMMENDATIONS = 5
# Cold-start base rates are the mean prediction over at most this many stored profiles.
COLD_START_SAMPLE = 20_000
CHURN, PROPENSITY, RECOMMENDER = "churn", "propensity", "recommender"

# Words for feature columns whose name alone reads badly; the rest are derived from the name.
FEATURE_LABELS = {
    s.DAYS_SINCE_LAST_PURCHASE: "days since the last purchase",
    s.DAYS_SINCE_FIRST_PURCHASE: "days since the first purchase",
    s.RECENCY_OVER_TENURE: "days since the last purchase / days as a customer",
    s.TENURE_DAYS: "days as a customer",
    s.OVERDUE_RATIO: "days since the last purchase / usual gap between orders",
    s.BGNBD_P_ALIVE: "probability still active (BG/NBD)",
    s.BGNBD_EXPECTED_PURCHASES_90D: "expected purchases in the next 90 days (BG/NBD)",
    s.ORDERS_PER_30D: "orders per 30 days",
    s.SPEND_TREND_90D: "spend trend over the last 90 days",
    s.NPS_LATEST: "latest NPS answer",
    s.NPS_MEAN: "mean NPS answer",
    s.MARKETING_OPT_IN: "accepts marketing",
}
_WINDOWED = re.compile(r"(?P<name>.+)_(?P<days>\d+)d")


def describe_feature(column: str) -> str:
    """A feature column in words: 'spend_sum_90d' -> 'spend sum (last 90 days)'."""
    if column in FEATURE_LABELS:
        return FEATURE_LABELS[column]
    for prefix, words in (("category_share_", "share of purchases in "), ("channel_share_", "share of orders via ")):
        if column.startswith(prefix):
            return words + column[len(prefix) :].replace("_", " ")
    windowed = _WINDOWED.fullmatch(column)
    if windowed:
        return f"{windowed['name'].replace('_', ' ')} (last {windowed['days']} days)"
    return column.replace("_", " ")


def risk_tier(probability: float) -> str:
    return next(name for floor, name in RISK_TIERS if probability >= floor)


class RequestError(ValueError):
    """A request the service refuses: the offending field, why, and the HTTP status to answer with."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status

    def as_dict(self) -> dict[str, str]:
        return {"error": str(self), "field": self.field}


@dataclass(frozen=True)
class ServingModels:
    """The models the service answers with, and their registry versions."""

    churn: OutcomeModel
    propensity: OutcomeModel
    recommender: Any  # models.recommender.TwoStageRecommender, or None when none is registered
    versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MaterializedState:
    """What the profiles in the store were built with (written by `pipelines.materialize`)."""

    reference: ReferenceTables
    windows: FeatureWindows
    as_of: pd.Timestamp
    churn_lookback_days: int = 365


# Meta keys of the materialised state in the profile store.
REFERENCE_KEY = "reference_tables"  # base64 of the pickled ReferenceTables
WINDOWS_KEY = "feature_windows"
MATERIALIZED_AS_OF_KEY = "materialized_as_of"
LOOKBACK_KEY = "churn_lookback_days"


def write_materialized_state(store: ProfileStore, state: MaterializedState) -> None:
    store.set_meta(
        {
            REFERENCE_KEY: base64.b64encode(pickle.dumps(state.reference)).decode("ascii"),
            WINDOWS_KEY: json.dumps(
                {
                    "windows_days": state.windows.windows_days,
                    "behaviour_windows_days": state.windows.behaviour_windows_days,
                }
            ),
            MATERIALIZED_AS_OF_KEY: state.as_of.isoformat(),
            LOOKBACK_KEY: str(state.churn_lookback_days),
        }
    )


def read_materialized_state(store: ProfileStore) -> MaterializedState | None:
    """The state `pipelines.materialize` left in the store, or None when it never ran there."""
    encoded = store.get_meta(REFERENCE_KEY)
    if encoded is None:
        return None
    windows = json.loads(store.get_meta(WINDOWS_KEY) or "{}")
    return MaterializedState(
        # the store is written by our own pipeline, so its pickle is trusted like a registered model's
        reference=pickle.loads(base64.b64decode(encoded)),
        windows=FeatureWindows(
            tuple(windows.get("windows_days", FeatureWindows.windows_days)),
            tuple(windows.get("behaviour_windows_days", FeatureWindows.behaviour_windows_days)),
        ),
        as_of=pd.Timestamp(store.get_meta(MATERIALIZED_AS_OF_KEY)),
        churn_lookback_days=int(store.get_meta(LOOKBACK_KEY) or 365),
    )


def _clean(value: Any) -> Any:
    """A JSON-safe scalar: NaN and NA become None, numpy numbers plain Python."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


class Scorer:
    """Answers the service's endpoints from the models and the profile store (thread-safe)."""

    def __init__(
        self,
        models: ServingModels,
        store: ProfileStore,
        state: MaterializedState,
        max_batch: int = 1000,
        now: Callable[[], pd.Timestamp] | None = None,
    ) -> None:
        predict_on_one_thread(models)
        self.models = models
        self.store = store
        self.state = state
        self.max_batch = max_batch
        self._now = now or (lambda: pd.Timestamp.now("UTC").tz_localize(None))
        # one /events at a time per process, on top of the store's guard (which alone would be correct):
        # threads queued on this lock start the moment it is free, while SQLite's busy handler polls with
        # sleeps growing to 100 ms; other worker processes still queue on the store's guard
        self._events_lock = threading.Lock()
        population = [s.DAYS_SINCE_LAST_PURCHASE, s.ORDERS_COUNT_TOTAL]
        self._columns = list(
            dict.fromkeys([*models.churn.feature_names, *models.propensity.feature_names, *population])
        )
        position = {column: i for i, column in enumerate(self._columns)}
        self._churn_columns = np.array([position[c] for c in models.churn.feature_names])
        self._propensity_columns = np.array([position[c] for c in models.propensity.feature_names])
        self._recency, self._orders = position[s.DAYS_SINCE_LAST_PURCHASE], position[s.ORDERS_COUNT_TOTAL]
        self._category_names = {s.category_purchase_probability(name): name for name in state.reference.categories} | {
            s.category_purchase_probability(name): name for name in state.reference.top_categories
        }
        self._descriptions = {c: describe_feature(c) for c in models.churn.feature_names}
        self._product_ids = state.reference.product_index.astype("str")  # reference ids for /events
        self.base_rates = self._base_rates()

    # -- shared pieces --------------------------------------------------------------------------
    def _ids(self, customer_ids: Sequence[str], name: str = "customer_ids") -> list[str]:
        if len(customer_ids) > self.max_batch:
            raise RequestError(name, f"at most {self.max_batch} ids per request, got {len(customer_ids)}", 413)
        return [str(customer_id) for customer_id in customer_ids]

    def _rows(self, ids: list[str]) -> tuple[dict[str, int], np.ndarray, list[pd.Timestamp]]:
        found, matrix, as_of = self.store.get_numbers(ids, self._columns)
        return {customer_id: i for i, customer_id in enumerate(found)}, matrix, as_of

    def _in_churn_population(self, matrix: np.ndarray) -> np.ndarray:
        return (matrix[:, self._recency] < self.state.churn_lookback_days) & (matrix[:, self._orders] > 0)

    def _base_rates(self) -> dict[str, float]:
        """Mean predictions over (a sample of) the stored profiles: the cold-start answer."""
        _, matrix, _ = self._rows(self.store.profile_ids(limit=COLD_START_SAMPLE))
        if not len(matrix):
            return {}
        rates = {
            output: float(np.mean(values))
            for output, values in self.models.propensity.predict_matrix(matrix[:, self._propensity_columns]).items()
        }
        in_population = self._in_churn_population(matrix)
        if in_population.any():
            churn = self.models.churn.predict_matrix(matrix[in_population][:, self._churn_columns])
            rates[s.CHURN_PROBABILITY] = float(np.mean(churn[self.models.churn.primary_output]))
        return rates

    def _category_list(self, outputs: Mapping[str, float]) -> list[dict[str, Any]]:
        categories = [
            {"category": self._category_names.get(name, name), "probability": float(probability)}
            for name, probability in outputs.items()
            if name != s.PURCHASE_PROBABILITY
        ]
        return sorted(categories, key=lambda item: -item["probability"])

    # -- endpoints ------------------------------------------------------------------------------
    def churn(self, customer_ids: Sequence[str]) -> dict[str, Any]:
        ids = self._ids(customer_ids)
        row_of, matrix, _ = self._rows(ids)
        model = self.models.churn
        version = self.models.versions.get(CHURN)
        features = matrix[:, self._churn_columns]
        probability = model.predict_matrix(features)[model.primary_output] if len(features) else np.zeros(0)
        in_population = self._in_churn_population(matrix)
        explained_rows = np.flatnonzero(in_population)
        explained = model.explain_matrix(features[explained_rows], TOP_REASONS) if len(explained_rows) else []
        reasons = dict(zip(explained_rows.tolist(), explained, strict=True))
        results = []
        for customer_id in ids:
            row = row_of.get(customer_id)
            if row is None:
                base = self.base_rates.get(s.CHURN_PROBABILITY)
                result = {
                    s.CHURN_PROBABILITY: base,
                    "risk_tier": risk_tier(base) if base is not None else NOT_APPLICABLE,
                    "reasons": [],
                    "known_customer": False,
                }
            elif not in_population[row]:
                result = {s.CHURN_PROBABILITY: None, "risk_tier": NOT_APPLICABLE, "reasons": [], "known_customer": True}
            else:
                p = float(probability[row])
                result = {
                    s.CHURN_PROBABILITY: p,
                    "risk_tier": risk_tier(p),
                    "reasons": [
                        {"feature": self._descriptions[name], "column": name, "value": _clean(value), "impact": impact}
                        for name, value, impact in reasons[row]
                    ],
                    "known_customer": True,
                }
            results.append({s.CUSTOMER_ID: customer_id, **result, "model_version": version})
        return {"results": results}

    def propensity(self, customer_ids: Sequence[str]) -> dict[str, Any]:
        ids = self._ids(customer_ids)
        row_of, matrix, _ = self._rows(ids)
        model = self.models.propensity
        outputs = model.predict_matrix(matrix[:, self._propensity_columns]) if len(matrix) else {}
        version = self.models.versions.get(PROPENSITY)
        results = []
        for customer_id in ids:
            row = row_of.get(customer_id)
            if row is None:
                values = {output: self.base_rates.get(output) for output in model.outputs}
            else:
                values = {output: float(outputs[output][row]) for output in model.outputs}
            results.append(
                {
                    s.CUSTOMER_ID: customer_id,
                    s.PURCHASE_PROBABILITY: values.get(s.PURCHASE_PROBABILITY),
                    "top_categories": self._category_list({k: v for k, v in values.items() if v is not None}),
                    "known_customer": row is not None,
                    "model_version": version,
                }
            )
        return {"results": results}

    def recommend(
        self,
        customer_id: str,
        k: int = 10,
        exclude_purchased: bool = True,
        include_categories: Sequence[str] | None = None,
        exclude_categories: Sequence[str] | None = None,
        include_restock: bool = True,
        exclude_product_ids: Sequence[str] | None = None,
        max_per_category: int | None = None,
    ) -> dict[str, Any]:
        recommender = self.models.recommender
        if recommender is None:
            raise RequestError("customer_id", "no recommender model is registered", 503)
        if k > self.max_batch:
            raise RequestError("k", f"at most {self.max_batch} items per request, got {k}", 413)
        known_categories = set(recommender.stage1_.catalogue.categories)
        for name, wanted in (("include_categories", include_categories), ("exclude_categories", exclude_categories)):
            unknown = sorted(set(wanted or ()) - known_categories)
            if unknown:
                raise RequestError(
                    name,
                    f"unknown categories {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known_categories))}",
                )
        rules = {
            "exclude_purchased": exclude_purchased,
            "include_restock": include_restock,
            "include_categories": include_categories or None,
            "exclude_categories": exclude_categories or None,
            "exclude_product_ids": exclude_product_ids or None,
            "max_per_category": max_per_category,
        }
        customer_id = str(customer_id)
        known = self.store.get_numbers([customer_id], [s.ORDERS_COUNT_TOTAL])[0] != []
        transactions = self.store.history(customer_id)[s.TRANSACTIONS] if known else None
        if transactions is not None and len(transactions) and hasattr(recommender, "recommend_for_history"):
            ranked = recommender.recommend_for_history(customer_id, transactions, None, k=k, **rules)
        else:
            ranked = recommender.recommend([customer_id], k=k, **rules)
        items = [
            {"product_id": str(product), "score": float(score), "reason": str(reason)}
            for product, score, reason in zip(
                ranked[s.PRODUCT_ID], ranked[s.RECOMMENDATION_SCORE], ranked[s.RECOMMENDATION_REASON], strict=True
            )
        ]
        return {
            s.CUSTOMER_ID: customer_id,
            "items": items,
            "known_customer": known,
            "model_version": self.models.versions.get(RECOMMENDER),
        }

    def similar_items(self, product_id: str, k: int = 10) -> dict[str, Any]:
        recommender = self.models.recommender
        if recommender is None:
            raise RequestError("product_id", "no recommender model is registered", 503)
        if k > self.max_batch:
            raise RequestError("k", f"at most {self.max_batch} items per request, got {k}", 413)
        try:
            similar = recommender.similar_items(str(product_id), k)
        except KeyError:
            raise RequestError("product_id", f"unknown product {product_id!r}", 404) from None
        from models.recommender import SIMILARITY

        items = [
            {"product_id": str(product), "score": float(score), "reason": str(reason)}
            for product, score, reason in zip(
                similar[s.PRODUCT_ID], similar[SIMILARITY], similar[s.RECOMMENDATION_REASON], strict=True
            )
        ]
        return {"product_id": str(product_id), "items": items, "model_version": self.models.versions.get(RECOMMENDER)}

    def profile(self, customer_id: str) -> dict[str, Any]:
        customer_id = str(customer_id)
        stored = self.store.get_profile(customer_id)
        churn = self.churn([customer_id])["results"][0]
        propensity = self.propensity([customer_id])["results"][0]
        recommendations = (
            self.recommend(customer_id, k=PROFILE_RECOMMENDATIONS)["items"] if self.models.recommender else []
        )
        values = stored.values if stored else {}
        return {
            s.CUSTOMER_ID: customer_id,
            "known_customer": stored is not None,
            s.AS_OF: stored.as_of.isoformat() if stored else None,
            s.RFM_SEGMENT: _clean(values.get(s.RFM_SEGMENT)),
            s.LIFECYCLE_STAGE: _clean(values.get(s.LIFECYCLE_STAGE)),
            "features": {name: _clean(value) for name, value in values.items() if name != s.AS_OF},
            "scores": {
                s.CHURN_PROBABILITY: churn[s.CHURN_PROBABILITY],
                "risk_tier": churn["risk_tier"],
                "churn_reasons": churn["reasons"],
                s.PURCHASE_PROBABILITY: propensity[s.PURCHASE_PROBABILITY],
                "top_categories": propensity["top_categories"],
            },
            "recommendations": recommendations,
            "model_versions": dict(self.models.versions),
        }

    def events(self, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
        """Validate, store and apply contract rows: {"accepted": n, "rejected": [{table, index, reason}]}."""
        raw = {name: pd.DataFrame.from_records(list(rows)) for name, rows in tables.items() if rows}
        total = sum(len(frame) for frame in raw.values())
        if total > self.max_batch:
            raise RequestError(next(iter(raw)), f"at most {self.max_batch} rows per request, got {total}", 413)
        if not raw:
            return {"accepted": 0, "rejected": [], "customers_updated": []}
        result = self._validate(raw)
        rejected = [
            {"table": name, "index": int(index), "reason": str(reason)}
            for name, frame in result.quarantined.items()
            for index, reason in zip(frame[s.ROW_NUMBER], frame[s.REASONS], strict=True)
        ]
        accepted = {name: frame for name, frame in result.accepted.items() if len(frame)}
        affected = _customer_ids(accepted)
        if affected:
            # from reading their history to writing their profiles no other worker touches these
            # customers (no lost update, no order line stored twice); the append and the profiles
            # commit together, or not at all
            with self._events_lock, self.store.guarded(affected):
                stored = self.store.histories(affected)
                accepted, repeated = _drop_stored_order_lines(accepted, stored)
                rejected += repeated
                if accepted:
                    self.store.append_rows(accepted)
                    self._rebuild(affected, stored, accepted)
        rejected.sort(key=lambda item: (item["table"], item["index"]))
        return {
            "accepted": sum(len(frame) for frame in accepted.values()),
            "rejected": rejected,
            "customers_updated": affected if accepted else [],
        }

    def _validate(self, raw: dict[str, pd.DataFrame]):
        unknown = sorted(set(raw) - set(HISTORY_TABLES))
        if unknown:
            raise RequestError(unknown[0], f"not a table that /events accepts ({', '.join(HISTORY_TABLES)})")
        # A customer id seen first in transactions or events becomes a customer; one sent with a
        # customers row must have that row accepted.
        sent_customers = set(raw[s.CUSTOMERS][s.CUSTOMER_ID].astype(str)) if s.CUSTOMERS in raw else set()
        referenced = {
            str(value)
            for name in (s.TRANSACTIONS, s.EVENTS)
            if name in raw and s.CUSTOMER_ID in raw[name]
            for value in raw[name][s.CUSTOMER_ID].dropna()
        }
        reference_ids = {
            s.CUSTOMERS: pd.Index(sorted(referenced - sent_customers), dtype="str"),
            s.PRODUCTS: self._product_ids,
        }
        try:
            return check_rows(raw, self._now(), reference_ids)
        except ContractError as error:
            raise RequestError(error.table or "body", error.problem) from None

    def _rebuild(
        self, customer_ids: list[str], stored: dict[str, pd.DataFrame], accepted: dict[str, pd.DataFrame]
    ) -> None:
        """Rebuild and store the profiles of these customers from their stored plus newly accepted rows."""
        tables = {
            name: _stored_and_accepted(stored.get(name), accepted.get(name))
            for name in HISTORY_TABLES
            if name in stored or name in accepted
        }
        history = History(tables[s.CUSTOMERS], tables[s.TRANSACTIONS], tables[s.EVENTS])
        latest = _latest_record(history)
        floor = self.state.as_of
        as_of_by_customer = {
            customer_id: max(floor, latest[customer_id] + pd.Timedelta(nanoseconds=1))
            if customer_id in latest
            else floor
            for customer_id in customer_ids
        }
        as_ofs = sorted(set(as_of_by_customer.values()))
        for as_of in as_ofs:
            group = [customer_id for customer_id, value in as_of_by_customer.items() if value == as_of]
            # the history holds these customers only: with one as_of for all, no need to select them
            records = history if len(as_ofs) == 1 else history.for_customers(group)
            profiles = build_customer_features(records, as_of, self.state.reference, self.state.windows)
            if len(profiles):
                self.store.put_profiles(profiles, as_of)


def predict_on_one_thread(models: ServingModels) -> None:
    """Make the outcome models' boosters predict on one OpenMP thread.

    A request scores one to a few hundred rows, where starting OpenMP threads costs far more than the
    trees: measured 11 ms instead of about 0.1 ms for a one-row predict on a busy 2-core machine (the
    recommender's own `_predict` does the same for small inputs). The models are this service's own
    copies, loaded from the registry for it.
    """
    for model in (models.churn, models.propensity):
        for classifier in model.classifiers.values():
            booster = getattr(classifier, "booster_", None)
            if booster is not None and not isinstance(booster.predict, functools.partial):
                booster.predict = functools.partial(booster.predict, num_threads=1)


def _customer_ids(tables: Mapping[str, pd.DataFrame]) -> list[str]:
    ids: set[str] = set()
    for frame in tables.values():
        ids.update(frame[s.CUSTOMER_ID].astype(str))
    return sorted(ids)


def _drop_stored_order_lines(
    accepted: dict[str, pd.DataFrame], stored: Mapping[str, pd.DataFrame]
) -> tuple[dict[str, pd.DataFrame], list[dict[str, Any]]]:
    """Order lines whose (order_id, product_id) is already stored are rejected: a retried call adds nothing."""
    lines = accepted.get(s.TRANSACTIONS)
    before = stored.get(s.TRANSACTIONS)
    if lines is None or before is None or before.empty:
        return accepted, []
    key = s.TRANSACTIONS_TABLE.unique_key
    # plain sets of string tuples: a customer's history is small, and pandas index builds cost milliseconds
    seen = set(_key_tuples(before, key))
    repeated = [line in seen for line in _key_tuples(lines, key)]
    if not any(repeated):
        return accepted, []
    # accepted frames keep the input's row positions as their index
    rejected = [
        {"table": s.TRANSACTIONS, "index": int(index), "reason": f"{', '.join(key)}: this order line is already stored"}
        for index, is_repeated in zip(lines.index.tolist(), repeated, strict=True)
        if is_repeated
    ]
    kept = dict(accepted)
    kept[s.TRANSACTIONS] = lines[~np.array(repeated)]
    if kept[s.TRANSACTIONS].empty:
        del kept[s.TRANSACTIONS]
    return kept, rejected


def _key_tuples(frame: pd.DataFrame, key: Sequence[str]) -> Iterator[tuple[str, ...]]:
    """The frame's values of the key columns, row by row, as strings."""
    return zip(*([str(value) for value in frame[column].tolist()] for column in key), strict=True)


def _stored_and_accepted(stored: pd.DataFrame | None, accepted: pd.DataFrame | None) -> pd.DataFrame:
    """A table's stored rows followed by its accepted ones, on a fresh 0..n-1 index.

    The stored frame alone is returned as it is (read for this call, on a RangeIndex already): most
    batches touch one table, and a concat of the others would cost about a quarter of a millisecond each.
    """
    if accepted is None or (stored is not None and accepted.empty):
        return stored
    if stored is None or stored.empty:
        # accepted frames keep the input's row positions as their index
        return accepted.reset_index(drop=True)
    return pd.concat([stored, accepted], ignore_index=True)


def _latest_record(history: History) -> dict[str, pd.Timestamp]:
    """Each customer's latest transaction, event or signup time (a few rows: plain Python is fastest)."""
    latest: dict[str, pd.Timestamp] = {}
    for frame, column in (
        (history.customers, s.SIGNUP_DATE),
        (history.transactions, s.TIMESTAMP),
        (history.events, s.TIMESTAMP),
    ):
        for customer_id, time in zip(frame[s.CUSTOMER_ID].tolist(), frame[column].tolist(), strict=True):
            if not pd.isna(time) and (customer_id not in latest or time > latest[customer_id]):
                latest[str(customer_id)] = pd.Timestamp(time)
    return latest
