"""Two stages: a trained edge classifier prunes each event's graph, a second one classifies what is left.

At mu = 200 the geometric graph is 1.5 % pure: one classifier has to find ~9 k true edges among
~800 k, and in the central barrel it does not (BUILD_NOTES.md, "Two stages"). Exa.TrkX cascades an
embedding + filter before its GNN for the same reason (Ju et al., arXiv:2103.06995). Here stage 1 is
the same GNN trained on the whole graph; it keeps every edge scoring above the threshold that keeps
`target_recall` of the validation events' true edges (~6 % of the edges, 19-24 % pure), and stage 2,
a fresh GNN, trains and predicts on those pruned graphs, whose message passing no longer drowns in
fake neighbours. Hits left without an edge are dropped from the stage-2 graph (they cost node work
and carry no message); tracks are built on the whole event, where they stay single-hit tracks.

Stage 2's scores go back onto the original edges (`scatter_scores`; pruned edges score 0), so every
figure of merit of the cascade is computed on the event's whole graph: an edge lost by the filter is
a missed true edge like any other.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from jaxhep.tracking.graph import EventGraph


def positive_scores(graphs: list[EventGraph], scores: list[np.ndarray]) -> np.ndarray:
    """Scores of the trainable true edges (label 1, train_mask True) of all graphs: [n_pos]."""
    return np.concatenate(
        [s[(g.labels > 0) & g.train_mask.astype(bool)] for g, s in zip(graphs, scores, strict=True)]
    )


def recall_threshold(graphs: list[EventGraph], scores: list[np.ndarray], target_recall: float) -> float:
    """The highest threshold t with at least `target_recall` of the trainable true edges scoring >= t.

    With n positives at most floor((1 - target) n) may fall below t, so t is the score of the
    (floor((1 - target) n) + 1)-th lowest positive.
    """
    if not 0.0 < target_recall <= 1.0:
        raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
    pos = np.sort(positive_scores(graphs, scores))
    if len(pos) == 0:
        raise ValueError("no trainable true edge to set a recall threshold on")
    n_lost = int(np.floor((1.0 - target_recall) * len(pos) + 1e-9))
    return float(pos[min(n_lost, len(pos) - 1)])


def prune(graph: EventGraph, scores: np.ndarray, threshold: float) -> tuple[EventGraph, np.ndarray]:
    """The graph of the edges scoring >= threshold and the hits they join.

    Returns (pruned graph, edge_index [E'] int64: each kept edge's index in `graph`). Kept edges keep
    their order, kept hits theirs.
    """
    if len(scores) != graph.n_edge:
        raise ValueError(f"{len(scores)} scores for a graph of {graph.n_edge} edges")
    keep_edge = scores >= threshold
    keep_node = np.zeros(graph.n_node, bool)
    keep_node[graph.senders[keep_edge]] = True
    keep_node[graph.receivers[keep_edge]] = True
    return graph.select(keep_node, keep_edge), np.flatnonzero(keep_edge)


def scatter_scores(n_edge: int, edge_index: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Scores of a pruned graph's edges put back on the original graph's n_edge edges (0 elsewhere)."""
    out = np.zeros(n_edge, np.float32)
    out[edge_index] = scores
    return out


def filter_summary(graphs: list[EventGraph], scores: list[np.ndarray], threshold: float) -> dict:
    """What the filter keeps on some events: edges kept, recall of the trainable true edges, purity."""
    n_edge = sum(g.n_edge for g in graphs)
    kept = sum(int(np.sum(s >= threshold)) for s in scores)
    pos = positive_scores(graphs, scores)  # one score per trainable true edge
    true_kept = int(np.sum(pos >= threshold))
    return {
        "threshold": threshold,
        "edges_per_event_before": n_edge / len(graphs),
        "edges_per_event_after": kept / len(graphs),
        "kept_fraction": kept / max(n_edge, 1),
        "recall": true_kept / max(len(pos), 1),
        "purity_before": len(pos) / max(n_edge, 1),
        "purity_after": true_kept / max(kept, 1),
    }


# -- the filter's scores, cached in the run folder -------------------------------------------------


def save_scores(path: str | os.PathLike, names: list[str], scores: list[np.ndarray]) -> None:
    """Every event's filter scores in one .npz keyed by event name (float16: 1.6 MB per mu = 200
    event), written to a temporary file and renamed, so a killed run never leaves half a cache."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **{name: s.astype(np.float16) for name, s in zip(names, scores, strict=True)})
    os.replace(tmp, path)


def load_scores(path: str | os.PathLike, names: list[str], graphs: list[EventGraph]) -> list | None:
    """The cached scores of these events (float32), or None when the cache is missing or does not
    match them (an event absent, or a different number of edges)."""
    path = Path(path)
    if not path.exists():
        return None
    with np.load(path) as cache:
        if not set(names) <= set(cache.files):
            return None
        scores = [cache[n] for n in names]  # each array read from disk once
    if any(len(s) != g.n_edge for s, g in zip(scores, graphs)):
        return None
    return [s.astype(np.float32) for s in scores]
