"""Top-k ranking metrics on tiny hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import ranking_metrics as rm

SINGLE_METRICS = {
    rm.PRECISION: rm.precision_at_k,
    rm.RECALL: rm.recall_at_k,
    rm.NDCG: rm.ndcg_at_k,
    rm.MAP: rm.map_at_k,
    rm.HIT_RATE: rm.hit_rate_at_k,
}


def _all_metrics(recommended, relevant, k: int) -> dict[str, float]:
    return {name: metric(recommended, relevant, k) for name, metric in SINGLE_METRICS.items()}


def test_perfect_ranking_scores_one_on_every_metric():
    recommended = [["a", "b", "c", "x"], ["d", "e", "f"]]
    relevant = [{"a", "b", "c"}, ["f", "e", "d", "d"]]
    for name, value in _all_metrics(recommended, relevant, k=3).items():
        assert value == pytest.approx(1.0), name


def test_perfect_top_k_scores_one_when_user_has_more_relevant_items_than_k():
    # recall is the exception: 2 of 4 relevant items is all a top-2 list can find
    scores = _all_metrics([["a", "b", "x"]], [{"a", "b", "c", "d"}], k=2)
    assert scores[rm.NDCG] == pytest.approx(1.0)
    assert scores[rm.MAP] == pytest.approx(1.0)
    assert scores[rm.PRECISION] == pytest.approx(1.0)
    assert scores[rm.RECALL] == pytest.approx(0.5)


def test_no_hits_score_zero():
    for name, value in _all_metrics([["x", "y"], ["z"]], [{"a"}, {"b", "c"}], k=5).items():
        assert value == 0.0, name


def test_hand_computed_ndcg_hits_at_ranks_one_and_three():
    expected = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert rm.ndcg_at_k([["a", "x", "b"]], [{"a", "b", "c"}], k=3) == pytest.approx(expected)


def test_ndcg_ideal_is_capped_at_k():
    # one hit at rank 2, three relevant items, k=2: ideal DCG has two hits
    expected = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert rm.ndcg_at_k([["x", "a"]], [{"a", "b", "c"}], k=2) == pytest.approx(expected)


def test_hand_computed_average_precision():
    # hits at ranks 1 and 3: precisions 1/1 and 2/3, normalised by min(k=4, |relevant|=3)
    assert rm.average_precision_at_k([["a", "x", "b", "y"]], [{"a", "b", "c"}], k=4) == pytest.approx(5 / 9)
    # hit at rank 2 of k=2, three relevant items: (1/2) / min(2, 3)
    assert rm.map_at_k([["x", "a"]], [{"a", "b", "c"}], k=2) == pytest.approx(0.25)


def test_map_is_the_mean_of_user_average_precisions():
    recommended = [["a", "x", "b", "y"], ["x", "a"]]
    relevant = [{"a", "b", "c"}, {"a"}]
    # user 2: hit at rank 2, one relevant item -> 1/2
    assert rm.map_at_k(recommended, relevant, k=4) == pytest.approx((5 / 9 + 1 / 2) / 2)


def test_precision_and_recall_with_fewer_recommendations_than_k():
    recommended, relevant = [["a", "x"]], [{"a", "b"}]
    assert rm.precision_at_k(recommended, relevant, k=5) == pytest.approx(1 / 5)
    assert rm.recall_at_k(recommended, relevant, k=5) == pytest.approx(1 / 2)
    assert rm.hit_rate_at_k(recommended, relevant, k=5) == 1.0


def test_only_the_top_k_are_scored():
    recommended, relevant = [["x", "y", "a"]], [{"a"}]
    assert rm.hit_rate_at_k(recommended, relevant, k=2) == 0.0
    assert rm.precision_at_k(recommended, relevant, k=3) == pytest.approx(1 / 3)


def test_hit_rate_is_the_share_of_users_with_a_hit():
    recommended = [["a"], ["x"], ["y"], ["b"]]
    relevant = [{"a"}, {"a"}, {"a"}, {"b"}]
    assert rm.hit_rate_at_k(recommended, relevant, k=1) == pytest.approx(0.5)


def test_users_without_relevant_items_are_skipped():
    alone = rm.evaluate_ranking([["a", "x"]], [{"a", "b"}], ks=(2,))
    with_empty = rm.evaluate_ranking([["a", "x"], ["c", "d"], ["e"]], [{"a", "b"}, set(), []], ks=(2,))
    assert alone[rm.USERS] == 1
    assert with_empty == alone


def test_no_user_with_relevant_items_gives_nan():
    result = rm.evaluate_ranking([["a"]], [set()], ks=(3,))
    assert result[rm.USERS] == 0
    assert all(math.isnan(result[rm.metric_key(name, 3)]) for name in rm.RANKING_METRIC_NAMES)


def test_duplicates_keep_their_slot_but_count_once():
    recommended, relevant = [["a", "a", "b"]], [{"a", "b"}]
    assert rm.precision_at_k(recommended, relevant, k=3) == pytest.approx(2 / 3)
    assert rm.recall_at_k(recommended, relevant, k=3) == pytest.approx(1.0)
    expected_ndcg = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert rm.ndcg_at_k(recommended, relevant, k=3) == pytest.approx(expected_ndcg)
    # hits at ranks 1 and 3: (1/1 + 2/3) / 2
    assert rm.map_at_k(recommended, relevant, k=3) == pytest.approx(5 / 6)


def test_evaluate_ranking_keys_and_agreement_with_single_metrics():
    recommended = [["a", "x", "b", "y", "c"], ["x", "a"], ["q"]]
    relevant = [{"a", "b", "c"}, {"a", "z"}, {"q", "r"}]
    result = rm.evaluate_ranking(recommended, relevant, ks=(1, 3, 5))
    expected_keys = {rm.metric_key(name, k) for name in rm.RANKING_METRIC_NAMES for k in (1, 3, 5)} | {rm.USERS}
    assert set(result) == expected_keys
    assert result[rm.USERS] == 3
    assert "ndcg@10" in rm.evaluate_ranking(recommended, relevant)
    for k in (1, 3, 5):
        for name, value in _all_metrics(recommended, relevant, k).items():
            assert result[rm.metric_key(name, k)] == pytest.approx(value)
    assert result["hit_rate@1"] == pytest.approx(2 / 3)
    assert result["precision@3"] == pytest.approx((2 / 3 + 1 / 3 + 1 / 3) / 3)


def test_accepts_series_and_arrays():
    recommended = pd.Series([np.array(["a", "b"]), ["c"]], index=[10, 20])
    relevant = pd.Series([("b",), frozenset({"c"})], index=[10, 20])
    assert rm.recall_at_k(recommended, relevant, k=2) == pytest.approx(1.0)
    assert rm.precision_at_k(recommended, relevant, k=2) == pytest.approx((1 / 2 + 1 / 2) / 2)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from("abcdefgh"), max_size=8),
            st.sets(st.sampled_from("abcdefgh"), max_size=5),
        ),
        min_size=1,
        max_size=6,
    ),
    st.integers(1, 10),
)
def test_metrics_lie_in_unit_interval_and_reward_hits(users, k):
    recommended = [list(items) for items, _ in users]
    relevant = [wanted for _, wanted in users]
    result = rm.evaluate_ranking(recommended, relevant, ks=(k,))
    for name in rm.RANKING_METRIC_NAMES:
        value = result[rm.metric_key(name, k)]
        assert math.isnan(value) or 0.0 <= value <= 1.0 + 1e-12
    # moving every relevant item to the front never lowers NDCG or MAP
    reordered = [sorted(dict.fromkeys(items), key=lambda item: item not in wanted) for items, wanted in users]
    better = rm.evaluate_ranking(reordered, relevant, ks=(k,))
    for name in (rm.NDCG, rm.MAP):
        key = rm.metric_key(name, k)
        if not math.isnan(result[key]):
            assert better[key] >= result[key] - 1e-12


def test_catalogue_coverage_counts_distinct_items_in_top_k():
    recommended = [["a", "b", "c"], ["a", "d"]]
    assert rm.catalogue_coverage(recommended, catalogue_size=10, k=2) == pytest.approx(3 / 10)
    assert rm.catalogue_coverage(recommended, catalogue_size=4, k=3) == pytest.approx(1.0)


def test_novelty_is_the_mean_self_information():
    popularity = {"a": 4, "b": 2, "c": 1}  # of 8 users: 1, 2 and 3 bits
    recommended = [["a", "b"], ["c", "a"]]
    assert rm.novelty(recommended, popularity, n_users=8, k=2) == pytest.approx((1 + 2 + 3 + 1) / 4)
    assert rm.novelty(recommended, pd.Series(popularity), n_users=8, k=1) == pytest.approx((1 + 3) / 2)
    # a repeat within a list counts once
    assert rm.novelty([["c", "c", "a"]], popularity, n_users=8, k=3) == pytest.approx((3 + 1) / 2)
    assert math.isnan(rm.novelty([[], []], popularity, n_users=8))


@pytest.mark.parametrize(
    "call",
    [
        lambda: rm.precision_at_k([["a"]], [{"a"}], k=0),
        lambda: rm.ndcg_at_k([["a"]], [{"a"}], k=2.0),
        lambda: rm.recall_at_k([["a"]], [{"a"}], k=True),
        lambda: rm.evaluate_ranking([["a"]], [{"a"}], ks=()),
        lambda: rm.evaluate_ranking([["a"]], [{"a"}], ks=(5, -1)),
        lambda: rm.map_at_k([["a"], ["b"]], [{"a"}], k=1),
        lambda: rm.hit_rate_at_k([], [], k=1),
        lambda: rm.precision_at_k(["ab"], [{"a"}], k=1),
        lambda: rm.precision_at_k([["a"]], ["a"], k=1),
        lambda: rm.catalogue_coverage([["a"]], catalogue_size=0),
        lambda: rm.catalogue_coverage([["a", "b", "c"]], catalogue_size=2),
        lambda: rm.catalogue_coverage([["a"]], catalogue_size=5, k=0),
        lambda: rm.novelty([["a"]], {"a": 1}, n_users=0),
        lambda: rm.novelty([["z"]], {"a": 1}, n_users=4),
        lambda: rm.novelty([["a"]], {"a": 0}, n_users=4),
        lambda: rm.novelty([["a"]], {"a": 5}, n_users=4),
    ],
)
def test_bad_inputs_raise(call):
    with pytest.raises(ValueError):
        call()


def _reference_scores(items: list[str], wanted: set[str], k: int) -> dict[str, float]:
    """Textbook per-user definitions, written independently of the vectorised module."""
    seen: set[str] = set()
    gains = []
    for item in items[:k]:
        gains.append(1.0 if item in wanted and item not in seen else 0.0)
        seen.add(item)
    n_ideal = min(k, len(wanted))
    dcg = sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, n_ideal + 1))
    ap = sum(sum(gains[:rank]) / rank for rank, gain in enumerate(gains, start=1) if gain) / n_ideal
    return {
        rm.PRECISION: sum(gains) / k,
        rm.RECALL: sum(gains) / len(wanted),
        rm.NDCG: dcg / ideal,
        rm.MAP: ap,
        rm.HIT_RATE: float(any(gains)),
    }


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from("abcdefgh"), max_size=12),
            st.sets(st.sampled_from("abcdefgh"), min_size=1, max_size=5),
        ),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.integers(1, 12), min_size=1, max_size=3, unique=True),
)
def test_matches_per_user_reference(users, ks):
    recommended = [items for items, _ in users]
    relevant = [wanted for _, wanted in users]
    result = rm.evaluate_ranking(recommended, relevant, ks=ks)
    for k in ks:
        per_user = [_reference_scores(items, wanted, k) for items, wanted in users]
        for name in rm.RANKING_METRIC_NAMES:
            assert result[rm.metric_key(name, k)] == pytest.approx(np.mean([scores[name] for scores in per_user]))
