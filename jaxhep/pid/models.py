"""The three PID networks of the seed, in Flax NNX.

All take a batch dict with `x` [B, 21] (preprocessed features in `species.FEATURES`
order) and `group_mask` [B, 4] (TPC, TOF, Bayes, kinematics present), and return class
logits [B, 4] in `species.SPECIES` order. Dropout keys come in through `rngs` at call
time, so a model holds no RNG state and its checkpoints are plain arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxhep.pid.species import FEATURES, GROUPS, SPECIES

N_FEATURES, N_CLASSES, N_GROUPS = len(FEATURES), len(SPECIES), len(GROUPS)


@dataclass(frozen=True)
class ModelConfig:
    """Which network and its sizes (defaults: the seed's)."""

    name: str = "fse"  # simple | dnn | fse
    hidden: tuple[int, ...] = ()  # MLP widths; () = the seed's for `name`
    dropout: float = 0.5  # MLPs: the seed's 0.5
    embed_dim: int = 32  # FSE token width (32: 2x faster than 64, same accuracy)
    heads: int = 4  # FSE attention heads (seed: 4)
    attention_layers: int = 1
    head_hidden: tuple[int, int] = (128, 64)  # FSE classification head (3 Dense layers)
    head_dropout: float = 0.1


SEED_WIDTHS = {"simple": (512, 256, 128, 64), "dnn": (1024, 512, 256, 128, 64)}


class SimpleNN(nnx.Module):
    """Dense(512) -> ReLU -> Dropout(0.5) ... Dense(64) -> ReLU -> Dropout -> Dense(4)."""

    def __init__(self, widths=SEED_WIDTHS["simple"], dropout=0.5, dtype=jnp.float32, *, rngs: nnx.Rngs):
        sizes = (N_FEATURES, *widths)
        self.layers = nnx.List([nnx.Linear(a, b, dtype=dtype, rngs=rngs) for a, b in zip(sizes, sizes[1:])])
        self.dropout = nnx.Dropout(dropout)
        self.out = nnx.Linear(sizes[-1], N_CLASSES, dtype=dtype, rngs=rngs)

    def __call__(self, batch, rngs: nnx.Rngs | None = None):
        h = batch["x"]
        for layer in self.layers:
            h = self.dropout(nnx.relu(layer(h)), rngs=rngs)
        return self.out(h).astype(jnp.float32)


class DNN(nnx.Module):
    """Dense -> BatchNorm -> ReLU -> Dropout(0.5) for 1024..128, Dense(64) -> ReLU -> Dropout -> Dense(4).

    The seed normalises every layer but the last hidden one.
    """

    def __init__(self, widths=SEED_WIDTHS["dnn"], dropout=0.5, dtype=jnp.float32, *, rngs: nnx.Rngs):
        sizes = (N_FEATURES, *widths)
        self.layers = nnx.List([nnx.Linear(a, b, dtype=dtype, rngs=rngs) for a, b in zip(sizes, sizes[1:])])
        self.norms = nnx.List([nnx.BatchNorm(b, momentum=0.9, dtype=dtype, rngs=rngs) for b in sizes[1:-1]])
        self.dropout = nnx.Dropout(dropout)
        self.out = nnx.Linear(sizes[-1], N_CLASSES, dtype=dtype, rngs=rngs)

    def __call__(self, batch, rngs: nnx.Rngs | None = None):
        h = batch["x"]
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.norms):
                h = self.norms[i](h)
            h = self.dropout(nnx.relu(h), rngs=rngs)
        return self.out(h).astype(jnp.float32)


def _group_gather() -> tuple[np.ndarray, np.ndarray]:
    """Indices [G, F_max] into FEATURES of each group's columns, and their validity [G, F_max]."""
    width = max(len(cols) for cols in GROUPS.values())
    index = np.zeros((N_GROUPS, width), np.int32)
    valid = np.zeros((N_GROUPS, width), np.float32)
    for g, cols in enumerate(GROUPS.values()):
        index[g, : len(cols)] = [FEATURES.index(c) for c in cols]
        valid[g, : len(cols)] = 1.0
    return index, valid


class MaskedSelfAttention(nnx.Module):
    """Multi-head self-attention over the G group tokens; absent groups are not attended to."""

    def __init__(self, dim: int, heads: int, dtype=jnp.float32, *, rngs: nnx.Rngs):
        if dim % heads:
            raise ValueError(f"embed_dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nnx.Linear(dim, 3 * dim, dtype=dtype, rngs=rngs)
        self.proj = nnx.Linear(dim, dim, dtype=dtype, rngs=rngs)

    def __call__(self, tokens, mask):
        """tokens [B, G, D], mask [B, G] (1 = present) -> [B, G, D].

        With G = 4 tokens the score and mixing products are written out over the G axis as
        broadcasts: XLA fuses them into a few loops, where batched [G, G] matmuls would
        run one tiny GEMM per track and head (3x slower on a CPU).
        """
        b, g, d = tokens.shape
        dh = d // self.heads
        qkv = self.qkv(tokens).reshape(b, g, 3, self.heads, dh)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, G, H, Dh]
        scores = (q[:, :, None] * k[:, None, :]).sum(-1) / jnp.sqrt(dh).astype(q.dtype)  # [B, Gq, Gk, H]
        scores = jnp.where(mask[:, None, :, None] > 0, scores.astype(jnp.float32), -1e9)
        weights = jax.nn.softmax(scores, axis=2).astype(v.dtype)
        mixed = sum(weights[:, :, j, :, None] * v[:, None, j] for j in range(g))  # [B, Gq, H, Dh]
        return self.proj(mixed.reshape(b, g, d))


class FSEAttention(nnx.Module):
    """Feature-set embedding + masked self-attention (the seed's FSE+Attention).

    Each detector group (TPC, TOF, Bayes, kinematics) becomes one token: its own Dense
    embedding plus a learned group embedding. Missing groups (no TPC / no TOF) are masked
    out of the attention keys and out of the pooling, so filled values cannot leak in.
    Each attention block: LayerNorm(h + gate * attn), gate = sigmoid(Dense([h, attn])).
    Masked mean pooling -> Dense -> GELU -> Dropout -> Dense -> GELU -> Dense(4).
    """

    def __init__(self, cfg: ModelConfig = ModelConfig(), dtype=jnp.float32, *, rngs: nnx.Rngs):
        d = cfg.embed_dim
        index, valid = _group_gather()
        self.index, self.valid = index, valid  # static numpy constants
        init = nnx.initializers.lecun_normal()
        self.embed_w = nnx.Param(init(rngs.params(), (N_GROUPS, index.shape[1], d)))
        self.embed_b = nnx.Param(jnp.zeros((N_GROUPS, d)))
        self.group_embedding = nnx.Param(0.02 * jax.random.normal(rngs.params(), (N_GROUPS, d)))
        self.embed_out = nnx.Linear(d, d, dtype=dtype, rngs=rngs)
        self.attn = nnx.List(
            [MaskedSelfAttention(d, cfg.heads, dtype, rngs=rngs) for _ in range(cfg.attention_layers)]
        )
        self.gate = nnx.List(
            [nnx.Linear(2 * d, d, dtype=dtype, rngs=rngs) for _ in range(cfg.attention_layers)]
        )
        self.norm = nnx.List([nnx.LayerNorm(d, dtype=dtype, rngs=rngs) for _ in range(cfg.attention_layers)])
        h1, h2 = cfg.head_hidden
        self.head1 = nnx.Linear(d, h1, dtype=dtype, rngs=rngs)
        self.head2 = nnx.Linear(h1, h2, dtype=dtype, rngs=rngs)
        self.head3 = nnx.Linear(h2, N_CLASSES, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(cfg.head_dropout)
        self.dtype = dtype

    def tokens(self, x):
        """x [B, 21] -> group tokens [B, G, D]."""
        groups = x[:, self.index] * self.valid  # [B, G, F_max]
        h = jnp.einsum("bgf,gfd->bgd", groups.astype(self.dtype), self.embed_w[...].astype(self.dtype))
        h = nnx.gelu(h + self.embed_b[...].astype(self.dtype))
        return self.embed_out(h) + self.group_embedding[...].astype(self.dtype)

    def __call__(self, batch, rngs: nnx.Rngs | None = None):
        mask = batch["group_mask"].astype(self.dtype)  # [B, G]
        h = self.tokens(batch["x"])
        for attn, gate, norm in zip(self.attn, self.gate, self.norm):
            a = attn(h, mask)
            g = nnx.sigmoid(gate(jnp.concatenate([h, a], axis=-1)))
            h = norm(h + g * a)
        pooled = (h * mask[..., None]).sum(1) / jnp.maximum(mask.sum(1, keepdims=True), 1.0)
        z = self.dropout(nnx.gelu(self.head1(pooled)), rngs=rngs)
        z = nnx.gelu(self.head2(z))
        return self.head3(z).astype(jnp.float32)


def build_model(cfg: ModelConfig, seed: int = 0, precision: str = "float32") -> nnx.Module:
    """Instantiate the network named by `cfg.name` with parameters from `seed`, computing in
    `precision` (float32 | bfloat16: `train.precision`; parameters stay float32)."""
    rngs = nnx.Rngs(params=seed)
    dtype = jnp.dtype(precision)
    if cfg.name == "simple":
        return SimpleNN(cfg.hidden or SEED_WIDTHS["simple"], cfg.dropout, dtype, rngs=rngs)
    if cfg.name == "dnn":
        return DNN(cfg.hidden or SEED_WIDTHS["dnn"], cfg.dropout, dtype, rngs=rngs)
    if cfg.name == "fse":
        return FSEAttention(cfg, dtype, rngs=rngs)
    raise ValueError(f"unknown PID model {cfg.name!r} (simple, dnn, fse)")
