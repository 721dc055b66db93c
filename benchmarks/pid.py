"""Train and inference throughput (tracks/s) and peak memory of the PID networks, as JSON.

    python benchmarks/pid.py                           # every model, one JSON line each
    python benchmarks/pid.py --model fse --batch 1024 --infer-batch 262144 --dtype bfloat16
    python benchmarks/pid.py --model fse --onnx        # + ONNX Runtime (CPU) on the same batch

Training runs the real jaxhep train step (focal loss, Adam, `steps_per_call` steps per
compiled call) on device-resident synthetic batches: the input pipeline is measured
separately (`pipeline_tracks_per_s`: host gather + transfer of the same batches), so a
slow pipeline shows up as its own number instead of hiding in the step time. Each model
runs in its own process so its peak memory is its own. `--onnx` adds ONNX Runtime's CPU rate
of the exported network (`onnx_infer_tracks_per_s`, preprocessed inputs as jaxhep's
`infer_from_host`) and of the graph `export RUN_DIR` writes (`onnx_raw_columns_tracks_per_s`:
raw columns with NaNs, preprocessing + network + calibration inside) beside jaxhep's
`predict_proba` on the same raw columns (`predictor_tracks_per_s`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bench_model(a) -> dict:
    import jax
    import numpy as np
    from flax import nnx

    from benchmarks.common import emit, environment, peak_memory, timed
    from jaxhep import losses
    from jaxhep.mesh import make_mesh, shard_batch
    from jaxhep.pid.models import ModelConfig, build_model
    from jaxhep.pid.training import predict_proba
    from jaxhep.train import TrainConfig, Trainer

    mesh = make_mesh()
    rng = np.random.default_rng(0)
    n_rows = a.batch * a.steps_per_call * 4
    table = {
        "x": rng.normal(size=(n_rows, 21)).astype(np.float32),
        "group_mask": (rng.random((n_rows, 4)) > 0.3).astype(np.float32),
        "label": rng.integers(0, 4, n_rows).astype(np.int32),
    }
    table["group_mask"][:, 2:] = 1.0
    cfg = ModelConfig(name=a.model)
    model = build_model(cfg, precision=a.dtype)
    n_params = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))

    def loss_fn(m, batch, key):
        logits = m(batch, rngs=nnx.Rngs(dropout=key))
        return losses.softmax_focal_loss(logits, batch["label"]), {}

    trainer = Trainer(
        model,
        loss_fn,
        lambda m, b: m(b),
        TrainConfig(batch_size=a.batch, steps_per_call=a.steps_per_call),
        mesh,
        total_steps=10_000,
    )
    k, b = a.steps_per_call, a.batch

    def host_chunk(i):
        idx = rng.integers(0, n_rows, k * b)
        return {key: v[idx].reshape(k, b, *v.shape[1:]) for key, v in table.items()}

    chunks = [shard_batch(host_chunk(i), mesh, b, batch_axis=1) for i in range(2)]
    step = [0]

    def train():
        metrics = trainer.train_chunk(chunks[step[0] % 2], step[0])
        step[0] += k
        metrics["loss"].block_until_ready()

    t_train = timed(train, warmup=2, repeats=a.repeats)
    t_pipe = timed(
        lambda: jax.block_until_ready(shard_batch(host_chunk(0), mesh, b, batch_axis=1)),
        warmup=1,
        repeats=a.repeats,
    )
    model = trainer.model()
    xi = rng.normal(size=(a.infer_batch, 21)).astype(np.float32)
    mi = np.ones((a.infer_batch, 4), np.float32)
    graphdef, state = nnx.split(model)

    @jax.jit
    def infer(state, x, m):
        return jax.nn.softmax(nnx.merge(graphdef, state)({"x": x, "group_mask": m}), -1)

    xd, md = jax.device_put(xi), jax.device_put(mi)
    t_infer = timed(lambda: infer(state, xd, md).block_until_ready(), warmup=2, repeats=a.repeats)
    # What `predict_logits` does for a user's table: host arrays in, host arrays out, in
    # blocks of 65536 (micro-batches of 4096 on a CPU).
    t_infer_host = timed(lambda: predict_proba(model, xi, mi), warmup=1, repeats=a.repeats)
    onnx = onnx_rates(model, cfg, xi, mi, a.repeats) if a.onnx else {}
    emit(
        {
            "benchmark": "pid",
            "model": a.model,
            "params": int(n_params),
            "dtype": a.dtype,
            "batch": b,
            "steps_per_call": k,
            "train_tracks_per_s": k * b / t_train,
            "train_ms_per_step": 1e3 * t_train / k,
            "pipeline_tracks_per_s": k * b / t_pipe,
            "infer_batch": a.infer_batch,
            "infer_tracks_per_s": a.infer_batch / t_infer,
            "infer_from_host_tracks_per_s": a.infer_batch / t_infer_host,
            "infer_from_host_note": "predict_proba: 65536-track blocks, 4096-track micro-batches on CPU",
            **onnx,
            **peak_memory(),
            **environment(),
        }
    )


def onnx_rates(model, cfg, xi, mi, repeats: int) -> dict:
    """ONNX Runtime (CPU, default threads) tracks/s of the network on xi [B, 21], mi [B, 4], and of
    the raw-column graph (preprocessing fitted on simulated tracks, identity calibration) beside
    jaxhep's PIDPredictor.predict_proba on the same B raw rows."""
    import jax
    import numpy as np

    from benchmarks.common import timed
    from jaxhep.calibration import Calibration
    from jaxhep.export import Input, OnnxGraph, convert, session
    from jaxhep.pid.api import PIDPredictor
    from jaxhep.pid.export import export_network, probabilities_fn
    from jaxhep.pid.features import Preprocessor
    from jaxhep.pid.sim.simulate import simulate_tracks
    from jaxhep.pid.species import FEATURES
    from jaxhep.pid.training import TrainedModel

    net = export_network(model, cfg)
    graph = OnnxGraph(
        "net",
        lambda x, m: jax.nn.softmax(net({"x": x, "group_mask": m}), -1),
        (Input("x", ("N", 21)), Input("group_mask", ("N", 4))),
        ("probabilities",),
        [],
    )
    sess = session(convert(graph).SerializeToString())
    t_net = timed(lambda: sess.run(None, {"x": xi, "group_mask": mi}), warmup=2, repeats=repeats)

    table = simulate_tracks(len(xi), seed=1)
    pre = Preprocessor().fit(table, np.arange(len(xi)))
    raw = np.stack([table[f] for f in FEATURES], axis=1)
    calibration = Calibration.identity(4)
    fn = probabilities_fn(net, pre, calibration)
    raw_graph = OnnxGraph("raw", fn, (Input("columns", ("N", 21)),), ("probabilities",), [])
    raw_sess = session(convert(raw_graph).SerializeToString())
    t_raw = timed(lambda: raw_sess.run(None, {"columns": raw}), warmup=2, repeats=repeats)
    predictor = PIDPredictor(TrainedModel(cfg.name, "full", model, None, [], calibration), pre)
    t_pred = timed(lambda: predictor.predict_proba(table), warmup=1, repeats=repeats)
    n = len(xi)
    return {
        "onnx_infer_tracks_per_s": n / t_net,
        "onnx_raw_columns_tracks_per_s": n / t_raw,
        "predictor_tracks_per_s": n / t_pred,
        "onnx_note": "ONNX Runtime CPUExecutionProvider, default threads, one call of infer_batch rows",
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["simple", "dnn", "fse"], action="append")
    p.add_argument("--batch", type=int, default=1024, help="training batch (the seed's 1024)")
    p.add_argument("--steps-per-call", type=int, default=16)
    p.add_argument("--infer-batch", type=int, default=65536, help="tracks per inference call")
    p.add_argument("--dtype", default="float32", help="compute dtype: float32 or bfloat16")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--onnx", action="store_true", help="also ONNX Runtime's CPU rates (needs the onnx extra)")
    a = p.parse_args()
    models = a.model or ["simple", "dnn", "fse"]
    if len(models) == 1:
        return bench_model(argparse.Namespace(**{**vars(a), "model": models[0]}))
    for name in models:  # one process per model: its own compile cache and peak memory
        argv = [
            sys.executable,
            __file__,
            "--model",
            name,
            "--batch",
            str(a.batch),
            "--steps-per-call",
            str(a.steps_per_call),
            "--infer-batch",
            str(a.infer_batch),
            "--dtype",
            a.dtype,
            "--repeats",
            str(a.repeats),
            *(["--onnx"] if a.onnx else []),
        ]
        subprocess.run(argv, check=True, env=os.environ)


if __name__ == "__main__":
    main()
