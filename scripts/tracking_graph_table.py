"""Graph construction at pile-up 200: edges, build time, efficiency and purity of six methods.

Produces the graph-construction table of BUILD_NOTES.md (tracking, "Graph construction"): for
simulated mu = 200 events (seeds 1, 2, 3), each method's mean edge count, median build time,
efficiency (true consecutive pairs kept / all of them) for particles with pT > 1 GeV, > 0.5 GeV
and all, purity (those true edges / all edges) for pT > 1 GeV and all, and the padded bucket
(nodes, edges) that fits the three graphs.

    python scripts/tracking_graph_table.py                 # seeds 1 2 3, about 15 s per event
    python scripts/tracking_graph_table.py --seeds 1 --pileup 20
"""

from __future__ import annotations

import argparse
import time

import numpy as np

METHODS = {  # row name -> (method, build_graph options)
    "geometric, geometry pairs (default)": ("geometric", {}),
    "geometric, no skip check": ("geometric", dict(skip_check=False)),
    "geometric, simple pairs": ("geometric", dict(layer_pairs="simple")),
    "kNN k = 8, eta_phi": ("knn", dict(k=8)),
    "kNN k = 16, eta_phi": ("knn", dict(k=16)),
    "kNN k = 8, xyz (the reference's)": ("knn", dict(k=8, knn_space="xyz")),
}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--pileup", type=float, default=200)
    a = p.parse_args(argv)

    from jaxhep.tracking.graph import build_graph, graph_efficiency_purity
    from jaxhep.tracking.padding import graph_buckets
    from jaxhep.tracking.sim.simulate import simulate_event

    events = [simulate_event(seed, pileup=a.pileup) for seed in a.seeds]
    print(f"{np.mean([len(e['hits']['hit_id']) for e in events]) / 1e3:.1f} k hits per event on average")
    print(
        "| method | edges | build | eff. pT > 1 | purity pT > 1 | eff. pT > 0.5 | eff. all | purity all "
        "| padded bucket (nodes, edges) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    rows = {}
    for name, (method, options) in METHODS.items():
        graphs, seconds = [], []
        for event in events:
            t0 = time.perf_counter()
            graphs.append(build_graph(event, method, **options))
            seconds.append(time.perf_counter() - t0)
        q = {
            cut: [graph_efficiency_purity(g, cut) for g in graphs]
            for cut in (1.0, 0.5, None)  # None: every particle
        }

        def mean(cut, key, q=q):
            return float(np.mean([r[key] for r in q[cut]]))

        row = dict(
            edges=float(np.mean([g.n_edge for g in graphs])),
            build_s=float(np.median(seconds)),
            eff_pt1=mean(1.0, "efficiency"),
            purity_pt1=mean(1.0, "purity"),
            eff_pt05=mean(0.5, "efficiency"),
            eff_all=mean(None, "efficiency"),
            purity_all=mean(None, "purity"),
            bucket=graph_buckets(graphs),
        )
        rows[name] = row
        cells = [
            f"{row['edges'] / 1e3:.0f} k",
            f"{row['build_s']:.2f} s",
            f"{100 * row['eff_pt1']:.2f} %",
            f"{100 * row['purity_pt1']:.2f} %",
            f"{100 * row['eff_pt05']:.1f} %",
            f"{100 * row['eff_all']:.1f} %",
            f"{100 * row['purity_all']:.2f} %",
            str(row["bucket"]),
        ]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return rows


if __name__ == "__main__":
    main()
