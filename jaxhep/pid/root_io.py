"""Read the ALICE O2 PID-ML track table (ROOT files of O2Physics' pidMlProducer) into our 21 columns.

O2Physics' `Tools/PIDML/pidMlProducer.cxx` (process function `processMcAll`) fills the table
`PidTracksMc` declared in `Tools/PIDML/pidMl.h`; the analysis framework writes it as the tree
`O2pidtracksmc` in one `DF_<n>` folder per time frame, each column a branch named "f" + the
column's name (`DECLARE_SOA_COLUMN` in O2's `Framework/ASoA.h`). Real data (no MC truth) gives
`O2pidtracksdata`, the same branches without fPdgCode / fIsPhysicalPrimary. The "ML" variants
(`O2pidtracksmcml`, `O2pidtracksdataml`) lack the n-sigma branches and are refused.

Our column   O2 branch(es)                   notes
pt           fPt                             GeV/c, at the track's reference point (the primary vertex)
eta          asinh(fPz / fPt)                pseudorapidity; the table has no eta branch
phi          atan2(fPy, fPx) in [0, 2 pi)
tpc_signal   fTPCSignal                      TPC dE/dx, arbitrary units (MIP ~ 50, as our simulator)
tpc_nsigma_X fTPCNSigmaPi/Ka/Pr/El
tof_beta     fBeta
tof_nsigma_X fTOFNSigmaPi/Ka/Pr/El
bayes_prob_X -                               not in the table: NaN (the Preprocessor makes them uniform)
dca_xy/z     fDcaXY, fDcaZ                   cm
has_tpc      fTPCSignal > 0                  the producer keeps global tracks only: ~always 1
has_tof      fBeta measured                  the table has no hasTOF flag
mc_pdg       fPdgCode                        signed PDG code of the MC particle

Missing values: O2's PID response writes -999 when it has no measurement (`defaultReturnValue`
in O2Physics' `Common/Core/PID/PIDTOF.h`, the returns of `Common/Core/PID/TPCPIDResponse.h`),
the producer wrote -999 for fTOFSignal / fBeta of tracks without TOF until September 2024
(O2Physics #7403; NaN since), and a track not propagated to the vertex has DCA +999
(`Common/Tools/TrackPropagationModule.h`). -999 in any float branch and |DCA| = 999 become NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxhep.errors import InputError
from jaxhep.pid.species import BAYES_PROBS, FEATURES, LABEL, PDG_CODES, SPECIES

LABELLED_TREE = "O2pidtracksmc"
UNLABELLED_TREE = "O2pidtracksdata"
ML_ONLY_TREES = ("O2pidtracksmcml", "O2pidtracksdataml")  # no n-sigma branches
FOLDER_PREFIX = "DF_"  # one folder per time frame ("data frame") in an AO2D / derived-data file

MISSING = -999.0  # O2's "no measurement" (see the module docstring)
NOT_PROPAGATED_DCA_CM = 999.0  # Common/Tools/TrackPropagationModule.h

_O2_SPECIES = {"pi": "Pi", "ka": "Ka", "pr": "Pr", "el": "El"}
# Our columns copied from one O2 branch each.
DIRECT: dict[str, str] = {
    "pt": "fPt",
    "tpc_signal": "fTPCSignal",
    **{f"tpc_nsigma_{s}": f"fTPCNSigma{_O2_SPECIES[s]}" for s in SPECIES},
    "tof_beta": "fBeta",
    **{f"tof_nsigma_{s}": f"fTOFNSigma{_O2_SPECIES[s]}" for s in SPECIES},
    "dca_xy": "fDcaXY",
    "dca_z": "fDcaZ",
}
MOMENTUM = ("fPx", "fPy", "fPz")  # for eta and phi
PDG_BRANCH = "fPdgCode"
ABSENT = BAYES_PROBS  # features the O2 table does not hold

_INSTALL = 'reading ROOT files needs uproot: pip install -e ".[root]"'
_TREE_CLASSES = ("TTree", "ROOT::RNTuple")


def _uproot(path: Path):
    try:
        import uproot
    except ImportError:
        raise InputError(path, _INSTALL) from None
    return uproot


def read_o2_table(path: Path, *, require_label: bool = True) -> dict[str, np.ndarray]:
    """The O2 PID-ML tracks of one ROOT file, every `DF_*` folder's tree in file order.

    Tracks of species other than pi/K/p/e (muons, light nuclei, ...: O2 keeps every
    reconstructed track with an MC particle) are dropped, with a printed count per PDG code.

    Returns:
      dict with the 21 FEATURES as float64 [N] (NaN = not measured; has_tpc / has_tof 0/1) and,
      when the tree has fPdgCode, mc_pdg as float64 [N].

    Raises:
      InputError: uproot missing, a file uproot cannot read, no (or only an ML-only) PID tree, a
        missing or non-numeric branch, no rows, fPdgCode required but absent.
    """
    uproot = _uproot(path)
    try:
        with uproot.open(path) as file:
            trees = _trees(path, file, require_label)
            raw = _concatenate([_branches(path, where, tree, require_label) for where, tree in trees])
    except InputError:
        raise
    except Exception as err:  # uproot's errors for a corrupt or cut file share no narrower base class
        raise InputError(path, f"unreadable or corrupt ROOT file ({type(err).__name__}: {err})") from None
    if len(raw["fPt"]) == 0:
        raise InputError(path, f"no rows (its {trees[0][0].split('/')[-1]} trees are empty)")
    if PDG_BRANCH in raw:
        raw = _keep_four_species(path, raw)
    return _columns(raw)


def _trees(path: Path, file, require_label: bool) -> list[tuple[str, object]]:
    """(folder/tree, tree) of every DF_* folder, or of the top level when there is none."""
    names = (LABELLED_TREE,) if require_label else (LABELLED_TREE, UNLABELLED_TREE)
    classes = file.classnames(recursive=False, cycle=False)
    folders = [key for key, cls in classes.items() if key.startswith(FOLDER_PREFIX) and cls == "TDirectory"]
    places = [(f"{key}/", file[key]) for key in folders] or [("", file)]
    chosen = None
    out = []
    for prefix, directory in places:
        here = {k: c for k, c in directory.classnames(recursive=False, cycle=False).items()}
        trees = [name for name in names if here.get(name) in _TREE_CLASSES]
        if not trees:
            raise InputError(path, _no_tree_problem(prefix, here, names, require_label, len(folders)))
        chosen = chosen or trees[0]
        if chosen not in trees:
            raise InputError(path, f"{prefix}holds {trees[0]} but an earlier folder holds {chosen}")
        out.append((prefix + chosen, directory[chosen]))
    return out


def _no_tree_problem(prefix: str, here: dict, names: tuple, require_label: bool, n_folders: int) -> str:
    where = f"folder {prefix.rstrip('/')}" if prefix else f"top level (no {FOLDER_PREFIX}* folder)"
    ml_only = [name for name in ML_ONLY_TREES if name in here]
    if ml_only:
        return (
            f"{where} holds {ml_only[0]}, the ML-only table without n-sigma branches; produce "
            f"{LABELLED_TREE} (pidMlProducer's processMcAll) instead"
        )
    if require_label and UNLABELLED_TREE in here:
        return f"{where} holds {UNLABELLED_TREE} (real data, no fPdgCode): no labels to train on"
    shown = ", ".join(sorted(here)[:8]) or "nothing"
    return f"no {' or '.join(names)} tree in the {where} (it holds: {shown})"


def _branches(path: Path, where: str, tree, require_label: bool) -> dict[str, np.ndarray]:
    present = set(tree.keys())
    needed = [*DIRECT.values(), *MOMENTUM]
    if require_label or PDG_BRANCH in present:
        needed.append(PDG_BRANCH)
    missing = [name for name in needed if name not in present]
    if missing:
        raise InputError(path, f"{where}: missing branch(es) {', '.join(missing)}")
    arrays = tree.arrays(needed, library="np")
    bad = [f"{name} ({arrays[name].dtype})" for name in needed if arrays[name].dtype.kind not in "biuf"]
    if bad:
        raise InputError(path, f"{where}: non-numeric branch(es) {', '.join(bad)}")
    return arrays


def _concatenate(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    keys = set.intersection(*(set(part) for part in parts))
    return {key: np.concatenate([part[key] for part in parts]) for key in sorted(keys)}


def _keep_four_species(path: Path, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    codes = raw[PDG_BRANCH].astype(np.int64)
    keep = np.isin(np.abs(codes), PDG_CODES)
    if keep.all():
        return raw
    other, counts = np.unique(codes[~keep], return_counts=True)
    order = np.argsort(-counts, kind="stable")[:6]
    shown = ", ".join(f"{int(other[i])}: {int(counts[i])}" for i in order)
    more = f" and {len(other) - len(order)} more code(s)" if len(other) > len(order) else ""
    print(f"[pid] {path}: dropped {int((~keep).sum())} track(s) of other species (PDG {shown}{more})")
    if not keep.any():
        raise InputError(path, f"no track of the four species ({', '.join(SPECIES)})")
    return {key: values[keep] for key, values in raw.items()}


def _measured(values: np.ndarray) -> np.ndarray:
    """float64 copy with O2's -999 "no measurement" as NaN."""
    values = values.astype(np.float64)
    return np.where(values == MISSING, np.nan, values)


def _columns(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Our FEATURES (+ mc_pdg) from the O2 branches, as the module docstring's table says."""
    out = {name: _measured(raw[branch]) for name, branch in DIRECT.items()}
    for name in ("dca_xy", "dca_z"):
        out[name] = np.where(np.abs(out[name]) == NOT_PROPAGATED_DCA_CM, np.nan, out[name])
    px, py, pz = (_measured(raw[branch]) for branch in MOMENTUM)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["eta"] = np.arcsinh(pz / out["pt"])
    out["phi"] = np.mod(np.arctan2(py, px), 2.0 * np.pi)
    has_tpc = out["tpc_signal"] > 0  # NaN compares False
    out["tpc_signal"] = np.where(has_tpc, out["tpc_signal"], np.nan)
    out["has_tpc"] = has_tpc.astype(np.float64)
    out["has_tof"] = np.isfinite(out["tof_beta"]).astype(np.float64)
    for name in ABSENT:
        out[name] = np.full(len(px), np.nan)
    columns = {name: out[name] for name in FEATURES}
    if PDG_BRANCH in raw:
        columns[LABEL] = raw[PDG_BRANCH].astype(np.float64)
    return columns
