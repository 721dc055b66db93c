"""ALICE Run 3 particle identification: SimpleNN, DNN and FSE+Attention vs Bayesian PID.

python -m experiments.pid                        # simulated 1 M-track Pb-Pb sample, 3 models x 3 ranges
python -m experiments.pid --quick                # one-minute smoke run
python -m experiments.pid --data tracks.parquet --model fse --range 0.7-1.5
python -m experiments.pid --resume runs/pid/<run-id>
python -m experiments.pid --tpu                  # same on a TPU (clear error if there is none)
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from jaxhep import cli
from jaxhep.config import from_dict, to_dict  # noqa: F401 (from_dict used by tests)
from jaxhep.errors import ConfigError
from jaxhep.pid import evaluate
from jaxhep.pid.config import DataConfig, EvalConfig, PIDConfig
from jaxhep.pid.dataset import load_table, range_data
from jaxhep.pid.models import ModelConfig
from jaxhep.pid.report import roc_points, write_report
from jaxhep.pid.training import train_or_reuse
from jaxhep.runs import Run
from jaxhep.train import TrainConfig


def default_config() -> PIDConfig:
    """The seed's setup: focal loss (0.25, 2), Adam 1e-3, batch 1024, <= 150 epochs, patience 15."""
    return PIDConfig(
        data=DataConfig(n_tracks=1_000_000),
        model=ModelConfig(),
        train=TrainConfig(
            epochs=150,
            batch_size=1024,
            learning_rate=1e-3,
            patience=15,
            steps_per_call=16,
            grad_clip_norm=None,
            monitor="val_accuracy",
            eval_batch_size=65536,
        ),
    )


def quick_config() -> PIDConfig:
    """About a minute on a laptop CPU: a small sample, a few epochs, smaller networks."""
    cfg = default_config()
    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, n_tracks=40_000),
        model=dataclasses.replace(cfg.model, embed_dim=32, head_hidden=(64, 32)),
        train=dataclasses.replace(cfg.train, epochs=2, batch_size=512, steps_per_call=8, patience=2),
        eval=EvalConfig(importance_rows=2_000),
    )


def parse_args(argv):
    p = cli.base_parser("python -m experiments.pid", __doc__.split("\n")[0])
    p.add_argument("--data", help="CSV or Parquet table with the 21 feature columns and mc_pdg")
    p.add_argument(
        "--model",
        action="append",
        choices=["simple", "dnn", "fse"],
        help="train only this network (repeatable; default: all three)",
    )
    p.add_argument(
        "--range",
        dest="ranges",
        action="append",
        metavar="LO-HI",
        help="pT range in GeV/c, e.g. 0.7-1.5, or 'full' (repeatable; default: full, 0.7-1.5, 1-3)",
    )
    p.add_argument("--force-train", action="store_true", help="train even if an identical model exists")
    return p.parse_args(argv)


def resolve_config(args) -> tuple[PIDConfig, Run | None]:
    """The run's config: from --resume's folder, or defaults + flags + --set overrides."""
    cfg, run = cli.resolve_config(args, PIDConfig, "pid", _defaults, _task_flags)
    if not cfg.models or not cfg.ranges:
        raise ConfigError("nothing to do: no model or no momentum range selected")
    return cfg, run


def _defaults(quick: bool) -> PIDConfig:
    return quick_config() if quick else default_config()


def _task_flags(cfg: PIDConfig, args) -> PIDConfig:
    if args.data:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=args.data))
    if args.model:
        cfg = dataclasses.replace(cfg, models=tuple(args.model))
    if args.ranges:
        cfg = dataclasses.replace(cfg, ranges=tuple(args.ranges))
    return cfg


def main(argv=None) -> Run:
    args = parse_args(argv)
    cfg, run = resolve_config(args)
    runtime = cli.setup_runtime(args)
    t0 = time.time()
    table = load_table(cfg.data, args.data_dir)
    resumed = run is not None
    if run is None:
        run = Run.create(
            args.workdir, "pid", {"pid": to_dict(cfg), "argv": argv}, name="quick" if args.quick else None
        )
    print(f"[pid] run {run.path} | {len(table)} tracks from {table.path} | {runtime.description}", flush=True)
    results = {}
    with run.recorded(resumed=resumed):
        for rng in cfg.ranges:
            data = range_data(table, rng)
            labels = data.test.label
            bayes, available = evaluate.bayes_scores(table.columns, data.test.rows)
            per_model = {}
            for name in cfg.models:
                trained = train_or_reuse(
                    name, data, cfg, runtime.mesh, run, table.fingerprint, args.force_train
                )
                probs = trained.predict_split(data.test)
                per_model[name] = _result(labels, probs, bayes, available, trained, data, cfg)
                m = per_model[name]["metrics"]
                print(
                    f"[pid] {rng:>8} {name:>6}: accuracy {m['accuracy']:.4f}  macro AUC {m['macro_auc']:.4f}"
                    f"{'  (reused)' if trained.reused_from else ''}",
                    flush=True,
                )
            per_model["bayes"] = {
                "metrics": evaluate.classifier_metrics(labels, bayes),
                "roc": roc_points(labels, bayes),
            }
            mb = per_model["bayes"]["metrics"]
            print(
                f"[pid] {rng:>8}  bayes: accuracy {mb['accuracy']:.4f}  macro AUC {mb['macro_auc']:.4f}",
                flush=True,
            )
            results[rng] = per_model
        header = {
            "data": f"{table.path} ({len(table)} tracks; train/val/test {len(table.train)}/"
            f"{len(table.val)}/{len(table.test)})",
            "devices": runtime.description,
            "wall time": f"{time.time() - t0:.0f} s",
            "config": f"`{run.path / 'config.json'}`",
        }
        write_report(run, results, header)
    summary = {
        f"{r}/{m}": round(v["metrics"]["accuracy"], 4) for r, pm in results.items() for m, v in pm.items()
    }
    run.set_status("done", summary=summary)
    print(f"[pid] report: {run.path / 'report.md'}", flush=True)
    return run


def _result(labels, probs, bayes, available, trained, data, cfg: PIDConfig) -> dict:
    out = {
        "metrics": evaluate.classifier_metrics(labels, probs),
        "roc": roc_points(labels, probs),
        "bayes_comparison": evaluate.compare_with_bayes(labels, probs, bayes, available),
        "history": trained.history,
        "reused_from": str(trained.reused_from) if trained.reused_from else None,
    }
    if trained.history:
        out["epochs_run"] = len(trained.history)
        out["best_epoch"] = int(np.argmax([h["val_accuracy"] for h in trained.history])) + 1
    n = min(cfg.eval.importance_rows, len(data.test))
    if n:
        sub = np.random.default_rng(cfg.eval.importance_seed).choice(len(data.test), n, replace=False)
        out["importance"] = evaluate.permutation_importance(
            trained.predict_arrays,
            data.test.x[sub],
            data.test.group_mask[sub],
            labels[sub],
            seed=cfg.eval.importance_seed,
        )
    return out


if __name__ == "__main__":
    cli.run_main(main)
