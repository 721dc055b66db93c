"""The generic loop: sharded = single-device, NaN guard, early stopping, accumulation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxhep.errors import NonFiniteLossError
from jaxhep.mesh import make_mesh, shard_batch
from jaxhep.train import TrainConfig, Trainer, fit, load_best, predict_with
from tests.approx import approx
from tests.toy import ToyMLP, toy_data, toy_fns

CFG = TrainConfig(epochs=2, batch_size=64, steps_per_call=4, progress=False, patience=5)


def _params(trainer):
    model = trainer.model()
    return jax.tree.map(np.asarray, nnx.state(model))


def test_sharded_step_equals_single_device_step():
    assert len(jax.devices()) == 8, "conftest should give 8 fake CPU devices"
    x, y = toy_data(512)
    _, loss_fn, predict_fn, _ = toy_fns(x, y)
    chunk = {"x": x[:256].reshape(4, 64, 4), "y": y[:256].reshape(4, 64)}
    results = []
    # SGD, not Adam: the Linear bias in front of BatchNorm has a gradient that is zero up to
    # rounding, and Adam would blow that rounding noise up to +-lr, differently per layout.
    cfg = dataclasses.replace(CFG, optimizer="sgd", learning_rate=0.05)
    for n_dev in (8, 1):
        mesh = make_mesh(jax.devices()[:n_dev])
        trainer = Trainer(ToyMLP(), loss_fn, predict_fn, cfg, mesh, total_steps=100)
        metrics = trainer.train_chunk(shard_batch(chunk, mesh, 64, batch_axis=1), step=0)
        if n_dev == 8:
            leaf = jax.tree.leaves(trainer.state)[0]
            assert len(leaf.sharding.device_set) == 8  # replicated over the whole mesh
        results.append((np.asarray(metrics["loss"]), _params(trainer)))
    (loss8, p8), (loss1, p1) = results
    np.testing.assert_allclose(loss8, loss1, rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), p8, p1)


def test_fit_learns_and_keeps_best(tmp_path):
    x, y = toy_data(2048)
    read, loss_fn, predict_fn, validate = toy_fns(x, y)
    mesh = make_mesh()
    cfg = dataclasses.replace(CFG, epochs=4, learning_rate=3e-3)
    trainer = Trainer(ToyMLP(), loss_fn, predict_fn, cfg, mesh, total_steps=4 * 32)
    result = fit(trainer, read, 2048, validate, tmp_path / "ckpt")
    assert len(result.history) == 4
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.best_metric == max(h["val_accuracy"] for h in result.history)
    assert result.best_metric > 0.8
    # after fit the trainer holds the best checkpoint's state
    assert validate(trainer)["val_accuracy"] == approx(result.best_metric)
    assert (tmp_path / "ckpt" / "best").is_dir() and (tmp_path / "ckpt" / "latest").is_dir()


def test_load_best_gives_a_fresh_model_the_best_checkpoint(tmp_path):
    x, y = toy_data(1024)
    read, loss_fn, predict_fn, validate = toy_fns(x, y)
    cfg = dataclasses.replace(CFG, epochs=3, learning_rate=3e-3)
    trainer = Trainer(ToyMLP(), loss_fn, predict_fn, cfg, make_mesh(), total_steps=3 * 16)
    fit(trainer, read, 1024, validate, tmp_path / "ckpt")
    fresh = ToyMLP(seed=1)  # other initial weights, overwritten by the checkpoint's
    before = jax.tree.map(np.asarray, nnx.state(fresh, nnx.Param))
    loaded = load_best(fresh, cfg, tmp_path / "ckpt")
    best = jax.tree.map(np.asarray, nnx.state(trainer.model(), nnx.Param))
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, nnx.state(loaded, nnx.Param)), best)
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(best)))
    with pytest.raises(Exception, match="no best checkpoint"):
        load_best(ToyMLP(), cfg, tmp_path / "empty")


def test_early_stopping_with_patience(tmp_path):
    x, y = toy_data(1024)
    read, loss_fn, predict_fn, _ = toy_fns(x, y)
    cfg = dataclasses.replace(CFG, epochs=20, patience=2)
    trainer = Trainer(ToyMLP(), loss_fn, predict_fn, cfg, make_mesh(), total_steps=1000)
    result = fit(trainer, read, 1024, lambda t: {"val_accuracy": 0.5}, tmp_path / "ckpt")
    # epoch 1 sets the best; epochs 2 and 3 do not improve -> stop before epoch 4
    assert len(result.history) == 3 and result.stopped_early and result.best_epoch == 1


def test_nan_loss_stops_training_and_keeps_last_good_checkpoint(tmp_path):
    x, y = toy_data(1024)
    read, loss_fn, predict_fn, validate = toy_fns(x, y)
    x_bad = x.copy()
    calls = {"n": 0}

    def read_poisoned(idx):
        calls["n"] += 1
        batch = read(idx)
        if calls["n"] > 16:  # epoch 1 (4 chunks x 4 steps) is clean; epoch 2 gets a NaN input
            batch = {"x": np.full_like(batch["x"], np.nan), "y": batch["y"]}
        return batch

    del x_bad
    cfg = dataclasses.replace(CFG, epochs=3)
    trainer = Trainer(ToyMLP(), loss_fn, predict_fn, cfg, make_mesh(), total_steps=1000)
    with pytest.raises(NonFiniteLossError, match="NaN/inf at step 16.*Last good checkpoint"):
        fit(trainer, read_poisoned, 1024, validate, tmp_path / "ckpt")
    # the state was not touched by the bad step: all parameters are finite
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(_params(trainer)))
    steps = sorted(p.name for p in (tmp_path / "ckpt" / "latest").iterdir() if p.name.isdigit())
    assert steps == ["16"]


def test_gradient_accumulation_matches_big_batch():
    """Two accumulated half batches = one full batch for a model without batch statistics."""

    class Linear(nnx.Module):
        def __init__(self):
            self.w = nnx.Linear(4, 3, rngs=nnx.Rngs(0))

        def __call__(self, x, rngs=None):
            return self.w(x)

    x, y = toy_data(128)
    _, loss_fn, predict_fn, _ = toy_fns(x, y)
    mesh = make_mesh(jax.devices()[:1])
    big = Trainer(
        Linear(),
        loss_fn,
        predict_fn,
        dataclasses.replace(CFG, batch_size=128, steps_per_call=1, optimizer="sgd"),
        mesh,
        10,
    )
    big.train_chunk(shard_batch({"x": x[None], "y": y[None]}, mesh, 128, 1), 0)
    acc = Trainer(
        Linear(),
        loss_fn,
        predict_fn,
        dataclasses.replace(CFG, batch_size=64, steps_per_call=2, optimizer="sgd", grad_accum_steps=2),
        mesh,
        20,
    )
    acc.train_chunk(shard_batch({"x": x.reshape(2, 64, 4), "y": y.reshape(2, 64)}, mesh, 64, 1), 0)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), _params(big), _params(acc)
    )


def test_batch_not_divisible_by_devices_is_a_clear_error():
    from jaxhep.errors import DeviceError

    x, y = toy_data(256)
    read, loss_fn, predict_fn, validate = toy_fns(x, y)
    cfg = dataclasses.replace(CFG, batch_size=60)
    trainer = Trainer(ToyMLP(), loss_fn, predict_fn, cfg, make_mesh(), total_steps=10)
    with pytest.raises(DeviceError, match="not divisible by the 8 devices"):
        fit(trainer, read, 256, validate, "/tmp/unused-ckpt")
    assert jnp.isfinite(0.0)


def test_predict_with_equals_the_model_in_eval_mode_and_drops_padding():
    x, y = toy_data(300)
    _, _, predict_fn, _ = toy_fns(x, y)
    model = ToyMLP()
    out = predict_with(model, lambda m, b: {"logits": predict_fn(m, b)}, lambda i: {"x": x[i]}, 300, 128)
    assert out["logits"].shape == (300, 3)
    model.eval()
    np.testing.assert_allclose(out["logits"], np.asarray(model(jnp.asarray(x))), rtol=1e-5, atol=1e-6)


def test_warmup_longer_than_the_run_still_gives_a_schedule():
    from jaxhep.train import make_optimizer

    cfg = TrainConfig(schedule="warmup_cosine", warmup_steps=200, learning_rate=0.1)
    tx = make_optimizer(cfg, total_steps=3)  # optax alone raises on negative decay steps
    params = {"w": jnp.ones(2)}
    state = tx.init(params)
    for _ in range(3):
        updates, state = tx.update({"w": jnp.ones(2)}, state, params)
        assert np.all(np.isfinite(updates["w"]))


def test_the_trainer_takes_an_optax_transformation_and_fit_model_a_factory(tmp_path):
    import optax

    from jaxhep.train import fit_model, make_optimizer

    x, y = toy_data(512)
    read, loss_fn, predict_fn, validate = toy_fns(x, y)
    chunk = {"x": x[:256].reshape(4, 64, 4), "y": y[:256].reshape(4, 64)}
    mesh = make_mesh(jax.devices()[:1])
    frozen = Trainer(ToyMLP(), loss_fn, predict_fn, CFG, mesh, total_steps=10, tx=optax.sgd(0.0))
    frozen.train_chunk(shard_batch(chunk, mesh, 64, batch_axis=1), step=0)
    jax.tree.map(
        np.testing.assert_array_equal,
        jax.tree.map(np.asarray, nnx.state(frozen.model(), nnx.Param)),
        jax.tree.map(np.asarray, nnx.state(ToyMLP(), nnx.Param)),
    )
    # A clip that zeroes every update, passed through make_optimizer's `clip`: nothing moves either.
    seen = []

    def factory(cfg, total_steps):
        seen.append(total_steps)
        return make_optimizer(cfg, total_steps, clip=optax.scale(0.0))

    cfg = dataclasses.replace(CFG, epochs=2)
    model, result = fit_model(
        ToyMLP(), loss_fn, predict_fn, cfg, mesh, read, 512, validate, tmp_path / "c", optimizer=factory
    )
    assert seen == [2 * 8]  # 512 rows / 64 per step = 8 steps per epoch, 2 epochs
    jax.tree.map(
        np.testing.assert_array_equal,
        jax.tree.map(np.asarray, nnx.state(model, nnx.Param)),
        jax.tree.map(np.asarray, nnx.state(ToyMLP(), nnx.Param)),
    )
    # and load_best rebuilds that optimiser's state structure
    loaded = load_best(ToyMLP(seed=1), cfg, tmp_path / "c", optimizer=factory)
    jax.tree.map(
        np.testing.assert_array_equal,
        jax.tree.map(np.asarray, nnx.state(loaded, nnx.Param)),
        jax.tree.map(np.asarray, nnx.state(model, nnx.Param)),
    )


def test_fit_calls_each_callback_after_every_epoch_with_its_record(tmp_path):
    from jaxhep.checkpoint import Checkpoints

    x, y = toy_data(512)
    read, loss_fn, predict_fn, validate = toy_fns(x, y)
    cfg = dataclasses.replace(CFG, epochs=3)
    trainer = Trainer(ToyMLP(), loss_fn, predict_fn, cfg, make_mesh(), total_steps=3 * 8)
    calls = []

    def callback(record, got_trainer, checkpoints):
        checkpoints.wait()
        calls.append((record["epoch"], record["step"], checkpoints.latest_step(), got_trainer is trainer))
        assert isinstance(checkpoints, Checkpoints) and "val_accuracy" in record

    result = fit(trainer, read, 512, validate, tmp_path / "ckpt", callbacks=(callback,))
    # after epoch e's record, that epoch's checkpoint is the newest
    assert calls == [(e, 8 * e, 8 * e, True) for e in (1, 2, 3)]
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
