"""The e/gamma report's figure label."""

from types import SimpleNamespace

from jaxhep.egamma.report import figure_label


def test_label_is_cms_and_says_simulation_only_for_the_simulated_sample():
    simulated = figure_label(SimpleNamespace(config={"egamma": {"data": {"paths": []}}}))
    assert (simulated.experiment, simulated.style, simulated.simulated) == ("CMS", "CMS", True)
    assert "50 GeV" in simulated.conditions  # the simulated guns' pT (ShowerConfig.pt_gev)
    users = figure_label(SimpleNamespace(config={"egamma": {"data": {"paths": ["a.hdf5"]}}}))
    assert not users.simulated and users.conditions == ""
