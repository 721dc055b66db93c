"""The e/γ ResNet-15: block shapes, SE gate, attention pooling, block gradients with and without
the CPU workarounds of `jaxhep.conv` (whose own tests are in tests/test_conv.py), the whole model
under jit for every config and dtype, parameter counts, and train/eval behaviour."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxhep.egamma.model import (
    AttentionPool,
    PreActBlock,
    ResNet15,
    ResNetConfig,
    SqueezeExcite,
    build_model,
    count_params,
)

TINY = {"widths": (4, 8), "blocks_per_stage": (1, 1)}  # stem + 2 blocks: every conv kind, quick to compile
SMALL = (16, 16, 2)  # images for the TINY models (any H, W work; 32 x 32 is the detector's)


def _x(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


@functools.cache
def _built(cfg: ResNetConfig, precision: str) -> ResNet15:
    return build_model(cfg, precision=precision)


def _model(name="se", tiny=False, precision="float32", **fields) -> ResNet15:
    """A fresh copy of the model for this config (each config is built once per session)."""
    return nnx.clone(_built(ResNetConfig(name=name, **(TINY if tiny else {}), **fields), precision))


def _jitted(module, method="__call__"):
    """x -> module.method(x) as one jitted program (eager calls compile every op apart)."""
    graphdef, state = nnx.split(module)
    fn = jax.jit(lambda s, x: getattr(nnx.merge(graphdef, s), method)(x))
    return lambda x: fn(state, x)


def test_squeeze_excite_is_input_times_a_gate_in_0_1():
    se = SqueezeExcite(16, 4, rngs=nnx.Rngs(0))
    x = _x((3, 5, 5, 16))
    gate = _jitted(se, "gate")(x)
    chex.assert_shape(gate, (3, 16))
    assert bool(jnp.all((gate > 0) & (gate < 1)))
    out = _jitted(se)(x)
    chex.assert_shape(out, x.shape)
    np.testing.assert_allclose(out, x * gate[:, None, None, :], rtol=1e-6)


@pytest.mark.parametrize(
    "cin, cout, stride, groups, shortcut",
    [(8, 8, 1, 1, False), (8, 8, 1, 2, False), (8, 16, 2, 1, True), (8, 16, 1, 2, True)],
)
def test_preact_block_shapes(cin, cout, stride, groups, shortcut):
    block = PreActBlock(cin, cout, stride, groups, 4, rngs=nnx.Rngs(0))
    assert (block.shortcut is not None) == shortcut
    chex.assert_shape(block.conv2.kernel[...], (3, 3, cout // groups, cout))
    out = _jitted(block)(_x((2, 8, 8, cin)))
    chex.assert_shape(out, (2, 8 // stride, 8 // stride, cout))
    chex.assert_tree_all_finite(out)


def test_attention_pool_weights_sum_to_one_and_weight_the_features():
    pool = AttentionPool(6, rngs=nnx.Rngs(0))
    x = _x((4, 3, 5, 6))
    w = _jitted(pool, "weights")(x)
    chex.assert_shape(w, (4, 3, 5))
    assert bool(jnp.all(w > 0))
    np.testing.assert_allclose(w.sum((1, 2)), 1.0, rtol=1e-6)
    pooled = _jitted(pool)(x)
    chex.assert_shape(pooled, (4, 6))
    np.testing.assert_allclose(pooled, (w[..., None] * x).sum((1, 2)), rtol=1e-5, atol=1e-6)


def _block(own: bool) -> PreActBlock:
    """A strided, widening, grouped block with SE: a 3x3 s2 conv, a grouped 3x3, a 1x1 s2 shortcut."""
    return PreActBlock(4, 8, 2, 2, 4, own_vjp=own, dense_groups=own, rngs=nnx.Rngs(0))


def test_block_gradients_do_not_depend_on_the_cpu_workarounds():
    x = _x((3, 8, 8, 4))
    ct = _x((3, 4, 4, 8), seed=3)
    grad = nnx.jit(nnx.grad(lambda m: jnp.sum(ct * m(x))))
    ours, xla = grad(_block(True)), grad(_block(False))
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(xla)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["se", "plain"])
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_whole_model_under_jit(name, precision):
    model = _model(name, precision=precision)
    assert model.stem.dtype == jnp.dtype(precision)  # the builder's precision, not a config field
    model.eval()
    logits = _jitted(model)(_x((2, 32, 32, 2)))
    chex.assert_shape(logits, (2,))
    chex.assert_type(logits, jnp.float32)
    chex.assert_tree_all_finite(logits)


def test_peer_config_has_two_logits():
    model = _model("peer")
    model.eval()
    logits = _jitted(model)(_x((2, 32, 32, 2)))
    chex.assert_shape(logits, (2, 2))
    chex.assert_type(logits, jnp.float32)


def test_features_under_jit_for_any_batch_size():
    model = _model("se")
    model.eval()
    features = _jitted(model, "features")
    for b in (3, 5):
        f = features(_x((b, 32, 32, 2)))
        chex.assert_shape(f, (b, 256))
        chex.assert_tree_all_finite(f)
    # One image's features do not depend on the others in eval mode.
    xs = _x((5, 32, 32, 2))
    np.testing.assert_allclose(features(xs)[:3], features(xs[:3]), rtol=1e-4, atol=1e-5)


def test_parameter_counts():
    """peer = torch's count of the PyTorch peer's ResNet15 (peers.py, outside this repository) (1 668 850).

    se = peer - half of the 7 second convs' weights (groups=2: 9 * (2*32^2 + 2*64^2 + 2*128^2 +
    256^2) / 2 = 488 448) - 257 (2 -> 1 logit) + 256 (the attention score) = 1 180 401.
    plain = peer - the 7 SE blocks (sum of c^2/2 + 5c/4 = 55 152) - 257 = 1 613 441.
    """
    counts = {name: count_params(_model(name)) for name in ("se", "plain", "peer")}
    assert counts == {"se": 1_180_401, "plain": 1_613_441, "peer": 1_668_850}
    assert 1_668_850 - 488_448 - 257 + 256 == counts["se"]


def test_train_and_eval_modes():
    model = _model("se", tiny=True)
    x = _x((6, *SMALL))

    def runner(model):
        """(state, key or None) -> (logits, new state), jitted for the model's current mode."""
        graphdef = nnx.graphdef(model)

        def run(state, key):
            m = nnx.merge(graphdef, state)
            out = m(x, rngs=None if key is None else nnx.Rngs(dropout=key))
            return out, nnx.state(m)

        return jax.jit(run), nnx.state(model)

    model.eval()
    run, state = runner(model)
    (a, after), (b, _) = run(state, None), run(state, None)  # deterministic, no dropout key needed
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(after["bn"]["mean"][...], state["bn"]["mean"][...])  # stats untouched
    model.train()
    run, state = runner(model)
    d1, after = run(state, jax.random.key(1))
    d2, _ = run(state, jax.random.key(2))
    assert bool(jnp.all(after["bn"]["mean"][...] != state["bn"]["mean"][...]))  # running stats updated
    assert not np.allclose(d1, d2)  # dropout 0.5 with different keys
    assert not np.allclose(a, d1)  # batch statistics and dropout differ from eval mode
    with pytest.raises(ValueError):
        run(state, None)  # dropout in train mode needs a key


def test_batchnorm_train_mode_uses_batch_statistics():
    model = _model("plain", tiny=True)
    x = _x((4, *SMALL))
    model.train()
    train = _jitted(model)(x)
    model.eval()
    assert not np.allclose(_jitted(model)(x), train)  # running stats (initial 0/1) != batch stats


def test_config_presets_and_validation():
    assert ResNetConfig().groups == 2 and ResNetConfig().attention_pool and ResNetConfig().dropout == 0.5
    plain = ResNetConfig(name="plain")
    assert (plain.groups, plain.se_ratio, plain.attention_pool, plain.dropout) == (1, 0, False, 0.0)
    assert ResNetConfig(name="plain", dropout=0.2).dropout == 0.2
    with pytest.raises(ValueError, match="unknown"):
        ResNetConfig(name="resnet50")
    with pytest.raises(ValueError, match="divisible"):
        ResNetConfig(groups=3)
    assert isinstance(_model("se"), ResNet15)


PEER = Path(__file__).resolve().parents[2] / ".peer" / "bin" / "python"
PEERS_PY = Path(__file__).resolve().parents[3] / "shared" / "bench" / "peers.py"

_TORCH_SCRIPT = """
import sys, numpy as np, torch
sys.path.insert(0, sys.argv[1])
import peers
torch.manual_seed(0)
m = peers.ResNet15()
with torch.no_grad():
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5); mod.running_var.uniform_(0.5, 2.0)
            mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.3, 0.3)
m.eval()
x = torch.from_numpy(np.random.default_rng(0).normal(size=(4, 2, 32, 32)).astype(np.float32))
with torch.no_grad():
    out = m(x).numpy()
sd = {k: v.numpy() for k, v in m.state_dict().items() if v.dtype != torch.int64}
np.savez(sys.argv[2], x=x.numpy(), out=out, **sd)
"""


def _load_torch_peer(model: ResNet15, sd: dict) -> None:
    """Copy a peers.py ResNet15 state dict (torch layouts: OIHW kernels, [out, in] weights) in."""

    def conv(mod, name):
        mod.kernel[...] = jnp.asarray(sd[name + ".weight"].transpose(2, 3, 1, 0))

    def bn(mod, name):
        mod.scale[...], mod.bias[...] = sd[name + ".weight"], sd[name + ".bias"]
        mod.mean[...], mod.var[...] = sd[name + ".running_mean"], sd[name + ".running_var"]

    def linear(mod, name):
        mod.kernel[...], mod.bias[...] = sd[name + ".weight"].T, sd[name + ".bias"]

    conv(model.stem, "stem")
    for i, block in enumerate(model.blocks):
        p = f"blocks.{i}"
        bn(block.bn1, p + ".bn1"), conv(block.conv1, p + ".conv1")
        bn(block.bn2, p + ".bn2"), conv(block.conv2, p + ".conv2")
        linear(block.se.reduce, p + ".se.f.0"), linear(block.se.expand, p + ".se.f.2")
        if block.shortcut is not None:
            conv(block.shortcut, p + ".shortcut")
    bn(model.bn, "bn")
    linear(model.head, "fc")


@pytest.mark.slow
@pytest.mark.skipif(not (PEER.exists() and PEERS_PY.exists()), reason="no .peer venv / peers.py")
def test_peer_config_reproduces_the_pytorch_peer(tmp_path):
    """With the peer's own weights (and non-trivial BN statistics), eval-mode logits agree."""
    out = tmp_path / "peer.npz"
    subprocess.run([str(PEER), "-c", _TORCH_SCRIPT, str(PEERS_PY.parent), str(out)], check=True, timeout=120)
    sd = dict(np.load(out))
    model = _model("peer")
    _load_torch_peer(model, sd)
    model.eval()
    logits = _jitted(model)(jnp.asarray(sd["x"].transpose(0, 2, 3, 1)))  # NCHW -> NHWC
    np.testing.assert_allclose(logits, sd["out"], rtol=1e-4, atol=1e-6)
