"""TrackML weights and score: hand-computed cases, limits, the pT-cut variant, speed.

The score was also compared with trackml-library itself (tests/tracking/crosscheck_trackml_library.py,
BUILD_NOTES.md): identical to 1e-16 on simulated events.
"""

import time

import numpy as np
import pytest

from jaxhep.tracking.score import (
    ORDER_MATRIX,
    hit_particle_pt,
    hit_weights,
    pt_weight,
    score_by_pt,
    trackml_score,
    trackml_score_above_pt,
)
from jaxhep.tracking.sim.simulate import simulate_event
from tests.approx import approx

# A hand-made event of 11 hits; weights sum to 1.
#   particle 1: hits 1-4, weights 0.1, 0.1, 0.1, 0.2
#   particle 2: hits 5-7, weights 0.1 each
#   particle 3: hits 8-9, weights 0.1 each
#   noise (0):  hits 10-11, weight 0
HAND_HITS = np.arange(1, 12)
HAND_PIDS = np.array([1, 1, 1, 1, 2, 2, 2, 3, 3, 0, 0])
HAND_WEIGHTS = np.array([0.1, 0.1, 0.1, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.0, 0.0])
# Submission:
#   track 10: hits 1, 2, 3, 5  -> particle 1 has 3/4 of the track and 3/4 of its hits: counts, 0.3
#   track 11: hits 4, 6, 7     -> particle 2 has 2/3 of the track and 2/3 of its hits: counts, 0.2
#   track 12: hit 8            -> particle 3 owns the track but only 1/2 of its hits: no (not > 50 %)
#   track 13: hits 9, 10, 11   -> noise has 2/3 of the track and all of its hits: counts, weight 0
# Expected score: 0.3 + 0.2 = 0.5.
HAND_TRACKS = np.array([10, 10, 10, 11, 10, 11, 11, 12, 13, 13, 13])
HAND_SCORE = 0.5


def test_hand_computed_score():
    assert trackml_score(HAND_HITS, HAND_PIDS, HAND_WEIGHTS, HAND_HITS, HAND_TRACKS) == approx(HAND_SCORE)
    # Only the weights' ratios matter; track ids are labels; the submission's row order is free.
    assert trackml_score(HAND_HITS, HAND_PIDS, 3 * HAND_WEIGHTS, HAND_HITS, HAND_TRACKS) == approx(0.5)
    perm = np.random.default_rng(0).permutation(11)
    relabelled = np.array([-5, 2**40, 7, 0])[HAND_TRACKS - 10]
    assert trackml_score(HAND_HITS, HAND_PIDS, HAND_WEIGHTS, HAND_HITS[perm], relabelled[perm]) == approx(0.5)
    # Hit 8 left out of the submission is a track of its own: still 1/2 of particle 3, no change.
    keep = HAND_HITS != 8
    assert trackml_score(HAND_HITS, HAND_PIDS, HAND_WEIGHTS, HAND_HITS[keep], HAND_TRACKS[keep]) == approx(
        0.5
    )
    # Hits 8 and 9 together: particle 3 counts too, + 0.2.
    tracks = HAND_TRACKS.copy()
    tracks[8] = 12
    assert trackml_score(HAND_HITS, HAND_PIDS, HAND_WEIGHTS, HAND_HITS, tracks) == approx(0.7)
    # A 50/50 track: neither particle has more than half of it.
    pids = np.array([1, 1, 2, 2])
    assert trackml_score([1, 2, 3, 4], pids, [0.25] * 4, [1, 2, 3, 4], [0, 0, 0, 0]) == 0.0


def test_hand_computed_pt_cut():
    # pT: particle 1 at 2 GeV, particle 2 at 0.8 GeV, particle 3 at 5 GeV (noise: 0).
    hit_pt = np.array([2.0, 2.0, 2.0, 2.0, 0.8, 0.8, 0.8, 5.0, 5.0, 0.0, 0.0])
    # pt_min = 1: particle 2's 0.3 drops out; of the remaining 0.7, particle 1's 0.3 is found: 3/7.
    got = trackml_score_above_pt(HAND_HITS, HAND_PIDS, HAND_WEIGHTS, HAND_HITS, HAND_TRACKS, hit_pt, 1.0)
    assert got == approx(0.3 / 0.7)
    # pt_min = 3: only particle 3 is left, and it is not found.
    assert (
        trackml_score_above_pt(HAND_HITS, HAND_PIDS, HAND_WEIGHTS, HAND_HITS, HAND_TRACKS, hit_pt, 3.0) == 0.0
    )
    assert (
        trackml_score_above_pt(HAND_HITS, HAND_PIDS, HAND_WEIGHTS, HAND_HITS, HAND_PIDS, hit_pt, 3.0) == 1.0
    )


def test_hand_computed_weights():
    # Order weights of a 4-hit track: [10, 8, ..., 6] spread over 4 positions gives [10, 16/3, 3, 6].
    row4 = np.array([10.0, 16.0 / 3.0, 3.0, 6.0]) / (73.0 / 3.0)
    np.testing.assert_allclose(ORDER_MATRIX[4, :4], row4)
    np.testing.assert_allclose(
        pt_weight([0.01, 0.05, 0.4, 0.5, 1.75, 3.0, 40.0]), [0, 0.2, 0.2, 0.2, 0.6, 1, 1]
    )
    # Particle 1 (pT 4 GeV, w_pt 1) and 2 (pT 1.75, w_pt 0.6) with 4 hits, 3 (3 hits) and noise.
    # Particle 1's vertex is at z = 10; its hits at tz = 5, 40, -15, 100 are at |tz - vz| = 5, 30, 25, 90,
    # so they are hits 0, 2, 1, 3 along the track.
    particles = dict(
        particle_id=np.array([1, 2, 3]),
        vz=np.array([10.0, 0.0, 0.0]),
        px=np.array([4.0, 0.0, 9.0]),
        py=np.array([0.0, 1.75, 0.0]),
        nhits=np.array([4, 4, 3]),
    )
    truth = dict(
        particle_id=np.array([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 0]),
        tz=np.array([5.0, 40.0, -15.0, 100.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 7.0]),
    )
    raw = np.concatenate([row4[[0, 2, 1, 3]], 0.6 * row4, np.zeros(4)])
    np.testing.assert_allclose(hit_weights(truth, particles), raw / 1.6)


def test_weights_edge_cases():
    particles = dict(
        particle_id=np.array([1]),
        vz=np.array([0.0]),
        px=np.array([5.0]),
        py=np.array([0.0]),
        nhits=np.array([3]),
    )
    truth = dict(particle_id=np.array([1, 1, 1, 1]), tz=np.array([1.0, 2.0, 3.0, 4.0]))
    # nhits < 4: weight 0 everywhere (and no error although there are 4 truth rows).
    np.testing.assert_array_equal(hit_weights(truth, particles), np.zeros(4))
    particles["nhits"] = np.array([5])
    truth = dict(particle_id=np.ones(6, np.int64), tz=np.arange(6.0))
    with pytest.raises(ValueError, match="not below its nhits"):
        hit_weights(truth, particles)
    with pytest.raises(ValueError, match="not unique"):
        hit_weights(truth, {k: np.concatenate([v, v]) for k, v in particles.items()})
    with pytest.raises(ValueError, match="not unique"):
        trackml_score([1, 1], [1, 1], [0.5, 0.5], [1], [0])


@pytest.fixture(scope="module")
def event():
    return simulate_event(99, pileup=200)


def test_hand_computed_pt_band_and_breakdown():
    hit_pt = np.array([2.0, 2.0, 2.0, 2.0, 0.8, 0.8, 0.8, 5.0, 5.0, 0.0, 0.0])
    args = (HAND_HITS, HAND_PIDS, HAND_WEIGHTS, HAND_HITS, HAND_TRACKS, hit_pt)
    # [0.5, 3): particles 1 (0.5 of weight, 0.3 found) and 2 (0.3, 0.2 found): 0.5 / 0.8
    assert trackml_score_above_pt(*args, 0.5, 3.0) == approx(0.5 / 0.8)
    assert np.isnan(trackml_score_above_pt(*args, 10.0, 20.0))  # no weight in the band
    b = score_by_pt(*args, [0.0, 1.0, 3.0, np.inf])
    # particle 2 (0.3 of the weight, 2/3 of it found); particle 1 (0.5, 3/5); particle 3 (0.2, none)
    assert b["share"] == approx([0.3, 0.5, 0.2]) and b["score"] == approx([0.2 / 0.3, 0.3 / 0.5, 0.0])
    assert np.dot(b["share"], b["score"]) == approx(HAND_SCORE)


def test_perfect_shuffled_and_speed(event):
    truth = event["truth"]
    args = truth["hit_id"], truth["particle_id"], truth["weight"]
    assert trackml_score(*args, truth["hit_id"], truth["particle_id"]) == approx(1.0)
    rng = np.random.default_rng(1)
    shuffled = rng.permutation(truth["particle_id"])
    assert trackml_score(*args, truth["hit_id"], shuffled) < 0.01
    start = time.perf_counter()
    trackml_score(*args, truth["hit_id"], rng.integers(0, 10_000, len(shuffled)))
    assert time.perf_counter() - start < 1.0


def test_pt_cut_on_a_simulated_event(event):
    truth, particles = event["truth"], event["particles"]
    pt = hit_particle_pt(truth["particle_id"], particles)
    assert np.all(pt[truth["particle_id"] == 0] == 0)
    args = truth["hit_id"], truth["particle_id"], truth["weight"]
    # Only particles above 1 GeV found; every other hit in a one-hit track.
    tracks = np.where(pt >= 1.0, truth["particle_id"], -np.arange(len(pt)) - 1)
    assert trackml_score_above_pt(*args, truth["hit_id"], tracks, pt, 1.0) == approx(1.0)
    assert 0.2 < trackml_score(*args, truth["hit_id"], tracks) < 0.9
