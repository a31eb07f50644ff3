"""The scoring service's logic: plain values in, plain JSON-ready dicts out (no BentoML here).

`Scorer` holds the champion models, the online profile store and the reference tables the profiles
were materialised with. Per request it reads feature rows from the store as one numpy matrix in each
model's feature order and calls the boosters directly (no DataFrame on the scoring path).

Who gets what:
- a customer with a profile (`known_customer: true`) is scored on it; churn applies only to the
  churn population (`features.population`: a purchase within the lookback), as in training and
  `pipelines.score`: anyone else gets `churn_probability: null` and risk tier "not_applicable";
- a customer without a profile gets the cold-start answer (`known_customer: false`): the mean
  prediction over the stored profiles (churn: over its population), no reasons, and the
  recommender's cold-start list (most popular products).

Any non-empty subset of the champions can be served: an endpoint whose model has no champion answers
503 saying how to train it (`missing_model_error`), and /profile leaves that model's scores empty.

POST /events is `service.events.EventWriter`'s: the scorer reads what it wrote.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features import schema as s
from features.population import POPULATION_COLUMNS, in_churn_population
from features.segments import SEGMENT_SOURCE_COLUMNS, segment_columns
from models.due import due_items
from models.explanations import GroupedContributions, describe_feature, explain_rows_in_words, typical_by_segment
from models.names import CHURN, CLV, MODEL_NAMES, OUTCOME_MODELS, PROPENSITY, RECOMMENDER
from models.outcome import OutcomeModel
from models.recommender import SIMILARITY, RecommendationRules, TwoStageRecommender
from models.value_model import SUMMARY_FEATURES, CustomerValueModel, next_purchase_dates, value_reasons
from pipelines.cli import train_command
from pipelines.store import ProfileStore
from pipelines.store.codec import json_value
from pipelines.store.state import MaterializedState
from service.errors import RequestError
from service.events import EventWriter

# Risk tiers by churn probability, highest first: the first tier whose floor the probability reaches.
RISK_TIERS: tuple[tuple[float, str], ...] = ((0.6, "high"), (0.3, "medium"), (0.0, "low"))
NOT_APPLICABLE = "not_applicable"
TOP_REASONS = 5
PROFILE_RECOMMENDATIONS = 5
# Cold-start base rates are the mean prediction over at most this many stored profiles.
COLD_START_SAMPLE = 20_000


# /clv answers the value columns and the next purchase as ISO dates; its reasons quote these columns.
VALUE_ANSWER_COLUMNS = (*s.VALUE_COLUMNS, s.NEXT_PURCHASE_DATE, s.NEXT_PURCHASE_LOW, s.NEXT_PURCHASE_HIGH)
VALUE_REASON_COLUMNS = (*SUMMARY_FEATURES, s.ORDER_VALUE_MEAN, s.DAYS_SINCE_LAST_PURCHASE)


def _json_number(value: Any) -> Any:
    """A value column as JSON: null for missing, an ISO date for a date, else a float."""
    if value is None or pd.isna(value):
        return None
    if isinstance(value, np.datetime64 | pd.Timestamp):
        return str(np.datetime64(value, "D"))
    return float(value)


def risk_tier(probability: float) -> str:
    return next(name for floor, name in RISK_TIERS if probability >= floor)


def missing_model_error(model_name: str, field: str) -> RequestError:
    """The 503 of an endpoint whose model has no champion: which model, and how to get one served."""
    return RequestError(
        field,
        f"no {model_name} model is registered; train it with {train_command([model_name])} and POST /reload",
        503,
    )


@dataclass(frozen=True)
class ServingModels:
    """The models the service answers with (None: no champion registered), and their registry versions."""

    churn: OutcomeModel | None
    propensity: OutcomeModel | None
    recommender: TwoStageRecommender | None
    clv: CustomerValueModel | None = None
    versions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, models: Mapping[str, Any], versions: Mapping[str, str]) -> ServingModels:
        """The served models from a model name -> model mapping (a family not in it has no champion)."""
        return cls(
            churn=models.get(CHURN),
            propensity=models.get(PROPENSITY),
            recommender=models.get(RECOMMENDER),
            clv=models.get(CLV),
            versions=dict(versions),
        )

    def outcome_models(self) -> dict[str, OutcomeModel]:
        """The outcome models that are served, by name."""
        return {name: getattr(self, name) for name in OUTCOME_MODELS if getattr(self, name) is not None}

    @property
    def missing(self) -> list[str]:
        """The model families without a champion, in `models.names` order."""
        return [name for name in MODEL_NAMES if getattr(self, name) is None]


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
        self.event_writer = EventWriter(
            store, state, max_batch, now or (lambda: pd.Timestamp.now("UTC").tz_localize(None))
        )
        outcome_models = models.outcome_models()
        feature_names = [name for model in outcome_models.values() for name in model.feature_names]
        self._columns = list(dict.fromkeys([*feature_names, *POPULATION_COLUMNS, *SEGMENT_SOURCE_COLUMNS]))
        position = {column: i for i, column in enumerate(self._columns)}
        # each served outcome model's features, as positions in the rows read from the store
        self._feature_columns = {
            name: np.array([position[c] for c in model.feature_names]) for name, model in outcome_models.items()
        }
        self._population_columns = [position[c] for c in POPULATION_COLUMNS]
        self._segment_columns = {c: position[c] for c in SEGMENT_SOURCE_COLUMNS}
        catalogue = state.reference.categories
        self._category_names = {
            s.category_purchase_probability(name, catalogue): name
            for name in (*state.reference.categories, *state.reference.top_categories)
        }
        # what the value model reads, and what its reasons quote, from the stored rows
        value_names = models.clv.feature_names if models.clv else []
        self._value_columns = list(dict.fromkeys([*value_names, *VALUE_REASON_COLUMNS]))
        category_scorer = models.propensity.category_scorer if models.propensity else None
        if category_scorer is not None:  # the names the model was trained with win
            self._category_names |= dict(zip(category_scorer.outputs, category_scorer.categories, strict=True))
        # how many categories /propensity lists per customer: as trained (every one for an older model)
        self._top_k = category_scorer.top_k if category_scorer is not None else None
        self._descriptions = {c: describe_feature(c) for c in models.churn.feature_names} if models.churn else {}
        self._grouped = GroupedContributions.of(models.churn.feature_names) if models.churn else None
        # the products a rule may name (a set built once: tens of thousands of ids)
        self._product_ids = frozenset(models.recommender.stage1_.catalogue.ids.tolist()) if models.recommender else None
        sample = self._rows(self.store.profile_ids(limit=COLD_START_SAMPLE))[1] if self._feature_columns else None
        self.base_rates = self._base_rates(sample)
        self.typical = self._typical_values(sample)

    # -- shared pieces --------------------------------------------------------------------------
    def _ids(self, customer_ids: Sequence[str], name: str = "customer_ids") -> list[str]:
        if len(customer_ids) > self.max_batch:
            raise RequestError(name, f"at most {self.max_batch} ids per request, got {len(customer_ids)}", 413)
        return [str(customer_id) for customer_id in customer_ids]

    def _rows(self, ids: list[str]) -> tuple[dict[str, int], np.ndarray, list[pd.Timestamp]]:
        found, matrix, as_of = self.store.get_numbers(ids, self._columns)
        return {customer_id: i for i, customer_id in enumerate(found)}, matrix, as_of

    def _in_churn_population(self, matrix: np.ndarray) -> np.ndarray:
        recency, orders = (matrix[:, column] for column in self._population_columns)
        return in_churn_population(recency, orders, self.state.churn_lookback_days)

    def _model(self, model_name: str, field: str) -> Any:
        """The served model of this family, or the 503 saying it has no champion."""
        model = getattr(self.models, model_name)
        if model is None:
            raise missing_model_error(model_name, field)
        return model

    def _segments(self, matrix: np.ndarray) -> np.ndarray:
        """Each row's RFM segment, from its feature values and the materialised breakpoints."""
        columns = {name: matrix[:, position] for name, position in self._segment_columns.items()}
        return segment_columns(columns, self.state.reference.rfm_breakpoints)[s.RFM_SEGMENT]

    def _typical_values(self, matrix: np.ndarray | None) -> dict[str, dict[str, float]]:
        """segment -> the churn features' medians over the sampled profiles of the churn population in
        it: what "customers like them" means in a reason."""
        churn = self.models.churn
        if churn is None or matrix is None or not len(matrix):
            return {}
        in_population = self._in_churn_population(matrix)
        rows = matrix[in_population]
        return typical_by_segment(rows[:, self._feature_columns[CHURN]], self._segments(rows), churn.feature_names)

    def _base_rates(self, matrix: np.ndarray | None) -> dict[str, float]:
        """Mean predictions of the served outcome models over a sample of the stored profiles
        (`matrix`; None with only a recommender, which needs none): the cold-start answer."""
        if matrix is None or not len(matrix):
            return {}
        rates = {}
        propensity = self.models.propensity
        if propensity is not None:
            outputs = propensity.predict_matrix(matrix[:, self._feature_columns[PROPENSITY]])
            rates.update({output: float(np.mean(values)) for output, values in outputs.items()})
        churn = self.models.churn
        in_population = self._in_churn_population(matrix)
        if churn is not None and in_population.any():
            outputs = churn.predict_matrix(matrix[in_population][:, self._feature_columns[CHURN]])
            rates[s.CHURN_PROBABILITY] = float(np.mean(outputs[churn.primary_output]))
        return rates

    def _category_list(self, outputs: Mapping[str, float]) -> list[dict[str, Any]]:
        """Every category output as {category, probability}, most likely first (ties in output order)."""
        categories = [
            {"category": self._category_names.get(name, name), "probability": float(probability)}
            for name, probability in outputs.items()
            if name != s.PURCHASE_PROBABILITY
        ]
        return sorted(categories, key=lambda item: -item["probability"])

    # -- endpoints ------------------------------------------------------------------------------
    def churn(self, customer_ids: Sequence[str]) -> dict[str, Any]:
        model = self._model(CHURN, "customer_ids")
        ids = self._ids(customer_ids)
        row_of, matrix, _ = self._rows(ids)
        version = self.models.versions.get(CHURN)
        features = matrix[:, self._feature_columns[CHURN]]
        probability = model.predict_matrix(features)[model.primary_output] if len(features) else np.zeros(0)
        in_population = self._in_churn_population(matrix)
        explained = self._explain(model, features, matrix, np.flatnonzero(in_population))
        results = []
        for customer_id in ids:
            row = row_of.get(customer_id)
            if row is None:
                base = self.base_rates.get(s.CHURN_PROBABILITY)
                result = {
                    s.CHURN_PROBABILITY: base,
                    "risk_tier": risk_tier(base) if base is not None else NOT_APPLICABLE,
                    "reasons": [],
                    "contributions": [],
                    "known_customer": False,
                }
            elif not in_population[row]:
                result = {
                    s.CHURN_PROBABILITY: None,
                    "risk_tier": NOT_APPLICABLE,
                    "reasons": [],
                    "contributions": [],
                    "known_customer": True,
                }
            else:
                p = float(probability[row])
                result = {
                    s.CHURN_PROBABILITY: p,
                    "risk_tier": risk_tier(p),
                    **explained[row],
                    "known_customer": True,
                }
            results.append({s.CUSTOMER_ID: customer_id, **result, "model_version": version})
        return {"results": results}

    def _explain(
        self, model: OutcomeModel, features: np.ndarray, matrix: np.ndarray, rows: np.ndarray
    ) -> dict[int, dict[str, list]]:
        """row -> {"reasons": the top themes in words, "contributions": the top raw SHAP values}."""
        if not len(rows):
            return {}
        contributions = model.contributions_matrix(features[rows])
        top = model.explain_matrix(features[rows], TOP_REASONS, contributions)
        segments = self._segments(matrix[rows]).tolist()
        words = explain_rows_in_words(
            model.feature_names,
            features[rows],
            contributions,
            self._grouped,
            [self.typical.get(segment) for segment in segments],
            segments,
        )
        explained = {}
        for i, row in enumerate(rows.tolist()):
            raw = [
                {"feature": self._descriptions[name], "column": name, "value": json_value(value), "impact": impact}
                for name, value, impact in top[i]
            ]
            explained[row] = {"reasons": words[i], "contributions": raw}
        return explained

    def clv(self, customer_ids: Sequence[str]) -> dict[str, Any]:
        """Each customer's value over the model's horizon (expected orders, spend with its interval),
        the chance they are still a customer and their next purchase as dates, with reasons in words.
        Unknown customers and customers who never bought get nulls (nothing to extrapolate from)."""
        model = self._model(CLV, "customer_ids")
        ids = self._ids(customer_ids)
        found, matrix, as_ofs = self.store.get_numbers(ids, self._value_columns)
        # columns as views of the matrix: a frame's per-column costs were most of a request's
        values = model.predict_values(dict(zip(self._value_columns, matrix.T, strict=True)))
        values |= next_purchase_dates(values, np.array(as_ofs, dtype="datetime64[ns]"))
        row_of = {customer_id: i for i, customer_id in enumerate(found)}
        version = self.models.versions.get(CLV)
        results = []
        for customer_id in ids:
            row = row_of.get(customer_id)
            answer = dict.fromkeys(VALUE_ANSWER_COLUMNS)
            reasons: list[str] = []
            if row is not None:
                answer = {column: _json_number(values[column][row]) for column in VALUE_ANSWER_COLUMNS}
                stored = dict(zip(self._value_columns, matrix[row].tolist(), strict=True))
                reasons = value_reasons(stored, answer, model.config.horizon_days)
            results.append(
                {
                    s.CUSTOMER_ID: customer_id,
                    **answer,
                    "horizon_days": model.config.horizon_days,
                    "reasons": reasons,
                    "known_customer": row is not None,
                    "model_version": version,
                }
            )
        return {"results": results}

    def propensity(self, customer_ids: Sequence[str]) -> dict[str, Any]:
        model = self._model(PROPENSITY, "customer_ids")
        ids = self._ids(customer_ids)
        row_of, matrix, _ = self._rows(ids)
        outputs = model.predict_matrix(matrix[:, self._feature_columns[PROPENSITY]]) if len(matrix) else {}
        version = self.models.versions.get(PROPENSITY)
        results = []
        for customer_id in ids:
            row = row_of.get(customer_id)
            if row is None:
                values = {output: self.base_rates.get(output) for output in model.outputs}
            else:
                values = {output: float(outputs[output][row]) for output in model.outputs}
            categories = self._category_list({k: v for k, v in values.items() if v is not None})
            results.append(
                {
                    s.CUSTOMER_ID: customer_id,
                    s.PURCHASE_PROBABILITY: values.get(s.PURCHASE_PROBABILITY),
                    "top_categories": categories[: self._top_k],
                    "category_probabilities": {item["category"]: item["probability"] for item in categories},
                    "known_customer": row is not None,
                    "model_version": version,
                }
            )
        return {"results": results}

    def recommend(self, customer_id: str, k: int = 10, rules: RecommendationRules | None = None) -> dict[str, Any]:
        recommender = self._model(RECOMMENDER, "customer_id")
        if k > self.max_batch:
            raise RequestError("k", f"at most {self.max_batch} items per request, got {k}", 413)
        rules = rules or RecommendationRules()
        known_categories = set(recommender.stage1_.catalogue.categories)
        for name in ("include_categories", "exclude_categories"):
            unknown = sorted(set(getattr(rules, name) or ()) - known_categories)
            if unknown:
                raise RequestError(
                    name,
                    f"unknown categories {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known_categories))}",
                    404,
                )
        unknown_products = sorted(set(rules.exclude_product_ids or ()) - self._product_ids)
        if unknown_products:
            shown = ", ".join(map(repr, unknown_products[:10]))
            raise RequestError("exclude_product_ids", f"unknown products {shown}", 404)
        customer_id = str(customer_id)
        known = self.store.get_numbers([customer_id], [s.ORDERS_COUNT_TOTAL])[0] != []
        transactions = self.store.history(customer_id, (s.TRANSACTIONS,))[s.TRANSACTIONS] if known else None
        # the lists as arrays: a frame of strings costs more to build than the ranking of one customer
        if transactions is not None and len(transactions):
            ranked = recommender.recommend_lists_for_history(customer_id, transactions, None, k=k, rules=rules)
        else:
            ranked = recommender.recommend_lists([customer_id], k=k, rules=rules)
        items = [
            {"product_id": str(product), "score": float(score), "reason": str(reason)}
            for product, score, reason in zip(ranked.product_id, ranked.score.tolist(), ranked.reason, strict=True)
        ]
        return {
            s.CUSTOMER_ID: customer_id,
            "items": items,
            "known_customer": known,
            "model_version": self.models.versions.get(RECOMMENDER),
        }

    def similar_items(self, product_id: str, k: int = 10) -> dict[str, Any]:
        recommender = self._model(RECOMMENDER, "product_id")
        if k > self.max_batch:
            raise RequestError("k", f"at most {self.max_batch} items per request, got {k}", 413)
        try:
            similar = recommender.similar_items(str(product_id), k)
        except KeyError:
            raise RequestError("product_id", f"unknown product {product_id!r}", 404) from None

        items = [
            {"product_id": str(product), "score": float(score), "reason": str(reason)}
            for product, score, reason in zip(
                similar[s.PRODUCT_ID], similar[SIMILARITY], similar[s.RECOMMENDATION_REASON], strict=True
            )
        ]
        return {"product_id": str(product_id), "items": items, "model_version": self.models.versions.get(RECOMMENDER)}

    def due(self, customer_id: str, within_days: int = 30) -> dict[str, Any]:
        """What the customer is due to buy within `within_days` of their profile's as_of, soonest first
        (`models.due`): replenishments and seasonal repeats, each with its interval, probability and
        reason. Needs no model, only the product cycles the store was materialised with."""
        cycles = self.state.product_cycles
        if cycles is None:
            raise RequestError(
                "customer_id",
                "this profile store holds no product cycles (materialised by an older version); run "
                "`python -m pipelines.materialize --data DIR` (or `make train`) to serve /due",
                503,
            )
        customer_id = str(customer_id)
        found, _, as_ofs = self.store.get_numbers([customer_id], [s.ORDERS_COUNT_TOTAL])
        if not found:
            return {s.CUSTOMER_ID: customer_id, "known_customer": False, s.AS_OF: None, "items": []}
        as_of = max(as_ofs[0], cycles.as_of)
        transactions = self.store.history(customer_id, (s.TRANSACTIONS,))[s.TRANSACTIONS]
        items = due_items(transactions, as_of, within_days, cycles)
        return {s.CUSTOMER_ID: customer_id, "known_customer": True, s.AS_OF: as_of.isoformat(), "items": items}

    def events(self, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
        """POST /events (see `service.events`)."""
        return self.event_writer.write(tables)

    def profile(self, customer_id: str) -> dict[str, Any]:
        """The stored profile and every served model's answer; a model without a champion leaves its
        scores null (risk tier "not_applicable") and its lists empty, so the rest is still answered."""
        customer_id = str(customer_id)
        stored = self.store.get_profile(customer_id)
        churn = (
            self.churn([customer_id])["results"][0]
            if self.models.churn is not None
            else {s.CHURN_PROBABILITY: None, "risk_tier": NOT_APPLICABLE, "reasons": []}
        )
        propensity = (
            self.propensity([customer_id])["results"][0]
            if self.models.propensity is not None
            else {s.PURCHASE_PROBABILITY: None, "top_categories": []}
        )
        recommendations = (
            self.recommend(customer_id, k=PROFILE_RECOMMENDATIONS)["items"] if self.models.recommender else []
        )
        value = self.clv([customer_id])["results"][0] if self.models.clv is not None else {}
        values = stored.values if stored else {}
        return {
            s.CUSTOMER_ID: customer_id,
            "known_customer": stored is not None,
            s.AS_OF: stored.as_of.isoformat() if stored else None,
            s.RFM_SEGMENT: json_value(values.get(s.RFM_SEGMENT)),
            s.LIFECYCLE_STAGE: json_value(values.get(s.LIFECYCLE_STAGE)),
            "features": {name: json_value(value) for name, value in values.items() if name != s.AS_OF},
            "scores": {
                s.CHURN_PROBABILITY: churn[s.CHURN_PROBABILITY],
                "risk_tier": churn["risk_tier"],
                "churn_reasons": churn["reasons"],
                s.PURCHASE_PROBABILITY: propensity[s.PURCHASE_PROBABILITY],
                "top_categories": propensity["top_categories"],
                **{column: value.get(column) for column in VALUE_ANSWER_COLUMNS},
                "value_reasons": value.get("reasons", []),
            },
            "recommendations": recommendations,
            "model_versions": dict(self.models.versions),
        }

    def example_data(self) -> tuple[str, str, dict[str, list[dict[str, Any]]]]:
        """A stored customer, a product the served recommender knows, and the customer's latest order
        line and event as contract rows: real values for the API's request examples."""
        customer_id = next(iter(self.store.profile_ids(limit=1)), "C0000001")
        history = self.store.histories([customer_id])
        rows = {
            name: [{column: json_value(value) for column, value in frame.iloc[-1].items() if not pd.isna(value)}]
            for name, frame in history.items()
            if name in (s.TRANSACTIONS, s.EVENTS) and len(frame)
        }
        bought = [row[s.PRODUCT_ID] for row in rows.get(s.TRANSACTIONS, [])]
        known = self._product_ids
        product_id = next((p for p in bought if known is None or p in known), min(known) if known else "P00001")
        return customer_id, str(product_id), rows


def predict_on_one_thread(models: ServingModels) -> None:
    """Make the outcome models' boosters predict on one OpenMP thread.

    A request scores one to a few hundred rows, where starting OpenMP threads costs far more than the
    trees: measured 11 ms instead of about 0.1 ms for a one-row predict on a busy 2-core machine (the
    recommender's own `_predict` does the same for small inputs). The models are this service's own
    copies, loaded from the registry for it.
    """
    for booster in served_boosters(models):
        if not isinstance(booster.predict, functools.partial):
            booster.predict = functools.partial(booster.predict, num_threads=1)


def served_boosters(models: ServingModels) -> list[Any]:
    """Every LightGBM booster a request may call: the outcome models' classifiers, the propensity
    model's category scorer, the value model's spend boosters."""
    classifiers = [c for model in models.outcome_models().values() for c in model.classifiers.values()]
    category_scorer = getattr(models.propensity, "category_scorer", None)
    classifiers.append(getattr(category_scorer, "classifier_", None))
    boosters = [getattr(classifier, "booster_", None) for classifier in classifiers]
    if models.clv is not None:
        boosters.extend(getattr(models.clv.spend, "boosters_", {}).values())
    return [booster for booster in boosters if booster is not None]
