"""Train and inference throughput (images/s) and peak memory of the e/γ ResNet-15, as JSON.

    python benchmarks/egamma.py --batch 256                    # the seed's network ("se"), fp32
    python benchmarks/egamma.py --batch 256 --config peer      # the PyTorch peer's network
    python benchmarks/egamma.py --batch 256 --config plain --dtype bfloat16
    python benchmarks/egamma.py --pipeline --batch 512 --workers 4   # the input pipeline alone

Beside jaxhep's inference rate, ONNX Runtime's on the CPU (`onnxruntime_cpu_infer_images_per_s`, same
images, same batch; with `--onnx`): the eval-mode network as `experiments.egamma export` writes it.

`--config peer` is exactly the network of the PyTorch peer's `peers.py resnet` (outside this
repository; BUILD_NOTES.md) (pre-activation blocks
with SE, no groups, no attention pooling, no dropout, 2 logits, 1 668 850 parameters) trained
as the peer trains it: softmax cross-entropy, AdamW (lr 1e-3, weight decay 0.01, PyTorch's
defaults), no gradient clipping. "se" and "plain" have one logit and train on binary
cross-entropy (the same loss as 2-class cross-entropy). Training runs the real jaxhep train
step (`jaxhep.train.Trainer`, `steps_per_call` steps per compiled call) on device-resident
random images; inference is one jitted eval-mode forward pass of `--infer-batch` images.
Both are timed after a warm-up that compiles.

On a CPU, set the same `GLIBC_TUNABLES` for this and for the peer if you set it at all (see
BUILD_NOTES.md). `CPU_XLA_FLAGS` is added to `XLA_FLAGS` before JAX starts unless
`--no-cpu-xla-flags` is given: it hands XLA:CPU's convolutions to its Eigen kernels instead of
YNNPACK, whose weight-gradient convolutions are ~5x slower here (the flag only touches the CPU
client). `--xla-conv-grad` and `--native-groups` switch off the model's two CPU workarounds
(`ResNetConfig.conv_vjp`, `dense_groups`) for A/B runs. CPU seconds per step (all threads of
this process) are reported next to the wall time: on a shared machine they move less with
other people's load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CPU_XLA_FLAGS = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"


def timed_cpu(fn, warmup: int, repeats: int) -> tuple[float, float]:
    """`common.timed`'s mean wall seconds per call, and the process's CPU seconds per call."""
    from benchmarks.common import timed

    for _ in range(warmup):
        fn()
    c0 = time.process_time()
    wall = timed(fn, warmup=0, repeats=repeats)
    return wall, (time.process_time() - c0) / repeats


def workload(a):
    """The benchmark's two closures, `train()` (k Trainer steps) and `infer()`, and its facts.

    Both block until done; the first call of each compiles. Split out of `bench` so that other
    scripts can time them (e.g. alternating with the PyTorch peer in one process).
    """
    import jax
    import numpy as np
    from flax import nnx

    from benchmarks.common import train_calls
    from jaxhep import losses
    from jaxhep.egamma.model import ResNetConfig, build_model, count_params
    from jaxhep.mesh import make_mesh, shard_batch
    from jaxhep.train import TrainConfig, Trainer

    mesh = make_mesh()
    cfg = ResNetConfig(name=a.config, conv_vjp=not a.xla_conv_grad, dense_groups=not a.native_groups)
    model = build_model(cfg, precision=a.dtype)
    n_params = count_params(model)

    def loss_fn(m, batch, key):
        logits = m(batch["x"], rngs=nnx.Rngs(dropout=key))
        if cfg.n_classes == 1:
            return losses.weighted_bce(logits, batch["y"].astype(np.float32), 1.0), {}
        return losses.softmax_cross_entropy(logits, batch["y"]), {}

    k, b = a.steps_per_call, a.batch
    trainer = Trainer(
        model,
        loss_fn,
        lambda m, batch: m(batch["x"]),
        TrainConfig(
            batch_size=b,
            steps_per_call=k,
            optimizer="adamw",
            learning_rate=1e-3,
            weight_decay=0.01,
            grad_clip_norm=None,
        ),
        mesh,
        total_steps=10_000,
    )
    rng = np.random.default_rng(0)
    chunk = {
        "x": rng.normal(size=(k, b, 32, 32, cfg.in_channels)).astype(np.float32),
        "y": rng.integers(0, 2, (k, b)).astype(np.int32),
    }
    chunk = shard_batch(chunk, mesh, b, batch_axis=1)
    train = train_calls(trainer, chunk, k)

    xi = jax.device_put(rng.normal(size=(a.infer_batch, 32, 32, cfg.in_channels)).astype(np.float32))
    infer_fn = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))
    graphdef = nnx.graphdef(trainer.model())

    def infer():
        # The Trainer's current state (eval mode); the next train() donates it, so take it anew.
        infer_fn(nnx.state(trainer.model()), xi).block_until_ready()

    return train, infer, {"cfg": cfg, "params": n_params, "model": trainer.model}


def onnx_inference(a, model) -> dict:
    """ONNX Runtime's CPU rate on the same `--infer-batch` images: the model exported as
    `python -m experiments.egamma export` writes it (normalisation with mean 0, std 1 inside)."""
    import numpy as np

    from benchmarks.common import timed
    from jaxhep.egamma.augment import ChannelStats
    from jaxhep.egamma.export import model_graph
    from jaxhep.export import convert, session

    stats = ChannelStats(np.zeros(2, np.float32), np.ones(2, np.float32))
    graph = model_graph(a.config, model, stats, examples=[])
    sess = session(convert(graph).SerializeToString())
    x = np.random.default_rng(1).normal(size=(a.infer_batch, 32, 32, 2)).astype(np.float32)
    t = timed(lambda: sess.run(None, {"images": x}), warmup=a.warmup, repeats=a.steps)
    return {
        "onnxruntime_cpu_infer_ms_per_batch": 1e3 * t,
        "onnxruntime_cpu_infer_images_per_s": a.infer_batch / t,
        "onnxruntime_intra_op_threads": sess.get_session_options().intra_op_num_threads,
    }


def bench(a) -> dict:
    from benchmarks.common import emit, environment, peak_memory

    train, infer, facts = workload(a)
    cfg, k, b = facts["cfg"], a.steps_per_call, a.batch
    t_train, cpu_train = timed_cpu(train, a.warmup, max(1, a.steps // k))
    t_train, cpu_train = t_train / k, cpu_train / k
    t_infer, cpu_infer = timed_cpu(infer, a.warmup, a.steps)
    onnx = onnx_inference(a, facts["model"]()) if a.onnx else {}
    emit(
        {
            "benchmark": "egamma_resnet15",
            "config": a.config,
            "params": facts["params"],
            "dtype": a.dtype,
            "batch": b,
            "steps_per_call": k,
            "train_ms_per_step": 1e3 * t_train,
            "train_images_per_s": b / t_train,
            "train_cpu_s_per_step": cpu_train,
            "infer_batch": a.infer_batch,
            "infer_ms_per_batch": 1e3 * t_infer,
            "infer_images_per_s": a.infer_batch / t_infer,
            "infer_cpu_s_per_batch": cpu_infer,
            **onnx,
            "conv_vjp": cfg.conv_vjp,
            "dense_groups": cfg.dense_groups,
            **peak_memory(),
            **environment(),
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
            "load_average": os.getloadavg()[0],
        }
    )


def pipeline(a) -> None:
    """Images/s of the training input pipeline alone: the default simulated HDF5 files (made on
    first use under --data-dir), stratified split, normalisation and augmentation, read by grain
    as the experiment reads them (`pipeline.training_batches`, `--workers` processes)."""
    from benchmarks.common import emit, environment
    from jaxhep.egamma import dataset
    from jaxhep.egamma.config import AugmentConfig, DataConfig
    from jaxhep.pipeline import EpochPlan, training_batches

    data = dataset.load(DataConfig(), a.data_dir)
    augment = AugmentConfig.seed_like() if a.augment == "seed" else AugmentConfig()
    n = len(data.rows["train"])
    plan = EpochPlan.fit_to(n, a.batch, a.steps_per_call)
    stream = iter(training_batches(data.reader("train", augment), plan, 0, 1, workers=a.workers))
    chunks = max(2, a.steps // a.steps_per_call)
    next(stream)  # workers started, first reads done
    t0 = time.perf_counter()
    for _ in range(chunks):
        next(stream)
    seconds = time.perf_counter() - t0
    emit(
        {
            "benchmark": "egamma_pipeline",
            "batch": a.batch,
            "steps_per_call": a.steps_per_call,
            "workers": a.workers,
            "augment": a.augment,
            "images_per_s": chunks * a.steps_per_call * a.batch / seconds,
            **environment(),
            "load_average": os.getloadavg()[0],
        }
    )


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--config", choices=["se", "plain", "peer"], default="se")
    p.add_argument("--dtype", default="float32", help="compute dtype: float32 or bfloat16")
    p.add_argument("--steps", type=int, default=10, help="timed train steps and inference calls (peer: 10)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps-per-call", type=int, default=1)
    p.add_argument("--infer-batch", type=int, default=None, help="images per inference (default: --batch)")
    p.add_argument("--no-cpu-xla-flags", action="store_true", help=f"do not add {CPU_XLA_FLAGS!r}")
    p.add_argument("--xla-conv-grad", action="store_true", help="conv_vjp=False: XLA's own conv transpose")
    p.add_argument("--native-groups", action="store_true", help="dense_groups=False: XLA grouped convs")
    p.add_argument("--onnx", action="store_true", help="also ONNX Runtime's CPU rate (needs the onnx extra)")
    p.add_argument("--pipeline", action="store_true", help="time the input pipeline alone (no model)")
    p.add_argument("--workers", type=int, default=0, help="--pipeline: grain worker processes")
    p.add_argument("--augment", choices=["default", "seed"], default="default", help="--pipeline")
    p.add_argument("--data-dir", default="data", help="--pipeline: where the simulated files are")
    a = p.parse_args(argv)
    a.infer_batch = a.infer_batch or a.batch
    return a


def set_cpu_xla_flags(a) -> None:
    """Add CPU_XLA_FLAGS to XLA_FLAGS (must run before JAX starts its backend)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if not a.no_cpu_xla_flags and "ynn_fusion_type" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {CPU_XLA_FLAGS}".strip()


def main():
    a = parse_args()
    set_cpu_xla_flags(a)
    if a.pipeline:
        pipeline(a)
    else:
        bench(a)


if __name__ == "__main__":
    main()
