"""The DUNE experiment: every network of the task (`cfg.networks`, default all) trained as a
bootstrap ensemble and evaluated on the test split; direction against the principal-axis baseline."""

from __future__ import annotations

import argparse
import time

from jaxhep.config import from_dict
from jaxhep.dune import dataset, evaluate
from jaxhep.dune.config import NETWORKS, DuneConfig, registry_params
from jaxhep.dune.dataset import DuneData
from jaxhep.dune.report import markdown, write_plots
from jaxhep.dune.training import train_model
from jaxhep.runs import Run, format_registry, load_registry

REGISTRY_COLUMNS = ("run_id", "task", "network", "status", "time", "elapsed_s", "params", "summary")


def load_data(cfg: DuneConfig, runtime) -> DuneData:
    """The task's NPZ (`cfg.data.path`, or simulated once into `runtime.data_dir`), split
    train / val / test."""
    return dataset.load_run(cfg, runtime.data_dir)


def train_and_evaluate(cfg: DuneConfig, data: DuneData, run: Run, runtime) -> dict:
    """Train each network of the task on `data`, evaluate it on the test split, write
    metrics.json, report.md and the plots; returns the registry summary (`_summary`)."""
    t0 = time.time()
    n = {k: len(v) for k, v in data.rows.items()}
    print(
        f"[dune] {cfg.task} | {data.source.path} | train/val/test {n['train']}/{n['val']}/{n['test']} "
        f"| {cfg.net.members} member(s)",
        flush=True,
    )
    results = {}
    for network in cfg.networks or NETWORKS[cfg.task]:
        trained = train_model(network, cfg, data, run, runtime)
        outputs = evaluate.test_outputs(trained, data)
        if cfg.task == "direction":
            r = evaluate.direction_metrics(outputs, data)
            print(
                f"[dune] {network}: mean angular error {r['mean_angle_deg']:.1f} deg, "
                f"mean axis error {r['mean_axis_deg']:.1f} deg",
                flush=True,
            )
        else:
            r = evaluate.classifier_metrics(cfg.task, outputs, data)
            print(f"[dune] {network}: accuracy {r['accuracy']:.4f}, ROC AUC {r['auc']:.4f}", flush=True)
        r["epochs"] = len(trained.history)
        results[network] = r
    baseline = evaluate.moments_baseline(data) if cfg.task == "direction" else None
    write_plots(cfg.task, results, run)
    public = {k: {m: v for m, v in r.items() if not m.startswith("_")} for k, r in results.items()}
    run.write_json(
        "metrics.json",
        {
            "task": cfg.task,
            "networks": public,
            "moments_baseline": baseline,
            "wall_s": round(time.time() - t0, 1),
        },
    )
    run.write_text("report.md", markdown(cfg, public, baseline, data, runtime.description, time.time() - t0))
    return _summary(cfg.task, public)


def _summary(task: str, results: dict) -> dict:
    """{"<network>.<figure>": value}: mean angle and axis errors, or accuracy and ROC AUC."""
    keys = ("mean_angle_deg", "mean_axis_deg") if task == "direction" else ("accuracy", "auc")
    return {f"{net}.{k}": r[k] for net, r in results.items() for k in keys}


def registry(args: argparse.Namespace) -> str:
    """`python -m experiments.dune registry`: every DUNE run and search trial of `args.workdir`
    as a table (printed and returned): its task, network(s) and key settings, status and result."""
    table = format_registry(
        [registry_row(e) for e in load_registry(args.workdir, task="dune")], REGISTRY_COLUMNS
    )
    print(table)
    return table


def registry_row(entry: dict) -> dict:
    """A registry entry with the `task`, `network` and `params` columns filled from its config:
    a run's (config.json's "dune"), read for every status, or a search trial's (its task, network
    and the trial's sampled settings)."""
    config = entry.get("config") or {}
    if "dune" not in config:  # a search trial: {"task", "network", "search_epochs"} + its params
        return {**entry, "task": config.get("task", ""), "network": config.get("network", "")}
    try:
        cfg = from_dict(DuneConfig, config["dune"])
    except (TypeError, ValueError, AttributeError, KeyError):  # a run of an older config: as recorded
        return {**entry, "task": config["dune"].get("task", "")}
    networks = ", ".join(cfg.networks or NETWORKS[cfg.task])
    return {**entry, "task": cfg.task, "network": networks, "params": registry_params(cfg)}
