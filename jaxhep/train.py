"""The generic training loop shared by every task.

A task supplies a Flax NNX model and two pure functions:

    loss_fn(model, batch, key) -> (loss, aux)     # batch: dict of arrays [B, ...]; aux: dict of scalars
    predict_fn(model, batch) -> outputs           # evaluation mode

and the loop does the rest: an optax optimiser (Adam/AdamW/SGD, LR schedule, gradient
clipping, gradient accumulation), a jitted train step with donated state that runs
`steps_per_call` steps in one `lax.scan` (per-step Python overhead matters for these
small models), data parallelism over the mesh (batch sharded, state replicated), a NaN
guard (a non-finite step is not applied and stops training, keeping the last good
checkpoint), validation every epoch, early stopping with patience, checkpoints of state +
loop + input iterator (latest N and best) for exact resume, a progress bar with rate and
ETA, one metrics record per epoch in the run directory (metrics.jsonl, and the same scalars as
TensorBoard events: `jaxhep.metric_log`) and one console line per epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from jaxhep import interrupt, metric_log
from jaxhep.checkpoint import Checkpoints, abstract_like
from jaxhep.errors import ConfigError, InputError, NonFiniteLossError
from jaxhep.mesh import gather_to_host, process_slice, put_replicated, shard_batch
from jaxhep.pipeline import EpochPlan, Prefetcher, eval_batches, training_batches
from jaxhep.runs import Run, is_primary

# A callback of `fit`: called after each epoch, once that epoch's record is logged and its
# checkpoint handed to orbax, as callback(record, trainer, checkpoints). Metric writers, extra
# checks and the tests' fault injection (tests/faults.py) are callbacks.
Callback = Callable[[dict, "Trainer", Checkpoints], None]
# What builds the optimiser of a training: (config, total optimiser steps) -> optax transformation.
OptimizerFactory = Callable[["TrainConfig", int], optax.GradientTransformation]


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and loop settings shared by all tasks."""

    epochs: int = 10
    batch_size: int = 1024
    steps_per_call: int = 8  # train steps fused into one compiled call (lax.scan)
    optimizer: str = "adam"  # adam | adamw | sgd
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "constant"  # constant | cosine | warmup_cosine | onecycle
    warmup_steps: int = 0
    grad_clip_norm: float | None = 1.0
    grad_accum_steps: int = 1
    monitor: str = "val_accuracy"  # early stopping / best checkpoint metric
    monitor_mode: str = "max"  # max | min
    patience: int = 15
    keep_checkpoints: int = 3
    eval_batch_size: int = 16384
    seed: int = 0
    # Compute dtype of the model: float32 | bfloat16 | auto (float32 on the CPU, bfloat16 on GPU /
    # TPU; resolved by the driver before config.json is written, so a run records what it used).
    precision: str = "auto"
    progress: bool = True


def make_optimizer(
    cfg: TrainConfig, total_steps: int, clip: optax.GradientTransformation | None = None
) -> optax.GradientTransformation:
    """optax chain: clip -> optimiser with LR schedule, wrapped for accumulation.

    `clip` is the clipping transformation; None: by the global norm `cfg.grad_clip_norm` (none if
    that is None). A task with another rule passes its own (DUNE: per ensemble member)."""
    updates = max(1, total_steps // cfg.grad_accum_steps)
    lr = cfg.learning_rate
    if cfg.schedule == "constant":
        schedule = (
            optax.constant_schedule(lr)
            if not cfg.warmup_steps
            else optax.join_schedules(
                [optax.linear_schedule(0.0, lr, cfg.warmup_steps), optax.constant_schedule(lr)],
                [cfg.warmup_steps],
            )
        )
    elif cfg.schedule == "cosine":
        schedule = optax.cosine_decay_schedule(lr, updates)
    elif cfg.schedule == "warmup_cosine":
        # A run shorter than its warm-up (smoke runs) warms up over half of it instead.
        warmup = max(1, min(cfg.warmup_steps, updates // 2))
        schedule = optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(updates, warmup + 1))
    elif cfg.schedule == "onecycle":
        schedule = optax.cosine_onecycle_schedule(updates, lr)
    else:
        raise ConfigError(f"unknown schedule {cfg.schedule!r} (constant, cosine, warmup_cosine, onecycle)")
    if cfg.optimizer == "adam":
        opt = optax.adam(schedule)
    elif cfg.optimizer == "adamw":
        opt = optax.adamw(schedule, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "sgd":
        opt = optax.sgd(schedule, momentum=0.9, nesterov=True)
    else:
        raise ConfigError(f"unknown optimizer {cfg.optimizer!r} (adam, adamw, sgd)")
    if clip is None and cfg.grad_clip_norm:
        clip = optax.clip_by_global_norm(cfg.grad_clip_norm)
    tx = optax.chain(opt) if clip is None else optax.chain(clip, opt)
    if cfg.grad_accum_steps > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=cfg.grad_accum_steps)
    return tx


class Trainer:
    """Holds the replicated train state and the compiled train / predict programs."""

    def __init__(
        self,
        model: nnx.Module,
        loss_fn: Callable,
        predict_fn: Callable,
        cfg: TrainConfig,
        mesh,
        total_steps: int,
        tx: optax.GradientTransformation | None = None,
    ):
        """`tx`: the optax transformation to train with; None: `make_optimizer(cfg, total_steps)`."""
        self.cfg, self.mesh = cfg, mesh
        self.loss_fn, self.predict_fn = loss_fn, predict_fn
        tx = make_optimizer(cfg, total_steps) if tx is None else tx
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        model.train()
        self.graphdef, state = nnx.split((model, optimizer))
        self.state = put_replicated(state, mesh)
        self.base_key = jax.random.PRNGKey(cfg.seed)
        self._chunk = jax.jit(self._train_chunk, donate_argnums=0)
        self._predict = jax.jit(self._predict_batch)

    # -- compiled programs ---------------------------------------------------------------
    def _train_chunk(self, state, batches, step0):
        """Run K train steps (leading axis of every leaf of `batches`) with lax.scan."""
        k = jax.tree.leaves(batches)[0].shape[0]

        def one_step(state, inputs):
            batch, i = inputs
            # Raw arrays of the incoming state, taken before merge: merge hands out Variables
            # that the update below mutates in place, so `state` itself would change too.
            old_leaves, treedef = jax.tree.flatten(state)
            model, opt = nnx.merge(self.graphdef, state)
            key = jax.random.fold_in(self.base_key, step0 + i)

            def loss_of(m):
                return self.loss_fn(m, batch, key)

            (loss, aux), grads = nnx.value_and_grad(loss_of, has_aux=True)(model)
            grad_norm = optax.global_norm(grads)
            finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
            opt.update(model, grads)
            new_leaves = jax.tree.leaves(nnx.state((model, opt)))
            # NaN guard: a non-finite step leaves the state as it was.
            new_state = jax.tree.unflatten(
                treedef, [jnp.where(finite, n, o) for n, o in zip(new_leaves, old_leaves)]
            )
            return new_state, {"loss": loss, "grad_norm": grad_norm, "finite": finite, **aux}

        if k == 1:
            # No loop around a single step (a scan of one is just a bigger program).
            state, metrics = one_step(state, (jax.tree.map(lambda x: x[0], batches), jnp.int32(0)))
            return state, jax.tree.map(lambda x: x[None], metrics)
        return jax.lax.scan(one_step, state, (batches, jnp.arange(k)))

    def _predict_batch(self, state, batch):
        model, _ = nnx.merge(self.graphdef, state)
        model.eval()
        return self.predict_fn(model, batch)

    # -- host API ------------------------------------------------------------------------
    def train_chunk(self, chunk, step: int):
        """One compiled call on a device chunk [K, B, ...]; returns per-step metrics (on device)."""
        self.state, metrics = self._chunk(self.state, chunk, jnp.int32(step))
        return metrics

    def model(self) -> nnx.Module:
        """The current model (eval mode), e.g. for saving or custom inference."""
        model, _ = nnx.merge(self.graphdef, self.state)
        model.eval()
        return model

    def predict_rows(
        self, read_rows: Callable[[np.ndarray], dict], n_rows: int, batch_size: int | None = None
    ):
        """Predictions for rows [0, n_rows) of a table read by `read_rows(indices)`.

        Batches have a fixed size (the last one padded) so the program compiles once; the
        result is gathered to host numpy with the padding removed.
        """
        batch_size = batch_size or self.cfg.eval_batch_size
        n_dev = self.mesh.devices.size
        batch_size = max(n_dev, (min(batch_size, max(n_rows, 1)) + n_dev - 1) // n_dev * n_dev)
        local = process_slice(batch_size, self.mesh)
        outputs, pending = [], None
        for idx, n_valid in eval_batches(n_rows, batch_size):
            batch = shard_batch(read_rows(idx[local.start : local.stop]), self.mesh, batch_size)
            out = self._predict(self.state, batch)
            if pending is not None:
                outputs.append(_trim(gather_to_host(pending[0]), pending[1]))
            pending = (out, n_valid)
        if pending is not None:
            outputs.append(_trim(gather_to_host(pending[0]), pending[1]))
        if not outputs:
            raise ConfigError("nothing to predict: the table is empty")
        return jax.tree.map(lambda *xs: np.concatenate(xs), *outputs)


def _trim(tree, n):
    return jax.tree.map(lambda x: x[:n], tree)


@dataclass
class FitResult:
    """What a training produced: per-epoch history and where the best state is."""

    history: list[dict]
    best_metric: float | None
    best_epoch: int
    stopped_early: bool
    checkpoint_dir: Path
    resumed_from_epoch: int = 0
    extra: dict = field(default_factory=dict)


def _is_better(value, best, mode: str) -> bool:
    if value is None or not np.isfinite(value):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best


def fit_model(
    model: nnx.Module,
    loss_fn,
    predict_fn,
    cfg: TrainConfig,
    mesh,
    read_rows: Callable[[np.ndarray], dict],
    n_train: int,
    validate: Callable[[Trainer], dict],
    ckpt_dir: str | Path,
    optimizer: OptimizerFactory = make_optimizer,
    **fit_kwargs,
) -> tuple[nnx.Module, FitResult]:
    """A Trainer sized for `cfg.epochs` epochs of `n_train` rows, then `fit` (which resumes ckpt_dir).

    Returns (the best model in eval mode, the FitResult). `optimizer(cfg, total_steps)` builds the
    optax transformation; `fit_kwargs` go to `fit` (run, desc, log_prefix, workers, callbacks).
    The schedule's length counts the steps `fit` will take per epoch.
    """
    steps = EpochPlan.fit_to(n_train, cfg.batch_size, cfg.steps_per_call).steps_per_epoch
    total = steps * cfg.epochs
    trainer = Trainer(model, loss_fn, predict_fn, cfg, mesh, total, tx=optimizer(cfg, total))
    result = fit(trainer, read_rows, n_train, validate, ckpt_dir, **fit_kwargs)
    return trainer.model(), result


def load_best(
    model: nnx.Module, cfg: TrainConfig, ckpt_dir: str | Path, optimizer: OptimizerFactory = make_optimizer
) -> nnx.Module:
    """`model` (built with the finished training's model config) given the variables of the best
    checkpoint in `ckpt_dir`, in eval mode: e.g. a finished run's classifier reused by another run.

    The checkpoint holds (model, optimiser) state; `cfg` is that training's TrainConfig, whose
    optimiser (`optimizer`, as in that training) gives the state's structure (its schedule length
    does not change it).
    """
    ckpts = Checkpoints(ckpt_dir)
    try:
        if ckpts.best.latest_step() is None:
            raise InputError(ckpt_dir, "no best checkpoint here (did that training finish an epoch?)")
        opt = nnx.Optimizer(model, optimizer(cfg, 1), wrt=nnx.Param)
        state, _, _ = ckpts.restore_best(abstract_like(nnx.state((model, opt))))
    finally:
        ckpts.close()
    nnx.update((model, opt), state)
    model.eval()
    return model


def fit(
    trainer: Trainer,
    read_rows: Callable[[np.ndarray], dict],
    n_train: int,
    validate: Callable[[Trainer], dict],
    ckpt_dir: str | Path,
    run: Run | None = None,
    desc: str = "train",
    log_prefix: dict | None = None,
    workers: int = 0,
    callbacks: tuple[Callback, ...] = (),
) -> FitResult:
    """Train until `cfg.epochs` or early stopping, resuming from `ckpt_dir` if it holds a checkpoint.

    `read_rows(indices) -> dict of arrays [len(indices), ...]` reads training rows;
    `validate(trainer) -> dict` returns validation metrics (must include `cfg.monitor`).
    After return, `trainer.state` holds the best checkpoint's state. Each of `callbacks` is
    called after every epoch as callback(record, trainer, checkpoints), after the default ones
    (`metric_log.default_callbacks`): a console line per epoch, and with a `run` its TensorBoard
    events in <run>/tensorboard/<log_prefix values>/, holding the scalars of metrics.jsonl.

    Resuming takes the newest checkpoint that restores (a damaged one is set aside, with a line
    on stderr), drops the metrics records of the epochs it redoes, and saves the best checkpoint
    again if a kill cut its save short. Ctrl-C / SIGTERM (`jaxhep.interrupt`) stop after the
    compiled call in flight with a checkpoint of that step; a loss that diverges stops like a
    NaN one.
    """
    cfg, mesh = trainer.cfg, trainer.mesh
    plan = EpochPlan.fit_to(n_train, cfg.batch_size, cfg.steps_per_call)
    plan.check()
    local = process_slice(cfg.batch_size, mesh)
    ckpts = Checkpoints(ckpt_dir, keep=cfg.keep_checkpoints)
    loop = {"epoch": 0, "step": 0, "best": None, "best_epoch": -1, "since_best": 0, "history": []}
    data_state = None
    if ckpts.latest_step() is not None:
        trainer.state, loop, data_state, skipped = ckpts.restore_newest_good(abstract_like(trainer.state))
        for line in skipped:
            _warn(f"{desc}: checkpoint {line} in {ckpts.directory / 'latest'} does not restore; moved aside")
        _keep_best_in_step(trainer, ckpts, loop, data_state, cfg)
        if run is not None:
            run.drop_epochs_after(loop["epoch"], log_prefix or {})
    else:  # a fresh start: a best/ left from a training whose latest/ is gone would block its saves
        ckpts.set_aside_best_after(-1)
    resumed_from = loop["epoch"]
    stream = iter(
        training_batches(
            read_rows, plan, cfg.seed, cfg.epochs, local=slice(local.start, local.stop), workers=workers
        )
    )
    if data_state:
        stream.set_state(data_state)
    prefetch = Prefetcher(stream, lambda c: shard_batch(c, mesh, cfg.batch_size, batch_axis=1))
    logs: tuple = ()
    try:
        # After drop_epochs_after: the TensorBoard log starts from the records metrics.jsonl keeps.
        logs = metric_log.default_callbacks(run, desc, log_prefix)
        with interrupt.safe_points():
            for epoch in range(loop["epoch"], cfg.epochs):
                if loop["since_best"] >= cfg.patience:
                    break
                t0 = time.perf_counter()
                train_metrics = _train_epoch(trainer, prefetch, plan, loop, epoch, desc, ckpts)
                data_state = train_metrics.pop("_data_state")
                _check_divergence(train_metrics["loss"], loop, epoch, desc, ckpts, cfg)
                seconds = time.perf_counter() - t0
                val = validate(trainer)
                if cfg.monitor not in val:
                    raise ConfigError(f"validation returned no {cfg.monitor!r} (got {sorted(val)})")
                record = {
                    **(log_prefix or {}),
                    "epoch": epoch + 1,
                    "step": loop["step"],
                    **train_metrics,
                    **val,
                    "epoch_seconds": round(seconds, 3),
                    "train_samples_per_s": plan.steps_per_epoch * cfg.batch_size / max(seconds, 1e-9),
                }
                improved = _is_better(val[cfg.monitor], loop["best"], cfg.monitor_mode)
                if improved:
                    loop.update(best=float(val[cfg.monitor]), best_epoch=epoch + 1, since_best=0)
                    loop["best_step"] = loop["step"]
                else:
                    loop["since_best"] += 1
                loop["epoch"] = epoch + 1
                loop["history"].append(record)
                ckpts.save(loop["step"], trainer.state, loop, data_state, is_best=improved)
                if run is not None:
                    run.log(record)
                for callback in (*logs, *callbacks):
                    callback(record, trainer, ckpts)
                stop = interrupt.requested()
                if stop and loop["epoch"] < cfg.epochs:
                    ckpts.wait()
                    raise interrupt.Interrupted(stop, f"a checkpoint at the end of epoch {epoch + 1}")
        if ckpts.best.latest_step() is not None:
            trainer.state, _, _ = ckpts.restore_best(abstract_like(trainer.state))
    finally:
        interrupt.reset()
        for log in logs:
            log.close()
        prefetch.close()
        ckpts.close()
    stopped_early = loop["since_best"] >= cfg.patience and loop["epoch"] < cfg.epochs
    return FitResult(
        loop["history"],
        loop["best"],
        loop["best_epoch"],
        stopped_early,
        Path(ckpt_dir),
        resumed_from_epoch=resumed_from,
    )


# An epoch whose mean training loss is this many times the loss of the very first step has
# diverged (a learning rate far too high: the loss runs to 1e10 and stays there, the network
# predicting one class). A training that learns never comes near it; a NaN stops at once.
DIVERGENCE_FACTOR = 100.0


def _check_divergence(loss: float, loop: dict, epoch: int, desc: str, ckpts: Checkpoints, cfg) -> None:
    first = loop.get("first_loss")
    if first is None or first <= 0 or loss <= DIVERGENCE_FACTOR * first:
        return
    raise _stopped(
        ckpts,
        f"{desc}: the training loss diverged: {loss:.3g} in epoch {epoch + 1}, against {first:.3g} at the "
        "first step; training stopped",
        f"Lower the learning rate (train.learning_rate={cfg.learning_rate:g}).",
    )


def _stopped(ckpts: Checkpoints, what: str, advice: str) -> NonFiniteLossError:
    """The error of a training stopped for its loss: what happened, the last good checkpoint
    (after the saves in flight are committed), and what to do."""
    ckpts.wait()
    last = ckpts.latest_step()
    where = f"{ckpts.directory / 'latest'} (step {last})" if last is not None else "none yet"
    return NonFiniteLossError(f"{what}. Last good checkpoint: {where}. {advice}")


def _keep_best_in_step(trainer: Trainer, ckpts: Checkpoints, loop: dict, data_state, cfg) -> None:
    """Make `best/` hold the loop's best epoch after a resume.

    A kill after an improved epoch's `latest/` save but before its `best/` save leaves `best/`
    one improvement behind, while the loop (restored from `latest/`) counts from the new best:
    that state is the one just restored, so it is saved again. If the best is lost for good (its
    checkpoint damaged), the loop's best is re-derived from what `best/` does hold."""
    best_step = loop.get("best_step")
    if best_step is None and loop.get("best_epoch", -1) > 0:  # checkpoints from before best_step
        best_step = loop["history"][loop["best_epoch"] - 1]["step"]
    held = ckpts.best.latest_step()
    if best_step is None or held == best_step:
        return
    if best_step == loop["step"] and not loop.get("chunk"):
        ckpts.save_best(best_step, trainer.state, loop, data_state)
        return
    kept = [h for h in loop["history"] if h["step"] == held]
    if kept:
        loop.update(best=float(kept[0][cfg.monitor]), best_epoch=kept[0]["epoch"], best_step=held)
    else:
        loop.update(best=None, best_epoch=-1, best_step=None)
    loop["since_best"] = loop["epoch"] - max(loop["best_epoch"], 0)
    _warn(f"the best checkpoint (step {best_step}) is lost; the best is now that of step {held}")


def _warn(message: str) -> None:
    """One line on stderr for something the user should know that does not stop the run."""
    import sys

    if is_primary():
        print(f"warning: {message}", file=sys.stderr, flush=True)


def _train_epoch(
    trainer: Trainer,
    prefetch: Prefetcher,
    plan: EpochPlan,
    loop: dict,
    epoch: int,
    desc: str,
    ckpts: Checkpoints,
) -> dict[str, Any]:
    """One epoch of chunks; host reads chunk i-1's metrics while chunk i runs.

    Starts at chunk `loop["chunk"]` with the sums of `loop["partial"]` when a checkpoint saved at
    an interrupt holds them (a resumed epoch adds up to the same means as an uninterrupted one)."""
    cfg = trainer.cfg
    start = loop.get("chunk") or 0
    partial = loop.get("partial") or {"sums": {}, "count": 0}
    sums: dict[str, float] = dict(partial["sums"])
    count = partial["count"]
    bar = tqdm(
        total=plan.steps_per_epoch * cfg.batch_size,
        initial=start * plan.steps_per_call * cfg.batch_size,
        unit="sample",
        unit_scale=True,
        desc=f"{desc} epoch {epoch + 1}/{cfg.epochs}",
        leave=False,
        disable=not (cfg.progress and is_primary()),
        mininterval=0.5,
    )
    data_state = None

    def consume(metrics, first_step):
        nonlocal count
        host = jax.tree.map(np.asarray, metrics)
        if not host["finite"].all():
            bad = first_step + int(np.argmin(host["finite"]))
            raise _stopped(
                ckpts,
                f"{desc}: the loss became NaN/inf at step {bad} (epoch {epoch + 1}); training stopped",
                "Lower the learning rate or check the inputs for NaNs.",
            )
        if loop.get("first_loss") is None:
            loop["first_loss"] = float(host["loss"][0])
        for key, value in host.items():
            if key != "finite":
                sums[key] = sums.get(key, 0.0) + float(np.sum(value))
        count += len(host["loss"])
        bar.update(len(host["loss"]) * cfg.batch_size)
        bar.set_postfix(loss=f"{sums['loss'] / count:.4f}", refresh=False)

    pending = None
    # Per-chunk checks for a stop request only with one process: with several, the check is a
    # collective that would wait for every chunk in flight (they check once an epoch, in fit).
    check_each_chunk = jax.process_count() == 1
    for index in range(start, plan.chunks_per_epoch):
        chunk, data_state = next(prefetch)
        metrics = trainer.train_chunk(chunk, loop["step"])
        if pending is not None:
            consume(*pending)
        pending = (metrics, loop["step"])
        loop["step"] += plan.steps_per_call
        stop = interrupt.requested() if check_each_chunk else None
        if stop and index + 1 < plan.chunks_per_epoch:
            consume(*pending)
            bar.close()
            loop["chunk"], loop["partial"] = index + 1, {"sums": sums, "count": count}
            ckpts.save(loop["step"], trainer.state, loop, data_state, is_best=False)
            ckpts.wait()
            raise interrupt.Interrupted(
                stop,
                f"a checkpoint at step {loop['step']} ({index + 1} of {plan.chunks_per_epoch} "
                f"chunks of epoch {epoch + 1})",
            )
    if pending is not None:
        consume(*pending)
    bar.close()
    loop["chunk"], loop["partial"] = 0, None
    out: dict[str, Any] = {k: v / max(count, 1) for k, v in sums.items()}
    out["_data_state"] = data_state
    return out


def predict_with(
    model: nnx.Module,
    predict_fn: Callable,
    read_rows: Callable[[np.ndarray], dict],
    n_rows: int,
    batch_size: int = 1024,
):
    """predict_fn(model, batch) over rows [0, n_rows) of a reader, model in eval mode, one device.

    For a trained model outside its Trainer (evaluation, reports). Fixed-size batches (the last
    one padded by repeating row 0), so the program compiles once; returns host arrays (a pytree
    like predict_fn's output) with the padding removed.
    """
    model.eval()
    graphdef, state = nnx.split(model)
    apply = jax.jit(lambda s, b: predict_fn(nnx.merge(graphdef, s), b))
    outputs = []
    for start in range(0, n_rows, batch_size):
        idx = np.arange(start, min(start + batch_size, n_rows))
        padded = np.concatenate([idx, np.zeros(batch_size - len(idx), np.int64)])
        outputs.append(_trim(jax.tree.map(np.asarray, apply(state, read_rows(padded))), len(idx)))
    if not outputs:
        raise ConfigError("nothing to predict: the table is empty")
    return jax.tree.map(lambda *xs: np.concatenate(xs), *outputs)
