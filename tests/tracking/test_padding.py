"""Padding to bucketed static shapes: sizes, masks, padding edges, stacks, jraph consistency."""

import chex
import jax
import jax.numpy as jnp
import jraph
import numpy as np
import pytest

from jaxhep.tracking.graph import EventGraph
from jaxhep.tracking.padding import bucket_size, graph_buckets, pad_graph, stack_graphs, to_graphs_tuple


def random_graph(n: int, e: int, seed: int = 0) -> EventGraph:
    rng = np.random.default_rng(seed)
    labels = (rng.random(e) < 0.3).astype(np.float32)
    return EventGraph(
        nodes=rng.normal(size=(n, 5)).astype(np.float32),
        edges=rng.normal(size=(e, 6)).astype(np.float32),
        senders=rng.integers(0, n, e).astype(np.int32),
        receivers=rng.integers(0, n, e).astype(np.int32),
        labels=labels,
        train_mask=rng.random(e) < 0.9,
        edge_pt=labels * 2.0,
        edge_eta=np.zeros(e, np.float32),
        hit_id=np.arange(1, n + 1),
        layer=np.zeros(n, np.int32),
        particle_id=np.zeros(n, np.int64),
        true_pairs=np.zeros((0, 2), np.int32),
        true_pt=np.zeros(0, np.float32),
    )


def test_bucket_sizes():
    sizes = {bucket_size(n) for n in range(1, 2_000_000, 997)}
    assert len(sizes) < 40  # a few dozen compilations cover 1 .. 2 M
    for n in [1, 127, 128, 129, 1000, 12_345, 999_999]:
        b = bucket_size(n)
        assert b >= n and b % 128 == 0 and bucket_size(b) == b
        assert b <= max(128, 1.25 * n + 128)
    assert bucket_size(1000) == bucket_size(1001)  # neighbours share a bucket
    assert bucket_size(10, minimum=16, multiple=8) == 16
    with pytest.raises(ValueError):
        bucket_size(10, base=1.0)


def test_pad_graph_masks_and_padding_edges():
    graph = random_graph(50, 200)
    n_node, n_edge = graph_buckets(graph)
    assert n_node > 50 and n_edge >= 200
    padded = pad_graph(graph, n_node, n_edge)
    chex.assert_shape(padded["nodes"], (n_node, 5))
    chex.assert_shape(padded["edges"], (n_edge, 6))
    chex.assert_shape([padded["senders"], padded["receivers"], padded["labels"]], (n_edge,))
    chex.assert_type([padded["senders"], padded["receivers"], padded["n_node"]], np.int32)
    assert padded["node_mask"].sum() == 50 and padded["edge_mask"].sum() == 200
    assert not padded["node_mask"][n_node - 1]
    pad = ~padded["edge_mask"]
    assert np.all(padded["senders"][pad] == n_node - 1) and np.all(padded["receivers"][pad] == n_node - 1)
    assert np.all(padded["labels"][pad] == 0) and not padded["train_mask"][pad].any()
    np.testing.assert_array_equal(padded["train_mask"][:200], graph.train_mask)
    np.testing.assert_array_equal(padded["nodes"][:50], graph.nodes)
    np.testing.assert_array_equal(padded["n_node"], [50, n_node - 50])
    np.testing.assert_array_equal(padded["n_edge"], [200, n_edge - 200])
    with pytest.raises(ValueError, match="must exceed"):
        pad_graph(graph, 50, n_edge)
    with pytest.raises(ValueError, match="smaller"):
        pad_graph(graph, n_node, 199)


def test_stack_graphs():
    graphs = [random_graph(40, 100, 1), random_graph(90, 300, 2), random_graph(10, 0, 3)]
    stacked = stack_graphs(graphs)
    n_node, n_edge = graph_buckets(graphs)
    chex.assert_shape(stacked["nodes"], (3, n_node, 5))
    chex.assert_shape(stacked["senders"], (3, n_edge))
    chex.assert_shape(stacked["n_node"], (3, 2))
    np.testing.assert_array_equal(stacked["node_mask"].sum(1), [40, 90, 10])
    np.testing.assert_array_equal(stacked["edge_mask"].sum(1), [100, 300, 0])
    np.testing.assert_array_equal(stacked["labels"][1, :300], graphs[1].labels)
    fixed = stack_graphs(graphs, n_node=256, n_edge=512)
    chex.assert_shape(fixed["edges"], (3, 512, 6))


def test_graphs_tuple_agrees_with_jraph():
    graph = random_graph(70, 150)
    padded = pad_graph(graph, *graph_buckets(graph))
    gt = to_graphs_tuple(padded)
    np.testing.assert_array_equal(jraph.get_node_padding_mask(gt), padded["node_mask"])
    np.testing.assert_array_equal(jraph.get_edge_padding_mask(gt), padded["edge_mask"])
    np.testing.assert_array_equal(jraph.get_graph_padding_mask(gt), [True, False])
    # Message passing over the padded graph gives the real in-degrees on real nodes.
    degree = jax.ops.segment_sum(jnp.ones(len(gt.receivers)), gt.receivers, num_segments=gt.nodes.shape[0])
    np.testing.assert_array_equal(degree[:70], np.bincount(graph.receivers, minlength=70))

    # Under vmap over a stack, as the training step uses it.
    stacked = stack_graphs([graph, random_graph(20, 30, 4)])

    @jax.jit
    @jax.vmap
    def masks(p):
        g = to_graphs_tuple(p)
        return jraph.get_node_padding_mask(g), jraph.get_edge_padding_mask(g)

    node_mask, edge_mask = masks(jax.tree.map(jnp.asarray, stacked))
    np.testing.assert_array_equal(node_mask, stacked["node_mask"])
    np.testing.assert_array_equal(edge_mask, stacked["edge_mask"])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_stored_message_order_sorts_the_padded_message_edges(bidirectional):
    graphs = [random_graph(40, 100, 1), random_graph(90, 300, 2)]
    stacked = stack_graphs(graphs, bidirectional=bidirectional)
    assert "message_order" not in stack_graphs(graphs)
    n_edge = stacked["senders"].shape[1]
    chex.assert_shape(stacked["message_order"], (2, 2 * n_edge if bidirectional else n_edge))
    chex.assert_type(stacked["message_order"], np.int32)
    for i in range(2):
        s, r = stacked["senders"][i], stacked["receivers"][i]
        mp_receivers = np.concatenate([r, s]) if bidirectional else r
        order = stacked["message_order"][i]
        assert np.all(np.diff(mp_receivers[order]) >= 0)  # sorted by receiver
        np.testing.assert_array_equal(np.sort(order), np.arange(len(mp_receivers)))  # a permutation
