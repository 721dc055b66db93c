"""Test-split figures of the DUNE networks: angular and axis errors (mean, median, 68 % containment,
vs electron energy) for direction; accuracy and ROC AUC for the classifiers; plots."""

from __future__ import annotations

import numpy as np

from jaxhep import metrics, plots
from jaxhep.dune import moments
from jaxhep.dune.dataset import LABEL, DuneData
from jaxhep.dune.training import Trained, predict
from jaxhep.runs import Run
from jaxhep.train import predict_with

ENERGY_BINS = np.array([5.0, 7.5, 10.0, 12.5, 15.0, 20.0, 30.0, 50.0])  # MeV


def test_outputs(trained: Trained, data: DuneData, batch_size: int = 512) -> dict:
    n = len(data.rows["test"])
    return predict_with(trained.model, predict(trained.task), data.reader("test"), n, batch_size)


def direction_metrics(outputs: dict, data: DuneData) -> dict:
    true, energy = data.column("direction", "test"), data.column("energy", "test")
    angle = metrics.angular_error_deg(outputs["direction"], true)
    axis = metrics.axis_error_deg(outputs["direction"], true)
    # The sense along the axis (head vs tail): right when the angle is below 90 degrees.
    out = {"n_test": int(len(angle)), "head_tail_correct": float(np.mean(angle < 90.0))}
    for name, v in (("angle", angle), ("axis", axis)):
        out[f"mean_{name}_deg"] = float(np.mean(v))
        out[f"median_{name}_deg"] = float(np.median(v))
        out[f"containment68_{name}_deg"] = metrics.containment(v, 0.68)
        edges, mean, sem, count = metrics.binned_mean(energy, v, ENERGY_BINS)
        out[f"{name}_vs_energy"] = {
            "edges": edges.tolist(),
            "mean": mean.tolist(),
            "sem": sem.tolist(),
            "n": count.tolist(),
        }
    out["mean_member_spread_deg"] = float(np.mean(outputs["spread_deg"]))
    out["_angle"], out["_axis"], out["_energy"] = angle, axis, energy
    return out


def moments_baseline(data: DuneData, chunk: int = 2048) -> dict:
    """Mean / median axis error (degrees) on the test split of the principal-axis fit
    (`jaxhep.dune.moments`, no learning), three planes and the X plane alone."""
    read, n = data.reader("test"), len(data.rows["test"])
    axes = {"three_plane": [], "single_plane": []}
    for start in range(0, n, chunk):
        batch = read(np.arange(start, min(n, start + chunk)))
        images = {k: batch[k] for k in ("images_u", "images_v", "images_x")}
        axes["three_plane"].append(moments.principal_axes(images))
        axes["single_plane"].append(moments.principal_axes({"images_x": images["images_x"]}))
    true = data.column("direction", "test")
    out = {}
    for name, parts in axes.items():
        err = metrics.axis_error_deg(np.concatenate(parts), true)
        out[name] = {"mean_axis_deg": float(np.mean(err)), "median_axis_deg": float(np.median(err))}
    return out


def classifier_metrics(task: str, outputs: dict, data: DuneData) -> dict:
    labels = data.column(LABEL[task], "test")
    prob = outputs["prob"]
    fpr, tpr, _ = metrics.roc_curve(labels, prob)
    step = max(1, len(fpr) // 2000)
    return {
        "n_test": int(len(labels)),
        **metrics.binary_metrics(labels, prob, 0.5),
        "roc": {"fpr": fpr[::step].tolist(), "tpr": tpr[::step].tolist()},
    }


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
