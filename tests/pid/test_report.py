"""The PID report's figure label and the confusion counts its efficiency-purity figure is drawn from."""

from types import SimpleNamespace

import numpy as np

from jaxhep.pid.report import _confusion_counts, figure_label
from jaxhep.pid.species import SPECIES


def test_label_says_simulation_only_for_the_simulated_sample():
    simulated = figure_label(SimpleNamespace(config={"pid": {"data": {"path": None}}}))
    assert (simulated.experiment, simulated.style, simulated.simulated) == ("ALICE", "ALICE", True)
    assert simulated.conditions == "Pb–Pb"
    users = figure_label(SimpleNamespace(config={"pid": {"data": {"path": "tracks.parquet"}}}))
    assert not users.simulated and users.conditions == ""


def test_confusion_counts_undo_the_row_normalisation():
    counts = np.array([[50, 3, 2, 0], [4, 7, 1, 0], [0, 2, 20, 1], [1, 0, 0, 9]])
    support = counts.sum(axis=1)
    m = {"confusion": (counts / support[:, None]).tolist(), "support": dict(zip(SPECIES, support.tolist()))}
    assert np.array_equal(_confusion_counts(m), counts)
