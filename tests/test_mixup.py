"""mixup: the mixing formula, the loss form, and alpha = 0 as the identity, checked by hand."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxhep.losses import sigmoid_focal_loss
from jaxhep.mixup import mixup, mixup_loss


def test_mixup_matches_the_formula_with_the_drawn_weight_and_partner():
    key = jax.random.PRNGKey(3)
    x = jnp.arange(4 * 3 * 2, dtype=jnp.float32).reshape(4, 3, 2)
    y = jnp.array([0, 1, 1, 0])
    mixed, partner, lam = jax.jit(mixup, static_argnums=3)(key, x, y, 0.4)
    chex.assert_shape(mixed, x.shape)
    chex.assert_shape(partner, y.shape)
    k_lam, k_perm = jax.random.split(key)
    want_lam = float(jax.random.beta(k_lam, 0.4, 0.4))
    perm = np.asarray(jax.random.permutation(k_perm, 4))
    np.testing.assert_allclose(float(lam), want_lam, rtol=1e-6)
    assert 0.0 <= want_lam <= 1.0
    want = want_lam * np.asarray(x) + (1 - want_lam) * np.asarray(x)[perm]
    np.testing.assert_allclose(mixed, want, rtol=1e-6)
    np.testing.assert_array_equal(partner, np.asarray(y)[perm])
    # Mixing conserves the batch total (a permutation moves mass, never makes it).
    np.testing.assert_allclose(float(mixed.sum()), float(x.sum()), rtol=1e-6)


def test_alpha_zero_is_the_identity():
    x, y = jnp.ones((3, 2)), jnp.array([1, 0, 1])
    mixed, partner, lam = mixup(jax.random.PRNGKey(0), x, y, 0.0)
    assert mixed is x and partner is y and float(lam) == 1.0


def test_mixup_loss_by_hand():
    logits = jnp.array([2.0, -1.0])
    y, y2 = jnp.array([1.0, 0.0]), jnp.array([0.0, 0.0])

    def bce(labels):  # mean BCE with logits, by hand
        p = 1 / (1 + jnp.exp(-logits))
        return -jnp.mean(labels * jnp.log(p) + (1 - labels) * jnp.log(1 - p))

    lam = jnp.float32(0.3)
    got = mixup_loss(bce, y, y2, lam)
    p = 1 / (1 + np.exp(-np.array([2.0, -1.0])))
    want = 0.3 * -np.mean([np.log(p[0]), np.log(1 - p[1])]) + 0.7 * -np.mean(np.log(1 - p))
    np.testing.assert_allclose(float(got), want, rtol=1e-6)
    # Same labels on both sides: the plain loss, for focal loss too.
    focal = lambda labels: sigmoid_focal_loss(logits, labels, 0.5, 2.0)  # noqa: E731
    np.testing.assert_allclose(float(mixup_loss(focal, y, y, lam)), float(focal(y)), rtol=1e-6)
