"""Graph construction: true edges, cuts, kNN, features and labels on a hand-made event; a simulated event."""

import chex
import numpy as np
import pytest

from jaxhep.tracking import graph as G
from jaxhep.tracking.io import Event
from jaxhep.tracking.sim.simulate import simulate_event
from tests.approx import approx

# Hand-made tracks from the origin, as (particle, pT GeV, cot theta, [(volume, layer, r, phi), ...]);
# endcap hits give r at the disk. P3 bends by 0.001 rad/mm (> 0.0006): its pairs fail the phi-slope
# cut. P2 crosses phi = +-pi. P4 (cot 9.375) misses barrel (8, 4) at |z| = 675 > 492 and enters the
# +z pixel disks at z = 600, 700, 820.
_E = 1e-3
TRACKS = [
    (1, 50.0, 0.5, [(8, 2, 32.0, 0.5), (8, 4, 72.0, 0.5), (8, 6, 116.0, 0.5), (8, 8, 172.0, 0.5)]),
    (2, 6.0, -0.3, [(8, 2, 32.0, np.pi - _E), (8, 4, 72.0, -np.pi + _E), (8, 6, 116.0, -np.pi + 3 * _E)]),
    (3, 0.3, 0.0, [(8, 2, 32.0, 1.5), (8, 4, 72.0, 1.54), (8, 6, 116.0, 1.584)]),
    (
        4,
        5.0,
        9.375,
        [(8, 2, 32.0, -1.0), (9, 2, 64.0, -1.0), (9, 4, 700 / 9.375, -1.0), (9, 6, 820 / 9.375, -1.0)],
    ),
]
NOISE = (8, 4, 72.0, 0.51, 41.0)  # volume, layer, r, phi, z: next to P1's second hit
# The consecutive pairs, inner hit first, as (particle, index along the track).
TRUE_PAIRS = [((p, i), (p, i + 1)) for p, _, _, hits in TRACKS for i in range(len(hits) - 1)]


def hand_event(seed: int = 0):
    """The tracks above plus one noise hit, rows shuffled; returns (event dict, {(particle, i): row})."""
    rows = []
    for pid, pt, cot, hits in TRACKS:
        for i, (vol, lay, r, phi) in enumerate(hits):
            rows.append(((pid, i), vol, lay, r, phi, r * cot, pid, pt, cot))
    vol, lay, r, phi, z = NOISE
    rows.append((("noise", 0), vol, lay, r, phi, z, 0, 0.0, 0.0))
    rows = [rows[i] for i in np.random.default_rng(seed).permutation(len(rows))]
    key = {row[0]: i for i, row in enumerate(rows)}
    r = np.array([row[3] for row in rows])
    phi = np.array([row[4] for row in rows])
    pid = np.array([row[6] for row in rows], np.int64)
    pt = np.array([row[7] for row in rows])
    cot = np.array([row[8] for row in rows])
    n = len(rows)
    hit_id = np.arange(1, n + 1) * 10  # not 1..N: node order and hit ids are independent
    hits = dict(
        hit_id=hit_id,
        x=(r * np.cos(phi)).astype(np.float32),
        y=(r * np.sin(phi)).astype(np.float32),
        z=np.array([row[5] for row in rows], np.float32),
        volume_id=np.array([row[1] for row in rows], np.int32),
        layer_id=np.array([row[2] for row in rows], np.int32),
        module_id=np.zeros(n, np.int32),
    )
    truth = dict(
        hit_id=hit_id,
        particle_id=pid,
        tx=hits["x"],
        ty=hits["y"],
        tz=hits["z"],
        tpx=pt * np.cos(phi),
        tpy=pt * np.sin(phi),
        tpz=pt * cot,
        weight=np.zeros(n),
    )
    ids = np.array([t[0] for t in TRACKS], np.int64)
    tpt = np.array([t[1] for t in TRACKS])
    tphi = np.array([t[3][0][3] for t in TRACKS])
    particles = dict(
        particle_id=ids,
        particle_type=np.full(4, 211),
        vx=np.zeros(4),
        vy=np.zeros(4),
        vz=np.zeros(4),
        px=tpt * np.cos(tphi),
        py=tpt * np.sin(tphi),
        pz=tpt * np.array([t[2] for t in TRACKS]),
        q=np.ones(4, np.int32),
        nhits=np.array([len(t[3]) for t in TRACKS]),
    )
    # Two cells on P1's first hit, one on the noise hit.
    cells = dict(
        hit_id=hit_id[[key[(1, 0)], key[(1, 0)], key[("noise", 0)]]],
        ch0=np.zeros(3, np.int32),
        ch1=np.zeros(3, np.int32),
        value=np.array([0.2, 0.3, 0.05], np.float32),
    )
    return dict(hits=hits, cells=cells, particles=particles, truth=truth), key


def _edge_set(graph):
    return set(zip(graph.senders.tolist(), graph.receivers.tolist()))


def _true_rows(key):
    return {(key[a], key[b]) for a, b in TRUE_PAIRS}


def test_truth_pairs_are_the_consecutive_hits():
    event, key = hand_event()
    graph = G.build_graph(event)
    assert graph.n_true_total == len(TRUE_PAIRS) == 10
    assert set(map(tuple, graph.true_pairs.tolist())) == _true_rows(key)
    np.testing.assert_array_equal(graph.particle_id[key[("noise", 0)]], 0)
    np.testing.assert_array_equal(graph.hit_id, event["hits"]["hit_id"])
    # The same with the rows in another order.
    event2, key2 = hand_event(seed=5)
    assert set(map(tuple, G.build_graph(event2).true_pairs.tolist())) == _true_rows(key2)


def test_geometric_edges_and_labels():
    event, key = hand_event()
    graph = G.build_graph(event, "geometric")
    noise = key[("noise", 0)]
    kept_true = _true_rows(key) - {(key[(3, 0)], key[(3, 1)]), (key[(3, 1)], key[(3, 2)])}
    fakes = {(key[(1, 0)], noise), (noise, key[(1, 2)])}
    assert _edge_set(graph) == kept_true | fakes
    labels = dict(zip(zip(graph.senders.tolist(), graph.receivers.tolist()), graph.labels.tolist()))
    assert all(labels[e] == 1.0 for e in kept_true) and all(labels[e] == 0.0 for e in fakes)
    # edge_pt carries the particle's pT on true edges, 0 on fakes.
    pts = dict(zip(zip(graph.senders.tolist(), graph.receivers.tolist()), graph.edge_pt.tolist()))
    assert pts[(key[(4, 0)], key[(4, 1)])] == approx(5.0, rel=1e-5)
    assert pts[(key[(1, 0)], noise)] == 0.0
    metrics = G.graph_efficiency_purity(graph)
    assert metrics["efficiency"] == approx(8 / 10) and metrics["purity"] == approx(8 / 10)
    # P3 (0.3 GeV) is the only loss: above 1 GeV everything is kept.
    assert G.graph_efficiency_purity(graph, pt_min=1.0)["efficiency"] == 1.0
    # A tight z0 cut keeps the tracks from the origin (z0 = 0) and drops the fakes (z0 = -4, +13 mm).
    tight = G.build_graph(event, "geometric", z0_max=1.0)
    assert _edge_set(tight) == kept_true
    # A tighter phi slope drops P2 (0.002 / 40 mm = 5e-5 rad/mm).
    assert (key[(2, 0)], key[(2, 1)]) not in _edge_set(G.build_graph(event, phi_slope_max=4e-5))


def test_edge_and_node_features_by_hand():
    event, key = hand_event()
    graph = G.build_graph(event)
    assert graph.nodes.shape == (15, 5) and graph.edges.shape == (graph.n_edge, len(G.EDGE_FEATURES))
    chex.assert_type([graph.nodes, graph.edges, graph.labels], np.float32)
    chex.assert_type([graph.senders, graph.receivers, graph.layer], np.int32)
    i = key[(1, 0)]
    np.testing.assert_allclose(graph.nodes[i], [0.032, 0.5 / np.pi, 0.016, 0.2, 0.5], rtol=1e-5)
    np.testing.assert_allclose(graph.nodes[key[("noise", 0)], 3:], [0.1, 0.05], rtol=1e-5)
    assert graph.nodes[key[(2, 0)], 3] == 0.0  # no cells
    # P2 crosses phi = pi: dphi = (-pi + 1e-3) - (pi - 1e-3) wraps to +2e-3.
    s, t = key[(2, 0)], key[(2, 1)]
    e = np.flatnonzero((graph.senders == s) & (graph.receivers == t))[0]
    by_hand = np.array([40.0, 2e-3, -12.0, 0.0, 2e-3 / 40.0, 0.0]) / np.array(G.EDGE_SCALES)
    np.testing.assert_allclose(graph.edges[e], by_hand, atol=2e-5)
    # The fake noise edge: dphi = 0.01, dz = 41 - 16, z0 = 16 - 32 * 25 / 40 = -4.
    e = np.flatnonzero((graph.senders == key[(1, 0)]) & (graph.receivers == key[("noise", 0)]))[0]
    deta = np.arcsinh(41.0 / 72.0) - np.arcsinh(0.5)
    by_hand = np.array([40.0, 0.01, 25.0, deta, 0.01 / 40.0, -4.0]) / np.array(G.EDGE_SCALES)
    np.testing.assert_allclose(graph.edges[e], by_hand, atol=2e-5)
    # Senders are always on the inner layer of an adjacent pair.
    pairs = set(map(tuple, G.geometry_layer_pairs().tolist()))
    assert set(zip(graph.layer[graph.senders].tolist(), graph.layer[graph.receivers].tolist())) <= pairs


def test_skip_check_drops_edges_through_a_layer():
    # Pixel barrel 3 (r = 116) -> strip barrel 1 (r = 260) is adjacent only through the crack at
    # |z| = 492 of pixel barrel 4 (r = 172): at z = 0 the line crosses that layer, at cot 3 it passes
    # it at z = 516.
    r = np.array([116.0, 260.0, 116.0, 260.0])
    phi = np.array([2.5, 2.5, -2.5, -2.5])
    hits = dict(
        hit_id=np.arange(1, 5),
        x=r * np.cos(phi),
        y=r * np.sin(phi),
        z=np.array([0.0, 0.0, 348.0, 780.0]),
        volume_id=np.array([8, 13, 8, 13]),
        layer_id=np.array([6, 2, 6, 2]),
    )
    event = Event(prefix="x", hits=hits)
    assert _edge_set(G.build_graph(event)) == {(2, 3)}
    assert _edge_set(G.build_graph(event, skip_check=False)) == {(0, 1), (2, 3)}


def test_knn_includes_true_pairs_for_small_k():
    event, key = hand_event()
    graph = G.build_graph(event, "knn", k=2)
    assert _true_rows(key) <= _edge_set(graph)
    assert G.graph_efficiency_purity(graph)["efficiency"] == 1.0
    # Each hit has at most k outgoing edges.
    assert np.bincount(graph.senders).max() <= 2


def test_pt_min_labels_and_train_mask():
    event, key = hand_event()
    graph = G.build_graph(event, "knn", k=2, pt_min=1.0)
    edges = list(zip(graph.senders.tolist(), graph.receivers.tolist()))
    p3 = {(key[(3, 0)], key[(3, 1)]), (key[(3, 1)], key[(3, 2)])}
    for e, label, mask, pt in zip(edges, graph.labels, graph.train_mask, graph.edge_pt):
        if e in p3:  # true but below the cut: neither positive nor negative
            assert label == 0.0 and not mask and pt == approx(0.3, rel=1e-5)
        elif e in _true_rows(key):
            assert label == 1.0 and mask
        else:
            assert label == 0.0 and mask and pt == 0.0


def test_event_dataclass_and_no_truth():
    event, _ = hand_event()
    as_dict = G.build_graph(event)
    as_event = G.build_graph(Event(prefix="event000000001", **event))
    np.testing.assert_array_equal(as_dict.edges, as_event.edges)
    np.testing.assert_array_equal(as_dict.labels, as_event.labels)
    blind = G.build_graph(Event(prefix="x", hits=event["hits"]))
    assert blind.nodes.shape[1] == 3 and blind.labels.sum() == 0 and blind.n_true_total == 0
    np.testing.assert_array_equal(blind.senders, as_dict.senders)


def test_layers_and_adjacency():
    keys = G.layer_keys()
    assert len(keys) == 48 and tuple(keys[0]) == (7, 2) and tuple(keys[-1]) == (18, 12)
    with pytest.raises(ValueError, match="does not have"):
        G.global_layer([8, 10], [2, 2])
    index = {tuple(k): i for i, k in enumerate(keys.tolist())}
    geometry = set(map(tuple, G.geometry_layer_pairs().tolist()))
    simple = set(map(tuple, G.simple_layer_pairs().tolist()))
    for inner, outer in [((8, 8), (13, 2)), ((8, 2), (9, 2)), ((9, 2), (9, 4)), ((7, 12), (7, 10))]:
        assert (index[inner], index[outer]) in geometry and (index[inner], index[outer]) in simple
    # Physical steps the simple convention lacks: pixel disk -> strip disk, a crack skip.
    for inner, outer in [((9, 12), (14, 8)), ((8, 6), (13, 2))]:
        assert (index[inner], index[outer]) in geometry and (index[inner], index[outer]) not in simple
    # One orientation per unordered pair; never a layer with itself.
    assert len({tuple(sorted(p)) for p in geometry}) == len(geometry)
    assert all(a != b for a, b in geometry)


@pytest.fixture(scope="module")
def small_event():
    return simulate_event(3, pileup=10)


def test_simulated_event_efficiency(small_event):
    graph = G.build_graph(small_event)
    high = G.graph_efficiency_purity(graph, pt_min=1.0)
    assert high["n_true_total"] > 100
    assert high["efficiency"] >= 0.9
    assert 0.0 < G.graph_efficiency_purity(graph)["purity"] <= 1.0
    # A particle above 1 GeV (no looping) has one pair per hit after its first.
    particles = small_event["particles"]
    pt = np.hypot(particles["px"], particles["py"])
    fast = particles["particle_id"][(pt > 1.0) & (particles["nhits"] > 0)]
    expected = int(np.sum(particles["nhits"][np.isin(particles["particle_id"], fast)] - 1))
    assert graph.n_true(1.0) == expected
    # Scaled features stay bounded; labels follow edge_pt.
    assert np.all(np.isfinite(graph.edges)) and np.abs(graph.edges).max() <= G.EDGE_CLIP
    np.testing.assert_array_equal(graph.labels, (graph.edge_pt > 0).astype(np.float32))
    knn = G.build_graph(small_event, "knn")
    assert knn.n_edge > 0 and G.graph_efficiency_purity(knn, pt_min=1.0)["efficiency"] > 0.5
