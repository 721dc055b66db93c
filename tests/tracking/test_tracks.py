"""Track building, submission files and tracking metrics: hand-made graphs, a simulated event, speed."""

import time

import numpy as np
import pytest

from jaxhep.tracking.score import hit_particle_pt, trackml_score
from jaxhep.tracking.sim.simulate import simulate_event
from jaxhep.tracking.tracks import (
    build_tracks,
    connected_components,
    efficiency_vs_eta,
    efficiency_vs_pt,
    fake_rate,
    hit_particle_eta,
    read_submission,
    tracking_efficiency,
    tracking_metrics,
    walk_edges,
    write_submission,
    write_submissions,
)
from tests.approx import approx


def _same_partition(a, b):
    """Two labellings [N] group the hits the same way."""
    a, b = np.asarray(a), np.asarray(b)
    pairs = np.unique(np.stack([a, b]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


# Two tracks of 4 hits, A = 0-1-2-3 and B = 4-5-6-7, plus an isolated hit 8.
TRACK_A = [(0, 1), (1, 2), (2, 3)]
TRACK_B = [(4, 5), (5, 6), (6, 7)]
TWO_TRACKS = np.array([1, 1, 1, 1, 2, 2, 2, 2, 3])


def _graph(edges, scores):
    e = np.array(edges)
    return e[:, 0], e[:, 1], np.array(scores, float)


def test_crossing_tracks_and_singletons():
    # The tracks cross in space but share no hit; an edge below threshold joins nothing.
    s, r, sc = _graph([*TRACK_A, *TRACK_B, (1, 6)], [0.9] * 6 + [0.3])
    for method in ("components", "walk"):
        track_id = build_tracks(9, s, r, sc, 0.5, method=method)
        assert track_id.dtype == np.int64
        np.testing.assert_array_equal(track_id, TWO_TRACKS)  # ids 1..K by smallest hit
    # Hits without any edge are singletons; an empty graph makes N tracks.
    np.testing.assert_array_equal(connected_components(4, [], []), [0, 1, 2, 3])
    np.testing.assert_array_equal(build_tracks(3, [], [], [], method="walk"), [1, 2, 3])
    # NaN scores and self-loops are never used.
    np.testing.assert_array_equal(build_tracks(3, [0, 2], [1, 2], [np.nan, 1.0]), [1, 2, 3])


def test_branching_components_merge_walk_separates():
    # A fake edge 1 -> 6 above threshold, and a fake 5 -> 2: components merges A and B into one
    # track; the walk follows each hit's best continuation and keeps them apart.
    s, r, sc = _graph([*TRACK_A, *TRACK_B, (1, 6), (5, 2)], [0.9, 0.8, 0.9, 0.95, 0.9, 0.9, 0.6, 0.7])
    np.testing.assert_array_equal(build_tracks(9, s, r, sc, 0.5), [1] * 8 + [2])
    np.testing.assert_array_equal(build_tracks(9, s, r, sc, 0.5, method="walk"), TWO_TRACKS)
    # A fake edge better than the true one wins a branching, but still merges nothing.
    s, r, sc = _graph([*TRACK_A, *TRACK_B, (1, 6)], [0.9, 0.6, 0.9, 0.9, 0.7, 0.9, 0.8])
    keep = walk_edges(9, s, r, sc, 0.5)
    # 1 -> 6 beats 1 -> 2 (0.8 > 0.6) and 5 -> 6 (0.8 > 0.7): hits 0,1,6,7 and 4,5 and 2,3.
    np.testing.assert_array_equal(keep, [1, 0, 1, 1, 0, 1, 1])
    track_id = build_tracks(9, s, r, sc, 0.5, method="walk")
    assert _same_partition(track_id, [0, 0, 1, 1, 2, 2, 0, 0, 3])


def _greedy_reference(n, s, r, sc, threshold):
    """Edges one by one from the best score down (ties: lower index), one out and one in per hit."""
    has_out, has_in = np.zeros(n, bool), np.zeros(n, bool)
    keep = np.zeros(len(s), bool)
    for e in np.lexsort((np.arange(len(s)), -sc)):
        if sc[e] >= threshold and s[e] != r[e] and not has_out[s[e]] and not has_in[r[e]]:
            keep[e] = has_out[s[e]] = has_in[r[e]] = True
    return keep


def test_walk_is_greedy_matching_and_components_match_scipy():
    rng = np.random.default_rng(1)
    n, e = 300, 1500
    s, r = rng.integers(0, n, e), rng.integers(0, n, e)
    sc = np.round(rng.random(e), 2)  # rounded: many ties
    keep = walk_edges(n, s, r, sc, 0.3)
    np.testing.assert_array_equal(keep, _greedy_reference(n, s, r, sc, 0.3))
    assert np.bincount(s[keep], minlength=n).max() <= 1 and np.bincount(r[keep], minlength=n).max() <= 1
    csgraph = pytest.importorskip("scipy.sparse.csgraph")
    sparse = pytest.importorskip("scipy.sparse")
    for threshold in (0.5, 0.8, 0.95):
        k = sc >= threshold
        labels = connected_components(n, s, r, k)
        adj = sparse.coo_matrix((np.ones(k.sum()), (s[k], r[k])), shape=(n, n))
        _, ref = csgraph.connected_components(adj, directed=False)
        assert _same_partition(labels, ref)
        assert labels.min() == 0 and labels.max() == len(np.unique(ref)) - 1


def test_bad_inputs():
    with pytest.raises(ValueError, match="senders must index"):
        connected_components(3, [0, 3], [1, 2])
    with pytest.raises(ValueError, match="method"):
        build_tracks(3, [0], [1], [1.0], method="dbscan")
    with pytest.raises(ValueError, match="keep_mask"):
        connected_components(3, [0], [1], [True, False])


@pytest.fixture(scope="module")
def event():
    """A small simulated event and its true consecutive edges (hits ordered by distance from the
    particle's vertex), as index arrays into the event's hits."""
    ev = simulate_event(3, pileup=5)
    truth, particles = ev["truth"], ev["particles"]
    pid = truth["particle_id"]
    row = np.searchsorted(particles["particle_id"], pid)
    row = np.clip(row, 0, len(particles["particle_id"]) - 1)
    vertex = np.stack([particles[c][row] for c in ("vx", "vy", "vz")], axis=1)
    hit = np.stack([truth[c] for c in ("tx", "ty", "tz")], axis=1)
    dist = np.linalg.norm(hit.astype(np.float64) - vertex, axis=1)
    order = np.lexsort((dist, pid))
    same = (pid[order][1:] == pid[order][:-1]) & (pid[order][1:] != 0)
    senders, receivers = order[:-1][same], order[1:][same]
    return ev, senders, receivers


def _score(ev, track_id):
    t = ev["truth"]
    return trackml_score(t["hit_id"], t["particle_id"], t["weight"], t["hit_id"], track_id)


def test_perfect_edges_give_perfect_tracks(event, tmp_path):
    ev, senders, receivers = event
    truth = ev["truth"]
    n = len(truth["hit_id"])
    pt = hit_particle_pt(truth["particle_id"], ev["particles"])
    eta = hit_particle_eta(truth["particle_id"], ev["particles"])
    for method in ("components", "walk"):
        track_id = build_tracks(n, senders, receivers, np.ones(len(senders)), 0.5, method=method)
        assert track_id.min() == 1 and np.array_equal(np.unique(track_id), np.arange(1, track_id.max() + 1))
        assert _score(ev, track_id) == approx(1.0)
        assert tracking_efficiency(truth["particle_id"], track_id, pt, pt_min=0.0, min_hits=3) == 1.0
        assert fake_rate(truth["particle_id"], track_id) == 0.0
    metrics = tracking_metrics(truth["particle_id"], track_id, pt, pt_min=1.0)
    assert metrics["efficiency"] == 1.0 and metrics["n_fake"] == 0 and metrics["n_particles"] > 0
    binned = efficiency_vs_pt(truth["particle_id"], track_id, pt)
    assert len(binned.edges) == len(binned.efficiency) + 1
    assert np.all(binned.efficiency[binned.n_particles > 0] == 1.0)
    binned = efficiency_vs_eta(truth["particle_id"], track_id, pt, eta)
    assert binned.n_particles.sum() == metrics["n_particles"]

    # The submission holds every hit once and scores the same when read back.
    path = write_submission(tmp_path / "sub.csv", 1000, truth["hit_id"], track_id, truth["hit_id"])
    sub = read_submission(path)
    assert np.array_equal(np.sort(sub["hit_id"]), np.sort(truth["hit_id"].astype(np.int64)))
    assert np.all(sub["event_id"] == 1000)
    t = truth
    assert trackml_score(
        t["hit_id"], t["particle_id"], t["weight"], sub["hit_id"], sub["track_id"]
    ) == approx(1.0)


def test_shuffled_scores_score_low(event):
    ev, true_s, true_r = event
    truth = ev["truth"]
    n = len(truth["hit_id"])
    rng = np.random.default_rng(0)
    # Three random fake edges per hit beside the true ones; labels as scores, then shuffled.
    fake_s, fake_r = rng.integers(0, n, 3 * n), rng.integers(0, n, 3 * n)
    s, r = np.concatenate([true_s, fake_s]), np.concatenate([true_r, fake_r])
    label = np.concatenate([np.ones(len(true_s)), np.zeros(3 * n)])
    pt = hit_particle_pt(truth["particle_id"], ev["particles"])
    for method in ("components", "walk"):
        good = build_tracks(n, s, r, label, 0.5, method=method)
        assert _score(ev, good) == approx(1.0)
        bad = build_tracks(n, s, r, rng.permutation(label + 0.01 * rng.random(len(label))), 0.5, method)
        assert _score(ev, bad) < 0.1
        assert tracking_efficiency(truth["particle_id"], bad, pt, pt_min=0.0) < 0.1
        assert fake_rate(truth["particle_id"], bad) > 0.5


def test_metrics_hand_computed():
    # particle 1: hits 0-3, particle 2: hits 4-6, particle 3: hits 7-8, noise: 9-10.
    pid = np.array([1, 1, 1, 1, 2, 2, 2, 3, 3, 0, 0])
    pt = np.array([2.0] * 4 + [0.5] * 3 + [3.0] * 2 + [0.0] * 2)
    # track 1 = {0, 1, 2, 4}: 3/4 of particle 1 -> found; track 2 = {3, 5, 6}: particle 2 found;
    # track 3 = {7}: half of particle 3 -> not found; track 4 = {8, 9, 10}: mostly noise -> fake.
    trk = np.array([1, 1, 1, 2, 1, 2, 2, 3, 4, 4, 4])
    assert tracking_efficiency(pid, trk, pt, pt_min=0.0, min_hits=1) == approx(2 / 3)
    assert tracking_efficiency(pid, trk, pt, pt_min=1.0, min_hits=1) == approx(1 / 2)
    assert tracking_efficiency(pid, trk, pt, pt_min=1.0, min_hits=4) == 1.0
    assert np.isnan(tracking_efficiency(pid, trk, pt, pt_min=10.0))
    assert fake_rate(pid, trk) == approx(1 / 3)
    binned = efficiency_vs_pt(pid, trk, pt, bins=[0.1, 1.0, 10.0, 100.0], min_hits=1)
    np.testing.assert_array_equal(binned.n_particles, [1, 2, 0])
    np.testing.assert_array_equal(binned.efficiency[:2], [1.0, 0.5])
    assert np.isnan(binned.efficiency[2])


def test_submission_checks_and_multi_event(tmp_path):
    with pytest.raises(ValueError, match="more than once"):
        write_submission(tmp_path / "a.csv", 1, [1, 2, 2], [1, 1, 2])
    with pytest.raises(ValueError, match="1 missing"):
        write_submission(tmp_path / "a.csv", 1, [1, 2], [1, 1], expected_hit_ids=[1, 2, 3])
    with pytest.raises(ValueError, match="integers"):
        write_submission(tmp_path / "a.csv", 1, [1, 2], [1.0, np.nan])
    with pytest.raises(ValueError, match="twice"):
        write_submissions(tmp_path / "a.csv", [(1, [1], [1]), (1, [2], [1])])
    assert not list(tmp_path.iterdir())  # failed writes leave nothing behind
    path = write_submissions(
        tmp_path / "sub.csv.gz", [(1000, [3, 1, 2], [7, 7, 8]), (1001, np.array([1, 2]), np.array([1, 2]))]
    )
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    sub = read_submission(path)
    np.testing.assert_array_equal(sub["event_id"], [1000, 1000, 1000, 1001, 1001])
    np.testing.assert_array_equal(sub["hit_id"], [3, 1, 2, 1, 2])
    np.testing.assert_array_equal(sub["track_id"], [7, 7, 8, 1, 2])


def test_speed_at_mu200_size():
    # The size of a mu = 200 graph: 100 k hits, 1 M edges.
    rng = np.random.default_rng(0)
    n, e = 100_000, 1_000_000
    s, r, sc = rng.integers(0, n, e), rng.integers(0, n, e), rng.random(e)
    for method in ("components", "walk"):
        for threshold in (0.5, 0.95):
            start = time.perf_counter()
            track_id = build_tracks(n, s, r, sc, threshold, method=method)
            elapsed = time.perf_counter() - start
            assert len(track_id) == n
            assert elapsed < 2.0, f"{method} at {threshold}: {elapsed:.2f} s"
