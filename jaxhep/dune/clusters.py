"""Clustering trigger primitives per event and plane, and picking each plane's main cluster.

Two TPs of one event and plane belong to the same cluster when they are connected through TPs
at most `channel_gap` channels apart whose time ranges come within about `tick_bin` ticks (the
online-pointing-utils clustering joins TPs by channel and tick proximity in the same way). The
connection is found without pairwise comparisons: each TP marks the (channel, tick // tick_bin)
cells it covers, neighbouring occupied cells are linked, and the connected components of that
sparse graph are the clusters.

The main cluster of a plane is the one holding most charge of the primary electron (truth
matching, as the seed's matched-cluster data sets were built from MC truth).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_array, csgraph

_BITS = 18
_OFFSET = 1 << 17


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label (the smallest node id in it) of nodes 0..n-1 given undirected edges a-b [e]."""
    adjacency = coo_array((np.ones(len(a), np.int8), (a, b)), shape=(n, n)).tocsr()
    _, component = csgraph.connected_components(adjacency, directed=False)
    smallest = np.unique(component, return_index=True)[1]  # [K]: the first node of each component
    return smallest[component]


def cluster_tps(tps: dict[str, np.ndarray], channel_gap: int = 2, tick_bin: int = 8) -> np.ndarray:
    """Cluster index of every TP [t] (int64, 0..n_clusters-1, clusters never span events or planes)."""
    n = len(tps["event"])
    if n == 0:
        return np.zeros(0, np.int64)
    first = tps["time_start"] // tick_bin
    last = (tps["time_start"] + tps["time_over_threshold"] - 1) // tick_bin
    count = last - first + 1
    tp_of_cell = np.repeat(np.arange(n), count)
    bins = np.repeat(first, count) + np.arange(tp_of_cell.size) - np.repeat(np.cumsum(count) - count, count)
    group = tps["event"].astype(np.int64) * 4 + tps["plane"]
    keys = (
        (np.repeat(group, count) << (2 * _BITS))
        | ((tps["channel"][tp_of_cell] + _OFFSET) << _BITS)
        | (bins + _OFFSET)
    )
    cells, cell_of = np.unique(keys, return_inverse=True)
    a, b = [tp_of_cell], [n + cell_of]
    for d_channel in range(channel_gap + 1):
        for d_bin in (-1, 0, 1):
            if d_channel == 0 and d_bin <= 0:
                continue  # each unordered pair of cells once
            target = cells + (d_channel << _BITS) + d_bin
            pos = np.minimum(np.searchsorted(cells, target), cells.size - 1)
            hit = cells[pos] == target
            a.append(n + np.flatnonzero(hit))
            b.append(n + pos[hit])
    label = connected_components(n + cells.size, np.concatenate(a), np.concatenate(b))[:n]
    return np.unique(label, return_inverse=True)[1]


def summarise(tps: dict[str, np.ndarray], cluster: np.ndarray) -> dict[str, np.ndarray]:
    """Per-cluster summary, each [c]: event, plane, n_tps, adc (sum of adc_integral), primary_adc,
    channel_min, channel_max, tick_min, tick_max (inclusive ranges)."""
    c = int(cluster.max()) + 1 if cluster.size else 0
    order = np.argsort(cluster, kind="stable")
    starts = np.searchsorted(cluster[order], np.arange(c))
    tick_end = tps["time_start"] + tps["time_over_threshold"] - 1
    adc = tps["adc_integral"].astype(np.float64)

    def reduce(ufunc, values):
        return ufunc.reduceat(values[order], starts) if c else values[:0]

    return dict(
        event=tps["event"][order][starts] if c else tps["event"][:0],
        plane=tps["plane"][order][starts] if c else tps["plane"][:0],
        n_tps=np.bincount(cluster, minlength=c),
        adc=np.bincount(cluster, adc, minlength=c),
        primary_adc=np.bincount(cluster, adc * tps["primary_fraction"], minlength=c),
        channel_min=reduce(np.minimum, tps["channel"]),
        channel_max=reduce(np.maximum, tps["channel"]),
        tick_min=reduce(np.minimum, tps["time_start"]),
        tick_max=reduce(np.maximum, tick_end),
    )


def main_clusters(summary: dict[str, np.ndarray], n_events: int, n_planes: int = 3) -> np.ndarray:
    """Index of the main cluster of each event and plane, [n_events, n_planes] (-1: no primary charge)."""
    main = np.full((n_events, n_planes), -1, np.int64)
    has = np.flatnonzero(summary["primary_adc"] > 0)
    if has.size == 0:
        return main
    ev, pl, q = summary["event"][has], summary["plane"][has], summary["primary_adc"][has]
    order = np.lexsort((-q, pl, ev))  # within (event, plane): most primary charge first
    first = np.ones(order.size, bool)
    first[1:] = (ev[order][1:] != ev[order][:-1]) | (pl[order][1:] != pl[order][:-1])
    best = has[order[first]]
    main[summary["event"][best], summary["plane"][best]] = best
    return main
