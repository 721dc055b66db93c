"""The e/gamma run's report: report.md (test-split table, threshold and classification report per
network) and its ROC and training-curve figures (confusion and embedding plots: `evaluate`)."""

from __future__ import annotations

from jaxhep import plots
from jaxhep.config import to_dict
from jaxhep.egamma.config import EgammaConfig
from jaxhep.egamma.dataset import EgammaData
from jaxhep.egamma.sim.simulate import ShowerConfig
from jaxhep.runs import Run


def figure_label(run: Run) -> plots.Label:
    """CMS style (the sample is CMS ECAL barrel crops); "Simulation" and the particle gun's pT when
    the run used the simulated default sample (no --data in its config.json)."""
    simulated = not run.config["egamma"]["data"]["paths"]
    gun = rf"e/$\gamma$, $p_\mathrm{{T}}$ = {ShowerConfig().pt_gev:g} GeV"
    return plots.Label("CMS", "CMS", simulated, gun if simulated else "")


def write_plots(run: Run, results: dict) -> None:
    """plots/roc.png (every network; electron efficiency vs photon rejection 1 - eps, as CMS's
    e/gamma ID curves) and plots/training_<name>.png (loss, val AUC and accuracy)."""
    with plots.style(figure_label(run)):
        plots.roc_curves(
            {name: (r["roc"]["fpr"], r["roc"]["tpr"], r["auc"]) for name, r in results.items()},
            run.plot_path("roc.png"),
            title="Electron vs photon ROC (test split)",
            signal="electron",
            background="photon",
        )
        for name, r in results.items():
            plots.training_curves(
                r["history"], run.plot_path(f"training_{name}.png"), keys=("loss", "val_auc", "val_accuracy")
            )


def markdown(results: dict, cfg: EgammaConfig, data: EgammaData, devices: str, seconds: float) -> str:
    """report.md: data, devices, wall time, the test-split table, then a section per network."""
    n = {k: len(v) for k, v in data.rows.items()}
    lines = [
        "# Electron vs photon report",
        "",
        f"- data: {', '.join(str(p) for p in data.source.paths)}",
        f"- train / val / test: {n['train']} / {n['val']} / {n['test']}",
        f"- devices: {devices}",
        f"- wall time: {seconds:.0f} s",
        f"- augmentation: {to_dict(cfg.augment)}",
        f"- loss: {to_dict(cfg.loss)}",
        "",
        "## Test split",
        "",
        "| network | ROC AUC | accuracy | F1 (electron) | epochs |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['auc']:.4f} | {r['accuracy']:.4f} | {r['f1']:.4f} | {r['epochs']} |")
    lines += ["", "![ROC](plots/roc.png)", ""]
    for name, r in results.items():
        lines += [
            f"## {name}",
            "",
            f"Decision threshold (logit) {r['threshold_logit']:.3f}, the accuracy-optimal one on validation.",
            "",
            r["report_md"],
            "",
            f"![confusion](plots/confusion_{name}.png) ![embedding](plots/embedding_{name}.png) "
            f"![training](plots/training_{name}.png)",
            "",
        ]
    return "\n".join(lines) + "\n"
