"""Track building on loopers: the walk leaves a curling particle's way out and way back as two chains
(neither passes the double majority); `merge_loopers` joins them on one helix, and only them."""

import numpy as np
import pytest

from jaxhep.tracking import graph as G
from jaxhep.tracking.score import trackml_score
from jaxhep.tracking.tracks import build_tracks, merge_loopers, tracking_metrics
from tests.approx import approx
from tests.tracking.handmade import BARREL, event, particle


def _event():
    """Three loopers turning inside the short-strip barrels (0.18 GeV: 2R = 600 mm, 7 layers out and
    7 back), two of them on the same circle (same pT, phi0 and sense) but 60 mm apart in z0 with
    other dip angles, and a 10 GeV track."""
    return event(
        [
            particle(1, 0.18, 0.4, 0.3, 10.0, 1.0, BARREL),
            particle(2, 0.18, 0.4, -0.2, 70.0, 1.0, BARREL),
            particle(3, 0.18, -2.5, 0.1, -30.0, -1.0, BARREL),
            particle(4, 10.0, 1.0, 0.5, 0.0, 1.0, BARREL),
        ]
    )


def _tracks(ev, positions):
    graph = G.build_graph(ev, pt_floor=0.15)
    scores = graph.labels  # a perfect classifier: only the consecutive pairs score 1
    # every true pair is an edge: 6 out + 6 back per looper (the turn, twice the same layer, is none)
    assert (graph.labels.sum(), graph.n_true_total) == (3 * 12 + 7, 3 * 12 + 7)
    xyz = np.stack([ev["hits"][c] for c in "xyz"], 1) if positions else None
    return graph, build_tracks(graph.n_node, graph.senders, graph.receivers, scores, 0.5, "walk", xyz)


def test_the_walk_splits_a_looper_and_the_merge_joins_its_legs():
    ev = _event()
    pid = ev["truth"]["particle_id"]
    _, split = _tracks(ev, positions=False)
    # 7 + 7 hits of each looper in two tracks: found by neither (strict > 50 %)
    for p in (1, 2, 3):
        assert len(np.unique(split[pid == p])) == 2
    _, joined = _tracks(ev, positions=True)
    for p in (1, 2, 3, 4):
        assert len(np.unique(joined[pid == p])) == 1, p
        assert set(pid[joined == joined[pid == p][0]]) == {p}  # and nothing else joined in
    args = (ev["truth"]["hit_id"], pid, ev["truth"]["weight"], ev["hits"]["hit_id"])
    assert trackml_score(*args, split) == approx(8 / 50)  # only the straight track's 8 hits (of 3 x 14 + 8)
    assert trackml_score(*args, joined) == approx(1.0)
    hit_pt = np.array([0.18, 0.18, 0.18, 10.0])[pid - 1]
    assert tracking_metrics(pid, joined, hit_pt, pt_min=0.0)["efficiency"] == 1.0
    assert tracking_metrics(pid, split, hit_pt, pt_min=0.0)["efficiency"] == 0.25


def test_chains_on_one_circle_but_other_z_lines_stay_apart():
    ev = _event()
    pid = ev["truth"]["particle_id"]
    xyz = np.stack([ev["hits"][c] for c in "xyz"], 1)
    # particle 1's way out with particle 2's way back: same circle, z off by tens of mm
    out1 = (pid == 1) & (np.arange(len(pid)) < np.flatnonzero(pid == 1)[7])
    back2 = (pid == 2) & (np.arange(len(pid)) >= np.flatnonzero(pid == 2)[7])
    labels = np.zeros(len(pid), np.int64)
    labels[out1], labels[back2] = 1, 2
    rest = ~(out1 | back2)
    labels[rest] = 3 + np.arange(rest.sum())  # every other hit alone
    merged = merge_loopers(labels, xyz)
    assert merged[out1][0] != merged[back2][0]
    # the true legs of particle 1 are joined
    back1 = (pid == 1) & ~out1
    labels[back1] = 2
    labels[back2] = 3 + rest.sum() + np.arange(back2.sum())
    merged = merge_loopers(labels, xyz)
    assert merged[out1][0] == merged[back1][0]


def test_merge_leaves_straight_tracks_and_short_chains_alone_and_checks_shapes():
    ev = _event()
    pid = ev["truth"]["particle_id"]
    xyz = np.stack([ev["hits"][c] for c in "xyz"], 1)
    labels = np.where(pid == 4, 0, np.arange(len(pid)) + 1)  # the straight track and single hits
    assert np.array_equal(merge_loopers(labels, xyz), np.unique(labels, return_inverse=True)[1])
    with pytest.raises(ValueError, match="positions must be"):
        merge_loopers(labels, xyz[:, :2])
    assert len(merge_loopers(np.zeros(0, np.int64), np.zeros((0, 3)))) == 0
