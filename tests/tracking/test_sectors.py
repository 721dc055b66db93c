"""Phi sectors of an event graph: every trainable edge trained in exactly one sector, halos by hand."""

import numpy as np
import pytest

from jaxhep.tracking.graph import build_graph
from jaxhep.tracking.sectors import node_phi, phi_sector, phi_sectors
from jaxhep.tracking.sim.simulate import simulate_event
from tests.tracking.handmade import hand_graph


def test_four_sectors_by_hand():
    # 4 sectors: [-pi, -pi/2), [-pi/2, 0), [0, pi/2), [pi/2, pi]. Halo 0.1 rad.
    phi = [0.3, 0.6, 1.55, -0.05, -1.0, 3.1, -3.1]
    # 0 -> 1 inside sector 2; 1 -> 2 inside sector 2; 3 -> 0 crosses from sector 1 into sector 2;
    # 5 -> 6 crosses phi = pi (sector 3 into sector 0); 4 -> 3 inside sector 1.
    senders, receivers = [0, 1, 3, 5, 4], [1, 2, 0, 6, 3]
    g = hand_graph(phi, senders, receivers, train_mask=[True, True, True, True, False])
    sectors = phi_sectors(g, 4, halo=0.1, balanced=False)
    kept_hits = [set(s.hit_id.tolist()) for s in sectors]
    # sector 0 [-pi, -pi/2): node 6 (-3.1), node 5 (3.1) is 0.08 rad across phi = pi: in the halo.
    assert kept_hits[0] == {6, 7}
    # sector 1 [-pi/2, 0): nodes 3, 4; node 0 (0.3) is the receiver of core edge 3 -> 0.
    assert kept_hits[1] == {1, 4, 5}
    # sector 2 [0, pi/2): nodes 0, 1, node 2 (1.55, in the 0.1 halo of pi/2), node 3 (-0.05, in the halo).
    assert kept_hits[2] == {1, 2, 3, 4}
    # sector 3 [pi/2, pi]: node 5 (3.1), node 6 (-3.1, halo across pi), node 2 (1.55, halo).
    assert kept_hits[3] == {3, 6, 7}
    # Core (trainable) edges, by original index: each trainable edge in exactly one sector.
    core = [sorted(s.edges[s.train_mask, 0].astype(int).tolist()) for s in sectors]
    assert core == [[], [2], [0, 1], [3]]
    # Edge 4 (4 -> 3, not trainable) still carries messages in sector 1; sector 2 holds edge 2 as context.
    assert 4 in sectors[1].edges[:, 0] and 2 in sectors[2].edges[:, 0]
    for s in sectors:  # re-indexed endpoints are the same hits as before
        orig = s.edges[:, 0].astype(int)
        np.testing.assert_array_equal(s.hit_id[s.senders], g.hit_id[g.senders[orig]])
        np.testing.assert_array_equal(s.hit_id[s.receivers], g.hit_id[g.receivers[orig]])
        np.testing.assert_allclose(node_phi(s), np.asarray(phi)[s.hit_id - 1], atol=1e-6)
        assert len(s.true_pairs) == len(s.true_pt) and (s.true_pairs < s.n_node).all()


def test_simulated_event_every_trainable_edge_once():
    g = build_graph(simulate_event(3, pileup=5), pt_min=1.0)
    sectors = phi_sectors(g, 8, halo=0.05)
    key = g.hit_id[g.senders] * 10**7 + g.hit_id[g.receivers]
    core_keys = np.concatenate(
        [s.hit_id[s.senders[s.train_mask]] * 10**7 + s.hit_id[s.receivers[s.train_mask]] for s in sectors]
    )
    assert len(core_keys) == len(np.unique(core_keys)) == int(g.train_mask.sum())
    assert set(core_keys.tolist()) == set(key[g.train_mask].tolist())
    # Labels travel with their edges.
    label_of = dict(zip(key.tolist(), g.labels.tolist()))
    for s in sectors:
        k = s.hit_id[s.senders] * 10**7 + s.hit_id[s.receivers]
        assert [label_of[x] for x in k.tolist()] == s.labels.tolist()
    assert phi_sectors(g, 1)[0] is g
    # Balanced sectors own equal shares of the edges, up to the edges of one sender (a boundary never
    # splits a hit's outgoing edges). Without a pT cut every edge is trainable, so train_mask = core.
    g_all = build_graph(simulate_event(3, pileup=5), pt_min=None)
    n_core = [int(s.train_mask.sum()) for s in phi_sectors(g_all, 8, 0.05)]
    assert sum(n_core) == g_all.n_edge
    assert max(n_core) - min(n_core) <= 2 * np.bincount(g_all.senders).max()


@pytest.mark.parametrize("n, halo", [(0, 0.1), (4, -0.1)])
def test_bad_arguments(n, halo):
    with pytest.raises(ValueError):
        phi_sectors(hand_graph([0.0, 1.0], [0], [1]), n, halo)


def test_one_sector_alone_is_that_sector_of_all():
    g = build_graph(simulate_event(4, pileup=5))
    for k, part in enumerate(phi_sectors(g, 4, 0.1)):
        alone = phi_sector(g, 4, k, 0.1)
        assert alone.n_edge == part.n_edge and np.array_equal(alone.train_mask, part.train_mask)
        assert np.array_equal(alone.senders, part.senders) and np.array_equal(alone.nodes, part.nodes)
    with pytest.raises(ValueError, match="sector 4 of 4"):
        phi_sector(g, 4, 4)


def test_split_reads_its_rows_padded_when_asked():
    from jaxhep.tracking import dataset
    from jaxhep.tracking.config import DataConfig
    from jaxhep.tracking.padding import stack_graphs

    graphs = [build_graph(simulate_event(seed, pileup=5)) for seed in range(4)]
    cfg = DataConfig(val_events=1, test_events=1, train_sectors=3)
    train, val, test = dataset.split(graphs, [f"e{i}" for i in range(4)], cfg, bidirectional=True)
    assert (len(train), len(val), len(test)) == (6, 1, 1)
    rows = train.read(np.array([[0, 5], [4, 1]]))  # [steps, batch] as the training loop asks
    assert rows["senders"].shape == (2, 2, train.n_edge) and rows["nodes"].shape[:3] == (2, 2, train.n_node)
    # row 4 = event 1, sector 1: the same arrays as that sector padded on its own
    alone = stack_graphs([phi_sectors(graphs[1], 3, cfg.sector_halo)[1]], train.n_node, train.n_edge, True)
    for key, value in alone.items():
        assert np.array_equal(rows[key][1, 0], value[0]), key
    assert max(s.n_edge for g in graphs[:2] for s in phi_sectors(g, 3, cfg.sector_halo)) <= train.n_edge
    assert val.read([0])["senders"].shape == (1, val.n_edge) and test.graphs == graphs[3:]
