"""Static shapes for jit: bucketed sizes, padded graphs, stacks of graphs, jraph views.

A μ = 200 event has ~100 k nodes and ~0.7 M geometric edges, and every event differs, so each graph is
padded up to a size from a short geometric series (`bucket_size`): `jit` compiles once per bucket,
never per event, and at most 1 - 1 / base of an array is padding (20 % for base 1.25; more for small
graphs, which round up to a multiple of 128).

Padding follows jraph's `pad_with_graphs` convention with one padding graph: the real graph owns nodes
[0, N) and edges [0, E), the padding graph owns the rest; `n_node = [N, n_node - N]` and
`n_edge = [E, n_edge - E]`. Padding edges join the last node, a padding node (so n_node > N is
required), to itself, so message passing never touches a real node through them. Masks keep padding
out of losses and metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jraph
import numpy as np

from jaxhep.tracking.graph import EventGraph
from jaxhep.tracking.model import message_order

# Sizes are multiples of 128 (the TPU lane width; harmless elsewhere), from 128 up by x1.25.
BUCKET_BASE = 1.25
BUCKET_MINIMUM = 128
BUCKET_MULTIPLE = 128


def bucket_size(
    n: int, base: float = BUCKET_BASE, minimum: int = BUCKET_MINIMUM, multiple: int = BUCKET_MULTIPLE
) -> int:
    """The smallest size >= n in the series s_0 = minimum, s_k+1 = round_up(ceil(base * s_k), multiple).

    The series depends only on (base, minimum, multiple), never on the data, so graphs of similar size
    share a bucket.
    """
    if base <= 1.0 or minimum < 1 or multiple < 1:
        raise ValueError(f"need base > 1, minimum >= 1, multiple >= 1; got {base}, {minimum}, {multiple}")
    size = -(-minimum // multiple) * multiple
    while size < n:
        size = -(-math.ceil(size * base) // multiple) * multiple
    return size


def graph_buckets(graphs: EventGraph | Sequence[EventGraph], **bucket_kwargs) -> tuple[int, int]:
    """(n_node, n_edge) buckets that fit every graph given, with room for the padding node."""
    graphs = [graphs] if isinstance(graphs, EventGraph) else list(graphs)
    n_node = max(g.n_node for g in graphs) + 1
    n_edge = max(g.n_edge for g in graphs)
    return bucket_size(n_node, **bucket_kwargs), bucket_size(n_edge, **bucket_kwargs)


def _pad(array: np.ndarray, length: int, value=0) -> np.ndarray:
    """`array` [n, ...] padded along axis 0 to [length, ...] with `value`."""
    out = np.full((length, *array.shape[1:]), value, dtype=array.dtype)
    out[: len(array)] = array
    return out


def pad_graph(
    graph: EventGraph, n_node: int, n_edge: int, bidirectional: bool | None = None
) -> dict[str, np.ndarray]:
    """One graph padded to n_node nodes (> N) and n_edge edges (>= E), as NumPy arrays.

    Keys: nodes [n_node, F_n] float32, edges [n_edge, F_e] float32, senders / receivers [n_edge] int32
    (padding: n_node - 1), labels [n_edge] float32, edge_pt [n_edge] float32, node_mask [n_node] bool,
    edge_mask [n_edge] bool, train_mask [n_edge] bool (edge_mask & the graph's train_mask),
    n_node / n_edge [2] int32 (jraph's [real, padding] counts); with `bidirectional` given, also
    message_order [n_edge or 2 n_edge] int32 (`model.message_order` for that setting of the model).
    """
    n, e = graph.n_node, graph.n_edge
    if n_node <= n:
        raise ValueError(f"n_node = {n_node} must exceed the graph's {n} nodes (padding edges need a node)")
    if n_edge < e:
        raise ValueError(f"n_edge = {n_edge} is smaller than the graph's {e} edges")
    node_mask = np.arange(n_node) < n
    edge_mask = np.arange(n_edge) < e
    out = dict(
        nodes=_pad(graph.nodes.astype(np.float32), n_node),
        edges=_pad(graph.edges.astype(np.float32), n_edge),
        senders=_pad(graph.senders.astype(np.int32), n_edge, n_node - 1),
        receivers=_pad(graph.receivers.astype(np.int32), n_edge, n_node - 1),
        labels=_pad(graph.labels.astype(np.float32), n_edge),
        edge_pt=_pad(graph.edge_pt.astype(np.float32), n_edge),
        node_mask=node_mask,
        edge_mask=edge_mask,
        n_node=np.array([n, n_node - n], np.int32),
        n_edge=np.array([e, n_edge - e], np.int32),
    )
    if graph.train_mask is not None:
        out["train_mask"] = _pad(graph.train_mask.astype(bool), n_edge, False)
    if bidirectional is not None:
        # Sorting the message-passing edges once here spares the model a sort in every step.
        out["message_order"] = message_order(out["senders"], out["receivers"], bidirectional)
    return out


def stack_graphs(
    graphs: Sequence[EventGraph],
    n_node: int | None = None,
    n_edge: int | None = None,
    bidirectional: bool | None = None,
    **bucket_kwargs,
) -> dict[str, np.ndarray]:
    """Several graphs padded to one size and stacked: every key of `pad_graph` with a leading [G] axis.

    n_node / n_edge default to `graph_buckets(graphs)`. The leading axis is what a training step shards
    over devices and vmaps the model over (graphs cannot be concatenated across devices).
    """
    if len(graphs) == 0:
        raise ValueError("stack_graphs needs at least one graph")
    if n_node is None or n_edge is None:
        fit_node, fit_edge = graph_buckets(graphs, **bucket_kwargs)
        n_node = fit_node if n_node is None else n_node
        n_edge = fit_edge if n_edge is None else n_edge
    padded = [pad_graph(g, n_node, n_edge, bidirectional) for g in graphs]
    keys = [k for k in padded[0] if all(k in p for p in padded)]
    return {k: np.stack([p[k] for p in padded]) for k in keys}


def to_graphs_tuple(padded: dict) -> jraph.GraphsTuple:
    """A jraph view of one padded graph (NumPy or JAX arrays): two graphs, the real one and the padding.

    `jraph.get_node_padding_mask` / `get_edge_padding_mask` then agree with node_mask / edge_mask. Call it
    inside `vmap` for a stack from `stack_graphs`.
    """
    return jraph.GraphsTuple(
        nodes=padded["nodes"],
        edges=padded["edges"],
        senders=padded["senders"],
        receivers=padded["receivers"],
        globals=None,
        n_node=padded["n_node"],
        n_edge=padded["n_edge"],
    )
