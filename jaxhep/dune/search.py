"""`python -m experiments.dune <task> --search N`: a resumable optuna search over the task's first
network (one model per trial, `search_epochs` epochs), every trial's memory estimated first.

The space covers what the seed's registry varied by hand: learning rate, batch size, filters,
kernel, dense width, dropout, and (direction) the loss.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jaxhep.dune import ensemble as ens
from jaxhep.dune.training import NETWORKS, NetConfig, build, member_loss, monitor, predict, train
from jaxhep.memory import device_memory_bytes, estimate_trainer_step
from jaxhep.search import run_search


def space(task: str, net: NetConfig, batch_size: int, n_train: int) -> dict:
    """The search space, around the configured network: filters, dense width and batch size at
    half, the same and twice the configured values (batch sizes above the training set dropped)."""
    base = net.direction if task == "direction" else getattr(net, task)
    batches = [b for b in (batch_size // 2, batch_size, 2 * batch_size) if 1 <= b <= n_train] or [n_train]
    out = {
        "learning_rate": ("float", 1e-4, 3e-3, "log"),
        "batch_size": ("categorical", batches),
        "base_filters": (
            "categorical",
            [max(1, base.base_filters // 2), base.base_filters, 2 * base.base_filters],
        ),
        "kernel": ("categorical", [3, 5, 7]),
        "dense": ("categorical", [max(1, base.dense[0] // 2), base.dense[0], 2 * base.dense[0]]),
        "dropout": ("float", 0.0, 0.5),
    }
    if task == "direction":
        out["loss"] = ("categorical", ["cosine", "angular", "focal_angular", "hybrid_angular"])
    return out


def net_for(task: str, base: NetConfig, p: dict) -> NetConfig:
    """One model (no ensemble) with the trial's hyper-parameters."""
    sizes = dict(base_filters=p["base_filters"], kernel=p["kernel"], dropout=p["dropout"])
    if task == "direction":
        direction = dataclasses.replace(base.direction, dense=(p["dense"], p["dense"]), **sizes)
        return dataclasses.replace(base, direction=direction, members=1, loss=p["loss"])
    cls = dataclasses.replace(getattr(base, task), dense=(p["dense"],), **sizes)
    return dataclasses.replace(base, members=1, **{task: cls})


def search(cfg, n_trials: int, data, runtime, dtype: str, train_cfg, workdir: str):
    """Run (or resume) the study `dune-<task>-<network>`; returns the SearchResult."""
    task, network = cfg.task, (cfg.networks or NETWORKS[cfg.task])[0]
    metric, mode = monitor(task)
    mesh = runtime.mesh

    def trial_train_cfg(p):
        return dataclasses.replace(
            train_cfg,
            epochs=cfg.search_epochs,
            batch_size=p["batch_size"],
            learning_rate=p["learning_rate"],
            patience=cfg.search_epochs,
        )

    def memory_check(p):
        net = net_for(task, cfg.net, p)
        example = ens.WithRowIndex(data.reader("train"))(np.arange(1))
        estimate = estimate_trainer_step(
            lambda: build(task, network, net, dtype, train_cfg.seed),
            ens.make_loss_fn(member_loss(task, net), net.bootstrap),
            predict(task),
            trial_train_cfg(p),
            mesh,
            example,
        )
        return estimate, device_memory_bytes(mesh.devices.flat[0])

    def objective(p, run):
        trained = train(
            task,
            network,
            net_for(task, cfg.net, p),
            trial_train_cfg(p),
            data,
            mesh,
            run,
            dtype,
            directory=run.sub("model"),
        )
        best = [h[metric] for h in trained.history]
        return {metric: float(min(best) if mode == "min" else max(best)), "epochs": len(best)}

    result = run_search(
        f"dune-{task}-{network}",
        Path(workdir) / "dune" / "search",
        n_trials,
        objective,
        space(task, cfg.net, train_cfg.batch_size, len(data.rows["train"])),
        direction="minimize" if mode == "min" else "maximize",
        memory_check=memory_check,
        seed=train_cfg.seed,
        registry_workdir=workdir,
        task="dune",
        metric=metric,
        config={"task": task, "network": network, "search_epochs": cfg.search_epochs},
    )
    print(result.table(), flush=True)
    if result.best_value is not None:
        print(f"[dune] best {metric} {result.best_value:.4g} with {result.best_params}", flush=True)
    return result
