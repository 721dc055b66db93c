"""Hyper-parameter search that survives what killed the DUNE seed's searches.

    space = {
        "learning_rate": ("float", 1e-4, 1e-2, "log"),
        "width": ("int", 16, 256),
        "loss": ("categorical", ["cosine", "angular"]),
    }
    result = run_search("ed-v5", "runs/search", 20, objective, space, memory_check=check,
                        registry_workdir="runs", task="dune")
    print(result.table())

`objective(params)` (or `objective(params, run)`, see below) trains with the suggested
hyper-parameters and returns the number to minimise (or maximise), or a dict of metrics
with `metric=` naming that number.

- The study lives in SQLite (`<storage_dir>/search.db`, optuna), so a second call with the
  same name resumes it: it runs trials until `n_trials` trials have ended in total
  (completed, skipped or failed), keeping the earlier ones. A trial cut short by a crash or
  Ctrl-C does not count, so rerunning the same command after a crash finishes the job.
- Sampling is optuna's TPE, seeded (the seed is offset by the trials already in the study,
  so a resumed search does not repeat its first random points).
- Before a trial runs, `memory_check(params) -> (estimate_bytes, capacity_bytes)` (e.g.
  from `jaxhep.memory.estimate_trainer_step` and `device_memory_bytes`) can reject it: the
  trial is recorded as skipped ("needs 31.2 GB, device has 25.4 GB"; optuna state PRUNED,
  which TPE reads as a bad region) and the search goes on. Each distinct point is
  estimated once per call; an estimate that raises fails the trial.
- An objective that raises (a real out-of-memory, `NonFiniteLossError`, ...) fails that
  trial with its message and the search goes on; KeyboardInterrupt stops the search.
- With `registry_workdir`, every trial is a run of the registry (`jaxhep.runs`): a run
  folder `<workdir>/<task>/<stamp>-<hash>-<name>-t<N>` with config.json, and registry
  records with the hyper-parameters (`params`), result (`summary`), status and time. An
  objective with a second parameter receives that `Run` to train into (metrics log,
  checkpoints), so a trial is one registry entry, not two.
  `runs.format_registry(rows, TRIAL_COLUMNS)` prints the table the seed kept by hand.

One search process per study at a time is the intended use; several processes on one
SQLite file work (optuna serialises them) but each counts the others' ended trials.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import json
import math
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jaxhep.errors import ConfigError
from jaxhep.memory import describe_bytes, fits
from jaxhep.runs import Run, format_registry, pid_alive

DB_NAME = "search.db"
# Columns of the registry table for trials: `format_registry(load_registry(w), TRIAL_COLUMNS)`.
TRIAL_COLUMNS = ("task", "run_id", "status", "time", "elapsed_s", "params", "summary")

# Space: name -> ("float", lo, hi[, "log"]) | ("int", lo, hi[, step | "log"]) |
# ("categorical", [choices]) | [choices]; or a callable suggest(trial) -> dict.
Space = Mapping[str, Any] | Callable[[Any], dict]


@dataclass
class SearchResult:
    """What a search found: the best trial (over every run of the study) and all trials."""

    name: str
    storage: Path
    best_params: dict | None
    best_value: float | None
    trials: list[dict] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t["status"]] = out.get(t["status"], 0) + 1
        return out

    def table(self) -> str:
        """The trials as a markdown table."""
        return format_registry(self.trials, ("trial", "status", "value", "params", "message", "elapsed_s"))


def suggest(trial, space: Space) -> dict:
    """Hyper-parameters for an optuna trial from a space description (see module docstring)."""
    if callable(space):
        params = space(trial)
        if not isinstance(params, Mapping):
            raise ConfigError(f"the search space function returned {type(params).__name__}, not a dict")
        return dict(params)
    params = {}
    for name, spec in space.items():
        kind, args = _parse(name, spec)
        if kind == "float":
            lo, hi, log = args
            params[name] = trial.suggest_float(name, lo, hi, log=log)
        elif kind == "int":
            lo, hi, step, log = args
            params[name] = trial.suggest_int(name, lo, hi, step=step, log=log)
        else:
            params[name] = trial.suggest_categorical(name, args)
    return params


def check_space(space: Space) -> None:
    """Raise ConfigError for a malformed space description, before any trial runs."""
    if callable(space):
        return
    if not isinstance(space, Mapping) or not space:
        raise ConfigError("the search space must be a non-empty dict (or a function of the trial)")
    for name, spec in space.items():
        _parse(name, spec)


def _parse(name: str, spec) -> tuple[str, Any]:
    def bad(why: str):
        return ConfigError(
            f"search space {name!r}: {why} (got {spec!r}); use ('float', lo, hi[, 'log']), "
            "('int', lo, hi[, step or 'log']) or ('categorical', [choices])"
        )

    if isinstance(spec, list):
        spec = ("categorical", spec)
    if not isinstance(spec, tuple) or not spec:
        raise bad("not a tuple")
    kind, *rest = spec
    if kind == "categorical":
        if len(rest) != 1 or not isinstance(rest[0], list | tuple) or not rest[0]:
            raise bad("needs one non-empty list of choices")
        return kind, list(rest[0])
    if kind not in ("float", "int") or len(rest) not in (2, 3):
        raise bad("unknown kind or wrong number of fields")
    lo, hi, *opt = rest
    if not (isinstance(lo, int | float) and isinstance(hi, int | float)) or not lo <= hi:
        raise bad("needs numbers lo <= hi")
    log = bool(opt) and opt[0] in ("log", True)
    if opt and not log and not (kind == "int" and isinstance(opt[0], int)):
        raise bad(f"the optional field must be 'log'{' or an int step' if kind == 'int' else ''}")
    if log and lo <= 0:
        raise bad("a log scale needs lo > 0")
    if kind == "float":
        return kind, (float(lo), float(hi), log)
    if not (isinstance(lo, int) and isinstance(hi, int)):
        raise bad("int bounds must be integers")
    step = opt[0] if opt and not log else 1
    return kind, (lo, hi, step, log)


def _optuna():
    try:
        import optuna
    except ImportError as err:  # optional dependency
        raise ConfigError(
            "--search needs optuna: pip install 'jaxhep[search]' (or pip install optuna)"
        ) from err
    return optuna


def _takes_run(objective: Callable) -> bool:
    """True if `objective` accepts a second positional argument (the trial's Run)."""
    try:
        sig = inspect.signature(objective)
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in positional)


def _ended(t) -> bool:
    """A trial that counts towards n_trials: completed, skipped or failed (not interrupted)."""
    if t.state.name in ("COMPLETE", "PRUNED"):
        return True
    # FAIL: by the objective or the memory estimate ("failed"), or cut short by a crash or
    # Ctrl-C ("interrupted", or no status at all when the process died).
    return t.state.name == "FAIL" and t.user_attrs.get("result", {}).get("status") == "failed"


def _fail_orphans(study, log) -> None:
    """Mark trials left RUNNING by a dead search process on this host as interrupted."""
    optuna = _optuna()
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        owner = t.user_attrs.get("owner", {})
        if owner.get("host") != host or pid_alive(int(owner.get("pid", -1))):
            continue  # another machine's or a live process's trial
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        run_path = owner.get("run")
        if run_path and (Path(run_path) / "config.json").is_file():
            Run.open(run_path).set_status("interrupted", summary={"interrupted": "the search process died"})
        log(f"[search {study.study_name}] trial {t.number} was cut short by a crash; it will be rerun")


_STATUS = {"COMPLETE": "done", "RUNNING": "running", "PRUNED": "skipped", "FAIL": "interrupted"}


def _trial_row(t) -> dict:
    result = t.user_attrs.get("result", {})
    start, end = t.datetime_start, t.datetime_complete
    return {
        "trial": t.number,
        "status": result.get("status") or _STATUS.get(t.state.name, t.state.name.lower()),
        "value": t.value,
        "params": _params_of(t),
        "message": result.get("message", ""),
        "elapsed_s": round((end - start).total_seconds(), 1) if start and end else None,
        "metrics": result.get("metrics", {}),
        "estimate_bytes": result.get("estimate_bytes"),
    }


def _params_of(t) -> dict:
    """The trial's hyper-parameters (a callable space may return more than it suggested)."""
    return t.user_attrs.get("owner", {}).get("params") or dict(t.params)


def run_search(
    name: str,
    storage_dir: str | Path,
    n_trials: int,
    objective: Callable,
    space: Space,
    direction: str = "minimize",
    memory_check: Callable[[dict], tuple[int, int | None]] | None = None,
    seed: int = 0,
    registry_workdir: str | Path | None = None,
    task: str = "search",
    metric: str | None = None,
    config: dict | None = None,
    headroom: float = 0.9,
    log: Callable[[str], None] = print,
) -> SearchResult:
    """Run (or resume) study `name` until `n_trials` trials have ended in total; see the module doc.

    `objective(params)` or `objective(params, run)` returns a number, or a dict of metrics
    of which `metric` is optimised (`run` is the trial's `jaxhep.runs.Run`, None without
    `registry_workdir`). `config` (JSON-able) is stored with every trial in the registry.
    `memory_check(params) -> (estimate_bytes, capacity_bytes)`; a trial whose estimate
    exceeds `headroom` x capacity is skipped. `log` receives one line per trial.
    """
    optuna = _optuna()
    if direction not in ("minimize", "maximize"):
        raise ConfigError(f"direction must be 'minimize' or 'maximize', not {direction!r}")
    if n_trials < 0:
        raise ConfigError(f"the number of trials must be >= 0, not {n_trials}")
    check_space(space)
    storage_dir = Path(storage_dir)
    storage_dir.mkdir(parents=True, exist_ok=True)
    db = storage_dir / DB_NAME
    takes_run = _takes_run(objective)
    if memory_check is not None:
        memory_check = _memoized(memory_check)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is ours
    try:
        storage = f"sqlite:///{db.resolve()}"
        study = optuna.create_study(
            study_name=name, storage=storage, direction=direction, load_if_exists=True
        )
        if study.direction.name.lower() != direction:
            raise ConfigError(
                f"study {name!r} in {db} was created to {study.direction.name.lower()}; "
                f"it cannot {direction} (use another name)"
            )
        _fail_orphans(study, log)
        done = sum(_ended(t) for t in study.get_trials(deepcopy=False))
        # Offset the seed by the trials so far: a resumed search does not repeat its random start.
        study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.get_trials(deepcopy=False)))
        if done:
            log(f"[search {name}] resuming {db}: {done} of {n_trials} trials already ended")
        while done < n_trials:
            _one_trial(
                study,
                name,
                space,
                objective,
                takes_run=takes_run,
                memory_check=memory_check,
                headroom=headroom,
                metric=metric,
                registry_workdir=registry_workdir,
                task=task,
                config=config,
                log=log,
            )
            done += 1
        trials = [_trial_row(t) for t in study.get_trials(deepcopy=False)]
        complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
        best = study.best_trial if complete else None
    finally:
        optuna.logging.set_verbosity(verbosity)
    best_params = _params_of(best) if best else None
    result = SearchResult(name, db, best_params, best.value if best else None, trials)
    counts = ", ".join(f"{v} {k}" for k, v in result.counts.items())
    best_text = f"best {result.best_value:.6g} with {result.best_params}" if best else "no trial completed"
    log(f"[search {name}] {len(trials)} trials ({counts}); {best_text}")
    return result


def _one_trial(
    study,
    name,
    space,
    objective,
    *,
    takes_run,
    memory_check,
    headroom,
    metric,
    registry_workdir,
    task,
    config,
    log,
) -> None:
    optuna = _optuna()
    state = optuna.trial.TrialState
    trial = study.ask()
    tag = f"[search {name}] trial {trial.number}"
    run, estimate, told = None, None, False
    t0 = time.perf_counter()

    def end(tell_state, status, message="", value=None, metrics=None, **fields):
        nonlocal told
        result = {"status": status, "message": message, "metrics": metrics or {}, "estimate_bytes": estimate}
        trial.set_user_attr("result", result)  # one attribute: each is a database commit
        study.tell(trial, value if tell_state == state.COMPLETE else None, state=tell_state)
        told = True
        if run is not None:
            summary = metrics or ({"value": value} if value is not None else {status: message})
            if estimate is not None:
                fields["estimate_bytes"] = estimate
            run.set_status(status, params=params, summary=summary, value=value, **fields)

    params: dict = {}
    try:
        params = suggest(trial, space)
        if registry_workdir is not None:
            trial_config = {**(config or {}), "search": name, "trial": trial.number, "params": params}
            run = Run.create(registry_workdir, task, trial_config, name=f"{name}-t{trial.number}")
        # Who runs the trial (a rerun after a crash finds it by this) and, for a callable space,
        # the params it returned beyond those it suggested.
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "run": str(run.path) if run else None}
        if callable(space):
            owner["params"] = params
        trial.set_user_attr("owner", owner)
        if memory_check is not None:
            try:
                estimate, capacity = memory_check(params)
            except Exception as err:
                message = f"memory estimate failed: {type(err).__name__}: {_first_line(err)}"
                log(f"{tag} failed ({message}) {params}")
                end(state.FAIL, "failed", message, error=message)
                return
            estimate = int(estimate)
            if not fits(estimate, capacity, headroom):
                message = f"needs {describe_bytes(estimate)}, device has {describe_bytes(capacity)}"
                log(f"{tag} skipped: {message} {params}")
                end(state.PRUNED, "skipped", message, skipped=message)
                return
        try:
            out = objective(params, run) if takes_run else objective(params)
        except Exception as err:
            message = f"{type(err).__name__}: {_first_line(err)}"
            del err
            gc.collect()  # the traceback's frames may hold device buffers of the failed trial
            log(f"{tag} failed: {message} {params}")
            end(state.FAIL, "failed", message, error=message)
            return
        value, metrics = _value_of(out, metric)
        if value is None or not math.isfinite(value):
            message = f"objective returned {value!r}" + (f" for {metric!r}" if metric else "")
            log(f"{tag} failed: {message} {params}")
            end(state.FAIL, "failed", message, metrics=metrics, error=message)
            return
        log(f"{tag} done in {time.perf_counter() - t0:.1f} s: {value:.6g} {params}")
        end(state.COMPLETE, "done", value=value, metrics=metrics)
    except BaseException:  # Ctrl-C (or a bug here): leave a clean study, then stop
        if not told:
            with contextlib.suppress(Exception):  # the original exception is the one to see
                end(state.FAIL, "interrupted", "the search was interrupted")
        raise


def _memoized(memory_check: Callable) -> Callable:
    """The same params are estimated once (TPE may suggest a skipped point again; compiling is slow)."""
    cache: dict[str, tuple] = {}

    def check(params: dict) -> tuple:
        key = json.dumps(params, sort_keys=True, default=str)
        if key not in cache:
            cache[key] = tuple(memory_check(params))
        return cache[key]

    return check


def _value_of(out, metric: str | None) -> tuple[float | None, dict]:
    if isinstance(out, Mapping):
        metrics = {k: _jsonable(v) for k, v in out.items()}
        if metric is None:
            raise ConfigError(f"the objective returned a dict ({sorted(out)}); name the value with metric=")
        if metric not in out:
            raise ConfigError(f"the objective's result has no {metric!r} (got {sorted(out)})")
        return _as_float(out[metric]), metrics
    return _as_float(out), {}


def _jsonable(v):
    if v is None or isinstance(v, str | bool | int | float):
        return v
    number = _as_float(v)  # numpy and JAX scalars
    return number if number is not None else str(v)


def _as_float(x) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else ""
