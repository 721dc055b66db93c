"""Post-hoc calibration of classifier logits ("vector scaling", Guo et al. 2017, arXiv:1706.04599).

A network trained with a tilted objective (class weights, focal loss) ranks well but its
softmax is not the posterior of the true class mix, so its argmax is not the
accuracy-optimal decision. Fitting a temperature T and a bias per class on held-out
data, p = softmax(z / T + b), by minimising the plain (unweighted) cross-entropy, gives
calibrated probabilities; it cannot change the ranking of tracks within a class score
by much and costs five numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax


@dataclass(frozen=True)
class Calibration:
    temperature: float
    bias: tuple[float, ...]

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities [N, C] from logits [N, C]."""
        z = np.asarray(logits, np.float64) / self.temperature + np.asarray(self.bias)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def to_dict(self) -> dict:
        return {"temperature": self.temperature, "bias": list(self.bias)}

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        return cls(float(d["temperature"]), tuple(float(b) for b in d["bias"]))

    @classmethod
    def identity(cls, n_classes: int) -> Calibration:
        return cls(1.0, (0.0,) * n_classes)


def fit_calibration(
    logits: np.ndarray,
    labels: np.ndarray,
    init_bias: np.ndarray | None = None,
    steps: int = 500,
    learning_rate: float = 0.05,
) -> Calibration:
    """Temperature and per-class bias minimising the cross-entropy on (logits [N, C], labels [N])."""
    logits = jnp.asarray(logits, jnp.float32)
    labels = jnp.asarray(labels, jnp.int32)
    start = {
        "log_t": jnp.zeros(()),
        "bias": jnp.zeros(logits.shape[1]) if init_bias is None else jnp.asarray(init_bias, jnp.float32),
    }
    fitted, nll_start, nll_end = _fit(logits, labels, start, steps, learning_rate)
    if not nll_end <= nll_start:  # never return something worse than the start
        fitted = start
    bias = np.asarray(fitted["bias"], np.float64)
    return Calibration(float(np.exp(fitted["log_t"])), tuple((bias - bias.mean()).tolist()))


def _nll(params, logits, labels):
    z = logits * jnp.exp(-params["log_t"]) + params["bias"]
    return optax.softmax_cross_entropy_with_integer_labels(z, labels).mean()


@partial(jax.jit, static_argnums=(3, 4))
def _fit(logits, labels, params, steps: int, learning_rate: float):
    """Full-batch Adam on the five parameters; compiled once per data shape."""
    tx = optax.adam(learning_rate)

    def step(carry, _):
        p, s = carry
        grads = jax.grad(_nll)(p, logits, labels)
        updates, s = tx.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), None

    (fitted, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
    return fitted, _nll(params, logits, labels), _nll(fitted, logits, labels)
