"""Matplotlib figures written into a run directory.

Every function takes plain numpy data and an output path, writes one PNG, and
returns the path. matplotlib is an optional dependency (the ``plots`` extra): it is
imported inside the functions, and without it every function returns None (and
`available()` is False) so that a run still writes its report, only without figures.

Figures are built with the object-oriented API (``Figure`` + the Agg canvas), never
pyplot: nothing global is created or switched, so figures are freed as soon as they
are saved, a notebook's backend is left alone, and plotting works on headless hosts.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxhep import metrics

__all__ = [
    "available",
    "binned_mean",
    "confusion_matrix",
    "efficiency_purity",
    "grouped_bars",
    "heatmap",
    "histograms",
    "roc_curves",
    "scatter_2d",
    "training_curves",
]

PathLike = str | os.PathLike
DPI = 120
_MARKERS = "osD^v<>ph*X"


def available() -> bool:
    """Whether matplotlib can be imported (otherwise every plot function returns None)."""
    return importlib.util.find_spec("matplotlib") is not None


def _figure(width: float = 6.0, height: float = 4.5, ncols: int = 1):
    """A new (Figure, axes) on the Agg canvas, or (None, None) without matplotlib."""
    if not available():
        return None, None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes if ncols > 1 else axes[0]


def _save(fig: Any, path: PathLike, title: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    fig.clear()  # drops the artists now rather than at garbage collection
    return path


def _annotate_cells(ax: Any, matrix: np.ndarray, fmt: str, image: Any) -> None:
    """Write each value in its cell, in black or white depending on the cell's colour."""
    finite = matrix[np.isfinite(matrix)]
    middle = (finite.min() + finite.max()) / 2 if len(finite) else 0.0
    small = max(matrix.shape) > 12  # keep large matrices legible
    for (i, j), v in np.ndenumerate(matrix):
        dark = image.norm(v) > image.norm(middle) if np.isfinite(v) else False
        ax.text(
            j,
            i,
            format(v, fmt),
            ha="center",
            va="center",
            fontsize=6 if small else 9,
            color="white" if dark else "black",
        )


def training_curves(
    history: Sequence[Mapping[str, Any]],
    path: PathLike,
    keys: Sequence[str] = ("loss", "val_loss", "val_accuracy"),
) -> Path | None:
    """One panel per key of `keys` found in the history, value against epoch.

    history: one dict per epoch (as in metrics.jsonl); x is its "epoch" entry, or the
    1-based position when absent. Returns None when no key is present (nothing to draw).
    """
    present = [k for k in keys if any(k in h for h in history)]
    if not present:
        return None
    fig, axes = _figure(4.0, 3.2, ncols=len(present))
    if fig is None:
        return None
    axes = axes if len(present) > 1 else [axes]
    for ax, key in zip(axes, present):
        pts = [(h.get("epoch", i + 1), h[key]) for i, h in enumerate(history) if key in h]
        x, y = zip(*pts)
        ax.plot(x, y, marker="o", markersize=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    return _save(fig, path)


def confusion_matrix(cm: Any, class_names: Sequence[str], path: PathLike, title: str = "") -> Path | None:
    """Row-normalised confusion matrix cm [C, C] (rows = true class), annotated.

    cm may be counts or already normalised; rows are divided by their sums (empty rows
    stay 0), so each cell reads as "fraction of true class i predicted as j".
    """
    fig, ax = _figure(1.2 + 0.7 * len(class_names), 1.0 + 0.6 * len(class_names))
    if fig is None:
        return None
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows != 0)
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    _annotate_cells(ax, norm, ".2f", image)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return _save(fig, path, title)


def roc_curves(
    curves: Mapping[str, tuple[Any, Any, float]],
    path: PathLike,
    title: str = "",
    log_fpr: bool = False,
) -> Path | None:
    """ROC curves: curves maps a label to (fpr [K], tpr [K], auc); AUC goes in the legend.

    log_fpr puts the false-positive rate on a log axis (points with fpr = 0 dropped),
    which shows the low-background region that matters for tagging.
    """
    fig, ax = _figure(5.5, 4.5)
    if fig is None:
        return None
    for name, (fpr, tpr, auc) in curves.items():
        fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
        if log_fpr:
            fpr, tpr = fpr[fpr > 0], tpr[fpr > 0]
        ax.plot(fpr, tpr, label=f"{name} (AUC = {auc:.4f})")
    if log_fpr:
        ax.set_xscale("log")
    else:
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8, label="chance")
        ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path, title)


def efficiency_purity(
    points: Mapping[str, tuple[Any, Any]],
    class_names: Sequence[str],
    path: PathLike,
    title: str = "",
) -> Path | None:
    """Per-class working points in the efficiency-purity plane.

    points maps a series (a model, a method) to (efficiency [C], purity [C]). Colour
    marks the series, marker shape the class; the best corner is top right.
    """
    fig, ax = _figure(5.5, 5.0)
    if fig is None:
        return None
    colors = [f"C{i % 10}" for i in range(len(points))]
    for color, (name, (eff, pur)) in zip(colors, points.items()):
        ax.plot(eff, pur, color=color, linewidth=0.6, alpha=0.4)  # links one series' classes
        for c, (e, p) in enumerate(zip(eff, pur)):
            ax.scatter(e, p, color=color, marker=_MARKERS[c % len(_MARKERS)], s=40)
        ax.scatter([], [], color=color, marker="s", label=name)  # series entry in legend
    for c, cname in enumerate(class_names):
        ax.scatter([], [], color="black", marker=_MARKERS[c % len(_MARKERS)], label=cname)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("efficiency (recall)")
    ax.set_ylabel("purity (precision)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return _save(fig, path, title)


def grouped_bars(
    values: Mapping[str, Mapping[str, float]],
    path: PathLike,
    ylabel: str,
    title: str = "",
) -> Path | None:
    """Grouped bar chart: values[group][series] -> height; groups on the x-axis.

    A series missing from a group leaves a gap. Bars are labelled with their value.
    """
    groups = list(values)
    series = list(dict.fromkeys(s for g in groups for s in values[g]))
    fig, ax = _figure(max(5.0, 1.0 + 0.5 * len(groups) * max(len(series), 1)), 4.0)
    if fig is None:
        return None
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for i, name in enumerate(series):
        heights = np.array([values[g].get(name, np.nan) for g in groups], dtype=np.float64)
        keep = np.isfinite(heights)
        bars = ax.bar(x[keep] + (i - (len(series) - 1) / 2) * width, heights[keep], width, label=name)
        ax.bar_label(bars, fmt="%.3g", fontsize=7)
    ax.set_xticks(x, groups)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return _save(fig, path, title)


def heatmap(
    matrix: Any,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    path: PathLike,
    title: str = "",
    fmt: str = ".3f",
) -> Path | None:
    """Annotated heatmap of matrix [R, K] (e.g. a metric over a grid of two settings)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    fig, ax = _figure(1.5 + 0.9 * len(col_labels), 1.0 + 0.6 * len(row_labels))
    if fig is None:
        return None
    image = ax.imshow(matrix, cmap="viridis", aspect="auto")
    _annotate_cells(ax, matrix, fmt, image)
    ax.set_xticks(np.arange(len(col_labels)), col_labels, rotation=45, ha="right")
    ax.set_yticks(np.arange(len(row_labels)), row_labels)
    fig.colorbar(image, ax=ax)
    return _save(fig, path, title)


def histograms(
    series: Mapping[str, Any],
    path: PathLike,
    xlabel: str,
    bins: int | Any = 50,
    title: str = "",
    log: bool = False,
) -> Path | None:
    """Overlaid step histograms of each series [N_s] on common bins (NaN/inf dropped).

    bins: a count (equal bins over the joint finite range) or edges. log: log-scale counts.
    """
    data = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in series.items()}
    data = {k: v[np.isfinite(v)] for k, v in data.items()}
    fig, ax = _figure()
    if fig is None:
        return None
    everything = np.concatenate(list(data.values())) if data else np.zeros(0)
    edges = np.histogram_bin_edges(everything, bins=bins)
    for name, v in data.items():
        ax.hist(v, bins=edges, histtype="step", linewidth=1.2, label=f"{name} (n={len(v)})")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("entries")
    ax.grid(alpha=0.3)
    if len(data) > 1:
        ax.legend(fontsize=8)
    return _save(fig, path, title)


def binned_mean(
    x: Any,
    y_by_series: Mapping[str, Any],
    bins: int | Any,
    path: PathLike,
    xlabel: str,
    ylabel: str,
    title: str = "",
) -> Path | None:
    """Mean +- standard error of each series y [N] in bins of x [N] (see metrics.binned_mean).

    For efficiency vs pT pass 0/1 outcomes as y; for resolution vs energy, errors. Empty
    bins are left out; horizontal bars show the bin widths.
    """
    fig, ax = _figure()
    if fig is None:
        return None
    for name, y in y_by_series.items():
        edges, mean, sem, count = metrics.binned_mean(x, y, bins)
        centers, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
        keep = count > 0
        ax.errorbar(
            centers[keep],
            mean[keep],
            yerr=sem[keep],
            xerr=half[keep],
            fmt="o",
            markersize=3,
            capsize=2,
            label=name,
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(y_by_series) > 1:
        ax.legend(fontsize=8)
    return _save(fig, path, title)


def binned_curves(
    edges: Any,
    series: Mapping[str, tuple[Any, Any]],
    path: PathLike,
    xlabel: str,
    ylabel: str,
    title: str = "",
    log_x: bool = False,
) -> Path | None:
    """Already-binned values with errors: edges [K+1]; series maps a name to (values [K], errors [K]).

    For efficiencies counted elsewhere (e.g. summed over events); NaN bins are left out.
    """
    edges = np.asarray(edges, dtype=np.float64)
    fig, ax = _figure()
    if fig is None:
        return None
    centers = np.sqrt(edges[1:] * edges[:-1]) if log_x else (edges[1:] + edges[:-1]) / 2
    xerr = np.stack([centers - edges[:-1], edges[1:] - centers])
    for name, (values, errors) in series.items():
        values, errors = np.asarray(values, np.float64), np.asarray(errors, np.float64)
        keep = np.isfinite(values)
        ax.errorbar(
            centers[keep],
            values[keep],
            yerr=np.where(np.isfinite(errors), errors, 0.0)[keep],
            xerr=xerr[:, keep],
            fmt="o",
            markersize=3,
            capsize=2,
            label=name,
        )
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return _save(fig, path, title)


def scatter_2d(
    points: Any,
    labels: Any,
    class_names: Sequence[str],
    path: PathLike,
    title: str = "",
) -> Path | None:
    """2-D scatter of points [N, 2] coloured by integer labels [N] (e.g. a t-SNE/PCA embedding)."""
    points = np.asarray(points, dtype=np.float64)
    labels = np.asarray(labels)
    if points.ndim != 2 or points.shape[1] != 2 or len(labels) != len(points):
        raise ValueError(f"points must be [N, 2] and labels [N], got {points.shape} and {labels.shape}")
    fig, ax = _figure(5.5, 5.0)
    if fig is None:
        return None
    # Small translucent markers keep dense clusters readable with thousands of points.
    size = 4 if len(points) > 2000 else 10
    for c, name in enumerate(class_names):
        sel = labels == c
        ax.scatter(points[sel, 0], points[sel, 1], s=size, alpha=0.6, linewidths=0, label=name)
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    ax.legend(fontsize=8, markerscale=2)
    return _save(fig, path, title)
