"""The PID simulator against the nominal formulas and the seed's numbers."""

import numpy as np
import pytest

from jaxhep.pid.bayes import DEFAULT_PRIORS, bayes_posterior
from jaxhep.pid.sim import response
from jaxhep.pid.sim.simulate import SimConfig, default_sample, simulate_tracks
from jaxhep.pid.species import (
    BAYES_PROBS,
    FEATURES,
    LABEL,
    MASSES_GEV,
    TOF_NSIGMA,
    TPC_NSIGMA,
    labels_from_pdg,
)
from tests.approx import approx

N = 200_000


@pytest.fixture(scope="module")
def tracks():
    return simulate_tracks(N, 11)


@pytest.fixture(scope="module")
def ideal():
    return simulate_tracks(N, 12, SimConfig.ideal())


def _p(cols):
    return response.momentum(cols["pt"], cols["eta"])


def test_columns_dtypes_and_ranges(tracks):
    assert set(tracks) == {*FEATURES, LABEL}
    assert all(tracks[name].dtype == np.float32 and tracks[name].shape == (N,) for name in FEATURES)
    assert tracks[LABEL].dtype == np.int64
    assert set(np.unique(tracks[LABEL])) == {-2212, -321, -211, -11, 11, 211, 321, 2212}
    pt = tracks["pt"]
    assert np.isfinite(pt).all() and pt.min() >= 0.1 and pt.max() <= 10.0
    assert np.abs(tracks["eta"]).max() <= 0.9
    assert set(np.unique(tracks["has_tpc"])) == {0.0, 1.0} and set(np.unique(tracks["has_tof"])) == {0, 1}


def test_deterministic_for_a_seed():
    a, b, c = simulate_tracks(3000, 5), simulate_tracks(3000, 5), simulate_tracks(3000, 6)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["pt"], c["pt"])


def test_abundances_and_availability(tracks):
    labels = labels_from_pdg(tracks[LABEL])
    np.testing.assert_allclose(np.bincount(labels, minlength=4) / N, DEFAULT_PRIORS, atol=0.004)
    pt, has_tpc, has_tof = tracks["pt"], tracks["has_tpc"] > 0, tracks["has_tof"] > 0
    assert has_tpc.mean() == approx(0.896, abs=0.004)
    assert has_tof.mean() == approx(0.40, abs=0.01)
    window = (pt > 0.7) & (pt < 1.5)
    assert has_tof[window].mean() == approx(0.085, abs=0.006)
    assert not (has_tof & ~has_tpc).any()  # TOF matching starts from a TPC track
    assert not has_tof[pt < 0.277].any()  # curls up before the TOF radius at 0.5 T
    assert np.isnan(tracks["bayes_prob_pi"]).mean() == approx(0.03, abs=0.003)
    assert np.isnan(tracks["dca_xy"]).mean() == approx(0.01, abs=0.002)
    # Missing measurements are NaN exactly where the flag is 0.
    np.testing.assert_array_equal(np.isnan(tracks["tpc_signal"]), ~has_tpc)
    np.testing.assert_array_equal(np.isnan(tracks["tof_beta"]), ~has_tof)


def test_species_mix_changes_with_momentum(tracks):
    labels, pt = labels_from_pdg(tracks[LABEL]), tracks["pt"]
    low = np.bincount(labels[pt < 0.5], minlength=4) / (pt < 0.5).sum()
    high = np.bincount(labels[(pt > 1) & (pt < 3)], minlength=4) / ((pt > 1) & (pt < 3)).sum()
    assert high[2] > 2 * DEFAULT_PRIORS[2] and low[2] < DEFAULT_PRIORS[2]  # protons: harder spectrum


def test_tpc_signal_follows_bethe_bloch_without_imperfections(ideal):
    labels, p = labels_from_pdg(ideal[LABEL]), _p(ideal)
    pions = (labels == 0) & (p > 0.48) & (p < 0.52) & (ideal["has_tpc"] > 0)
    expected = response.TPC_MIP * response.bethe_bloch_aleph(p[pions] / MASSES_GEV[0])
    assert np.mean(ideal["tpc_signal"][pions]) == approx(np.mean(expected), rel=0.002)
    # By hand at p = 0.5: beta*gamma = 3.5824, beta = 0.96317, beta^p4 = 0.90293,
    # (beta*gamma)^-p5 = 4.264e-4, bracket = 19.9768 - 0.90293 + 7.7601 = 26.834,
    # BB = 0.0320981 * 26.834 / 0.90293 = 0.95393 -> 50 * BB = 47.70.
    assert response.tpc_expected_signal(np.array(0.5))[0] == approx(47.70, abs=0.02)
    nsigma = ideal["tpc_nsigma_pi"][pions]
    assert np.mean(nsigma) == approx(0.0, abs=0.03) and np.std(nsigma) == approx(1.0, abs=0.03)


def test_tpc_eta_drift_is_the_documented_one(tracks):
    cfg = SimConfig()
    labels, p, eta = labels_from_pdg(tracks[LABEL]), _p(tracks), np.abs(tracks["eta"])
    pions = (labels == 0) & (p > 0.4) & (p < 0.6) & (tracks["has_tpc"] > 0)
    ratio = tracks["tpc_signal"] / response.tpc_expected_signal(p)[:, 0]

    def gain(lo, hi):  # mean of g(eta) = 1 + a (2|eta|/eta_max - 1) over lo <= |eta| < hi
        return 1.0 + cfg.tpc_eta_gain * ((lo + hi) / cfg.eta_max - 1.0)

    centre, edge = pions & (eta < 0.1), pions & (eta >= 0.8)
    assert np.mean(ratio[edge]) / np.mean(ratio[centre]) == approx(gain(0.8, 0.9) / gain(0, 0.1), abs=0.006)
    # The merged-cluster tail lifts the mean by ~ f * scale * sigma (~0.4 %) on top of the gain.
    assert np.mean(ratio[centre]) == approx(gain(0, 0.1), abs=0.007)
    assert np.mean(ratio[pions]) == approx(1.0, abs=0.007)


def test_tof_beta_of_stiff_tracks(ideal, tracks):
    for cols in (ideal, tracks):
        labels, p = labels_from_pdg(cols[LABEL]), _p(cols)
        stiff = (cols["has_tof"] > 0) & (p > 3.0)
        beta_true = response.beta_of(p[stiff], np.asarray(MASSES_GEV)[labels[stiff]])
        assert np.median(cols["tof_beta"][stiff] / beta_true) == approx(1.0, abs=0.001)
    nsigma = ideal["tof_nsigma_pi"][(ideal["has_tof"] > 0) & (labels_from_pdg(ideal[LABEL]) == 0)]
    assert np.mean(nsigma) == approx(0.0, abs=0.03) and np.std(nsigma) == approx(1.0, abs=0.03)


def test_derived_columns_use_the_nominal_response(tracks):
    """n_sigma and Bayes columns are what O2 would compute from the measured signals."""
    p, rows = _p(tracks), slice(0, 20_000)
    tpc = np.stack([tracks[c] for c in TPC_NSIGMA], axis=1)[rows]
    np.testing.assert_allclose(
        tpc, response.tpc_nsigma(tracks["tpc_signal"][rows], p[rows]), rtol=2e-5, atol=1e-4
    )
    length = response.track_length_cm(tracks["pt"], tracks["eta"])[rows]
    time = length / (response.C_CM_PER_PS * tracks["tof_beta"][rows].astype(np.float64))
    tof = np.stack([tracks[c] for c in TOF_NSIGMA], axis=1)[rows]
    np.testing.assert_allclose(tof, response.tof_nsigma(time, p[rows], length), rtol=1e-3, atol=2e-3)
    expected = bayes_posterior(
        tpc, tof, tracks["has_tpc"][rows], tracks["has_tof"][rows], DEFAULT_PRIORS,
        tof_sigma=response.tof_expected_sigma(p[rows], length),
    )  # fmt: skip
    bayes = np.stack([tracks[c] for c in BAYES_PROBS], axis=1)[rows]
    present = np.isfinite(bayes).all(axis=1)
    np.testing.assert_allclose(bayes[present], expected[present], atol=2e-3)


def test_default_sample_is_written_once(tmp_path):
    path = default_sample(tmp_path, n=2000, seed=3)
    assert path == tmp_path / "pid" / "alice_pbpb_run3_sim_n2000_seed3.parquet"
    stamp = path.stat().st_mtime_ns
    assert default_sample(tmp_path, n=2000, seed=3) == path and path.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left behind


def test_tof_formulas_by_hand():
    # Pion, p = 1 GeV/c, L = 370 cm: t = 370 * sqrt(0.13957^2 + 1) / 0.0299792458 = 12461.6 ps.
    t = response.tof_expected_time(np.array(1.0), np.array(370.0))
    assert t[0] == approx(12461.6, abs=0.2)
    assert response.tof_beta(t[0], 370.0) == approx(1 / np.sqrt(1 + 0.13957**2), rel=1e-9)
    # A stiff track reaches r = 370 cm after ~370 cm / sin(theta); a soft one after more, or never.
    assert response.track_length_cm(np.array(50.0), np.array(0.5)) == approx(370 * np.cosh(0.5), rel=1e-3)
    assert response.track_length_cm(np.array(0.5), np.array(0.0)) > 380.0
    assert np.isnan(response.track_length_cm(np.array(0.27), np.array(0.0)))
    # sigma: 80 ps for a stiff pion, momentum term on top for a slow proton.
    sigma = response.tof_expected_sigma(np.array(2.0), np.array(400.0))
    assert sigma[0] == approx(80.0, abs=0.5) and sigma[2] > 90.0
