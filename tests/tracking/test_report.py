"""The tracking report's figure label and the counts its efficiency figures are drawn from."""

import dataclasses

import numpy as np

from jaxhep.tracking import config, evaluate
from jaxhep.tracking.report import _counts, figure_label
from jaxhep.tracking.tracks import BinnedEfficiency


def test_label_is_trackml_in_atlas_style_with_the_simulated_pileup():
    quick = config.quick()
    label = figure_label(quick)
    assert (label.experiment, label.style, label.simulated) == ("TrackML", "ATLAS", True)
    assert label.conditions == r"$\langle\mu\rangle$ = 10"  # quick(): pile-up 10
    users = figure_label(dataclasses.replace(quick, data=dataclasses.replace(quick.data, path="events/")))
    assert not users.simulated and users.conditions == ""  # nothing claimed about a user's folder


def test_counts_recover_the_whole_counts_summed_over_events():
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    parts = [
        BinnedEfficiency(edges, None, None, np.array([7, 0, 3]), np.array([7, 0, 1])),
        BinnedEfficiency(edges, None, None, np.array([6, 0, 9]), np.array([6, 0, 0])),
    ]
    k, n = _counts(evaluate.sum_efficiencies(parts))
    assert np.array_equal(k, [13, 0, 1]) and np.array_equal(n, [13, 0, 12])
