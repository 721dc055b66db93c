"""Electron vs photon from 32x32 ECAL crops: the seed's ResNet-15 + SE and the plain ResNet-15.

python -m experiments.egamma                           # simulated showers, both networks, report
python -m experiments.egamma --quick                   # one-minute smoke run
python -m experiments.egamma --data SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5 \\
                             --data SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5
python -m experiments.egamma --model se --tpu
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field

from jaxhep import cli, plots
from jaxhep.config import to_dict
from jaxhep.egamma import dataset
from jaxhep.egamma.augment import AugmentConfig
from jaxhep.egamma.evaluate import evaluate_model
from jaxhep.egamma.model import ResNetConfig
from jaxhep.egamma.training import LossConfig, train_model
from jaxhep.errors import ConfigError
from jaxhep.runs import Run
from jaxhep.train import TrainConfig

MODELS = ("se", "plain")


@dataclass(frozen=True)
class EgammaConfig:
    data: dataset.DataConfig = field(default_factory=dataset.DataConfig)
    models: tuple[str, ...] = MODELS
    widths: tuple[int, ...] = (32, 64, 128, 256)  # of both networks (the peer's)
    blocks_per_stage: tuple[int, ...] = (2, 2, 2, 1)  # ResNet-15; fewer for smoke tests
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    embed_rows: int = 4000  # test images in the feature-embedding plot


def default_config() -> EgammaConfig:
    """The seed's recipe: AdamW + one-cycle, focal loss, mixup, clipping; early stop on val AUC."""
    return EgammaConfig(
        train=TrainConfig(
            epochs=30,
            batch_size=256,
            steps_per_call=8,
            optimizer="adamw",
            learning_rate=2e-3,
            weight_decay=1e-4,
            schedule="onecycle",
            grad_clip_norm=1.0,
            monitor="val_auc",
            patience=6,
            eval_batch_size=2048,
        ),
    )


def quick_config() -> EgammaConfig:
    cfg = default_config()
    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, n_per_class=2000, max_rows=2000, norm_rows=2000),
        widths=(8, 16, 32, 64),
        train=dataclasses.replace(cfg.train, epochs=2, batch_size=128, steps_per_call=4, patience=2),
        embed_rows=500,
    )


def parse_args(argv):
    p = cli.base_parser("python -m experiments.egamma", __doc__.split("\n")[0])
    p.add_argument("--data", action="append", help="an ML4SCI HDF5 file (X, y); repeat for several files")
    p.add_argument("--model", action="append", choices=MODELS, help="train only this network (repeatable)")
    p.add_argument(
        "--workers", type=int, help="input-pipeline worker processes (default: 0 on CPU, up to 8 otherwise)"
    )
    return p.parse_args(argv)


def resolve_config(args) -> tuple[EgammaConfig, Run | None]:
    cfg, run = cli.resolve_config(args, EgammaConfig, "egamma", _defaults, _task_flags)
    if not cfg.models:
        raise ConfigError("nothing to do: no network selected")
    return cfg, run


def _defaults(quick: bool) -> EgammaConfig:
    return quick_config() if quick else default_config()


def _task_flags(cfg: EgammaConfig, args) -> EgammaConfig:
    if args.data:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, paths=tuple(args.data)))
    if args.model:
        cfg = dataclasses.replace(cfg, models=tuple(dict.fromkeys(args.model)))
    return cfg


def main(argv=None) -> Run:
    args = parse_args(argv)
    cfg, run = resolve_config(args)
    runtime = cli.setup_runtime(args)
    dtype = "float32" if runtime.platform == "cpu" else "bfloat16"
    workers = args.workers if args.workers is not None else (0 if runtime.platform == "cpu" else _workers())
    t0 = time.time()
    data = dataset.load(cfg.data, args.data_dir)
    resumed = run is not None
    if run is None:
        run = Run.create(
            args.workdir,
            "egamma",
            {"egamma": to_dict(cfg), "argv": argv, "data_fingerprint": data.fingerprint()},
            name="quick" if args.quick else None,
        )
    n = {k: len(v) for k, v in data.rows.items()}
    print(
        f"[egamma] run {run.path} | {data.source} | train/val/test {n['train']}/{n['val']}/{n['test']} "
        f"| {runtime.description}",
        flush=True,
    )
    results = {}
    with run.recorded(resumed=resumed):
        for name in cfg.models:
            model_cfg = ResNetConfig(
                name=name, widths=cfg.widths, blocks_per_stage=cfg.blocks_per_stage, dtype=dtype
            )
            trained = train_model(
                name, model_cfg, cfg.train, cfg.loss, cfg.augment, data, runtime.mesh, run, workers
            )
            results[name] = evaluate_model(trained, data, run, cfg.embed_rows)
            results[name]["epochs"] = len(trained.history)
            results[name]["history"] = trained.history
            r = results[name]
            print(f"[egamma] {name}: test ROC AUC {r['auc']:.4f}, accuracy {r['accuracy']:.4f}", flush=True)
        plots.roc_curves(
            {name: (r["roc"]["fpr"], r["roc"]["tpr"], r["auc"]) for name, r in results.items()},
            run.plot_path("roc.png"),
            title="Electron vs photon ROC (test split; electron = positive)",
        )
        for name, r in results.items():
            plots.training_curves(
                r["history"], run.plot_path(f"training_{name}.png"), keys=("loss", "val_auc", "val_accuracy")
            )
        summary = {name: {k: r[k] for k in ("auc", "accuracy", "f1")} for name, r in results.items()}
        run.write_json("metrics.json", {"models": results, "wall_s": round(time.time() - t0, 1)})
        run.write_text("report.md", _markdown(results, cfg, data, runtime.description, time.time() - t0))
    run.set_status("done", summary=summary)
    print(f"[egamma] report: {run.path / 'report.md'}", flush=True)
    return run


def _workers() -> int:
    # The HDF5 reader does ~20 k images/s per core; a GPU step wants 40 k+ images/s.
    return max(0, min(8, (os.cpu_count() or 1) - 2))


def _markdown(results: dict, cfg: EgammaConfig, data, devices: str, seconds: float) -> str:
    n = {k: len(v) for k, v in data.rows.items()}
    lines = [
        "# Electron vs photon report",
        "",
        f"- data: {', '.join(str(p) for p in data.source.paths)}",
        f"- train / val / test: {n['train']} / {n['val']} / {n['test']}",
        f"- devices: {devices}",
        f"- wall time: {seconds:.0f} s",
        f"- augmentation: {to_dict(cfg.augment)}",
        f"- loss: {to_dict(cfg.loss)}",
        "",
        "## Test split",
        "",
        "| network | ROC AUC | accuracy | F1 (electron) | epochs |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['auc']:.4f} | {r['accuracy']:.4f} | {r['f1']:.4f} | {r['epochs']} |")
    lines += ["", "![ROC](plots/roc.png)", ""]
    for name, r in results.items():
        lines += [
            f"## {name}",
            "",
            f"Decision threshold (logit) {r['threshold_logit']:.3f}, the accuracy-optimal one on validation.",
            "",
            r["report_md"],
            "",
            f"![confusion](plots/confusion_{name}.png) ![embedding](plots/embedding_{name}.png) "
            f"![training](plots/training_{name}.png)",
            "",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    cli.run_main(main)
