"""Bootstrap ensembles: stacked members, vmapped loss = sum of member losses, bootstrap diversity,
the shared Trainer, Poisson(1) weights, member-wise clipping, combination of member outputs."""

import dataclasses
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxhep.dune import ensemble as ens
from jaxhep.dune import models
from jaxhep.dune.models import DirectionConfig, SinglePlaneCNN
from jaxhep.mesh import make_mesh, shard_batch
from jaxhep.train import TrainConfig, Trainer

B, M = 8, 2


MEMBER = DirectionConfig(
    depths=(1, 1, 1), base_filters=4, max_filters=8, kernel=3, attention_kernel=3, dense=(8,), dropout=0.0
)


def make_member(rngs):
    return SinglePlaneCNN(MEMBER, rngs=rngs)


def _data(n=B, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 128, 16), dtype=np.float32) * (rng.random((n, 128, 16)) < 0.2)
    d = rng.normal(size=(n, 3)).astype(np.float32)
    return {
        "images_x": x,
        "direction": d / np.linalg.norm(d, axis=1, keepdims=True),
        "row": np.arange(n, dtype=np.int32),
    }


def _members_params(model):
    return jax.tree.leaves(nnx.state(model.members, nnx.Param))


def _spread(leaves):
    """Largest difference of any member's parameter from member 0's."""
    return max(float(np.abs(x - x[:1]).max()) for x in map(np.asarray, leaves))


def test_members_start_different():
    model = ens.BootstrapEnsemble(make_member, M, seed=0)
    for leaf in _members_params(model):
        assert leaf.shape[0] == M
    kernel = np.asarray(model.members.branches[0].convs[0].kernel)
    assert not np.allclose(kernel[0], kernel[1])
    shared = ens.BootstrapEnsemble(make_member, M, seed=0, shared_init=True)
    assert _spread(_members_params(shared)) == 0.0
    np.testing.assert_array_equal(shared.members.branches[0].convs[0].kernel[1], kernel[0])


@pytest.mark.parametrize("n_members", [1, 2, 7])
def test_ensemble_size_is_configurable(n_members):
    model = nnx.eval_shape(lambda: ens.BootstrapEnsemble(make_member, n_members, seed=3))
    assert model.n_members == n_members
    assert {leaf.shape[0] for leaf in _members_params(model)} == {n_members}
    with pytest.raises(ValueError, match="n_members"):
        ens.BootstrapEnsemble(make_member, 0)
    with pytest.raises(ValueError, match="strategy"):
        ens.BootstrapEnsemble(make_member, 2, strategy="pmap")
    assert model.resolved_strategy() == "unroll"


def test_ensemble_loss_equals_the_sum_of_member_losses():
    """The ensemble loss (one program: members vmapped or in a loop) against each member
    run on its own, in train mode (BatchNorm on batch statistics). The members' parameters are
    disjoint, so equal losses also mean d(sum_m L_m) / d theta_m = dL_m / d theta_m: one update trains
    each member on its own loss. Every strategy also moves the BatchNorm statistics alike."""
    batch = jax.tree.map(jnp.asarray, _data())
    loss_fn = nnx.jit(ens.make_loss_fn(ens.direction_loss("angular")))
    weights = ens.bootstrap_weights(jax.random.PRNGKey(1), M, batch["row"])  # the ensemble's seed
    member_loss = ens.direction_loss("angular")
    single = nnx.jit(lambda member, batch, w: member_loss(member(batch), batch, w))
    stats = {}
    for strategy in ("vmap", "unroll"):
        model = ens.BootstrapEnsemble(make_member, M, seed=1, strategy=strategy)
        model.train()
        per_member = [float(single(model.member(m), batch, weights[m])) for m in range(M)]
        assert len(set(np.round(per_member, 6))) == M  # the members predict differently
        loss, aux = loss_fn(model, batch, jax.random.PRNGKey(5))
        np.testing.assert_allclose(loss, sum(per_member), rtol=1e-5)
        np.testing.assert_allclose(aux["member_loss"], np.mean(per_member), rtol=1e-5)
        np.testing.assert_allclose(aux["member_loss_spread"], np.ptp(per_member), rtol=1e-4, atol=1e-6)
        stats[strategy] = jax.tree.map(np.asarray, nnx.state(model, nnx.BatchStat))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), *stats.values())
    assert _spread(jax.tree.leaves(stats["unroll"])) > 0  # per-member statistics


def test_bootstrap_alone_makes_members_differ_with_the_shared_trainer():
    """Members from one shared initialisation, no dropout, trained by the shared Trainer on one batch:
    only their bootstrap weights differ, and so do their predictions afterwards."""
    steps, data = 2, _data()
    model = ens.BootstrapEnsemble(make_member, M, seed=2, shared_init=True)  # auto: unroll on a CPU
    cfg = TrainConfig(batch_size=B, steps_per_call=steps, learning_rate=3e-2, progress=False)
    mesh = make_mesh(jax.devices()[:1])
    loss_fn = ens.make_loss_fn(ens.direction_loss("cosine"), bootstrap="fixed")
    trainer = Trainer(model, loss_fn, ens.predict_directions, cfg, mesh, total_steps=steps)
    read = ens.WithRowIndex(lambda idx: {k: v[idx] for k, v in data.items() if k != "row"})

    def predict():
        out = trainer.predict_rows(read, B, batch_size=B)
        assert out["members"].shape == (B, M, 3)  # rows first, so predict_rows can cut the padding
        np.testing.assert_allclose(np.linalg.norm(out["direction"], axis=-1), 1.0, atol=1e-5)
        return out["members"]

    before = predict()
    np.testing.assert_array_equal(before[:, 0], before[:, 1])
    chunk = jax.tree.map(lambda x: np.stack([x] * steps), read(np.arange(B)))  # same batch every step
    metrics = trainer.train_chunk(shard_batch(chunk, mesh, B, batch_axis=1), step=0)
    assert np.isfinite(np.asarray(metrics["loss"])).all()
    assert float(metrics["member_loss_spread"][0]) > 0  # different weights, different losses
    after = predict()
    assert np.abs(after[:, 0] - after[:, 1]).max() > 1e-3
    assert _spread(_members_params(trainer.model())) > 1e-3


def test_fixed_bootstrap_needs_row_indices():
    model = nnx.eval_shape(lambda: ens.BootstrapEnsemble(make_member, 2))  # never runs
    batch = {k: v for k, v in _data().items() if k != "row"}
    with pytest.raises(KeyError, match="WithRowIndex"):
        ens.make_loss_fn(ens.direction_loss())(model, batch, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="bootstrap"):
        ens.make_loss_fn(ens.direction_loss(), bootstrap="jackknife")
    read = pickle.loads(pickle.dumps(ens.WithRowIndex(_Reader())))
    np.testing.assert_array_equal(read(np.array([4, 1]))["row"], [4, 1])


class _Reader:
    def __call__(self, idx):
        return {"x": np.asarray(idx, np.float32)}


def test_bootstrap_weights_are_poisson_and_fixed_per_row():
    key = jax.random.PRNGKey(0)
    rows = np.arange(20000)
    weights = jax.jit(ens.bootstrap_weights, static_argnums=1)
    w = np.asarray(weights(key, 4, rows))
    assert w.shape == (4, 20000)
    np.testing.assert_allclose(w.mean(axis=1), 1.0, atol=0.03)  # Poisson(1): mean 1, var 1
    np.testing.assert_allclose(w.var(axis=1), 1.0, atol=0.05)
    np.testing.assert_allclose((w == 0).mean(axis=1), np.exp(-1), atol=0.01)  # out of bag: 37 %
    assert not np.array_equal(w[0], w[1])
    # Fixed resample: a row's weight does not depend on the batch it comes in.
    perm = np.random.default_rng(0).permutation(rows.size)
    np.testing.assert_array_equal(np.asarray(weights(key, 4, rows[perm])), w[:, perm])
    online = np.asarray(jax.jit(ens.online_bootstrap_weights, static_argnums=(1, 2))(key, 4, 20000))
    np.testing.assert_allclose(online.mean(), 1.0, atol=0.02)


def test_clip_by_member_norm_equals_clipping_each_member():
    rng = np.random.default_rng(0)
    grads = {"a": jnp.asarray(rng.normal(size=(3, 5, 4))), "b": jnp.asarray(rng.normal(size=(3, 7)))}
    grads["a"] = grads["a"].at[1].multiply(100.0)  # member 1 has a large gradient
    clipped, _ = jax.jit(ens.clip_by_member_norm(1.0).update)(grads, optax.EmptyState())
    reference = jax.jit(optax.clip_by_global_norm(1.0).update)
    for m in range(3):
        expected, _ = reference({k: v[m] for k, v in grads.items()}, optax.EmptyState())
        for k in grads:
            np.testing.assert_allclose(clipped[k][m], expected[k], rtol=1e-6)
    np.testing.assert_allclose(clipped["b"][0], grads["b"][0] / max(1.0, _norm(grads, 0)), rtol=1e-6)


def _norm(grads, m):
    return float(np.sqrt(sum((np.asarray(v[m]) ** 2).sum() for v in grads.values())))


def test_combining_members():
    up = jnp.array([0.0, 0.0, 1.0])
    tilted = jnp.array([0.0, np.sin(0.1), np.cos(0.1)])
    combine = jax.jit(ens.combine_directions)
    # vector head: members [M, B, 3]
    same = combine(jnp.stack([up, up])[:, None])  # [M=2, B=1, 3]
    np.testing.assert_allclose(same["direction"][0], up, atol=1e-6)
    np.testing.assert_allclose([same["sense_agreement"][0], same["spread_deg"][0]], [1.0, 0.0], atol=1e-3)
    pair = combine(jnp.stack([up, tilted])[:, None])
    np.testing.assert_allclose(pair["direction"][0], [0.0, np.sin(0.05), np.cos(0.05)], atol=1e-6)
    np.testing.assert_allclose(pair["spread_deg"][0], np.degrees(0.05), rtol=1e-3)  # each 0.05 rad off
    flip = combine(jnp.stack([up, -up])[:, None])  # head-tail split: the line survives, the sense is 50/50
    np.testing.assert_allclose(np.abs(flip["direction"][0]), up, atol=1e-6)
    np.testing.assert_allclose([flip["sense_agreement"][0], flip["spread_deg"][0]], [0.5, 180 / np.sqrt(2)])
    # axis_vector head: [M, B, 6]. Axes +z and -z, vectors on the +z side, tilted +-y: each member's own
    # direction is its bisector, 18.4 degrees off z; the ensemble's: mean vector +z, line +z.
    members = jnp.array([[[0.0, 0.0, 1.0, 0.0, 0.6, 0.8]], [[0.0, 0.0, -1.0, 0.0, -0.6, 0.8]]])
    both = combine(members)
    np.testing.assert_allclose(both["direction"][0], up, atol=1e-6)
    own = np.array([[0, 0.6, 1.8], [0, -0.6, 1.8]]) / np.hypot(0.6, 1.8)
    np.testing.assert_allclose(both["members"][0], own, atol=1e-6)
    np.testing.assert_allclose(both["sense_agreement"][0], 1.0)
    np.testing.assert_allclose(both["spread_deg"][0], np.degrees(np.arctan(1 / 3)), rtol=1e-4)
    # the sense follows the mean vector: (0, 0, 1 - 0.8 - 0.8) / 3 points to -z
    split = jnp.array([[[0, 0, 1.0, 0, 0, 1.0]], [[0, 0, 1.0, 0.6, 0, -0.8]], [[0, 0, 1.0, -0.6, 0, -0.8]]])
    voted = combine(split)
    np.testing.assert_allclose(voted["direction"][0], -up, atol=1e-6)
    np.testing.assert_allclose(voted["sense_agreement"][0], 2 / 3, atol=1e-6)
    # axis_sense head: [M, B, 4]. Member 0: axis +z, 88 % along it; member 1: axis -z, 73 % along
    # it, i.e. 27 % along +z. Mean P(+z) = 0.575: the ensemble goes +z; members' own: +z and -z.
    sensed = jnp.array([[[0.0, 0.0, 1.0, 2.0]], [[0.0, 0.0, -1.0, 1.0]]])
    p_up = (1 / (1 + np.exp(-2.0)) + 1 - 1 / (1 + np.exp(-1.0))) / 2
    line = jnp.array([[0.0, 0.0, 1.0]])
    np.testing.assert_allclose(models.sense_along(sensed, line), [p_up], rtol=1e-6)
    np.testing.assert_allclose(models.sense_along(sensed, -line), [1 - p_up], rtol=1e-6)
    voted = combine(sensed)
    np.testing.assert_allclose(voted["direction"][0], up, atol=1e-6)
    np.testing.assert_allclose(voted["members"][0], [up, -up], atol=1e-6)
    np.testing.assert_allclose(voted["sense_agreement"][0], 0.5)
    probs = jax.jit(ens.combine_logits)(jnp.array([[0.0, 2.0], [0.0, -2.0]]))  # [M=2, B=2]
    np.testing.assert_allclose(probs["prob"], [0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(probs["logit"], [0.0, 0.0], atol=1e-5)
    assert float(probs["prob_std"][1]) > 0.3 and probs["members"].shape == (2, 2)


def test_direction_losses_are_blind_to_the_axis_when_the_sense_is_a_coin_flip():
    """Why the axis_vector head exists: averaged over a true direction t and -t (a 50/50 sense), every
    direction loss of a vector prediction is flat (angle(p, t) + angle(p, -t) = pi): no gradient
    towards the axis. The axis part of the axis_vector loss still has one."""
    rng = np.random.default_rng(6)
    t = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)
    w = jnp.ones(8)
    for name in ("cosine", "angular", "hybrid_angular"):
        fn = ens.direction_loss(name)
        grad = jax.grad(lambda p, fn=fn: fn(p, {"direction": t}, w) + fn(p, {"direction": -t}, w))(t + 0.3)
        np.testing.assert_allclose(grad, 0.0, atol=1e-6)
    fn = ens.direction_loss("angular")
    p6 = jnp.concatenate([t + 0.3, t + 0.3], axis=1)
    grad = jax.grad(lambda p: fn(p, {"direction": t}, w) + fn(p, {"direction": -t}, w))(p6)
    np.testing.assert_allclose(grad[:, 3:], 0.0, atol=1e-6)  # the vector part: flat as above
    assert float(jnp.abs(grad[:, :3]).max()) > 1e-2


def test_member_loss_factories():
    pred = jnp.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    batch = {"direction": jnp.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]), "label": jnp.array([1, 0])}
    w = jnp.array([3.0, 1.0])
    cosine, angular = jax.jit(ens.direction_loss("cosine")), jax.jit(ens.direction_loss("angular"))
    np.testing.assert_allclose(cosine(pred, batch, w), 0.25, rtol=1e-6)  # weighted: (3 * 0 + 1) / 4
    np.testing.assert_allclose(angular(pred, batch, w), np.pi / 8, rtol=1e-6)
    assert np.isfinite(float(jax.jit(ens.binary_loss("label"))(jnp.array([2.0, -1.0]), batch, w)))
    # axis_vector head [B, 6]: axes +z against true -z, so the axis part is 0 (the line is right);
    # the vector part is the plain loss of the vectors: rows 0 and 1 at 180 and 90 degrees.
    both = jax.jit(ens.direction_loss("angular"))
    pred6 = jnp.array([[0.0, 0.0, 1.0, 0.0, 0.0, 1.0], [0.0, 0.0, -1.0, 0.0, 1.0, 0.0]])
    down = {"direction": -batch["direction"]}
    np.testing.assert_allclose(both(pred6, down, w), (3 * np.pi + np.pi / 2) / 4, rtol=1e-6)
    # row 1's axis 60 degrees off the line: + (pi/3) / 4
    tilted6 = pred6.at[1, :3].set(jnp.array([0.0, np.sin(np.pi / 3), -np.cos(np.pi / 3)]))
    np.testing.assert_allclose(both(tilted6, down, w) - both(pred6, down, w), np.pi / 12, rtol=1e-5)
    # axis_sense head [B, 4]: the axis part as above, plus the BCE of the sense logit against "the
    # electron goes along the axis": row 0 goes against +z (label 0, logit 2), row 1 along -z (label 1,
    # logit 2): (3 * softplus(2) + softplus(-2)) / 4.
    pred4 = jnp.array([[0.0, 0.0, 1.0, 2.0], [0.0, 0.0, -1.0, 2.0]])
    want = (3 * np.log1p(np.exp(2.0)) + np.log1p(np.exp(-2.0))) / 4
    np.testing.assert_allclose(both(pred4, down, w), want, rtol=1e-6)
    with pytest.raises(ValueError, match="direction loss"):
        ens.direction_loss("mse")
    assert dataclasses.is_dataclass(MEMBER)
