"""e/gamma training pieces: the loss against its formula, BatchNorm ResNet sharded = single device,
and finished model folders loaded back in their precision."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxhep import checkpoint, losses
from jaxhep.config import to_dict
from jaxhep.egamma.augment import ChannelStats
from jaxhep.egamma.config import LossConfig
from jaxhep.egamma.model import ResNetConfig, build_model
from jaxhep.egamma.training import load_trained, make_loss_fn, predict_fn
from jaxhep.mesh import make_mesh, shard_batch
from jaxhep.train import TrainConfig, Trainer

TINY = ResNetConfig(name="se", widths=(4, 8), blocks_per_stage=(1, 1))  # compiles in seconds


def _batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.normal(size=(n, 32, 32, 2)).astype(np.float32),
        "label": (np.arange(n) % 2).astype(np.int32),
    }


def test_loss_is_focal_loss_without_mixup_and_mixes_labels_with_it():
    model = build_model(TINY)
    model.eval()  # no dropout: the logits do not depend on the key
    batch = jax.tree.map(jnp.asarray, _batch())
    logits = model(batch["image"])
    y = batch["label"].astype(jnp.float32)
    plain = make_loss_fn(LossConfig(mixup_alpha=0.0))(model, batch, jax.random.PRNGKey(1))[0]
    np.testing.assert_allclose(
        float(plain), float(losses.sigmoid_focal_loss(logits, y, None, 2.0)), rtol=1e-6
    )
    # With mixup the loss is lam L(y) + (1 - lam) L(y[perm]) on the mixed images (jaxhep.mixup).
    key = jax.random.PRNGKey(2)
    mixed = make_loss_fn(LossConfig(mixup_alpha=0.4))(model, batch, key)[0]
    k_mix = jax.random.split(key)[0]
    k_lam, k_perm = jax.random.split(k_mix)
    lam = jax.random.beta(k_lam, 0.4, 0.4)
    perm = jax.random.permutation(k_perm, 16)
    mixed_logits = model(lam * batch["image"] + (1 - lam) * batch["image"][perm])
    want = lam * losses.sigmoid_focal_loss(mixed_logits, y, None, 2.0) + (
        1 - lam
    ) * losses.sigmoid_focal_loss(mixed_logits, y[perm], None, 2.0)
    np.testing.assert_allclose(float(mixed), float(want), rtol=1e-5)


def test_sharded_step_equals_single_device_step_with_batchnorm():
    """BatchNorm statistics over the global batch: 8 shards of 4 images = 1 device with 32."""
    chunk = jax.tree.map(lambda x: x[None], _batch(32))
    cfg = TrainConfig(batch_size=32, steps_per_call=1, optimizer="sgd", learning_rate=0.05, progress=False)
    loss_fn = make_loss_fn(LossConfig(mixup_alpha=0.4))
    out = []
    for n_dev in (8, 1):
        mesh = make_mesh(jax.devices()[:n_dev])
        trainer = Trainer(
            build_model(dataclasses.replace(TINY, dropout=0.0)), loss_fn, predict_fn, cfg, mesh, 10
        )
        metrics = trainer.train_chunk(shard_batch(chunk, mesh, 32, batch_axis=1), step=0)
        out.append((np.asarray(metrics["loss"]), jax.tree.map(np.asarray, nnx.state(trainer.model()))))
    (l8, s8), (l1, s1) = out
    np.testing.assert_allclose(l8, l1, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), s8, s1)


@pytest.mark.parametrize(
    ("meta", "dtype"),
    [
        ({"precision": "bfloat16"}, "bfloat16"),
        ({"model": {**to_dict(TINY), "dtype": "bfloat16"}}, "bfloat16"),  # written before train.precision
        ({}, "float32"),
    ],
)
def test_a_finished_model_folder_loads_in_the_precision_it_trained_in(tmp_path, meta, dtype):
    model = build_model(TINY, seed=3)
    stats = ChannelStats(np.array([1.0, 2.0], np.float32), np.array([3.0, 4.0], np.float32))
    record = {"name": "se", "model": to_dict(TINY), "stats": stats.to_dict(), **meta}
    checkpoint.save_model(tmp_path, model, record)
    trained = load_trained(tmp_path)
    assert trained.model.dtype == jnp.dtype(dtype) and trained.name == "se"
    np.testing.assert_array_equal(trained.stats.std, stats.std)
    jax.tree.map(
        np.testing.assert_array_equal, nnx.state(trained.model, nnx.Param), nnx.state(model, nnx.Param)
    )
