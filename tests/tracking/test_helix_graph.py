"""The helix cut of the geometric graph (`pt_floor`): curvature and z0 by hand, low-pT tracks and a looper's
way back kept where the straight phi-slope cut loses them, a particle below the floor rejected."""

import numpy as np
import pytest

from jaxhep.tracking import graph as G
from jaxhep.tracking.sim.propagate import PT_TO_RADIUS_MM
from tests.approx import approx
from tests.tracking.handmade import B_TESLA, event, helix_point, particle


def edge_set(graph):
    return {(min(s, t), max(s, t)) for s, t in zip(graph.senders.tolist(), graph.receivers.tolist())}


def true_set(graph):
    return {(min(a, b), max(a, b)) for a, b in graph.true_pairs.tolist()}


@pytest.mark.parametrize("sense", [1.0, -1.0])
def test_curvature_and_z0_of_a_helix_by_hand(sense):
    pt, cot, z0 = 0.25, 0.7, -35.0
    radius = PT_TO_RADIUS_MM * pt / B_TESLA  # 416.9 mm
    p1 = helix_point(pt, 0.4, cot, z0, sense, 0.3)
    p2 = helix_point(pt, 0.4, cot, z0, sense, 0.5)
    kappa = G.helix_curvature(*(np.array([v]) for v in (p1[0], p1[1], p2[0], p2[1])))
    # Counter-clockwise turns (sense +1) have positive cross products p1 x p2.
    assert kappa[0] == approx(sense / radius, rel=1e-9)
    args = (np.array([v]) for v in (p1[0], p1[1], p1[2], p2[0], p2[1], p2[2]))
    # float32, as the hits are stored: 1e-3 mm of a 200 mm cut.
    assert G.helix_z0(*args, kappa)[0] == approx(abs(z0), abs=1e-3)
    # Past half a turn (the way back of a looper) z0 comes out too.
    q1 = helix_point(0.06, 1.0, 0.2, 12.0, sense, 4.0)
    q2 = helix_point(0.06, 1.0, 0.2, 12.0, sense, 5.0)
    k = G.helix_curvature(np.array([q1[0]]), np.array([q1[1]]), np.array([q2[0]]), np.array([q2[1]]))
    z = G.helix_z0(*(np.array([v]) for v in (q1[0], q1[1], q1[2], q2[0], q2[1], q2[2])), k)
    assert z[0] == approx(12.0, abs=1e-3)


def test_helix_cut_keeps_low_pt_tracks_the_straight_cut_loses():
    ev = event(
        [
            particle(1, 20.0, 0.3, 0.5),
            particle(2, 0.25, 2.0, -0.4, 20.0),
            particle(3, 0.3, -2.0, 1.0, -5.0, -1.0),
        ]
    )
    straight, helix = G.build_graph(ev), G.build_graph(ev, pt_floor=0.2)
    truth = true_set(helix)
    assert len(truth) == 9
    high = {p for p in truth if helix.particle_id[p[0]] == 1}
    # 0.0006 rad/mm admits pT >~ 0.5 GeV: only the 20 GeV track survives the straight cut.
    assert edge_set(straight) & truth == high
    assert truth <= edge_set(helix)
    labels = dict(zip(zip(helix.senders.tolist(), helix.receivers.tolist()), helix.labels.tolist()))
    assert all(labels[(s, t)] == 1.0 for s, t in labels if (min(s, t), max(s, t)) in truth)
    assert helix.info["pt_floor"] == 0.2


def test_a_particle_below_the_floor_is_cut():
    ev = event([particle(1, 0.15, 0.7, 0.1)])  # kappa 1.33x that of 0.2 GeV: beyond the 10 % margin
    graph = G.build_graph(ev, pt_floor=0.2)
    assert len(true_set(graph)) == 3 and not edge_set(graph) & true_set(graph)
    assert true_set(graph) <= edge_set(G.build_graph(ev, pt_floor=0.12))


def test_a_looper_is_kept_out_and_back():
    """pT 0.06 GeV: R = 100 mm, so it turns at r = 200 mm, between the last pixel barrel layer and the
    strips, and crosses the four layers again on its way back. The turn (172 mm twice) is not a pair."""
    ev = event([particle(7, 0.06, 0.2, 0.2, 3.0)])
    assert len(ev["hits"]["hit_id"]) == 8
    graph = G.build_graph(ev, pt_floor=0.055)
    truth = true_set(graph)
    assert len(truth) == 6  # 3 out + 3 back
    assert truth <= edge_set(graph)
    assert not edge_set(G.build_graph(ev)) & truth


def test_pt_floor_must_be_positive():
    with pytest.raises(ValueError, match="pt_floor"):
        G.build_graph(event([particle(1, 1.0, 0.0, 0.0)]), pt_floor=0.0)
