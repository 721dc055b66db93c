"""Reading DUNE NPZ files (the seed's matched-cluster layout, `jaxhep.dune.sim.simulate`): checked, lazy.

An NPZ is a zip archive of .npy members. A member stored without compression (np.savez, what the
simulator writes) is memory-mapped in place: opening a 50 k-event file costs nothing and a batch
reads only its rows. A compressed member (np.savez_compressed) cannot be mapped; `load_npz` then
reads it into memory, and `iter_chunks` decompresses it as a stream, chunk by chunk, so a file
larger than memory can still be read through once per epoch. Store large files uncompressed.

Every problem is an `InputError(path, problem)` naming the file: missing file, not a zip / corrupt
or truncated archive, missing keys (the keys present are listed), a shape that does not match the
layout, rows that disagree between keys, NaN or infinite values. Small arrays (labels,
directions) are checked for NaNs on opening; images are checked batch by batch as they are read,
so that opening a large file stays cheap.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from jaxhep.errors import InputError

# key -> (allowed dtype kinds, shape after the row axis). Unknown keys are accepted as they are.
SCHEMA: dict[str, tuple[str, tuple[int, ...]]] = {
    "images_u": ("f", (128, 16)),
    "images_v": ("f", (128, 16)),
    "images_x": ("f", (128, 16)),
    "volume_x": ("f", (128, 64)),
    "direction": ("f", (3,)),
    "energy": ("f", ()),
    "interaction": ("iub", ()),
    "nu_direction": ("f", (3,)),
    "nu_energy": ("f", ()),
    "vertex": ("f", (3,)),
    "cluster_adc": ("f", (3,)),
    "cluster_n_tps": ("iu", (3,)),
    "mt_images": ("f", (128, 16)),
    "mt_label": ("iub", ()),
    "mt_event": ("iu", ()),
    "mt_primary_fraction": ("f", ()),
    "mt_n_tps": ("iu", ()),
}
DIRECTION_KEYS = ("images_u", "images_v", "images_x", "direction", "energy")
CHANNEL_KEYS = ("volume_x", "interaction", "energy")
MAINTRACK_KEYS = ("mt_images", "mt_label")


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.exists():
        raise InputError(path, "file not found")
    if not path.is_file():
        raise InputError(path, "not a regular file")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise InputError(path, f"not a valid NPZ (zip) archive, or a truncated one ({err})") from None


def list_keys(path: str | os.PathLike) -> list[str]:
    """The array names held by an NPZ file."""
    path = Path(path)
    with _open_zip(path) as zf:
        return sorted(name[:-4] for name in zf.namelist() if name.endswith(".npy"))


def _read_header(fh) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(fh)
    raise ValueError(f"unsupported .npy format version {version}")


def _member(path: Path, zf: zipfile.ZipFile, key: str, mmap: bool) -> np.ndarray:
    """One member as an array: memory-mapped when stored uncompressed (and mmap), else read."""
    info = zf.getinfo(key + ".npy")
    try:
        if mmap and info.compress_type == zipfile.ZIP_STORED:
            with open(path, "rb") as f:
                f.seek(info.header_offset)
                local = f.read(30)
                if local[:4] != b"PK\x03\x04":
                    raise ValueError("bad local header")
                name_len, extra_len = struct.unpack("<HH", local[26:30])
                f.seek(info.header_offset + 30 + name_len + extra_len)
                shape, fortran, dtype = _read_header(f)
                offset = f.tell()
            if dtype.hasobject:
                raise ValueError("object arrays are not supported")
            if int(np.prod(shape)) == 0 or not shape:
                with zf.open(info) as fh:
                    return np.lib.format.read_array(fh, allow_pickle=False)
            return np.memmap(
                path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C"
            )
        with zf.open(info) as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise InputError(path, f"member {key!r} is unreadable or truncated ({err})") from None


def read_metadata(path: str | os.PathLike) -> dict | None:
    """The simulator's JSON metadata of an NPZ file, or None when it has none (e.g. real data)."""
    path = Path(path)
    with _open_zip(path) as zf:
        if "metadata.npy" not in zf.namelist():
            return None
        value = _member(path, zf, "metadata", mmap=False)
    try:
        return json.loads(str(value))
    except json.JSONDecodeError as err:
        raise InputError(path, f"metadata is not JSON ({err})") from None


def _check_layout(path: Path, layout: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
    """Shapes and dtypes (key -> (shape, dtype)) against SCHEMA, and equal row counts per group."""
    for key, (shape, dtype) in layout.items():
        if key not in SCHEMA:
            continue
        kinds, trailing = SCHEMA[key]
        if len(shape) != 1 + len(trailing) or tuple(shape[1:]) != trailing:
            expected = ", ".join(["rows", *map(str, trailing)])
            raise InputError(path, f"{key!r} has shape {tuple(shape)}, expected ({expected})")
        if dtype.kind not in kinds:
            raise InputError(path, f"{key!r} has dtype {dtype}, expected kind {kinds!r}")
    for group in ("event", "mt"):
        rows = {k: s[0] for k, (s, _) in layout.items() if len(s) and k.startswith("mt_") == (group == "mt")}
        if len(set(rows.values())) > 1:
            raise InputError(path, f"keys disagree on the number of rows: {rows}")


def _bad_rows(values: np.ndarray) -> np.ndarray:
    """[n] bool: the rows of float `values` [n, ...] holding NaN or inf ([1] for a 0-d array)."""
    if not values.ndim:
        return ~np.isfinite(values.reshape(1))
    return ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)


def _count_bad_rows(path: Path, key: str, chunk_rows: int = 4096) -> tuple[int, int, int]:
    """(bad rows, first bad row, rows) of member `key` of the whole file, read chunk by chunk."""
    with _open_zip(path) as zf:
        stream = _Stream(path, zf, key)
        try:
            total, count, first = stream.shape[0], 0, -1
            for start in range(0, total, chunk_rows):
                bad = np.flatnonzero(_bad_rows(stream.read(min(chunk_rows, total - start))))
                if bad.size and first < 0:
                    first = start + int(bad[0])
                count += bad.size
        finally:
            stream.close()
    return count, first, total


def check_finite(
    path: str | os.PathLike, key: str, values: np.ndarray, rows: np.ndarray | None = None
) -> None:
    """Raise InputError naming the file, key, bad rows and first bad row when float `values` hold NaN or inf.

    `values` is the whole member `key` of the NPZ `path`, or (with `rows`, their row numbers) some of
    its rows: a chunk or a batch. Then, on finding a bad row, the whole member is read once more, so
    that the message counts the bad rows of the file and gives its first, not those of the chunk.
    """
    if values.dtype.kind != "f":
        return
    bad = _bad_rows(values)
    if not np.any(bad):
        return
    if rows is None:
        count, first, total = int(bad.sum()), int(np.flatnonzero(bad)[0]), len(bad)
    else:  # a chunk or a batch: the whole member is read again, only on this error
        count, first, total = _count_bad_rows(Path(path), key)
    raise InputError(
        path,
        f"{key!r} holds NaN or infinite values in {count} of {total} row(s), first row {first} "
        "(rows count from 0); drop or repair those rows",
    )


def load_npz(
    path: str | os.PathLike, keys: Sequence[str] | None = None, mmap: bool = True
) -> dict[str, np.ndarray]:
    """Arrays of an NPZ file by key, checked against the layout (simulate.py's docstring).

    Args:
      path: the .npz file.
      keys: the keys needed (all when None); a missing one raises InputError listing those present.
      mmap: memory-map members stored uncompressed (read-only np.memmap); compressed ones are read.

    Returns:
      dict key -> array (rows first). Arrays with at most 2 dimensions are checked for NaN/inf
      here; images are checked as they are read (NpzSource.read_rows, iter_chunks).
    """
    path = Path(path)
    with _open_zip(path) as zf:
        present = sorted(name[:-4] for name in zf.namelist() if name.endswith(".npy"))
        wanted = list(present) if keys is None else list(keys)
        missing = [k for k in wanted if k not in present]
        if missing:
            raise InputError(
                path, f"missing key(s) {', '.join(missing)}; the file holds {', '.join(present) or 'none'}"
            )
        arrays = {k: _member(path, zf, k, mmap) for k in wanted}
    _check_layout(path, {k: (a.shape, a.dtype) for k, a in arrays.items()})
    for key, a in arrays.items():
        if a.ndim <= 2:
            check_finite(path, key, np.asarray(a))
    return arrays


class NpzSource:
    """Random-access rows of an NPZ file over `keys` (all with the same number of rows).

    grain-compatible (`len`, `source[i]`), and `read_rows(indices)`, the batch reader that
    `jaxhep.pipeline.training_batches` maps over batches of row indices. Members are memory-mapped,
    so a batch reads only its rows; float16 members (volume_x) come out as float32. Picklable: a
    copy re-opens the file (grain worker processes).
    """

    def __init__(self, path: str | os.PathLike, keys: Sequence[str] = DIRECTION_KEYS):
        self.path, self.keys = Path(path), tuple(keys)
        self._arrays = load_npz(self.path, self.keys)
        lengths = {len(a) for a in self._arrays.values()}
        if len(lengths) != 1:
            raise InputError(self.path, f"keys {self.keys} disagree on the number of rows")
        self._n = lengths.pop()

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in self.read_rows(np.array([index])).items()}

    def read_rows(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Rows `indices` [b] of every key, dict key -> [b, ...] (in the order asked)."""
        idx = np.asarray(indices, np.int64).reshape(-1)
        if idx.size and (idx.min() < -self._n or idx.max() >= self._n):
            raise IndexError(f"{self.path}: row indices outside [0, {self._n})")
        idx = np.where(idx < 0, idx + self._n, idx)
        order = np.argsort(idx, kind="stable")  # ascending reads are kinder to a memory map
        out = {}
        for key, a in self._arrays.items():
            rows = np.empty((idx.size, *a.shape[1:]), np.float32 if a.dtype == np.float16 else a.dtype)
            rows[order] = a[idx[order]]
            check_finite(self.path, key, rows, idx)
            out[key] = rows
        return out

    def __getstate__(self):
        return {"path": self.path, "keys": self.keys}

    def __setstate__(self, state):
        self.__init__(state["path"], state["keys"])


def balanced_indices(labels: np.ndarray, seed: int, n_per_class: int | None = None) -> np.ndarray:
    """Row indices [k * n] with n rows of each of the k classes in `labels` [N], shuffled.

    n defaults to the smallest class (the larger ones are subsampled without replacement); a larger
    n_per_class draws the smaller classes with replacement. Deterministic for the seed.
    """
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    if classes.size == 0:
        return np.zeros(0, np.int64)
    n = int(counts.min()) if n_per_class is None else int(n_per_class)
    picked = [rng.choice(np.flatnonzero(labels == c), n, replace=n > cnt) for c, cnt in zip(classes, counts)]
    return rng.permutation(np.concatenate(picked)).astype(np.int64)


class _Stream:
    """Sequential row reader of one member: a slice of its memory map or a decompressing stream."""

    def __init__(self, path: Path, zf: zipfile.ZipFile, key: str):
        self.path, self.key = path, key
        info = zf.getinfo(key + ".npy")
        if info.compress_type == zipfile.ZIP_STORED:
            self.array, self.fh = _member(path, zf, key, mmap=True), None
            self.shape, self.dtype, self.pos = self.array.shape, self.array.dtype, 0
        else:
            self.array, self.fh = None, zf.open(info)
            try:
                self.shape, fortran, self.dtype = _read_header(self.fh)
            except (ValueError, OSError, EOFError, zlib.error) as err:
                raise InputError(path, f"member {key!r} is unreadable ({err})") from None
            if fortran or not self.shape:
                raise InputError(path, f"member {key!r} cannot be streamed (Fortran order or 0-d)")
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def read(self, n: int) -> np.ndarray:
        if self.fh is None:
            out = np.array(self.array[self.pos : self.pos + n])
            self.pos += n
            return out
        try:
            data = self.fh.read(n * self.row_bytes)
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as err:
            raise InputError(self.path, f"member {self.key!r} is unreadable or truncated ({err})") from None
        if len(data) != n * self.row_bytes:
            raise InputError(self.path, f"member {self.key!r} is truncated")
        return np.frombuffer(data, self.dtype).reshape(n, *self.shape[1:])

    def close(self):
        if self.fh is not None:
            self.fh.close()


def iter_chunks(
    path: str | os.PathLike, keys: Sequence[str] = DIRECTION_KEYS, chunk_rows: int = 4096
) -> Iterator[dict[str, np.ndarray]]:
    """Stream an NPZ file in row chunks (dict key -> [<= chunk_rows, ...]), in file order.

    Memory stays at one chunk whatever the file size: uncompressed members are sliced from their
    memory map, compressed ones decompressed as a stream. Each chunk is checked for NaN/inf.
    """
    path = Path(path)
    with _open_zip(path) as zf:
        present = [name[:-4] for name in zf.namelist() if name.endswith(".npy")]
        missing = [k for k in keys if k not in present]
        if missing:
            raise InputError(
                path, f"missing key(s) {', '.join(missing)}; the file holds {', '.join(sorted(present))}"
            )
        streams = [_Stream(path, zf, k) for k in keys]
        try:
            _check_layout(path, {s.key: (s.shape, s.dtype) for s in streams})
            n = {s.shape[0] for s in streams}
            if len(n) != 1:
                raise InputError(path, f"keys {tuple(keys)} disagree on the number of rows")
            total = n.pop()
            for start in range(0, total, chunk_rows):
                m = min(chunk_rows, total - start)
                chunk = {}
                for s in streams:
                    values = s.read(m)
                    check_finite(path, s.key, values, np.arange(start, start + m))
                    chunk[s.key] = values.astype(np.float32) if values.dtype == np.float16 else values
                yield chunk
        finally:
            for s in streams:
                s.close()
