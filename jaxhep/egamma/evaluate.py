"""Test-split figures of one trained e/gamma network: ROC AUC and curve, accuracy at the threshold
chosen on validation, classification report, confusion matrix, and a PCA embedding of the
penultimate features coloured by class (the plot the seed lost to a shape bug)."""

from __future__ import annotations

import numpy as np

from jaxhep import metrics, plots
from jaxhep.egamma.dataset import CLASS_NAMES, EgammaData
from jaxhep.egamma.report import figure_label
from jaxhep.egamma.training import TrainedModel, infer
from jaxhep.embedding import pca_2d
from jaxhep.pipeline import RowSubset
from jaxhep.runs import Run


def evaluate_model(trained: TrainedModel, data: EgammaData, run: Run, embed_rows: int = 4000) -> dict:
    """Metrics dict (JSON-ready) of one model on the test split; writes its plots under run/plots."""
    name, model = trained.name, trained.model
    val_labels, test_labels = data.labels("val"), data.labels("test")
    val_logits = infer(model, data.reader("val"), len(val_labels))
    # The accuracy-optimal cut on validation (focal loss and mixup shift the logit scale a little).
    threshold = metrics.threshold_for(val_labels, val_logits, "accuracy")
    test_reader = data.reader("test")
    logits = infer(model, test_reader, len(test_labels))
    binary = metrics.binary_metrics(test_labels, logits, threshold)
    pred = (logits >= threshold).astype(np.int64)
    report = metrics.classification_report(test_labels, pred, CLASS_NAMES)
    cm = metrics.confusion_matrix(test_labels, pred, 2)
    fpr, tpr, _ = metrics.roc_curve(test_labels, logits)
    step = max(1, len(fpr) // 2000)
    # Evenly spaced over the split, not its first rows: the split keeps file order (sorted rows
    # read HDF5 fastest), so the first rows of the default sample are all photons.
    picked = np.unique(
        np.linspace(0, len(test_labels) - 1, min(embed_rows, len(test_labels))).astype(np.int64)
    )
    features = infer(model, RowSubset(test_reader, picked), len(picked), what="features")
    points, ratio = pca_2d(features)
    embed_labels = test_labels[picked]
    with plots.style(figure_label(run)):
        plots.confusion_matrix(
            metrics.confusion_matrix(test_labels, pred, 2, normalize="true"),
            CLASS_NAMES,
            run.plot_path(f"confusion_{name}.png"),
            title=f"{name}: confusion (rows: true class)",
        )
        plots.scatter_2d(
            points,
            embed_labels,
            CLASS_NAMES,
            run.plot_path(f"embedding_{name}.png"),
            title=f"{name}: PCA of penultimate features ({ratio[0]:.0%} + {ratio[1]:.0%} of variance)",
        )
    return {
        "threshold_logit": float(threshold),
        **binary,
        "report": report,
        "report_md": metrics.format_classification_report(report),
        "confusion": cm.tolist(),
        "embedding_variance_ratio": ratio.tolist(),
        "embedding_class_counts": np.bincount(embed_labels.astype(np.int64), minlength=2).tolist(),
        "roc": {"fpr": fpr[::step].tolist(), "tpr": tpr[::step].tolist()},
        "n_test": int(len(test_labels)),
    }
