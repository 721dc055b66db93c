"""Slice an event graph into phi sectors with a halo: more, cheaper training steps on small devices.

A mu = 200 graph (~0.8 M edges) is one optimiser step of ~10 s on a 2-core CPU, so a run sees few
steps. HEP.TrkX / Exa.TrkX trained on eta / phi sectors of each event for the same reason (Farrell
et al., arXiv:1810.06111). Here each edge belongs to the sector of its sender's phi ("core" edges:
every edge of the event is the core of exactly one sector, so an epoch still trains on each edge
once). A sector's sub-graph also holds the hits within `halo` rad of the sector and every endpoint
of a core edge, with all edges among those hits, so the message passing around core edges sees
(almost) the neighbourhood it has in the whole event. Halo edges carry messages but train_mask
False: they are scored in the sector that owns them.

Evaluation always runs on whole events; sectors are for training only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxhep.tracking.graph import NODE_FEATURES, NODE_SCALES, EventGraph

_PHI = NODE_FEATURES.index("phi")


def node_phi(graph: EventGraph) -> np.ndarray:
    """[N] azimuth of each hit in (-pi, pi] (undoing the node feature's scale)."""
    return graph.nodes[:, _PHI].astype(np.float64) * NODE_SCALES[_PHI]


def phi_sectors(
    graph: EventGraph, n_sectors: int, halo: float = 0.1, balanced: bool = True
) -> list[EventGraph]:
    """The event cut into n_sectors phi sectors, each with `halo` rad of context on each side.

    balanced: sector boundaries at the quantiles of the senders' phi, so every sector owns the same
    number of edges (the padded size, hence the step time, is set by the largest sector); else equal
    widths, sector k starting at phi = -pi + k 2 pi / n. Returns n_sectors graphs whose train_mask is
    True only on the sector's trainable core edges; nodes keep their order.
    """
    _check(n_sectors, halo)
    if n_sectors == 1:
        return [graph]
    layout = _layout(graph, n_sectors, balanced)
    return [_cut(graph, layout, k, halo) for k in range(n_sectors)]


def phi_sector(graph: EventGraph, n_sectors: int, k: int, halo: float = 0.1, balanced: bool = True):
    """Sector k of `phi_sectors(graph, n_sectors, halo, balanced)`, cut alone (a training row is read
    as one sector of its event, so the sectors of every event are never all in memory at once)."""
    _check(n_sectors, halo)
    if not 0 <= k < n_sectors:
        raise ValueError(f"sector {k} of {n_sectors} does not exist")
    if n_sectors == 1:
        return graph
    return _cut(graph, _layout(graph, n_sectors, balanced), k, halo)


def _check(n_sectors: int, halo: float) -> None:
    if n_sectors < 1:
        raise ValueError(f"n_sectors must be >= 1, got {n_sectors}")
    if halo < 0:
        raise ValueError(f"halo must be >= 0 rad, got {halo}")


def _layout(graph: EventGraph, n_sectors: int, balanced: bool):
    """(phi [N] of each hit, sector boundaries [n_sectors + 1], sector [N] of each hit): shared by all
    the sectors of an event."""
    phi = node_phi(graph)
    if balanced and graph.n_edge:
        inner = np.quantile(phi[graph.senders], np.arange(1, n_sectors) / n_sectors)
    else:
        inner = -np.pi + np.arange(1, n_sectors) * 2 * np.pi / n_sectors
    bounds = np.concatenate([[-np.pi], inner, [np.pi]])
    return phi, bounds, np.searchsorted(inner, phi, side="right")


def _cut(graph: EventGraph, layout, k: int, halo: float) -> EventGraph:
    phi, bounds, sector = layout
    # how far (rad, around the circle) each hit lies outside [bounds[k], bounds[k + 1])
    outside = np.minimum((bounds[k] - phi) % (2 * np.pi), (phi - bounds[k + 1]) % (2 * np.pi))
    core = sector[graph.senders] == k
    keep_node = (sector == k) | (outside <= halo)
    keep_node[graph.senders[core]] = True
    keep_node[graph.receivers[core]] = True
    return _subgraph(graph, keep_node, core, k)


def _subgraph(graph: EventGraph, keep_node: np.ndarray, core: np.ndarray, sector: int) -> EventGraph:
    keep_edge = keep_node[graph.senders] & keep_node[graph.receivers]
    sub = graph.select(keep_node, keep_edge, info={**graph.info, "sector": sector})
    return dataclasses.replace(sub, train_mask=sub.train_mask & core[keep_edge])
