"""Promotion by evidence: intervals, paired differences and the two-step rule, with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models.evidence import Interval, beats, bootstrap_rows, gather_evidence, interval, mean_draws, roc_auc_draws
from pipelines.errors import UserError
from pipelines.settings import GateSettings, load_settings
from pipelines.training.gate import CHAMPION, Champion, choose_winner, decide
from pipelines.training.outcome import MODEL

GATE = GateSettings(bootstrap_samples=400)
BASELINES = ("recency", "rfm_logistic")


def evidence_of(values: dict[str, np.ndarray], lower_is_better: bool = False):
    """Evidence over per-row values (the metric is their mean), one shared bootstrap."""
    n = len(next(iter(values.values())))
    return gather_evidence(
        "score",
        {name: float(value.mean()) for name, value in values.items()},
        lambda name, rows: mean_draws(values[name], rows),
        n,
        GATE.bootstrap_samples,
        GATE.confidence,
        lower_is_better=lower_is_better,
    )


@pytest.fixture
def rows() -> np.random.Generator:
    """A fresh seeded generator per test: the draws do not depend on which tests ran before."""
    return np.random.default_rng(7)


def test_auc_on_bootstrap_draws_is_sklearns_auc_ties_included(rows):
    labels = rows.random(600) < 0.3
    scores = np.round(rows.random(600) + labels * 0.4, 1)  # many ties
    draws = bootstrap_rows(600, 5, seed=3)
    expected = [roc_auc_score(labels[d], scores[d]) for d in draws]
    assert roc_auc_draws(labels, scores, draws) == pytest.approx(expected)


def test_an_interval_holds_the_estimate_and_narrows_with_more_rows(rows):
    small = rows.normal(0.5, 0.2, 100)
    large = rows.normal(0.5, 0.2, 10_000)
    wide, narrow = (interval(v.mean(), mean_draws(v, bootstrap_rows(len(v), 500))) for v in (small, large))
    assert wide.low < wide.estimate < wide.high and narrow.low < narrow.estimate < narrow.high
    assert (narrow.high - narrow.low) < (wide.high - wide.low) / 5


def test_paired_differences_see_through_shared_noise(rows):
    # two candidates that differ by a tiny constant on every row: unpaired intervals overlap entirely,
    # the paired difference is exactly the constant
    base = rows.normal(0.5, 0.3, 500)
    evidence = evidence_of({"a": base + 0.001, "b": base})
    assert evidence.metrics["a"].low < evidence.metrics["b"].high  # overlapping on their own
    difference = evidence.difference("a", "b")
    assert difference.estimate == pytest.approx(0.001) and difference.low == pytest.approx(0.001)
    assert beats(difference, 0.0) and not beats(difference, 0.002)


def test_a_model_ahead_by_less_than_the_noise_is_not_served(rows):
    baseline = 0.5 + rows.normal(0.0, 1.0, 300)
    jitter = rows.normal(0.0, 0.5, 300)
    ahead = baseline + 0.01 + (jitter - jitter.mean())  # ahead by exactly 0.01 on average, noisily
    evidence = evidence_of({MODEL: ahead, "recency": baseline, "rfm_logistic": baseline - 0.2})
    assert evidence.difference(MODEL, "recency").estimate == pytest.approx(0.01)
    assert not beats(evidence.difference(MODEL, "recency"), 0.0)
    assert choose_winner(evidence, BASELINES, 0.0) == "recency"
    decision = decide(evidence, BASELINES, "score", Champion(None), GATE)
    assert decision.promote and decision.winner == "recency"  # the first run always leaves a champion
    assert "does not beat recency beyond the noise" in decision.reason and "first champion" in decision.reason


def test_a_model_ahead_beyond_the_noise_is_served_unless_a_margin_asks_for_more(rows):
    baseline = rows.normal(0.5, 0.2, 2000)
    evidence = evidence_of({MODEL: baseline + 0.05, "recency": baseline, "rfm_logistic": baseline - 0.01})
    assert choose_winner(evidence, BASELINES, 0.0) == MODEL
    assert choose_winner(evidence, BASELINES, 0.1) == "recency"
    assert choose_winner(evidence, BASELINES, 0.0, extra_ok=False) == "recency"  # e.g. losing on new items


def test_for_an_error_lower_wins_and_a_difference_still_reads_as_how_much_better(rows):
    baseline_error = np.abs(rows.normal(10.0, 3.0, 2000))
    errors = {MODEL: baseline_error - 1.0, "recency": baseline_error, "rfm_logistic": baseline_error + 2.0}
    evidence = evidence_of(errors, lower_is_better=True)
    assert evidence.best(BASELINES) == "recency"
    gain = evidence.difference(MODEL, "recency")
    assert gain.estimate == pytest.approx(1.0) and gain.low > 0.9
    assert choose_winner(evidence, BASELINES, 0.0) == MODEL
    worse = evidence_of({**errors, MODEL: baseline_error + 1.0}, lower_is_better=True)
    assert worse.difference(MODEL, "recency").high < 0
    assert choose_winner(worse, BASELINES, 0.0) == "recency"


def test_a_challenger_replaces_the_champion_only_beyond_the_noise(rows):
    baseline = rows.normal(0.5, 0.2, 2000)
    close = evidence_of(
        {MODEL: baseline + 0.05, "recency": baseline, "rfm_logistic": baseline, CHAMPION: baseline + 0.05}
    )
    kept = decide(close, BASELINES, "score", Champion("3", scores=np.zeros(1)), GATE)
    assert not kept.promote and kept.winner == MODEL and "champion v3" in kept.reason and "stays" in kept.reason
    better = evidence_of({MODEL: baseline + 0.05, "recency": baseline, "rfm_logistic": baseline, CHAMPION: baseline})
    replaced = decide(better, BASELINES, "score", Champion("3", scores=np.zeros(1)), GATE)
    assert replaced.promote and "beats champion v3" in replaced.reason


def test_a_champion_that_cannot_be_remeasured_is_kept_unless_the_override_asks(rows):
    baseline = rows.normal(0.5, 0.2, 500)
    evidence = evidence_of({MODEL: baseline + 0.1, "recency": baseline, "rfm_logistic": baseline})
    lost = Champion("2", unmeasurable="its feature columns are missing: tenure_weeks")
    kept = decide(evidence, BASELINES, "score", lost, GATE)
    assert not kept.promote and "cannot be re-measured" in kept.reason and "--replace-unmeasurable" in kept.reason
    replaced = decide(evidence, BASELINES, "score", lost, GATE, replace_unmeasurable=True)
    assert replaced.promote and "v2" in replaced.reason


def test_negative_margins_and_nonsense_confidence_are_refused_at_config_load():
    with pytest.raises(UserError, match="gate.min_gain"):
        load_settings(overrides=["gate.min_gain=-0.01"])
    with pytest.raises(UserError, match="gate.confidence"):
        load_settings(overrides=["gate.confidence=1.5"])
    assert load_settings().gate.min_gain == 0.0


def test_interval_text_reads_as_estimate_and_bounds():
    assert str(Interval(0.5, 0.4, 0.6)) == "0.5000 [0.4000, 0.6000]"
