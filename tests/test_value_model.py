"""The served customer value: the summary read from feature rows, the supervised candidate's level
and interval, and the composite model's outputs (empty for prospects, dates, horizons, refits)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from features import schema as s
from features.repeat_buying import rfm_summary
from models.boosted_value import BTYD_INPUTS, BoostedValue, btyd_inputs, conformal_widening, level_factor
from models.value import PARETO_NBD, BuyTillYouDieValue, SpendRateBaseline, ValueConfig
from models.value_metrics import spearman
from models.value_model import (
    SUMMARY_FEATURES,
    CustomerValueModel,
    next_purchase_dates,
    summary_from_features,
    summary_of_rows,
)
from pipelines.profiles import build_profiles, build_reference
from pipelines.settings import load_settings

AS_OF = pd.Timestamp("2025-01-01")


@pytest.fixture(scope="module")
def features_at_as_of(generated_data) -> pd.DataFrame:
    settings = load_settings()
    reference = build_reference(generated_data.tables, AS_OF, settings.propensity.top_categories)
    return build_profiles(generated_data.tables, AS_OF, settings.features, reference)


@pytest.fixture(scope="module")
def pareto(features_at_as_of) -> BuyTillYouDieValue:
    return BuyTillYouDieValue(PARETO_NBD).fit(summary_from_features(features_at_as_of))


def test_the_summary_in_the_feature_rows_is_the_rfm_summary_of_the_transactions(generated_data, features_at_as_of):
    summary = summary_from_features(features_at_as_of)
    summary.index = features_at_as_of[s.CUSTOMER_ID].iloc[summary.index].astype(str).to_numpy()
    expected = rfm_summary(generated_data.tables[s.TRANSACTIONS], AS_OF)
    assert list(summary.index) == list(expected.index)
    pd.testing.assert_frame_equal(
        summary.reset_index(drop=True), expected.fillna({"monetary_value": 0.0}).reset_index(drop=True)
    )
    prospects = features_at_as_of[s.PURCHASE_DAYS_TOTAL] == 0
    assert prospects.any() and len(summary) == (~prospects).sum()


def test_prospects_get_empty_value_and_buyers_dates_from_their_as_of(features_at_as_of, pareto):
    model = CustomerValueModel("pareto", pareto, pareto, ValueConfig(draws=50))
    values = model.predict_frame(features_at_as_of)
    assert list(values[s.CUSTOMER_ID]) == list(features_at_as_of[s.CUSTOMER_ID])
    prospects = (features_at_as_of[s.PURCHASE_DAYS_TOTAL] == 0).to_numpy()
    assert values.loc[prospects, list(s.VALUE_COLUMNS)].isna().all().all()
    buyers = values.loc[~prospects]
    assert buyers[list(s.VALUE_COLUMNS)].notna().all().all()
    assert (buyers[s.CLV_LOW] <= buyers[s.CLV]).all() and (buyers[s.CLV] <= buyers[s.CLV_HIGH]).all()
    waits = (buyers[s.NEXT_PURCHASE_DATE] - AS_OF).dt.days
    assert (waits == np.round(buyers[s.NEXT_PURCHASE_DAYS])).all()
    assert (buyers[s.NEXT_PURCHASE_LOW] <= buyers[s.NEXT_PURCHASE_DATE]).all()
    assert (buyers[s.NEXT_PURCHASE_DATE] <= buyers[s.NEXT_PURCHASE_HIGH]).all()


def test_a_longer_horizon_means_more_value_and_the_spend_rate_scales_with_it(features_at_as_of, pareto):
    one_year = CustomerValueModel("rate", SpendRateBaseline(), pareto, ValueConfig(draws=20))
    two_years = one_year.with_config(ValueConfig(horizon_days=730, draws=20))
    short, long = (model.predict_frame(features_at_as_of).dropna(subset=[s.CLV]) for model in (one_year, two_years))
    np.testing.assert_allclose(long[s.CLV], 2 * short[s.CLV])
    # timing comes from the Pareto/NBD part whatever serves the spend
    np.testing.assert_allclose(long[s.P_ACTIVE], short[s.P_ACTIVE])


def test_refitting_moves_the_parametric_parts_only(features_at_as_of, pareto, generated_data):
    model = CustomerValueModel("pareto", pareto, pareto, ValueConfig(draws=20))
    settings = load_settings()
    earlier = pd.Timestamp("2024-01-01")
    reference = build_reference(generated_data.tables, earlier, settings.propensity.top_categories)
    refitted = model.refitted(build_profiles(generated_data.tables, earlier, settings.features, reference))
    assert refitted.spend is refitted.timing  # still one model serving both
    assert refitted.timing.counts_.params_ != pareto.counts_.params_
    assert model.timing is pareto  # the original is untouched


def test_a_model_pickled_by_other_code_says_it_is_stale(pareto):
    model = CustomerValueModel("pareto", pareto, pareto, ValueConfig())
    assert pickle.loads(pickle.dumps(model)).stale_reason() is None
    older = pickle.loads(pickle.dumps(model))
    del older.__dict__["code_version"]
    assert "code version None" in older.stale_reason()


def test_one_customer_as_columns_gets_the_numbers_of_the_whole_frame(features_at_as_of, pareto):
    """The service's path (one row, columns as arrays) against the batch path (a frame of everyone),
    for the supervised candidate and the parametric one."""
    rows, *summary = summary_of_rows(features_at_as_of)
    inputs = pd.DataFrame(btyd_inputs(pareto.predict_arrays(*summary, intervals=False)))
    for name in (*SUMMARY_FEATURES, s.DAYS_SINCE_LAST_PURCHASE):
        inputs[name] = features_at_as_of[name].to_numpy(dtype=float)[rows]
    rng = np.random.default_rng(5)
    spend, orders = rng.gamma(1.0, 80.0, len(rows)) * (rng.random(len(rows)) < 0.5), rng.poisson(1.5, len(rows))
    booster = {"num_leaves": 7, "min_data_in_leaf": 20, "num_threads": 1, "verbosity": -1}
    boosted = BoostedValue(booster, num_boost_round=30, early_stopping_rounds=5)
    boosted.fit(inputs, spend, orders.astype(float), inputs, spend, orders.astype(float))
    prospect = int(np.flatnonzero(features_at_as_of[s.PURCHASE_DAYS_TOTAL].to_numpy() == 0)[0])
    picked = [prospect, *rng.choice(rows, 40, replace=False).tolist()]
    for model in (
        CustomerValueModel("lightgbm_log_spend", boosted, pareto, ValueConfig()),
        CustomerValueModel("pareto", pareto, pareto, ValueConfig(draws=20)),
    ):
        everyone = model.predict_values(features_at_as_of)
        for row in picked:
            one = model.predict_values(
                {name: features_at_as_of[name].to_numpy()[row : row + 1] for name in model.feature_names}
            )
            for column in s.VALUE_COLUMNS:
                if model.spend is model.timing and column in (s.CLV_LOW, s.CLV_HIGH):
                    continue  # Monte Carlo draws: one customer's differ from the same customer's among many
                np.testing.assert_allclose(one[column], everyone[column][row : row + 1], rtol=1e-9, err_msg=column)


# ---------------------------------------------------------------------------
# The supervised candidate on data where the answer is known.
# ---------------------------------------------------------------------------
def _customers(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A feature that multiplies a parametric guess: spend = guess x exp(0.8 x signal) x noise,
    with 60% of customers spending nothing."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    guess = rng.gamma(2.0, 50.0, size=n)
    buys = rng.random(n) < 0.4
    spend = np.where(buys, guess * np.exp(0.8 * signal) * rng.lognormal(0.0, 0.5, size=n) / 0.4, 0.0)
    orders = np.where(buys, rng.poisson(2.0, size=n) + 1, 0)
    features = pd.DataFrame(
        {
            "signal": signal,
            BTYD_INPUTS[s.EXPECTED_ORDERS]: np.full(n, 1.2),
            BTYD_INPUTS[s.CLV]: guess,
            BTYD_INPUTS[s.P_ACTIVE]: np.full(n, 0.5),
        }
    )
    return features, spend, orders.astype(float)


def test_the_supervised_candidate_learns_the_signal_keeps_the_level_and_covers_its_interval():
    booster = {"num_leaves": 7, "learning_rate": 0.1, "min_data_in_leaf": 40, "num_threads": 1, "seed": 1}
    train, validation, test = (_customers(n, seed) for n, seed in ((6000, 1), (3000, 2), (6000, 3)))
    model = BoostedValue(booster, num_boost_round=300, early_stopping_rounds=20, interval=0.8).fit(*train, *validation)
    features, spend, orders = test
    predicted = model.predict(features)
    # it ranks the buyers by the signal the parametric guess lacks (who buys at all is a coin toss here)
    buyers = spend > 0
    guessed = spearman(spend[buyers], features[BTYD_INPUTS[s.CLV]][buyers])
    assert spearman(spend[buyers], predicted[s.CLV][buyers]) > guessed + 0.15
    # the level: predicted spend sums to about what was spent, on customers it never saw
    assert predicted[s.CLV].sum() == pytest.approx(spend.sum(), rel=0.1)
    assert predicted[s.EXPECTED_ORDERS].sum() == pytest.approx(orders.sum(), rel=0.1)
    covered = (predicted[s.CLV_LOW] <= spend) & (spend <= predicted[s.CLV_HIGH])
    assert covered.mean() == pytest.approx(0.8, abs=0.03)
    assert list(model.feature_importance().index[:1]) in (["signal"], [BTYD_INPUTS[s.CLV]])


def test_the_level_factor_and_the_conformal_widening_on_hand_numbers():
    # predictions exp(x) - 1 of 1 and 3 against 2 and 10 spent: a factor of 12 / 4
    assert level_factor(np.log([2.0, 4.0]), np.array([2.0, 10.0])) == pytest.approx(3.0)
    assert level_factor(np.zeros(3), np.ones(3)) == 1.0  # nothing predicted: left as it is
    low, high = np.zeros(10), np.ones(10)
    actual = np.linspace(-0.5, 1.4, 10)  # three below 0.9 .. outside by up to 0.5 and 0.4
    widening = conformal_widening(low, high, actual, 0.8)
    inside = (low - widening <= actual) & (actual <= high + widening)
    assert inside.mean() >= 0.8
    assert conformal_widening(low, high, np.full(10, 0.5), 0.8) < 0  # all well inside: it narrows


def test_a_wait_past_a_century_has_no_date_instead_of_an_overflow():
    waits = pd.DataFrame(
        {
            s.NEXT_PURCHASE_DAYS: [10.4, 5e9],
            s.NEXT_PURCHASE_LOW_DAYS: [1.0, 3.0],
            s.NEXT_PURCHASE_HIGH_DAYS: [40.0, np.nan],
        }
    )
    dates = next_purchase_dates(waits, pd.Series([AS_OF + pd.Timedelta(hours=13)] * 2))
    assert dates[s.NEXT_PURCHASE_DATE][0] == np.datetime64("2025-01-11")  # from as_of's midnight
    assert dates[s.NEXT_PURCHASE_LOW][1] == np.datetime64("2025-01-04")
    assert np.isnat(dates[s.NEXT_PURCHASE_DATE][1]) and np.isnat(dates[s.NEXT_PURCHASE_HIGH][1])


def test_scoring_may_ask_another_horizon_but_not_another_interval_of_the_supervised_model(pareto):
    from pipelines.errors import UserError
    from pipelines.settings import load_settings
    from pipelines.training.value import scoring_config

    boosted = CustomerValueModel("lightgbm_log_spend", BoostedValue(interval=0.8), pareto, ValueConfig())
    assert scoring_config(boosted, load_settings(overrides=["clv.horizon_days=120"])).horizon_days == 120
    assert scoring_config(boosted, load_settings()) == boosted.config  # nothing set: the model's own
    with pytest.raises(UserError, match=r"clv.interval=0.9: the served lightgbm_log_spend was trained for a 80%"):
        scoring_config(boosted, load_settings(overrides=["clv.interval=0.9"]))
    parametric = CustomerValueModel("pareto", pareto, pareto, ValueConfig())
    assert scoring_config(parametric, load_settings(overrides=["clv.interval=0.9"])).interval == 0.9


def test_a_history_shorter_than_the_horizon_leaves_value_out_of_the_default_run_and_names_the_fix(
    generated_data, capsys
):
    from pipelines.errors import UserError
    from pipelines.settings import load_settings
    from pipelines.train import value_fits
    from pipelines.training.value import plan_test_window

    transactions = generated_data.tables[s.TRANSACTIONS]
    first = transactions[s.TIMESTAMP].min()
    short = {s.TRANSACTIONS: transactions[transactions[s.TIMESTAMP] < first + pd.Timedelta(days=200)]}
    as_of = (first + pd.Timedelta(days=200)).normalize()
    settings = load_settings()
    assert not value_fits(short, as_of, settings, None)
    assert "note: clv left out: clv: " in capsys.readouterr().err
    with pytest.raises(UserError, match=r"a shorter --set clv.horizon_days may fit"):
        plan_test_window(short[s.TRANSACTIONS], as_of, settings, None)
    # a 90-day horizon fits the same 200 days
    assert value_fits(short, as_of, load_settings(overrides=["clv.horizon_days=90"]), None)
