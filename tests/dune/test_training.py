"""DUNE training: gradients clipped per ensemble member (one member's huge gradient leaves the
other's update alone), the optimiser state the memory estimate and `load_best` assume."""

from types import SimpleNamespace

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from jaxhep.dune import dataset, training
from jaxhep.dune.config import DataConfig, DuneConfig, NetConfig
from jaxhep.dune.models import ClassifierConfig
from jaxhep.mesh import make_mesh
from jaxhep.runs import Run
from jaxhep.train import TrainConfig, make_optimizer

N_EVENTS = 40
BUILD = training.build  # the real one (the tests patch it)
CLASSIFIER = ClassifierConfig(
    "mt_images", depth=1, base_filters=4, max_filters=4, kernel=3, attention=False, dense=(16,), dropout=0.0
)
CFG = DuneConfig(
    task="maintrack",
    net=NetConfig(maintrack=CLASSIFIER, members=2, bootstrap="none"),
    # SGD: an update proportional to the gradient, so a clip's scale shows in it (Adam divides it out)
    train=TrainConfig(
        epochs=1,
        batch_size=8,
        steps_per_call=2,
        optimizer="sgd",
        learning_rate=1e-2,
        grad_clip_norm=1.0,
        monitor="val_auc",
        precision="float32",
        progress=False,
    ),
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Main-track clusters in the NPZ layout: random sparse images, labels, one cluster per event."""
    rng = np.random.default_rng(0)
    images = (rng.random((N_EVENTS, 128, 16)) * (rng.random((N_EVENTS, 128, 16)) < 0.1)).astype(np.float32)
    path = tmp_path_factory.mktemp("dune_training") / "clusters.npz"
    np.savez(
        path,
        mt_images=images,
        mt_label=rng.integers(0, 2, N_EVENTS).astype(np.int32),
        mt_event=np.arange(N_EVENTS, dtype=np.int32),
    )
    return dataset.load("maintrack", DataConfig(path=str(path), val_fraction=0.2, test_fraction=0.2), ".")


def _member_params(model, m: int) -> list[np.ndarray]:
    return [np.asarray(x[m]) for x in jax.tree.leaves(nnx.state(model.members, nnx.Param))]


def _train(tmp_path, name, data, monkeypatch, huge: bool):
    """train_model on `data` from one initialisation; member 1's output layer x 1e4 when `huge`
    (its gradient then comes out ~1e4 times larger than member 0's; 16 hidden units, so that
    none of the members has a dead ReLU layer, whose output the scale would not reach)."""

    def build(*args, **kwargs):
        model = BUILD(*args, **kwargs)
        if huge:
            kernel = model.members.head.out.kernel
            kernel[...] = kernel[...].at[1].multiply(1e4)
        return model

    monkeypatch.setattr(training, "build", build)
    run = Run.create(tmp_path / name, "dune", {})
    runtime = SimpleNamespace(mesh=make_mesh(jax.devices()[:1]))
    trained = training.train_model("classifier", CFG, data, run, runtime)
    assert (trained.history[0]["grad_norm"] > 100) == huge  # member 1's gradient, when huge, dominates
    return trained.model


def test_one_members_huge_gradient_does_not_shrink_the_others_update(tmp_path, data, monkeypatch):
    start = _member_params(BUILD("maintrack", "classifier", CFG.net, "float32", 0), 0)
    plain = _member_params(_train(tmp_path, "plain", data, monkeypatch, huge=False), 0)
    huge = _member_params(_train(tmp_path, "huge", data, monkeypatch, huge=True), 0)
    moved = max(np.abs(a - b).max() for a, b in zip(plain, start))
    assert moved > 1e-4  # member 0 trained
    for a, b in zip(plain, huge):  # and exactly as without member 1's huge gradient
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # The test can fail: with one global norm over both members, member 0 barely moves.
    monkeypatch.setattr(training, "optimizer", make_optimizer)
    coupled = _member_params(_train(tmp_path, "coupled", data, monkeypatch, huge=True), 0)
    assert max(np.abs(a - b).max() for a, b in zip(coupled, start)) < 0.01 * moved


def test_member_clipping_keeps_the_optimiser_state_of_the_shared_one():
    """The search's memory estimate and `load_best` build `make_optimizer`'s state structure (a
    global-norm clip): the per-member clip's is the same, so both hold for DUNE ensembles."""
    params = {"w": np.zeros((2, 3, 4), np.float32), "b": np.zeros((2, 4), np.float32)}
    for clip in (1.0, None):
        cfg = TrainConfig(optimizer="adamw", grad_clip_norm=clip, schedule="warmup_cosine", warmup_steps=2)
        ours, shared = training.optimizer(cfg, 10).init(params), make_optimizer(cfg, 10).init(params)
        assert jax.tree.structure(ours) == jax.tree.structure(shared)
    tx = training.optimizer(TrainConfig(optimizer="sgd", learning_rate=1.0, grad_clip_norm=1.0), 10)
    grads = {"w": np.ones((2, 3, 4), np.float32), "b": np.ones((2, 4), np.float32)}
    grads["w"][1] *= 1e6
    updates, _ = tx.update(grads, tx.init(params), params)
    norms = [float(optax.global_norm({k: v[m] for k, v in updates.items()})) for m in range(2)]
    np.testing.assert_allclose(norms[0], norms[1], rtol=1e-5)  # each member clipped to norm 1 on its own
