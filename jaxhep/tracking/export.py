"""The edge classifiers of a tracking run as ONNX graphs, for ONNX Runtime in ACTS / Exa.TrkX pipelines.

    python -m experiments.tracking export RUN_DIR [--out DIR]

One graph per classifier: `edges.onnx` (the classifier whose scores make the tracks) and, for a
two-stage run, `filter.onnx` (stage 1). Each takes one unpadded event graph with dynamic node and
edge counts, in the layout of the Exa.TrkX / ACTS GNN stages,

    node_features [N, F_n] float32, edge_index [2, E] int64 (row 0 sender = inner hit, row 1
    receiver = outer hit), edge_features [E, F_e] float32  ->  edge_score [E], edge_logit [E],

and stores in its metadata (and `<name>.json`) what a user needs to rebuild such a graph: the feature
names, order and scales, how the edges were made (method, k, pT cut) and the run's threshold(s).

The exported function is `edge_logits` below, the model's forward pass on one graph without padding
or masks. It differs from `EdgeClassifier.__call__` in two places, both for the converter: (1) no
sort of the message-passing edges by receiver (jax2onnx 0.17 lowers `lax.sort` only on static
lengths), which changes only the summation order of the segment sums; (2) `lax.concatenate` where
an axis of dynamic length is joined (jax2onnx's `jnp.concatenate` gives the result the first
operand's length there). The test checks the file's scores against the predictor's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxhep.export import Input, OnnxGraph, float32_twin
from jaxhep.tracking.api import TrackingPredictor, load_predictor
from jaxhep.tracking.graph import EDGE_CLIP, EDGE_FEATURES, EDGE_SCALES, NODE_FEATURES, NODE_SCALES
from jaxhep.tracking.model import EdgeClassifier, _gather, _small_matmul

# Sizes of the two example graphs the exported files are checked on (different, so the check
# proves the node and edge counts are dynamic).
EXAMPLE_SIZES = ((60, 240), (97, 411))


def edge_logits(model: EdgeClassifier, nodes, senders, receivers, edges) -> jax.Array:
    """Edge logits [E] float32 of one unpadded graph: nodes [N, node_in], senders / receivers [E]
    int, edges [E, edge_in]; the same function as `model` on that graph (see the module docstring)."""
    cfg = model.cfg
    nodes, edges = nodes.astype(jnp.float32), edges.astype(jnp.float32)
    w_in, b_in = model.edge_in.kernel[...], model.edge_in.bias[...]
    mp_s, mp_r, mp_edges = senders, receivers, edges
    if cfg.bidirectional:
        # Messages also flow along the reversed edges, flagged by an extra column (model.py).
        mp_s = jax.lax.concatenate([senders, receivers], 0)
        mp_r = jax.lax.concatenate([receivers, senders], 0)
        flag = jax.lax.concatenate([jnp.zeros_like(edges[:, :1]), jnp.ones_like(edges[:, :1])], 0)
        mp_edges = jnp.concatenate([jax.lax.concatenate([edges, edges], 0), flag], 1)
        w_in = jnp.concatenate([w_in, model.reverse_edge[...][None]], 0)

    h = model.node_in(nodes)
    for conv, norm in zip(model.convs, model.norms):
        m = conv(h, mp_s, mp_r, mp_edges, None, edge_embedding=(w_in, b_in))
        h = norm(h + jax.nn.relu(m.astype(jnp.float32)))

    # The edge MLP on [h_j, h_i, e_ij], its first layer split as in EdgeClassifier.__call__.
    w = cfg.width
    k1, b1 = model.head_hidden.kernel[...], model.head_hidden.bias[...]
    hidden = (
        _gather(h @ k1[:w], senders)
        + _gather(h @ k1[w : 2 * w], receivers)
        + _small_matmul(edges, model.edge_in.kernel[...] @ k1[2 * w :])
        + (model.edge_in.bias[...] @ k1[2 * w :] + b1)
    )
    logits = jax.nn.relu(hidden) @ model.head_out.kernel[...]
    return logits[:, 0] + model.head_out.bias[...][0]


def float32_model(model: EdgeClassifier) -> EdgeClassifier:
    """`model` computing in float32 (its parameters are float32 whatever it trained in): ONNX Runtime's
    CPU kernels have no bfloat16 matmul."""
    if model.dtype == "float32":
        return model
    return float32_twin(model, lambda: EdgeClassifier(model.cfg, dtype="float32", rngs=nnx.Rngs(0)))


def scorer(model: EdgeClassifier):
    """fn(node_features [N, F_n], edge_index [2, E] int, edge_features [E, F_e]) -> (edge_score [E]
    probability, edge_logit [E]): what the ONNX graph computes."""
    model = float32_model(model)

    # Jitted: the export's check calls it on the example graphs, where op-by-op dispatch of the
    # model takes ~15 s per call on a 2-core CPU; jax2onnx converts through the jit.
    @jax.jit
    def fn(node_features, edge_index, edge_features):
        index = edge_index.astype(jnp.int32)
        logit = edge_logits(model, node_features, index[0], index[1], edge_features)
        return jax.nn.sigmoid(logit), logit

    return fn


def example_graph(n_node: int, n_edge: int, node_in: int, edge_in: int, seed: int = 0) -> tuple:
    """A random graph (node_features, edge_index int64, edge_features) with features in the scaled
    range of real graphs (about [-1, 1]), to check an exported file on."""
    rng = np.random.default_rng(seed)
    return (
        rng.uniform(-1, 1, (n_node, node_in)).astype(np.float32),
        rng.integers(0, n_node, (2, n_edge)).astype(np.int64),
        rng.uniform(-1, 1, (n_edge, edge_in)).astype(np.float32),
    )


def classifier_graph(name: str, model: EdgeClassifier, description: dict) -> OnnxGraph:
    """The OnnxGraph of one classifier; `description` goes into its metadata and sidecar."""
    cfg = model.cfg
    inputs = (
        Input("node_features", ("N", cfg.node_in)),
        Input("edge_index", (2, "E"), "int64"),
        Input("edge_features", ("E", cfg.edge_in)),
    )
    examples = [
        example_graph(n, e, cfg.node_in, cfg.edge_in, seed) for seed, (n, e) in enumerate(EXAMPLE_SIZES)
    ]
    # ONNX metadata values are strings: the lists and dicts go in as JSON.
    metadata = {k: v if isinstance(v, str) else json.dumps(v) for k, v in description.items()}
    outputs = ("edge_score", "edge_logit")
    return OnnxGraph(name, scorer(model), inputs, outputs, examples, metadata, sidecar=description)


def describe(predictor: TrackingPredictor, stage: str, run_dir: str | os.PathLike) -> dict:
    """What a user of classifier `stage` ("edges" | "filter") needs besides the file: inputs, the
    graph construction, its threshold and place in the cascade."""
    cfg = predictor.cfg
    model = predictor.edges if stage == "edges" else predictor.filter
    mc = model.cfg
    two_stage = predictor.filter is not None
    if stage == "filter":
        role = (
            "stage 1 of 2: keep the edges with edge_score >= threshold (the run rounded these scores to "
            "float16 first) and pass that sub-graph to edges.onnx"
        )
        threshold = predictor.filter_threshold
    elif two_stage:
        role = (
            "stage 2 of 2: scores the edges filter.onnx keeps (dropped edges score 0); an edge with "
            "edge_score >= threshold joins two hits of a track"
        )
        threshold = predictor.threshold
    else:
        role = "the only stage: an edge with edge_score >= threshold joins two hits of a track"
        threshold = predictor.threshold
    return {
        "task": "tracking",
        "stage": stage,
        "role": role,
        "run": str(Path(run_dir).resolve().name),
        "threshold": float(threshold),
        "track_method": cfg.eval.track_method,
        "node_features": list(NODE_FEATURES[: mc.node_in]),
        "node_scales": list(NODE_SCALES[: mc.node_in]),
        "node_note": "feature = raw / scale; r, z in mm, phi in rad, n_cells and summed cell value per hit",
        "edge_features": list(EDGE_FEATURES[: mc.edge_in]),
        "edge_scales": list(EDGE_SCALES[: mc.edge_in]),
        "edge_clip": EDGE_CLIP,
        "edge_note": (
            "receiver minus sender, feature = clip(raw / scale, -edge_clip, edge_clip); phi_slope = "
            "dphi / dr (rad/mm), z0 = z intercept of the sender-receiver line at r = 0 (mm)"
        ),
        "edge_index": "row 0: sender (inner hit), row 1: receiver (outer hit), indices into node_features",
        "graph": {
            "method": cfg.data.method,
            "k": cfg.data.k,
            "pt_min_GeV": cfg.data.pt_min,
            "builder": "jaxhep.tracking.graph.build_graph (defaults for the other settings)",
        },
        "model": {
            "width": mc.width,
            "heads": mc.heads,
            "layers": mc.layers,
            "bidirectional": mc.bidirectional,
            "trained_in": model.dtype,
            "computes_in": "float32",
        },
    }


def onnx_graphs(run_dir: str | os.PathLike) -> list[OnnxGraph]:
    """The classifiers of the finished tracking run in `run_dir`: "edges" and, for a two-stage run,
    "filter" (stage 1)."""
    predictor = load_predictor(run_dir)
    graphs = [classifier_graph("edges", predictor.edges, describe(predictor, "edges", run_dir))]
    if predictor.filter is not None:
        graphs.append(classifier_graph("filter", predictor.filter, describe(predictor, "filter", run_dir)))
    return graphs
