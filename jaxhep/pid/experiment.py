"""The PID experiment: every network of `cfg.models` on every momentum range of `cfg.ranges`,
each against the Bayesian PID baseline on the same test tracks."""

from __future__ import annotations

import time

import numpy as np

from jaxhep.pid import evaluate
from jaxhep.pid.config import PIDConfig
from jaxhep.pid.dataset import Table, load_table, range_data
from jaxhep.pid.report import roc_points, write_report
from jaxhep.pid.training import TrainedModel, train_model
from jaxhep.runs import Run


def load_data(cfg: PIDConfig, runtime) -> Table:
    """The track table (read, or simulated once into `runtime.data_dir`), split train/val/test."""
    return load_table(cfg.data, runtime.data_dir)


def train_and_evaluate(cfg: PIDConfig, data: Table, run: Run, runtime) -> dict:
    """Train (or reuse) each network per range, evaluate it and Bayes on the test split of the
    table `data`, write the report; returns {"<range>/<model>": test accuracy}."""
    t0, table = time.time(), data
    n = f"train/val/test {len(table.train)}/{len(table.val)}/{len(table.test)}"
    print(f"[pid] {len(table)} tracks from {table.path} ({n})", flush=True)
    results = {}
    for rng in cfg.ranges:
        data = range_data(table, rng)
        labels = data.test.label
        bayes, available = evaluate.bayes_scores(table.columns, data.test.rows)
        per_model = {}
        for name in cfg.models:
            trained = train_model(name, cfg, data, run, runtime)
            per_model[name] = _result(
                labels, trained.predict_split(data.test), bayes, available, trained, data, cfg
            )
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
        "data": f"{table.path} ({len(table)} tracks; {n})",
        "devices": runtime.description,
        "wall time": f"{time.time() - t0:.0f} s",
        "config": f"`{run.path / 'config.json'}`",
    }
    write_report(run, results, header)
    return {
        f"{r}/{m}": round(v["metrics"]["accuracy"], 4) for r, pm in results.items() for m, v in pm.items()
    }


def _result(labels, probs, bayes, available, trained: TrainedModel, data, cfg: PIDConfig) -> dict:
    """Test metrics, ROC, the comparison with Bayes, history and feature importance of one network."""
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
