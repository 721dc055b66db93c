"""mixup (Zhang et al., "mixup: Beyond Empirical Risk Minimization", arXiv:1710.09412), on the device.

One mixing weight lam ~ Beta(alpha, alpha) per batch, as the paper's reference code draws it;
each example is mixed with the example a random permutation of the batch puts beside it:

    x~ = lam x + (1 - lam) x[perm],   loss = lam L(f(x~), y) + (1 - lam) L(f(x~), y[perm])

The loss form works with any loss (focal loss included) and never needs soft labels.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def mixup(key: Array, inputs: Array, labels: Array, alpha: float) -> tuple[Array, Array, Array]:
    """(mixed inputs [B, ...], partner labels [B, ...], lam scalar float32); alpha <= 0: no mixing."""
    if alpha <= 0:
        return inputs, labels, jnp.float32(1.0)
    k_lam, k_perm = jax.random.split(key)
    lam = jax.random.beta(k_lam, alpha, alpha).astype(jnp.float32)
    perm = jax.random.permutation(k_perm, inputs.shape[0])
    mixed = lam * inputs.astype(jnp.float32) + (1.0 - lam) * inputs[perm].astype(jnp.float32)
    return mixed.astype(inputs.dtype), labels[perm], lam


def mixup_loss(loss_of: Callable[[Array], Array], labels: Array, partner_labels: Array, lam: Array) -> Array:
    """lam * loss_of(labels) + (1 - lam) * loss_of(partner_labels), loss_of(labels) -> scalar."""
    return lam * loss_of(labels) + (1.0 - lam) * loss_of(partner_labels)
