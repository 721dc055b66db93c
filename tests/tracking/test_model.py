"""TransformerConv against its formula on hand-made graphs; the edge classifier's padding, shapes,
precision, gradients and sharding.

The formula (PyG's TransformerConv, concat heads): alpha_ij = softmax over the incoming edges of i of
(W_q x_i + b_q) . (W_k x_j + b_k + W_e e_ij) / sqrt(C); m_i = sum_j alpha_ij (W_v x_j + b_v + W_e e_ij);
out_i = m_i + W_r x_i + b_r, or with beta: g = sigmoid(w . [m_i, r_i, m_i - r_i]),
out_i = g r_i + (1 - g) m_i. Optionally also checked against PyG itself when a peer venv `.peer/`
with torch and torch_geometric is present.
"""

from __future__ import annotations

import math
import subprocess
import textwrap
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxhep import losses
from jaxhep.tracking.model import (
    EdgeClassifier,
    EdgeClassifierConfig,
    TransformerConv,
    _attend,
    batched_logits,
    message_order,
)
from tests.approx import approx  # noqa: I001

ROOT = Path(__file__).resolve().parents[2]


def _set(conv: TransformerConv, **weights):
    """Set the layer's Linear kernels ([in, out]) and biases from NumPy arrays."""
    for name, (kernel, bias) in weights.items():
        lin = getattr(conv, name)
        lin.kernel[...] = jnp.asarray(kernel, jnp.float32)
        if bias is not None:
            lin.bias[...] = jnp.asarray(bias, jnp.float32)


def _formula(x, e, senders, receivers, w, heads, beta_w=None, root=True):
    """The layer written out edge by edge and node by node, in float64 NumPy."""
    (wq, bq), (wk, bk), (wv, bv), (we, _), (wr, br) = (w[k] for k in ("q", "k", "v", "e", "r"))
    n, hc = x.shape[0], wq.shape[1]
    c = hc // heads
    q, k, v, r = x @ wq + bq, x @ wk + bk, x @ wv + bv, x @ wr + br
    out = np.zeros((n, hc))
    for i in range(n):
        into = [t for t in range(len(senders)) if receivers[t] == i]
        for h in range(heads):
            sl = slice(h * c, (h + 1) * c)
            keys = [k[senders[t], sl] + (e[t] @ we)[sl] for t in into]
            values = [v[senders[t], sl] + (e[t] @ we)[sl] for t in into]
            scores = np.array([q[i, sl] @ key / math.sqrt(c) for key in keys])
            if len(into):
                alpha = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
                out[i, sl] = sum(a * val for a, val in zip(alpha, values))
    if not root:
        return out
    if beta_w is None:
        return out + r
    gate = 1.0 / (1.0 + np.exp(-(np.concatenate([out, r, out - r], 1) @ beta_w)))
    return gate * r + (1.0 - gate) * out


# Four nodes, edges j -> i; node 2 hears three nodes, node 0 one, nodes 1 and 3 none.
SENDERS = np.array([0, 1, 3, 2], np.int32)
RECEIVERS = np.array([2, 2, 2, 0], np.int32)


def _small_weights(rng, f_in, hc, f_e):
    w = {name: (rng.normal(size=(f_in, hc)) * 0.7, rng.normal(size=hc) * 0.3) for name in "qkvr"}
    w["e"] = (rng.normal(size=(f_e, hc)) * 0.7, None)
    return w


def _layer(f_in, c, heads, f_e, w, beta_w=None, root=True):
    conv = TransformerConv(f_in, c, heads, f_e, root_weight=root, beta=beta_w is not None, rngs=nnx.Rngs(0))
    names = {"q": "lin_query", "k": "lin_key", "v": "lin_value", "e": "lin_edge", "r": "lin_skip"}
    _set(conv, **{names[k]: val for k, val in w.items() if root or k != "r"})
    if beta_w is not None:
        conv.lin_beta.kernel[...] = jnp.asarray(beta_w, jnp.float32)
    return conv


def _jit_call(conv, *args, **kwargs):
    """conv(*args, **kwargs) as one compiled program: called eagerly, every small op compiles
    on its own, which is several times slower on XLA:CPU."""
    graphdef, state = nnx.split(conv)
    return jax.jit(lambda s, *a: nnx.merge(graphdef, s)(*a, **kwargs))(state, *args)


def test_layer_without_edge_features_matches_formula():
    """edge_dim=None (PyG's default): keys and values without an edge term."""
    rng = np.random.default_rng(5)
    f_in, c, heads = 3, 2, 2
    x = rng.normal(size=(4, f_in))
    w = _small_weights(rng, f_in, heads * c, 1)
    w["e"] = (np.zeros((1, heads * c)), None)  # the formula's edge term, switched off
    expected = _formula(x, np.zeros((4, 1)), SENDERS, RECEIVERS, w, heads)
    conv = TransformerConv(f_in, c, heads, rngs=nnx.Rngs(0))
    assert conv.lin_edge is None
    _set(
        conv,
        **{n: w[k] for k, n in (("q", "lin_query"), ("k", "lin_key"), ("v", "lin_value"), ("r", "lin_skip"))},
    )
    out = _jit_call(conv, jnp.asarray(x, jnp.float32), SENDERS, RECEIVERS)
    chex.assert_shape(out, (4, heads * c))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_masked_edges_contribute_nothing_even_when_non_finite(bad):
    """Padding edges whose features, or whose sender's state, are NaN / inf change neither the
    outputs nor the gradients of the real nodes: the layer equals the graph without them (as PyG,
    where those edges are absent)."""
    rng = np.random.default_rng(7)
    f_in, c, heads, f_e = 3, 2, 2, 2
    conv = _layer(f_in, c, heads, f_e, _small_weights(rng, f_in, heads * c, f_e))
    x = np.concatenate([rng.normal(size=(4, f_in)), np.full((1, f_in), bad)])  # node 4: padding
    e = rng.normal(size=(4, f_e))
    # Two padding edges: one from the non-finite node 4, one with non-finite features.
    senders, receivers = (
        np.append(SENDERS, [4, 1]).astype(np.int32),
        np.append(RECEIVERS, [2, 0]).astype(np.int32),
    )
    e_pad = np.concatenate([e, np.full((2, f_e), bad)])
    mask = np.array([1, 1, 1, 1, 0, 0], np.float32)
    graphdef, state = nnx.split(conv)

    def real_nodes(x, e, s, r, m):
        out = nnx.merge(graphdef, state)(x, s, r, e, m)
        return out[:4], jnp.sum(out[:4] ** 2)

    padded = jax.jit(jax.value_and_grad(lambda x, e: real_nodes(x, e, senders, receivers, mask)[1], (0, 1)))
    clean = jax.jit(jax.value_and_grad(lambda x, e: real_nodes(x, e, SENDERS, RECEIVERS, None)[1], (0, 1)))
    xj, ej = jnp.asarray(x, jnp.float32), jnp.asarray(e_pad, jnp.float32)
    (loss_p, (gx_p, ge_p)), (loss_c, (gx_c, ge_c)) = padded(xj, ej), clean(xj[:4], ej[:4])
    np.testing.assert_allclose(
        real_nodes(xj, ej, senders, receivers, mask)[0],
        real_nodes(xj[:4], ej[:4], SENDERS, RECEIVERS, None)[0],
        rtol=1e-6,
        atol=1e-6,
    )
    assert np.isfinite(loss_p) and loss_p == approx(float(loss_c), rel=1e-6)
    np.testing.assert_allclose(gx_p[:4], gx_c, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ge_p[:4], ge_c, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ge_p[4:], 0.0)


def test_one_head_scalar_case_by_hand():
    """in = C = 1, all weights 1: node 1 hears node 0 (key 0) and node 2 (key ln 2), so
    alpha = (1/3, 2/3), m_1 = 2/3 (2 + e) = 2/3 ln 2 and out_1 = x_1 + 2/3 ln 2."""
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    e = np.array([[0.0], [math.log(2.0) - 2.0]])  # key of 2 -> 1: x_2 + e = ln 2
    one = (np.ones((1, 1)), np.zeros(1))
    conv = _layer(1, 1, 1, 1, {"q": one, "k": one, "v": one, "e": (np.ones((1, 1)), None), "r": one})
    out = _jit_call(
        conv, jnp.asarray(x, jnp.float32), np.array([0, 2]), np.array([1, 1]), jnp.asarray(e, jnp.float32)
    )
    np.testing.assert_allclose(out[1, 0], 1.0 + 2.0 / 3.0 * math.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(out[[0, 2, 3], 0]), [0.0, 2.0, 3.0], atol=1e-6)  # root only


@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize("variant", ["root", "beta", "no_root"])
def test_layer_matches_formula(heads, variant):
    rng = np.random.default_rng(heads)
    f_in, c, f_e = 3, 2, 2
    x, e = rng.normal(size=(4, f_in)), rng.normal(size=(4, f_e))
    w = _small_weights(rng, f_in, heads * c, f_e)
    beta_w = rng.normal(size=(3 * heads * c, 1)) if variant == "beta" else None
    root = variant != "no_root"
    expected = _formula(x, e, SENDERS, RECEIVERS, w, heads, beta_w, root)
    conv = _layer(f_in, c, heads, f_e, w, beta_w, root)
    args = (jnp.asarray(x, jnp.float32), SENDERS, RECEIVERS, jnp.asarray(e, jnp.float32))
    np.testing.assert_allclose(_jit_call(conv, *args), expected, rtol=1e-5, atol=1e-5)
    # Edge features given raw, with the embedding e = raw @ W + b folded into the layer.
    w_in, b_in = rng.normal(size=(3, f_e)), rng.normal(size=f_e)
    raw = rng.normal(size=(4, 3))
    expected = _formula(x, raw @ w_in + b_in, SENDERS, RECEIVERS, w, heads, beta_w, root)
    folded = _jit_call(
        conv, *args[:3], jnp.asarray(raw, jnp.float32), edge_embedding=(jnp.asarray(w_in), jnp.asarray(b_in))
    )
    np.testing.assert_allclose(folded, expected, rtol=1e-5, atol=1e-5)
    # Receivers sorted (the classifier's layout) with the sorted-index hint.
    order = np.argsort(RECEIVERS, kind="stable")
    hinted = _jit_call(
        conv, args[0], SENDERS[order], RECEIVERS[order], args[3][order], sorted_by_receiver=True
    )
    np.testing.assert_allclose(hinted, _jit_call(conv, *args), rtol=1e-6, atol=1e-6)


def test_layer_masked_edges_send_nothing():
    rng = np.random.default_rng(3)
    x, e = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    w = _small_weights(rng, 3, 4, 2)
    conv = _layer(3, 2, 2, 2, w)
    mask = np.array([1, 0, 1, 1], np.float32)  # drop edge 1 -> 2
    keep = mask > 0
    out = _jit_call(
        conv, jnp.asarray(x, jnp.float32), SENDERS, RECEIVERS, jnp.asarray(e, jnp.float32), jnp.asarray(mask)
    )
    expected = _formula(x, e[keep], SENDERS[keep], RECEIVERS[keep], w, 2)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def _attend_reference(q, k, v, bias, extra, senders, receivers, mask, n, heads):
    """`_attend` with plain segment ops and JAX's own autodiff (the hand-written VJP's reference)."""
    e, hc = senders.shape[0], q.shape[1]
    score = (q[receivers] * k[senders]).reshape(e, heads, -1).sum(-1) + bias
    score = jnp.where(mask[:, None] > 0, score, -jnp.inf)
    shift = jax.lax.stop_gradient(jax.ops.segment_max(score, receivers, n))
    p = jnp.exp(score - jnp.where(jnp.isfinite(shift), shift, 0.0)[receivers])
    alpha = p / (jax.ops.segment_sum(p, receivers, n) + 1e-16)[receivers]
    out_v = jax.ops.segment_sum(
        (v[senders].reshape(e, heads, -1) * alpha[..., None]).reshape(e, hc), receivers, n
    )
    out_x = jax.ops.segment_sum(alpha[:, :, None] * extra[:, None, :], receivers, n)
    return out_v, out_x


def test_attention_vjp_matches_autodiff():
    rng = np.random.default_rng(4)
    n, e, heads, c, x_dim = 7, 20, 2, 3, 4
    senders, receivers = rng.integers(0, n, e).astype(np.int32), rng.integers(0, n - 1, e).astype(np.int32)
    mask = jnp.asarray(rng.random(e) < 0.8, jnp.float32)
    arrays = [
        jnp.asarray(rng.normal(size=s), jnp.float32) for s in [(n, heads * c)] * 3 + [(e, heads), (e, x_dim)]
    ]
    cot_v, cot_x = rng.normal(size=(n, heads * c)), rng.normal(size=(n, heads, x_dim))

    def objective(fn):
        def f(*a):
            out_v, out_x = fn(*a, senders, receivers, mask, n, heads)
            return jnp.sum(out_v * cot_v) + jnp.sum(out_x * cot_x)

        return f

    # Under jit: op-by-op (eager) autodiff compiles every small op on its own, 10x slower here.
    ours = jax.jit(jax.value_and_grad(objective(lambda *a: _attend(*a, False)), argnums=range(5)))(*arrays)
    reference = jax.jit(jax.value_and_grad(objective(_attend_reference), argnums=range(5)))(*arrays)
    np.testing.assert_allclose(ours[0], reference[0], rtol=1e-5)
    for got, want in zip(ours[1], reference[1]):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


# ------------------------------------------------------------------------------- classifier


def _graph(rng, n=12, e=40, node_in=3, edge_in=4):
    return {
        "nodes": rng.normal(size=(n, node_in)).astype(np.float32),
        "edges": rng.normal(size=(e, edge_in)).astype(np.float32),
        "senders": rng.integers(0, n, e).astype(np.int32),
        "receivers": rng.integers(0, n, e).astype(np.int32),
        "node_mask": np.ones(n, bool),
        "edge_mask": np.ones(e, bool),
        "labels": (rng.random(e) < 0.3).astype(np.float32),
    }


def _pad(graph, n_pad, e_pad, rng):
    """The graph padded as padding.py does (padding edges join the last, padding node to itself),
    with large random features on the padding so any leak would show."""
    n, e = len(graph["nodes"]), len(graph["edges"])
    out = {}
    out["nodes"] = np.concatenate([graph["nodes"], 50 * rng.normal(size=(n_pad, graph["nodes"].shape[1]))])
    out["edges"] = np.concatenate([graph["edges"], 50 * rng.normal(size=(e_pad, graph["edges"].shape[1]))])
    last = n + n_pad - 1
    out["senders"] = np.concatenate([graph["senders"], np.full(e_pad, last)]).astype(np.int32)
    # One padding edge from a real node into the padding node: its reversed copy points at a real node.
    out["senders"][e] = 0
    out["receivers"] = np.concatenate([graph["receivers"], np.full(e_pad, last)]).astype(np.int32)
    out["node_mask"] = np.arange(n + n_pad) < n
    out["edge_mask"] = np.arange(e + e_pad) < e
    out["labels"] = np.concatenate([graph["labels"], np.zeros(e_pad, np.float32)])
    return {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in out.items()}


@nnx.jit
def _logits(model, graph):
    return model(graph)


def _model(dtype="float32", **kw):
    return EdgeClassifier(
        EdgeClassifierConfig(width=16, heads=2, layers=2, node_in=3, edge_in=4, **kw),
        dtype=dtype,
        rngs=nnx.Rngs(0),
    )


@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_changes_no_real_logit(bidirectional):
    rng = np.random.default_rng(5)
    graph = _graph(rng)
    model = _model(bidirectional=bidirectional, beta=True)
    padded = _logits(model, _pad(graph, n_pad=5, e_pad=9, rng=rng))
    np.testing.assert_allclose(padded[:40], _logits(model, graph), rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(padded))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_host_message_order_equals_sort_in_model(bidirectional):
    rng = np.random.default_rng(6)
    graph = _graph(rng)
    model = _model(bidirectional=bidirectional)
    ordered = dict(graph, message_order=message_order(graph["senders"], graph["receivers"], bidirectional))
    np.testing.assert_allclose(_logits(model, ordered), _logits(model, graph), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="message_order"):
        _logits(
            model,
            dict(graph, message_order=message_order(graph["senders"], graph["receivers"], not bidirectional)),
        )


def test_shapes_under_jit_one_graph_and_stack():
    rng = np.random.default_rng(7)
    model = _model()
    graphdef, state = nnx.split(model)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def one(state, graph):
        return nnx.merge(graphdef, state)(graph)

    @jax.jit
    def stack(state, graphs):
        return batched_logits(nnx.merge(graphdef, state), graphs)

    graph = _graph(rng)
    chex.assert_shape(one(state, graph), (40,))
    chex.assert_type(one(state, _graph(rng)), jnp.float32)  # same shapes: no retrace
    graphs = jax.tree.map(lambda *xs: np.stack(xs), *[_graph(rng) for _ in range(3)])
    logits = stack(state, graphs)
    chex.assert_shape(logits, (3, 40))
    for g in range(3):
        np.testing.assert_allclose(
            logits[g], one(state, jax.tree.map(lambda x, g=g: x[g], graphs)), atol=1e-5
        )
    chex.assert_shape(stack(state, jax.tree.map(lambda x: x[:1], graphs)), (1, 40))


def test_bfloat16_gives_finite_float32_logits():
    rng = np.random.default_rng(8)
    graph = _graph(rng, n=30, e=120)
    model = _model(dtype="bfloat16")
    logits = jax.jit(lambda g: model(g))(graph)
    assert logits.dtype == jnp.float32
    assert np.all(np.isfinite(logits))
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    full = _logits(_model(dtype="float32"), graph)
    assert np.corrcoef(np.asarray(logits), np.asarray(full))[0, 1] > 0.99


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_gradients_finite_and_loss_falls(dtype):
    rng = np.random.default_rng(9)
    graph = _pad(_graph(rng), n_pad=3, e_pad=6, rng=rng)
    model = _model(dtype=dtype, beta=True)
    opt = nnx.Optimizer(model, __import__("optax").adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt):
        def loss_fn(m):
            return losses.weighted_bce(m(graph), graph["labels"], 2.0, graph["edge_mask"])

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss, grads

    first, grads = step(model, opt)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    for _ in range(30):
        loss, _ = step(model, opt)
    assert np.isfinite(loss) and loss < first


def test_sharded_stack_equals_per_graph():
    """A stack of graphs sharded over the 8 test devices gives each graph's own logits."""
    devices = jax.devices()
    mesh = jax.sharding.Mesh(np.asarray(devices), ("data",))
    rng = np.random.default_rng(10)
    graphs = jax.tree.map(lambda *xs: np.stack(xs), *[_graph(rng) for _ in range(len(devices))])
    sharded = jax.device_put(graphs, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
    model = _model()
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda s, g: batched_logits(nnx.merge(graphdef, s), g))
    logits = forward(state, sharded)
    compiled = forward.lower(state, sharded).compile().as_text()
    assert not any(op in compiled for op in ("all-gather", "all-reduce", "all-to-all", "collective-permute"))
    for g in range(len(devices)):  # each graph alone (one compiled program, unsharded)
        np.testing.assert_allclose(
            logits[g], _logits(model, jax.tree.map(lambda x, g=g: x[g], graphs)), atol=1e-5
        )


# ----------------------------------------------------------------- optional: PyG itself

_PYG_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, torch
    from torch_geometric.nn import TransformerConv
    d = dict(np.load(sys.argv[1]))
    torch.manual_seed(0)
    conv = TransformerConv(6, 4, heads=2, edge_dim=3, beta=bool(d["beta"]))
    with torch.no_grad():
        for name, p in conv.named_parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    out = conv(torch.tensor(d["x"]), torch.tensor(d["edge_index"]).long(), torch.tensor(d["e"]))
    state = {k: v.numpy() for k, v in conv.state_dict().items()}
    np.savez(sys.argv[1], out=out.detach().numpy(), **state)
    """
)


@pytest.mark.parametrize("beta", [False, True])
def test_matches_pytorch_geometric_when_available(tmp_path, beta):
    python = ROOT / ".peer" / "bin" / "python"
    if not python.exists():
        pytest.skip("no .peer venv with torch_geometric")
    rng = np.random.default_rng(11)
    n, e = 9, 30
    x, edges = rng.normal(size=(n, 6)).astype(np.float32), rng.normal(size=(e, 3)).astype(np.float32)
    edge_index = np.stack([rng.integers(0, n, e), rng.integers(0, n, e)]).astype(np.int64)
    path = tmp_path / "pyg.npz"
    np.savez(path, x=x, e=edges, edge_index=edge_index, beta=beta)
    done = subprocess.run([str(python), "-c", _PYG_SCRIPT, str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"PyG not usable in .peer: {done.stderr[-300:]}")
    d = np.load(path)
    conv = TransformerConv(6, 4, 2, 3, beta=beta, rngs=nnx.Rngs(0))
    names = ["lin_query", "lin_key", "lin_value", "lin_edge", "lin_skip"] + (["lin_beta"] if beta else [])
    for name in names:
        lin = getattr(conv, name)
        lin.kernel[...] = jnp.asarray(d[f"{name}.weight"].T)
        if lin.bias is not None:
            lin.bias[...] = jnp.asarray(d[f"{name}.bias"])
    out = conv(
        jnp.asarray(x), edge_index[0].astype(np.int32), edge_index[1].astype(np.int32), jnp.asarray(edges)
    )
    np.testing.assert_allclose(out, d["out"], rtol=1e-5, atol=1e-5)
