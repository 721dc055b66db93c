"""The tracking experiment: every event's graph, the two-stage edge classifier (a filter prunes the
graphs, a second classifier scores what is left), tracks from the scored edges, TrackML scores."""

from __future__ import annotations

import time
from pathlib import Path

from jaxhep.runs import Run
from jaxhep.tracking import cascade, evaluate
from jaxhep.tracking.config import TrackingConfig
from jaxhep.tracking.dataset import Events, load_events, progress_bar
from jaxhep.tracking.report import markdown, write_plots
from jaxhep.tracking.tracks import write_submissions
from jaxhep.tracking.training import edge_metrics, edge_scores, global_batch, prune_with_filter, train_model


def load_data(cfg: TrackingConfig, runtime) -> Events:
    """Every event's graph: events read from `data.path` or simulated once into `runtime.data_dir`,
    graphs built once and cached beside them (a progress bar unless --no-progress)."""
    return load_events(cfg.data, runtime.data_dir, progress_bar(cfg.train.progress, "graphs"))


def train_and_evaluate(cfg: TrackingConfig, data: Events, run: Run, runtime) -> dict:
    """Train the stages of `cfg.cascade` on `data`, evaluate edges and tracks on the test events,
    write metrics.json, report.md, plots and submission.csv; returns the test edge precision,
    recall and AUC and the TrackML scores."""
    t0 = time.time()
    n_train = len(data) - data.n_val - data.n_test
    print(
        f"[tracking] {len(data)} events from {Path(data.prefixes[0]).parent} ({n_train} training, "
        f"{data.n_val} validation, {data.n_test} test), {cfg.data.method} graphs",
        flush=True,
    )
    n_dev = runtime.mesh.devices.size
    batch = global_batch(cfg.train.batch_size, n_dev)
    if batch != cfg.train.batch_size:
        print(
            f"[tracking] --batch-size {cfg.train.batch_size} rounded up to {batch} graphs per step: "
            f"a multiple of the {n_dev} devices, which each take whole graphs",
            flush=True,
        )
    graph_report = evaluate.graph_quality(data.graphs[data.test], data.prefixes[data.test], cfg)
    report, edge_index, stage_data = {}, None, data
    if cfg.cascade.stages == 2:
        stage_data, edge_index, report["filter"] = prune_with_filter(cfg, data, run, runtime)
    trained = train_model("edges", cfg, stage_data, run, runtime)
    val_scores, test_scores = (
        edge_scores(trained.model, trained.val),
        edge_scores(trained.model, trained.test),
    )
    if edge_index is not None:
        # the second stage's own figures (on the pruned graphs), then its scores on the whole graphs
        threshold = edge_metrics(trained.val.graphs, val_scores)["threshold"]
        report["stage2_test"] = edge_metrics(trained.test.graphs, test_scores, threshold)
        val_scores, test_scores = (
            [cascade.scatter_scores(g.n_edge, i, s) for g, i, s in zip(data.graphs[sl], edge_index[sl], out)]
            for sl, out in ((data.val, val_scores), (data.test, test_scores))
        )
    test_graphs, test_prefixes = data.graphs[data.test], data.prefixes[data.test]
    ev = evaluate.evaluate_test(
        data.graphs[data.val],
        data.prefixes[data.val],
        val_scores,
        test_graphs,
        test_prefixes,
        test_scores,
        cfg,
    )
    result = trained.fit
    report |= ev.report | {"epochs": len(result.history), "best_epoch": result.best_epoch}
    write_plots(run, ev, cfg, result.history, report["filter"]["epochs"] if "filter" in report else None)
    write_submissions(
        run.path / "submission.csv",
        [(int(p[-9:]), g.hit_id, e["track_id"]) for p, g, e in zip(test_prefixes, test_graphs, ev.per_event)],
    )
    report["graph"] = graph_report
    report["wall_s"] = round(time.time() - t0, 1)
    run.write_json("metrics.json", report)
    run.write_text("report.md", markdown(report, runtime.description))
    return {k: report["test"][k] for k in ("precision", "recall", "auc")} | {
        "score_pt": report["tracks"]["score_pt"],
        "score": report["tracks"]["score"],
    }
