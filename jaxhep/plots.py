"""Matplotlib figures written into a run directory, in the style of the experiment they belong to.

Every figure function takes plain numpy data and an output path, writes one PNG, and returns the
path. Drawn inside ``with style(Label(...)):`` a figure takes that experiment's mplhep style and
carries its label ("CMS Simulation Private Work", ...); outside one it is plain matplotlib.

matplotlib and mplhep are one optional dependency (the ``plots`` extra installs both): they are
imported inside the functions, and without either every function returns None (and `available()`
is False) so that a run still writes its report, only without figures. There is no unstyled
fallback for a missing mplhep: the extra always brings it, and one code path is easier to trust.

Figures are built with the object-oriented API (``Figure`` + the Agg canvas), never pyplot:
nothing global is created, a notebook's backend is left alone, and plotting works on headless
hosts. The style's rcParams are set only for the duration of the ``style`` block.

Efficiencies get Clopper-Pearson intervals (`efficiency_interval`): exact, never below 0 or above
1, and with a non-zero width at 0 and 1, where the normal approximation collapses to nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from jaxhep import metrics
from jaxhep.metrics import efficiency_interval

__all__ = [
    "Label",
    "available",
    "binned_mean",
    "confusion_matrix",
    "efficiency_curves",
    "efficiency_interval",
    "efficiency_purity",
    "figure",
    "grouped_bars",
    "heatmap",
    "histograms",
    "roc_curves",
    "save",
    "scatter_2d",
    "style",
    "training_curves",
]

PathLike = str | os.PathLike
DPI = 120
# The figure sizes below are for a 6-inch-wide figure. A style's fonts are sized for its own figure
# width (CMS 10 in, ALICE 12 in), so a styled figure is scaled up to that width and saved at a DPI
# lower by the same factor: the same pixels as unstyled, in the style's proportions.
BASE_WIDTH_IN = 6.0
# (experiment name, following text) font styles of each style's label, as mplhep's label functions
# draw them: ATLAS's name is bold italic, CMS's "Simulation" italic.
_LABEL_FONTSTYLE = {
    "ALICE": ("normal", "normal"),
    "ATLAS": ("italic", "normal"),
    "CMS": ("normal", "italic"),
    "DUNE": ("normal", "normal"),
}
STYLES = tuple(_LABEL_FONTSTYLE)  # the mplhep styles a Label may name
_MARKERS = "osD^v<>ph*X"


@dataclass(frozen=True)
class Label:
    """What a task's figures say about their data, drawn above the first panel.

    experiment: the bold name ("ALICE", "CMS", "DUNE"; "TrackML" for the TrackML detector, which is
    no experiment's); style: the mplhep style and label layout, one of STYLES; simulated: the data
    came from jaxhep's simulator, the only case "Simulation" is written; conditions: the right-hand
    text, only what is true of the data ("Pb–Pb", "⟨μ⟩ = 200"), "" for none.
    """

    experiment: str
    style: str
    simulated: bool
    conditions: str = ""

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"plot style {self.style!r}: not one of {', '.join(STYLES)}")

    @property
    def text(self) -> str:
        """What follows the experiment's name: "Simulation Private Work" or "Private Work"."""
        # "Private Work": these figures are no collaboration's result, whichever style they wear.
        return ("Simulation " if self.simulated else "") + "Private Work"


_ACTIVE: contextvars.ContextVar[Label | None] = contextvars.ContextVar("jaxhep_plot_label", default=None)


def available() -> bool:
    """Whether matplotlib and mplhep can be imported (otherwise every plot function returns None)."""
    return all(importlib.util.find_spec(m) is not None for m in ("matplotlib", "mplhep"))


@contextlib.contextmanager
def style(label: Label) -> Iterator[None]:
    """Figures drawn inside the block take `label.style`'s mplhep style and carry `label`.

    The style's rcParams hold only inside the block (matplotlib.rc_context); nested blocks stack.
    """
    if not available():
        yield
        return
    import matplotlib
    import matplotlib.style
    import mplhep

    token = _ACTIVE.set(label)
    try:
        with matplotlib.rc_context():
            matplotlib.style.use(getattr(mplhep.style, label.style))
            yield
    finally:
        _ACTIVE.reset(token)


def _scale() -> float:
    """Inches of the current style per inch of the sizes in this module (1 unstyled)."""
    if _ACTIVE.get() is None:
        return 1.0
    import matplotlib

    return float(matplotlib.rcParams["figure.figsize"][0]) / BASE_WIDTH_IN


def _pt(size: float) -> float:
    """A font size in points of a BASE_WIDTH_IN-wide figure, scaled like the figure."""
    return size * _scale()


def figure(width: float = 6.0, height: float = 4.5, ncols: int = 1):
    """A new (Figure, axes) on the Agg canvas, or (None, None) without matplotlib / mplhep.

    width, height: inches of one panel at BASE_WIDTH_IN scale (scaled up inside a `style` block);
    axes: one Axes, or [ncols] of them.
    """
    if not available():
        return None, None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scale = _scale()
    fig = Figure(figsize=(width * ncols * scale, height * scale))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes if ncols > 1 else axes[0]


def save(fig: Any, path: PathLike, title: str = "") -> Path:
    """Write `fig` as a PNG at `path` (folders made) with the active label and `title`; frees it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    label = _ACTIVE.get()
    if label is not None:
        _draw_label(fig, label)
    if title:
        fig.suptitle(title, fontsize=_pt(10))
    fig.tight_layout()
    fig.savefig(path, dpi=DPI / _scale(), bbox_inches="tight")
    fig.clear()  # drops the artists now rather than at garbage collection
    return path


def _draw_label(fig: Any, label: Label) -> None:
    """The experiment's label above the first panel, the conditions above the last one.

    Drawn here in the experiments' conventions rather than with mplhep's label functions: those
    render the whole figure once more to place the second text, which doubles the time a figure
    takes (about 1 s on a laptop core, 50 figures in a PID run). The second text is anchored to
    the first one's box instead, which matplotlib resolves while saving.
    """
    first = fig.axes[0]
    # Colorbars are axes too; the last *panel* is the last axes that is not one.
    last = [ax for ax in fig.axes if not hasattr(ax, "_colorbar")][-1]
    name_style, text_style = _LABEL_FONTSTYLE[label.style]
    size = _pt(11)
    name = first.text(
        0.0,
        1.02,
        label.experiment,
        transform=first.transAxes,
        ha="left",
        va="bottom",
        fontsize=size * 1.3,
        fontweight="bold",
        fontstyle=name_style,
    )
    first.annotate(
        " " + label.text,
        xy=(1.0, 0.0),
        xycoords=name,
        ha="left",
        va="bottom",
        fontsize=size,
        fontstyle=text_style,
    )
    if label.conditions:
        last.text(
            1.0, 1.02, label.conditions, transform=last.transAxes, ha="right", va="bottom", fontsize=size
        )


def _efficiency_errors(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k / n [K], asymmetric Clopper-Pearson errors [2, K]: below, above); NaN where n = 0."""
    eff = np.divide(k, n, out=np.full(len(n), np.nan), where=n > 0)
    lo, hi = efficiency_interval(k, n)
    return eff, np.stack([eff - lo, hi - eff])


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
    fig, axes = figure(4.0, 3.2, ncols=len(present))
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
    return save(fig, path)


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
            fontsize=_pt(6 if small else 9),
            color="white" if dark else "black",
        )


def confusion_matrix(cm: Any, class_names: Sequence[str], path: PathLike, title: str = "") -> Path | None:
    """Row-normalised confusion matrix cm [C, C] (rows = true class), annotated.

    cm may be counts or already normalised; rows are divided by their sums (empty rows
    stay 0), so each cell reads as "fraction of true class i predicted as j".
    """
    # At least 6.5 in wide: the label above the panel needs the room.
    fig, ax = figure(max(6.5, 1.2 + 0.7 * len(class_names)), max(4.0, 1.0 + 0.6 * len(class_names)))
    if fig is None:
        return None
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows != 0)
    # aspect="auto": the panel fills the figure's width, which the label above it needs.
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    _annotate_cells(ax, norm, ".2f", image)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.minorticks_off()
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return save(fig, path, title)


def roc_curves(
    curves: Mapping[str, tuple[Any, Any, float]],
    path: PathLike,
    title: str = "",
    rejection: Literal["complement", "inverse"] = "complement",
    signal: str = "signal",
    background: str = "background",
) -> Path | None:
    """ROC curves as HEP draws them: signal efficiency (x) against background rejection (y).

    curves maps a label to (fpr [K], tpr [K], auc), fpr = background efficiency, tpr = signal
    efficiency (as metrics.roc_curve returns them); AUC goes in the legend. rejection:
    "complement" plots 1 - fpr on a linear axis (for moderate separations: e/gamma ID, PID,
    DUNE tagging); "inverse" plots 1 / fpr on a log axis (for high rejections, as b-tagging and
    tracking classifiers are shown), dropping points with fpr = 0 (infinite rejection).
    signal / background name the classes in the axis titles. The dashed line is random guessing.
    """
    if rejection not in ("complement", "inverse"):
        raise ValueError(f"rejection {rejection!r}: 'complement' or 'inverse'")
    fig, ax = figure(5.5, 4.5)
    if fig is None:
        return None
    for name, (fpr, tpr, auc) in curves.items():
        fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
        keep = np.isfinite(fpr) & np.isfinite(tpr) & ((fpr > 0) if rejection == "inverse" else True)
        fpr, tpr = fpr[keep], tpr[keep]
        ax.plot(tpr, 1.0 / fpr if rejection == "inverse" else 1.0 - fpr, label=f"{name} (AUC = {auc:.4f})")
    if rejection == "inverse":
        guess = np.geomspace(1e-3, 1.0, 100)
        ax.plot(guess, 1.0 / guess, color="grey", linestyle="--", linewidth=0.8, label="random")
        ax.set_yscale("log")
        ax.set_ylim(bottom=1.0)  # a rejection is at least 1
        ax.set_ylabel(f"{background} rejection 1/ε")
    else:
        ax.plot([0, 1], [1, 0], color="grey", linestyle="--", linewidth=0.8, label="random")
        ax.set_ylim(0, 1.02)
        ax.set_ylabel(f"{background} rejection 1 − ε")
    ax.set_xlim(0, 1.02)
    ax.set_xlabel(f"{signal} efficiency ε")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=_pt(8))
    return save(fig, path, title)


def efficiency_purity(
    confusions: Mapping[str, Any],
    class_names: Sequence[str],
    path: PathLike,
    title: str = "",
) -> Path | None:
    """Per-class working points in the efficiency-purity plane, with Clopper-Pearson error bars.

    confusions maps a series (a model, a method) to its confusion counts [C, C] (rows = true
    class): efficiency of class c = cm[c, c] / row c, purity = cm[c, c] / column c. Colour marks
    the series, marker shape the class; the best corner is top right.
    """
    fig, ax = figure(7.0, 5.0)  # the legend goes beside the panel
    if fig is None:
        return None
    colors = [f"C{i % 10}" for i in range(len(confusions))]
    for color, (name, cm) in zip(colors, confusions.items()):
        cm = np.asarray(cm, dtype=np.float64)
        diag = np.diag(cm)
        eff, eff_err = _efficiency_errors(diag, cm.sum(axis=1))
        pur, pur_err = _efficiency_errors(diag, cm.sum(axis=0))
        ax.plot(eff, pur, color=color, linewidth=0.6, alpha=0.4)  # links one series' classes
        for c in range(len(diag)):
            ax.errorbar(
                eff[c],
                pur[c],
                xerr=eff_err[:, c : c + 1],
                yerr=pur_err[:, c : c + 1],
                color=color,
                marker=_MARKERS[c % len(_MARKERS)],
                markersize=6,
                linewidth=0.8,
            )
        ax.scatter([], [], color=color, marker="s", label=name)  # series entry in legend
    for c, cname in enumerate(class_names):
        ax.scatter([], [], color="black", marker=_MARKERS[c % len(_MARKERS)], label=cname)
    # Zoomed on the points (working points cluster near the top right), never past [0, 1].
    for get, set_ in ((ax.get_xlim, ax.set_xlim), (ax.get_ylim, ax.set_ylim)):
        low, high = get()
        set_(max(low, 0.0), min(high, 1.02))
    ax.set_xlabel("efficiency (recall)")
    ax.set_ylabel("purity (precision)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=_pt(8), loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside: never on a point
    return save(fig, path, title)


def grouped_bars(
    values: Mapping[str, Mapping[str, float]],
    path: PathLike,
    ylabel: str,
    title: str = "",
    intervals: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
) -> Path | None:
    """Grouped bar chart: values[group][series] -> height; groups on the x-axis.

    A series missing from a group leaves a gap. Bars are labelled with their value.
    intervals[group][series] -> (lo, hi), e.g. `efficiency_interval` of an efficiency, draws
    asymmetric error bars (a missing entry draws none).
    """
    groups = list(values)
    series = list(dict.fromkeys(s for g in groups for s in values[g]))
    fig, ax = figure(max(5.0, 1.0 + 0.5 * len(groups) * max(len(series), 1)), 4.0)
    if fig is None:
        return None
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for i, name in enumerate(series):
        heights = np.array([values[g].get(name, np.nan) for g in groups], dtype=np.float64)
        keep = np.isfinite(heights)
        bounds = np.array(
            [(intervals or {}).get(g, {}).get(name, (np.nan, np.nan)) for g in groups], dtype=np.float64
        ).reshape(len(groups), 2)
        errors = np.nan_to_num(np.abs(np.stack([heights - bounds[:, 0], bounds[:, 1] - heights])))
        bars = ax.bar(
            x[keep] + (i - (len(series) - 1) / 2) * width,
            heights[keep],
            width,
            label=name,
            yerr=errors[:, keep] if intervals is not None else None,
            capsize=_pt(2),
        )
        ax.bar_label(bars, fmt="%.3g", fontsize=_pt(7), label_type="center")
    ax.set_xticks(x, groups)
    ax.minorticks_off()
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=_pt(8), loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside: never on a bar
    return save(fig, path, title)


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
    fig, ax = figure(max(4.5, 1.5 + 0.9 * len(col_labels)), max(3.0, 1.0 + 0.6 * len(row_labels)))
    if fig is None:
        return None
    image = ax.imshow(matrix, cmap="viridis", aspect="auto")
    _annotate_cells(ax, matrix, fmt, image)
    ax.set_xticks(np.arange(len(col_labels)), col_labels, rotation=45, ha="right")
    ax.set_yticks(np.arange(len(row_labels)), row_labels)
    ax.minorticks_off()
    fig.colorbar(image, ax=ax)
    return save(fig, path, title)


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
    fig, ax = figure()
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
        ax.legend(fontsize=_pt(8))
    return save(fig, path, title)


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

    For a resolution vs energy pass the errors as y; an efficiency wants `efficiency_curves`
    (a mean of 0/1 outcomes would get the normal-approximation error, zero at 0 and 1). Empty
    bins are left out; horizontal bars show the bin widths.
    """
    fig, ax = figure()
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
        ax.legend(fontsize=_pt(8))
    return save(fig, path, title)


def efficiency_curves(
    edges: Any,
    series: Mapping[str, tuple[Any, Any]],
    path: PathLike,
    xlabel: str,
    ylabel: str = "efficiency",
    title: str = "",
    log_x: bool = False,
) -> Path | None:
    """Binned efficiencies k / n with Clopper-Pearson (68.3 %) error bars.

    edges [K+1]; series maps a name to (k [K], n [K]), the passing and total counts per bin
    (e.g. summed over events). Bins with n = 0 are left out; horizontal bars show the bin
    widths (centred geometrically on a log axis).
    """
    edges = np.asarray(edges, dtype=np.float64)
    fig, ax = figure()
    if fig is None:
        return None
    centers = np.sqrt(edges[1:] * edges[:-1]) if log_x else (edges[1:] + edges[:-1]) / 2
    xerr = np.stack([centers - edges[:-1], edges[1:] - centers])
    for name, (k, n) in series.items():
        k, n = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
        eff, yerr = _efficiency_errors(k, n)
        keep = n > 0
        ax.errorbar(
            centers[keep],
            eff[keep],
            yerr=yerr[:, keep],
            xerr=xerr[:, keep],
            fmt="o",
            markersize=3,
            capsize=2,
            label=name,
        )
    if log_x:
        ax.set_xscale("log")
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, -0.02), min(high, 1.1))  # an efficiency lies in [0, 1]; markers at 0 show
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=_pt(8))
    return save(fig, path, title)


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
    fig, ax = figure(5.5, 5.0)
    if fig is None:
        return None
    # Small translucent markers keep dense clusters readable with thousands of points.
    size = _pt(4 if len(points) > 2000 else 10) * _scale()  # marker areas grow with the square
    for c, name in enumerate(class_names):
        sel = labels == c
        ax.scatter(points[sel, 0], points[sel, 1], s=size, alpha=0.6, linewidths=0, label=name)
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    ax.legend(fontsize=_pt(8), markerscale=2)
    return save(fig, path, title)
