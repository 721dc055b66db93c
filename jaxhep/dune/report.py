"""The DUNE report: report.md (test figures of every network, the no-learning baseline, errors vs
energy) and its plots (errors vs energy and their distributions for direction, ROC curves for the
classifiers)."""

from __future__ import annotations

import numpy as np

from jaxhep import plots
from jaxhep.dune.config import DuneConfig
from jaxhep.dune.dataset import DuneData
from jaxhep.dune.evaluate import ENERGY_BINS
from jaxhep.runs import Run

FLOOR_NOTE = (
    "Physics floor (multiple scattering, BUILD_NOTES.md): about 19 deg mean axis error over the ES "
    "spectrum (29 deg at 5 MeV, 6 deg at 50 MeV); random guessing gives 57.3 deg (axis) / 90 deg (direction)."
)


# (signal, background) of each classifier's ROC: label 1 against label 0 of dataset.LABEL
# (interaction 1 = CC, 0 = ES; mt_label 1 = the main electron cluster).
ROC_CLASSES = {"channel": ("CC", "ES"), "maintrack": ("main-track", "other-cluster")}


def figure_label(run: Run) -> plots.Label:
    """DUNE style; "Simulation" and the source when the run used the task's simulated default NPZ
    (no --data in its config.json)."""
    simulated = run.config["dune"]["data"]["path"] is None
    return plots.Label("DUNE", "DUNE", simulated, r"supernova $\nu$" if simulated else "")


def write_plots(task: str, results: dict[str, dict], run: Run) -> None:
    """The report's plots of `results` (network -> test metrics with their per-event arrays); the
    classifiers' ROC as signal efficiency vs background rejection 1 - eps."""
    with plots.style(figure_label(run)):
        if task == "direction":
            direction_plots(results, run)
        else:
            signal, background = ROC_CLASSES[task]
            plots.roc_curves(
                {k: (r["roc"]["fpr"], r["roc"]["tpr"], r["auc"]) for k, r in results.items()},
                run.plot_path("roc.png"),
                title=f"{task} ROC (test)",
                signal=signal,
                background=background,
            )


def direction_plots(results: dict[str, dict], run: Run) -> None:
    """Angular and axis error vs energy of every network, and their distributions."""
    for name, xlabel in (("angle", "angular error [deg]"), ("axis", "axis error [deg]")):
        _vs_energy(results, name, run, xlabel)
        plots.histograms(
            {net: r[f"_{name}"] for net, r in results.items()},
            run.plot_path(f"{name}_error.png"),
            xlabel=xlabel,
            bins=np.linspace(0, 180 if name == "angle" else 90, 46),
        )


def _vs_energy(results: dict, name: str, run: Run, xlabel: str) -> None:
    """One binned-mean series per network (x = each network's own test energies: the same rows)."""
    energy = next(iter(results.values()))["_energy"]
    plots.binned_mean(
        energy,
        {net: r[f"_{name}"] for net, r in results.items()},
        ENERGY_BINS,
        run.plot_path(f"{name}_vs_energy.png"),
        xlabel="electron kinetic energy [MeV]",
        ylabel=f"mean {xlabel}",
        title=f"{'Angular' if name == 'angle' else 'Axis'} error vs energy (test)",
    )


def _direction_setup(cfg: DuneConfig) -> str:
    """The direction network's head, loss and prior, for the report's header."""
    d = cfg.net.direction
    fit = f"profile bins {d.profile_bins}, start {d.start_mm:g} mm, volume bins {d.volume_bins}"
    fit += f", end bins {d.end_bins}" + (f", sense MLP {list(d.sense_dense)}" if d.sense_dense else "")
    prior = "" if d.prior == "none" else f", prior {d.prior} ({fit})"
    return f", head {d.head}, loss {cfg.net.loss}{prior}"


def markdown(
    cfg: DuneConfig, results: dict, baseline: dict | None, data: DuneData, devices: str, seconds: float
) -> str:
    """report.md of a run: `results` network -> public test metrics, `baseline` the principal-axis
    figures (direction; None for the classifiers)."""
    n = {k: len(v) for k, v in data.rows.items()}
    lines = [
        f"# DUNE {cfg.task} report",
        "",
        f"- data: {data.source.path} (train / val / test {n['train']} / {n['val']} / {n['test']})",
        f"- ensemble: {cfg.net.members} member(s), bootstrap {cfg.net.bootstrap}"
        + (_direction_setup(cfg) if cfg.task == "direction" else ""),
        f"- devices: {devices}; wall time {seconds:.0f} s",
        "",
    ]
    if cfg.task == "direction":
        lines += _direction_tables(results, baseline)
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


def _direction_tables(results: dict, baseline: dict) -> list[str]:
    lines = [
        "| network | mean angle | median angle | 68 % angle | mean axis | median axis | 68 % axis "
        "| head-tail right | epochs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for net, r in results.items():
        cells = [r[f"{s}_{q}_deg"] for q in ("angle", "axis") for s in ("mean", "median", "containment68")]
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
    heads = (f"{net} angle | {net} axis | {net} sense right" for net in results)
    lines.append("| energy [MeV] | events | " + " | ".join(heads) + " |")
    lines.append("|---|---:|" + "---:|" * (3 * len(results)))
    counts = next(iter(results.values()))["angle_vs_energy"]["n"]
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        cells = []
        for r in results.values():
            cells += [f"{r[f'{q}_vs_energy']['mean'][i]:.1f}" for q in ("angle", "axis")]
            cells.append(f"{r['head_tail_vs_energy']['mean'][i]:.3f}")
        lines.append(f"| {lo:g}-{hi:g} | {counts[i]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "![angle vs energy](plots/angle_vs_energy.png) ![axis vs energy](plots/axis_vs_energy.png)",
    ]
    lines += ["![angle](plots/angle_error.png) ![axis](plots/axis_error.png)"]
    return lines
