"""Efficiency bookkeeping of the evaluation: per-bin counts worked out by hand."""

from types import SimpleNamespace

import numpy as np

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
    np.testing.assert_allclose(out["error"], [np.sqrt(0.25 / 2), np.sqrt(2 / 9 / 3)])


def test_summed_efficiencies_add_counts_before_dividing():
    edges = np.array([0.0, 1.0, 2.0])
    a = BinnedEfficiency(edges, np.array([1.0, np.nan]), np.zeros(2), np.array([1, 0]), np.array([1, 0]))
    b = BinnedEfficiency(edges, np.array([0.0, 0.5]), np.zeros(2), np.array([3, 4]), np.array([0, 2]))
    out = evaluate.sum_efficiencies([a, b])
    assert out["n"] == [4, 4]
    np.testing.assert_allclose(out["efficiency"], [0.25, 0.5])  # not the mean of 1.0 and 0.0
    np.testing.assert_allclose(out["error"], [np.sqrt(0.25 * 0.75 / 4), np.sqrt(0.25 / 4)])
