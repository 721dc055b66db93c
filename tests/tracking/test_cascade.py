"""The two-stage cascade: recall threshold, pruning, scores back on the whole graph, the score cache."""

import numpy as np
import pytest

from jaxhep.tracking.cascade import (
    filter_summary,
    load_scores,
    prune,
    recall_threshold,
    save_scores,
    scatter_scores,
)
from tests.approx import approx
from tests.tracking.handmade import hand_graph


def _chain():
    # hits 0..5; edges 0:0->1 (true) 1:1->2 (true) 2:0->3 (fake) 3:3->4 (fake) 4:2->5 (true, not trainable)
    # 5:4->5 (fake)
    return hand_graph(
        phi=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
        senders=[0, 1, 0, 3, 2, 4],
        receivers=[1, 2, 3, 4, 5, 5],
        labels=[1, 1, 0, 0, 1, 0],
        train_mask=[True, True, True, True, False, True],
    )


def test_recall_threshold_by_hand():
    g = _chain()
    scores = np.array([0.9, 0.3, 0.5, 0.1, 0.05, 0.2], np.float32)
    # trainable positives score 0.9 and 0.3 (edge 4's 0.05 does not count): keeping all of them needs
    # t = 0.3; at 50 % one may be lost, t = 0.9.
    assert recall_threshold([g], [scores], 1.0) == approx(0.3)
    assert recall_threshold([g], [scores], 0.5) == approx(0.9)
    # Over two graphs: positives {0.9, 0.3, 0.8, 0.7}; 0.75 of 4 = lose at most 1 -> the 2nd lowest.
    scores2 = np.array([0.8, 0.7, 0.0, 0.0, 0.0, 0.0], np.float32)
    assert recall_threshold([g, g], [scores, scores2], 0.75) == approx(0.7)
    assert recall_threshold([g, g], [scores, scores2], 0.74) == approx(0.7)
    assert recall_threshold([g, g], [scores, scores2], 0.76) == approx(0.3)
    with pytest.raises(ValueError, match="target_recall"):
        recall_threshold([g], [scores], 0.0)
    no_positive = hand_graph([0.0, 0.1], [0], [1], labels=[0])
    with pytest.raises(ValueError, match="no trainable true edge"):
        recall_threshold([no_positive], [np.array([0.5])], 0.99)


def test_prune_keeps_edges_above_threshold_and_drops_lonely_hits():
    g = _chain()
    scores = np.array([0.9, 0.3, 0.5, 0.1, 0.05, 0.2], np.float32)
    pruned, edge_index = prune(g, scores, 0.2)
    np.testing.assert_array_equal(edge_index, [0, 1, 2, 5])
    np.testing.assert_array_equal(pruned.edges[:, 0], [0, 1, 2, 5])  # feature = original edge index
    # hits 0, 1, 2, 3 (edges 0-2) and 4, 5 (edge 5): all kept; at 0.4 only 0, 1, 3 stay
    assert pruned.n_node == 6
    pruned, edge_index = prune(g, scores, 0.4)
    np.testing.assert_array_equal(edge_index, [0, 2])
    np.testing.assert_array_equal(pruned.hit_id, [1, 2, 4])
    np.testing.assert_array_equal(pruned.hit_id[pruned.senders], g.hit_id[g.senders[edge_index]])
    np.testing.assert_array_equal(pruned.hit_id[pruned.receivers], g.hit_id[g.receivers[edge_index]])
    np.testing.assert_array_equal(pruned.labels, [1, 0])
    assert pruned.train_mask.tolist() == [True, True]
    # truth pairs (hand_graph: one per edge) of two kept hits survive, renumbered, with their pT
    np.testing.assert_array_equal(pruned.hit_id[pruned.true_pairs], [[1, 2], [1, 4]])
    assert len(pruned.true_pt) == 2
    with pytest.raises(ValueError, match="6 edges"):
        prune(g, scores[:3], 0.4)


def test_scatter_scores_puts_pruned_scores_back_and_zero_elsewhere():
    g = _chain()
    _, edge_index = prune(g, np.array([0.9, 0.3, 0.5, 0.1, 0.05, 0.2]), 0.25)
    out = scatter_scores(g.n_edge, edge_index, np.array([0.7, 0.6, 0.1], np.float32))
    np.testing.assert_array_equal(out, np.array([0.7, 0.6, 0.1, 0, 0, 0], np.float32))


def test_filter_summary_by_hand():
    g = _chain()
    s = filter_summary([g], [np.array([0.9, 0.3, 0.5, 0.1, 0.05, 0.2])], 0.4)
    # 6 edges -> 2 kept (edges 0, 2); trainable positives: edges 0, 1 -> 1 kept; purity 2/6 -> 1/2
    assert s["edges_per_event_before"] == 6 and s["edges_per_event_after"] == 2
    assert s["kept_fraction"] == approx(2 / 6)
    assert s["recall"] == approx(0.5)
    assert s["purity_before"] == approx(2 / 6) and s["purity_after"] == approx(0.5)


def test_score_cache_round_trip_and_mismatch(tmp_path):
    g = _chain()
    scores = [np.linspace(0, 1, 6, dtype=np.float32)]
    path = tmp_path / "filter_scores.npz"
    assert load_scores(path, ["event1"], [g]) is None  # no cache yet
    save_scores(path, ["event1"], scores)
    got = load_scores(path, ["event1"], [g])
    np.testing.assert_allclose(got[0], scores[0], atol=1e-3)  # float16 on disk
    assert got[0].dtype == np.float32
    assert load_scores(path, ["event2"], [g]) is None  # another event
    other = hand_graph([0.0, 0.1], [0], [1])
    assert load_scores(path, ["event1"], [other]) is None  # another graph of that event
    assert not list(tmp_path.glob("*.tmp*"))
