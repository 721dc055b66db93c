"""The DUNE report's figure label."""

from types import SimpleNamespace

from jaxhep.dune.report import figure_label


def test_label_is_dune_and_says_simulation_only_for_the_simulated_sample():
    simulated = figure_label(SimpleNamespace(config={"dune": {"data": {"path": None}}}))
    assert (simulated.experiment, simulated.style, simulated.simulated) == ("DUNE", "DUNE", True)
    assert "supernova" in simulated.conditions
    users = figure_label(SimpleNamespace(config={"dune": {"data": {"path": "events.npz"}}}))
    assert not users.simulated and users.conditions == ""
