"""TransformerConv edge classifier for tracking graphs (Flax NNX, segment ops over edge lists).

`TransformerConv` reproduces PyTorch Geometric's `TransformerConv` (concat=True; no attention
dropout, which the seed leaves at 0) on one padded graph of N nodes, E edges j -> i:

    q_i = W_q x_i + b_q,  k_j = W_k x_j + b_k,  v_j = W_v x_j + b_v,  e'_ij = W_e e_ij   (per head, C wide)
    alpha_ij = softmax over the incoming edges of i of  q_i . (k_j + e'_ij) / sqrt(C)
    m_i = concat over heads of  sum_j alpha_ij (v_j + e'_ij)
    out_i = m_i + r_i,  r_i = W_r x_i + b_r                                      (root_weight)
    out_i = beta_i r_i + (1 - beta_i) m_i,  beta_i = sigmoid(w_b . [m_i, r_i, m_i - r_i])   (beta)

The beta input is ordered [m_i, r_i, m_i - r_i] as PyG's code computes it (its docs write
[r_i, m_i, r_i - m_i]: the same family, other weight blocks). Edges with `edge_mask` 0 get no
weight and send nothing; a node without incoming edges gets m_i = 0, as in PyG.

`EdgeClassifier` is the seed's model (and the PyTorch Geometric peer benchmark's): node and edge input
Linear layers, L TransformerConv layers with h <- LayerNorm(h + relu(conv(h))), and an edge MLP
on [h_j, h_i, e_ij] (sender, receiver, edge) giving one logit per edge. Optionally messages
also flow along the reversed edges (with a learned direction vector added to their edge
embedding): tracking graphs point inner -> outer, and a hit should also hear the hits after it.

Speed (BUILD_NOTES.md, "Speed against PyTorch Geometric"): on a CPU, gathers and scatters of
[E, width] arrays dominate, so
- the edge embedding e = edges @ W_in + b_in is affine in the few (4-6) raw edge features and the
  same in every layer, so W_e e_ij = [edges_ij, 1] @ low with low = [W_in W_e; b_in W_e] is never
  formed as [E, width]: its share of the score is a per-node [N, H, F + 1] projection of q, and
  its share of the message a per-node sum of alpha_ij [edges_ij, 1], projected afterwards. The
  edge MLP's first layer on [h_j, h_i, e_ij] is split the same way into per-node products (then
  gathered) and a raw-edge term. Same parameters, same function, ~30x fewer FLOPs than PyG's
  [E, 128] x [128, 128] matmuls;
- the attention has a hand-written VJP that keeps only node-sized arrays and alpha [E, H]
  between the passes (the softmax backward's segment sum becomes a node-level dot);
- message passing edges are sorted by receiver once per call, or by the host (`message_order`),
  so segment max / sum and receiver gathers run over sorted indices; q, k, v and the root
  projection are one matmul.

Batches: a model works on one graph; `batched_logits` maps it over a stack of G padded graphs
(every leaf [G, ...]) with `nnx.vmap`. Under `jax.jit` with that axis sharded over the mesh's
"data" axis each device runs its own graphs: the vmapped gathers and scatters carry the graph
axis as a batch dimension, which XLA's SPMD partitioner splits with no communication (the test
checks the compiled forward has no collective).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
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
    # Input widths: graph.NODE_FEATURES (3 without cell features, 5 with) and graph.EDGE_FEATURES.
    node_in: int = 5
    edge_in: int = 6


def _linear(n_in: int, n_out: int, rngs: nnx.Rngs, bias: bool = True) -> nnx.Linear:
    return nnx.Linear(n_in, n_out, use_bias=bias, rngs=rngs)


def _gather(x: Array, index: Array, is_sorted: bool = False) -> Array:
    """x[index] along axis 0. Indices are in bounds by construction (padding points at a real
    padding node), and skipping XLA's clamping makes the CPU gather ~1.7x faster."""
    return x.at[index].get(mode="promise_in_bounds", indices_are_sorted=is_sorted)


def _segment_sum(x: Array, segments: Array, n: int, is_sorted: bool = False) -> Array:
    return jax.ops.segment_sum(x, segments, n, indices_are_sorted=is_sorted)


def _per_head_dot(a: Array, b: Array, heads: int) -> Array:
    """Sum over each head's channels of a * b: [M, H C] x [M, H C] -> [M, H] float32.

    A matmul with a block-of-ones matrix: on XLA's CPU backend a reduction over a minor axis of
    64 with gathers fused into it is ~2x slower than this dot (HIGHEST keeps TF32 / bf16 passes
    out on accelerators).
    """
    width = a.shape[-1]
    blocks = jnp.repeat(jnp.eye(heads, dtype=a.dtype), width // heads, axis=0)  # [H C, H]
    return jnp.dot(a * b, blocks, precision="highest", preferred_element_type=jnp.float32)


def _scale_heads(x: Array, weight: Array) -> Array:
    """x [M, H C] with head h's channels multiplied by weight [M, H]."""
    m, h = weight.shape
    return (x.reshape(m, h, -1) * weight[:, :, None].astype(x.dtype)).reshape(m, -1)


def _block_diag(blocks: Array) -> Array:
    """[H, a, b] -> the [H a, H b] block-diagonal matrix."""
    h, a, b = blocks.shape
    eye = jnp.eye(h, dtype=blocks.dtype)
    return (eye[:, None, :, None] * blocks[:, :, None, :]).reshape(h * a, h * b)


@jax.custom_vjp
def _small_matmul(a: Array, b: Array) -> Array:
    """a [E, F] @ b [F, w] for F of a few: F broadcast multiply-adds that fuse into the consumer
    (XLA's CPU dot takes ~50 ms for F = 4 at E = 200k, w = 128); the VJP uses real dots."""
    return sum(a[:, f, None] * b[f] for f in range(a.shape[1]))


def _small_matmul_fwd(a, b):
    return _small_matmul(a, b), (a, b)


def _small_matmul_bwd(res, g):
    a, b = res
    return (g @ b.T).astype(a.dtype), (a.T @ g).astype(b.dtype)


_small_matmul.defvjp(_small_matmul_fwd, _small_matmul_bwd)


# --------------------------------------------------------------------------- attention core


def _attend_impl(q, k, v, bias, extra, senders, receivers, mask, n, heads, is_sorted):
    """Forward of `_attend`; also returns the attention weights alpha [E, H] (fp32)."""
    score = _per_head_dot(_gather(q, receivers, is_sorted), _gather(k, senders), heads) + bias
    score = jnp.where(mask[:, None] > 0, score, -jnp.inf)
    # The per-segment max only guards exp() against overflow (PyG detaches it as well).
    shift = jax.ops.segment_max(score, receivers, n, indices_are_sorted=is_sorted)
    shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
    p = jnp.exp(score - _gather(shift, receivers, is_sorted))  # 0 on masked edges
    norm = _segment_sum(p, receivers, n, is_sorted) + 1e-16  # PyG's epsilon
    alpha = p / _gather(norm, receivers, is_sorted)
    live = mask[:, None] > 0
    # where, not alpha = 0 alone: a padding edge's sender state may be non-finite (0 * inf = NaN).
    msg = jnp.where(live, _scale_heads(_gather(v, senders), alpha).astype(jnp.float32), 0.0)
    out_v = _segment_sum(msg, receivers, n, is_sorted)  # [N, H C]
    x_msg = (alpha[:, :, None] * extra[:, None, :].astype(jnp.float32)).reshape(alpha.shape[0], -1)
    out_x = _segment_sum(x_msg, receivers, n, is_sorted).reshape(n, heads, -1)  # [N, H, X]
    return out_v, out_x, alpha


@partial(jax.custom_vjp, nondiff_argnums=(8, 9, 10))
def _attend(q, k, v, bias, extra, senders, receivers, mask, n, heads, is_sorted):
    """Multi-head attention over the incoming edges of every node, aggregated.

    q, k, v: [N, H C] (q already divided by sqrt(C)); bias: [E, H] added to the scores;
    extra: [E, X] per-edge values aggregated with the same weights; mask: [E] (0 = padding).
    With alpha_e = softmax over the edges e into node i of q_i . k_j + bias_e:
    returns out_v [N, H C] = sum_e alpha_e v_j (per head) and out_x [N, H, X] = sum_e alpha_e x_e.

    The hand-written VJP keeps only node-sized arrays and alpha [E, H] between the passes and
    gathers again in the backward pass; it folds the softmax backward's segment sum into a
    node-level dot (sum_e alpha_e dalpha_e = g_v . out_v + g_x . out_x) and scatters the key
    and value gradients back to the senders.
    """
    out_v, out_x, _ = _attend_impl(q, k, v, bias, extra, senders, receivers, mask, n, heads, is_sorted)
    return out_v, out_x


def _attend_fwd(q, k, v, bias, extra, senders, receivers, mask, n, heads, is_sorted):
    out_v, out_x, alpha = _attend_impl(q, k, v, bias, extra, senders, receivers, mask, n, heads, is_sorted)
    return (out_v, out_x), (q, k, v, extra, senders, receivers, alpha, out_v, out_x)


def _attend_bwd(n, heads, is_sorted, res, grads):
    q, k, v, extra, senders, receivers, alpha, out_v, out_x = res
    # The barrier keeps XLA from merging the gathers below with the forward pass's identical
    # ones, which would keep those [E, H C] arrays alive between the passes instead of
    # fusing each gather into its consumer.
    q, k, v = jax.lax.optimization_barrier((q, k, v))
    g_v, g_x = grads
    g_v_e = _gather(g_v.astype(v.dtype), receivers, is_sorted)  # [E, H C]
    g_x_e = _gather(g_x, receivers, is_sorted)  # [E, H, X]
    # A padding edge (alpha 0 in every head) passes no gradient, even from a non-finite sender.
    live = jnp.any(alpha > 0, axis=1, keepdims=True)  # [E, 1]
    k_s, v_s = (jnp.where(live, _gather(a, senders), 0) for a in (k, v))
    d_alpha = _per_head_dot(g_v_e, v_s, heads)
    d_alpha = d_alpha + jnp.einsum("ehx,ex->eh", g_x_e, extra.astype(jnp.float32))
    # Softmax backward: ds_e = alpha_e (dalpha_e - sum over i's edges of alpha dalpha).
    total = _per_head_dot(g_v, out_v, heads) + jnp.sum(g_x * out_x, axis=-1)  # [N, H]
    d_score = alpha * (d_alpha - _gather(total, receivers, is_sorted))  # [E, H]
    d_q = _segment_sum(_scale_heads(k_s, d_score).astype(jnp.float32), receivers, n, is_sorted)
    # Two scatters, not one of [E, 2 H C]: XLA then writes each update once instead of again
    # into a concatenation.
    d_k = jax.ops.segment_sum(
        _scale_heads(_gather(q, receivers, is_sorted), d_score).astype(jnp.float32), senders, n
    )
    d_v = jax.ops.segment_sum(_scale_heads(g_v_e, alpha).astype(jnp.float32), senders, n)
    d_extra = jnp.einsum("eh,ehx->ex", alpha, g_x_e)
    return (
        d_q.astype(q.dtype),
        d_k.astype(k.dtype),
        d_v.astype(v.dtype),
        d_score,
        d_extra.astype(extra.dtype),
        None,
        None,
        None,
    )


_attend.defvjp(_attend_fwd, _attend_bwd)


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
        """New node features [N, H C] (fp32) from x [N, in] and the E edges senders -> receivers [E].

        edges: [E, edge_dim] edge features e_ij, or, when `edge_embedding` = (W [F, edge_dim],
        b [edge_dim]) is given, [E, F] raw features with e_ij = edges_ij @ W + b, which is then
        never formed at [E, edge_dim] (see the module docstring). edge_mask: [E], 0 = padding.
        sorted_by_receiver: promise that receivers are non-decreasing (faster segment ops).
        """
        n, h, c = x.shape[0], self.heads, self.out_per_head
        hc, cd = h * c, self.dtype
        lins = [self.lin_query, self.lin_key, self.lin_value] + ([self.lin_skip] if self.lin_skip else [])
        kernel = jnp.concatenate([lin.kernel[...] for lin in lins], axis=1)
        bias = jnp.concatenate([lin.bias[...] for lin in lins])
        proj = jnp.dot(x.astype(cd), kernel.astype(cd)) + bias.astype(cd)  # [N, 3 or 4 H C]
        q = proj[:, :hc] * jnp.asarray(1.0 / math.sqrt(c), cd)
        k, v = proj[:, hc : 2 * hc], proj[:, 2 * hc : 3 * hc]

        mask = jnp.ones(senders.shape, jnp.float32) if edge_mask is None else edge_mask
        live = mask > 0
        # Edge term W_e e_ij = raw_ij @ low with raw [E, F'], low [F', H C], never multiplied out.
        if self.lin_edge is None:
            # No edge features (edge_dim=None): an edge term of width 1 that is all zeros, so the
            # shapes below keep a non-empty axis (a reshape of a zero-width axis has no -1).
            raw, low = jnp.zeros((senders.shape[0], 1), jnp.float32), jnp.zeros((1, hc), jnp.float32)
        elif edges is None:
            raise ValueError("this TransformerConv has edge_dim set: pass `edges`")
        elif edge_embedding is None:
            raw, low = edges.astype(jnp.float32), self.lin_edge.kernel[...]
        else:
            w_in, b_in = edge_embedding
            w_e = self.lin_edge.kernel[...]
            raw = jnp.concatenate([edges.astype(jnp.float32), jnp.ones_like(edges[:, :1], jnp.float32)], 1)
            low = jnp.concatenate([w_in @ w_e, (b_in @ w_e)[None]], 0)
        # A padding edge contributes exactly nothing, whatever its features hold (0 * NaN = NaN).
        raw = jnp.where(live[:, None], raw, 0.0)
        f = raw.shape[1]
        low_heads = low.reshape(f, h, c)
        # q_i . (raw_ij @ low_h) = raw_ij . (q_ih @ low_h^T): a per-node [N, H F'] array, then per
        # edge a dot of F' numbers; one matmul with a block-diagonal [H C, H F'] matrix.
        q_low = jnp.dot(q.astype(jnp.float32), _block_diag(low_heads.transpose(1, 2, 0)))
        q_low_e = _gather(q_low, receivers, sorted_by_receiver).reshape(-1, h, f)
        score_bias = jnp.einsum("ehf,ef->eh", q_low_e, raw)

        out_v, out_x = _attend(q, k, v, score_bias, raw, senders, receivers, mask, n, h, sorted_by_receiver)
        # sum_j alpha_ij raw_ij @ low_h, per head: [N, H F'] @ block-diagonal [H F', H C].
        out = out_v + jnp.dot(out_x.reshape(n, h * f), _block_diag(low_heads.transpose(1, 0, 2)))

        if self.lin_skip is None:
            return out
        root = proj[:, 3 * hc :].astype(jnp.float32)
        if self.lin_beta is None:
            return out + root
        gate = jax.nn.sigmoid(jnp.concatenate([out, root, out - root], 1) @ self.lin_beta.kernel[...])
        return gate * root + (1.0 - gate) * out


class EdgeClassifier(nnx.Module):
    """Edge logits of a padded graph: node/edge input layers, TransformerConv stack, edge MLP.

    Call with one graph dict (`nodes` [N, node_in], `edges` [E, edge_in], `senders`,
    `receivers` [E] int32, optional `edge_mask` [E] and `message_order` [E or 2 E] int32 from
    `message_order`); returns logits [E] float32 (padding edges get a finite logit, to be
    masked in the loss). Other keys (labels, node_mask, ...) are ignored.
    """

    def __init__(
        self, cfg: EdgeClassifierConfig = EdgeClassifierConfig(), *, dtype: str = "float32", rngs: nnx.Rngs
    ):
        """dtype: the compute dtype, float32 | bfloat16 (a run's `train.precision`); parameters and
        logits stay float32."""
        if cfg.width % cfg.heads:
            raise ValueError(f"width {cfg.width} must be a multiple of heads {cfg.heads}")
        self.cfg, self.dtype, w = cfg, str(jnp.dtype(dtype)), cfg.width
        self.node_in = _linear(cfg.node_in, w, rngs)
        self.edge_in = _linear(cfg.edge_in, w, rngs)
        # Added to the edge embedding of the reversed copies (zero at start: a symmetric graph).
        self.reverse_edge = nnx.Param(jnp.zeros((w,), jnp.float32)) if cfg.bidirectional else None
        self.convs = nnx.List(
            [
                TransformerConv(w, w // cfg.heads, cfg.heads, w, beta=cfg.beta, dtype=dtype, rngs=rngs)
                for _ in range(cfg.layers)
            ]
        )
        self.norms = nnx.List([nnx.LayerNorm(w, epsilon=1e-5, rngs=rngs) for _ in range(cfg.layers)])
        self.head_hidden = _linear(3 * w, w, rngs)
        self.head_out = _linear(w, 1, rngs)

    def __call__(self, graph: dict) -> Array:
        cfg, cd = self.cfg, jnp.dtype(self.dtype)
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

        # Message-passing edge list, sorted by receiver once for all layers: by the host's
        # `message_order` when the graph carries it, else by a sort here (~70-130 ms per 200k
        # edges on a 2-core CPU, as much as a whole layer's forward).
        mp_s, mp_r, mp_edges, mp_mask = senders, receivers, edges, mask
        if cfg.bidirectional:
            mp_s, mp_r = jnp.concatenate([senders, receivers]), jnp.concatenate([receivers, senders])
            flag = jnp.repeat(jnp.asarray([0.0, 1.0]), senders.shape[0])[:, None]
            mp_edges = jnp.concatenate([jnp.concatenate([edges, edges]), flag], 1)
            mp_mask = jnp.concatenate([mask, mask])
            # The direction flag's column of the embedding is the learned reverse vector.
            w_in = jnp.concatenate([w_in, self.reverse_edge[...][None]], 0)
        order = graph.get("message_order")
        if order is None:
            order = jnp.argsort(mp_r, stable=True)
        elif order.shape != mp_r.shape:
            raise ValueError(
                f"message_order has {order.shape[0]} entries for {mp_r.shape[0]} message-passing edges "
                f"(bidirectional={cfg.bidirectional}: build it with the same setting)"
            )
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


def message_order(senders: np.ndarray, receivers: np.ndarray, bidirectional: bool = True) -> np.ndarray:
    """The permutation [E] (or [2 E] when bidirectional) that sorts the message-passing edges by
    receiver; store it in the graph as `message_order` (int32) to spare the model a sort per call.

    The message-passing edges are (senders -> receivers), followed when bidirectional by
    (receivers -> senders), as `EdgeClassifier` builds them.
    """
    mp_receivers = np.concatenate([receivers, senders]) if bidirectional else np.asarray(receivers)
    return np.argsort(mp_receivers, kind="stable").astype(np.int32)


def batched_logits(model: EdgeClassifier, graphs: dict) -> Array:
    """Edge logits [G, E] of a stack of G padded graphs (every leaf [G, ...]).

    `nnx.vmap` over the leading axis with the model broadcast: under jit with that axis sharded
    over the mesh, every device computes its own graphs. A stack of one graph is run unbatched
    (the vmapped gathers and scatters carry a batch dimension that XLA's CPU backend runs ~20 %
    slower).
    """
    if jax.tree.leaves(graphs)[0].shape[0] == 1:
        return model(jax.tree.map(lambda x: x[0], graphs))[None]
    return nnx.vmap(lambda m, g: m(g), in_axes=(None, 0))(model, graphs)
