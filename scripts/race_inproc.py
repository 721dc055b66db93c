"""The e/γ CPU race in one process: the PyTorch peer's ResNet-15 and jaxhep's, alternating step by step.

Produces the in-process CPU race tables of BUILD_NOTES.md (e/γ, "Speed on the CPU"): ratios of
PyTorch's time to jaxhep's (above 1: jaxhep is faster) for a training step and an inference call of
the same network at the same batch. Two processes started one after the other on a shared machine
see different loads; here both sides run in one process, per round 2 peer training steps, 2 of
ours, then 2 + 2 inference calls, the order swapped every round, after a warm-up that compiles.

The peer's side is `peers.py`'s `resnet` workload (the project's PyTorch reference benchmark, not
part of this repository): its ResNet15, AdamW (lr 1e-3), cross-entropy, channels-last inputs, as
`peers.bench_resnet` builds them. jaxhep's side is `benchmarks.egamma.workload` (the real Trainer
step). torch is taken from the peer's virtual environment (`--torch-site`), after jaxhep's packages.

    python scripts/race_inproc.py 5 --peers PATH/TO/peers.py \\
        --torch-site .peer/lib/python3.11/site-packages --batch 256 --config peer
    GLIBC_TUNABLES=... python scripts/race_inproc.py 5 ...     # one malloc setting for both sides

Prints one JSON line per round (wall and CPU seconds per call of each side, the load average), then
a summary line: the median of each column, peer / ours of the medians and the median of the
per-round ratios. Arguments after the script's own are those of benchmarks/egamma.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from peer_cpu import load_peers  # the script beside this one (`python scripts/...` puts scripts/ on the path)

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, n: int = 2) -> tuple[float, float]:
    """(wall, CPU) seconds per call over n calls."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rounds", type=int)
    p.add_argument("--peers", required=True, metavar="PATH", help="path of peers.py")
    p.add_argument("--torch-site", metavar="DIR", help="site-packages holding torch (the peer's venv)")
    own, rest = p.parse_known_args()
    sys.path.insert(0, str(ROOT))
    if own.torch_site:
        sys.path.append(own.torch_site)  # after our own packages

    from benchmarks import egamma

    a = egamma.parse_args(rest)
    egamma.set_cpu_xla_flags(a)  # before JAX starts

    import torch
    import torch.nn.functional as F

    peers = load_peers(own.peers)
    torch.manual_seed(0)
    model = peers.ResNet15().to(memory_format=torch.channels_last)  # as peers.bench_resnet
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randn(a.batch, 2, 32, 32).to(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (a.batch,))

    def peer_train():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    @torch.no_grad()
    def peer_infer():
        model.eval()(x)
        model.train()

    ours_train, ours_infer, _ = egamma.workload(a)
    for f in (peer_train, peer_train, ours_train, ours_train, peer_infer, peer_infer, ours_infer, ours_infer):
        f()  # warm-up (ours compiles)

    rows = []
    for r in range(own.rounds):
        sides = [("peer", peer_train, peer_infer), ("ours", ours_train, ours_infer)]
        order = sides[::-1] if r % 2 else sides
        row = {"round": r + 1, "first": order[0][0], "load": os.getloadavg()[0]}
        for name, train, _ in order:
            row[f"{name}_train_s"], row[f"{name}_train_cpu_s"] = timed(train)
        for name, _, infer in order:
            row[f"{name}_infer_s"], row[f"{name}_infer_cpu_s"] = timed(infer)
        rows.append(row)
        print(json.dumps(row), flush=True)

    columns = [k for k in rows[0] if k.endswith("_s")]
    summary = {"median_" + k: statistics.median(row[k] for row in rows) for k in columns}
    for part in ("train", "infer"):
        summary[f"{part}_ratio"] = summary[f"median_peer_{part}_s"] / summary[f"median_ours_{part}_s"]
        summary[f"{part}_ratio_of_rounds"] = statistics.median(
            row[f"peer_{part}_s"] / row[f"ours_{part}_s"] for row in rows
        )
    print(json.dumps({"summary": summary, "batch": a.batch, "config": a.config}), flush=True)


if __name__ == "__main__":
    main()
