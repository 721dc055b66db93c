"""Efficiency bookkeeping of the evaluation: per-bin counts worked out by hand."""

from types import SimpleNamespace

import numpy as np
from scipy import stats

from jaxhep.tracking import evaluate
from jaxhep.tracking.tracks import BinnedEfficiency


def test_edge_efficiency_counts_every_true_edge_by_particle_pt():
    # Edge pT 0 = fake edge; 0.5 GeV edges are true but below the training cut (label 0).
    graph = SimpleNamespace(
        edge_pt=np.array([0.0, 0.5, 0.5, 2.0, 2.0, 2.0]),
        labels=np.array([0, 0, 0, 1, 1, 1.0]),
    )
    scores = np.array([0.9, 0.8, 0.1, 0.7, 0.2, 0.6])
    out = evaluate.edge_efficiency_vs([graph], [scores], 0.5, "edge_pt", np.array([0.1, 1.0, 10.0]))
    assert out["n"] == [2, 3]
    np.testing.assert_allclose(out["efficiency"], [1 / 2, 2 / 3])
    assert out["k"] == [1, 2]
    for b, (k, n) in enumerate([(1, 2), (2, 3)]):  # 68.27 % Clopper-Pearson, as scipy computes it
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.682689492137086, method="exact")
        np.testing.assert_allclose([out["lo"][b], out["hi"][b]], [ci.low, ci.high], rtol=1e-9)


def test_summed_efficiencies_add_counts_before_dividing():
    edges = np.array([0.0, 1.0, 2.0])
    a = BinnedEfficiency(edges, np.array([1.0, np.nan]), np.zeros(2), np.array([1, 0]), np.array([1, 0]))
    b = BinnedEfficiency(edges, np.array([0.0, 0.5]), np.zeros(2), np.array([3, 4]), np.array([0, 2]))
    out = evaluate.sum_efficiencies([a, b])
    assert out["n"] == [4, 4]
    np.testing.assert_allclose(out["efficiency"], [0.25, 0.5])  # not the mean of 1.0 and 0.0
    assert out["k"] == [1, 2]
    assert out["lo"][0] > 0 and out["hi"][0] < 1  # the interval of the summed counts, 1 of 4


def test_tracks_pick_the_edge_threshold_that_scores_best(tmp_path):
    from jaxhep.tracking import config
    from jaxhep.tracking.graph import build_graph, hit_positions
    from jaxhep.tracking.io import read_event
    from jaxhep.tracking.score import trackml_score
    from jaxhep.tracking.sim.simulate import simulate_dataset
    from jaxhep.tracking.tracks import build_tracks

    simulate_dataset(tmp_path, 1, seed=3, pileup=5)
    prefix = str(tmp_path / "event000001000")
    event = read_event(prefix)
    graph = build_graph(event, pt_floor=0.2, pt_min=None)
    # True edges score 0.57, fakes at most 0.45: thresholds 0.5 and 0.55 keep exactly the true edges,
    # thresholds above 0.57 keep nothing (every hit alone scores 0).
    rng = np.random.default_rng(0)
    scores = np.where(graph.labels > 0, 0.57, rng.uniform(0.0, 0.45, graph.n_edge))
    cfg = config.quick()
    best, by_threshold = evaluate.score_threshold([prefix], [graph], [scores], cfg)
    assert list(by_threshold) == evaluate.TRACK_THRESHOLDS.tolist()
    assert by_threshold[best] == max(by_threshold.values()) and best <= 0.55
    assert by_threshold[0.6] == 0.0
    t = event.truth
    args = (graph.n_node, graph.senders, graph.receivers, graph.labels, 0.5, "walk", hit_positions(graph))
    perfect = trackml_score(t["hit_id"], t["particle_id"], t["weight"], graph.hit_id, build_tracks(*args))
    assert by_threshold[0.5] == by_threshold[0.55] == perfect > 0.5
