"""TransformerConv edge classifier for tracking graphs (Flax NNX, segment ops over edge lists).

`TransformerConv` reproduces PyTorch Geometric's `TransformerConv` (concat=True, no attention
dropout) on one padded graph of N nodes and E edges (senders j -> receivers i):

    q_i = W_q x_i + b_q,  k_j = W_k x_j + b_k,  v_j = W_v x_j + b_v,  e'_ij = W_e e_ij    (per head, C wide)
    alpha_ij = softmax over the incoming edges of i of  q_i . (k_j + e'_ij) / sqrt(C)
    m_i = concat over heads of  sum_j alpha_ij (v_j + e'_ij)
    out_i = m_i + W_r x_i + b_r                                                  (root_weight)
    out_i = beta_i (W_r x_i + b_r) + (1 - beta_i) m_i,                          (beta)
            beta_i = sigmoid(w_b . [m_i, r_i, m_i - r_i]) with r_i = W_r x_i + b_r

The beta input is ordered [m_i, r_i, m_i - r_i] as PyG's code computes it (its docs write the
equivalent [r_i, m_i, r_i - m_i] with the weight blocks in another order). Edges with
`edge_mask` 0 get no attention weight and send nothing; a node without incoming edges gets
m_i = 0, as PyG (which divides by sum + 1e-16).

`EdgeClassifier` is the seed's model (and `../shared/bench/peers.py tc`'s): node and edge input
Linear layers, L TransformerConv layers with h <- LayerNorm(h + relu(conv(h))), and an edge MLP
on [h_j, h_i, e_ij] (sender, receiver, edge) giving one logit per edge. Optionally messages flow
both ways (each edge also used reversed, with a learned direction vector added to its edge
embedding), since tracking graphs point inner -> outer and a hit should also hear the hits
after it.

Speed, on a CPU where gathers and scatters of [E, width] arrays dominate (measured in
`.notes/tracking_model.md`):

- the edge embedding e = edges @ W_in + b_in is affine in the F_e raw edge features (F_e = 4..6)
  and the same in every layer, so W_e e_ij = edges_ij @ (W_in W_e) + b_in W_e is never
  materialised as [E, width]: its part of the score is a per-node [N, H, F_e + 1] projection of
  q, gathered per edge, and its part of the message is a per-node sum of alpha_ij [edges_ij, 1]
  projected afterwards. Likewise the edge MLP's first layer on [h_j, h_i, e_ij] is split into
  h @ W_a, h @ W_b (per node, then gathered) plus the raw-edge term. Same parameters, same
  function, ~30x fewer FLOPs than the [E, 128] x [128, 128] matmuls PyG runs.
- message passing edges are sorted by receiver once per call (shared by all layers), so the
  segment max / sum and the receiver gathers run over sorted indices.
- q, k, v and the root projection are one [N, in] x [in, 4 H C] matmul; k and v are gathered
  together.

Batches: a model works on one graph. For a stack of G padded graphs (every leaf [G, ...]) use
`batched_logits`, which maps the model over the leading axis with `nnx.vmap`; under `jax.jit`
with that axis sharded over the mesh's "data" axis, each device runs its own graphs (the
vmapped gathers/scatters carry the graph axis as a batch dimension, which XLA's SPMD
partitioner splits without communication).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

Array = jax.Array


@dataclass(frozen=True)
class EdgeClassifierConfig:
    """Sizes of the edge classifier (defaults: the seed's 3 layers, width 128, 2 heads)."""

    width: int = 128
    heads: int = 2
    layers: int = 3
    beta: bool = False  # PyG's gated root weight
    bidirectional: bool = True  # also pass messages outer -> inner along reversed edges
    dtype: str = "float32"  # compute dtype: float32 | bfloat16 (parameters and logits stay fp32)
    # Input widths: graph.NODE_FEATURES (3 without cell features, 5 with) and graph.EDGE_FEATURES.
    node_in: int = 5
    edge_in: int = 6


def _linear(n_in: int, n_out: int, rngs: nnx.Rngs, bias: bool = True) -> nnx.Linear:
    return nnx.Linear(n_in, n_out, use_bias=bias, rngs=rngs)


def _gather(x: Array, index: Array, is_sorted: bool = False) -> Array:
    """x[index] along axis 0. Indices are in bounds by construction (padding points at a real
    padding node), and skipping XLA's clamping makes the CPU gather ~1.7x faster."""
    return x.at[index].get(mode="promise_in_bounds", indices_are_sorted=is_sorted)


def _small_matmul(a: Array, b: Array) -> Array:
    """a [E, F] @ b [F, w] for a small F as F broadcast multiply-adds: they fuse into the
    consumer, where XLA's CPU dot for F = 4..8 takes ~50 ms per [200k, 128] output."""
    return sum(a[:, f, None] * b[f] for f in range(a.shape[1]))


def _block_diag(blocks: Array) -> Array:
    """[H, a, b] -> the [H a, H b] block-diagonal matrix."""
    h, a, b = blocks.shape
    eye = jnp.eye(h, dtype=blocks.dtype)
    return (eye[:, None, :, None] * blocks[:, :, None, :]).reshape(h * a, h * b)


def _per_head_dot(a: Array, b: Array, heads: int) -> Array:
    """sum over each head's channels of a * b: [E, H C] x [E, H C] -> [E, H] in float32.

    Written as a matmul with a block-of-ones matrix: XLA's CPU reduction over a minor axis of 64
    is ~2x slower than this dot (HIGHEST keeps TF32 / bf16 passes out on accelerators).
    """
    width = a.shape[-1]
    blocks = jnp.repeat(jnp.eye(heads, dtype=a.dtype), width // heads, axis=0)  # [H C, H]
    return jnp.dot(a * b, blocks, precision="highest", preferred_element_type=jnp.float32)


class TransformerConv(nnx.Module):
    """PyG's TransformerConv (concat heads, edge features in keys and values) on one graph.

    Parameters are named as PyG's (lin_query, lin_key, lin_value, lin_edge, lin_skip, lin_beta);
    nnx kernels are [in, out], the transpose of torch's weight.
    """

    def __init__(
        self,
        in_features: int,
        out_per_head: int,
        heads: int = 1,
        edge_dim: int | None = None,
        *,
        root_weight: bool = True,
        beta: bool = False,
        dtype: str | jnp.dtype = "float32",
        rngs: nnx.Rngs,
    ):
        hc = heads * out_per_head
        self.heads, self.out_per_head, self.dtype = heads, out_per_head, jnp.dtype(dtype)
        self.lin_query = _linear(in_features, hc, rngs)
        self.lin_key = _linear(in_features, hc, rngs)
        self.lin_value = _linear(in_features, hc, rngs)
        self.lin_edge = _linear(edge_dim, hc, rngs, bias=False) if edge_dim else None
        self.lin_skip = _linear(in_features, hc, rngs) if root_weight else None
        self.lin_beta = _linear(3 * hc, 1, rngs, bias=False) if (beta and root_weight) else None

    def __call__(
        self,
        x: Array,
        senders: Array,
        receivers: Array,
        edges: Array | None = None,
        edge_mask: Array | None = None,
        *,
        edge_embedding: tuple[Array, Array] | None = None,
        sorted_by_receiver: bool = False,
    ) -> Array:
        """New node features [N, H C] from x [N, in] and the E edges senders -> receivers [E].

        edges: [E, edge_dim] edge features e_ij, or, when `edge_embedding` = (W [F, edge_dim],
        b [edge_dim]) is given, [E, F] raw features with e_ij = edges_ij @ W + b, which is then
        never formed at [E, edge_dim] (see the module docstring). edge_mask: [E], 0 = padding.
        sorted_by_receiver: promise that receivers are non-decreasing (faster segment ops).
        """
        n, h, c = x.shape[0], self.heads, self.out_per_head
        hc, cd = h * c, self.dtype
        lins = [self.lin_query, self.lin_key, self.lin_value] + ([self.lin_skip] if self.lin_skip else [])
        kernel = jnp.concatenate([lin.kernel[...] for lin in lins], axis=1).astype(cd)
        bias = jnp.concatenate([lin.bias[...] for lin in lins]).astype(cd)
        proj = jnp.dot(x.astype(cd), kernel) + bias  # [N, 3 or 4 H C]
        q = proj[:, :hc]

        q_e = _gather(q, receivers, sorted_by_receiver)  # [E, H C]
        # k and v gathered apart: each gather then fuses into its one consumer (the score
        # product, the message) instead of writing a [E, 2 H C] array.
        k_e, v_e = _gather(proj[:, hc : 2 * hc], senders), _gather(proj[:, 2 * hc : 3 * hc], senders)
        edge_proj = edge_low_rank = None
        if self.lin_edge is not None:
            if edges is None:
                raise ValueError("this TransformerConv has edge_dim set: pass `edges`")
            w_e = self.lin_edge.kernel[...]
            if edge_embedding is None:
                edge_proj = jnp.dot(edges.astype(cd), w_e.astype(cd))  # [E, H C]
                k_e = k_e + edge_proj
            else:
                w_in, b_in = edge_embedding
                # [F + 1, H, C]: W_e e_ij = [edges_ij, 1] @ low, kept factored.
                low = jnp.concatenate([w_in @ w_e, (b_in @ w_e)[None]], 0).reshape(-1, h, c)
                edge_low_rank = (jnp.concatenate([edges, jnp.ones_like(edges[:, :1])], 1), low)
        score = _per_head_dot(q_e, k_e, h)  # [E, H]
        if edge_low_rank is not None:
            raw1, low = edge_low_rank
            # q_i . (W_e e_ij) per head = [edges_ij, 1] . (low_h q_ih): a [N, H (F + 1)] array,
            # as one matmul with a block-diagonal [H C, H (F + 1)] (an einsum transposes q).
            q_low = jnp.dot(q.astype(jnp.float32), _block_diag(jnp.swapaxes(low, 0, 1).transpose(0, 2, 1)))
            q_low_e = _gather(q_low, receivers, sorted_by_receiver).reshape(-1, h, raw1.shape[1])
            score = score + jnp.einsum("ehf,ef->eh", q_low_e, raw1.astype(jnp.float32))
        score = score / math.sqrt(c)

        weight, norm = _segment_softmax_parts(score, receivers, n, edge_mask, sorted_by_receiver)
        value = v_e if edge_proj is None else v_e + edge_proj
        msg = (value.reshape(-1, h, c) * weight[:, :, None].astype(cd)).reshape(-1, hc)
        agg = jax.ops.segment_sum(
            msg.astype(jnp.float32), receivers, n, indices_are_sorted=sorted_by_receiver
        ).reshape(n, h, c)
        if edge_low_rank is not None:
            raw1, low = edge_low_rank
            w_raw = weight[:, :, None] * raw1[:, None, :].astype(jnp.float32)  # [E, H, F + 1]
            w_raw = jax.ops.segment_sum(w_raw, receivers, n, indices_are_sorted=sorted_by_receiver)
            agg = agg + jnp.einsum("nhf,fhc->nhc", w_raw, low)
        out = (agg / norm[:, :, None]).reshape(n, hc)

        if self.lin_skip is None:
            return out.astype(cd)
        root = proj[:, 3 * hc :].astype(jnp.float32)
        if self.lin_beta is None:
            return (out + root).astype(cd)
        gate = jax.nn.sigmoid(jnp.concatenate([out, root, out - root], 1) @ self.lin_beta.kernel[...])
        return (gate * root + (1.0 - gate) * out).astype(cd)


def _segment_softmax_parts(
    score: Array, segments: Array, n: int, mask: Array | None, is_sorted: bool
) -> tuple[Array, Array]:
    """Unnormalised softmax weights p [E, H] and per-segment sums + 1e-16 [N, H] (fp32).

    softmax_ij = p_ij / norm_i; the division is left to the caller, who applies it once per
    node after aggregation instead of once per edge. Masked edges get p = 0 exactly (and no
    gradient), and empty segments a finite shift, so nothing becomes NaN.
    """
    if mask is not None:
        score = jnp.where(mask[:, None] > 0, score, -jnp.inf)
    # The max only shifts each segment for stability; its gradient cancels (PyG detaches it).
    shift = jax.ops.segment_max(jax.lax.stop_gradient(score), segments, n, indices_are_sorted=is_sorted)
    shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
    p = jnp.exp(score - _gather(shift, segments, is_sorted))
    norm = jax.ops.segment_sum(p, segments, n, indices_are_sorted=is_sorted) + 1e-16
    return p, norm


class EdgeClassifier(nnx.Module):
    """Edge logits of a padded graph: node/edge input layers, TransformerConv stack, edge MLP.

    Call with one graph dict (`nodes` [N, node_in], `edges` [E, edge_in], `senders`,
    `receivers` [E] int32, optional `edge_mask` [E]); returns logits [E] float32 (padding
    edges get a finite logit, to be masked in the loss).
    """

    def __init__(self, cfg: EdgeClassifierConfig = EdgeClassifierConfig(), *, rngs: nnx.Rngs):
        if cfg.width % cfg.heads:
            raise ValueError(f"width {cfg.width} must be a multiple of heads {cfg.heads}")
        self.cfg, w = cfg, cfg.width
        self.node_in = _linear(cfg.node_in, w, rngs)
        self.edge_in = _linear(cfg.edge_in, w, rngs)
        # Added to the edge embedding of the reversed copies (zero at start: a symmetric graph).
        self.reverse_edge = nnx.Param(jnp.zeros((w,), jnp.float32)) if cfg.bidirectional else None
        self.convs = nnx.List(
            [
                TransformerConv(w, w // cfg.heads, cfg.heads, w, beta=cfg.beta, dtype=cfg.dtype, rngs=rngs)
                for _ in range(cfg.layers)
            ]
        )
        self.norms = nnx.List([nnx.LayerNorm(w, epsilon=1e-5, rngs=rngs) for _ in range(cfg.layers)])
        self.head_hidden = _linear(3 * w, w, rngs)
        self.head_out = _linear(w, 1, rngs)

    def __call__(self, graph: dict) -> Array:
        cfg, cd = self.cfg, jnp.dtype(self.cfg.dtype)
        nodes, edges = graph["nodes"], graph["edges"].astype(jnp.float32)
        senders, receivers = graph["senders"], graph["receivers"]
        if nodes.shape[-1] != cfg.node_in or edges.shape[-1] != cfg.edge_in:
            raise ValueError(
                f"graph has {nodes.shape[-1]} node / {edges.shape[-1]} edge features, the model "
                f"expects node_in={cfg.node_in} / edge_in={cfg.edge_in} (EdgeClassifierConfig)"
            )
        mask = graph.get("edge_mask")
        mask = jnp.ones(senders.shape, jnp.float32) if mask is None else mask.astype(jnp.float32)
        w_in, b_in = self.edge_in.kernel[...], self.edge_in.bias[...]

        # Message-passing edge list, sorted by receiver once for all layers.
        mp_s, mp_r, mp_edges, mp_mask = senders, receivers, edges, mask
        if cfg.bidirectional:
            mp_s, mp_r = jnp.concatenate([senders, receivers]), jnp.concatenate([receivers, senders])
            flag = jnp.repeat(jnp.asarray([0.0, 1.0]), senders.shape[0])[:, None]
            mp_edges = jnp.concatenate([jnp.concatenate([edges, edges]), flag], 1)
            mp_mask = jnp.concatenate([mask, mask])
            # The direction flag's column of the embedding is the learned reverse vector.
            w_in = jnp.concatenate([w_in, self.reverse_edge[...][None]], 0)
        order = jnp.argsort(mp_r, stable=True)
        mp_s, mp_r, mp_edges, mp_mask = mp_s[order], mp_r[order], mp_edges[order], mp_mask[order]

        h = self.node_in(nodes.astype(jnp.float32))
        for conv, norm in zip(self.convs, self.norms):
            m = conv(h, mp_s, mp_r, mp_edges, mp_mask, edge_embedding=(w_in, b_in), sorted_by_receiver=True)
            h = norm(h + jax.nn.relu(m.astype(jnp.float32)))

        # Edge MLP on [h_j, h_i, e_ij]: the first layer split into per-node and raw-edge parts.
        w = cfg.width
        k1, b1 = self.head_hidden.kernel[...], self.head_hidden.bias[...]
        node_part = jnp.dot(h.astype(cd), jnp.concatenate([k1[:w], k1[w : 2 * w]], 1).astype(cd))  # [N, 2w]
        edge_k = self.edge_in.kernel[...] @ k1[2 * w :]  # [F_e, w]
        edge_b = self.edge_in.bias[...] @ k1[2 * w :] + b1
        hidden = (
            _gather(node_part[:, :w], senders)
            + _gather(node_part[:, w:], receivers)
            + _small_matmul(edges.astype(cd), edge_k.astype(cd))
            + edge_b.astype(cd)
        )
        hidden = jax.nn.relu(hidden)
        logits = jnp.dot(hidden, self.head_out.kernel[...].astype(cd), preferred_element_type=jnp.float32)
        return logits[:, 0] + self.head_out.bias[...][0]


def batched_logits(model: EdgeClassifier, graphs: dict) -> Array:
    """Edge logits [G, E] of a stack of G padded graphs (every leaf [G, ...]).

    `nnx.vmap` over the leading axis with the model broadcast; shards with that axis under jit.
    """
    return nnx.vmap(lambda m, g: m(g), in_axes=(None, 0))(model, graphs)
