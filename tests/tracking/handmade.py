"""Event graphs small enough to work out by hand."""

import numpy as np

from jaxhep.tracking.graph import EventGraph


def hand_graph(phi, senders, receivers, train_mask=None, labels=None) -> EventGraph:
    """A graph of hits at these phi (r = index / 10), edge feature = the edge's own index (so a sliced
    graph tells which edges it kept), labels 1 unless given, every edge a true pair."""
    n, e = len(phi), len(senders)
    nodes = np.zeros((n, 3), np.float32)
    nodes[:, 0] = np.arange(n) / 10  # r: tells the nodes apart after slicing
    nodes[:, 1] = np.asarray(phi) / np.pi
    return EventGraph(
        nodes=nodes,
        edges=np.arange(e, dtype=np.float32)[:, None],  # edge feature = original edge index
        senders=np.asarray(senders, np.int32),
        receivers=np.asarray(receivers, np.int32),
        labels=np.ones(e, np.float32) if labels is None else np.asarray(labels, np.float32),
        train_mask=np.ones(e, bool) if train_mask is None else np.asarray(train_mask),
        edge_pt=np.ones(e, np.float32),
        edge_eta=np.zeros(e, np.float32),
        hit_id=np.arange(1, n + 1, dtype=np.int64),
        layer=np.zeros(n, np.int32),
        particle_id=np.arange(n, dtype=np.int64),
        true_pairs=np.stack([np.asarray(senders), np.asarray(receivers)], 1).astype(np.int32),
        true_pt=np.ones(e, np.float32),
    )
