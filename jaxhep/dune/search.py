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
from jaxhep.dune.config import NETWORKS, DuneConfig, NetConfig, monitor
from jaxhep.dune.training import build, member_loss, predict, train_model
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


def search(cfg: DuneConfig, data, n_trials: int, runtime):
    """Run (or resume) the study `dune-<task>-<network>` of `n_trials` trials in all on `data`,
    stored under `runtime.workdir`; returns the SearchResult."""
    task, network = cfg.task, (cfg.networks or NETWORKS[cfg.task])[0]
    metric, mode = monitor(task)
    train = cfg.train

    def trial_cfg(p) -> DuneConfig:
        """`cfg` with the trial's network (one model) and optimiser settings."""
        return dataclasses.replace(
            cfg,
            net=net_for(task, cfg.net, p),
            train=dataclasses.replace(
                train,
                epochs=cfg.search_epochs,
                batch_size=p["batch_size"],
                learning_rate=p["learning_rate"],
                patience=cfg.search_epochs,
            ),
        )

    def memory_check(p):
        trial = trial_cfg(p)
        example = ens.WithRowIndex(data.reader("train"))(np.arange(1))
        # estimate_trainer_step builds the optimiser with the global-norm clip; its state is the
        # same (empty) as the per-member clip's of the training, and so is the memory.
        estimate = estimate_trainer_step(
            lambda: build(task, network, trial.net, train.precision, train.seed),
            ens.make_loss_fn(member_loss(task, trial.net), trial.net.bootstrap),
            predict(task),
            trial.train,
            runtime.mesh,
            example,
        )
        return estimate, device_memory_bytes(runtime.mesh.devices.flat[0])

    def objective(p, run):
        trained = train_model(network, trial_cfg(p), data, run, runtime, directory=run.sub("model"))
        best = [h[metric] for h in trained.history]
        return {metric: float(min(best) if mode == "min" else max(best)), "epochs": len(best)}

    result = run_search(
        f"dune-{task}-{network}",
        Path(runtime.workdir) / "dune" / "search",
        n_trials,
        objective,
        space(task, cfg.net, train.batch_size, len(data.rows["train"])),
        direction="minimize" if mode == "min" else "maximize",
        memory_check=memory_check,
        seed=train.seed,
        registry_workdir=runtime.workdir,
        task="dune",
        metric=metric,
        config={"task": task, "network": network, "search_epochs": cfg.search_epochs},
    )
    print(result.table(), flush=True)
    if result.best_value is not None:
        print(f"[dune] best {metric} {result.best_value:.4g} with {result.best_params}", flush=True)
    return result
