"""From edge scores to the figures of merit: edges, tracks, TrackML score, efficiency vs pT/eta."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jaxhep import metrics
from jaxhep.metrics import efficiency_interval
from jaxhep.tracking.config import TrackingConfig
from jaxhep.tracking.dataset import graph_options
from jaxhep.tracking.graph import EventGraph, build_graph, graph_efficiency_purity, hit_positions
from jaxhep.tracking.io import read_event
from jaxhep.tracking.score import (
    ORDER_MIN_HITS,
    hit_particle_pt,
    score_by_pt,
    trackml_score,
    trackml_score_above_pt,
)
from jaxhep.tracking.tracks import (
    BinnedEfficiency,
    build_tracks,
    efficiency_vs_eta,
    efficiency_vs_pt,
    hit_particle_eta,
    tracking_metrics,
)
from jaxhep.tracking.training import edge_metrics

PT_BINS = np.array([0.1, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 100.0])
# The bands of the score's breakdown: its pT weight is flat (0.2) below 0.5 GeV and reaches 1 at 3 GeV;
# 0.2 and 0.3 GeV split the soft part where graphs and loopers lose it.
SCORE_PT_BANDS = np.array([0.0, 0.2, 0.3, 0.5, 1.0, 3.0, np.inf])
# The edge thresholds tried on the validation events when tracks pick theirs (`eval.threshold = "score"`).
TRACK_THRESHOLDS = np.round(np.concatenate([[0.01, 0.02, 0.05], np.arange(0.1, 0.951, 0.05)]), 2)
ETA_BINS = np.linspace(-4, 4, 17)


def edge_efficiency_vs(
    graphs: list[EventGraph], scores: list[np.ndarray], threshold: float, key: str, bins: np.ndarray
) -> dict:
    """Fraction of true edges scored above threshold, binned in the particle's pT or eta.

    Every true edge counts (edge_pt > 0), also those below the training pT cut, whose labels are 0:
    the curve then shows how the classifier treats particles it was not trained to keep.
    """
    values = np.concatenate([getattr(g, key)[g.edge_pt > 0] for g in graphs])
    found = np.concatenate([s[g.edge_pt > 0] >= threshold for g, s in zip(graphs, scores)])
    idx = np.digitize(values, bins) - 1
    ok = (idx >= 0) & (idx < len(bins) - 1)
    n = np.bincount(idx[ok], minlength=len(bins) - 1)
    k = np.bincount(idx[ok], weights=found[ok], minlength=len(bins) - 1)
    return _binned(bins, k, n)


def _binned(edges, k: np.ndarray, n: np.ndarray) -> dict:
    """What metrics.json keeps of an efficiency in bins: edges [K+1]; efficiency, its 68 % Clopper-Pearson
    interval lo / hi, found k and total n [K] (NaN efficiency and interval where n = 0)."""
    k, n = np.rint(k).astype(np.int64), np.asarray(n, np.int64)
    eff = np.divide(k, n, out=np.full(len(n), np.nan), where=n > 0)
    lo, hi = efficiency_interval(k, n)
    return {
        "edges": np.asarray(edges).tolist(),
        "efficiency": eff.tolist(),
        "lo": lo.tolist(),
        "hi": hi.tolist(),
        "k": k.tolist(),
        "n": n.tolist(),
    }


def graph_tracks(
    graph: EventGraph, scores: np.ndarray, threshold: float, method: str, merge_loopers: bool, positions=None
) -> np.ndarray:
    """track_id [N] of the graph's hits from its edge scores [E] (`tracks.build_tracks`), loopers'
    legs joined when `merge_loopers`; positions: the graph's `hit_positions`, if already at hand."""
    if merge_loopers and positions is None:
        positions = hit_positions(graph)
    args = (graph.n_node, graph.senders, graph.receivers, scores, threshold, method)
    return build_tracks(*args, positions if merge_loopers else None)


def event_tracks(
    prefix: str,
    graph: EventGraph,
    scores: np.ndarray,
    threshold: float,
    method: str,
    pt_min: float,
    merge_loopers: bool = False,
) -> dict:
    """Tracks of one event, its TrackML scores (all particles and pT > pt_min) and tracking metrics."""
    event = read_event(prefix)
    truth, particles, hits = event.truth, event.particles, event.hits
    track_id = graph_tracks(graph, scores, threshold, method, merge_loopers)
    hit_pt = hit_particle_pt(truth["particle_id"], particles)
    score = trackml_score(truth["hit_id"], truth["particle_id"], truth["weight"], graph.hit_id, track_id)
    score_pt = trackml_score_above_pt(
        truth["hit_id"], truth["particle_id"], truth["weight"], graph.hit_id, track_id, hit_pt, pt_min
    )
    # truth rows follow the hits file order, as do the graph's nodes (checked)
    assert np.array_equal(np.asarray(truth["hit_id"]), graph.hit_id)
    tm = tracking_metrics(truth["particle_id"], track_id, hit_pt, pt_min=pt_min)
    hit_eta = hit_particle_eta(truth["particle_id"], particles)
    sub = (truth["hit_id"], truth["particle_id"], truth["weight"], graph.hit_id, track_id, hit_pt)
    return {
        "track_id": track_id,
        "score": score,
        "score_pt": score_pt,
        "score_by_pt": score_by_pt(*sub, SCORE_PT_BANDS),
        **tm,
        "hits": hits,
        "hit_pt": hit_pt,
        "hit_eta": hit_eta,
        "particle_id": np.asarray(truth["particle_id"]),
        # Track efficiency vs pT and eta of the particles the score weighs (>= 4 hits), every pT; and
        # vs eta above pt_min (>= 5 hits, as `efficiency`).
        "track_eff_pt": efficiency_vs_pt(
            truth["particle_id"], track_id, hit_pt, bins=PT_BINS, min_hits=ORDER_MIN_HITS
        ),
        "track_eff_eta_all": efficiency_vs_eta(
            truth["particle_id"], track_id, hit_pt, hit_eta, ETA_BINS, pt_min=0.0, min_hits=ORDER_MIN_HITS
        ),
        "track_eff_eta": efficiency_vs_eta(
            truth["particle_id"], track_id, hit_pt, hit_eta, bins=ETA_BINS, pt_min=pt_min
        ),
    }


def sum_efficiencies(parts: list[BinnedEfficiency]) -> dict:
    """Per-event binned efficiencies (same edges) summed over events: counts added, then divided."""
    n = np.sum([p.n_particles for p in parts], axis=0)
    k = np.sum([p.n_found for p in parts], axis=0)
    return _binned(parts[0].edges, k, n)


def roc(graphs: list[EventGraph], scores: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC curve (subsampled to <= 2000 points) and AUC over the trainable edges."""
    labels = np.concatenate([g.labels[g.train_mask.astype(bool)] for g in graphs])
    probs = np.concatenate([s[g.train_mask.astype(bool)] for g, s in zip(graphs, scores)])
    fpr, tpr, _ = metrics.roc_curve(labels, probs)
    step = max(1, len(fpr) // 2000)
    return fpr[::step], tpr[::step], metrics.roc_auc(labels, probs)


@dataclass
class Evaluation:
    """The test events' figures: `report` (metrics.json's sections), per-event tracks (`event_tracks`
    of each test event) and the edge ROC curve (fpr, tpr, auc)."""

    report: dict
    per_event: list[dict]
    roc: tuple[np.ndarray, np.ndarray, float]

    @property
    def threshold(self) -> float:
        return self.report["threshold"]


def score_threshold(
    prefixes: list[str], graphs: list[EventGraph], scores: list[np.ndarray], cfg: TrackingConfig
) -> tuple[float, dict[float, float]]:
    """The edge threshold of TRACK_THRESHOLDS whose tracks score best (mean TrackML score over these
    events, as `cfg.eval` builds tracks), and the mean score at each threshold. scores: [E] per event."""
    truths = [read_event(p, parts=("hits", "truth", "particles")).truth for p in prefixes]
    merge = cfg.eval.merge_loopers
    positions = [hit_positions(g) if merge else None for g in graphs]  # once per event, not per threshold
    by_threshold = {}
    for t in TRACK_THRESHOLDS:
        per_event = []
        for truth, graph, s, xyz in zip(truths, graphs, scores, positions, strict=True):
            track_id = graph_tracks(graph, s, t, cfg.eval.track_method, merge, xyz)
            per_event.append(
                trackml_score(truth["hit_id"], truth["particle_id"], truth["weight"], graph.hit_id, track_id)
            )
        by_threshold[float(t)] = float(np.mean(per_event))
    return max(by_threshold, key=by_threshold.get), by_threshold


def evaluate_test(
    val_graphs: list[EventGraph],
    val_prefixes: list[str],
    val_scores: list[np.ndarray],
    test_graphs: list[EventGraph],
    test_prefixes: list[str],
    test_scores: list[np.ndarray],
    cfg: TrackingConfig,
) -> Evaluation:
    """Edges (threshold on the validation events: the best F1, or the best TrackML score with
    `eval.threshold = "score"`), tracks, scores and efficiencies of the test events; scores: [E] per
    event on the event's whole graph."""
    scan = None
    if cfg.eval.threshold == "score":
        threshold, scan = score_threshold(val_prefixes, val_graphs, val_scores, cfg)
    else:
        threshold = edge_metrics(val_graphs, val_scores)["threshold"]
    test_edges = edge_metrics(test_graphs, test_scores, threshold)
    fpr, tpr, auc = roc(test_graphs, test_scores)
    per_event = [
        event_tracks(p, g, s, threshold, cfg.eval.track_method, cfg.eval.pt_min, cfg.eval.merge_loopers)
        for p, g, s in zip(test_prefixes, test_graphs, test_scores)
    ]
    tracks = {
        k: float(np.mean([e[k] for e in per_event])) for k in ("score", "score_pt", "efficiency", "fake_rate")
    }
    report = {
        "threshold": threshold,
        "threshold_by": cfg.eval.threshold,
        **({"val_score_by_threshold": scan} if scan is not None else {}),
        "test": test_edges,
        "tracks": tracks,
        "edge_efficiency_vs_pt": edge_efficiency_vs(test_graphs, test_scores, threshold, "edge_pt", PT_BINS),
        "edge_efficiency_vs_eta": edge_efficiency_vs(
            test_graphs, test_scores, threshold, "edge_eta", ETA_BINS
        ),
        "track_efficiency_vs_pt": sum_efficiencies([e["track_eff_pt"] for e in per_event]),
        "track_efficiency_vs_eta": sum_efficiencies([e["track_eff_eta"] for e in per_event]),
        "track_efficiency_vs_eta_all": sum_efficiencies([e["track_eff_eta_all"] for e in per_event]),
        "score_by_pt": {
            "bands": SCORE_PT_BANDS.tolist(),
            **{
                k: np.nanmean([e["score_by_pt"][k] for e in per_event], 0).tolist()
                for k in ("share", "score")
            },
        },
    }
    return Evaluation(report, per_event, (fpr, tpr, auc))


def graph_quality(test_graphs: list[EventGraph], prefixes: list[str], cfg: TrackingConfig) -> dict:
    """Graph efficiency and purity of both construction methods on the test events."""
    out = {}
    for method in ("geometric", "knn"):
        graphs = test_graphs
        if method != cfg.data.method:
            events = (read_event(p) for p in prefixes)
            options = dict(graph_options(cfg.data), method=method)
            graphs = [build_graph(e, **options) for e in events]
        per = [graph_efficiency_purity(g, cfg.eval.pt_min) for g in graphs]
        out[method] = {k: float(np.mean([p[k] for p in per])) for k in per[0]}
        out[method]["edges_per_event"] = float(np.mean([g.n_edge for g in graphs]))
    return out
