"""orbax checkpoints of a replicated nnx train state: round trip, latest-N, best, leftovers, weights."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from jaxhep.checkpoint import Checkpoints, abstract_like, load_model, load_weights, save_model, save_weights
from jaxhep.errors import InputError
from jaxhep.mesh import make_mesh
from jaxhep.train import TrainConfig, Trainer
from tests.toy import ToyMLP, toy_data, toy_fns

CFG = TrainConfig(epochs=2, batch_size=64, steps_per_call=4, progress=False)
LOOP = {
    "epoch": 2,
    "step": 32,
    "best": 0.875,
    "best_epoch": 2,
    "since_best": 0,
    "history": [{"epoch": 1, "loss": 0.5, "val_accuracy": 0.75}, {"epoch": 2, "loss": 0.25}],
}


@pytest.fixture(scope="module")
def trainer():
    """One trainer for the whole file (building one costs seconds of eager ops); tests don't change it."""
    x, y = toy_data(64)
    _, loss_fn, predict_fn, _ = toy_fns(x, y)
    return Trainer(ToyMLP(), loss_fn, predict_fn, CFG, make_mesh(), 100)


def _shifted(state, by):
    """The state with every leaf moved by `by` (ints too: the optimiser step count)."""
    # on the host, then put back with the leaf's sharding: no eager device op to compile
    return jax.tree.map(lambda x: jax.device_put(np.asarray(x) + np.asarray(by, x.dtype), x.sharding), state)


def _host(state):
    return [np.asarray(leaf) for leaf in jax.tree.leaves(state)]


def _assert_same(a, b):
    ha, hb = _host(a), _host(b)
    assert len(ha) == len(hb)
    for x, y in zip(ha, hb):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def test_save_restore_round_trip_of_an_nnx_train_state(tmp_path, trainer):
    state = _shifted(trainer.state, 3)
    data = {"next_index": 40, "nested": {"k": [1, 2]}}
    ckpts = Checkpoints(tmp_path / "ckpt")
    ckpts.save(32, state, LOOP, data, is_best=True)
    assert ckpts.latest_step() == 32
    ckpts.close()

    reopened = Checkpoints(tmp_path / "ckpt")  # as a resumed process would
    target = abstract_like(trainer.state)  # the current (other) values only give the layout
    restored, loop, data_back = reopened.restore(target)
    _assert_same(restored, state)
    assert jax.tree.structure(restored) == jax.tree.structure(trainer.state)
    replicated = jax.tree.leaves(trainer.state)[0].sharding
    for leaf in jax.tree.leaves(restored):  # laid out as asked: replicated over the 8 devices
        assert leaf.sharding.is_equivalent_to(replicated, leaf.ndim) and len(leaf.sharding.device_set) == 8
    assert loop == LOOP and data_back == data
    # the restored state is a train state again: it merges into the model + optimiser
    model, opt = nnx.merge(trainer.graphdef, restored)
    before = np.asarray(trainer.model().b.kernel[...])
    np.testing.assert_array_equal(np.asarray(model.b.kernel[...]), before + 3)
    assert int(opt.step[...]) == 3
    # the best manager holds the same save
    best, best_loop, _ = reopened.restore(target, "best")
    _assert_same(best, state)
    assert best_loop == LOOP
    reopened.close()


def test_no_data_state_comes_back_empty_and_a_missing_checkpoint_is_an_error(tmp_path, trainer):
    ckpts = Checkpoints(tmp_path / "ckpt")
    with pytest.raises(FileNotFoundError, match="no latest checkpoint"):
        ckpts.restore(abstract_like(trainer.state))
    ckpts.save(1, trainer.state, {"epoch": 1}, None, is_best=False)
    _, loop, data = ckpts.restore(abstract_like(trainer.state))
    assert loop == {"epoch": 1} and data == {}
    with pytest.raises(FileNotFoundError, match="no best checkpoint"):
        ckpts.restore(abstract_like(trainer.state), "best")
    ckpts.close()


def test_latest_keeps_n_and_best_keeps_the_best_one(tmp_path, trainer):
    ckpts = Checkpoints(tmp_path / "ckpt", keep=2)
    best_steps = {2, 3}  # the epochs whose validation improved
    for step in range(1, 6):
        ckpts.save(
            step, _shifted(trainer.state, step), {"epoch": step}, {"i": step}, is_best=step in best_steps
        )
    ckpts.wait()  # saves are asynchronous: the last one may still be in flight
    assert ckpts.latest.all_steps() == [4, 5]
    on_disk = sorted(p.name for p in (tmp_path / "ckpt" / "latest").iterdir())
    assert on_disk == ["4", "5"]
    assert sorted(p.name for p in (tmp_path / "ckpt" / "best").iterdir()) == ["3"]

    abstract = abstract_like(trainer.state)
    latest, loop, data = ckpts.restore(abstract)
    _assert_same(latest, _shifted(trainer.state, 5))
    assert loop == {"epoch": 5} and data == {"i": 5}
    best, loop, data = ckpts.restore(abstract, "best")
    _assert_same(best, _shifted(trainer.state, 3))
    assert loop == {"epoch": 3} and data == {"i": 3}
    older, loop, _ = ckpts.restore(abstract, step=4)
    _assert_same(older, _shifted(trainer.state, 4))
    assert loop == {"epoch": 4}
    ckpts.close()


def test_a_killed_save_is_not_taken_as_a_checkpoint(tmp_path, trainer):
    ckpts = Checkpoints(tmp_path / "ckpt")
    ckpts.save(4, _shifted(trainer.state, 4), {"epoch": 4}, {}, is_best=False)
    ckpts.close()
    # what a process killed in the middle of saving step 5 leaves behind
    tmp = tmp_path / "ckpt" / "latest" / "5.orbax-checkpoint-tmp-1234567"
    (tmp / "state").mkdir(parents=True)
    (tmp / "state" / "junk").write_bytes(b"\x00half written")
    resumed = Checkpoints(tmp_path / "ckpt")
    assert resumed.latest_step() == 4
    assert resumed.latest.all_steps() == [4]
    state, loop, _ = resumed.restore(abstract_like(trainer.state))
    _assert_same(state, _shifted(trainer.state, 4))
    assert loop == {"epoch": 4}
    # saving step 5 for real afterwards works and becomes the latest
    resumed.save(5, _shifted(trainer.state, 5), {"epoch": 5}, {}, is_best=False)
    assert resumed.latest_step() == 5
    # cleanup_tmp_directories: the leftover is removed (in the background from the start; a
    # save waits for that to finish)
    assert not tmp.exists()
    _assert_same(resumed.restore(abstract_like(trainer.state))[0], _shifted(trainer.state, 5))
    resumed.close()


def test_only_a_killed_save_means_no_checkpoint(tmp_path):
    tmp = tmp_path / "ckpt" / "latest" / "1.orbax-checkpoint-tmp-99"
    tmp.mkdir(parents=True)
    (tmp / "junk").write_text("x")
    ckpts = Checkpoints(tmp_path / "ckpt")
    assert ckpts.latest_step() is None
    ckpts.close()


def test_save_and_load_weights_round_trip(tmp_path, trainer):
    model = trainer.model()
    params = nnx.state(model)
    shifted = _shifted(params, 1)  # values no fresh model has
    path = tmp_path / "weights" / "dnn"
    save_weights(path, shifted)
    assert path.is_dir()
    save_weights(path, shifted)  # overwriting an export is allowed (force)
    # read into another layout than the one saved: one device instead of replicated over 8
    one = jax.sharding.SingleDeviceSharding(jax.devices()[3])
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=one), params)
    loaded = load_weights(path, target)
    assert jax.tree.structure(loaded) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(shifted)):
        assert a.sharding == one and a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # they make a model again, with the saved weights
    back = nnx.merge(nnx.graphdef(model), loaded)
    np.testing.assert_array_equal(np.asarray(back.a.bias[...]), np.asarray(model.a.bias[...]) + 1)


def test_load_weights_from_a_missing_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no saved weights") as info:
        load_weights(tmp_path / "nothing", {})
    assert info.value.path == str((tmp_path / "nothing").absolute())


def test_a_saved_model_folder_loads_after_the_run_is_moved(tmp_path, trainer):
    import shutil

    shifted = nnx.merge(nnx.graphdef(trainer.model()), _shifted(nnx.state(trainer.model()), 1))
    save_model(tmp_path / "runs" / "a" / "models" / "mlp", shifted, {"name": "mlp"})
    shutil.move(tmp_path / "runs", tmp_path / "elsewhere")  # e.g. a run copied back from a GPU node
    model, meta = load_model(tmp_path / "elsewhere" / "a" / "models" / "mlp", lambda m: ToyMLP())
    assert meta["name"] == "mlp" and meta["weights"] == "weights"
    _assert_same(nnx.state(model), nnx.state(shifted))
