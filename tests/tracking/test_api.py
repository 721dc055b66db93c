"""`load_predictor` on the tiny runs' folders: from an event's hits (and cells) to the run's own tracks;
the ONNX export of the same classifiers."""

import json
import shutil

import numpy as np
import pytest

from experiments import tracking as tracking_experiment
from jaxhep.errors import InputError
from jaxhep.export import run_onnx, session
from jaxhep.tracking import cascade
from jaxhep.tracking.api import load_predictor
from jaxhep.tracking.config import run_config
from jaxhep.tracking.dataset import event_folder
from jaxhep.tracking.graph import EDGE_FEATURES, NODE_FEATURES
from jaxhep.tracking.io import read_event
from jaxhep.tracking.score import trackml_score
from jaxhep.tracking.tracks import read_submission
from jaxhep.tracking.training import graph_scores
from tests.approx import approx


def _test_events(run, dirs):
    """(the run's event folder, its submission, the test events' names)."""
    folder = event_folder(run_config(run.config, run.path).data, dirs["data"])
    sub = read_submission(run.path / "submission.csv")
    return folder, sub, [f"event{i:09d}" for i in np.unique(sub["event_id"])]


def _hits_only(folder, name, to):
    """A copy of one event without truth: its hits and cells files, as a test set has them."""
    for part in ("hits", "cells"):
        for path in folder.glob(f"{name}-{part}.csv*"):
            shutil.copy(path, to / path.name)
    return to / name


def test_predictor_gives_the_runs_tracks_and_score_from_hits_and_cells(dirs, quick_run, tmp_path):
    predictor = load_predictor(quick_run.path)
    assert predictor.filter is not None and predictor.cfg.cascade.stages == 2
    folder, sub, names = _test_events(quick_run, dirs)
    scores = []
    for name in names:
        out = predictor.predict(_hits_only(folder, name, tmp_path))
        rows = sub["event_id"] == int(name[-9:])
        np.testing.assert_array_equal(out["hit_id"], sub["hit_id"][rows])  # every hit, in file order
        np.testing.assert_array_equal(out["track_id"], sub["track_id"][rows])
        truth = read_event(folder, name).truth
        scores.append(
            trackml_score(
                truth["hit_id"], truth["particle_id"], truth["weight"], out["hit_id"], out["track_id"]
            )
        )
    report = json.loads((quick_run.path / "metrics.json").read_text())
    assert np.mean(scores) == approx(report["tracks"]["score"], rel=1e-12)
    assert np.mean(scores) > 0.05  # well above a track per hit (score 0)


def test_edge_scores_of_a_read_event_are_the_pruned_cascades(dirs, quick_run):
    predictor = load_predictor(quick_run.path)
    folder, _, names = _test_events(quick_run, dirs)
    event = read_event(folder, names[0])  # an event already read (truth present, and unused)
    graph, scores = predictor.edge_scores(event)
    assert scores.shape == (graph.n_edge,) and np.all((scores >= 0) & (scores <= 1))
    dropped = np.mean(scores == 0)  # the edges the filter dropped score 0
    assert 0 < dropped < 1
    true = graph.labels > 0
    assert scores[true].mean() > scores[~true].mean()
    np.testing.assert_array_equal(
        predictor.predict(event)["track_id"], predictor.predict(folder / names[0])["track_id"]
    )


def test_predictor_of_a_run_that_reused_another_runs_filter(dirs, reused_filter_run, tmp_path):
    predictor = load_predictor(reused_filter_run.path)
    folder, sub, names = _test_events(reused_filter_run, dirs)
    out = predictor.predict(_hits_only(folder, names[-1], tmp_path))
    np.testing.assert_array_equal(out["track_id"], sub["track_id"][sub["event_id"] == int(names[-1][-9:])])


def test_a_folder_that_is_not_a_finished_run_is_one_clear_error(tmp_path, quick_run):
    with pytest.raises(InputError, match="not a run directory"):
        load_predictor(tmp_path)
    unfinished = tmp_path / "run"
    unfinished.mkdir()
    shutil.copy(quick_run.path / "config.json", unfinished / "config.json")
    with pytest.raises(InputError, match="has not finished"):
        load_predictor(unfinished)


# -- ONNX export of the tiny run's classifiers (jaxhep/tracking/export.py) ------------------------


@pytest.fixture(scope="module")
def onnx_dir(quick_run, tmp_path_factory):
    """The tiny run's classifiers written by `python -m experiments.tracking export RUN --out DIR`."""
    out = tmp_path_factory.mktemp("onnx")
    tracking_experiment.main(["export", str(quick_run.path), "--out", str(out)])
    return out


def test_export_writes_both_stages_with_what_a_user_needs_to_rebuild_the_graph(quick_run, onnx_dir):
    records = json.loads((onnx_dir / "export.json").read_text())
    assert [r["file"] for r in records] == ["edges.onnx", "filter.onnx"]
    metrics = json.loads((quick_run.path / "metrics.json").read_text())
    cfg = run_config(quick_run.config, quick_run.path)
    thresholds = {"edges": metrics["threshold"], "filter": metrics["filter"]["test"]["threshold"]}
    for record in records:
        assert [i["shape"] for i in record["inputs"]] == [["N", 5], [2, "E"], ["E", 6]]
        assert record["inputs"][1]["dtype"] == "int64"
        assert record["max_abs_diff_vs_jax"] <= 1e-5
        name = record["file"].removesuffix(".onnx")
        sess = session(onnx_dir / record["file"])
        assert [(i.name, i.type) for i in sess.get_inputs()] == [
            ("node_features", "tensor(float)"),
            ("edge_index", "tensor(int64)"),
            ("edge_features", "tensor(float)"),
        ]
        assert [o.name for o in sess.get_outputs()] == ["edge_score", "edge_logit"]
        meta = sess.get_modelmeta().custom_metadata_map
        sidecar = json.loads((onnx_dir / f"{name}.json").read_text())
        assert float(meta["threshold"]) == sidecar["threshold"] == thresholds[name]
        assert json.loads(meta["node_features"]) == list(NODE_FEATURES) == sidecar["node_features"]
        assert sidecar["edge_features"] == list(EDGE_FEATURES)
        assert sidecar["graph"] == {
            "method": cfg.data.method,
            "k": cfg.data.k,
            "pt_min_GeV": cfg.data.pt_min,
            "builder": sidecar["graph"]["builder"],
        }


def test_onnx_runtime_scores_equal_the_predictors_on_events_of_different_sizes(dirs, quick_run, onnx_dir):
    predictor = load_predictor(quick_run.path)
    stage_1, stage_2 = session(onnx_dir / "filter.onnx"), session(onnx_dir / "edges.onnx")
    folder, _, names = _test_events(quick_run, dirs)
    sizes = set()
    for name in names:
        graph = predictor.graph(read_event(folder, name))
        sizes.add((graph.n_node, graph.n_edge))
        # Stage 1 on the whole graph, the filter's JAX scores (padded to a bucket) as reference.
        first = run_onnx(stage_1, _onnx_inputs(graph))
        np.testing.assert_allclose(first[0], graph_scores(predictor.filter, [graph])[0], rtol=0, atol=1e-5)
        np.testing.assert_allclose(first[0], 1 / (1 + np.exp(-first[1].astype(np.float64))), atol=1e-6)
        # Stage 2 on the pruned graph, as the predictor prunes it.
        kept_scores = first[0].astype(np.float16).astype(np.float32)
        pruned, kept = cascade.prune(graph, kept_scores, predictor.filter_threshold)
        second = run_onnx(stage_2, _onnx_inputs(pruned))[0]
        np.testing.assert_allclose(second, graph_scores(predictor.edges, [pruned])[0], rtol=0, atol=1e-5)
        # The whole cascade in ONNX Runtime is the predictor's edge scores.
        _, expected = predictor.edge_scores(read_event(folder, name))
        np.testing.assert_allclose(cascade.scatter_scores(graph.n_edge, kept, second), expected, atol=1e-5)
    assert len(sizes) == len(names) == 2  # two events of different node and edge counts


def _onnx_inputs(graph) -> list[np.ndarray]:
    """An EventGraph as the ONNX graphs' inputs: node_features, edge_index [2, E] int64, edge_features."""
    edge_index = np.stack([graph.senders, graph.receivers]).astype(np.int64)
    return [graph.nodes, edge_index, graph.edges]
