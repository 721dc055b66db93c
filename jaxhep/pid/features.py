"""What the PID models eat: stratified splits and the fitted preprocessing.

`Preprocessor` turns the 21 raw columns into a dense float32 matrix x [N, 21] (FEATURES
order), a detector group mask [N, 4] (groups tpc, tof, bayes, kinematics) and labels.
Its statistics come from the training rows only and are saved with the model
(`to_dict` / `from_dict`, JSON-serialisable).

Rules (the seed's, see docs/DATA.md §2):
  * Bayes probabilities missing -> 0.25 (uniform), then standardised;
  * kinematics (pt, eta, phi, dca_xy, dca_z) missing -> the training median, then standardised;
  * TPC / TOF columns standardised with the mean/std of the training rows that have the
    detector; missing values (NaN, or flag 0) -> 0 after standardisation: no signal;
  * has_tpc / has_tof stay raw 0/1; group_mask = (has_tpc, has_tof, 1, 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxhep.pid.species import FEATURES, FLAGS, GROUPS, LABEL, labels_from_pdg

_CONTINUOUS = tuple(name for name in FEATURES if name not in FLAGS)
# Detector columns and the flag that says the detector measured the track.
_DETECTOR = {**{name: "has_tpc" for name in GROUPS["tpc"]}, **{name: "has_tof" for name in GROUPS["tof"]}}
_FORMAT_VERSION = 2

# Heavy-tailed columns are compressed before standardisation, or the informative core
# would be squeezed into a sliver of the unit range: DCAs of primaries are ~10 um wide
# with secondaries out to mm, n_sigma runs from ~0 to ~100 for wrong hypotheses, dE/dx
# and pT span decades. Monotonic maps keep every ordering the networks could use.
_NSIGMA_SCALE = 3.0  # asinh(n / 3): linear inside +-3 sigma, logarithmic outside
_DCA_SCALE_CM = 0.005  # asinh(dca / 50 um): linear for primaries, log for secondaries
_LOG_COLUMNS = ("pt", "tpc_signal")
_BAYES_FILL = 0.25  # a missing Bayes probability: uniform over the four species


def _compress(name: str, values, xp=np):
    """The tail compression of column `name`; `xp`: numpy, or jax.numpy for `transform_jax`."""
    if name in _LOG_COLUMNS:
        return xp.log(xp.maximum(values, 1e-6))
    if "nsigma" in name:
        return xp.arcsinh(values / _NSIGMA_SCALE)
    if name.startswith("dca_"):
        return xp.arcsinh(values / _DCA_SCALE_CM)
    return values


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices in two with every class split in the same proportion.

    The convention of sklearn's train_test_split(test_size=fraction): `fraction` is the
    share of each class that goes to the *second* part.

    Args:
      labels: [N] class labels.
      fraction: 0 < fraction < 1; class c puts round(fraction * n_c) rows into idx_b
        (0.2 for the 80/20 train/test split).
      seed: RNG seed; the split is deterministic for (labels, fraction, seed).

    Returns:
      (idx_a, idx_b): sorted, disjoint int64 index arrays into `labels` covering all rows.
      To split a part again (validation), pass labels[idx_a] and index idx_a with the result.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    in_b = np.zeros(labels.shape[0], dtype=bool)
    for cls in np.unique(labels):
        rows = np.flatnonzero(labels == cls)
        in_b[rng.choice(rows, size=int(round(fraction * rows.size)), replace=False)] = True
    return np.flatnonzero(~in_b).astype(np.int64), np.flatnonzero(in_b).astype(np.int64)


def momentum_range_mask(pt: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Boolean [N]: lo <= pT < hi (GeV/c). NaN pT is outside every range."""
    pt = np.asarray(pt)
    return (pt >= lo) & (pt < hi)


def _rows(values: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values if idx is None else values[idx]


class Preprocessor:
    """Missing-value filling and standardisation fitted on the training rows.

    Attributes (after `fit`), all keyed by column name: `mean`, `std` (continuous columns)
    and `median` (kinematics columns).
    """

    def __init__(self) -> None:
        self.mean: dict[str, float] = {}
        self.std: dict[str, float] = {}
        self.median: dict[str, float] = {}

    @property
    def fitted(self) -> bool:
        return bool(self.mean)

    def fit(self, columns: dict[str, np.ndarray], idx: np.ndarray) -> Preprocessor:
        """Compute medians, means and standard deviations from rows `idx` [M] only."""
        idx = np.asarray(idx)
        if idx.size == 0:
            raise ValueError("cannot fit the preprocessor on zero training rows")
        for name in GROUPS["kinematics"]:
            values = _rows(columns[name], idx)
            present = values[np.isfinite(values)]
            self.median[name] = float(np.median(present)) if present.size else 0.0
        for name in _CONTINUOUS:
            values = self._filled(name, _rows(columns[name], idx))
            if name in _DETECTOR:  # statistics of the rows where the detector measured the track
                values = values[_rows(columns[_DETECTOR[name]], idx) > 0]
            present = values[np.isfinite(values)]
            mean = float(present.mean()) if present.size else 0.0
            std = float(present.std()) if present.size else 1.0
            self.mean[name] = mean
            self.std[name] = std if std > 0.0 and np.isfinite(std) else 1.0
        return self

    def _filled(self, name: str, values: np.ndarray) -> np.ndarray:
        """Apply the fill rule of `name` (TPC/TOF columns keep their NaNs), then compress tails."""
        if name in GROUPS["bayes"]:
            values = np.where(np.isnan(values), _BAYES_FILL, values)
        elif name in self.median:
            values = np.where(np.isnan(values), self.median[name], values)
        return _compress(name, values)

    def transform(
        self, columns: dict[str, np.ndarray], idx: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Model inputs for rows `idx` (all rows if None).

        Returns:
          dict with x float32 [N, 21] (FEATURES order), group_mask float32 [N, 4] (tpc, tof,
          bayes, kinematics) and, when `columns` has mc_pdg, label int32 [N].
        """
        if not self.fitted:
            raise RuntimeError("Preprocessor.transform called before fit (or from_dict)")
        flags = {name: np.nan_to_num(_rows(columns[name], idx)) for name in FLAGS}
        n = flags["has_tpc"].shape[0]
        x = np.empty((n, len(FEATURES)), dtype=np.float32)
        for j, name in enumerate(FEATURES):
            if name in FLAGS:
                x[:, j] = flags[name]
                continue
            values = (self._filled(name, _rows(columns[name], idx)) - self.mean[name]) / self.std[name]
            if name in _DETECTOR:
                values = np.where(np.isfinite(values) & (flags[_DETECTOR[name]] > 0), values, 0.0)
            x[:, j] = values
        ones = np.ones(n)
        group_mask = np.stack([flags["has_tpc"] > 0, flags["has_tof"] > 0, ones, ones], axis=1)
        out = dict(x=x, group_mask=group_mask.astype(np.float32))
        if LABEL in columns:
            pdg = np.asarray(columns[LABEL]) if idx is None else np.asarray(columns[LABEL])[idx]
            out["label"] = labels_from_pdg(pdg)
        return out

    def transform_jax(self, columns):
        """`transform`'s x and group_mask as a pure JAX function of the raw feature matrix, for
        graphs that carry the preprocessing inside (ONNX export: a C++ caller feeds raw columns).

        Args:
          columns: float32 [N, 21], raw values in FEATURES order; NaN where a value is missing.

        Returns:
          (x float32 [N, 21], group_mask float32 [N, 4]): equal to `transform(...)["x"]` and
          `["group_mask"]` up to float32 rounding (numpy computes in float64, then rounds).
        """
        import jax.numpy as jnp

        if not self.fitted:
            raise RuntimeError("Preprocessor.transform_jax called before fit (or from_dict)")
        columns = jnp.asarray(columns, jnp.float32)
        flags = {name: jnp.nan_to_num(columns[:, FEATURES.index(name)]) for name in FLAGS}
        out = []
        for j, name in enumerate(FEATURES):
            values = columns[:, j]
            if name in FLAGS:
                out.append(flags[name])
                continue
            if name in _DETECTOR:
                # `transform` zeroes a detector value after standardising when it is not finite or
                # its flag is 0; compress() keeps finiteness, so the same test is made on the raw
                # value, and the dropped ones are replaced first: no NaN flows through the graph.
                present = jnp.isfinite(values) & (flags[_DETECTOR[name]] > 0)
                values = jnp.where(present, values, 1.0)
            elif name in GROUPS["bayes"]:
                values = jnp.where(jnp.isnan(values), _BAYES_FILL, values)
            else:
                values = jnp.where(jnp.isnan(values), self.median[name], values)
            values = (_compress(name, values, jnp) - self.mean[name]) / self.std[name]
            out.append(jnp.where(present, values, 0.0) if name in _DETECTOR else values)
        x = jnp.stack(out, axis=1).astype(jnp.float32)
        present = [(flags[name] > 0).astype(jnp.float32) for name in FLAGS]
        ones = jnp.ones_like(present[0])
        return x, jnp.stack([*present, ones, ones], axis=1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (plain floats and strings)."""
        return dict(
            version=_FORMAT_VERSION,
            features=list(FEATURES),
            mean=dict(self.mean),
            std=dict(self.std),
            median=dict(self.median),
        )

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Preprocessor:
        """Inverse of `to_dict`; refuses a state written for another feature layout."""
        if state.get("version") != _FORMAT_VERSION or list(state.get("features", [])) != list(FEATURES):
            raise ValueError("preprocessor state was written for a different feature layout/version")
        out = cls()
        out.mean = {k: float(v) for k, v in state["mean"].items()}
        out.std = {k: float(v) for k, v in state["std"].items()}
        out.median = {k: float(v) for k, v in state["median"].items()}
        return out
