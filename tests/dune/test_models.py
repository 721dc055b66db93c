"""DUNE CNNs: shapes under jit, unit-norm directions, both dtypes, attention gate, classifiers.

Real image sizes (128 x 16, 128 x 64), batch 4, tiny widths: compile time dominates on a CPU.
"""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxhep.dune import models, moments
from jaxhep.dune.models import (
    ClassifierConfig,
    ClusterClassifier,
    DirectionConfig,
    SinglePlaneCNN,
    SpatialAttention,
    ThreePlaneCNN,
    safe_unit,
)
from tests.dune.painted import kinked_track_images

B = 4


TINY = DirectionConfig(
    depths=(1, 2, 3),
    growth=(1.0, 1.5, 2.0),
    base_filters=4,
    max_filters=8,
    kernel=3,
    attention_kernel=3,
    dense=(8,),
    dropout=0.3,
)


def _images(rng, *shape):
    """Mostly-zero images in [0, 1], like the simulator's."""
    x = rng.random((B, *shape), dtype=np.float32)
    return jnp.asarray(np.where(rng.random(x.shape) < 0.8, 0.0, x), jnp.float32)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    out = {key: _images(rng, 128, 16) for key in ("images_u", "images_v", "images_x", "mt_images")}
    out["volume_x"] = _images(rng, 128, 64)
    return out


@jax.jit
def _norms(x):
    return jnp.linalg.norm(x, axis=-1)


def _eqns(jaxpr):
    """Every equation of a jaxpr, those of its sub-jaxprs included (`jaxhep.conv.conv2d` is a
    custom_vjp call whose convolution sits in the call's jaxpr)."""
    for e in jaxpr.eqns:
        yield e
        for value in e.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    yield from _eqns(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    yield from _eqns(sub)


def _conv_dtypes(model, batch):
    """The operand dtypes of every convolution in the traced forward pass (no compilation)."""
    graphdef, state = nnx.split(model)
    jaxpr = jax.make_jaxpr(lambda s, b: nnx.merge(graphdef, s)(b, rngs=nnx.Rngs(dropout=0)))(state, batch)
    convs = [e for e in _eqns(jaxpr.jaxpr) if e.primitive.name == "conv_general_dilated"]
    assert convs
    return {v.aval.dtype for e in convs for v in e.invars}


def _stats(model):
    return jax.tree.map(np.asarray, nnx.state(model, nnx.BatchStat))


def _run(model, batch, key, check_eval: bool = True):
    """Jitted train-mode call with dropout, then eval mode: (train_out, eval_out or None).

    Checks on the way that BatchNorm statistics move in train mode and stay put in eval mode.
    """
    before = _stats(model)
    model.train()
    y_train = nnx.jit(lambda m, b, k: m(b, rngs=nnx.Rngs(dropout=k)))(model, batch, key)
    trained = _stats(model)
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(trained)))
    if not check_eval:
        return y_train, None
    model.eval()
    eval_fn = nnx.jit(lambda m, b: m(b))
    y_eval = eval_fn(model, batch)
    np.testing.assert_array_equal(y_eval, eval_fn(model, batch))  # deterministic
    jax.tree.map(np.testing.assert_array_equal, trained, _stats(model))  # statistics frozen
    return y_train, y_eval


@pytest.mark.parametrize(
    "dtype, head",
    [
        ("float32", "axis_vector"),
        ("float32", "vector"),
        ("float32", "axis_sense"),
        ("bfloat16", "axis_vector"),
    ],
)
@pytest.mark.parametrize("cls", [ThreePlaneCNN, SinglePlaneCNN])
def test_direction_models_give_unit_vectors(batch, cls, dtype, head):
    # bfloat16 programs compile ~2x slower on a CPU: one stage per branch is enough for the dtype check.
    cfg = dataclasses.replace(TINY, head=head)
    if dtype != "float32":
        cfg = dataclasses.replace(cfg, depths=(1, 1, 1))
    model = cls(cfg, dtype, rngs=nnx.Rngs(params=0))
    params = nnx.state(model, nnx.Param)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))  # params stay fp32
    # SinglePlaneCNN gets images_x alone: it must not read the other planes.
    inputs = batch if cls is ThreePlaneCNN else {"images_x": batch["images_x"]}
    assert _conv_dtypes(model, inputs) == {jnp.dtype(dtype)}
    outputs = _run(model, inputs, jax.random.PRNGKey(1), check_eval=dtype == "float32")
    for y in filter(lambda y: y is not None, outputs):
        chex.assert_shape(y, (B, models.HEADS[head]))  # axis_vector: unit axis + unit vector
        chex.assert_type(y, jnp.float32)
        chex.assert_tree_all_finite(y)
        np.testing.assert_allclose(_norms(y[:, :3]), 1.0, atol=1e-5)
        d = jax.jit(models.directions)(y)
        chex.assert_shape(d, (B, 3))
        np.testing.assert_allclose(_norms(d), 1.0, atol=1e-5)
        if head == "axis_sense":  # the axis, turned where the sense logit is negative
            sign = np.where(np.asarray(y[:, 3:]) < 0, -1.0, 1.0)
            np.testing.assert_allclose(d, sign * np.asarray(y[:, :3]), atol=1e-6)
        else:
            assert np.all(np.sum(np.asarray(d) * np.asarray(y[:, -3:]), axis=1) >= 0)  # on the vector's side


@pytest.mark.parametrize(
    "cls, head, start_mm, volume_bins, end_bins, sense",
    [
        (ThreePlaneCNN, "axis_vector", 0.0, 0, 0, ()),
        (ThreePlaneCNN, "axis_sense", 15.0, 8, 0, ()),
        (ThreePlaneCNN, "axis_sense", 15.0, 8, 4, (16,)),
        (SinglePlaneCNN, "axis_sense", 0.0, 4, 4, (8, 8)),
    ],
)
def test_the_moments_prior_starts_at_the_classical_fit(cls, head, start_mm, volume_bins, end_bins, sense):
    images = kinked_track_images(np.array([0.6, 0.0, 0.8]), np.array([0.0, 0.6, 0.8]), 25.0, 50.0)
    rng = np.random.default_rng(0)
    images["volume_x"] = np.where(rng.random((1, 128, 64)) < 0.02, rng.random((1, 128, 64)), 0.0)
    cfg = dataclasses.replace(TINY, prior="moments", profile_bins=8, start_mm=start_mm, head=head)
    cfg = dataclasses.replace(cfg, volume_bins=volume_bins, end_bins=end_bins, sense_dense=sense)
    network = "three_plane" if cls is ThreePlaneCNN else "single_plane"
    keys = models.direction_inputs(cfg, network)  # what the network reads: the data and export inputs
    assert ("volume_x" in keys) == bool(volume_bins)
    inputs = {k: jnp.asarray(np.repeat(images[k], B, 0), jnp.float32) for k in keys}
    model = cls(cfg, rngs=nnx.Rngs(params=0))
    model.eval()
    out = nnx.jit(lambda m, b: m(b))(model, inputs)
    chex.assert_shape(out, (B, models.HEADS[head]))
    chex.assert_tree_all_finite(out)
    arrays = {k: np.asarray(v) for k, v in inputs.items()}
    fit = moments.principal_axes(arrays)
    fit = fit * np.sign(fit[:, :1])  # turned to x >= 0
    # The correction is zero at initialisation: the axis is the fit's, or with start_mm the start
    # axes of both ends (turned to the fit's side) weighted by the sense probability.
    want = fit
    if start_mm:
        ends = [moments.start_axes(arrays, sign * fit, start_mm) for sign in (1, -1)]
        ends = [e * np.sign(np.sum(e * fit, 1, keepdims=True)) for e in ends]
        p = 1 / (1 + np.exp(-np.asarray(out[:, 3:])))
        want = p * ends[0] + (1 - p) * ends[1]
        want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(out[:, :3]), want, atol=1e-4)
    if sense:  # the images turned about their centres: the same line, gone the other way
        reflected = nnx.jit(lambda m, b: m(b))(model, {k: v[:, ::-1, ::-1] for k, v in inputs.items()})
        assert np.abs(np.asarray(out[:, 3])).min() > 1e-4
        np.testing.assert_allclose(np.asarray(reflected[:, 3]), -np.asarray(out[:, 3]), atol=1e-5)
    with pytest.raises(ValueError, match="needs head='axis_vector'"):
        cls(dataclasses.replace(TINY, prior="moments", head="vector"), rngs=nnx.Rngs(0))
    for bad in (dict(profile_bins=8), dict(start_mm=15.0), dict(volume_bins=8), dict(end_bins=4)):
        with pytest.raises(ValueError, match="need prior='moments'"):  # without the prior
            cls(dataclasses.replace(TINY, **bad), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="the sense MLP, needs prior"):  # the axis_vector head
        cls(dataclasses.replace(TINY, prior="moments", sense_dense=(8,)), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="unknown direction prior"):
        cls(dataclasses.replace(TINY, prior="pca"), rngs=nnx.Rngs(0))


def test_directions_bisect_the_vector_and_the_turned_axis():
    out = jnp.array([[0.0, 0.0, 2.0, 0.0, 0.6, 0.8], [0.0, 3.0, 0.0, 0.0, -0.6, 0.8], [4.0, 0, 0, 0, 1.0, 0]])
    # (v + a), (v - a) as v . a < 0, and at v . a = 0 the axis as it is: (v + a)
    want = np.array([[0, 0.6, 1.8], [0, -1.6, 0.8], [1.0, 1.0, 0]])
    np.testing.assert_allclose(
        models.directions(out), want / np.linalg.norm(want, axis=1)[:, None], atol=1e-6
    )
    flipped = out.at[:2, :3].multiply(-1)  # the axis' own sign does not matter, the vector decides
    np.testing.assert_allclose(models.directions(flipped)[:2], models.directions(out)[:2], atol=1e-6)
    with pytest.raises(ValueError, match="head"):
        ThreePlaneCNN(dataclasses.replace(TINY, head="sphere"), rngs=nnx.Rngs(0))


def test_branches_follow_per_plane_depth_and_growth():
    model = nnx.eval_shape(lambda: ThreePlaneCNN(TINY, rngs=nnx.Rngs(0)))
    widths = [tuple(conv.kernel.shape[-1] for conv in branch.convs) for branch in model.branches]
    assert widths == [(4,), (4, 6), (4, 8, 8)]  # U constant, V x1.5, X x2 capped at max_filters
    assert model.planes == ("u", "v", "x")
    single = nnx.eval_shape(lambda: SinglePlaneCNN(TINY, rngs=nnx.Rngs(0)))
    assert single.planes == ("x",) and len(single.branches[0].convs) == 3
    assert models.BranchSpec(4, 32, 2.0, 5, True, 7, 256).filters() == (32, 64, 128, 256)
    assert models.BranchSpec(3, 32, 1.5, 5, True, 7, 256).filters() == (32, 48, 72)


def test_spatial_attention_gate_in_unit_interval():
    attn = SpatialAttention(kernel=3, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.PRNGKey(0), (B, 32, 8, 6))
    gate, y = nnx.jit(lambda a, x: (a.gate(x), a(x)))(attn, x)
    chex.assert_shape(gate, (B, 32, 8, 1))
    chex.assert_shape(y, x.shape)
    assert float(gate.min()) > 0.0 and float(gate.max()) < 1.0
    np.testing.assert_allclose(y, x * gate, rtol=1e-6)
    assert attn.conv.kernel.shape == (3, 3, 2, 1)  # [avg, max] in, one map out
    assert attn.conv.bias.shape == (1,)  # 3 * 3 * 2 + 1 = 19 parameters, as with nnx.Conv before


@pytest.mark.parametrize(
    ("key", "width", "dtype"), [("volume_x", 64, "float32"), ("mt_images", 16, "bfloat16")]
)
def test_classifier_gives_one_logit(batch, key, width, dtype):
    depth = 3 if dtype == "float32" else 1
    cfg = ClassifierConfig(key, depth, 2.0, 4, 8, kernel=3, attention_kernel=3, dense=(8,))
    model = ClusterClassifier(cfg, dtype, rngs=nnx.Rngs(params=0))
    assert _conv_dtypes(model, batch) == {jnp.dtype(dtype)}
    assert batch[key].shape == (B, 128, width)
    for y in filter(lambda y: y is not None, _run(model, batch, jax.random.PRNGKey(2), dtype == "float32")):
        chex.assert_shape(y, (B,))
        chex.assert_type(y, jnp.float32)
        chex.assert_tree_all_finite(y)


def test_safe_unit_is_finite_at_zero():
    v = jnp.array([[0.0, 0.0, 0.0], [3.0, 0.0, 4.0]])
    out, grad = jax.jit(jax.value_and_grad(lambda v: safe_unit(v).sum()))(v)
    np.testing.assert_allclose(safe_unit(v)[1], [0.6, 0.0, 0.8], rtol=1e-6)
    assert np.isfinite(float(out)) and np.isfinite(np.asarray(grad)).all()


def test_build_model_and_bad_inputs():
    model = nnx.eval_shape(lambda: models.build_model("single_plane", TINY, seed=1))
    assert isinstance(model, SinglePlaneCNN) and model.branches[0].dtype == jnp.float32
    half = nnx.eval_shape(lambda: models.build_model("classifier", seed=1, precision="bfloat16"))
    assert half.branch.dtype == jnp.bfloat16  # the run's train.precision
    with pytest.raises(ValueError, match="unknown DUNE model"):
        models.build_model("resnet")
    with pytest.raises(ValueError, match="planes"):
        models.DirectionCNN(TINY, ("w",), rngs=nnx.Rngs(0))
