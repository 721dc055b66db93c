"""The tracks of a finished tracking run under each track-building choice, on its own validation and
test events: the edge threshold (the run's own, or the one whose tracks score best on the validation
events) and whether loopers' two legs are joined. Behind the "Tracks" figures of BUILD_NOTES.md.

    python scripts/tracking_rescore.py runs/tracking/<run-id> [--data-dir data]

Edges are scored once per event by the run's classifiers (`load_predictor`); graphs are rebuilt with
the run's settings. Prints one row per choice: mean TrackML score (all particles, and above 1 GeV) of
the test events.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--data-dir", default="data")
    a = p.parse_args(argv)

    from jaxhep.tracking import evaluate
    from jaxhep.tracking.api import load_predictor
    from jaxhep.tracking.dataset import event_folder
    from jaxhep.tracking.io import list_events

    predictor = load_predictor(a.run_dir)
    data = predictor.cfg.data
    folder = event_folder(data, a.data_dir)
    prefixes = [str(folder / name) for name in list_events(folder)][: data.n_events]
    val = prefixes[len(prefixes) - data.val_events - data.test_events : len(prefixes) - data.test_events]
    test = prefixes[len(prefixes) - data.test_events :]
    scored = {p: predictor.edge_scores(p) for p in val + test}  # (graph, scores [E]) per event
    rows = {}
    for merge in (True, False):
        cfg = dataclasses.replace(
            predictor.cfg, eval=dataclasses.replace(predictor.cfg.eval, merge_loopers=merge)
        )
        best, _ = evaluate.score_threshold(val, *zip(*(scored[p] for p in val)), cfg)
        for rule, threshold in (("the run's", predictor.threshold), ("best validation score", best)):
            per_event = []
            for prefix in test:
                graph, scores = scored[prefix]
                ev = evaluate.event_tracks(
                    prefix, graph, scores, threshold, cfg.eval.track_method, 1.0, merge_loopers=merge
                )
                per_event.append((ev["score"], ev["score_pt"]))
            key = f"threshold {threshold:.2f} ({rule}), loopers {'joined' if merge else 'apart'}"
            rows[key] = np.mean(per_event, axis=0).tolist()
            print(f"| {key} | {rows[key][0]:.4f} | {rows[key][1]:.4f} |", flush=True)
    return rows


if __name__ == "__main__":
    main()
