"""A folder of ml_for_pointing cluster files -> one NPZ in our layout (`jaxhep.dune.io`), made once.

The DUNE group's `dune-sn-online-pointing/ml_for_pointing` trains on per-plane cluster files that
`online-pointing-utils` (`python/app/generate_cluster_arrays.py`) writes; their reader is
`python/data_loader.py`. `python -m experiments.dune direction --data FOLDER` (and `maintrack`)
converts such a folder here, once, into an uncompressed NPZ under the data directory, and trains on
that; a changed folder (file names, sizes, mtimes) gets a new conversion.

Files, per plane P of U, V, X, flat in the folder or (when none is flat) in its P/ subfolder:

    clusters_planeP_batch*.npz   older batched layout (11 or 12 metadata columns, no match_id)
    *_planeP.npz                 one file per source file, P/ subfolders (13, 14 or 18 columns)

each holding `images` [n, 128, W] (time tick, channel; W = 16, or 32 since November 2025) and
`metadata` [n, C] float32. Nothing is loaded with pickle.

Metadata columns, as the writer's code fills them (its history gives each width):

    C = 12       0 is_marley, 1 is_main_track, 2 is_es, 3-5 position, 6-8 momentum, 9 E_nu,
                 10 particle energy, 11 plane; C = 11 has no plane (their README: no is_es either);
                 of both we read only is_main_track, column 1 in every description
    C = 13       0 event, 1 is_marley, 2 is_main_track, 3 is_es, 4-6 true position (cm),
                 7-9 true momentum of the cluster's dominant particle (GeV/c, detector frame),
                 10 cluster energy from its ADC, 11 particle energy, 12 plane (0 U, 1 V, 2 X)
    C = 14       the same + 13 match_id (pairs an X cluster with its U and V clusters; -1 none)
    C = 18       the same + 14 E_nu (MeV, -1 unknown), 15-17 neutrino momentum

data_loader.py's docstring (momentum at 6-8, column 0 a flag) describes the 11/12-column files; its
code (momentum at 7-9, column 0 the event id, match_id at 13) the 13/14-column ones; we follow the
code, which agrees with the writer for the files with match_id. One exception: its main-track label
(`extract_labels_for_mt_identification`) is column 1 at every width, which the writer fills with
is_marley from 13 columns on; we take is_main_track where the writer puts it (column 2), as their
three-plane loaders do.

What we write:

- direction: X main-track clusters of ES MARLEY events (columns 1, 2, 3 all 1, the selection of
  their matched three-plane loader) paired with the U and V clusters of the same (event, match_id)
  in the files of the same name, as their `load_three_plane_matched` does; it needs match_id (14 or
  18 columns). images_u/v/x, direction = the unit true momentum in their (LArSoft) detector frame: x
  along the drift as ours but global, not the distance from the anode, y up, z along the beam (their
  images are flipped per anode side to follow that frame, so the moments baseline, built on our wire
  geometry, is only indicative on these files), energy = the electron's kinetic energy from that
  momentum, sqrt(p^2 + m^2) - m in MeV, our `energy` (their column 11 is, in the writer's code since
  October 2025, the ADC-estimated energy the particle deposited in the cluster, neither its kinetic
  nor its total energy), vertex = true position in mm, interaction = 0 (ES flag 1) / 1, and with 18
  columns nu_energy (MeV, -1 unknown) and nu_direction (when every row has a neutrino momentum).
- maintrack: every X cluster: mt_images, mt_label = is_main_track, mt_event = one id per (file,
  event column); a running id per cluster without an event column (11, 12).
- channel: their channel-tagging volumes (208 x 1242 TP occupancy, ES and CC in separate folders,
  metadata as pickled dicts) have nothing to map onto volume_x [N, 128, 64]: an InputError says so.

Images hold raw ADC per tick (each trigger primitive painted as a pulse from the 60 / 70 ADC
threshold up to its peak); they become ours, log(1 + ADC) / log(4096) clipped to [0, 1]
(`images.log_normalise`). Their 32-channel images centre the cluster, so the central 16 channels
are kept: what lies outside is cut as our simulator cuts it (a printed line counts such clusters),
and networks, the export's input shapes and models trained on simulated events stay interchangeable.

Every problem is an InputError naming the file: no cluster files (the patterns looked for), a
missing U or V file, missing keys, shapes, an unknown metadata width, NaNs, a plane column that
disagrees with the file name, images that look normalised already. X clusters without a U and V
partner are left out with a printed count, as their loader leaves them out.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxhep.dune import io
from jaxhep.dune.images import CLUSTER_SHAPE, log_normalise
from jaxhep.errors import InputError

FORMAT_VERSION = 1  # of the conversion: part of the cache name, so a change converts again
PATTERNS = ("clusters_plane{plane}_batch*.npz", "*_plane{plane}.npz")
PLANES = ("U", "V", "X")
PLANE_ID = {"U": 0, "V": 1, "X": 2}
WIDTHS = (16, 32)  # channels of their images: 16 until November 2025, then 32
ELECTRON_MASS_MEV = 0.51099895  # PDG
MM_PER_CM = 10.0

# Column of each field by metadata width (module docstring).
MAIN_TRACK = {11: 1, 12: 1, 13: 2, 14: 2, 18: 2}
EVENT = {13: 0, 14: 0, 18: 0}
PLANE = {12: 11, 13: 12, 14: 12, 18: 12}
MATCHED = (14, 18)  # the widths with match_id
MARLEY, ES, MATCH_ID, NU_ENERGY = 1, 3, 13, 14
POSITION, MOMENTUM, NU_MOMENTUM = slice(4, 7), slice(7, 10), slice(15, 18)

_NAME = re.compile(r"^(?P<head>.*_plane)[UVX](?P<tail>(?:_batch[^/]*)?\.npz)$")


def cluster_files(folder: Path, plane: str) -> list[Path]:
    """The plane's cluster files [sorted]: flat in `folder`, else in folder/plane/."""
    for where in (folder, folder / plane):
        found = {f for pattern in PATTERNS for f in where.glob(pattern.format(plane=plane)) if f.is_file()}
        if found:
            return sorted(found)
    return []


def partner(x_file: Path, folder: Path, plane: str) -> Path:
    """The `plane` file of the X file's group: same name with the plane letter swapped, flat or in plane/."""
    m = _NAME.match(x_file.name)
    name = f"{m['head']}{plane}{m['tail']}"
    return (folder if x_file.parent == folder else folder / plane) / name


def cache_path(task: str, folder: Path, files: list[Path], data_dir: str | os.PathLike) -> Path:
    """data_dir/dune/pointing_{task}_{hash}.npz: hash of the folder's resolved path and its files'
    names, sizes and mtimes (and FORMAT_VERSION), so that any change to the folder converts again."""
    listing = []
    for f in files:
        st = f.stat()
        listing.append([str(f.relative_to(folder)), st.st_size, st.st_mtime_ns])
    key = json.dumps([FORMAT_VERSION, task, str(folder.resolve()), listing])
    return Path(data_dir) / "dune" / f"pointing_{task}_{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def convert(task: str, folder: str | os.PathLike, data_dir: str | os.PathLike) -> Path:
    """The NPZ (our layout) of the task's rows of the ml_for_pointing `folder`, converted once.

    Returns its path under data_dir/dune/; an existing conversion of the same folder state is reused.
    Written under a temporary name and renamed: an error leaves nothing half written.
    """
    folder = Path(folder)
    if task == "channel":
        raise InputError(
            folder,
            "a folder is read as ml_for_pointing cluster files, which serve direction and maintrack; "
            "their channel-tagging volumes (images [n, 208, 1242] of TP occupancy, ES and CC in "
            "separate folders, metadata as pickled dicts) have no layout to convert to volume_x "
            "[N, 128, 64]: give channel an NPZ with volume_x, interaction and energy",
        )
    if task not in ("direction", "maintrack"):
        raise ValueError(f"task must be direction, maintrack or channel, not {task!r}")
    x_files = cluster_files(folder, "X")
    if not x_files:
        patterns = " and ".join(p.format(plane="X") for p in PATTERNS)
        raise InputError(folder, f"no ml_for_pointing cluster files: looked for {patterns} here and in X/")
    groups = [(f,) for f in x_files]
    if task == "direction":
        groups = [(partner(f, folder, "U"), partner(f, folder, "V"), f) for f in x_files]
        for group in groups:
            for plane, f in zip(PLANES, group[:2]):
                if not f.is_file():
                    raise InputError(group[2], f"its {plane}-plane file {f} is missing")
    out = cache_path(task, folder, [f for g in groups for f in g], data_dir)
    if out.exists():
        return out
    print(f"[dune] converting {folder} ({len(x_files)} X-plane file(s)) -> {out}", flush=True)
    plan = _direction(groups) if task == "direction" else _maintrack(x_files)
    plan.members["metadata"] = np.array(
        json.dumps(
            dict(
                format_version=FORMAT_VERSION,
                source="ml_for_pointing",
                task=task,
                folder=str(folder.resolve()),
                files=len(x_files),
                metadata_columns=sorted(plan.widths),
            ),
            sort_keys=True,
        )
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_npz(out, plan)
    if plan.cut:
        print(
            f"[dune] {plan.cut} of {plan.rows_32} 32-channel cluster images have charge outside the "
            "central 16 channels, which are kept",
            flush=True,
        )
    return out


@dataclass
class _Plan:
    """What goes into the NPZ: small arrays, and image members filled file by file."""

    members: dict[str, np.ndarray]
    images: dict[str, list[tuple[Path, np.ndarray]]]  # key -> [(file, its rows [k])]
    widths: set[int]
    cut: int = 0  # 32-channel images with charge outside the central 16
    rows_32: int = 0


def _metadata(path: Path, plane: str) -> np.ndarray:
    """The metadata [n, C] (float64) of one plane's cluster file, its images' shape checked."""
    arrays = io.load_npz(path, ("images", "metadata"))  # mapped: the images are not read here
    images, meta = arrays["images"], np.asarray(arrays["metadata"], np.float64)
    if images.ndim != 3 or images.shape[1] != CLUSTER_SHAPE[0] or images.shape[2] not in WIDTHS:
        raise InputError(path, f"'images' has shape {images.shape}, expected (n, 128, 16) or (n, 128, 32)")
    if images.dtype.kind not in "fiu":
        raise InputError(path, f"'images' has dtype {images.dtype}, expected numbers (ADC)")
    if meta.ndim != 2 or len(meta) != len(images):
        raise InputError(path, f"'metadata' has shape {meta.shape}, expected ({len(images)}, columns)")
    if meta.shape[1] not in MAIN_TRACK:
        raise InputError(
            path, f"metadata has {meta.shape[1]} columns; the known layouts have {sorted(MAIN_TRACK)}"
        )
    column = PLANE.get(meta.shape[1])
    if column is not None and len(meta) and np.any(meta[:, column] != PLANE_ID[plane]):
        found = sorted({int(v) for v in np.unique(meta[:, column])})
        raise InputError(path, f"plane column holds {found}; a plane-{plane} file holds {PLANE_ID[plane]}")
    return meta


def _maintrack(x_files: list[Path]) -> _Plan:
    labels, events, rows, widths, offset = [], [], [], set(), 0
    for path in x_files:
        meta = _metadata(path, "X")
        width = meta.shape[1]
        widths.add(width)
        labels.append(meta[:, MAIN_TRACK[width]] != 0)
        if width in EVENT:  # event numbers restart per file: one id per (file, event)
            _, ids = np.unique(meta[:, EVENT[width]], return_inverse=True)
            events.append(ids.reshape(-1) + offset)
            offset += int(ids.max(initial=-1)) + 1
        else:
            events.append(np.arange(len(meta)) + offset)
            offset += len(meta)
        rows.append((path, np.arange(len(meta))))
    return _Plan(
        members=dict(
            mt_label=np.concatenate(labels).astype(np.int32), mt_event=np.concatenate(events).astype(np.int32)
        ),
        images={"mt_images": rows},
        widths=widths,
    )


def _direction(groups: list[tuple[Path, Path, Path]]) -> _Plan:
    chosen = {p: [] for p in PLANES}  # plane -> [(file, rows)]
    picked, widths = [], set()
    candidates = unmatched = no_momentum = 0
    for files in groups:
        metas = {p: _metadata(f, p) for p, f in zip(PLANES, files)}
        for p, f in zip(PLANES, files):
            width = metas[p].shape[1]
            if width not in MATCHED:
                raise InputError(
                    f,
                    f"metadata has {width} columns: no match_id to pair the X cluster with its U and V "
                    "clusters (the 14- or 18-column layout has it); maintrack can use these files",
                )
            widths.add(width)
        x = metas["X"]
        selected = np.flatnonzero((x[:, MARLEY] == 1) & (x[:, MAIN_TRACK[14]] == 1) & (x[:, ES] == 1))
        candidates += selected.size
        lookup = {p: _by_match(metas[p]) for p in ("U", "V")}
        rows = {p: [] for p in PLANES}
        for i in selected:
            key = (x[i, 0], x[i, MATCH_ID])
            if x[i, MATCH_ID] == -1 or key not in lookup["U"] or key not in lookup["V"]:
                unmatched += 1
                continue
            if not np.any(x[i, MOMENTUM]):
                no_momentum += 1
                continue
            rows["U"].append(lookup["U"][key])
            rows["V"].append(lookup["V"][key])
            rows["X"].append(i)
        for p, f in zip(PLANES, files):
            chosen[p].append((f, np.asarray(rows[p], np.int64)))
        picked.append(x[rows["X"]])
    meta = np.concatenate([m if widths == {18} else m[:, :14] for m in picked])
    folder = groups[0][2].parent
    if unmatched:
        print(
            f"[dune] {unmatched} of {candidates} X main-track clusters of ES events have no U and V "
            "cluster of the same (event, match_id) and are left out, as their loader leaves them out",
            flush=True,
        )
    if no_momentum:
        print(f"[dune] {no_momentum} matched clusters without a true momentum are left out", flush=True)
    if not len(meta):
        raise InputError(folder, f"no matched X main-track cluster of an ES event ({candidates} unmatched)")
    momentum = meta[:, MOMENTUM]
    p_mev = np.linalg.norm(momentum, axis=1) * 1000.0  # GeV/c in their files
    members = dict(
        direction=(momentum / np.linalg.norm(momentum, axis=1, keepdims=True)).astype(np.float32),
        energy=(np.hypot(p_mev, ELECTRON_MASS_MEV) - ELECTRON_MASS_MEV).astype(np.float32),
        vertex=(meta[:, POSITION] * MM_PER_CM).astype(np.float32),
        interaction=(meta[:, ES] != 1).astype(np.int32),
    )
    if widths == {18}:
        members["nu_energy"] = meta[:, NU_ENERGY].astype(np.float32)
        nu = meta[:, NU_MOMENTUM]
        norm = np.linalg.norm(nu, axis=1, keepdims=True)
        if np.all(norm > 0):
            members["nu_direction"] = (nu / norm).astype(np.float32)
    images = {f"images_{p.lower()}": chosen[p] for p in PLANES}
    return _Plan(members=members, images=images, widths=widths)


def _by_match(meta: np.ndarray) -> dict[tuple[float, float], int]:
    """(event, match_id) -> row of the clusters [n, C] with a match_id (the last of equal keys, as
    their loader's dict keeps it)."""
    return {(m[0], m[MATCH_ID]): i for i, m in enumerate(meta) if m[MATCH_ID] != -1}


def _images(path: Path, rows: np.ndarray, plan: _Plan) -> np.ndarray:
    """Rows `rows` [k] of the file's images, ours: [k, 128, 16] float32 in [0, 1]."""
    raw = np.asarray(io.load_npz(path, ["images"])["images"][rows], np.float64)
    bad = ~np.isfinite(raw.reshape(len(raw), -1)).all(axis=1)
    if bad.any():
        raise InputError(
            path,
            f"'images' holds NaN or infinite values in {int(bad.sum())} of the {len(rows)} clusters "
            f"used, first row {int(rows[np.flatnonzero(bad)[0]])}; drop or repair those rows",
        )
    top = raw.max(initial=0.0)
    if 0.0 < top <= 1.0:
        raise InputError(
            path,
            "'images' are at most 1: they look normalised already, but raw ADC is expected (pulses "
            "from the 60 / 70 ADC thresholds up, as online-pointing-utils writes them)",
        )
    if raw.shape[2] == 32:  # their writer centres the cluster: keep the central 16 channels
        plan.cut += int(np.count_nonzero((raw[:, :, :8] > 0).any((1, 2)) | (raw[:, :, 24:] > 0).any((1, 2))))
        plan.rows_32 += len(raw)
        raw = raw[:, :, 8:24]
    return log_normalise(raw)


def _write_npz(out: Path, plan: _Plan) -> None:
    """Plan -> uncompressed NPZ `out` (memory-mappable), image members streamed file by file."""
    tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex}.tmp.npz")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key, parts in plan.images.items():
                n = sum(len(rows) for _, rows in parts)
                _stream(zf, key, (n, *CLUSTER_SHAPE), (_images(f, r, plan) for f, r in parts if len(r)))
            for key, value in plan.members.items():
                with zf.open(f"{key}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, value, allow_pickle=False)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _stream(zf: zipfile.ZipFile, key: str, shape: tuple[int, ...], chunks: Iterable[np.ndarray]) -> None:
    """A float32 member of `shape` written from row chunks, so that no more than a file is in memory."""
    descr = np.lib.format.dtype_to_descr(np.dtype(np.float32))
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    written = 0
    with zf.open(f"{key}.npy", "w", force_zip64=True) as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for chunk in chunks:
            fh.write(np.ascontiguousarray(chunk, np.float32).tobytes())
            written += len(chunk)
    if written != shape[0]:  # a bug, not the user's input
        raise RuntimeError(f"{key}: wrote {written} rows, planned {shape[0]}")
