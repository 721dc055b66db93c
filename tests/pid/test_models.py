"""Shapes of the PID networks under jit (chex), masking semantics, prior correction."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxhep.pid.models import FSEAttention, ModelConfig, build_model
from jaxhep.pid.species import FEATURES, GROUPS


def _batch(b=16, seed=0, mask=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(b, len(FEATURES))).astype(np.float32)
    m = np.ones((b, len(GROUPS)), np.float32) if mask is None else mask
    return {"x": jnp.asarray(x), "group_mask": jnp.asarray(m)}


@pytest.mark.parametrize("name", ["simple", "dnn", "fse"])
@pytest.mark.parametrize("with_masks", [False, True])
def test_logits_shape_under_jit(name, with_masks):
    model = build_model(
        ModelConfig(
            name=name, embed_dim=16, heads=4, head_hidden=(16, 8), hidden=(32, 16) if name != "fse" else ()
        )
    )
    mask = None
    if with_masks:
        mask = np.ones((16, 4), np.float32)
        mask[::2, 1] = 0  # no TOF
        mask[::3, 0] = 0  # no TPC
    batch = _batch(mask=mask)
    graphdef, state = nnx.split(model)

    @jax.jit
    def train_logits(state, batch, key):
        m = nnx.merge(graphdef, state)
        m.train()
        return m(batch, rngs=nnx.Rngs(dropout=key))

    @jax.jit
    def eval_logits(state, batch):
        m = nnx.merge(graphdef, state)
        m.eval()
        return m(batch)

    for out in (train_logits(state, batch, jax.random.PRNGKey(1)), eval_logits(state, batch)):
        chex.assert_shape(out, (16, 4))
        chex.assert_type(out, jnp.float32)
        chex.assert_tree_all_finite(out)


def test_seed_architectures_have_the_seed_widths():
    simple = build_model(ModelConfig(name="simple"))
    assert [layer.out_features for layer in simple.layers] == [512, 256, 128, 64]
    dnn = build_model(ModelConfig(name="dnn"))
    assert [layer.out_features for layer in dnn.layers] == [1024, 512, 256, 128, 64]
    assert len(dnn.norms) == 4  # BatchNorm on every layer but the 64-wide one


def test_fse_ignores_features_of_masked_groups():
    """A missing detector's values must not reach the output, whatever garbage they hold."""
    model = FSEAttention(ModelConfig(embed_dim=16, heads=2, head_hidden=(16, 8)), rngs=nnx.Rngs(0))
    model.eval()
    mask = np.ones((8, 4), np.float32)
    mask[:, 1] = 0  # TOF absent
    batch = _batch(8, mask=mask)
    tof_cols = [FEATURES.index(c) for c in GROUPS["tof"]]
    x2 = np.asarray(batch["x"]).copy()
    x2[:, tof_cols] = 1e3
    out1 = model(batch)
    out2 = model({"x": jnp.asarray(x2), "group_mask": batch["group_mask"]})
    np.testing.assert_allclose(out1, out2, rtol=1e-5, atol=1e-5)
    # ...and with TOF present the same change does matter
    full = _batch(8)
    x3 = np.asarray(full["x"]).copy()
    x3[:, tof_cols] = 1e3
    assert not np.allclose(model(full), model({"x": jnp.asarray(x3), "group_mask": full["group_mask"]}))


def test_bf16_compute_gives_float32_logits():
    cfg = ModelConfig(name="fse", embed_dim=16, heads=2, head_hidden=(16, 8))
    model = build_model(cfg, precision="bfloat16")
    model.eval()
    out = model(_batch(4))
    chex.assert_type(out, jnp.float32)
    chex.assert_tree_all_finite(out)
