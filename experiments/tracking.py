"""TrackML tracking: hits -> graph -> TransformerConv edge classifier -> tracks -> TrackML score.

python -m experiments.tracking                       # simulated mu = 200 events, train + evaluate
python -m experiments.tracking --quick               # one-minute smoke run (low pile-up)
python -m experiments.tracking --data path/to/train_100_events --pt-min 1.0
python -m experiments.tracking --tpu

Two stages by default (`cascade.stages`, jaxhep/tracking/cascade.py): a first classifier prunes each
graph, a second classifies what is left. `--set cascade.filter_run=RUN_DIR` reuses a finished run's
classifier as the first stage.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from jaxhep import cli, plots
from jaxhep.config import from_dict, to_dict
from jaxhep.errors import ConfigError
from jaxhep.runs import Run
from jaxhep.tracking import cascade, dataset, evaluate
from jaxhep.tracking.display import event_display
from jaxhep.tracking.graph import build_graph, graph_efficiency_purity
from jaxhep.tracking.io import read_event
from jaxhep.tracking.model import EdgeClassifier, EdgeClassifierConfig, batched_logits
from jaxhep.tracking.tracks import write_submissions
from jaxhep.tracking.training import (
    LossConfig,
    auto_pos_weight,
    edge_metrics,
    edge_scores,
    graph_scores,
    make_loss_fn,
)
from jaxhep.train import TrainConfig, fit_model, load_best


@dataclass(frozen=True)
class EvalConfig:
    track_method: str = "walk"  # walk | components
    pt_min: float = 1.0  # the pT cut of the headline score and efficiency
    displays: int = 1


@dataclass(frozen=True)
class CascadeConfig:
    """Two stages (jaxhep/tracking/cascade.py): a first classifier, trained on the whole graphs, prunes
    them; a second one, same model config, trains and predicts on what is left."""

    stages: int = 2  # 1: one classifier on the whole graphs
    target_recall: float = 0.995  # of the validation events' true edges, kept by the first stage
    filter_epochs: int | None = None  # the first stage's epochs (None: train.epochs)
    # A finished tracking run (folder) whose classifier serves as the first stage instead of training
    # one: its filter if it ran two stages, else its only classifier. Same data settings expected.
    filter_run: str | None = None


@dataclass(frozen=True)
class TrackingConfig:
    data: dataset.DataConfig = field(default_factory=dataset.DataConfig)
    model: EdgeClassifierConfig = field(default_factory=EdgeClassifierConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    cascade: CascadeConfig = field(default_factory=CascadeConfig)


def default_config() -> TrackingConfig:
    return TrackingConfig(
        # 16 phi sectors per training event: 16x the optimiser steps for the same work (BUILD_NOTES.md).
        data=dataset.DataConfig(n_events=60, pileup=200.0, val_events=6, test_events=6, train_sectors=16),
        train=TrainConfig(
            epochs=40,
            batch_size=1,
            steps_per_call=4,
            learning_rate=1e-3,
            schedule="warmup_cosine",
            warmup_steps=50,
            grad_clip_norm=1.0,
            monitor="val_f1",
            patience=8,
            eval_batch_size=1,
        ),
    )


def quick_config() -> TrackingConfig:
    cfg = default_config()
    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(
            cfg.data, n_events=14, pileup=10.0, val_events=2, test_events=2, train_sectors=2
        ),
        model=dataclasses.replace(cfg.model, width=32, layers=2),
        train=dataclasses.replace(cfg.train, epochs=3, patience=3, warmup_steps=5),
    )


def parse_args(argv):
    p = cli.base_parser("python -m experiments.tracking", __doc__.split("\n")[0])
    p.add_argument(
        "--data", help="folder of TrackML events (eventNNNNNNNNN-{hits,cells,particles,truth}.csv)"
    )
    p.add_argument(
        "--pt-min", type=float, help="truth pT cut (GeV) for the training labels and the headline score"
    )
    p.add_argument("--graph", choices=["geometric", "knn"], help="graph construction method")
    return p.parse_args(argv)


def resolve_config(args) -> tuple[TrackingConfig, Run | None]:
    return cli.resolve_config(args, TrackingConfig, "tracking", _defaults, _task_flags)


def _defaults(quick: bool) -> TrackingConfig:
    return quick_config() if quick else default_config()


def _task_flags(cfg: TrackingConfig, args) -> TrackingConfig:
    data = cfg.data
    if args.data:
        data = dataclasses.replace(data, path=args.data)
    if args.pt_min is not None:
        data = dataclasses.replace(data, pt_min=args.pt_min)
        cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, pt_min=args.pt_min))
    if args.graph:
        data = dataclasses.replace(data, method=args.graph)
    return dataclasses.replace(cfg, data=data)


def main(argv=None) -> Run:
    args = parse_args(argv)
    cfg, run = resolve_config(args)
    if cfg.cascade.stages not in (1, 2):
        raise ConfigError(f"cascade.stages must be 1 or 2, got {cfg.cascade.stages}")
    runtime = cli.setup_runtime(args)
    t0 = time.time()
    resumed = run is not None
    if run is None:
        run = Run.create(
            args.workdir,
            "tracking",
            {"tracking": to_dict(cfg), "argv": argv},
            name="quick" if args.quick else None,
        )
    print(f"[tracking] run {run.path} | {runtime.description}", flush=True)
    with run.recorded(resumed=resumed):
        graphs, prefixes = dataset.load_graphs(cfg.data, args.data_dir, _progress(cfg, "graphs"))
        n_eval = cfg.data.val_events + cfg.data.test_events
        val_part = slice(len(graphs) - n_eval, len(graphs) - cfg.data.test_events)
        test_part = slice(len(graphs) - cfg.data.test_events, None)
        graph_report = _graph_quality(graphs[test_part], prefixes[test_part], cfg)
        report, edge_index, stage_graphs = {}, None, graphs
        if cfg.cascade.stages == 2:
            stage_graphs, edge_index, report["filter"] = _prune_with_filter(
                graphs, prefixes, cfg, runtime, run, val_part, test_part
            )
        model, result, val, test = _train_classifier(
            stage_graphs, prefixes, cfg, runtime, run, run.path / "ckpt", "edges"
        )
        val_scores, test_scores = edge_scores(model, val), edge_scores(model, test)
        if edge_index is not None:
            # the second stage's own figures (on the pruned graphs), then its scores on the whole graphs
            threshold = edge_metrics(val.graphs, val_scores)["threshold"]
            report["stage2_test"] = edge_metrics(test.graphs, test_scores, threshold)
            val_scores, test_scores = (
                [cascade.scatter_scores(g.n_edge, i, s) for g, i, s in zip(graphs[sl], edge_index[sl], out)]
                for sl, out in ((val_part, val_scores), (test_part, test_scores))
            )
        val_graphs, test_graphs, test_prefixes = graphs[val_part], graphs[test_part], prefixes[test_part]
        report |= _evaluate(val_graphs, val_scores, test_graphs, test_prefixes, test_scores, cfg, run, result)
        report["graph"] = graph_report
        report["wall_s"] = round(time.time() - t0, 1)
        run.write_json("metrics.json", report)
        run.write_text("report.md", _markdown(report, runtime.description))
    run.set_status(
        "done",
        summary={k: report["test"][k] for k in ("precision", "recall", "auc")}
        | {"score_pt": report["tracks"]["score_pt"], "score": report["tracks"]["score"]},
    )
    print(f"[tracking] report: {run.path / 'report.md'}", flush=True)
    return run


def _progress(cfg: TrackingConfig, desc: str):
    return (lambda xs: tqdm(xs, desc=desc, leave=False)) if cfg.train.progress else None


def _model_config(cfg: TrackingConfig, runtime) -> EdgeClassifierConfig:
    return cfg.model if runtime.platform == "cpu" else dataclasses.replace(cfg.model, dtype="bfloat16")


def _train_classifier(
    graphs, prefixes, cfg: TrackingConfig, runtime, run: Run, ckpt_dir: Path, desc: str, target_recall=None
):
    """Split the graphs, train an edge classifier (resuming ckpt_dir) and return
    (best model, FitResult, validation split, test split).

    target_recall: also report `val_kept` (the fraction of edges kept at that recall of the validation
    true edges) and pick the best epoch by it: the figure of merit of a filter.
    """
    train, val, test = dataset.split(graphs, prefixes, cfg.data, cfg.model.bidirectional)
    pos_weight = cfg.loss.pos_weight or auto_pos_weight(train)
    print(
        f"[tracking] {desc}: {len(train)} training graphs ({cfg.data.train_sectors} phi sector(s) per "
        f"event), {len(val)}/{len(test)} validation/test events; padded to "
        f"{train.arrays['nodes'].shape[1]} nodes / {train.arrays['senders'].shape[1]} edges (training), "
        f"{val.arrays['nodes'].shape[1]} / {val.arrays['senders'].shape[1]} (evaluation); "
        f"pos_weight {pos_weight:.1f}",
        flush=True,
    )
    n_dev = runtime.mesh.devices.size
    # One graph per device per step: the graph axis is what is sharded.
    train_cfg = dataclasses.replace(cfg.train, batch_size=max(cfg.train.batch_size, 1) * n_dev)
    if target_recall is not None:
        train_cfg = dataclasses.replace(
            train_cfg,
            epochs=cfg.cascade.filter_epochs or cfg.train.epochs,
            monitor="val_kept",
            monitor_mode="min",
        )
    model = EdgeClassifier(_model_config(cfg, runtime), rngs=nnx.Rngs(cfg.train.seed))

    def validate(trainer):
        logits = trainer.predict_rows(val.read, len(val), n_dev)
        scores = [1 / (1 + np.exp(-lg[: g.n_edge].astype(np.float64))) for lg, g in zip(logits, val.graphs)]
        m = edge_metrics(val.graphs, scores)
        out = {f"val_{k}": m[k] for k in ("f1", "auc", "precision", "recall")}
        if target_recall is not None:
            t = cascade.recall_threshold(val.graphs, scores, target_recall)
            out["val_kept"] = cascade.filter_summary(val.graphs, scores, t)["kept_fraction"]
        return out

    model, result = fit_model(
        model,
        make_loss_fn(cfg.loss, pos_weight),
        batched_logits,
        train_cfg,
        runtime.mesh,
        train.read,
        len(train),
        validate,
        ckpt_dir,
        run=run,
        desc=desc,
        log_prefix={"stage": desc},
    )
    return model, result, val, test


def _prune_with_filter(graphs, prefixes, cfg: TrackingConfig, runtime, run: Run, val_part, test_part):
    """The first stage: (pruned graphs, each one's kept-edge indices into its whole graph, the filter's
    report). The threshold keeps `cascade.target_recall` of the validation events' true edges."""
    scores, history = _filter_scores(graphs, prefixes, cfg, runtime, run)
    threshold = cascade.recall_threshold(graphs[val_part], scores[val_part], cfg.cascade.target_recall)
    pruned = [cascade.prune(g, s, threshold) for g, s in zip(graphs, scores)]
    report = {
        part: cascade.filter_summary(graphs[sl], scores[sl], threshold)
        for part, sl in (("validation", val_part), ("test", test_part))
    } | {"target_recall": cfg.cascade.target_recall, "epochs": history}
    plots.training_curves(history, run.plot_path("training_filter.png"), keys=("loss", "val_kept", "val_auc"))
    f = report["test"]
    print(
        f"[tracking] filter: threshold {threshold:.4f} keeps {f['kept_fraction']:.2%} of the test edges, "
        f"{f['recall']:.2%} of their true edges; purity {f['purity_before']:.2%} -> {f['purity_after']:.2%}",
        flush=True,
    )
    return [p[0] for p in pruned], [p[1] for p in pruned], report


def _filter_scores(graphs, prefixes, cfg: TrackingConfig, runtime, run: Run) -> tuple[list, list]:
    """The first stage's scores of every event, [E] each, and its per-epoch history.

    Scored once and cached in the run (`filter_scores.npz`), so a resumed run goes straight on
    to the second stage. The classifier is trained here (`ckpt_filter/`) or taken from
    `cascade.filter_run`.
    """
    cache, names = run.path / "filter_scores.npz", [Path(p).name for p in prefixes]
    scores = cascade.load_scores(cache, names, graphs)
    if scores is None:
        if cfg.cascade.filter_run:
            model = _reused_filter(cfg.cascade.filter_run, runtime)
        else:
            ckpt, recall = run.path / "ckpt_filter", cfg.cascade.target_recall
            model, _, _, _ = _train_classifier(graphs, prefixes, cfg, runtime, run, ckpt, "filter", recall)
        cascade.save_scores(cache, names, graph_scores(model, graphs, _progress(cfg, "filter scores")))
        scores = cascade.load_scores(cache, names, graphs)  # the cached (float16) values, as on resume
    return scores, [r for r in run.read_log() if r.get("stage") == "filter"]


def _reused_filter(path: str, runtime) -> EdgeClassifier:
    """The classifier of a finished tracking run: its filter (`ckpt_filter/`) if it has one, else its
    only classifier (`ckpt/`), rebuilt from that run's own config."""
    other = Run.open(path)
    other_cfg = from_dict(TrackingConfig, other.config["tracking"])
    ckpt = other.path / ("ckpt_filter" if (other.path / "ckpt_filter").is_dir() else "ckpt")
    model = EdgeClassifier(_model_config(other_cfg, runtime), rngs=nnx.Rngs(0))
    print(f"[tracking] filter: the classifier of {ckpt}", flush=True)
    return load_best(model, other_cfg.train, ckpt)


def _graph_quality(test_graphs: list, prefixes: list[str], cfg: TrackingConfig) -> dict:
    """Graph efficiency and purity of both construction methods on the test events."""
    out = {}
    for method in ("geometric", "knn"):
        graphs = test_graphs
        if method != cfg.data.method:
            events = (read_event(p) for p in prefixes)
            graphs = [build_graph(e, method, k=cfg.data.k, pt_min=cfg.data.pt_min) for e in events]
        per = [graph_efficiency_purity(g, cfg.eval.pt_min) for g in graphs]
        out[method] = {k: float(np.mean([p[k] for p in per])) for k in per[0]}
        out[method]["edges_per_event"] = float(np.mean([g.n_edge for g in graphs]))
    return out


def _evaluate(val_graphs, val_scores, test_graphs, test_prefixes, test_scores, cfg, run: Run, result) -> dict:
    """Edges (threshold by F1 on validation), tracks, scores, efficiencies and plots of the test events;
    scores: [E] per event on the event's whole graph."""
    threshold = edge_metrics(val_graphs, val_scores)["threshold"]
    test_edges = edge_metrics(test_graphs, test_scores, threshold)
    fpr, tpr, auc = evaluate.roc(test_graphs, test_scores)
    per_event = [
        evaluate.event_tracks(p, g, s, threshold, cfg.eval.track_method, cfg.eval.pt_min)
        for p, g, s in zip(test_prefixes, test_graphs, test_scores)
    ]
    tracks = {
        k: float(np.mean([e[k] for e in per_event])) for k in ("score", "score_pt", "efficiency", "fake_rate")
    }
    eff_pt = evaluate.edge_efficiency_vs(test_graphs, test_scores, threshold, "edge_pt", evaluate.PT_BINS)
    eff_eta = evaluate.edge_efficiency_vs(test_graphs, test_scores, threshold, "edge_eta", evaluate.ETA_BINS)
    plots.roc_curves(
        {"edge classifier": (fpr, tpr, auc)}, run.plot_path("roc.png"), title="Edge ROC (test)", log_fpr=True
    )
    track_pt = evaluate.sum_efficiencies([e["track_eff_pt"] for e in per_event])
    track_eta = evaluate.sum_efficiencies([e["track_eff_eta"] for e in per_event])
    plots.binned_curves(
        evaluate.PT_BINS,
        {
            "true edges kept": (eff_pt["efficiency"], eff_pt["error"]),
            "particles found (tracks)": (track_pt["efficiency"], track_pt["error"]),
        },
        run.plot_path("efficiency_vs_pt.png"),
        xlabel="particle pT [GeV]",
        ylabel="efficiency",
        title=f"Efficiency vs pT (edge threshold {threshold:.2f}; tracks: double majority, >= 5 hits)",
        log_x=True,
    )
    plots.binned_curves(
        evaluate.ETA_BINS,
        {
            "true edges kept": (eff_eta["efficiency"], eff_eta["error"]),
            f"particles found, pT > {cfg.eval.pt_min:g} GeV": (track_eta["efficiency"], track_eta["error"]),
        },
        run.plot_path("efficiency_vs_eta.png"),
        xlabel="particle eta",
        ylabel="efficiency",
        title="Efficiency vs eta",
    )
    plots.training_curves(result.history, run.plot_path("training.png"), keys=("loss", "val_f1", "val_auc"))
    for e in per_event[: cfg.eval.displays]:
        h = e["hits"]
        event_display(
            np.asarray(h["x"]),
            np.asarray(h["y"]),
            np.asarray(h["z"]),
            e["track_id"],
            run.plot_path("event_display.png"),
        )
    write_submissions(
        run.path / "submission.csv",
        [(int(p[-9:]), g.hit_id, e["track_id"]) for p, g, e in zip(test_prefixes, test_graphs, per_event)],
    )
    return {
        "threshold": threshold,
        "test": test_edges,
        "tracks": tracks,
        "edge_efficiency_vs_pt": eff_pt,
        "edge_efficiency_vs_eta": eff_eta,
        "track_efficiency_vs_pt": track_pt,
        "track_efficiency_vs_eta": track_eta,
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
    }


def _markdown(r: dict, devices: str) -> str:
    t, k = r["test"], r["tracks"]
    lines = [
        "# TrackML tracking report",
        "",
        f"- devices: {devices}",
        f"- wall time: {r['wall_s']} s",
        f"- epochs: {r['epochs']} (best {r['best_epoch']})",
        f"- edge threshold {r['threshold']:.3f} (best F1 on the validation events)",
        "",
        "## Edges (test events, trainable edges"
        + (", both stages: edges the filter dropped count as scored 0)" if "filter" in r else ")"),
        "",
        "| accuracy | precision | recall | F1 | ROC AUC |",
        "|---:|---:|---:|---:|---:|",
        "| " + " | ".join(f"{t[k]:.4f}" for k in ("accuracy", "precision", "recall", "f1", "auc")) + " |",
        "",
        *_cascade_lines(r),
        "## Tracks",
        "",
        "| TrackML score | score, pT above cut | tracking efficiency | fake rate |",
        "|---:|---:|---:|---:|",
        f"| {k['score']:.4f} | {k['score_pt']:.4f} | {k['efficiency']:.4f} | {k['fake_rate']:.4f} |",
        "",
        "## Efficiency vs particle pT (test events)",
        "",
        "| pT [GeV] | true edges kept | particles found | particles |",
        "|---|---:|---:|---:|",
    ]
    e_pt, t_pt = r["edge_efficiency_vs_pt"], r["track_efficiency_vs_pt"]
    for i, (lo, hi) in enumerate(zip(t_pt["edges"][:-1], t_pt["edges"][1:])):
        if t_pt["n"][i] > 0:
            edge_eff, track_eff = e_pt["efficiency"][i], t_pt["efficiency"][i]
            lines.append(f"| {lo:g}-{hi:g} | {edge_eff:.4f} | {track_eff:.4f} | {t_pt['n'][i]} |")
    lines += [
        "",
        "## Graph construction (test events)",
        "",
        "| method | efficiency | purity | edges/event |",
        "|---|---:|---:|---:|",
    ]
    for method, g in r["graph"].items():
        eff = g.get("efficiency", float("nan"))
        lines.append(
            f"| {method} | {eff:.4f} | {g.get('purity', float('nan')):.4f} | {g['edges_per_event']:.0f} |"
        )
    lines += [
        "",
        "![ROC](plots/roc.png)",
        "![efficiency vs pT](plots/efficiency_vs_pt.png)",
        "![efficiency vs eta](plots/efficiency_vs_eta.png)",
        "![training](plots/training.png)",
        *(["![filter training](plots/training_filter.png)"] if r.get("filter", {}).get("epochs") else []),
        "![event display](plots/event_display.png)",
        "",
        "Found tracks of the test events: `submission.csv` (event_id,hit_id,track_id).",
    ]
    return "\n".join(lines) + "\n"


def _cascade_lines(r: dict) -> list[str]:
    """The report's section on the two stages (none for a one-stage run)."""
    if "filter" not in r:
        return []
    f, s2 = r["filter"], r["stage2_test"]
    lines = [
        "## Two stages",
        "",
        f"Stage 1 (filter) keeps the edges scoring >= {f['test']['threshold']:.4f}, the threshold that keeps "
        f"{f['target_recall']:.1%} of the validation events' true edges; "
        + (
            f"trained {len(f['epochs'])} epochs (val_kept: the fraction of edges kept at that recall)."
            if f["epochs"]
            else "a classifier reused from another run (cascade.filter_run)."
        ),
        "",
        "| filter | edges/event before | after | kept | true edges kept | purity before | after |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for part in ("validation", "test"):
        p = f[part]
        lines.append(
            f"| {part} | {p['edges_per_event_before']:.0f} | {p['edges_per_event_after']:.0f} | "
            f"{p['kept_fraction']:.4f} | {p['recall']:.4f} | "
            f"{p['purity_before']:.4f} | {p['purity_after']:.4f} |"
        )
    lines += [
        "",
        "Stage 2 on the pruned test graphs (its own threshold, best F1 on the pruned validation graphs):",
        "",
        "| precision | recall | F1 | ROC AUC |",
        "|---:|---:|---:|---:|",
        "| " + " | ".join(f"{s2[k]:.4f}" for k in ("precision", "recall", "f1", "auc")) + " |",
        "",
    ]
    return lines


if __name__ == "__main__":
    cli.run_main(main)
