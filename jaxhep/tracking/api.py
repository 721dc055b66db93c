"""Use a trained tracking run from Python: an event's hits -> graph -> both stages -> tracks.

    from jaxhep.tracking.api import load_predictor
    tracker = load_predictor("runs/tracking/<run-id>")
    tracks = tracker.predict("path/to/event000001000")   # {"hit_id": [N], "track_id": [N]}

An event is the path prefix of its TrackML files (`-hits.csv` and, if there, `-cells.csv`; truth and
particles are not needed) or an event already read (`io.Event`, or `simulate_event`'s dict). The graph
is built with the run's data settings, the filter (stage 1) prunes it at the run's threshold, the
edge classifier scores what is left at its threshold (both from the run's metrics.json), and tracks
are built from the scored edges by the run's `eval.track_method`, as for the run's submission.csv.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import numpy as np

from jaxhep.errors import InputError
from jaxhep.runs import Run
from jaxhep.tracking import cascade
from jaxhep.tracking.config import TrackingConfig, run_config
from jaxhep.tracking.dataset import graph_options
from jaxhep.tracking.evaluate import graph_tracks
from jaxhep.tracking.graph import NODE_FEATURES, EventGraph, build_graph
from jaxhep.tracking.io import Event, read_event
from jaxhep.tracking.model import EdgeClassifier
from jaxhep.tracking.training import checkpoint_dir, graph_scores, load_classifier, reused_filter


@dataclass
class TrackingPredictor:
    """The classifiers of a finished run with the settings they were used with."""

    cfg: TrackingConfig
    edges: EdgeClassifier  # the classifier whose scores make the tracks
    threshold: float  # its edge threshold (picked on the run's validation events, eval.threshold)
    filter: EdgeClassifier | None = None  # stage 1 of a two-stage run
    filter_threshold: float | None = None

    def graph(self, event: str | os.PathLike | Event | dict, clock: dict | None = None) -> EventGraph:
        """The event's graph, built as the run built its graphs."""
        if isinstance(event, str | os.PathLike):
            event = _timed(clock, "read", read_event, event, parts=("hits", "cells"))
        # The run's graphs had cell features when its model takes them (zeros for an event without cells).
        cells = self.cfg.model.node_in == len(NODE_FEATURES)
        return _timed(clock, "graph", build_graph, event, **graph_options(self.cfg.data), cell_features=cells)

    def edge_scores(self, event, clock: dict | None = None) -> tuple[EventGraph, np.ndarray]:
        """(the event's graph, the probability [E] of each of its edges): the second stage's score of
        the edges the filter keeps, 0 for those it drops. `clock`, when given, adds the seconds of each
        stage (read, graph, filter, prune, classify) to its entries."""
        graph = self.graph(event, clock)
        if self.filter is None:
            return graph, _timed(clock, "classify", graph_scores, self.edges, [graph])[0]
        # The run pruned with its cached filter scores, which are float16 (cascade.save_scores).
        first = (
            _timed(clock, "filter", graph_scores, self.filter, [graph])[0]
            .astype(np.float16)
            .astype(np.float32)
        )
        pruned, kept = _timed(clock, "prune", cascade.prune, graph, first, self.filter_threshold)
        second = np.zeros(0, np.float32)
        if pruned.n_edge:
            second = _timed(clock, "classify", graph_scores, self.edges, [pruned])[0]
        return graph, cascade.scatter_scores(graph.n_edge, kept, second)

    def predict(self, event, clock: dict | None = None) -> dict[str, np.ndarray]:
        """The tracks of an event as submission.csv has them: {"hit_id": [N] int64 in the hits
        file's order, "track_id": [N] int64, 1..K}. `clock` as for `edge_scores`, plus "tracks"."""
        graph, scores = self.edge_scores(event, clock)
        e = self.cfg.eval
        track_id = _timed(
            clock, "tracks", graph_tracks, graph, scores, self.threshold, e.track_method, e.merge_loopers
        )
        return {"hit_id": np.asarray(graph.hit_id, np.int64), "track_id": np.asarray(track_id, np.int64)}


def _timed(clock: dict | None, stage: str, fn, *args, **kwargs):
    """fn(*args, **kwargs), its wall seconds added to clock[stage] when a clock is given. The scores
    come back as NumPy arrays, so device work is finished when fn returns."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    if clock is not None:
        clock[stage] = clock.get(stage, 0.0) + time.perf_counter() - start
    return out


def load_predictor(run_dir: str | os.PathLike) -> TrackingPredictor:
    """The classifiers of the finished tracking run in folder `run_dir` (its best checkpoints, rebuilt
    from its config.json; the filter of `cascade.filter_run` when it took that one) and their
    thresholds (from its metrics.json)."""
    run = Run.open(run_dir)
    cfg = run_config(run.config, run.path / "config.json")
    path = run.path / "metrics.json"
    if not path.is_file():
        raise InputError(path, "not found: the run has not finished (resume it first)")
    metrics = json.loads(path.read_text())
    edges = load_classifier(cfg, checkpoint_dir(run.path, "edges"))
    if cfg.cascade.stages == 1:
        return TrackingPredictor(cfg, edges, metrics["threshold"])
    if cfg.cascade.filter_run:
        first = reused_filter(cfg.cascade.filter_run)
    else:
        first = load_classifier(cfg, checkpoint_dir(run.path, "filter"), "filter")
    return TrackingPredictor(cfg, edges, metrics["threshold"], first, metrics["filter"]["test"]["threshold"])
