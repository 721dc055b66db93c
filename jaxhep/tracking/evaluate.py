"""From edge scores to the figures of merit: edges, tracks, TrackML score, efficiency vs pT/eta."""

from __future__ import annotations

import numpy as np

from jaxhep import metrics
from jaxhep.tracking.graph import EventGraph
from jaxhep.tracking.io import read_event
from jaxhep.tracking.score import hit_particle_pt, trackml_score, trackml_score_above_pt
from jaxhep.tracking.tracks import build_tracks, hit_particle_eta, tracking_metrics

PT_BINS = np.array([0.1, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 100.0])
ETA_BINS = np.linspace(-4, 4, 17)


def edge_efficiency_vs(
    graphs: list[EventGraph], scores: list[np.ndarray], threshold: float, key: str, bins: np.ndarray
) -> dict:
    """Fraction of true edges scored above threshold, binned in the particle's pT or eta."""
    values = np.concatenate([getattr(g, key)[g.labels > 0] for g in graphs])
    found = np.concatenate([s[g.labels > 0] >= threshold for g, s in zip(graphs, scores)])
    idx = np.digitize(values, bins) - 1
    ok = (idx >= 0) & (idx < len(bins) - 1)
    n = np.bincount(idx[ok], minlength=len(bins) - 1)
    k = np.bincount(idx[ok], weights=found[ok], minlength=len(bins) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        eff = k / n
    return {"edges": bins.tolist(), "efficiency": eff.tolist(), "n": n.tolist()}


def event_tracks(
    prefix: str, graph: EventGraph, scores: np.ndarray, threshold: float, method: str, pt_min: float
) -> dict:
    """Tracks of one event, its TrackML scores (all particles and pT > pt_min) and tracking metrics."""
    event = read_event(prefix)
    truth, particles, hits = event.truth, event.particles, event.hits
    track_id = build_tracks(graph.n_node, graph.senders, graph.receivers, scores, threshold, method=method)
    hit_pt = hit_particle_pt(truth["particle_id"], particles)
    score = trackml_score(truth["hit_id"], truth["particle_id"], truth["weight"], graph.hit_id, track_id)
    score_pt = trackml_score_above_pt(
        truth["hit_id"], truth["particle_id"], truth["weight"], graph.hit_id, track_id, hit_pt, pt_min
    )
    # truth rows follow the hits file order, as do the graph's nodes (checked)
    assert np.array_equal(np.asarray(truth["hit_id"]), graph.hit_id)
    tm = tracking_metrics(truth["particle_id"], track_id, hit_pt, pt_min=pt_min)
    return {
        "track_id": track_id,
        "score": score,
        "score_pt": score_pt,
        **tm,
        "hits": hits,
        "hit_pt": hit_pt,
        "hit_eta": hit_particle_eta(truth["particle_id"], particles),
        "particle_id": np.asarray(truth["particle_id"]),
    }


def roc(graphs: list[EventGraph], scores: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC curve (subsampled to <= 2000 points) and AUC over the trainable edges."""
    labels = np.concatenate([g.labels[g.train_mask.astype(bool)] for g in graphs])
    probs = np.concatenate([s[g.train_mask.astype(bool)] for g, s in zip(graphs, scores)])
    fpr, tpr, _ = metrics.roc_curve(labels, probs)
    step = max(1, len(fpr) // 2000)
    return fpr[::step], tpr[::step], metrics.roc_auc(labels, probs)
