"""Resuming the generic loop after what goes wrong on real machines: damaged checkpoints, a kill
between two saves, Ctrl-C / SIGTERM mid-epoch, a diverging loss. Each resumed training must end
where an uninterrupted one ends, with each epoch once in metrics.jsonl."""

import dataclasses
import os
import shutil
import signal

import numpy as np
import pytest

from jaxhep import interrupt
from jaxhep.errors import InputError, NonFiniteLossError
from jaxhep.mesh import make_mesh
from jaxhep.runs import Run
from jaxhep.train import TrainConfig, Trainer, fit
from tests.toy import ToyMLP, toy_data, toy_fns

# 1024 rows, batch 64, 4 steps a call: 16 steps = 4 compiled calls an epoch.
CFG = TrainConfig(epochs=3, batch_size=64, steps_per_call=4, progress=False, patience=5, learning_rate=3e-3)
N = 1024


def _fit(ckpt, run=None, cfg=CFG, read=None):
    x, y = toy_data(N)
    toy_read, loss_fn, predict_fn, validate = toy_fns(x, y)
    trainer = Trainer(ToyMLP(), loss_fn, predict_fn, cfg, make_mesh(), total_steps=cfg.epochs * 16)
    return fit(trainer, read or toy_read, N, validate, ckpt, run=run)


def _losses(history):
    return [(h["epoch"], h["loss"], h["val_accuracy"]) for h in history]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted training: what every resumed one must reproduce."""
    return _losses(_fit(tmp_path_factory.mktemp("straight") / "ckpt").history)


def _damage_truncate(step_dir):
    biggest = max((p for p in (step_dir / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 2])


def _damage_overwrite(step_dir):
    for p in (step_dir / "state").rglob("*"):
        if p.is_file():
            p.write_bytes(os.urandom(p.stat().st_size or 64))


def _damage_loop_metadata(step_dir):
    shutil.rmtree(step_dir / "loop") if (step_dir / "loop").is_dir() else None


def _damage_state_folder(step_dir):
    shutil.rmtree(step_dir / "state")


@pytest.mark.parametrize(
    "damage", [_damage_truncate, _damage_overwrite, _damage_loop_metadata, _damage_state_folder]
)
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, straight, damage, capsys):
    run = Run.create(tmp_path / "runs", "toy", {"toy": {}})
    ckpt = run.path / "ckpt"
    _fit(ckpt, run, dataclasses.replace(CFG, epochs=2))
    newest = max((ckpt / "latest").iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else -1)
    damage(newest)
    capsys.readouterr()
    result = _fit(ckpt, run)
    err = capsys.readouterr().err
    assert f"checkpoint step {newest.name}" in err and "moved aside" in err, err
    assert result.resumed_from_epoch == 1  # epoch 2 redone from the checkpoint of epoch 1
    assert _losses(result.history) == straight
    assert [r["epoch"] for r in run.read_log()] == [1, 2, 3]  # each epoch once
    assert (ckpt / "set_aside").is_dir()  # the damaged one is kept, out of the way


def test_no_checkpoint_that_restores_is_one_clear_error(tmp_path):
    ckpt = tmp_path / "ckpt"
    _fit(ckpt, cfg=dataclasses.replace(CFG, epochs=1))
    for step_dir in (ckpt / "latest").iterdir():
        if step_dir.name.isdigit():
            _damage_state_folder(step_dir)
    with pytest.raises(InputError, match="no checkpoint here can be restored") as info:
        _fit(ckpt)
    assert str(ckpt / "latest") in str(info.value) and "\n" not in str(info.value)


def test_a_kill_between_the_latest_and_the_best_save_keeps_the_best(tmp_path, straight):
    ckpt = tmp_path / "ckpt"
    first = _fit(ckpt, cfg=dataclasses.replace(CFG, epochs=2))
    assert first.best_epoch == 2  # the second epoch improved: its best save is the one cut short
    best_step = first.history[1]["step"]
    shutil.rmtree(ckpt / "best" / str(best_step))
    result = _fit(ckpt)
    assert _losses(result.history) == straight
    steps = sorted(int(p.name) for p in (ckpt / "best").iterdir() if p.name.isdigit())
    assert steps[-1] == result.history[result.best_epoch - 1]["step"] >= best_step


# Epoch 1 asks 5 times (4 calls, then its end): the 7th is after 2 chunks of epoch 2, the 9th after
# its last chunk, where the loop finishes the epoch (validation, checkpoint) and stops then.
@pytest.mark.parametrize("at_call", [7, 9])
def test_a_stop_request_mid_epoch_saves_that_step_and_resume_ends_the_same(
    tmp_path, straight, monkeypatch, at_call
):
    """The loop asks `interrupt.requested()` after each compiled call; from the `at_call`-th time on
    it says SIGTERM (as after a real signal: inside training the handler only sets that flag)."""
    calls = {"n": 0}

    def requested():
        calls["n"] += 1
        return "SIGTERM" if calls["n"] >= at_call else None

    run = Run.create(tmp_path / "runs", "toy", {"toy": {}})
    ckpt = run.path / "ckpt"
    monkeypatch.setattr(interrupt, "requested", requested)
    with pytest.raises(interrupt.Interrupted) as info:
        _fit(ckpt, run)
    monkeypatch.undo()
    assert info.value.signal == "SIGTERM"
    expected = "2 of 4 chunks of epoch 2" if at_call == 7 else "the end of epoch 2"
    assert expected in info.value.saved, info.value.saved
    result = _fit(ckpt, run)
    assert _losses(result.history) == straight
    assert [r["epoch"] for r in run.read_log()] == [1, 2, 3]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_inside_training_is_deferred_to_a_safe_point(sig):
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    interrupt.install()
    try:
        with interrupt.safe_points():
            os.kill(os.getpid(), sig)
            for _ in range(1000):  # the handler runs between bytecodes: it must not raise here
                pass
            assert interrupt.requested() == signal.Signals(sig).name
            with pytest.raises(interrupt.Interrupted):  # a second signal does not wait
                os.kill(os.getpid(), sig)
                for _ in range(1000):
                    pass
    finally:
        interrupt.reset()
        for s, handler in previous.items():
            signal.signal(s, handler)


def test_a_signal_outside_training_stops_at_once():
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    interrupt.install()
    try:
        with pytest.raises(interrupt.Interrupted, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def test_a_diverging_loss_stops_training_with_a_clear_error(tmp_path):
    # SGD at a learning rate of 1e3 sends the loss to ~1e4 and beyond within the first epoch.
    cfg = dataclasses.replace(CFG, optimizer="sgd", learning_rate=1e3, grad_clip_norm=None)
    with pytest.raises(NonFiniteLossError, match=r"diverged|NaN/inf") as info:
        _fit(tmp_path / "ckpt", cfg=cfg)
    assert "learning rate" in str(info.value)


def test_training_that_learns_is_not_called_diverged(straight):
    losses = [loss for _, loss, _ in straight]
    assert losses[-1] < losses[0] and np.isfinite(losses).all()


def test_a_damaged_best_checkpoint_is_read_from_latest_or_named(tmp_path):
    import jax.numpy as jnp

    from jaxhep.checkpoint import Checkpoints, abstract_like

    state = {"w": jnp.arange(3.0)}
    ckpts = Checkpoints(tmp_path / "ckpt", keep=1)
    ckpts.save(1, state, {"epoch": 1}, None, is_best=True)
    ckpts.wait()
    _damage_state_folder(tmp_path / "ckpt" / "best" / "1")
    restored, loop, _ = ckpts.restore_best(abstract_like(state))  # latest/ still holds step 1
    np.testing.assert_array_equal(restored["w"], state["w"]) and loop["epoch"] == 1
    ckpts.save(2, state, {"epoch": 2}, None, is_best=False)  # keep=1: step 1 leaves latest/
    ckpts.wait()
    with pytest.raises(InputError, match="the best checkpoint does not restore") as info:
        ckpts.restore_best(abstract_like(state))
    assert str(tmp_path / "ckpt" / "best" / "1") in str(info.value)
    ckpts.close()
