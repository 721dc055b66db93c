"""The PID run's report: report.md, metrics.json and the PNG figures of the seed's sections 7-8."""

from __future__ import annotations

import numpy as np

from jaxhep import metrics, plots
from jaxhep.pid.species import SPECIES
from jaxhep.runs import Run

NAMES = {"simple": "SimpleNN", "dnn": "DNN", "fse": "FSE+Attention", "bayes": "Bayesian PID"}


def roc_points(labels: np.ndarray, probs: np.ndarray, grid: int = 200) -> dict:
    """One-vs-rest ROC curves per species and their macro average on a common FPR grid: 0, then
    `grid` points log-spaced from 1e-4 to 1 (the figures show rejection 1/FPR on a log axis)."""
    fpr_grid = np.r_[0.0, np.geomspace(1e-4, 1.0, grid)]
    curves, tprs = {}, []
    for c, s in enumerate(SPECIES):
        fpr, tpr, _ = metrics.roc_curve(labels == c, probs[:, c])
        if not (np.isfinite(fpr).all() and np.isfinite(tpr).all()):
            continue
        auc = metrics.roc_auc(labels == c, probs[:, c])
        tpr_i = np.interp(fpr_grid, fpr, tpr)
        curves[s] = (fpr_grid, tpr_i, auc)
        tprs.append(tpr_i)
    macro_tpr = np.mean(tprs, axis=0) if tprs else np.zeros_like(fpr_grid)
    return {"per_species": curves, "macro": (fpr_grid, macro_tpr, float(np.trapezoid(macro_tpr, fpr_grid)))}


def figure_label(run: Run) -> plots.Label:
    """ALICE style; "Simulation" and the collision system when the run used the simulated default
    sample (no --data in its config.json). No energy: the simulator has no sqrt(s_NN), only spectra
    matched to measured Pb-Pb ones."""
    simulated = run.config["pid"]["data"]["path"] is None
    return plots.Label("ALICE", "ALICE", simulated, "Pb–Pb" if simulated else "")


def _counts(fraction: float, n: int) -> int:
    """The whole count behind a fraction of n (metrics.json keeps fractions)."""
    return int(round(fraction * n)) if np.isfinite(fraction) else 0


def _interval(fraction: float, n: int) -> tuple[float, float]:
    """Clopper-Pearson interval of a fraction of n tracks."""
    lo, hi = plots.efficiency_interval([_counts(fraction, n)], [n])
    return float(lo[0]), float(hi[0])


def _confusion_counts(m: dict) -> np.ndarray:
    """Confusion counts [C, C] from metrics' row-normalised matrix and the per-species support."""
    support = np.array([m["support"][s] for s in SPECIES], dtype=np.float64)
    return np.rint(np.asarray(m["confusion"], dtype=np.float64) * support[:, None])


def write_report(run: Run, results: dict, header: dict) -> None:
    """Figures + report.md + metrics.json from `results[range][model]` (see experiments/pid.py)."""
    with plots.style(figure_label(run)):
        figures, overview = _write_figures(run, results)
    run.write_json(
        "metrics.json",
        {
            rng: {
                m: {k: v for k, v in r.items() if k not in ("roc", "history")} for m, r in per_model.items()
            }
            for rng, per_model in results.items()
        },
    )
    run.write_text("report.md", _markdown(results, header, figures, overview))


def _write_figures(run: Run, results: dict) -> tuple[dict[str, list[str]], list]:
    """Every figure of the report: ({range: [figure paths]}, [overview figure paths]).

    ROC curves: signal efficiency against background rejection 1/eps on a log axis, per species
    one-vs-rest (the networks reach AUC 0.97+, where 1 - eps squeezes every curve into a corner);
    efficiencies and purities with Clopper-Pearson intervals."""
    roc_axes = dict(rejection="inverse", signal="signal species", background="other species")
    figures: dict[str, list[str]] = {}
    for rng, per_model in results.items():
        figs = figures.setdefault(rng, [])
        tag = rng.replace(".", "p")
        macro = {NAMES[m]: r["roc"]["macro"] for m, r in per_model.items()}
        figs.append(
            _fig(
                plots.roc_curves(
                    macro,
                    run.plot_path(f"roc_macro_{tag}.png"),
                    title=f"Macro-average ROC, pT {rng}",
                    **roc_axes,
                )
            )
        )
        eff_pur = {}
        for m, r in per_model.items():
            figs.append(
                _fig(
                    plots.roc_curves(
                        r["roc"]["per_species"],
                        run.plot_path(f"roc_{m}_{tag}.png"),
                        title=f"{NAMES[m]} one-vs-rest ROC, pT {rng}",
                        **roc_axes,
                    )
                )
            )
            figs.append(
                _fig(
                    plots.confusion_matrix(
                        np.asarray(r["metrics"]["confusion"]),
                        SPECIES,
                        run.plot_path(f"confusion_{m}_{tag}.png"),
                        title=f"{NAMES[m]}, pT {rng}",
                    )
                )
            )
            eff_pur[NAMES[m]] = _confusion_counts(r["metrics"])
            if r.get("history"):
                figs.append(
                    _fig(
                        plots.training_curves(
                            r["history"],
                            run.plot_path(f"training_{m}_{tag}.png"),
                            keys=("loss", "accuracy", "val_accuracy"),
                        )
                    )
                )
        figs.append(
            _fig(
                plots.efficiency_purity(
                    eff_pur,
                    SPECIES,
                    run.plot_path(f"eff_purity_{tag}.png"),
                    title=f"Efficiency vs purity, pT {rng}",
                )
            )
        )
        nets = [m for m in per_model if m != "bayes"]
        if nets and all("importance" in per_model[m] for m in nets):
            names = list(per_model[nets[0]]["importance"])
            matrix = np.array([[per_model[m]["importance"][f] for f in names] for m in nets])
            top = np.argsort(-matrix.max(0))[:10]
            figs.append(
                _fig(
                    plots.heatmap(
                        matrix[:, top],
                        [NAMES[m] for m in nets],
                        [names[i] for i in top],
                        run.plot_path(f"importance_{tag}.png"),
                        title=f"Permutation importance (accuracy drop), pT {rng}",
                    )
                )
            )
        best = _best_network(per_model)
        if best:
            cmp = per_model[best]["bayes_comparison"]["all"]
            support = per_model[best]["metrics"]["support"]  # "all": every test track
            bars, intervals = {}, {}
            for s in SPECIES:
                pair = {NAMES[best]: cmp["nn_per_species"][s], NAMES["bayes"]: cmp["bayes_per_species"][s]}
                bars[s] = pair
                intervals[s] = {k: _interval(v, support[s]) for k, v in pair.items()}
            figs.append(
                _fig(
                    plots.grouped_bars(
                        bars,
                        run.plot_path(f"bayes_per_species_{tag}.png"),
                        ylabel="efficiency per true species",
                        title=f"{NAMES[best]} vs Bayesian PID, pT {rng}",
                        intervals=intervals,
                    )
                )
            )
    acc = {
        rng: {NAMES[m]: r["metrics"]["accuracy"] for m, r in per_model.items()}
        for rng, per_model in results.items()
    }
    acc_intervals = {
        rng: {NAMES[m]: _interval(r["metrics"]["accuracy"], r["metrics"]["n"]) for m, r in per_model.items()}
        for rng, per_model in results.items()
    }
    overview = [
        _fig(
            plots.grouped_bars(
                acc,
                run.plot_path("accuracy_by_range.png"),
                ylabel="accuracy",
                title="Test accuracy per momentum range",
                intervals=acc_intervals,
            )
        )
    ]
    return figures, overview


def _fig(path) -> str | None:
    return None if path is None else f"plots/{path.name}"


def _best_network(per_model: dict) -> str | None:
    nets = [m for m in per_model if m != "bayes"]
    return "fse" if "fse" in nets else (nets[-1] if nets else None)


def _markdown(results: dict, header: dict, figures: dict, overview: list) -> str:
    lines = ["# ALICE PID run report", ""]
    lines += [f"- **{k}**: {v}" for k, v in header.items()]
    lines += [
        "",
        "## Test accuracy and macro AUC per momentum range (pT, GeV/c)",
        "",
        "| range | "
        + " | ".join(f"{NAMES[m]} acc | {NAMES[m]} AUC" for m in next(iter(results.values())))
        + " |",
        "|---|" + "---:|---:|" * len(next(iter(results.values()))),
    ]
    for rng, per_model in results.items():
        cells = [
            f"{r['metrics']['accuracy']:.4f} | {r['metrics']['macro_auc']:.4f}" for r in per_model.values()
        ]
        lines.append(f"| {rng} | " + " | ".join(cells) + " |")
    lines += ["", *[f"![overview]({p})" for p in overview if p], ""]
    lines += [
        "## Networks vs Bayesian PID on the same test tracks",
        "",
        "`all`: every test track (missing Bayes filled with 0.25 per species, as in the seed); "
        "`bayes_available`: only tracks with a computed Bayes posterior.",
        "",
        "| range | network | subset | n | network acc | Bayes acc | gain |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for rng, per_model in results.items():
        for m, r in per_model.items():
            if m == "bayes":
                continue
            for subset, c in r["bayes_comparison"].items():
                lines.append(
                    f"| {rng} | {NAMES[m]} | {subset} | {c['n']} | {c['nn_accuracy']:.4f} | "
                    f"{c['bayes_accuracy']:.4f} | {c['nn_accuracy'] - c['bayes_accuracy']:+.4f} |"
                )
    for rng, per_model in results.items():
        lines += [
            "",
            f"## pT {rng}",
            "",
            "### Per-species efficiency / purity / F1 / AUC",
            "",
            "| model | species | efficiency | purity | F1 | AUC | support |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for m, r in per_model.items():
            mt = r["metrics"]
            for s in SPECIES:
                lines.append(
                    f"| {NAMES[m]} | {s} | {mt['efficiency'][s]:.3f} | {mt['purity'][s]:.3f} | "
                    f"{mt['f1'][s]:.3f} | {mt['auc'][s]:.4f} | {mt['support'][s]} |"
                )
        for m, r in per_model.items():
            extra = []
            if r.get("reused_from"):
                extra.append(f"reused from `{r['reused_from']}`")
            if r.get("best_epoch"):
                extra.append(f"best epoch {r['best_epoch']} of {r.get('epochs_run')}")
            if "importance" in r:
                top = sorted(r["importance"].items(), key=lambda kv: -kv[1])[:5]
                extra.append("top features: " + ", ".join(f"{k} ({v:+.3f})" for k, v in top))
            if extra:
                lines.append(f"- **{NAMES[m]}**: " + "; ".join(extra))
        lines += ["", *[f"![{p}]({p})" for p in figures.get(rng, []) if p]]
    return "\n".join(lines) + "\n"
