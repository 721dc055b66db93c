"""The DUNE simulator: kinematics, electron transport, images, labels, determinism and the cache."""

import os

import numpy as np
import pytest

from jaxhep.dune.images import CLUSTER_SHAPE, VOLUME_SHAPE
from jaxhep.dune.sim import argon, geometry, neutrino
from jaxhep.dune.sim.floor import READOUT_VOXEL_MM, scattering_floor
from jaxhep.dune.sim.readout import ReadoutConfig, trigger_primitives
from jaxhep.dune.sim.simulate import SimConfig, simulate_dataset, simulate_events
from jaxhep.dune.sim.transport import PRIMARY, Particles, TransportConfig, shower
from jaxhep.errors import InputError

FLAT = SimConfig(spectrum="flat", chunk=500)


@pytest.fixture(scope="module")
def es():
    return simulate_events(300, 5, "es", FLAT)


@pytest.fixture(scope="module")
def cc():
    return simulate_events(200, 6, "cc", FLAT, volume=False)


def _cos(a, b):
    return np.sum(a * b, axis=1)


def test_elastic_scattering_is_forward_and_obeys_its_kinematics():
    out = neutrino.elastic_scattering(np.random.default_rng(0), 5000)
    t, e_nu = out["electron_energy"], out["nu_energy"]
    assert np.all((t >= 5.0) & (t <= 50.0))
    assert np.all(t <= neutrino.es_max_kinetic(e_nu) + 1e-9)  # T_max = 2E^2 / (2E + m_e)
    cos = _cos(out["electron_direction"], out["nu_direction"])
    np.testing.assert_allclose(cos, neutrino.es_cos_theta(e_nu, t), atol=1e-9)
    # T >= 5 MeV: cos >= sqrt(5 / 6.02) = 0.91, so the mean is close to 1.
    assert cos.mean() > 0.95 and cos.min() > 0.9
    # The supernova spectrum (<E> = 12 MeV) times sigma ~ E: <E_nu> of the events is in 12-25 MeV.
    assert 12.0 < e_nu.mean() < 25.0


def test_charged_current_is_nearly_isotropic_and_loses_the_threshold():
    out = neutrino.charged_current(np.random.default_rng(1), 5000)
    cos = _cos(out["electron_direction"], out["nu_direction"])
    # 1 + a beta cos: <cos> = a / 3 averaged over Fermi (a = 1) and Gamow-Teller (a = -1/3) levels.
    assert abs(cos.mean()) < 0.1
    assert abs(np.mean(cos > 0) - 0.5) < 0.05
    t_expected = out["nu_energy"] - neutrino.CC_Q_VALUE - out["excitation"] - argon.ELECTRON_MASS
    np.testing.assert_allclose(out["electron_energy"], t_expected, atol=1e-9)
    np.testing.assert_allclose(out["gamma_energies"].sum(axis=1), out["excitation"], atol=1e-9)
    assert np.all(np.isin(out["excitation"], neutrino.CC_LEVELS_MEV))


def test_stopping_power_range_and_recombination():
    # ICRU 37 collision stopping power for electrons in LAr: 2.16 MeV/cm at 10 MeV, close to the MIP 2.1.
    assert 0.20 < argon.collision_stopping_power(10.0) < 0.23
    assert 0.69 < argon.recombination(0.21) < 0.71  # modified box, R ~ 0.7 at 2.1 MeV/cm
    # A 10 MeV electron travels a few cm; range grows with energy.
    r = argon.csda_range(np.array([1.0, 10.0, 50.0]))
    assert 3.0 < r[0] < 6.0 and 35.0 < r[1] < 50.0 and r[2] > 2.5 * r[1]


def _primaries(energies, seed=0, **kw):
    n = len(energies)
    rng = np.random.default_rng(seed)
    e = Particles.make(
        np.zeros((n, 3)), np.tile([0.0, 0.0, 1.0], (n, 1)), energies, np.arange(n), PRIMARY, True
    )
    none = Particles.make(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0), PRIMARY)
    return shower(rng, e, none, TransportConfig(**kw))


def test_track_length_and_energy_conservation():
    energies = np.repeat([5.0, 10.0, 30.0], 300)
    seg = _primaries(energies)
    deposited = np.bincount(seg.owner, seg.energy, minlength=energies.size)
    assert np.all(deposited <= energies + 1e-6)
    assert np.mean(deposited / energies) > 0.9  # the rest escapes as photons
    track = ~np.isnan(seg.path)
    length = np.zeros(energies.size)
    np.maximum.at(length, seg.owner[track], seg.path[track] + 1.5)
    mean = [length[energies == e].mean() for e in (5.0, 10.0, 30.0)]
    assert 15 < mean[0] < 30 and 30 < mean[1] < 50 and mean[2] > 1.8 * mean[1]  # mm
    # Scattering bends the track: the farthest deposit lies well short of the path length.
    reach = np.zeros(energies.size)
    np.maximum.at(reach, seg.owner[track], np.linalg.norm(seg.end[track], axis=1))
    assert np.mean(reach / length) < 0.8


def test_multiple_scattering_sets_a_floor_that_falls_with_energy():
    straight = _primaries(np.full(50, 10.0), multiple_scattering=False)
    track = straight.select(~np.isnan(straight.path))
    assert np.allclose(track.start[:, :2], 0.0) and np.allclose(track.end[:, :2], 0.0)
    floor = scattering_floor(
        energies=(5.0, 10.0, 30.0), lengths_mm=(20.0, np.inf), n=300, voxel_mm=READOUT_VOXEL_MM
    )
    axis = floor["axis_mean"]
    assert np.all(np.diff(axis, axis=0) < 0)  # better at higher energy
    assert np.all(axis[:, 0] < axis[:, 1])  # the start of a track beats the whole track
    assert 10.0 < axis[1, 0] < 35.0  # 10 MeV, first 2 cm: ~20 degrees


def test_trigger_primitives_are_consistent():
    """Every TP: peak inside its time over threshold, above its plane's threshold, integral >= peak."""
    rng = np.random.default_rng(4)
    kin = neutrino.charged_current(rng, 150)
    vertex = np.column_stack([rng.uniform(200, 3000, 150), np.zeros(150), np.zeros(150)])
    e = Particles.make(
        vertex, kin["electron_direction"], kin["electron_energy"], np.arange(150), PRIMARY, True
    )
    none = Particles.make(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0), PRIMARY)
    config = ReadoutConfig()
    tps = trigger_primitives(rng, shower(rng, e, none), config)
    start, tot, peak_t = tps["time_start"], tps["time_over_threshold"], tps["time_peak"]
    assert np.all(tot >= 1) and np.all((peak_t >= start) & (peak_t < start + tot))
    assert np.all(tps["adc_peak"] >= np.asarray(config.threshold)[tps["plane"]])
    assert np.all(tps["adc_integral"] >= tps["adc_peak"])
    assert set(np.unique(tps["plane"])) == {0, 1, 2}
    # Without 40K* photons, only bremsstrahlung photons make non-primary charge.
    frac = tps["primary_fraction"]
    assert np.all((frac >= 0) & (frac <= 1)) and np.mean(frac > 0.99) > 0.6  # ~0.7 at <T> = 16 MeV


def test_event_images_and_labels(es, cc):
    for data in (es, cc):
        n = len(data["energy"])
        for key in ("images_u", "images_v", "images_x"):
            img = data[key]
            assert img.shape == (n, *CLUSTER_SHAPE) and img.dtype == np.float32
            assert img.min() >= 0.0 and img.max() <= 1.0
            assert np.all((img > 0).sum(axis=(1, 2)) > 0)  # every row has a matched cluster
            # Centred: the box of lit rows (ticks) is centred on row 64 (cropped clusters aside).
            lit = [np.flatnonzero(r) for r in (img > 0).any(axis=2)]
            assert abs(np.median([(r[0] + r[-1]) / 2 for r in lit]) - 64) <= 1.5
        np.testing.assert_allclose(np.linalg.norm(data["direction"], axis=1), 1.0, atol=1e-5)
        assert np.all((data["energy"] >= 5.0) & (data["energy"] <= 50.0))
    assert es["volume_x"].shape == (len(es["energy"]), *VOLUME_SHAPE) and es["volume_x"].dtype == np.float16
    assert "volume_x" not in cc
    assert np.all(es["interaction"] == 0) and np.all(cc["interaction"] == 1)
    assert _cos(es["direction"], es["nu_direction"]).mean() > 0.95
    assert abs(_cos(cc["direction"], cc["nu_direction"]).mean()) < 0.15
    # CC events carry de-excitation photons: more background clusters per event than ES.
    assert np.mean(cc["mt_label"] == 0) > np.mean(es["mt_label"] == 0)


def test_main_track_labels(es):
    n = len(es["energy"])
    assert np.bincount(es["mt_event"][es["mt_label"] == 1], minlength=n).tolist() == [1] * n
    assert es["mt_primary_fraction"][es["mt_label"] == 1].mean() > 0.9
    assert es["mt_images"].shape[1:] == CLUSTER_SHAPE and len(es["mt_label"]) == len(es["mt_images"])


def _image_axis(img, row_mm, col_mm):
    r, c = np.nonzero(img > 0)
    w = img[r, c]
    p = np.stack([r * row_mm, c * col_mm], 1)
    q = p - (w[:, None] * p).sum(0) / w.sum()
    return np.linalg.eigh((w[:, None, None] * q[:, :, None] * q[:, None, :]).sum(0))[1][:, -1]


def test_images_show_the_projected_direction(es):
    """The principal axis of each plane's image follows the true direction projected on that plane:
    rows are ticks (0.8 mm of x), columns are wires (pitch along the plane's pitch direction)."""
    for plane in geometry.PLANES:
        errors = []
        for img, d in zip(es[f"images_{plane.name.lower()}"], es["direction"]):
            true = np.array([d[0], d @ plane.pitch_direction])
            if np.linalg.norm(true) < 0.3:
                continue  # nearly along the wires: no projected direction
            axis = _image_axis(img, geometry.TICK_MM, plane.pitch_mm)
            errors.append(np.degrees(np.arccos(min(1.0, abs(axis @ true) / np.linalg.norm(true)))))
        assert np.median(errors) < 25.0, plane.name  # random axes: median 45 degrees


def test_deterministic_per_seed():
    a = simulate_events(40, 3, "mixed", FLAT, volume=False, maintrack=False)
    b = simulate_events(40, 3, "mixed", FLAT, volume=False, maintrack=False)
    c = simulate_events(40, 4, "mixed", FLAT, volume=False, maintrack=False)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["direction"], c["direction"])
    assert 0 < a["interaction"].sum() < 40


def test_dataset_is_written_atomically_and_cached(tmp_path):
    path = tmp_path / "sim.npz"
    simulate_dataset(path, 30, 1, "es", FLAT, volume=False, maintrack=False)
    stamp = os.stat(path).st_mtime_ns
    assert simulate_dataset(path, 30, 1, "es", FLAT, volume=False, maintrack=False) == path
    assert os.stat(path).st_mtime_ns == stamp  # not simulated again
    assert [p.name for p in tmp_path.iterdir()] == ["sim.npz"]  # no temporary left behind
    with pytest.raises(InputError, match="different simulation"):
        simulate_dataset(path, 30, 2, "es", FLAT, volume=False, maintrack=False)
