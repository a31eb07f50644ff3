"""Customer value (the `clv` family): candidates fitted before the test window, measured on it.

The test window is the latest complete `clv.horizon_days` before as_of (or `--evaluate-at`); its
customers are those who bought before it, and their labels are the spend and orders inside it.
The candidates, all scored on the same customers:

- the model: Pareto/NBD x Gamma-Gamma, or the supervised LightGBM on log spend
  (`models.boosted_value`), whichever has the lower MAE of spend on the validation cutoff (the
  latest training cutoff, never the test window). The supervised one trains on rolling cutoffs,
  each followed by a full horizon before the test window; with fewer than two of them it sits out;
- the baselines: the customer's past spend rate times the horizon, and BG/NBD x Gamma-Gamma.

The next purchase (p_active and the wait to the next order) comes from the conditional timing of
Pareto/NBD or BG/NBD, whichever ranks the observed waits of the validation cutoff better
(censoring-aware concordance; within the noise of each other, the lower MAE of days over buyers).
Both are measured on the test window too: concordance, MAE of days, interval coverage.

The parametric models are fitted on the RFM summary at the cutoff they predict from (the test
cutoff for the test window), which is all they need. The served model is refitted the same way
at as_of (`CustomerValueModel.refitted`): what the supervised candidate learnt from labels stays,
the summary-based parts see every purchase. A champion is re-measured refitted at the test cutoff,
so that no candidate has seen the test window.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from tqdm import tqdm

from features import schema as s
from features.customer import feature_columns
from features.history import first_purchase
from features.labels import CutoffPlan, make_value_labels, plan_cutoffs
from models.boosted_value import BoostedValue, btyd_inputs
from models.evidence import Evidence, gather_evidence
from models.names import CLV
from models.timing_metrics import (
    CONCORDANCE,
    MAE_DAYS_BUYERS,
    concordance_draws,
    concordance_index,
    evaluate_timing_interval,
    mae_days_of_buyers,
)
from models.value import BGNBD, PARETO_NBD, BuyTillYouDieValue, SpendRateBaseline, ValueConfig
from models.value_metrics import SPEARMAN, evaluate_value, evaluate_value_by_segment, spearman_draws
from models.value_model import CustomerValueModel, summary_from_features
from pipelines.cli import train_command
from pipelines.errors import UserError
from pipelines.settings import Settings
from pipelines.training.cache import FeatureCache
from pipelines.training.cutoffs import CutoffRequest, plan_training_cutoffs
from pipelines.training.outcome import MODEL, booster_arguments

TIMING_MODELS = (PARETO_NBD, BGNBD)  # whose conditional timing may be served, chosen on the validation cutoff
TIMING_BOOTSTRAP_SAMPLES = 200  # each concordance draw is a sort: 200 keep the choice to seconds
TIMING_DAYS = (s.NEXT_PURCHASE_DAYS, s.NEXT_PURCHASE_LOW_DAYS, s.NEXT_PURCHASE_HIGH_DAYS)
BASELINE_SPEND_RATE = "spend_rate"
BASELINE_BGNBD_GG = "bgnbd_gamma_gamma"
BASELINES = (BASELINE_SPEND_RATE, BASELINE_BGNBD_GG)
# What the model can be, chosen on the validation cutoff.
PARETO_NBD_GG = "pareto_nbd_gamma_gamma"
BOOSTED = "lightgbm_log_spend"
ORDERS_PREFIX = "orders."


@dataclass(frozen=True)
class ValueRows:
    """Buyers' feature rows at one cutoff with the spend, orders and wait to the next purchase of
    the horizon after it (`wait` censored at the horizon where `seen` is false)."""

    features: pd.DataFrame
    spend: np.ndarray
    orders: np.ndarray
    wait: np.ndarray
    seen: np.ndarray


@dataclass
class ValueResult:
    plan: CutoffPlan
    config: ValueConfig
    candidates: dict[str, CustomerValueModel]  # MODEL first, then each baseline; fitted at the test cutoff
    model_kind: str  # PARETO_NBD_GG or BOOSTED
    validation: dict[str, float]  # MAE of spend on the validation cutoff, per model kind tried
    note: str  # why the supervised candidate sat out, or ""
    test: ValueRows
    predictions: dict[str, pd.DataFrame]  # candidate -> VALUE_COLUMNS on the test rows
    metrics: dict[str, dict[str, float]]  # candidate -> evaluate_value of spend, and of orders (prefixed)
    by_segment: pd.DataFrame
    served_candidates: dict[str, CustomerValueModel]  # refitted at as_of, by candidate
    timing_model: str  # the count model whose next-purchase timing is served
    timing_validation: dict[str, dict[str, float]]  # count model -> timing metrics on the validation cutoff
    timing_metrics: dict[str, dict[str, float]]  # count model -> timing metrics on the test window
    spearman: Evidence | None = None  # every candidate's Spearman correlation with its interval, paired
    concordance: Evidence | None = None  # the timing models' concordance on the test window, paired
    name: str = CLV

    @property
    def horizon_days(self) -> int:
        return self.plan.horizon_days

    @property
    def test_description(self) -> str:
        return f"test window {self.plan.test.date()} +{self.horizon_days}d"

    @property
    def train_cutoffs(self) -> tuple[pd.Timestamp, ...]:
        return self.plan.train

    def absolute_errors(self, candidate: str) -> np.ndarray:
        return np.abs(self.predictions[candidate][s.CLV].to_numpy(dtype=float) - self.test.spend)


def scoring_config(model: CustomerValueModel, settings: Settings) -> ValueConfig:
    """The served model's own config, with whatever `clv.*` the scoring command set (`--set
    clv.horizon_days=120`): the same model, asked about another horizon or interval."""
    chosen = settings.clv.model_fields_set & {"horizon_days", "interval", "draws", "discount_rate_annual"}
    config = replace(model.config, **{name: getattr(settings.clv, name) for name in chosen})
    if isinstance(model.spend, BoostedValue) and config.interval != model.spend.interval:
        # its interval ends are two quantile regressions fitted at training time
        raise UserError(
            f"--set clv.interval={config.interval:g}: the served {model.spend_name} was trained for a "
            f"{model.spend.interval:.0%} interval; retrain it with that setting ({train_command([CLV])} "
            f"plus --set clv.interval={config.interval:g})"
        )
    return config


def value_config(settings: Settings) -> ValueConfig:
    clv = settings.clv
    return ValueConfig(
        horizon_days=clv.horizon_days,
        interval=clv.interval,
        draws=clv.draws,
        discount_rate_annual=clv.discount_rate_annual,
        seed=settings.training.seed,
    )


def plan_value(
    cache: FeatureCache, as_of: pd.Timestamp, settings: Settings, evaluate_at: pd.Timestamp | None
) -> tuple[CutoffPlan, str]:
    """(the cutoffs, a note): rolling training cutoffs for the supervised candidate when the history
    holds two, else the test window alone and why the supervised candidate sits out."""
    request = CutoffRequest(
        model=CLV,
        horizon_days=settings.clv.horizon_days,
        n_cutoffs=settings.training.n_cutoffs + 1,
        step_days=settings.training.cutoff_step_days,
        min_cutoffs=2,
        horizon_key="clv.horizon_days",
        step_key="training.cutoff_step_days",
    )
    plan = plan_test_window(cache.transactions, as_of, settings, evaluate_at)
    try:
        return plan_training_cutoffs(request, cache.transactions, as_of, evaluate_at), ""
    except UserError as error:
        return plan, f"the supervised candidate sits out ({str(error).removeprefix(f'{CLV}: ')})"


def plan_test_window(
    transactions: pd.DataFrame, as_of: pd.Timestamp, settings: Settings, evaluate_at: pd.Timestamp | None
) -> CutoffPlan:
    """The test window alone (no training cutoff), or UserError when the data holds no complete
    clv.horizon_days with a purchase before it."""
    horizon = settings.clv.horizon_days
    try:
        plan = plan_cutoffs(as_of, horizon, n_cutoffs=0, test_cutoff=evaluate_at, min_cutoffs=0)
    except ValueError as error:
        raise UserError(f"{CLV}: {error}; a shorter --set clv.horizon_days may fit") from error
    first = first_purchase(transactions)
    if first is None or first >= plan.test:
        raise UserError(
            f"{CLV}: no purchase before the test window {plan.test.date()} +{horizon}d (the data ends "
            f"{pd.Timestamp(as_of).date()}); a shorter --set clv.horizon_days may fit"
        )
    return plan


def value_rows(cache: FeatureCache, cutoff: pd.Timestamp, horizon_days: int) -> ValueRows:
    """The buyers at `cutoff` with their spend and orders in [cutoff, cutoff + horizon)."""
    features = cache.at(cutoff).features
    features = features.loc[features[s.PURCHASE_DAYS_TOTAL] > 0].reset_index(drop=True)
    labels = make_value_labels(cache.transactions, features[s.CUSTOMER_ID], cutoff, horizon_days)
    return ValueRows(
        features,
        labels[s.FUTURE_SPEND].to_numpy(float),
        labels[s.FUTURE_ORDERS].to_numpy(float),
        labels[s.NEXT_PURCHASE_WAIT].to_numpy(float),
        labels[s.NEXT_PURCHASE_SEEN].to_numpy(bool),
    )


def evaluate_timing(rows: ValueRows, values: pd.DataFrame, window_days: int) -> dict[str, float]:
    """How the predicted next purchase fared: concordance of the median wait with the observed one
    (censoring-aware), MAE of days over those who bought, and the interval's coverage (buyers; and
    among non-buyers, the shares whose interval starts past the window or ends inside it)."""
    median, low, high = (values[column].to_numpy(dtype=float) for column in TIMING_DAYS)
    return {
        CONCORDANCE: concordance_index(rows.wait, rows.seen, median),
        MAE_DAYS_BUYERS: mae_days_of_buyers(rows.wait, rows.seen, median),
        **evaluate_timing_interval(rows.wait, rows.seen, low, high, window_days),
    }


def choose_timing(
    validation: ValueRows, window_days: int, config: ValueConfig, fitted: dict[str, BuyTillYouDieValue]
) -> tuple[str, dict[str, dict]]:
    """(the count model whose timing is served, each one's timing metrics on the validation cutoff):
    the higher concordance, and where the two are within the noise of each other (a paired 95%
    interval that holds 0), the lower MAE of days over buyers. `fitted`: count models already fitted
    on these rows."""
    summary = summary_from_features(validation.features)
    medians, metrics = {}, {}
    for count_model in TIMING_MODELS:
        model = fitted.get(count_model) or BuyTillYouDieValue(count_model).fit(summary)
        values = model.predict(summary, config, intervals=False)
        medians[count_model] = values[s.NEXT_PURCHASE_DAYS].to_numpy(dtype=float)
        metrics[count_model] = evaluate_timing(validation, values, window_days)
    evidence = gather_evidence(
        CONCORDANCE,
        {name: metrics[name][CONCORDANCE] for name in TIMING_MODELS},
        lambda name, rows: concordance_draws(validation.wait, validation.seen, medians[name], rows),
        len(validation.wait),
        samples=TIMING_BOOTSTRAP_SAMPLES,
    )
    difference = evidence.difference(*TIMING_MODELS)
    if difference.low > 0 or difference.high < 0:
        return evidence.best(TIMING_MODELS), metrics
    return min(TIMING_MODELS, key=lambda name: metrics[name][MAE_DAYS_BUYERS]), metrics


def fit_btyd(rows: ValueRows | pd.DataFrame, count_model: str) -> BuyTillYouDieValue:
    features = rows.features if isinstance(rows, ValueRows) else rows
    return BuyTillYouDieValue(count_model).fit(summary_from_features(features))


def parametric_candidates(
    features: pd.DataFrame, config: ValueConfig, timing_model: str = PARETO_NBD
) -> dict[str, CustomerValueModel]:
    """The summary-based candidates fitted on these feature rows: Pareto/NBD x Gamma-Gamma and the
    two baselines. Each takes its timing from `timing_model` except BG/NBD x Gamma-Gamma, the
    yardstick, which is all BG/NBD."""
    fitted = {count_model: fit_btyd(features, count_model) for count_model in TIMING_MODELS}
    pareto, bgnbd, timing = fitted[PARETO_NBD], fitted[BGNBD], fitted[timing_model]
    return {
        PARETO_NBD_GG: CustomerValueModel(PARETO_NBD_GG, pareto, timing, config),
        BASELINE_SPEND_RATE: CustomerValueModel(BASELINE_SPEND_RATE, SpendRateBaseline(), timing, config),
        BASELINE_BGNBD_GG: CustomerValueModel(BASELINE_BGNBD_GG, bgnbd, bgnbd, config),
    }


def boosted_inputs(rows: ValueRows, timing: BuyTillYouDieValue, config: ValueConfig, names: list[str]) -> pd.DataFrame:
    """The supervised candidate's inputs: the feature columns and the buy-till-you-die outputs (no
    Monte Carlo interval: the trees read expectations only)."""
    values = timing.predict(summary_from_features(rows.features), config, intervals=False)
    return pd.concat([rows.features[names].reset_index(drop=True), pd.DataFrame(btyd_inputs(values))], axis=1)


def fit_boosted(
    cache: FeatureCache, plan: CutoffPlan, settings: Settings, config: ValueConfig
) -> tuple[BoostedValue, ValueRows, BuyTillYouDieValue]:
    """The supervised candidate on the training cutoffs, stopped early on the validation cutoff;
    returns it with the validation rows and the Pareto/NBD fitted there."""
    fit_cutoffs, validation_cutoff = plan.train[:-1], plan.train[-1]
    validation = value_rows(cache, validation_cutoff, plan.horizon_days)
    names = feature_columns(validation.features)
    parts, spend, orders = [], [], []
    for cutoff in tqdm(fit_cutoffs, desc=f"{CLV}: training cutoffs", leave=False):
        rows = value_rows(cache, cutoff, plan.horizon_days)
        parts.append(boosted_inputs(rows, fit_btyd(rows, PARETO_NBD), config, names))
        spend.append(rows.spend)
        orders.append(rows.orders)
    validation_timing = fit_btyd(validation, PARETO_NBD)
    booster = booster_arguments(settings.clv.booster, settings.training.seed)
    model = BoostedValue(
        booster["booster_params"],
        booster["num_boost_round"],
        booster["early_stopping_rounds"],
        config.interval,
        plan.horizon_days,
    ).fit(
        pd.concat(parts, ignore_index=True),
        np.concatenate(spend),
        np.concatenate(orders),
        boosted_inputs(validation, validation_timing, config, names),
        validation.spend,
        validation.orders,
    )
    return model, validation, validation_timing


def choose_model(
    cache: FeatureCache, plan: CutoffPlan, settings: Settings, config: ValueConfig
) -> tuple[str, BoostedValue, dict[str, float], ValueRows, BuyTillYouDieValue]:
    """(the model kind, the supervised model, validation MAE per kind, the validation rows and the
    Pareto/NBD fitted on them): the lower MAE of spend on the validation cutoff wins. The supervised
    model stopped early on the same rows, which flatters it a little; the test window, where the
    gate decides, is untouched."""
    boosted, validation, timing = fit_boosted(cache, plan, settings, config)
    candidates = {
        PARETO_NBD_GG: CustomerValueModel(PARETO_NBD_GG, timing, timing, config),
        BOOSTED: CustomerValueModel(BOOSTED, boosted, timing, config),
    }
    mae = {
        kind: float(np.mean(np.abs(model.predict_frame(validation.features)[s.CLV].to_numpy() - validation.spend)))
        for kind, model in candidates.items()
    }
    kind = min(mae, key=mae.get)
    return kind, boosted, mae, validation, timing


def train_value_model(
    cache: FeatureCache, as_of: pd.Timestamp, settings: Settings, evaluate_at: pd.Timestamp | None = None
) -> ValueResult:
    """Fit the candidates before the test window, score them on it, and refit them at as_of."""
    config = value_config(settings)
    plan, note = plan_value(cache, as_of, settings, evaluate_at)
    test = value_rows(cache, plan.test, plan.horizon_days)
    if len(test.features) < 2:
        raise UserError(f"{CLV}: fewer than two customers bought before the test window {plan.test.date()}")
    kind, boosted, validation, timing_model, timing_validation = PARETO_NBD_GG, None, {}, PARETO_NBD, {}
    if not note:
        kind, boosted, validation, validation_rows, pareto = choose_model(cache, plan, settings, config)
        timing_model, timing_validation = choose_timing(
            validation_rows, plan.horizon_days, config, {PARETO_NBD: pareto}
        )
    at_test = parametric_candidates(test.features, config, timing_model)
    candidates = {MODEL: _model_candidate(kind, boosted, at_test), **{name: at_test[name] for name in BASELINES}}
    predictions = {name: candidate.predict_frame(test.features) for name, candidate in candidates.items()}
    metrics = {name: _value_metrics(test, frame) for name, frame in predictions.items()}
    model_values = predictions[MODEL]
    by_segment = evaluate_value_by_segment(
        test.spend,
        model_values[s.CLV].to_numpy(),
        test.features[s.RFM_SEGMENT].rename(s.RFM_SEGMENT),
        model_values[s.CLV_LOW].to_numpy(),
        model_values[s.CLV_HIGH].to_numpy(),
    )
    timing = {
        count_model: evaluate_timing(test, predictions[name], plan.horizon_days)
        for count_model, name in ((timing_model, MODEL), (BGNBD, BASELINE_BGNBD_GG))
    }
    at_as_of = _buyers(cache.at(as_of).features)
    served = {name: candidate.refitted(at_as_of) for name, candidate in candidates.items()}
    gate = settings.gate
    spearman = gather_evidence(
        SPEARMAN,
        {name: values[SPEARMAN] for name, values in metrics.items()},
        lambda name, rows: spearman_draws(test.spend, predictions[name][s.CLV].to_numpy(dtype=float), rows),
        len(test.spend),
        gate.bootstrap_samples,
        gate.confidence,
    )
    waits = {
        count_model: predictions[name][s.NEXT_PURCHASE_DAYS].to_numpy(dtype=float)
        for count_model, name in ((timing_model, MODEL), (BGNBD, BASELINE_BGNBD_GG))
    }
    concordance = gather_evidence(
        CONCORDANCE,
        {count_model: values[CONCORDANCE] for count_model, values in timing.items()},
        lambda name, rows: concordance_draws(test.wait, test.seen, waits[name], rows),
        len(test.wait),
        TIMING_BOOTSTRAP_SAMPLES,
        gate.confidence,
    )
    return ValueResult(
        plan,
        config,
        candidates,
        kind,
        validation,
        note,
        test,
        predictions,
        metrics,
        by_segment,
        served,
        timing_model,
        timing_validation,
        timing,
        spearman,
        concordance,
    )


def _model_candidate(
    kind: str, boosted: BoostedValue | None, parametric: dict[str, CustomerValueModel]
) -> CustomerValueModel:
    pareto = parametric[PARETO_NBD_GG]
    if kind == BOOSTED:
        return CustomerValueModel(BOOSTED, boosted, pareto.timing, pareto.config)
    return pareto


def _buyers(features: pd.DataFrame) -> pd.DataFrame:
    return features.loc[features[s.PURCHASE_DAYS_TOTAL] > 0].reset_index(drop=True)


def _value_metrics(test: ValueRows, values: pd.DataFrame) -> dict[str, float]:
    """Spend metrics (with the interval's coverage where the candidate has one) and orders metrics."""
    low, high = values[s.CLV_LOW].to_numpy(dtype=float), values[s.CLV_HIGH].to_numpy(dtype=float)
    has_interval = bool(np.isfinite(low).all() and np.isfinite(high).all())
    spend = evaluate_value(test.spend, values[s.CLV].to_numpy(dtype=float), *((low, high) if has_interval else ()))
    orders = evaluate_value(test.orders, values[s.EXPECTED_ORDERS].to_numpy(dtype=float))
    return {**spend, **{f"{ORDERS_PREFIX}{name}": value for name, value in orders.items()}}
