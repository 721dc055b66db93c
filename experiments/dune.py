"""DUNE supernova electrons: direction regression, ES/CC channel tagging, main-track identification.

python -m experiments.dune direction                 # three-plane vs single-plane CNN ensembles
python -m experiments.dune channel                   # ES vs CC on the collection-plane volume images
python -m experiments.dune maintrack                 # main track vs background clusters
python -m experiments.dune direction --search 20     # 20-trial hyper-parameter search (resumable)
python -m experiments.dune direction --data three_plane_matched_50k.npz
python -m experiments.dune registry                  # every run and trial, as a table
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

from jaxhep import cli, plots
from jaxhep.config import to_dict
from jaxhep.dune import dataset, evaluate
from jaxhep.dune.training import NETWORKS, NetConfig, monitor, train
from jaxhep.errors import ConfigError
from jaxhep.runs import Run, format_registry, load_registry
from jaxhep.train import TrainConfig

TASKS = (*dataset.TASKS, "registry")
FLOOR_NOTE = (
    "Physics floor (multiple scattering, BUILD_NOTES.md): about 19 deg mean axis error over the ES "
    "spectrum (29 deg at 5 MeV, 6 deg at 50 MeV); random guessing gives 57.3 deg (axis) / 90 deg (direction)."
)


@dataclass(frozen=True)
class DuneConfig:
    task: str = "direction"
    data: dataset.DataConfig = field(default_factory=dataset.DataConfig)
    networks: tuple[str, ...] = ()  # () = every network of the task
    net: NetConfig = field(default_factory=NetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search_epochs: int = 5  # epochs of each search trial (one model, no ensemble)


def default_config(task: str) -> DuneConfig:
    mon, mode = monitor(task)
    return DuneConfig(
        task=task,
        train=TrainConfig(
            epochs=30,
            batch_size=256,
            steps_per_call=8,
            optimizer="adamw",
            learning_rate=1e-3,
            weight_decay=1e-4,
            schedule="warmup_cosine",
            warmup_steps=200,
            grad_clip_norm=None,  # global-norm clipping would couple the members (dune.ensemble)
            monitor=mon,
            monitor_mode=mode,
            patience=6,
            eval_batch_size=1024,
        ),
    )


def quick_config(task: str) -> DuneConfig:
    cfg = default_config(task)
    small_dir = dataclasses.replace(cfg.net.direction, base_filters=8, dense=(32,), depths=(2, 2, 3))
    small_cls = dict(base_filters=8, dense=(32,), depth=3)
    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, n_events=1500),
        net=dataclasses.replace(
            cfg.net,
            members=2,
            direction=small_dir,
            channel=dataclasses.replace(cfg.net.channel, **small_cls),
            maintrack=dataclasses.replace(cfg.net.maintrack, **small_cls),
        ),
        train=dataclasses.replace(cfg.train, epochs=2, batch_size=64, warmup_steps=5, patience=2),
        search_epochs=1,
    )


def parse_args(argv):
    p = cli.base_parser("python -m experiments.dune", __doc__.split("\n")[0])
    p.add_argument("task", choices=TASKS, help="what to train (or `registry`: print every run)")
    p.add_argument("--data", help="NPZ file in the seed's layout (README: DUNE data format)")
    p.add_argument(
        "--network", action="append", help="train only this network (direction: three_plane, single_plane)"
    )
    p.add_argument("--members", type=int, help="bootstrap ensemble size (1 = one model)")
    p.add_argument(
        "--search", type=int, metavar="N", help="hyper-parameter search: N trials in total (resumes)"
    )
    return p.parse_args(argv)


def resolve_config(args) -> tuple[DuneConfig, Run | None]:
    def defaults(quick: bool) -> DuneConfig:
        return quick_config(args.task) if quick else default_config(args.task)

    cfg, run = cli.resolve_config(args, DuneConfig, "dune", defaults, _task_flags)
    if run is not None and cfg.task != args.task:
        raise ConfigError(
            f"--resume {args.resume}: a {cfg.task} run, not {args.task}; continue it with "
            f"{run.resume_command()}"
        )
    return cfg, run


def _task_flags(cfg: DuneConfig, args) -> DuneConfig:
    if args.data:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=args.data))
    if args.network:
        unknown = set(args.network) - set(NETWORKS[args.task])
        if unknown:
            raise ConfigError(f"task {args.task} has networks {NETWORKS[args.task]}, not {sorted(unknown)}")
        cfg = dataclasses.replace(cfg, networks=tuple(dict.fromkeys(args.network)))
    if args.members is not None:
        cfg = dataclasses.replace(cfg, net=dataclasses.replace(cfg.net, members=args.members))
    return cfg


def main(argv=None):
    args = parse_args(argv)
    if args.task == "registry":
        table = format_registry(load_registry(args.workdir, task="dune"), REGISTRY_COLUMNS)
        print(table)
        return table
    cfg, run = resolve_config(args)
    runtime = cli.setup_runtime(args)
    dtype = "float32" if runtime.platform == "cpu" else "bfloat16"
    data = dataset.load(cfg.task, cfg.data, args.data_dir)
    if args.search:
        from jaxhep.dune.search import search

        return search(cfg, args.search, data, runtime, dtype, cfg.train, args.workdir)
    t0 = time.time()
    resumed = run is not None
    if run is None:
        run = Run.create(
            args.workdir,
            "dune",
            {"dune": to_dict(cfg), "argv": argv},
            name="quick" if args.quick else cfg.task,
        )
    n = {k: len(v) for k, v in data.rows.items()}
    print(
        f"[dune] {cfg.task} | run {run.path} | {data.source.path} | train/val/test {n['train']}/{n['val']}/"
        f"{n['test']} | {cfg.net.members} member(s) | {runtime.description}",
        flush=True,
    )
    results = {}
    with run.recorded(resumed=resumed):
        for network in cfg.networks or NETWORKS[cfg.task]:
            trained = train(cfg.task, network, cfg.net, cfg.train, data, runtime.mesh, run, dtype)
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
        baseline = None
        if cfg.task == "direction":
            baseline = evaluate.moments_baseline(data)
            evaluate.direction_plots(results, run)
        else:
            plots.roc_curves(
                {k: (r["roc"]["fpr"], r["roc"]["tpr"], r["auc"]) for k, r in results.items()},
                run.plot_path("roc.png"),
                title=f"{cfg.task} ROC (test)",
            )
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
        report = _markdown(cfg, public, baseline, data, runtime.description, time.time() - t0)
        run.write_text("report.md", report)
    run.set_status("done", summary=_summary(cfg.task, public), params={"members": cfg.net.members})
    print(f"[dune] report: {run.path / 'report.md'}", flush=True)
    return run


REGISTRY_COLUMNS = ("run_id", "status", "time", "elapsed_s", "params", "summary")


def _summary(task: str, results: dict) -> dict:
    keys = ("mean_angle_deg", "mean_axis_deg") if task == "direction" else ("accuracy", "auc")
    return {f"{net}.{k}": r[k] for net, r in results.items() for k in keys}


def _markdown(
    cfg: DuneConfig, results: dict, baseline: dict | None, data, devices: str, seconds: float
) -> str:
    n = {k: len(v) for k, v in data.rows.items()}
    lines = [
        f"# DUNE {cfg.task} report",
        "",
        f"- data: {data.source.path} (train / val / test {n['train']} / {n['val']} / {n['test']})",
        f"- ensemble: {cfg.net.members} member(s), bootstrap {cfg.net.bootstrap}"
        + (f", head {cfg.net.direction.head}, loss {cfg.net.loss}" if cfg.task == "direction" else ""),
        f"- devices: {devices}; wall time {seconds:.0f} s",
        "",
    ]
    if cfg.task == "direction":
        lines += [
            "| network | mean angle | median angle | 68 % angle | mean axis | median axis | 68 % axis "
            "| head-tail right | epochs |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for net, r in results.items():
            cells = [
                r[f"{s}_{q}_deg"] for q in ("angle", "axis") for s in ("mean", "median", "containment68")
            ]
            lines.append(
                f"| {net} | "
                + " | ".join(f"{c:.1f}" for c in cells)
                + f" | {r['head_tail_correct']:.3f} | {r['epochs']} |"
            )
        lines += ["", "Degrees, test split. " + FLOOR_NOTE]
        three, x_only = baseline["three_plane"], baseline["single_plane"]
        lines += [
            "",
            "No-learning baseline, principal axes of the cluster images (`jaxhep.dune.moments`): mean / "
            f"median axis error {three['mean_axis_deg']:.1f} / {three['median_axis_deg']:.1f} deg from the "
            f"three planes, {x_only['mean_axis_deg']:.1f} / {x_only['median_axis_deg']:.1f} deg from the X "
            "plane alone. A network above these has learnt less than the images' second moments tell.",
        ]
        lines += ["", "## Mean error vs electron energy", ""]
        edges = next(iter(results.values()))["angle_vs_energy"]["edges"]
        lines.append("| energy [MeV] | " + " | ".join(f"{net} angle | {net} axis" for net in results) + " |")
        lines.append("|---|" + "---:|" * (2 * len(results)))
        for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
            cells = [
                f"{r[f'{q}_vs_energy']['mean'][i]:.1f}" for r in results.values() for q in ("angle", "axis")
            ]
            lines.append(f"| {lo:g}-{hi:g} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "![angle vs energy](plots/angle_vs_energy.png) ![axis vs energy](plots/axis_vs_energy.png)",
        ]
        lines += ["![angle](plots/angle_error.png) ![axis](plots/axis_error.png)"]
    else:
        lines += [
            "| network | accuracy | precision | recall | ROC AUC | epochs |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for net, r in results.items():
            lines.append(
                f"| {net} | {r['accuracy']:.4f} | {r['precision']:.4f} | {r['recall']:.4f} | {r['auc']:.4f} "
                f"| {r['epochs']} |"
            )
        lines += ["", "![ROC](plots/roc.png)"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    cli.run_main(main)
