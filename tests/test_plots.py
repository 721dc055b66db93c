"""jaxhep.plots: every function writes a non-empty PNG (or returns None without matplotlib)."""

import numpy as np
import pytest

from jaxhep import plots

PNG_MAGIC = b"\x89PNG"
NAMES = ["e", "pi", "K"]
RNG = np.random.default_rng(0)


def _calls(tmp):
    """(name, thunk) for each plot function on small synthetic inputs."""
    x = RNG.uniform(0, 10, 300)
    history = [
        {"epoch": e, "loss": 1 / e, "val_loss": 1.2 / e, "val_accuracy": 1 - 1 / e} for e in range(1, 6)
    ]
    return [
        ("curves", lambda: plots.training_curves(history, tmp / "curves.png")),
        (
            "cm",
            lambda: plots.confusion_matrix(
                np.array([[5, 1, 0], [2, 7, 1], [0, 0, 0]]), NAMES, tmp / "cm.png", title="PID"
            ),
        ),
        (
            "roc",
            lambda: plots.roc_curves(
                {
                    "a": (np.array([0, 0.1, 1]), np.array([0, 0.8, 1]), 0.85),
                    "b": ([0, 0.5, 1], [0, 0.5, 1], 0.5),
                },
                tmp / "roc.png",
                log_fpr=True,
            ),
        ),
        (
            "effpur",
            lambda: plots.efficiency_purity(
                {"dnn": ([0.9, 0.8, 0.7], [0.95, 0.7, 0.6]), "bayes": ([0.8, 0.7, 0.5], [0.9, 0.6, 0.7])},
                NAMES,
                tmp / "effpur.png",
            ),
        ),
        (
            "bars",
            lambda: plots.grouped_bars(
                {"e": {"dnn": 0.9, "bayes": 0.8}, "pi": {"dnn": 0.7}}, tmp / "bars.png", ylabel="F1"
            ),
        ),
        (
            "heatmap",
            lambda: plots.heatmap(
                RNG.random((2, 3)), ["lr 1e-3", "lr 1e-4"], ["a", "b", "c"], tmp / "heat.png"
            ),
        ),
        (
            "hist",
            lambda: plots.histograms(
                {"pred": RNG.normal(size=200), "true": np.r_[RNG.normal(size=200), np.nan]},
                tmp / "hist.png",
                xlabel="x",
                log=True,
            ),
        ),
        (
            "binned",
            lambda: plots.binned_mean(
                x,
                {"eff": (RNG.random(300) < x / 10).astype(float), "other": RNG.random(300)},
                5,
                tmp / "binned.png",
                xlabel="pT [GeV]",
                ylabel="efficiency",
            ),
        ),
        (
            "binned_curves",
            lambda: plots.binned_curves(
                [0.1, 1.0, 10.0, 100.0],
                {"tracks": ([0.5, np.nan, 0.9], [0.1, np.nan, 0.02]), "edges": ([0.6, 0.8, 0.95], [0.0] * 3)},
                tmp / "curves.png",
                xlabel="pT [GeV]",
                ylabel="efficiency",
                log_x=True,
            ),
        ),
        (
            "scatter",
            lambda: plots.scatter_2d(
                RNG.normal(size=(90, 2)), np.arange(90) % 3, NAMES, tmp / "sub" / "emb.png"
            ),
        ),
    ]


def test_every_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    assert plots.available()
    for name, call in _calls(tmp_path):
        path = call()
        assert path is not None and path.exists(), name
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000, name


def test_nothing_to_plot_returns_none(tmp_path):
    assert plots.training_curves([{"epoch": 1, "lr": 0.1}], tmp_path / "c.png") is None
    assert not (tmp_path / "c.png").exists()


def test_without_matplotlib_every_function_returns_none(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "available", lambda: False)
    for name, call in _calls(tmp_path):
        assert call() is None, name
    assert not any(tmp_path.iterdir())
