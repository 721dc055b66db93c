"""Read ML4SCI electron / photon HDF5 crops lazily: a grain random-access source over files.

A file holds `X` [N, 32, 32, 2] (float, channels last: energy in GeV, time in ns) and usually
`y` [N] (1 electron, 0 photon). Only the labels are loaded up front (4 bytes a row); images
are read on demand, a batch at a time, whole HDF5 chunks at a time, so memory use does not
grow with the file. The h5py handles are opened lazily in each process and never pickled,
so the source can go to grain's multiprocessing workers.

Labels: from `y` when the file's `y` holds both classes. The real files hold one class each
(`SingleElectronPt50_...`, `SinglePhotonPt50_...`); for a file without `y`, or whose `y` is
a single value, the file name decides (a name containing "electron" -> 1, "photon" -> 0,
case-insensitive), because a constant `y` is what one-class files carry and the name is
what a user checks. A single-valued `y` that contradicts the name is used as the name says,
with a warning; a file whose name names neither particle falls back to its constant `y`.

Every problem with a file is an `InputError(path, problem)` naming the file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from jaxhep.egamma.augment import ChannelStats
from jaxhep.errors import InputError
from jaxhep.pipeline import RowSubset

IMAGE_SHAPE = (32, 32, 2)


def label_from_name(path: str | os.PathLike) -> int | None:
    """1 for a file name containing "electron", 0 for "photon", None otherwise."""
    name = Path(path).name.lower()
    has_e, has_g = "electron" in name, "photon" in name
    if has_e == has_g:
        return None
    return 1 if has_e else 0


def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a directory, expected an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise InputError(path, f"not an HDF5 file, or a corrupt one ({err})") from None


def _check_and_label(path: Path, f: h5py.File, require_labels: bool = True) -> np.ndarray:
    """Validate the file's layout; return its labels [N] int64 (-1 where the file has none and
    `require_labels` is off)."""
    if "X" not in f or not isinstance(f["X"], h5py.Dataset):
        keys = ", ".join(sorted(f.keys())) or "none"
        raise InputError(path, f"no dataset 'X' (keys in the file: {keys})")
    X = f["X"]
    if X.ndim != 4 or tuple(X.shape[1:]) != IMAGE_SHAPE:
        raise InputError(
            path, f"'X' has shape {X.shape}, expected (N, 32, 32, 2) (channels last: energy, time)"
        )
    if X.dtype.kind != "f":
        raise InputError(path, f"'X' has dtype {X.dtype}, expected floating point (float32)")
    n = X.shape[0]
    if n == 0:
        raise InputError(path, "'X' holds no rows")
    step = X.chunks[0] if X.chunks else 64
    for lo in sorted({0, (n // 2) // step * step}):  # the first chunk and one in the middle
        hi = min(n, lo + step)
        try:
            sample = X[lo:hi]
        except OSError as err:
            raise InputError(path, f"cannot read 'X', corrupt file? ({err})") from None
        if not np.isfinite(sample).all():
            raise InputError(path, f"'X' holds NaN or infinite values (in rows {lo}-{hi - 1})")

    from_name = label_from_name(path)
    if "y" not in f:
        if from_name is None and not require_labels:
            return np.full(n, -1, np.int64)
        if from_name is None:
            raise InputError(path, "no dataset 'y' and the file name says neither 'electron' nor 'photon'")
        return np.full(n, from_name, np.int64)
    if not isinstance(f["y"], h5py.Dataset):
        raise InputError(path, "'y' is not a dataset")
    if f["y"].size != n:
        raise InputError(path, f"'y' has {f['y'].size} values but 'X' has {n} rows")
    try:
        y = np.asarray(f["y"][()], np.float64).reshape(-1)
    except (OSError, TypeError, ValueError) as err:
        raise InputError(path, f"cannot read 'y' as numbers ({err})") from None
    if not np.isin(y, (0.0, 1.0)).all():
        raise InputError(path, "'y' holds values other than 0 (photon) and 1 (electron)")
    values = np.unique(y)
    if len(values) == 2 or from_name is None:
        return y.astype(np.int64)
    if int(values[0]) != from_name:
        warnings.warn(
            f"{path}: 'y' is {int(values[0])} everywhere but the file name says "
            f"{'electron' if from_name else 'photon'}; using the file name",
            stacklevel=3,
        )
    return np.full(n, from_name, np.int64)


class EcalImageSource:
    """grain random-access source over one or several ML4SCI HDF5 files, concatenated.

    Row i of the source is row i - offsets[k] of file k. Records are
    {"image": [32, 32, 2] float32, "label": int}; `read_rows(indices)` reads a whole batch.
    `require_labels=False` (prediction) takes a file without `y` whose name names neither
    particle too; its rows get label -1.
    """

    def __init__(self, paths: str | os.PathLike | Sequence[str | os.PathLike], require_labels: bool = True):
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("EcalImageSource needs at least one file")
        labels, self.chunk_rows = [], []
        for path in self.paths:
            with _open(path) as f:
                labels.append(_check_and_label(path, f, require_labels))
                chunks = f["X"].chunks
                self.chunk_rows.append(chunks[0] if chunks else 1)
        self.labels = np.concatenate(labels)  # [N] int64
        self.offsets = np.cumsum([0] + [len(lab) for lab in labels])  # [n_files + 1]
        self._handles: dict[int, tuple[h5py.File, h5py.Dataset]] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __repr__(self) -> str:
        return f"EcalImageSource({len(self)} rows from {len(self.paths)} file(s))"

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"] = {}  # h5py handles are per process
        return state

    def _dataset(self, k: int) -> h5py.Dataset:
        if self._pid != os.getpid():  # forked: handles inherited from the parent are unsafe
            self._handles, self._pid = {}, os.getpid()
        if k not in self._handles:
            f = _open(self.paths[k])
            self._handles[k] = (f, f["X"])
        return self._handles[k][1]

    def _read_file(self, k: int, rows: np.ndarray) -> np.ndarray:
        """Rows [m] (sorted, unique, local to file k) of X -> [m, 32, 32, 2] float32.

        Reads each touched HDF5 chunk once, as a slice (h5py point selections are slow, and a
        chunk is decompressed whole anyway); contiguous files are read in runs of rows.
        """
        ds, step = self._dataset(k), self.chunk_rows[k]
        blocks = rows // step
        starts = np.flatnonzero(
            np.r_[True, blocks[1:] != blocks[:-1]] if step > 1 else np.r_[True, np.diff(rows) != 1]
        )
        ends = np.r_[starts[1:], len(rows)]
        out = np.empty((len(rows), *IMAGE_SHAPE), np.float32)
        try:
            for a, b in zip(starts, ends):
                lo, hi = int(rows[a]), int(rows[b - 1]) + 1
                out[a:b] = ds[lo:hi][rows[a:b] - lo]
        except OSError as err:
            raise InputError(self.paths[k], f"cannot read rows of 'X', corrupt file? ({err})") from None
        if not np.isfinite(out).all():
            raise InputError(self.paths[k], "'X' holds NaN or infinite values")
        return out

    def read_rows(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """A batch: {"image": [n, 32, 32, 2] float32, "label": [n] int32} in the order of `indices`."""
        indices = np.asarray(indices, np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"row indices must lie in [0, {len(self)})")
        unique, inverse = np.unique(indices, return_inverse=True)  # sorted, as h5py wants
        images = np.empty((len(unique), *IMAGE_SHAPE), np.float32)
        file_of = np.searchsorted(self.offsets, unique, side="right") - 1
        for k in np.unique(file_of):
            sel = file_of == k
            images[sel] = self._read_file(int(k), unique[sel] - self.offsets[k])
        return {"image": images[inverse], "label": self.labels[indices].astype(np.int32)}

    def __getitem__(self, i: int) -> dict:
        """One record: {"image": [32, 32, 2] float32, "label": int}."""
        i = int(i)
        if i < 0:
            i += len(self)
        batch = self.read_rows(np.array([i]))
        return {"image": batch["image"][0], "label": int(batch["label"][0])}


class SplitReader(RowSubset):
    """`read_rows` of one split of a source: positions [0, len(rows)) of the split -> rows.

    Wrap it in `augment.AugmentedReader` for augmentation and normalisation; picklable.
    """

    def __init__(self, source: EcalImageSource, rows: np.ndarray):
        super().__init__(source.read_rows, rows)
        self.source = source


def split_indices(
    labels: np.ndarray | int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / validation / test row indices, each sorted [n_k] int64, stratified by label.

    `labels` [N] (e.g. `source.labels`), or an int N for an unstratified split of range(N).
    Each class is shuffled with the seed and cut by `fractions`, so every split holds the
    classes in the same proportion as the whole.
    """
    if isinstance(labels, (int, np.integer)):
        labels = np.zeros(int(labels), np.int64)
    labels = np.asarray(labels)
    fractions = np.asarray(fractions, np.float64)
    if len(fractions) != 3 or (fractions < 0).any() or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, not {tuple(fractions)}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        cuts = np.round(np.cumsum(fractions)[:2] * len(rows)).astype(np.int64)
        for part, piece in zip(parts, np.split(rows, cuts)):
            part.append(piece)
    return tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in parts)


def fit_normalisation(
    source: EcalImageSource,
    train_indices: np.ndarray,
    max_rows: int = 50_000,
    seed: int = 0,
    chunk: int = 4096,
) -> ChannelStats:
    """Per-channel mean and standard deviation over all pixels of (up to max_rows) training rows.

    Only `train_indices` are looked at (the validation and test rows must not leak into the
    normalisation); a seeded random subset when there are more than max_rows, read `chunk`
    rows at a time and accumulated in float64.
    """
    rows = np.asarray(train_indices, np.int64)
    if len(rows) > max_rows:
        rows = np.random.default_rng(seed).choice(rows, max_rows, replace=False)
    rows = np.sort(rows)
    total = np.zeros(2)
    total_sq = np.zeros(2)
    count = 0
    for start in range(0, len(rows), chunk):
        images = source.read_rows(rows[start : start + chunk])["image"].astype(np.float64)
        total += images.sum(axis=(0, 1, 2))
        total_sq += (images**2).sum(axis=(0, 1, 2))
        count += images.shape[0] * images.shape[1] * images.shape[2]
    if count == 0:
        raise ValueError("fit_normalisation needs at least one training row")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return ChannelStats(mean=mean.astype(np.float32), std=np.maximum(std, 1e-6).astype(np.float32))
