"""The TrackML simulator: geometry, helices, noise, weights, determinism, event size."""

import time

import numpy as np
import pytest

from jaxhep.tracking.sim.detector import GENERIC_DETECTOR, BarrelLayer
from jaxhep.tracking.sim.propagate import PT_TO_RADIUS_MM, propagate
from jaxhep.tracking.sim.simulate import generate_particles, simulate_dataset, simulate_event
from tests.approx import approx


@pytest.fixture(scope="module")
def small_event():
    return simulate_event(7, pileup=10)


def _layers():
    return {(layer.volume_id, layer.layer_id): layer for layer in GENERIC_DETECTOR.layers}


def test_hits_lie_on_their_layers(small_event):
    hits, truth = small_event["hits"], small_event["truth"]
    layers = _layers()
    keys = set(zip(hits["volume_id"].tolist(), hits["layer_id"].tolist()))
    assert keys <= set(layers)
    # Every volume of the detector is hit in a 10-interaction event.
    assert {v for v, _ in keys} == {7, 8, 9, 12, 13, 14, 16, 17, 18}
    r_hit = np.hypot(hits["x"], hits["y"])
    r_true = np.hypot(truth["tx"], truth["ty"])
    for (volume, layer_id), layer in layers.items():
        m = (hits["volume_id"] == volume) & (hits["layer_id"] == layer_id)
        if not m.any():
            continue
        if isinstance(layer, BarrelLayer):
            np.testing.assert_allclose(r_hit[m], layer.radius, rtol=1e-5)
            np.testing.assert_allclose(r_true[m], layer.radius, rtol=1e-5)
            assert np.all(np.abs(hits["z"][m]) <= layer.half_length + 1e-3)
        else:
            np.testing.assert_allclose(hits["z"][m], layer.z, rtol=1e-6)
            np.testing.assert_allclose(truth["tz"][m], layer.z, rtol=1e-6)
            assert np.all((r_hit[m] >= layer.r_min - 1e-3) & (r_hit[m] <= layer.r_max + 1e-3))
    # Negative endcap: layer ids grow with z, so layer 2 of volume 7 is at z = -1500.
    assert np.all(hits["z"][(hits["volume_id"] == 7) & (hits["layer_id"] == 2)] == -1500.0)


def test_measurement_is_close_to_truth(small_event):
    hits, truth = small_event["hits"], small_event["truth"]
    real = truth["particle_id"] != 0
    pixel = real & np.isin(hits["volume_id"], (7, 8, 9))
    dphi = np.angle(np.exp(1j * (np.arctan2(hits["y"], hits["x"]) - np.arctan2(truth["ty"], truth["tx"]))))
    rphi = (dphi * np.hypot(hits["x"], hits["y"]))[pixel & (hits["volume_id"] == 8)]
    # Pixel r-phi resolution 50 um / sqrt(12) = 14.4 um.
    assert 0.012 < np.std(rphi) < 0.017
    assert np.all(np.abs(hits["z"][pixel] - truth["tz"][pixel]) < 0.5)


def test_high_pt_track_is_a_helix_of_the_right_radius():
    event = simulate_event(11, pileup=5, multiple_scattering=False)
    parts, truth = event["particles"], event["truth"]
    pt = np.hypot(parts["px"], parts["py"])
    chosen = np.flatnonzero((pt > 1.0) & (parts["nhits"] >= 6))
    assert len(chosen) >= 3
    for i in chosen[:5]:
        m = truth["particle_id"] == parts["particle_id"][i]
        x = np.append(truth["tx"][m], parts["vx"][i]).astype(np.float64)
        y = np.append(truth["ty"][m], parts["vy"][i]).astype(np.float64)
        # Algebraic circle fit: x^2 + y^2 + D x + E y + F = 0.
        a = np.stack([x, y, np.ones_like(x)], axis=1)
        d, e, f = np.linalg.lstsq(a, -(x**2 + y**2), rcond=None)[0]
        radius = np.sqrt(d**2 / 4 + e**2 / 4 - f)
        expected = PT_TO_RADIUS_MM * pt[i] / GENERIC_DETECTOR.b_field
        assert radius == approx(expected, rel=5e-3)
        # A positive particle turns clockwise: its momentum's phi decreases along the path.
        last = np.argmax(np.abs(truth["tz"][m] - parts["vz"][i]))
        dphi = np.angle(
            np.exp(
                1j
                * (
                    np.arctan2(truth["tpy"][m][last], truth["tpx"][m][last])
                    - np.arctan2(parts["py"][i], parts["px"][i])
                )
            )
        )
        assert np.sign(dphi) == -parts["q"][i]
        # z grows linearly with the transverse arc: |p| and pz are kept without material.
        np.testing.assert_allclose(truth["tpz"][m], parts["pz"][i], rtol=1e-5)


def test_noise_ids_counts_and_weights(small_event):
    hits, truth, parts, cells = (small_event[k] for k in ("hits", "truth", "particles", "cells"))
    noise = truth["particle_id"] == 0
    assert abs(noise.mean() - 0.1) < 0.01
    np.testing.assert_array_equal(hits["hit_id"], np.arange(1, len(hits["hit_id"]) + 1))
    np.testing.assert_array_equal(truth["hit_id"], hits["hit_id"])
    assert parts["particle_id"].dtype == np.int64
    assert np.all(parts["particle_id"] != 0) and len(np.unique(parts["particle_id"])) == len(
        parts["particle_id"]
    )
    # nhits counts the truth rows of each particle.
    counts = {p: c for p, c in zip(*np.unique(truth["particle_id"][~noise], return_counts=True))}
    assert [counts.get(p, 0) for p in parts["particle_id"]] == parts["nhits"].tolist()
    w = truth["weight"].astype(np.float64)
    assert w.sum() == approx(1.0, abs=1e-5)
    assert np.all(w >= 0) and np.all(w[noise] == 0)
    short = np.isin(truth["particle_id"], parts["particle_id"][parts["nhits"] < 4])
    assert np.all(w[short] == 0)
    # Every hit has cells, and cells name existing hits.
    assert set(np.unique(cells["hit_id"]).tolist()) == set(hits["hit_id"].tolist())


def test_cluster_size_grows_with_crossing_angle(small_event):
    hits, truth, cells = small_event["hits"], small_event["truth"], small_event["cells"]
    size = np.bincount(cells["hit_id"], minlength=len(hits["hit_id"]) + 1)[1:]
    barrel_pixel = (hits["volume_id"] == 8) & (truth["particle_id"] != 0)
    tan_dip = np.abs(truth["tpz"]) / np.maximum(np.hypot(truth["tpx"], truth["tpy"]), 1e-9)
    steep, flat = barrel_pixel & (tan_dip > 3), barrel_pixel & (tan_dip < 0.3)
    assert size[steep].mean() > 3 * size[flat].mean()


def test_deterministic_for_a_seed():
    a, b, c = simulate_event(3, pileup=3), simulate_event(3, pileup=3), simulate_event(4, pileup=3)
    for part in a:
        for col in a[part]:
            np.testing.assert_array_equal(a[part][col], b[part][col])
    assert len(a["hits"]["x"]) != len(c["hits"]["x"]) or not np.array_equal(a["hits"]["x"], c["hits"]["x"])


def test_dataset_skips_existing_events(tmp_path):
    simulate_dataset(tmp_path, 2, seed=5, pileup=2)
    first = sorted(tmp_path.iterdir())
    stamps = {p.name: p.stat().st_mtime_ns for p in first}
    prefixes = simulate_dataset(tmp_path, 3, seed=5, pileup=2)
    assert [p.name for p in prefixes] == ["event000001000", "event000001001", "event000001002"]
    assert len(list(tmp_path.iterdir())) == 12
    assert all(p.stat().st_mtime_ns == stamps[p.name] for p in first)
    # An event's content depends only on (seed, event id), not on what was made before.
    alone = tmp_path / "alone"
    simulate_dataset(alone, 1, seed=5, pileup=2, first_event_id=1002)
    assert (alone / "event000001002-hits.csv").read_bytes() == (
        tmp_path / "event000001002-hits.csv"
    ).read_bytes()


def test_pileup_200_event_size_and_speed():
    start = time.perf_counter()
    event = simulate_event(2024, pileup=200)
    elapsed = time.perf_counter() - start
    n_particles, n_hits = len(event["particles"]["particle_id"]), len(event["hits"]["hit_id"])
    assert 8_000 < n_particles < 12_000
    assert 80_000 < n_hits < 120_000
    assert elapsed < 15.0  # about 1 s on one core; generous for a shared machine


def test_particle_spectra():
    parts = generate_particles(np.random.default_rng(0), pileup=2000)  # about 100k particles
    pt = np.hypot(parts["px"], parts["py"])
    eta = np.arcsinh(parts["pz"] / pt)
    assert pt.min() >= 0.1 and 0.55 < pt.mean() < 0.65
    assert 0.8 < np.mean(pt < 1.0) < 0.9 and 1e-5 < np.mean(pt > 10.0) < 1e-3
    # eta flat to 4: each unit of |eta| holds a quarter of the particles.
    np.testing.assert_allclose(np.histogram(np.abs(eta), bins=4, range=(0, 4))[0] / len(eta), 0.25, atol=0.01)
    assert np.std(parts["vz"]) == approx(55.0, rel=0.15)
    assert set(np.abs(parts["particle_type"]).tolist()) == {211, 321, 2212, 11, 13}
    assert np.mean(np.abs(parts["particle_type"]) == 211) == approx(0.82, abs=0.01)


def test_multiple_scattering_follows_highland():
    # 1 GeV pions at eta = 0: before the second pixel layer they crossed the beam pipe (0.8 mm Be)
    # and the first pixel layer (1.65 mm Si); Highland: 0.50 and 1.51 mrad, 1.59 mrad together.
    n = 20_000
    rng = np.random.default_rng(0)
    momentum = np.tile([1.0, 0.0, 0.0], (n, 1))
    cross = propagate(GENERIC_DETECTOR, np.zeros((n, 3)), momentum, np.ones(n), np.full(n, 0.13957), rng)
    p = cross.momentum[cross.layer == 1]
    dip = np.arctan2(p[:, 2], np.hypot(p[:, 0], p[:, 1]))
    beta = 1.0 / np.hypot(1.0, 0.13957)
    expected = np.hypot(
        *(0.0136 / beta * np.sqrt(x) * (1 + 0.038 * np.log(x)) for x in (0.8 / 352.8, 1.65 / 95.7))
    )
    assert np.std(dip) == approx(expected, rel=0.03)
