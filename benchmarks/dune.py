"""Train and inference throughput (samples/s) and peak memory of the DUNE networks, as JSON.

    python benchmarks/dune.py                                   # every network, then the ensemble race
    python benchmarks/dune.py --model three_plane --batch 256   # one network, one JSON line
    python benchmarks/dune.py --model three_plane --members 5 --strategy vmap
    python benchmarks/dune.py --race             # 5-member ensemble: vmap vs unroll vs 5 singles

Networks: `three_plane` and `single_plane` (direction, images [B, 128, 16] per plane), `channel`
(volume_x [B, 128, 64]) and `maintrack` (mt_images [B, 128, 16]), at their experiment defaults
(`jaxhep.dune.config.NetConfig`). Training runs the real jaxhep train step (`Trainer`, AdamW with the
training's per-member gradient clipping, `steps_per_call` steps per compiled call, the task's loss,
online bootstrap weights when members > 1) on device-resident random inputs; inference is one
jitted eval-mode forward pass.
Both are timed after a warm-up that compiles. Samples/s count events (an ensemble of M members
sees each event M times: `member_samples_per_s` = M x samples/s).

Beside jaxhep's inference rate, ONNX Runtime's on the CPU (`onnxruntime_cpu_infer_samples_per_s`, same
batch, members combined in the graph; with `--onnx`): the network as `experiments.dune export`
writes it.

Each measurement runs in its own process, so that its peak memory (the accelerator's
`peak_bytes_in_use`, or the peak RSS on a CPU) is its own.

The race (the issue's "5-member vmapped ensemble vs 5 members trained one after another"):
`strategy=vmap` (members batched in one program), `strategy=unroll` (a loop of members in one
program) and 5 x the single-model step, all at the same batch. Each leg's JSON line is printed as it
finishes (a race cut short by a time limit keeps its legs), then the race's summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NETWORKS = {  # benchmark name -> (task, network)
    "three_plane": ("direction", "three_plane"),
    "single_plane": ("direction", "single_plane"),
    "channel": ("channel", "classifier"),
    "maintrack": ("maintrack", "classifier"),
}
INPUTS = {  # task -> the batch keys the network reads, with one row's shape
    "direction": {"images_u": (128, 16), "images_v": (128, 16), "images_x": (128, 16)},
    "channel": {"volume_x": (128, 64)},
    "maintrack": {"mt_images": (128, 16)},
}


def random_batch(task: str, k: int, b: int, seed: int = 0) -> dict:
    """A chunk [k, b, ...] of random inputs and targets for `task` (NumPy)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    chunk = {key: rng.random((k, b, *shape), np.float32) for key, shape in INPUTS[task].items()}
    if task == "direction":
        d = rng.normal(size=(k, b, 3))
        chunk["direction"] = (d / np.linalg.norm(d, axis=-1, keepdims=True)).astype(np.float32)
    else:
        chunk["interaction" if task == "channel" else "mt_label"] = rng.integers(0, 2, (k, b)).astype(
            np.float32
        )
    return chunk


def measure(a) -> dict:
    """One network (or ensemble) in this process: train and inference rates, peak memory."""
    import jax
    from flax import nnx

    from benchmarks.common import environment, peak_memory, timed, train_calls
    from jaxhep.dune import ensemble as ens
    from jaxhep.dune.config import NetConfig
    from jaxhep.dune.training import build, member_loss, optimizer, predict
    from jaxhep.mesh import make_mesh, shard_batch
    from jaxhep.train import TrainConfig, Trainer

    if a.dtype is None:  # resolved here: the parent process never starts a backend (GPU memory)
        a.dtype = "float32" if jax.default_backend() == "cpu" else "bfloat16"
    task, network = NETWORKS[a.model]
    net = NetConfig(members=a.members)
    model = build(task, network, net, a.dtype, seed=0)
    model.strategy = a.strategy
    loss_fn = ens.make_loss_fn(member_loss(task, net), "online" if a.members > 1 else "none")
    k, b = a.steps_per_call, a.batch
    cfg = TrainConfig(
        batch_size=b, steps_per_call=k, optimizer="adamw", learning_rate=1e-3, grad_clip_norm=1.0
    )
    mesh = make_mesh()
    trainer = Trainer(model, loss_fn, predict(task), cfg, mesh, 10_000, tx=optimizer(cfg, 10_000))
    chunk = random_batch(task, k, b)
    chunk = shard_batch(chunk, mesh, b, batch_axis=1)
    train = train_calls(trainer, chunk, k)

    t0 = time.perf_counter()
    train()
    compile_s = time.perf_counter() - t0
    t_train = timed(train, warmup=a.warmup, repeats=max(1, a.steps // k)) / k

    graphdef = nnx.graphdef(trainer.model())
    infer_fn = jax.jit(lambda state, batch: predict(task)(nnx.merge(graphdef, state), batch))
    batch = {key: v[0] for key, v in chunk.items()}

    def infer():
        jax.block_until_ready(infer_fn(nnx.state(trainer.model()), batch))

    t_infer = timed(infer, warmup=a.warmup, repeats=a.steps)
    onnx = onnx_inference(a, task, network, net, trainer.model()) if a.onnx else {}
    return {
        "benchmark": "dune",
        "model": a.model,
        "members": a.members,
        "strategy": model.resolved_strategy(),
        "dtype": a.dtype,
        "batch": b,
        "steps_per_call": k,
        "params": sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))),
        "compile_s": round(compile_s, 2),
        "train_ms_per_step": 1e3 * t_train,
        "train_samples_per_s": b / t_train,
        "train_member_samples_per_s": a.members * b / t_train,
        "infer_ms_per_batch": 1e3 * t_infer,
        "infer_samples_per_s": b / t_infer,
        **onnx,
        **peak_memory(),
        **environment(),
        "load_average": os.getloadavg()[0],
    }


def onnx_inference(a, task: str, network: str, net, model) -> dict:
    """ONNX Runtime's CPU rate at the same batch: the ensemble with its combination, as
    `python -m experiments.dune export` writes it (`jaxhep.dune.export.network_graph`)."""
    from benchmarks.common import timed
    from jaxhep.dune.export import network_graph
    from jaxhep.export import convert, session

    keys = ("images_x",) if network == "single_plane" else tuple(INPUTS[task])
    graph = network_graph(task, network, model, keys, a.dtype, net, examples=[])
    sess = session(convert(graph).SerializeToString())
    feed = {k: v[0] for k, v in random_batch(task, 1, a.batch, seed=1).items() if k in keys}
    t = timed(lambda: sess.run(None, feed), warmup=a.warmup, repeats=a.steps)
    return {
        "onnxruntime_cpu_infer_ms_per_batch": 1e3 * t,
        "onnxruntime_cpu_infer_samples_per_s": a.batch / t,
        "onnxruntime_intra_op_threads": sess.get_session_options().intra_op_num_threads,
    }


def _child(a, **overrides) -> dict:
    """`measure` in a fresh process (its own peak memory); returns its JSON record."""
    args = {**vars(a), **overrides}
    argv = [sys.executable, str(Path(__file__).resolve()), "--one"]
    for key in ("model", "members", "strategy", "dtype", "batch", "steps", "warmup", "steps_per_call"):
        if args[key] is not None:
            argv += [f"--{key.replace('_', '-')}", str(args[key])]
    argv += ["--onnx"] if args["onnx"] else []
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"benchmark child {argv[3:]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _shown(record: dict) -> dict:
    """Print a child's record as soon as it is in (a race cut short keeps what it measured)."""
    print(json.dumps(record), flush=True)
    return record


def race(a) -> dict:
    """M-member ensemble of `a.model`: vmap vs unroll in one program vs M single-model steps."""
    single, vmap, unroll = (
        _shown(_child(a, **kw))
        for kw in ({"members": 1, "strategy": "auto"}, {"strategy": "vmap"}, {"strategy": "unroll"})
    )
    m = a.members
    sequential_ms = m * single["train_ms_per_step"]  # M members trained one after another
    return {
        "benchmark": "dune_ensemble_race",
        "model": a.model,
        "members": m,
        "batch": a.batch,
        "train_ms_per_step": {
            "vmap": vmap["train_ms_per_step"],
            "unroll": unroll["train_ms_per_step"],
            "sequential": sequential_ms,
        },
        "speedup_vs_sequential": {
            "vmap": sequential_ms / vmap["train_ms_per_step"],
            "unroll": sequential_ms / unroll["train_ms_per_step"],
        },
        "peak_memory": {
            name: {k: v for k, v in r.items() if k.startswith("peak_")}
            for name, r in (("vmap", vmap), ("unroll", unroll), ("single", single))
        },
        "device": single["device"],
        "load_average": os.getloadavg()[0],
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=[*NETWORKS, "all"], default="all")
    p.add_argument("--members", type=int, default=1, help="ensemble members (the race uses 5 by default)")
    p.add_argument("--strategy", choices=["auto", "vmap", "unroll"], default="auto")
    p.add_argument(
        "--dtype", default=None, help="compute dtype (default: float32 on CPU, bfloat16 elsewhere)"
    )
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=6, help="timed train steps and inference calls")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps-per-call", type=int, default=1)
    p.add_argument(
        "--race", action="store_true", help="only the ensemble race (on --model, default three_plane)"
    )
    p.add_argument("--onnx", action="store_true", help="also ONNX Runtime's CPU rate (needs the onnx extra)")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: measure in-process
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    from jaxhep.mesh import add_cpu_xla_flags

    add_cpu_xla_flags()  # before any backend starts; the children inherit it
    if a.one:
        print(json.dumps(measure(a)), flush=True)
        return
    if a.race:
        a.model = "three_plane" if a.model == "all" else a.model
        a.members = a.members if a.members > 1 else 5
        print(json.dumps(race(a)), flush=True)
        return
    for name in NETWORKS if a.model == "all" else (a.model,):
        print(json.dumps(_child(a, model=name)), flush=True)
    if a.model == "all":
        a.model, a.members = "three_plane", 5
        print(json.dumps(race(a)), flush=True)


if __name__ == "__main__":
    main()
