"""A tiny classification problem and model shared by the core tests."""

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx


class ToyMLP(nnx.Module):
    """Linear -> BatchNorm -> ReLU -> Dropout -> Linear: exercises batch stats and dropout keys."""

    def __init__(self, seed: int = 0, dropout: float = 0.1):
        rngs = nnx.Rngs(seed)
        self.a = nnx.Linear(4, 16, rngs=rngs)
        self.bn = nnx.BatchNorm(16, rngs=rngs)
        self.drop = nnx.Dropout(dropout)
        self.b = nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x, rngs=None):
        return self.b(self.drop(nnx.relu(self.bn(self.a(x))), rngs=rngs))


def toy_data(n: int = 2048, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = ((x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1)).astype(np.int32)
    return x, y


def toy_fns(x, y, n_val: int = 512):
    def read(idx):
        return {"x": x[idx], "y": y[idx]}

    def loss_fn(model, batch, key):
        logits = model(batch["x"], rngs=nnx.Rngs(dropout=key))
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
        return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["y"])}

    def predict_fn(model, batch):
        return model(batch["x"])

    def validate(trainer):
        logits = trainer.predict_rows(read, n_val, 256)
        return {"val_accuracy": float(np.mean(logits.argmax(-1) == y[:n_val]))}

    return read, loss_fn, predict_fn, validate
