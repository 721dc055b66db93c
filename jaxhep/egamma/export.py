"""ONNX export of a finished e/γ run: one graph per trained network ("se", "plain").

    python -m experiments.egamma export runs/egamma/<run-id>      # -> <run>/export/onnx/{se,plain}.onnx

Each graph takes the crops as the HDF5 files hold them and does the rest itself:

    images      [N, 32, 32, 2] float32, channels last: 0 energy (GeV), 1 time (ns); axis 1 η, axis 2 φ
    logit       [N] float32, electron positive (the network's own output)
    p_electron  [N] float32, sigmoid(logit)

The normalisation of the run's training rows ((x - mean) / std per channel, `augment.normalise`)
is inside the graph. The decision threshold (`EgammaPredictor.threshold_logit`: the accuracy-optimal
logit on validation) is in the file's metadata and in `<name>.json`: electron where
logit >= threshold_logit. The graph computes in float32 whatever precision the run trained in
(the parameters are float32 either way; ONNX Runtime's CPU kernels are float32).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxhep.egamma.api import available_models, load_predictor
from jaxhep.egamma.augment import ChannelStats
from jaxhep.egamma.io import IMAGE_SHAPE
from jaxhep.egamma.model import ResNet15, build_model
from jaxhep.errors import InputError
from jaxhep.export import Input, OnnxGraph, float32_twin

LAYOUT = (
    "images [N, 32, 32, 2] float32 as the HDF5 X (not normalised): channels last, channel 0 energy (GeV), "
    "channel 1 time (ns); axis 1 eta rows, axis 2 phi columns"
)
OUTPUTS = {
    "logit": "[N] float32, electron positive; electron where logit >= threshold_logit",
    "p_electron": "[N] float32, sigmoid(logit)",
}
CHECK_SIZES = (3, 8)  # rows of the two check batches: different sizes prove N is dynamic


def float32_model(model: ResNet15) -> ResNet15:
    """`model` computing in float32 (a copy with the same parameters when it computes in bfloat16)."""
    if model.dtype == jnp.float32:
        return model
    return float32_twin(model, lambda: build_model(model.cfg, precision="float32"))


def graph_fn(model: ResNet15, stats: ChannelStats):
    """fn(images [N, 32, 32, 2] raw) -> (logit [N], p_electron [N]) of a one-logit model in eval mode.

    The network is called as `head(features(x))`, its `__call__` without the dropout: dropout is
    the identity in eval mode, and jax2onnx 0.17.1 replaces `nnx.Dropout.__call__` while tracing
    with a function that takes no `rngs` argument (the model passes `rngs=None`), a TypeError.
    """
    if model.cfg.n_classes != 1:
        raise ValueError(f"export takes one-logit networks: {model.cfg.name!r} has {model.cfg.n_classes}")
    mean, std = np.asarray(stats.mean, np.float32), np.asarray(stats.std, np.float32)

    def fn(images):
        logit = model.head(model.features((images - mean) / std)).astype(jnp.float32)[:, 0]
        return logit, jax.nn.sigmoid(logit)

    return jax.jit(fn)  # the check's JAX side compiled (jax2onnx traces through the jit)


def synthetic_images(stats: ChannelStats, sizes=CHECK_SIZES, seed: int = 0) -> list[tuple[np.ndarray]]:
    """Check inputs when none are given: mean + std x N(0, 1) per channel, so that the network sees
    inputs at the scale of its training (standard normal after the graph's normalisation)."""
    rng = np.random.default_rng(seed)
    return [
        ((stats.mean + stats.std * rng.normal(size=(n, *IMAGE_SHAPE))).astype(np.float32),) for n in sizes
    ]


def model_graph(
    name: str,
    model: ResNet15,
    stats: ChannelStats,
    threshold_logit: float = 0.0,
    run_id: str = "",
    examples=None,
) -> OnnxGraph:
    """The OnnxGraph `name` of a network in eval mode with its normalisation and threshold;
    examples: check inputs [(images [n, 32, 32, 2],), ...] (None: `synthetic_images`)."""
    model.eval()
    trained_dtype = jnp.dtype(model.dtype).name
    model = float32_model(model)
    info = {
        "task": "egamma",
        "model": name,
        "run_id": run_id,
        "inputs": LAYOUT,
        "outputs": OUTPUTS,
        "threshold_logit": float(threshold_logit),
        "normalisation": stats.to_dict(),
        "compute_dtype": "float32",
        "trained_dtype": trained_dtype,
        "check_inputs": "given" if examples is not None else "synthetic (mean + std x N(0, 1))",
    }
    return OnnxGraph(
        name=name,
        fn=graph_fn(model, stats),
        inputs=(Input("images", ("N", *IMAGE_SHAPE)),),
        outputs=tuple(OUTPUTS),
        examples=examples if examples is not None else synthetic_images(stats),
        metadata={k: v if isinstance(v, str) else json.dumps(v) for k, v in info.items()},
        sidecar=info,
    )


def onnx_graphs(run_dir: str | os.PathLike, models=None, examples=None) -> list[OnnxGraph]:
    """One graph per finished network of the run (`models`: only these, e.g. ("se",)); examples:
    check inputs for every graph (None: synthetic, from each network's normalisation)."""
    run_dir = Path(run_dir)
    have = available_models(run_dir)
    if not have:
        raise InputError(run_dir / "models", "no finished e/gamma network to export")
    graphs = []
    for name in have if models is None else models:
        predictor = load_predictor(run_dir, name)
        trained, run_id = predictor.trained, run_dir.resolve().name
        graphs.append(
            model_graph(name, trained.model, trained.stats, predictor.threshold_logit, run_id, examples)
        )
    return graphs
