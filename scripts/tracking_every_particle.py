"""Facts behind the every-particle design of BUILD_NOTES.md (tracking): where the TrackML weight of a
simulated mu = 200 event lies (below 0.5 GeV, in loopers), what the 0.2 GeV helix graph and the walk
score with the truth as edge scores (loopers apart and joined), and the first stage's forward time on
that graph for three network sizes.

    python scripts/tracking_every_particle.py                 # seeds 1 2, about 2 minutes
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def looper_hits(truth, particles) -> np.ndarray:
    """[n] bool: hits of particles that come back inward (in the score's hit order, |tz - vz|, the last
    hit lies more than 30 mm inside the outermost one)."""
    pid = np.asarray(truth["particle_id"])
    vz = dict(zip(np.asarray(particles["particle_id"]).tolist(), np.asarray(particles["vz"]).tolist()))
    z = np.asarray(truth["tz"], np.float64)
    r = np.hypot(truth["tx"], truth["ty"]).astype(np.float64)
    order = np.lexsort((np.abs(z - np.array([vz.get(p, 0.0) for p in pid.tolist()])), pid))
    out = np.zeros(len(pid), bool)
    starts = np.flatnonzero(np.r_[True, pid[order][1:] != pid[order][:-1]])
    for a, b in zip(starts, np.r_[starts[1:], len(pid)]):
        rows = order[a:b]
        if pid[rows[0]] != 0 and r[rows[-1]] < r[rows].max() - 30.0:
            out[rows] = True
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--pt-floor", type=float, default=0.2)
    a = p.parse_args(argv)

    from flax import nnx

    from jaxhep.tracking.graph import build_graph, hit_positions
    from jaxhep.tracking.model import EdgeClassifier, EdgeClassifierConfig
    from jaxhep.tracking.padding import graph_buckets, pad_graph
    from jaxhep.tracking.score import hit_particle_pt, trackml_score
    from jaxhep.tracking.sim.simulate import simulate_event
    from jaxhep.tracking.tracks import build_tracks
    from jaxhep.tracking.training import _scores

    for seed in a.seeds:
        event = simulate_event(seed, pileup=200)
        t = event["truth"]
        w = np.asarray(t["weight"], np.float64)
        pt = hit_particle_pt(t["particle_id"], event["particles"])
        print(
            f"seed {seed}: weight below 0.5 GeV {w[pt < 0.5].sum():.3f}, "
            f"below 0.2 GeV {w[pt < 0.2].sum():.3f}, "
            f"of loopers {w[looper_hits(t, event['particles'])].sum():.3f}",
            flush=True,
        )
        graph = build_graph(event, pt_floor=a.pt_floor, pt_min=None)
        args = (graph.n_node, graph.senders, graph.receivers, graph.labels, 0.5, "walk")
        for name, positions in (("apart", None), ("joined", hit_positions(graph))):
            track_id = build_tracks(*args, positions)
            score = trackml_score(t["hit_id"], t["particle_id"], t["weight"], graph.hit_id, track_id)
            print(f"seed {seed}: truth as edge scores, loopers {name}: score {score:.4f}", flush=True)
    n_node, n_edge = graph_buckets([graph])
    padded = pad_graph(graph, n_node, n_edge, True)
    print(f"forward of one event's graph ({graph.n_edge} edges, seed {a.seeds[-1]}):", flush=True)
    for width, layers in ((128, 3), (64, 2), (64, 0)):
        model = EdgeClassifier(EdgeClassifierConfig(width=width, layers=layers), rngs=nnx.Rngs(0))
        graphdef, state = nnx.split(model)
        np.asarray(_scores(graphdef, state, padded))  # compile
        start = time.perf_counter()
        for _ in range(2):
            np.asarray(_scores(graphdef, state, padded))
        print(f"  width {width}, {layers} layers: {(time.perf_counter() - start) / 2:.2f} s", flush=True)


if __name__ == "__main__":
    main()
