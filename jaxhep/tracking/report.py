"""The tracking run's report: report.md (edges, both stages, tracks, efficiencies, graphs) and its plots."""

from __future__ import annotations

import numpy as np

from jaxhep import plots
from jaxhep.runs import Run
from jaxhep.tracking import evaluate
from jaxhep.tracking.config import TrackingConfig
from jaxhep.tracking.display import event_display
from jaxhep.tracking.evaluate import Evaluation


def figure_label(cfg: TrackingConfig) -> plots.Label:
    """ATLAS style, but "TrackML" as the name: the TrackML detector is a generic, ATLAS-like one
    that belongs to no experiment. "Simulation" and the mean pile-up when the events came from
    jaxhep's simulator (no --data); no sqrt(s): the simulator has none, only spectra fitted at 7 TeV."""
    simulated = cfg.data.path is None
    pileup = rf"$\langle\mu\rangle$ = {cfg.data.pileup:g}"
    return plots.Label("TrackML", "ATLAS", simulated, pileup if simulated else "")


def _counts(binned: dict) -> tuple[np.ndarray, np.ndarray]:
    """(k [K], n [K]): the passing and total counts of a binned efficiency of the report."""
    return np.asarray(binned["k"], dtype=np.float64), np.asarray(binned["n"], dtype=np.float64)


def write_plots(
    run: Run, ev: Evaluation, cfg: TrackingConfig, history: list[dict], filter_history: list[dict] | None
) -> None:
    """The report's figures in `run`'s plots/: edge ROC (true-edge efficiency vs fake-edge rejection
    1/eps on a log axis, as ATLAS shows taggers), efficiencies vs pT and eta (Clopper-Pearson
    intervals), training curves (`history`; `filter_history` of stage 1, None for one stage) and
    event displays of the first `cfg.eval.displays` test events."""
    r = ev.report
    with plots.style(figure_label(cfg)):
        if filter_history is not None:
            plots.training_curves(
                filter_history, run.plot_path("training_filter.png"), keys=("loss", "val_kept", "val_auc")
            )
        plots.roc_curves(
            {"edge classifier": ev.roc},
            run.plot_path("roc.png"),
            title="Edge ROC (test)",
            rejection="inverse",
            signal="true-edge",
            background="fake-edge",
        )
        plots.efficiency_curves(
            evaluate.PT_BINS,
            {
                "true edges kept": _counts(r["edge_efficiency_vs_pt"]),
                "particles found (tracks)": _counts(r["track_efficiency_vs_pt"]),
            },
            run.plot_path("efficiency_vs_pt.png"),
            xlabel="particle $p_T$ [GeV]",
            title=f"Efficiency vs pT (edge threshold {ev.threshold:.2f}; tracks: double majority, >= 4 hits)",
            log_x=True,
        )
        plots.efficiency_curves(
            evaluate.ETA_BINS,
            {
                "true edges kept": _counts(r["edge_efficiency_vs_eta"]),
                "particles found, all pT (>= 4 hits)": _counts(r["track_efficiency_vs_eta_all"]),
                f"particles found, pT > {cfg.eval.pt_min:g} GeV": _counts(r["track_efficiency_vs_eta"]),
            },
            run.plot_path("efficiency_vs_eta.png"),
            xlabel=r"particle $\eta$",
            title="Efficiency vs eta",
        )
        plots.training_curves(history, run.plot_path("training.png"), keys=("loss", "val_f1", "val_auc"))
        for e in ev.per_event[: cfg.eval.displays]:
            h = e["hits"]
            event_display(
                np.asarray(h["x"]),
                np.asarray(h["y"]),
                np.asarray(h["z"]),
                e["track_id"],
                run.plot_path("event_display.png"),
            )


def markdown(r: dict, devices: str) -> str:
    """report.md from the run's metrics.json `r`."""
    t, k = r["test"], r["tracks"]
    lines = [
        "# TrackML tracking report",
        "",
        f"- devices: {devices}",
        f"- wall time: {r['wall_s']} s",
        f"- epochs: {r['epochs']} (best {r['best_epoch']})",
        f"- edge threshold {r['threshold']:.3f} (best "
        + ("TrackML score" if r.get("threshold_by") == "score" else "F1")
        + " on the validation events)",
        "",
        "## Edges (test events, trainable edges"
        + (", both stages: edges the filter dropped count as scored 0)" if "filter" in r else ")"),
        "",
        "| accuracy | precision | recall | F1 | ROC AUC |",
        "|---:|---:|---:|---:|---:|",
        "| " + " | ".join(f"{t[k]:.4f}" for k in ("accuracy", "precision", "recall", "f1", "auc")) + " |",
        "",
        *cascade_lines(r),
        "## Tracks",
        "",
        "| TrackML score (all particles) | score, pT above cut | tracking efficiency | fake rate |",
        "|---:|---:|---:|---:|",
        f"| {k['score']:.4f} | {k['score_pt']:.4f} | {k['efficiency']:.4f} | {k['fake_rate']:.4f} |",
        "",
        *score_lines(r),
        "## Efficiency vs particle pT (test events; particles with >= 4 hits, as the score weighs them)",
        "",
        "| pT [GeV] | true edges kept | particles found | particles |",
        "|---|---:|---:|---:|",
    ]
    e_pt, t_pt = r["edge_efficiency_vs_pt"], r["track_efficiency_vs_pt"]
    for i, (lo, hi) in enumerate(zip(t_pt["edges"][:-1], t_pt["edges"][1:])):
        if t_pt["n"][i] > 0:
            edge_eff, track_eff = e_pt["efficiency"][i], t_pt["efficiency"][i]
            lines.append(f"| {lo:g}-{hi:g} | {edge_eff:.4f} | {track_eff:.4f} | {t_pt['n'][i]} |")
    lines += [
        "",
        "## Graph construction (test events)",
        "",
        "| method | efficiency | purity | edges/event |",
        "|---|---:|---:|---:|",
    ]
    for method, g in r["graph"].items():
        eff = g.get("efficiency", float("nan"))
        lines.append(
            f"| {method} | {eff:.4f} | {g.get('purity', float('nan')):.4f} | {g['edges_per_event']:.0f} |"
        )
    lines += [
        "",
        "![ROC](plots/roc.png)",
        "![efficiency vs pT](plots/efficiency_vs_pt.png)",
        "![efficiency vs eta](plots/efficiency_vs_eta.png)",
        "![training](plots/training.png)",
        *(["![filter training](plots/training_filter.png)"] if r.get("filter", {}).get("epochs") else []),
        "![event display](plots/event_display.png)",
        "",
        "Found tracks of the test events: `submission.csv` (event_id,hit_id,track_id).",
    ]
    return "\n".join(lines) + "\n"


def score_lines(r: dict) -> list[str]:
    """Where the score comes from: per pT band, the weight its particles carry and the score within it
    (their product, summed, is the score). Runs made before the breakdown have none."""
    if "score_by_pt" not in r:
        return []
    b = r["score_by_pt"]
    lines = [
        "Score by particle pT (mean over the test events; share x score summed over the bands = the score):",
        "",
        "| pT [GeV] | share of the weight | score within | share x score |",
        "|---|---:|---:|---:|",
    ]
    for lo, hi, share, score in zip(b["bands"][:-1], b["bands"][1:], b["share"], b["score"]):
        band = f"{lo:g}-{hi:g}" if np.isfinite(hi) else f"> {lo:g}"
        lines.append(f"| {band} | {share:.4f} | {score:.4f} | {share * score:.4f} |")
    return lines + [""]


def cascade_lines(r: dict) -> list[str]:
    """The report's section on the two stages (none for a one-stage run)."""
    if "filter" not in r:
        return []
    f, s2 = r["filter"], r["stage2_test"]
    lines = [
        "## Two stages",
        "",
        f"Stage 1 (filter) keeps the edges scoring >= {f['test']['threshold']:.4f}, the threshold that keeps "
        f"{f['target_recall']:.1%} of the validation events' true edges; "
        + (
            f"trained {len(f['epochs'])} epochs (val_kept: the fraction of edges kept at that recall)."
            if f["epochs"]
            else "a classifier reused from another run (cascade.filter_run)."
        ),
        "",
        "| filter | edges/event before | after | kept | true edges kept | purity before | after |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for part in ("validation", "test"):
        p = f[part]
        lines.append(
            f"| {part} | {p['edges_per_event_before']:.0f} | {p['edges_per_event_after']:.0f} | "
            f"{p['kept_fraction']:.4f} | {p['recall']:.4f} | "
            f"{p['purity_before']:.4f} | {p['purity_after']:.4f} |"
        )
    lines += [
        "",
        "Stage 2 on the pruned test graphs (its own threshold, best F1 on the pruned validation graphs):",
        "",
        "| precision | recall | F1 | ROC AUC |",
        "|---:|---:|---:|---:|",
        "| " + " | ".join(f"{s2[k]:.4f}" for k in ("precision", "recall", "f1", "auc")) + " |",
        "",
    ]
    return lines
