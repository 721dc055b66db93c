"""ONNX export of a finished DUNE run: one graph per trained network, the ensemble combined inside.

    python -m experiments.dune export runs/dune/<run-id>      # -> <run>/export/onnx/<task>_<network>.onnx

Inputs: the image keys the network reads (`api._input_keys`), float32 in [0, 1], rows first:
images_u / images_v / images_x [N, 128, 16] (three_plane), images_x (single_plane), volume_x
[N, 128, 64] (channel), mt_images [N, 128, 16] (maintrack). Outputs (M members):

    direction   direction [N, 3] (the ensemble's unit vector, `DunePredictor.predict`),
                members [N, M, 3] (each member's unit direction), sense_agreement [N] (fraction of
                members on the side of `direction`), spread_rad [N] (RMS angle of the members to
                `direction`, radians: the predictor's spread_deg / (180 / pi))
    channel,    prob [N] (mean member probability: P(CC), P(main track); `predict`),
    maintrack   prob_std [N], member_prob [N, M] (sigmoid of each member's logit)

Left out on purpose: the predictor's `logit` (of the clipped mean probability) and member logits.
Near a saturated probability they carry float32's rounding of p times 1 / (p (1 - p)), so no two
float32 programs agree on them to the export's 1e-5; and spread in degrees (float32's step at
100 degrees is 7.6e-6, so the radians keep the check meaningful).

The ensemble's line (`ensemble.combine_directions`: the principal axis of sum_m a_m a_m^T) comes
from `jnp.linalg.eigh`, which jax2onnx 0.17.1 lowers only for one unbatched 1x1 or 2x2 matrix. The
graph takes it by repeated squaring instead (`principal_axis`); the same axis to float32 rounding
except where the two largest eigenvalues nearly coincide (relative gap below ~1e-3, e.g. two
members at right angles), where no float32 eigensolver fixes the line either.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxhep.config import from_dict
from jaxhep.dune import ensemble as ens
from jaxhep.dune import moments
from jaxhep.dune.api import available_networks, load_predictor
from jaxhep.dune.config import NetConfig
from jaxhep.dune.models import directions, safe_unit
from jaxhep.dune.training import build
from jaxhep.errors import InputError
from jaxhep.export import Input, OnnxGraph, float32_twin

ROW_SHAPES = {"images_u": (128, 16), "images_v": (128, 16), "images_x": (128, 16)}
ROW_SHAPES |= {"volume_x": (128, 64), "mt_images": (128, 16)}
OUTPUTS = {
    "direction": {
        "direction": "[N, 3] float32 unit vector, the ensemble's direction",
        "members": "[N, M, 3] float32, each member's unit direction",
        "sense_agreement": "[N] float32, fraction of members on the side of direction",
        "spread_rad": "[N] float32, RMS angle of the members' directions to direction (radians)",
    },
    "classifier": {
        "prob": "[N] float32, mean member probability (P(CC) / P(main track))",
        "prob_std": "[N] float32, standard deviation of the member probabilities",
        "member_prob": "[N, M] float32, each member's probability",
    },
}
CHECK_SIZES = (3, 8)  # rows of the two check batches: different sizes prove N is dynamic
SQUARINGS = 16  # P ~ v v^T to float32 rounding while lambda_2 / lambda_1 < 1 - 2.5e-4 (principal_axis)

# What flax's own code is, taken before any conversion: jax2onnx 0.17.1 swaps both while tracing
# for functions of another signature (max_pool without a positional window, Dropout.__call__
# without `rngs`), which the DUNE models call as flax documents them; see `flax_as_written`.
_FLAX_ORIGINALS = ((nnx, "max_pool", nnx.max_pool), (nnx.Dropout, "__call__", nnx.Dropout.__call__))


@contextlib.contextmanager
def flax_as_written():
    """Flax's own `nnx.max_pool` and `nnx.Dropout.__call__` for the duration of a trace.

    Under them the trace holds lax primitives jax2onnx converts (reduce_window_max; dropout in eval
    mode is the identity) instead of a TypeError from its replacements; whatever was installed (its
    replacements, during a conversion) is put back after."""
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in _FLAX_ORIGINALS]
    for owner, name, original in _FLAX_ORIGINALS:
        setattr(owner, name, original)
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def principal_axis(scatter: jax.Array, squarings: int = SQUARINGS) -> jax.Array:
    """Unit eigenvector [..., 3] of the largest eigenvalue of symmetric PSD matrices [..., 3, 3]
    (`moments.largest_eigenvector`, float32). 16 squarings bring (1 - g)^65536 below float32's 1e-7
    for a relative eigenvalue gap g > 2.5e-4 (below ~1e-3 float32 eigh's own line moves by more
    than 1e-5); each squaring costs conversion time. The sign is arbitrary (as eigh's): the line's
    users (`ens.oriented`) turn it."""
    return moments.largest_eigenvector(scatter.astype(jnp.float32), squarings)


def _angle_rad(a: jax.Array, b: jax.Array) -> jax.Array:
    """Angle between unit vectors over the last axis (atan2: accurate near 0 and pi)."""
    return jnp.arctan2(jnp.linalg.norm(jnp.cross(a, b), axis=-1), jnp.sum(a * b, axis=-1))


def combine_directions(members: jax.Array) -> tuple[jax.Array, ...]:
    """`ensemble.combine_directions` with the line from `principal_axis`: member outputs [M, N, 3 | 4 | 6]
    -> (direction [N, 3], members [N, M, 3], sense_agreement [N], spread_rad [N])."""
    axes = safe_unit(members[..., :3])
    own = directions(members)
    line = principal_axis(jnp.einsum("mbi,mbj->bij", axes, axes))
    direction = ens.oriented(members, line)
    spread = jnp.sqrt(jnp.mean(_angle_rad(own, direction[None]) ** 2, axis=0))
    agree = jnp.mean((jnp.einsum("mbi,bi->mb", own, direction) > 0).astype(jnp.float32), axis=0)
    return direction, jnp.swapaxes(own, 0, 1), agree, spread


def combine_logits(members: jax.Array) -> tuple[jax.Array, ...]:
    """Member logits [M, N] -> (prob [N], prob_std [N], member_prob [N, M]), as `ensemble.combine_logits`."""
    p = jax.nn.sigmoid(members.astype(jnp.float32))
    return p.mean(axis=0), p.std(axis=0), jnp.swapaxes(p, 0, 1)


def float32_ensemble(task: str, network: str, net, model: ens.BootstrapEnsemble) -> ens.BootstrapEnsemble:
    """The ensemble rebuilt to compute in float32 with `model`'s parameters and statistics (the
    parameters are float32 whatever the training precision; ONNX Runtime's CPU kernels are float32)."""
    return float32_twin(model, lambda: build(task, network, net, "float32", model.seed))


def graph_fn(task: str, model: ens.BootstrapEnsemble, input_keys: tuple[str, ...]):
    """fn(*images, in `input_keys` order) -> the task's outputs (`OUTPUTS`), the ensemble in eval mode."""
    model.eval()
    graphdef, state = nnx.split(model)
    combine = combine_directions if task == "direction" else combine_logits

    def fn(*images):
        # A fresh copy per trace: the ensemble writes its members' BatchNorm statistics back into
        # itself, which flax refuses for variables made outside the trace.
        with flax_as_written():
            members = nnx.merge(graphdef, state, copy=True).member_outputs(dict(zip(input_keys, images)))
        return combine(members)

    return jax.jit(fn)  # the check's JAX side compiled (jax2onnx traces through the jit)


def synthetic_images(input_keys, sizes=CHECK_SIZES, seed: int = 0) -> list[tuple[np.ndarray, ...]]:
    """Check inputs when none are given: images in [0, 1] with ~10 % of the pixels lit, as the
    clusters' mostly empty images."""
    rng = np.random.default_rng(seed)

    def image(n, key):
        shape = (n, *ROW_SHAPES[key])
        return np.where(rng.random(shape) < 0.1, rng.random(shape), 0.0).astype(np.float32)

    return [tuple(image(n, k) for k in input_keys) for n in sizes]


def network_graph(
    task: str,
    network: str,
    model: ens.BootstrapEnsemble,
    input_keys: tuple[str, ...],
    precision: str = "float32",
    net: NetConfig | None = None,
    run_id: str = "",
    examples=None,
) -> OnnxGraph:
    """The OnnxGraph `<task>_<network>` of an ensemble computing in `precision` (`net`, its
    NetConfig, rebuilds a bfloat16 one in float32); examples: check inputs [(image arrays in
    input_keys order), ...] (None: `synthetic_images`)."""
    if precision != "float32":
        model = float32_ensemble(task, network, net, model)
    outputs = OUTPUTS["direction" if task == "direction" else "classifier"]
    info = {
        "task": task,
        "network": network,
        "run_id": run_id,
        "members": model.n_members,
        "inputs": {k: f"[N, {', '.join(map(str, ROW_SHAPES[k]))}] float32 in [0, 1]" for k in input_keys},
        "outputs": outputs,
        "compute_dtype": "float32",
        "trained_dtype": precision,
        "check_inputs": "given" if examples is not None else "synthetic (10 % of pixels lit, in [0, 1])",
    }
    if task == "direction":
        info["line"] = f"principal axis by {SQUARINGS} squarings of sum_m a_m a_m^T (eigh in jaxhep)"
    return OnnxGraph(
        name=f"{task}_{network}",
        fn=graph_fn(task, model, input_keys),
        inputs=tuple(Input(k, ("N", *ROW_SHAPES[k])) for k in input_keys),
        outputs=tuple(outputs),
        examples=examples if examples is not None else synthetic_images(input_keys),
        metadata={k: v if isinstance(v, str) else json.dumps(v) for k, v in info.items()},
        sidecar=info,
    )


def onnx_graphs(run_dir: str | os.PathLike, networks=None, examples=None) -> list[OnnxGraph]:
    """One graph per finished network of the run (`networks`: only these, e.g. ("three_plane",));
    examples: {network: check inputs} (a network not in it, or None: synthetic inputs)."""
    run_dir = Path(run_dir)
    have = available_networks(run_dir)
    if not have:
        raise InputError(run_dir / "models", "no finished DUNE network to export")
    graphs = []
    for network in have if networks is None else networks:
        predictor = load_predictor(run_dir, network)
        trained = predictor.trained
        meta = json.loads((trained.directory / "model.json").read_text())
        graphs.append(
            network_graph(
                trained.task,
                network,
                trained.model,
                predictor.input_keys,
                meta["precision"],
                from_dict(NetConfig, meta["net"]),
                run_dir.resolve().name,
                (examples or {}).get(network),
            )
        )
    return graphs
