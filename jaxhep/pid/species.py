"""Particle species of the ALICE PID task and the column layout of its tables.

Class indices follow `SPECIES`: 0 = pion, 1 = kaon, 2 = proton, 3 = electron.
Every other module of `jaxhep.pid` takes its species order and column names from here.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

SPECIES: tuple[str, ...] = ("pi", "ka", "pr", "el")
N_SPECIES = len(SPECIES)

# PDG Monte Carlo numbering scheme (positive = particle; antiparticles carry a minus sign).
PDG_CODES: tuple[int, ...] = (211, 321, 2212, 11)

# Masses in GeV/c^2, PDG Review of Particle Physics (2024), in SPECIES order.
MASSES_GEV: tuple[float, ...] = (0.13957, 0.49368, 0.93827, 0.000511)

# The 21 feature columns, in the order of the seed data set (001_*.txt).
FEATURES: tuple[str, ...] = (
    "pt",
    "eta",
    "phi",
    "tpc_signal",
    "tpc_nsigma_pi",
    "tpc_nsigma_ka",
    "tpc_nsigma_pr",
    "tpc_nsigma_el",
    "tof_beta",
    "tof_nsigma_pi",
    "tof_nsigma_ka",
    "tof_nsigma_pr",
    "tof_nsigma_el",
    "bayes_prob_pi",
    "bayes_prob_ka",
    "bayes_prob_pr",
    "bayes_prob_el",
    "dca_xy",
    "dca_z",
    "has_tpc",
    "has_tof",
)
LABEL = "mc_pdg"

TPC_NSIGMA: tuple[str, ...] = tuple(f"tpc_nsigma_{s}" for s in SPECIES)
TOF_NSIGMA: tuple[str, ...] = tuple(f"tof_nsigma_{s}" for s in SPECIES)
BAYES_PROBS: tuple[str, ...] = tuple(f"bayes_prob_{s}" for s in SPECIES)
FLAGS: tuple[str, ...] = ("has_tpc", "has_tof")

# Feature-set-embedding groups, in the order of the model's group mask (tpc, tof, bayes, kinematics).
# The detector flags belong to no group: they are the mask itself.
GROUPS: OrderedDict[str, tuple[str, ...]] = OrderedDict(
    tpc=("tpc_signal", *TPC_NSIGMA),
    tof=("tof_beta", *TOF_NSIGMA),
    bayes=BAYES_PROBS,
    kinematics=("pt", "eta", "phi", "dca_xy", "dca_z"),
)

_INDEX_OF_PDG = {code: i for i, code in enumerate(PDG_CODES)}


def labels_from_pdg(pdg: np.ndarray) -> np.ndarray:
    """Class indices (SPECIES order) of PDG codes; the sign (antiparticle) is ignored.

    Args:
      pdg: integer PDG codes, any shape.

    Returns:
      int32 array of the same shape with values in 0..3.

    Raises:
      ValueError: listing every code that is not one of the four species.
    """
    codes = np.abs(np.asarray(pdg).astype(np.int64))
    labels = np.full(codes.shape, -1, dtype=np.int32)
    for code, index in _INDEX_OF_PDG.items():
        labels[codes == code] = index
    if (labels < 0).any():
        unknown = np.unique(np.asarray(pdg)[labels < 0])
        shown = ", ".join(str(int(c)) for c in unknown[:20])
        more = f" and {unknown.size - 20} more" if unknown.size > 20 else ""
        raise ValueError(f"unknown PDG code(s) {shown}{more}; expected ±{', ±'.join(map(str, PDG_CODES))}")
    return labels
