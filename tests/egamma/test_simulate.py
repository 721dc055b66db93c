"""The e/γ shower simulator: layout, determinism, energy, and the physics that separates the classes."""

import dataclasses

import h5py
import numpy as np
import pytest

from jaxhep.egamma.sim import gflash, tracker
from jaxhep.egamma.sim.simulate import (
    ShowerConfig,
    default_files,
    simulate_events,
    simulate_showers,
    write_hdf5,
)
from tests.approx import approx

N = 2000


@pytest.fixture(scope="module")
def electrons():
    return simulate_events(N, "electron", 1)


@pytest.fixture(scope="module")
def photons():
    return simulate_events(N, "photon", 2)


def _phi_eta_width(X):
    """Energy-weighted RMS spread in η and φ over the 7x7 crystals around the maximum, [n] each."""
    e = X[:, 13:20, 13:20, 0].astype(np.float64)
    d = np.arange(-3, 4)
    tot = e.sum((1, 2))
    widths = []
    for profile in (e.sum(2), e.sum(1)):  # η (rows), φ (columns)
        mean = (profile * d).sum(1) / tot
        widths.append(np.sqrt((profile * d**2).sum(1) / tot - mean**2))
    return widths


def test_layout(electrons, photons):
    for showers, label in ((electrons, 1.0), (photons, 0.0)):
        X, y = showers.X, showers.y
        assert X.shape == (N, 32, 32, 2) and X.dtype == np.float32
        assert y.shape == (N,) and y.dtype == np.float32 and (y == label).all()
        energy, time = X[..., 0], X[..., 1]
        assert (energy >= 0).all() and np.isfinite(X).all()
        assert ((energy == 0) | (energy > ShowerConfig().zs_threshold_gev)).all()  # zero suppression
        assert (time[energy == 0] == 0).all()
        # crops centred on the most energetic crystal, as the real IMGCROPS
        assert (energy.reshape(N, -1).argmax(1) == 16 * 32 + 16).mean() > 0.99
        # sparse like the real crops: a few tens of crystals above threshold
        assert 10 < (energy > 0).sum((1, 2)).mean() < 80


def test_deterministic_for_a_seed():
    a = simulate_showers(50, "electron", 7)
    b = simulate_showers(50, "electron", 7)
    c = simulate_showers(50, "electron", 8)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    assert simulate_showers(0, "photon", 1)[0].shape == (0, 32, 32, 2)
    with pytest.raises(ValueError):
        simulate_showers(5, "muon", 1)


def test_energy_sum(electrons, photons):
    # E = pT cosh(eta) ~ 50-110 GeV; the 32x32 crop contains ~99 % of it (GFlash radial profile,
    # rear leakage of 25.8 X0 crystals ~0), plus ~1.4 GeV of pile-up and ~0.7 GeV of noise hits.
    for showers in (electrons, photons):
        ratio = showers.X[..., 0].sum((1, 2)) / showers.energy_gev
        assert 0.99 < ratio.mean() < 1.05
        assert np.median(ratio) > 0.97
    quiet = dataclasses.replace(ShowerConfig(), pileup_mean=0.0, noise_gev=1e-3, zs_threshold_gev=3e-3)
    clean = simulate_events(500, "photon", 3, quiet)
    ratio = clean.X[..., 0].sum((1, 2)) / clean.energy_gev
    assert 0.97 < ratio.mean() < 1.0


def test_electrons_wider_in_phi(electrons, photons):
    eta_e, phi_e = _phi_eta_width(electrons.X)
    eta_g, phi_g = _phi_eta_width(photons.X)
    unconverted = ~photons.converted
    assert phi_e.mean() > phi_g.mean()
    assert phi_e.mean() > 1.2 * phi_g[unconverted].mean()
    assert phi_e.mean() > 1.2 * eta_e.mean()
    # the bend and brem are along phi only: eta widths alike, unconverted photons round
    assert abs(eta_e.mean() - eta_g.mean()) < 0.05 * eta_g.mean()
    assert phi_g[unconverted].mean() == approx(eta_g[unconverted].mean(), rel=0.05)
    # a conversion pair opens in phi: converted photons are the widest of all (electron-like)
    assert phi_g[~unconverted].mean() > 1.3 * phi_g[unconverted].mean()


def test_conversion_rate(electrons, photons):
    expected = 1.0 - np.exp(-tracker.CONVERSION_PER_X0 * tracker.tracker_material_x0(np.abs(photons.eta)))
    assert photons.converted.mean() == approx(expected.mean(), abs=0.035)
    assert 0.3 < expected.mean() < 0.6  # 0.4-1.8 X0 over |eta| < 1.44
    assert not electrons.converted.any()


def test_tracker_bend_and_brem():
    n = 4000
    rng = np.random.default_rng(0)
    eta = np.zeros(n)
    charge = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    # No material: the electron lands R / (2 Rc) = 0.0147 rad (0.85 crystal) from the photon line.
    bare = tracker.propagate(np.ones(n, bool), eta, charge, 50.0, rng, material_scale=0.0)
    bend = tracker.R_ECAL_M / (2 * tracker.curvature_radius_m(50.0))
    assert bend == approx(0.0147, abs=2e-4)
    landed = (bare.fraction * bare.phi).sum(1)
    np.testing.assert_allclose(landed, charge * bend, rtol=1e-9)
    # Bethe-Heitler: the electron keeps <f> = exp(-x) of its energy; the rest lands in between.
    dep = tracker.propagate(np.ones(n, bool), eta, charge, 50.0, rng)
    x = tracker.tracker_material_x0(np.zeros(1))[0]
    kept = dep.fraction[:, -2]  # the track's slot at the ECAL front
    assert kept.mean() == approx(np.exp(-x), abs=0.02)
    np.testing.assert_allclose(dep.fraction.sum(1), 1.0, rtol=1e-12)
    assert not dep.is_photon[:, -2].any()  # the surviving slot is the charged track
    # brem photons land between the undeflected line and where the (lighter) electron lands
    radiated = dep.fraction[:, :-2] > 0
    phi_brem = dep.phi[:, :-2] * charge[:, None]
    phi_end = np.broadcast_to((dep.phi[:, -2] * charge)[:, None], phi_brem.shape)
    assert (phi_brem[radiated] >= -1e-12).all() and (phi_brem[radiated] <= phi_end[radiated] + 1e-12).all()
    assert (dep.phi[:, -2] * charge).mean() > bend  # it lost energy, so it bent more


def test_gflash_containment():
    # GFlash / textbook: ~90 % of the energy within 1 Moliere radius, ~95 % within 2.
    rng = np.random.default_rng(0)
    energy = np.full(20000, 70.0)
    alpha, beta, t_max = gflash.longitudinal_params(energy, rng)
    assert t_max.mean() == approx(np.log(70.0 / gflash.CRITICAL_ENERGY_GEV) - 0.858, abs=0.3)
    _, dx, dy = gflash.sample_spots(alpha, beta, t_max, energy, rng)
    r = np.hypot(dx, dy)
    assert 0.85 < (r < 1).mean() < 0.93 and 0.94 < (r < 2).mean() < 0.98


def test_write_and_default_files(tmp_path):
    X, y = simulate_showers(40, "photon", 1)
    path = write_hdf5(tmp_path / "a.hdf5", X, y)
    with h5py.File(path) as f:
        assert f["X"].chunks == (1, 32, 32, 2) and f["X"].compression == "gzip"
        np.testing.assert_array_equal(f["X"][()], X)
        np.testing.assert_array_equal(f["y"][()], y)
    assert [p.name for p in tmp_path.iterdir()] == ["a.hdf5"]  # no temporary left behind

    photon, electron = default_files(tmp_path, n_per_class=30, seed=4)
    assert photon.name == "SinglePhotonPt50_IMGCROPS_n30_sim.hdf5"
    assert electron.name == "SingleElectronPt50_IMGCROPS_n30_sim.hdf5"
    stamp = electron.stat().st_mtime_ns
    assert default_files(tmp_path, n_per_class=30, seed=4) == [photon, electron]
    assert electron.stat().st_mtime_ns == stamp  # reused, not rewritten
    with h5py.File(electron) as f:
        assert f["X"].shape == (30, 32, 32, 2) and (f["y"][()] == 1).all()
