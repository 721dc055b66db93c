"""jaxhep.plots: every function writes a PNG (None without matplotlib); the experiment label,
Clopper-Pearson efficiency intervals and the ROC orientation, checked against scipy and sklearn."""

import matplotlib
import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_curve

from jaxhep import metrics, plots
from tests.approx import approx

PNG_MAGIC = b"\x89PNG"
NAMES = ["e", "pi", "K"]
RNG = np.random.default_rng(0)
ALICE_SIM = plots.Label("ALICE", "ALICE", simulated=True, conditions="Pb–Pb")


@pytest.fixture
def kept(monkeypatch):
    """The figures the plot functions save, kept with their artists (save normally clears them)."""
    figures = []
    original = plots.save

    def save(fig, path, title=""):
        fig.clear = lambda *args, **kwargs: None
        figures.append(fig)
        return original(fig, path, title)

    monkeypatch.setattr(plots, "save", save)
    return figures


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [t.get_text() for t in fig.texts]


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
                rejection="inverse",
            ),
        ),
        (
            "effpur",
            lambda: plots.efficiency_purity(
                {"dnn": [[9, 1, 0], [2, 8, 0], [0, 3, 7]], "bayes": [[8, 2, 0], [3, 7, 0], [1, 4, 5]]},
                NAMES,
                tmp / "effpur.png",
            ),
        ),
        (
            "bars",
            lambda: plots.grouped_bars(
                {"e": {"dnn": 0.9, "bayes": 0.8}, "pi": {"dnn": 0.7}},
                tmp / "bars.png",
                ylabel="F1",
                intervals={"e": {"dnn": (0.85, 0.93)}},
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
                {"res": RNG.normal(size=300), "other": RNG.random(300)},
                5,
                tmp / "binned.png",
                xlabel="E [MeV]",
                ylabel="resolution",
            ),
        ),
        (
            "efficiency",
            lambda: plots.efficiency_curves(
                [0.1, 1.0, 10.0, 100.0],
                {"tracks": ([5, 0, 9], [10, 0, 9]), "edges": ([0, 8, 20], [4, 10, 20])},
                tmp / "eff.png",
                xlabel="pT [GeV]",
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


def test_every_plot_writes_a_png_with_the_label(tmp_path, kept):
    assert plots.available()
    with plots.style(ALICE_SIM):
        for name, call in _calls(tmp_path):
            path = call()
            assert path is not None and path.exists(), name
            data = path.read_bytes()
            assert data.startswith(PNG_MAGIC) and len(data) > 1000, name
            texts = _texts(kept[-1])
            assert "ALICE" in texts and "Pb–Pb" in texts, name
            assert any("Simulation" in t for t in texts), name


def test_the_label_says_simulation_only_for_simulated_data(tmp_path, kept):
    before = dict(matplotlib.rcParams)
    user_file = plots.Label("CMS", "CMS", simulated=False)
    with plots.style(user_file):
        plots.histograms({"x": RNG.normal(size=50)}, tmp_path / "h.png", xlabel="x")
        assert matplotlib.rcParams["font.size"] == 26  # mplhep's CMS style, inside the block only
    plots.histograms({"x": RNG.normal(size=50)}, tmp_path / "plain.png", xlabel="x")
    labelled, plain = (_texts(f) for f in kept)
    assert "CMS" in labelled and not any("Simulation" in t for t in labelled)
    assert plain == []  # outside a style block: no label
    assert dict(matplotlib.rcParams) == before
    with pytest.raises(ValueError, match="plot style 'Belle'"):
        plots.Label("Belle II", "Belle", simulated=True)


def test_nothing_to_plot_returns_none(tmp_path):
    assert plots.training_curves([{"epoch": 1, "lr": 0.1}], tmp_path / "c.png") is None
    assert not (tmp_path / "c.png").exists()


def test_without_matplotlib_every_function_returns_none(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "available", lambda: False)
    with plots.style(ALICE_SIM):
        for name, call in _calls(tmp_path):
            assert call() is None, name
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("confidence", [metrics.ONE_SIGMA, 0.95])
def test_efficiency_interval_is_scipys_exact_clopper_pearson(confidence):
    pairs = [(0, 1), (1, 1), (0, 7), (7, 7), (3, 7), (1, 50), (49, 50), (25, 50), (0, 1000), (999, 1000)]
    k, n = np.array(pairs).T
    lo, hi = plots.efficiency_interval(k, n, confidence)
    for i, (ki, ni) in enumerate(pairs):
        ci = stats.binomtest(int(ki), int(ni)).proportion_ci(confidence_level=confidence, method="exact")
        assert lo[i] == approx(ci.low, abs=1e-12) and hi[i] == approx(ci.high, abs=1e-12)
    assert lo[2] == 0.0 and hi[2] > 0.1  # k = 0: one-sided, and not of zero width
    assert hi[3] == 1.0 and lo[3] < 0.9  # k = n
    # Hand check: k = n = 1 at 68.27 %: lo solves lo^1 = (1 - 0.6827) / 2.
    if confidence == metrics.ONE_SIGMA:
        assert lo[1] == approx((1 - metrics.ONE_SIGMA) / 2)


def test_efficiency_interval_of_an_empty_bin_is_nan_and_bad_counts_raise():
    lo, hi = plots.efficiency_interval([0, 2], [0, 4])
    assert np.isnan(lo[0]) and np.isnan(hi[0]) and 0 < lo[1] < 0.5 < hi[1] < 1
    with pytest.raises(ValueError, match="0 <= k <= n"):
        plots.efficiency_interval([5], [4])
    with pytest.raises(ValueError, match="whole counts"):
        plots.efficiency_interval([0.5], [4])


def test_efficiency_curves_draw_clopper_pearson_bars_also_at_one_and_zero(tmp_path, kept):
    k, n = np.array([6, 0, 3, 0]), np.array([6, 0, 5, 4])  # 1, empty, 0.6, 0
    plots.efficiency_curves([0, 1, 2, 3, 4], {"eff": (k, n)}, tmp_path / "eff.png", xlabel="x")
    container = kept[0].axes[0].containers[0]
    x, y = container.lines[0].get_data()
    assert np.array_equal(x, [0.5, 2.5, 3.5]) and np.allclose(y, [1.0, 0.6, 0.0])  # empty bin left out
    y_bars = container.lines[2][1].get_segments()  # (x bars, y bars): one [[x, lo], [x, hi]] per point
    lows, highs = np.array([s[0][1] for s in y_bars]), np.array([s[1][1] for s in y_bars])
    lo, hi = plots.efficiency_interval(k[[0, 2, 3]], n[[0, 2, 3]])
    assert np.allclose(lows, lo) and np.allclose(highs, hi)
    assert lows[0] < 1.0 - 0.1  # k = n: a real lower error (the normal approximation gives none)
    assert highs[2] > 0.1  # k = 0: a real upper error


@pytest.mark.parametrize("rejection", ["complement", "inverse"])
def test_roc_is_signal_efficiency_against_background_rejection(tmp_path, kept, rejection):
    y = RNG.integers(0, 2, 400)
    scores = RNG.normal(y, 1.0)
    fpr, tpr, _ = roc_curve(y, scores)
    plots.roc_curves({"net": (fpr, tpr, 0.7)}, tmp_path / "roc.png", rejection=rejection, signal="e")
    ax = kept[0].axes[0]
    x_data, y_data = ax.get_lines()[0].get_data()
    if rejection == "inverse":
        keep = fpr > 0
        assert np.allclose(x_data, tpr[keep]) and np.allclose(y_data, 1 / fpr[keep])
        assert ax.get_yscale() == "log"
    else:
        assert np.allclose(x_data, tpr) and np.allclose(y_data, 1 - fpr)
    assert ax.get_xlabel() == "e efficiency ε" and "rejection" in ax.get_ylabel()


def test_efficiency_purity_errors_are_the_intervals_of_the_confusion_counts(tmp_path, kept):
    cm = np.array([[8, 2], [1, 9]])  # efficiency 0.8, 0.9; purity 8/9, 9/11
    plots.efficiency_purity({"net": cm}, ["a", "b"], tmp_path / "ep.png")
    point = kept[0].axes[0].containers[0]  # class a
    x_bars, y_bars = (c.get_segments()[0] for c in point.lines[2])
    eff_lo, eff_hi = plots.efficiency_interval([8], [10])
    pur_lo, pur_hi = plots.efficiency_interval([8], [9])
    assert np.allclose([x_bars[0][0], x_bars[1][0]], [eff_lo[0], eff_hi[0]])
    assert np.allclose([y_bars[0][1], y_bars[1][1]], [pur_lo[0], pur_hi[0]])
