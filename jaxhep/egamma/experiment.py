"""The e/gamma experiment: each network of `cfg.models` trained on the split, evaluated on the test
split, and compared in one report."""

from __future__ import annotations

import dataclasses
import os
import time

from jaxhep.egamma import dataset
from jaxhep.egamma.config import EgammaConfig
from jaxhep.egamma.dataset import EgammaData
from jaxhep.egamma.evaluate import evaluate_model
from jaxhep.egamma.report import markdown, write_plots
from jaxhep.egamma.training import train_model
from jaxhep.runs import Run


def load_data(cfg: EgammaConfig, runtime) -> EgammaData:
    """The files opened and checked (the default sample simulated once into `runtime.data_dir`),
    split 70/15/15 and the normalisation fitted on the training rows."""
    return dataset.load(cfg.data, runtime.data_dir)


def input_workers(workers: int | None, platform: str) -> int:
    """Input-pipeline worker processes: `workers` if set; else 0 on the CPU (the reader would
    compete with XLA for the cores) and up to 8 on accelerators."""
    if workers is not None:
        return workers
    if platform == "cpu":
        return 0
    # The HDF5 reader does ~20 k images/s per core; a GPU step wants 40 k+ images/s.
    return max(0, min(8, (os.cpu_count() or 1) - 2))


def train_and_evaluate(cfg: EgammaConfig, data: EgammaData, run: Run, runtime) -> dict:
    """Train (or, resuming, load) and evaluate every network, write metrics.json, report.md and the
    plots; returns {network: {"auc", "accuracy", "f1"}} of the test split."""
    t0 = time.time()
    workers = input_workers(cfg.data.workers, runtime.platform)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, workers=workers))
    n = {k: len(v) for k, v in data.rows.items()}
    print(f"[egamma] {data.source} | train/val/test {n['train']}/{n['val']}/{n['test']}", flush=True)
    results = {}
    for name in cfg.models:
        trained = train_model(name, cfg, data, run, runtime)
        results[name] = evaluate_model(trained, data, run, cfg.embed_rows)
        results[name]["epochs"] = len(trained.history)
        results[name]["history"] = trained.history
        r = results[name]
        print(f"[egamma] {name}: test ROC AUC {r['auc']:.4f}, accuracy {r['accuracy']:.4f}", flush=True)
    write_plots(run, results)
    summary = {name: {k: r[k] for k in ("auc", "accuracy", "f1")} for name, r in results.items()}
    run.write_json(
        "metrics.json",
        {"models": results, "wall_s": round(time.time() - t0, 1), "data_fingerprint": data.fingerprint()},
    )
    run.write_text("report.md", markdown(results, cfg, data, runtime.description, time.time() - t0))
    return summary
