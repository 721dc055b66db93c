"""TrackML tracking: hits -> graph -> TransformerConv edge classifier -> tracks -> TrackML score.

python -m experiments.tracking                       # simulated mu = 200 events, train + evaluate
python -m experiments.tracking --quick               # one-minute smoke run (low pile-up)
python -m experiments.tracking --data path/to/train_100_events --pt-min 1.0
python -m experiments.tracking --tpu
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from jaxhep import cli, plots
from jaxhep.config import to_dict
from jaxhep.runs import Run
from jaxhep.tracking import dataset, evaluate
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
    make_loss_fn,
)
from jaxhep.train import TrainConfig, fit_model


@dataclass(frozen=True)
class EvalConfig:
    track_method: str = "walk"  # walk | components
    pt_min: float = 1.0  # the pT cut of the headline score and efficiency
    displays: int = 1


@dataclass(frozen=True)
class TrackingConfig:
    data: dataset.DataConfig = field(default_factory=dataset.DataConfig)
    model: EdgeClassifierConfig = field(default_factory=EdgeClassifierConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


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
    runtime = cli.setup_runtime(args)
    n_dev = runtime.mesh.devices.size
    # One graph per device per step: the graph axis is what is sharded.
    train_cfg = dataclasses.replace(cfg.train, batch_size=max(cfg.train.batch_size, 1) * n_dev)
    model_cfg = cfg.model if runtime.platform == "cpu" else dataclasses.replace(cfg.model, dtype="bfloat16")
    t0 = time.time()
    if run is None:
        run = Run.create(
            args.workdir,
            "tracking",
            {"tracking": to_dict(cfg), "argv": argv},
            name="quick" if args.quick else None,
        )
    print(f"[tracking] run {run.path} | {runtime.description}", flush=True)
    try:
        progress = (lambda xs: tqdm(xs, desc="graphs", leave=False)) if cfg.train.progress else None
        graphs, prefixes = dataset.load_graphs(cfg.data, args.data_dir, progress)
        train, val, test = dataset.split(graphs, prefixes, cfg.data, cfg.model.bidirectional)
        graph_report = _graph_quality(test, cfg)
        pos_weight = cfg.loss.pos_weight or auto_pos_weight(train)
        print(
            f"[tracking] {len(train)} training graphs ({cfg.data.train_sectors} phi sector(s) per event), "
            f"{len(val)}/{len(test)} validation/test events; padded to "
            f"{train.arrays['nodes'].shape[1]} nodes / {train.arrays['senders'].shape[1]} edges (training), "
            f"{val.arrays['nodes'].shape[1]} / {val.arrays['senders'].shape[1]} (evaluation); "
            f"pos_weight {pos_weight:.1f}",
            flush=True,
        )

        model = EdgeClassifier(model_cfg, rngs=__import__("flax").nnx.Rngs(cfg.train.seed))

        def predict_fn(model, batch):
            return batched_logits(model, batch)

        def validate(trainer):
            logits = trainer.predict_rows(val.read, len(val), n_dev)
            scores = [
                1 / (1 + np.exp(-lg[: g.n_edge].astype(np.float64))) for lg, g in zip(logits, val.graphs)
            ]
            m = edge_metrics(val, scores)
            return {
                "val_f1": m["f1"],
                "val_auc": m["auc"],
                "val_precision": m["precision"],
                "val_recall": m["recall"],
            }

        model, result = fit_model(
            model,
            make_loss_fn(cfg.loss, pos_weight),
            predict_fn,
            train_cfg,
            runtime.mesh,
            train.read,
            len(train),
            validate,
            run.path / "ckpt",
            run=run,
            desc="edges",
        )
        report = _evaluate(model, val, test, cfg, run, graph_report, result)
        report["wall_s"] = round(time.time() - t0, 1)
        run.write_json("metrics.json", report)
        run.write_text("report.md", _markdown(report, runtime.description))
    except BaseException as err:
        run.set_status("failed", error=str(err)[:500])
        raise
    run.set_status(
        "done",
        summary={k: report["test"][k] for k in ("precision", "recall", "auc")}
        | {"score_pt": report["tracks"]["score_pt"], "score": report["tracks"]["score"]},
    )
    print(f"[tracking] report: {run.path / 'report.md'}", flush=True)
    return run


def _graph_quality(test: dataset.Split, cfg: TrackingConfig) -> dict:
    """Graph efficiency and purity of both construction methods on the test events."""
    out = {}
    for method in ("geometric", "knn"):
        if method == cfg.data.method:
            graphs = test.graphs
        else:
            graphs = [
                build_graph(read_event(p), method, k=cfg.data.k, pt_min=cfg.data.pt_min)
                for p in test.prefixes
            ]
        per = [graph_efficiency_purity(g, cfg.eval.pt_min) for g in graphs]
        out[method] = {k: float(np.mean([p[k] for p in per])) for k in per[0]}
        out[method]["edges_per_event"] = float(np.mean([g.n_edge for g in graphs]))
    return out


def _evaluate(model, val, test, cfg: TrackingConfig, run: Run, graph_report: dict, result) -> dict:
    val_scores = edge_scores(model, val)
    threshold = edge_metrics(val, val_scores)["threshold"]
    test_scores = edge_scores(model, test)
    test_edges = edge_metrics(test, test_scores, threshold)
    fpr, tpr, auc = evaluate.roc(test.graphs, test_scores)
    per_event = [
        evaluate.event_tracks(p, g, s, threshold, cfg.eval.track_method, cfg.eval.pt_min)
        for p, g, s in zip(test.prefixes, test.graphs, test_scores)
    ]
    tracks = {
        k: float(np.mean([e[k] for e in per_event])) for k in ("score", "score_pt", "efficiency", "fake_rate")
    }
    eff_pt = evaluate.edge_efficiency_vs(test.graphs, test_scores, threshold, "edge_pt", evaluate.PT_BINS)
    eff_eta = evaluate.edge_efficiency_vs(test.graphs, test_scores, threshold, "edge_eta", evaluate.ETA_BINS)
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
        [(int(p[-9:]), g.hit_id, e["track_id"]) for p, g, e in zip(test.prefixes, test.graphs, per_event)],
    )
    return {
        "threshold": threshold,
        "test": test_edges,
        "tracks": tracks,
        "graph": graph_report,
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
        "## Edges (test events, trainable edges)",
        "",
        "| accuracy | precision | recall | F1 | ROC AUC |",
        "|---:|---:|---:|---:|---:|",
        "| " + " | ".join(f"{t[k]:.4f}" for k in ("accuracy", "precision", "recall", "f1", "auc")) + " |",
        "",
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
        "![event display](plots/event_display.png)",
        "",
        "Found tracks of the test events: `submission.csv` (event_id,hit_id,track_id).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    cli.run_main(main)
