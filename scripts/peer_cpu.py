"""Run the PyTorch peer benchmark (`peers.py`) unchanged, adding CPU seconds and the load to its JSON.

Produces the peer's side of the separate-process CPU race in BUILD_NOTES.md (e/γ, "Speed on the
CPU"): `peers.py` is the project's PyTorch reference benchmark (a PyTorch Geometric TransformerConv
edge classifier, `tc`, and a torch ResNet-15 with squeeze-and-excitation, `resnet`); it is not part of
this repository and needs torch in its own virtual environment. This wrapper imports it from `--peers`,
wraps its `timed` so that the process's CPU seconds per call (all threads) are recorded too, and adds
`train_cpu_s_per_step`, `infer_cpu_s_per_call` and `load` (1-minute load average) to the JSON line it
prints. On a shared machine CPU seconds move less with other people's load than wall time does.

    .peer/bin/python scripts/peer_cpu.py --peers PATH/TO/peers.py resnet --batch 256
    python benchmarks/egamma.py --batch 256 --config peer        # jaxhep's side, same sitting

Everything after `--peers PATH` is passed to peers.py as its own arguments.
"""

from __future__ import annotations

import argparse
import builtins
import importlib.util
import json
import os
import sys
import time


def load_peers(path: str):
    """The peers.py module at `path`."""
    spec = importlib.util.spec_from_file_location("peers", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"error: {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=False)
    p.add_argument("--peers", required=True, metavar="PATH", help="path of peers.py")
    a, rest = p.parse_known_args()
    peers = load_peers(a.peers)
    cpu: list[float] = []
    original = peers.timed

    def timed(fn, device, warmup, steps):
        for _ in range(warmup):
            fn()
        c0 = time.process_time()
        wall = original(fn, device, 0, steps)
        cpu.append((time.process_time() - c0) / steps)
        return wall

    def hook(text, *args, **kwargs):
        record = json.loads(text)
        record["train_cpu_s_per_step"], record["infer_cpu_s_per_call"] = cpu
        record["load"] = os.getloadavg()[0]
        builtins.print(json.dumps(record), *args, **kwargs)

    peers.timed = timed
    peers.print = hook  # peers.main prints its one JSON line with print()
    sys.argv = ["peers.py", *rest]
    peers.main()


if __name__ == "__main__":
    main()
