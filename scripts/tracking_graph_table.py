"""Graph construction at pile-up 200: edges, build time, efficiency by pT and purity of each method.

Produces the graph-construction table of BUILD_NOTES.md (tracking, "Graph construction"): for
simulated mu = 200 events (seeds 1, 2, 3), each method's mean edge count, median build time,
efficiency (true consecutive pairs kept / all of them) for particles with pT > 1 GeV, in 0.5-1 and
0.2-0.5 and 0.1-0.2 GeV and for all, the weighted efficiency (the pairs' TrackML weight kept: a pair weighs
the sum of its two hits' weights, so particles with fewer than 4 hits count nothing, as in the score),
purity (true edges / all edges) for pT > 1 GeV and all, and the padded bucket that fits the graphs.

    python scripts/tracking_graph_table.py                 # seeds 1 2 3, about 4 minutes
    python scripts/tracking_graph_table.py --seeds 1 --pileup 20
"""

from __future__ import annotations

import argparse
import time

import numpy as np

METHODS = {  # row name -> (method, build_graph options)
    "straight phi slope (pT >~ 0.5 GeV)": ("geometric", {}),
    "straight, no skip check": ("geometric", dict(skip_check=False)),
    "straight, simple pairs": ("geometric", dict(layer_pairs="simple")),
    "helix, pt_floor 0.5": ("geometric", dict(pt_floor=0.5)),
    "helix, pt_floor 0.3": ("geometric", dict(pt_floor=0.3)),
    "helix, pt_floor 0.2 (default)": ("geometric", dict(pt_floor=0.2)),
    "helix, pt_floor 0.15": ("geometric", dict(pt_floor=0.15)),
    "kNN k = 8, eta_phi": ("knn", dict(k=8)),
    "kNN k = 16, eta_phi": ("knn", dict(k=16)),
    "kNN k = 8, xyz (the reference's)": ("knn", dict(k=8, knn_space="xyz")),
}
BANDS = {
    "eff_pt1": (1.0, np.inf),
    "eff_05_1": (0.5, 1.0),
    "eff_02_05": (0.2, 0.5),
    "eff_01_02": (0.1, 0.2),
    "eff_all": (0.0, np.inf),
}


def quality(graph, weight: np.ndarray) -> dict:
    """Efficiency per pT band, weighted efficiency and purities of one graph; weight [N] per hit."""
    n = graph.n_node
    pair_key = np.sort(graph.true_pairs, axis=1).astype(np.int64) @ np.array([n, 1])
    edge_key = np.minimum(graph.senders, graph.receivers).astype(np.int64) * n + np.maximum(
        graph.senders, graph.receivers
    )
    kept = np.isin(pair_key, edge_key)
    out = {}
    for name, (lo, hi) in BANDS.items():
        band = (graph.true_pt > lo) & (graph.true_pt <= hi)
        out[name] = float(kept[band].mean())
    w = weight[graph.true_pairs].sum(axis=1)
    out["eff_weighted"] = float(w[kept].sum() / w.sum())
    true_edge = graph.edge_pt > 0
    out["purity_pt1"] = float(np.mean(graph.edge_pt > 1.0))
    out["purity_all"] = float(np.mean(true_edge))
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--pileup", type=float, default=200)
    a = p.parse_args(argv)

    from jaxhep.tracking.graph import build_graph
    from jaxhep.tracking.padding import graph_buckets
    from jaxhep.tracking.sim.simulate import simulate_event

    events = [simulate_event(seed, pileup=a.pileup) for seed in a.seeds]
    print(f"{np.mean([len(e['hits']['hit_id']) for e in events]) / 1e3:.1f} k hits per event on average")
    print(
        "| method | edges | build | eff. pT > 1 | purity pT > 1 | eff. 0.5-1 | eff. 0.2-0.5 | eff. 0.1-0.2 "
        "| eff. all | weighted eff. | purity all | bucket (nodes, edges) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    rows = {}
    for name, (method, options) in METHODS.items():
        graphs, seconds, q = [], [], []
        for event in events:
            t0 = time.perf_counter()
            graphs.append(build_graph(event, method, **options))
            seconds.append(time.perf_counter() - t0)
            # Nodes are the hits in the hits file's order; simulated truth rows are in that order too.
            q.append(quality(graphs[-1], np.asarray(event["truth"]["weight"], np.float64)))
        row = {key: float(np.mean([x[key] for x in q])) for key in q[0]}
        row.update(edges=float(np.mean([g.n_edge for g in graphs])), build_s=float(np.median(seconds)))
        row["bucket"] = graph_buckets(graphs)
        rows[name] = row
        cells = [f"{row['edges'] / 1e3:.0f} k", f"{row['build_s']:.2f} s", f"{100 * row['eff_pt1']:.2f} %"]
        cells += [f"{100 * row['purity_pt1']:.2f} %"]
        bands = ("eff_05_1", "eff_02_05", "eff_01_02", "eff_all", "eff_weighted")
        cells += [f"{100 * row[k]:.1f} %" for k in bands]
        cells += [f"{100 * row['purity_all']:.2f} %", str(row["bucket"])]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return rows


if __name__ == "__main__":
    main()
