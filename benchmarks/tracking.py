"""Train and inference throughput (edges/s) and peak memory of the tracking edge classifier, as JSON.

    python benchmarks/tracking.py                                   # 20 k nodes / 200 k edges, fp32
    python benchmarks/tracking.py --nodes 100000 --edges 1000000 --dtype bfloat16

The graph is the PyTorch Geometric peer benchmark's (`peers.py tc`, BUILD_NOTES.md): N random nodes
with 3 features, E random edges with 4 features, 10 % positive labels, and the same model size (3
TransformerConv layers, width 128, 2 heads). Messages flow along the edges only (`--bidirectional`
off), so the work equals the peer's. Training runs the real jaxhep train step (weighted BCE with
pos_weight 9, Adam, `steps_per_call` steps per compiled call; no gradient clipping, as the peer);
inference is one jitted forward pass. Both are timed on device-resident data, after a warm-up that
compiles. Beside them, the same trained model exported to ONNX (jaxhep/tracking/export.py) scores the
same graph in ONNX Runtime's CPU session, as an ACTS / Exa.TrkX pipeline would run it (`--onnx`;
the conversion takes ~30 s).

`--pipeline` times instead the whole path of an event, as the TrackML challenge's throughput phase
did: read -> graph -> filter (stage 1) -> prune -> classify (stage 2) -> tracks -> submission, per
stage and per event, with peak memory:

    python benchmarks/tracking.py --pipeline runs/tracking/<run-id> --pileup 200 --events 3
    python benchmarks/tracking.py --pipeline untrained --pt-floor 0.2       # default-size classifiers

Events come from `--data FOLDER` or are simulated (`--pileup`, `--events`) and written first, so
reading the files is timed too. Every event goes through once untimed (compilation of each padded
size), then once timed; the medians over the events are reported, and the TrackML score (all
particles and above 1 GeV) where the events have truth. "untrained": the default config's two
classifiers with random weights; the filter keeps the `--keep` fraction of the edges (7.8 %, what the
trained mu = 200 filter kept), so the stages do the work of a trained pipeline (not its tracks).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def random_graph(n_nodes: int, n_edges: int, node_in: int = 3, edge_in: int = 4, seed: int = 0) -> dict:
    """One graph in the padded-graph layout (nothing padded: all masks 1), NumPy leaves."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return {
        "nodes": rng.normal(size=(n_nodes, node_in)).astype(np.float32),
        "edges": rng.normal(size=(n_edges, edge_in)).astype(np.float32),
        "senders": rng.integers(0, n_nodes, n_edges).astype(np.int32),
        "receivers": rng.integers(0, n_nodes, n_edges).astype(np.int32),
        "node_mask": np.ones(n_nodes, np.float32),
        "edge_mask": np.ones(n_edges, np.float32),
        "labels": (rng.random(n_edges) < 0.1).astype(np.float32),
    }


def onnx_runtime(model, graph: dict, logits, repeats: int) -> dict:
    """The exported `model`'s ONNX Runtime CPU timing on `graph` (unpadded, all masks 1) and its
    largest |logit difference| to jaxhep's `logits` [E]; or why it did not run."""
    import numpy as np

    from benchmarks.common import timed
    from jaxhep.errors import ConfigError
    from jaxhep.export import convert, require_converter, run_onnx
    from jaxhep.tracking.export import classifier_graph

    try:
        _, ort = require_converter()
    except ConfigError as err:
        return {"onnx": str(err)}
    # One intra-op thread: ONNX Runtime's multi-threaded CPU ScatterND with a reduction races on
    # repeated indices (microsoft/onnxruntime#18048, #23396): a segment sum over 200 k edges comes out
    # wrong by ~0.1-0.5 in the logits with the default threads, and right with one.
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    data = convert(classifier_graph("edges", model, {})).SerializeToString()
    sess = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    inputs = (
        graph["nodes"],
        np.stack([graph["senders"], graph["receivers"]]).astype(np.int64),
        graph["edges"],
    )
    t = timed(lambda: run_onnx(sess, inputs), warmup=1, repeats=repeats)
    diff = np.max(np.abs(run_onnx(sess, inputs)[1] - np.asarray(logits)))
    return {
        "onnx_infer_ms_per_step": 1e3 * t,
        "onnx_infer_edges_per_s": graph["edges"].shape[0] / t,
        "onnx_max_abs_logit_diff": float(diff),
        "onnxruntime": ort.__version__,
        "onnx_threads": 1,
    }


def bench(a) -> dict:
    import jax
    import numpy as np
    from flax import nnx

    from benchmarks.common import emit, environment, peak_memory, timed, train_calls
    from jaxhep import losses
    from jaxhep.mesh import make_mesh, shard_batch
    from jaxhep.tracking.model import EdgeClassifier, EdgeClassifierConfig, batched_logits, message_order
    from jaxhep.train import TrainConfig, Trainer

    mesh = make_mesh()
    n_dev = mesh.devices.size
    cfg = EdgeClassifierConfig(
        width=a.width,
        heads=a.heads,
        layers=a.layers,
        bidirectional=a.bidirectional,
        node_in=3,
        edge_in=4,
    )
    model = EdgeClassifier(cfg, dtype=a.dtype, rngs=nnx.Rngs(0))
    n_params = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    pos_weight = 9.0  # the peer's: negatives / positives of its 10 % labels

    def loss_fn(m, batch, key):
        logits = batched_logits(m, batch)  # [G, E]
        loss = losses.weighted_bce(
            logits.ravel(), batch["labels"].ravel(), pos_weight, batch["edge_mask"].ravel()
        )
        return loss, {}

    k = a.steps_per_call
    trainer = Trainer(
        model,
        loss_fn,
        batched_logits,
        TrainConfig(batch_size=n_dev, steps_per_call=k, grad_clip_norm=None, learning_rate=1e-3),
        mesh,
        total_steps=10_000,
    )
    graph = random_graph(a.nodes, a.edges)
    if not a.sort_in_model:
        # What the data pipeline stores with each padded graph (once per graph, on the host).
        graph["message_order"] = message_order(graph["senders"], graph["receivers"], a.bidirectional)
    # One graph per device (the training layout: a stack of padded graphs sharded over "data").
    chunk = {key: np.broadcast_to(v, (k, n_dev, *v.shape)) for key, v in graph.items()}
    chunk = shard_batch(chunk, mesh, n_dev, batch_axis=1)
    train = train_calls(trainer, chunk, k)

    repeats = max(1, a.steps // k)
    t_train = timed(train, warmup=1, repeats=repeats) / k

    graphdef, state = nnx.split(trainer.model())

    @jax.jit
    def infer(state, g):
        return nnx.merge(graphdef, state)(g)

    one = jax.device_put(graph)
    t_infer = timed(lambda: infer(state, one).block_until_ready(), warmup=2, repeats=a.steps)
    onnx = onnx_runtime(trainer.model(), graph, infer(state, one), a.steps) if a.onnx else {}
    emit(
        {
            "benchmark": "tracking_edge_classifier",
            "nodes": a.nodes,
            "edges": a.edges,
            "params": int(n_params),
            "width": a.width,
            "heads": a.heads,
            "layers": a.layers,
            "bidirectional": a.bidirectional,
            "dtype": a.dtype,
            "message_order": "in-model sort" if a.sort_in_model else "host",
            "steps_per_call": k,
            "graphs_per_step": n_dev,
            "train_ms_per_step": 1e3 * t_train,
            "train_edges_per_s": n_dev * a.edges / t_train,
            "infer_ms_per_step": 1e3 * t_infer,
            "infer_edges_per_s": a.edges / t_infer,
            **onnx,
            **peak_memory(),
            **environment(),
        }
    )


STAGES = ("read", "graph", "filter", "prune", "classify", "tracks", "submission")


def untrained_predictor(pt_floor: float | None):
    """The default config's two classifiers with random weights (the filter's threshold is set from
    the first event, `--keep`), graphs down to `pt_floor` GeV (None: the default's)."""
    import dataclasses

    from flax import nnx

    from jaxhep.tracking import config
    from jaxhep.tracking.api import TrackingPredictor
    from jaxhep.tracking.model import EdgeClassifier

    cfg = config.default()
    if pt_floor is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, pt_floor=pt_floor))
    first, second = (
        EdgeClassifier(config.stage_model(cfg, stage), rngs=nnx.Rngs(seed))
        for seed, stage in enumerate(("filter", "edges"))
    )
    return TrackingPredictor(cfg, second, 0.5, first, None)


def pipeline(a) -> None:
    import tempfile

    import numpy as np

    from benchmarks.common import emit, environment, peak_memory
    from jaxhep.tracking.io import find_file, list_events, read_event
    from jaxhep.tracking.score import hit_particle_pt, trackml_score, trackml_score_above_pt
    from jaxhep.tracking.sim.simulate import simulate_dataset
    from jaxhep.tracking.tracks import write_submission
    from jaxhep.tracking.training import graph_scores

    tmp = tempfile.TemporaryDirectory()
    folder = Path(a.data) if a.data else Path(tmp.name) / "events"
    if not a.data:
        simulate_dataset(folder, a.events, seed=a.seed, pileup=a.pileup)
    prefixes = [str(folder / name) for name in list_events(folder)][: a.events]
    if a.pipeline == "untrained":
        predictor = untrained_predictor(a.pt_floor)
        scores = graph_scores(predictor.filter, [predictor.graph(prefixes[0])])[0]
        predictor.filter_threshold = float(np.quantile(scores, 1.0 - a.keep))
    else:
        from jaxhep.tracking.api import load_predictor

        predictor = load_predictor(a.pipeline)

    def one(prefix: str, clock: dict | None) -> dict:
        tracks = predictor.predict(prefix, clock)
        start = time.perf_counter()
        out = Path(tmp.name) / f"{Path(prefix).name}-submission.csv"
        write_submission(out, int(Path(prefix).name[5:]), tracks["hit_id"], tracks["track_id"])
        if clock is not None:
            clock["submission"] = time.perf_counter() - start
        return tracks

    for prefix in prefixes:  # untimed: compiles every padded size the events need
        one(prefix, None)
    clocks, score_all, score_pt1 = [], [], []
    for prefix in prefixes:
        clock = {}
        tracks = one(prefix, clock)
        clocks.append(clock)
        if find_file(Path(prefix), "truth") is None or find_file(Path(prefix), "particles") is None:
            continue  # a test set without truth: no score
        truth = read_event(prefix, parts=("hits", "truth", "particles"))
        t = truth.truth
        args = (t["hit_id"], t["particle_id"], t["weight"], tracks["hit_id"], tracks["track_id"])
        score_all.append(trackml_score(*args))
        hit_pt = hit_particle_pt(t["particle_id"], truth.particles)
        score_pt1.append(trackml_score_above_pt(*args, hit_pt, pt_min=1.0))
    per_stage = {f"{s}_s": float(np.median([c.get(s, 0.0) for c in clocks])) for s in STAGES}
    emit(
        {
            "benchmark": "tracking_pipeline",
            "run": a.pipeline,
            "events": len(prefixes),
            "pileup": None if a.data else a.pileup,
            "pt_floor": predictor.cfg.data.pt_floor,
            "seconds_per_event": float(np.median([sum(c.values()) for c in clocks])),
            **per_stage,
            "trackml_score": float(np.mean(score_all)) if score_all else None,
            "trackml_score_pt1": float(np.mean(score_pt1)) if score_pt1 else None,
            **peak_memory(),
            **environment(),
        }
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=20_000)
    p.add_argument("--edges", type=int, default=200_000)
    p.add_argument("--dtype", default="float32", help="compute dtype: float32 or bfloat16")
    p.add_argument("--steps", type=int, default=10, help="timed train steps and inference calls")
    p.add_argument("--steps-per-call", type=int, default=2)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--bidirectional", action="store_true", help="messages both ways (off: the peer's work)")
    p.add_argument(
        "--sort-in-model",
        action="store_true",
        help="no host `message_order`: the model sorts the edges by receiver in every call",
    )
    p.add_argument("--onnx", action="store_true", help="also ONNX Runtime's CPU rate (needs the onnx extra)")
    g = p.add_argument_group("--pipeline: time per event, read to submission")
    g.add_argument("--pipeline", metavar="RUN_DIR", help="a finished tracking run, or 'untrained'")
    g.add_argument("--data", help="folder of TrackML events (default: simulated ones)")
    g.add_argument("--events", type=int, default=3)
    g.add_argument("--pileup", type=float, default=200.0)
    g.add_argument("--seed", type=int, default=100, help="of the simulated events")
    g.add_argument("--pt-floor", type=float, default=None, help="untrained: the graph's helix cut (GeV)")
    g.add_argument("--keep", type=float, default=0.078, help="untrained: fraction of edges the filter keeps")
    a = p.parse_args(argv)
    pipeline(a) if a.pipeline else bench(a)


if __name__ == "__main__":
    main()
