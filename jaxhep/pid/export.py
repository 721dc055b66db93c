"""The PID networks of a run as ONNX graphs that take the raw columns.

    python -m experiments.pid export RUN_DIR [--out DIR]

Per finished (model, range) of the run, two layouts:

* `<model>_<range>.onnx`: `columns` float32 [N, 21] (species.FEATURES order, raw values as in
  the table, NaN where a detector did not measure) -> `probabilities` float32 [N, 4] (SPECIES
  order), exactly `load_predictor(...).predict_proba`: the fitted preprocessing
  (`Preprocessor.transform_jax`), the network and the calibration are all inside the graph.
* `o2physics/<model>_<range>/attention_model_<pdg>.onnx` (+ `.json`, and the folder's
  columns_for_training.json and scaling_params.json that O2 reads): the layout of O2Physics'
  Tools/PIDML (`PidONNXModel`): one model per species named by its PDG code, one input
  [N, 21] in the order of the sidecar's `columns_for_training` (O2 AOD column names), output
  `probability` [N, 1] of that species. O2's conventions are taken in: -999 marks a missing
  TPC / TOF value as NaN does (O2Physics pidUtils.h, kTOFMissingSignal), Bayes probabilities
  come in percent (O2's pidBayes tables, `binned_prob_t`), and the sidecar's `data` (O2's
  scaling_params.json: [column, mean, std]) is the identity, because the scaling is already
  inside the graph and a caller that applies it must not change the values.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxhep.calibration import Calibration
from jaxhep.config import from_dict
from jaxhep.errors import InputError
from jaxhep.export import Input, OnnxGraph, float32_twin
from jaxhep.pid.api import PIDPredictor, available_models, load_predictor
from jaxhep.pid.features import Preprocessor
from jaxhep.pid.models import ModelConfig, build_model
from jaxhep.pid.sim.simulate import simulate_tracks
from jaxhep.pid.species import FEATURES, GROUPS, PDG_CODES, SPECIES

# The O2 AOD column of each feature (O2Physics Common/DataModel: aod::track::Pt -> "fPt",
# pidtpc::TPCNSigmaPi -> "fTPCNSigmaPi", pidtofbeta::Beta -> "fBeta", pidbayes::BayesPi -> "fBayesPi").
# The detector flags are no stored column there: they are track.hasTPC() / track.hasTOF().
O2_COLUMNS: dict[str, str] = {
    "pt": "fPt",
    "eta": "fEta",
    "phi": "fPhi",
    "tpc_signal": "fTPCSignal",
    **{f"tpc_nsigma_{s}": f"fTPCNSigma{s.capitalize()}" for s in SPECIES},
    "tof_beta": "fBeta",
    **{f"tof_nsigma_{s}": f"fTOFNSigma{s.capitalize()}" for s in SPECIES},
    **{f"bayes_prob_{s}": f"fBayes{s.capitalize()}" for s in SPECIES},
    "dca_xy": "fDcaXY",
    "dca_z": "fDcaZ",
    "has_tpc": "fHasTPC",
    "has_tof": "fHasTOF",
}
# O2Physics Tools/PIDML/pidUtils.h: kTOFMissingSignal = kTOFMissingBeta = -999, compared with
# almostEqual(..., kEpsilon = 1e-6); the PID response writes -999 for an n_sigma it has not.
O2_MISSING, O2_EPSILON = -999.0, 1e-6
O2_BAYES_PERCENT = 100.0  # O2's Bayesian probabilities are stored in percent
_DETECTOR_COLUMNS = np.array([name in GROUPS["tpc"] or name in GROUPS["tof"] for name in FEATURES])
_BAYES_COLUMNS = np.array([name in GROUPS["bayes"] for name in FEATURES])

EXAMPLE_ROWS = (5, 300)  # the two batch sizes each file is checked on (the batch is dynamic)


def onnx_graphs(
    run_dir: str | os.PathLike,
    models: tuple[str, ...] | None = None,
    ranges: tuple[str, ...] | None = None,
    o2physics: bool = True,
) -> list[OnnxGraph]:
    """The graphs of every finished (model, range) of run `run_dir` (only `models` / `ranges`
    where given): `<model>_<range>` and, with `o2physics`, its four per-species O2 models."""
    run_dir = Path(run_dir)
    pairs = [
        (m, r)
        for m, r in available_models(run_dir)
        if (models is None or m in models) and (ranges is None or r in ranges)
    ]
    if not pairs:
        raise InputError(run_dir / "models", "no finished PID model to export (is the run done?)")
    examples = example_columns()
    graphs = []
    for model, momentum_range in pairs:
        fn = predictor_fn(load_predictor(run_dir, model, momentum_range))
        metadata = {
            "task": "pid",
            "run_id": run_dir.resolve().name,
            "model": model,
            "momentum_range": momentum_range,
            "species": ",".join(SPECIES),
            "feature_columns": ",".join(FEATURES),
            "missing_value": "NaN (or has_tpc / has_tof = 0)",
        }
        graphs.append(
            OnnxGraph(
                f"{model}_{momentum_range}",
                fn,
                (Input("columns", ("N", len(FEATURES))),),
                ("probabilities",),
                [(e,) for e in examples],
                metadata={**metadata, "output": "calibrated species probabilities [N, 4], species order"},
            )
        )
        if o2physics:
            graphs += o2_graphs(fn, examples, metadata, f"o2physics/{model}_{momentum_range}")
    return graphs


def probabilities_fn(net: nnx.Module, preprocessor: Preprocessor, calibration: Calibration | None):
    """columns float32 [N, 21] (raw, NaN = missing) -> probabilities float32 [N, 4], as JAX:
    `preprocessor`, the network `net` (see `export_network`) and the `calibration` in one graph."""
    calibration = calibration or Calibration.identity(len(SPECIES))
    bias = jnp.asarray(calibration.bias, jnp.float32)

    @jax.jit  # one compiled call per example shape when the export checks the file
    def probabilities(columns):
        x, group_mask = preprocessor.transform_jax(columns)
        logits = net({"x": x, "group_mask": group_mask})
        return jax.nn.softmax(logits / calibration.temperature + bias, axis=-1)

    return probabilities


def predictor_fn(predictor: PIDPredictor):
    """`probabilities_fn` of a loaded predictor: the same probabilities as its predict_proba."""
    trained = predictor.trained
    meta = json.loads((trained.directory / "model.json").read_text())
    net = export_network(trained.model, from_dict(ModelConfig, meta["model"]))
    return probabilities_fn(net, predictor.preprocessor, trained.calibration)


class _Identity(nnx.Module):
    """What an eval-mode Dropout computes."""

    def __call__(self, x, rngs=None):
        return x


def export_network(model: nnx.Module, cfg: ModelConfig) -> nnx.Module:
    """A copy of network `model` (built from `cfg`) for conversion: float32 (ONNX Runtime's CPU
    kernels have no bfloat16 matmul; a bfloat16-trained network then is slightly more exact than
    predict_proba), in eval mode, its Dropout layers the identity they are in eval mode (jax2onnx
    replaces Dropout's call with one that takes no `rngs`, which the jaxhep networks pass)."""
    net = float32_twin(model, lambda: build_model(cfg, precision="float32"))
    for path, module in list(nnx.iter_graph(net)):
        if isinstance(module, nnx.Dropout):
            parent = net
            for key in path[:-1]:
                parent = parent[key] if isinstance(key, int) else getattr(parent, key)
            setattr(parent, path[-1], _Identity())
    return net


def from_o2_units(columns):
    """O2-convention columns [N, 21] (FEATURES order) -> jaxhep's: -999 in a TPC / TOF column
    becomes NaN (missing), Bayes percentages become probabilities."""
    missing = jnp.asarray(_DETECTOR_COLUMNS) & (jnp.abs(columns - O2_MISSING) <= O2_EPSILON)
    columns = jnp.where(missing, jnp.nan, columns)
    return jnp.where(jnp.asarray(_BAYES_COLUMNS), columns / O2_BAYES_PERCENT, columns)


def to_o2_units(columns: np.ndarray) -> np.ndarray:
    """jaxhep columns [N, 21] as an O2 caller fills them: missing TPC / TOF values -999, Bayes in %."""
    out = np.array(columns, np.float32)
    out[:, _DETECTOR_COLUMNS] = np.where(
        np.isnan(out[:, _DETECTOR_COLUMNS]), O2_MISSING, out[:, _DETECTOR_COLUMNS]
    )
    out[:, _BAYES_COLUMNS] *= O2_BAYES_PERCENT
    return out


def o2_sidecar(pdg: int, species: str, metadata: dict) -> dict:
    """The JSON beside an O2 model: O2's columns_for_training.json and scaling_params.json in one
    document (keys `columns_for_training` and `data`), and what the model means."""
    columns = [O2_COLUMNS[f] for f in FEATURES]
    return {
        "columns_for_training": columns,
        "data": [[c, 0.0, 1.0] for c in columns],  # identity: the scaling is inside the graph
        "pdg": pdg,
        "species": species,
        "output": f"probability [N, 1] that the track is a {species} (either charge)",
        "missing_value": f"NaN or {O2_MISSING:g} in a TPC / TOF column; fHasTPC / fHasTOF = 0",
        "bayes_units": "percent",
        "jaxhep_columns": list(FEATURES),
        **{k: metadata[k] for k in ("run_id", "model", "momentum_range")},
    }


def o2_graphs(fn, examples, metadata: dict, folder: str) -> list[OnnxGraph]:
    """One graph per species, `folder/attention_model_<pdg>` (O2's file name for PDG `pdg`)."""
    graphs = []
    o2_examples = [(to_o2_units(e),) for e in examples]
    for index, (species, pdg) in enumerate(zip(SPECIES, PDG_CODES, strict=True)):

        def probability(columns, index=index):  # fn is compiled already, the rest is 3 ops
            return fn(from_o2_units(columns))[:, index : index + 1]

        sidecar = o2_sidecar(pdg, species, metadata)
        graphs.append(
            OnnxGraph(
                f"{folder}/attention_model_{pdg}",
                probability,
                (Input("columns", ("N", len(FEATURES))),),
                ("probability",),
                o2_examples,
                metadata={
                    **metadata,
                    "pdg": str(pdg),
                    "feature_columns": ",".join(O2_COLUMNS[f] for f in FEATURES),
                    "output": f"probability [N, 1] of {species}",
                    "missing_value": f"NaN or {O2_MISSING:g}",
                },
                sidecar=sidecar,
                # The two files PidONNXModel reads from the model's folder, shared by its species.
                files={
                    "columns_for_training.json": {"columns_for_training": sidecar["columns_for_training"]},
                    "scaling_params.json": {"data": sidecar["data"]},
                },
            )
        )
    return graphs


def example_columns(sizes: tuple[int, ...] = EXAMPLE_ROWS, seed: int = 7) -> list[np.ndarray]:
    """Raw feature matrices float32 [n, 21] for each n of `sizes`: simulated tracks (some without
    TOF, Bayes or DCA), the first rows edited into the cases the preprocessing treats apart."""
    out = []
    for n in sizes:
        table = simulate_tracks(max(n, 4), seed=seed + n)
        columns = np.stack([table[f] for f in FEATURES], axis=1)[:n]
        out.append(edge_rows(columns))
    return out


def edge_rows(columns: np.ndarray) -> np.ndarray:
    """`columns` [N >= 4, 21] with row 0: TOF flag on but its values NaN; row 1: no TOF flag but
    TOF values present (ignored); row 2: no TPC and no TOF, all NaN; row 3: Bayes and DCA NaN."""
    out = np.array(columns, np.float32)
    index = {f: j for j, f in enumerate(FEATURES)}
    tof = [index[f] for f in GROUPS["tof"]]
    tpc = [index[f] for f in GROUPS["tpc"]]
    out[0, index["has_tof"]], out[0, tof] = 1.0, np.nan
    out[1, index["has_tof"]], out[1, tof] = 0.0, np.where(np.isnan(out[1, tof]), 0.5, out[1, tof])
    out[2, [index["has_tpc"], index["has_tof"]]], out[2, tpc + tof] = 0.0, np.nan
    out[3, [index[f] for f in (*GROUPS["bayes"], "dca_xy", "dca_z")]] = np.nan
    return out
