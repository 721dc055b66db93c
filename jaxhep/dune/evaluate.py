"""Test-split figures of the DUNE networks: angular and axis errors (mean, median, 68 % containment,
vs electron energy) for direction; accuracy and ROC AUC for the classifiers; the no-learning baseline."""

from __future__ import annotations

import numpy as np

from jaxhep import metrics
from jaxhep.dune import moments
from jaxhep.dune.dataset import LABEL, DuneData
from jaxhep.dune.training import TrainedModel, predict
from jaxhep.train import predict_with

ENERGY_BINS = np.array([5.0, 7.5, 10.0, 12.5, 15.0, 20.0, 30.0, 50.0])  # MeV


def test_outputs(trained: TrainedModel, data: DuneData, batch_size: int = 512) -> dict:
    """The ensemble's outputs on the test split (`predict(task)`: direction [n, 3] or prob [n], ...)."""
    n = len(data.rows["test"])
    return predict_with(trained.model, predict(trained.task), data.reader("test"), n, batch_size)


def direction_metrics(outputs: dict, data: DuneData) -> dict:
    true, energy = data.column("direction", "test"), data.column("energy", "test")
    angle = metrics.angular_error_deg(outputs["direction"], true)
    axis = metrics.axis_error_deg(outputs["direction"], true)
    # The sense along the axis (head vs tail): right when the angle is below 90 degrees.
    right = (angle < 90.0).astype(np.float64)
    out = {"n_test": int(len(angle)), "head_tail_correct": float(np.mean(right))}
    for name, v in (("angle", angle), ("axis", axis)):
        out[f"mean_{name}_deg"] = float(np.mean(v))
        out[f"median_{name}_deg"] = float(np.median(v))
        out[f"containment68_{name}_deg"] = metrics.containment(v, 0.68)
    for name, v in (("angle", angle), ("axis", axis), ("head_tail", right)):
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
