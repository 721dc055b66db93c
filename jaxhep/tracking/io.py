"""Read TrackML events: `eventNNNNNNNNN-{hits,cells,particles,truth}.csv[.gz]` (trackml-library format).

Columns and dtypes are those of trackml-library's `dataset.py`; extra columns in a file are ignored.
Every problem with a file raises `jaxhep.errors.InputError(path, problem)`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from jaxhep.errors import InputError

# Column name -> dtype, per file (trackml-library `dataset.py`).
DTYPES: dict[str, dict[str, str]] = {
    "hits": {
        "hit_id": "i4",
        "x": "f4",
        "y": "f4",
        "z": "f4",
        "volume_id": "i4",
        "layer_id": "i4",
        "module_id": "i4",
    },
    "cells": {"hit_id": "i4", "ch0": "i4", "ch1": "i4", "value": "f4"},
    "particles": {
        "particle_id": "i8",
        "particle_type": "i4",
        "vx": "f4",
        "vy": "f4",
        "vz": "f4",
        "px": "f4",
        "py": "f4",
        "pz": "f4",
        "q": "i4",
        "nhits": "i4",
    },
    "truth": {
        "hit_id": "i4",
        "particle_id": "i8",
        "tx": "f4",
        "ty": "f4",
        "tz": "f4",
        "tpx": "f4",
        "tpy": "f4",
        "tpz": "f4",
        "weight": "f4",
    },
}
PARTS: tuple[str, ...] = ("hits", "cells", "particles", "truth")
EVENT_PREFIX = re.compile(r"^(event\d{9})-(hits|cells|particles|truth)\.csv(\.gz)?$")

Columns = dict[str, np.ndarray]


@dataclass
class Event:
    """One event as column dicts ({name: [n_rows] array}); a part not read is None."""

    prefix: str
    hits: Columns
    cells: Columns | None = None
    particles: Columns | None = None
    truth: Columns | None = None


def event_prefix(folder_or_prefix: str | os.PathLike, event: int | str | None = None) -> Path:
    """The path prefix of an event: folder + `event{id:09d}`, folder + a prefix name, or a prefix itself."""
    base = Path(folder_or_prefix)
    if event is None:
        return base
    if isinstance(event, int | np.integer):
        return base / f"event{int(event):09d}"
    return base / str(event)


def find_file(prefix: Path, part: str) -> Path | None:
    """The `.csv` or `.csv.gz` file of one part, None if neither exists; both is an error."""
    found = [p for p in (Path(f"{prefix}-{part}.csv"), Path(f"{prefix}-{part}.csv.gz")) if p.is_file()]
    if len(found) > 1:
        raise InputError(found[0], f"both {found[0].name} and {found[1].name} exist; keep one")
    return found[0] if found else None


def _header(path: Path) -> list[str]:
    """The column names on the first line of a (possibly gzipped) CSV file; [] if unreadable."""
    try:
        with pa.input_stream(str(path), compression="detect") as stream:
            first = stream.read(1 << 16).split(b"\n", 1)[0]
    except OSError:
        return []
    return [name.strip().strip('"') for name in first.decode(errors="replace").split(",")]


def read_table(path: str | os.PathLike, part: str) -> Columns:
    """One TrackML CSV file as {column: array} with the library's dtypes. The hits file may not be empty."""
    path = Path(path)
    dtypes = DTYPES[part]
    types = {name: pa.from_numpy_dtype(np.dtype(dt)) for name, dt in dtypes.items()}
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except pa.ArrowInvalid as err:
        message = str(err).strip()
        if "Empty CSV file" in message:
            raise InputError(path, f"the {part} file is empty (no header, no rows)") from None
        column = re.search(r"column #(\d+)", message)
        names = _header(path)
        if column and int(column.group(1)) < len(names):
            message = f"column {names[int(column.group(1))]}: {message}"
        raise InputError(path, f"cannot parse the {part} file: {message}") from None
    except OSError as err:  # e.g. a broken .gz stream
        raise InputError(path, f"cannot read the {part} file: {err}") from None
    missing = [name for name in dtypes if name not in table.column_names]
    if missing:
        raise InputError(
            path, f"missing column(s) {', '.join(missing)}; the {part} file needs {', '.join(dtypes)}"
        )
    if part == "hits" and table.num_rows == 0:
        raise InputError(path, "the hits file holds no hits")
    out = {}
    for name, dt in dtypes.items():
        column = table.column(name)
        if column.null_count:
            raise InputError(path, f"column {name} has {column.null_count} empty value(s)")
        out[name] = column.to_numpy().astype(dt, copy=False)
    return out


def read_event(
    folder_or_prefix: str | os.PathLike, event: int | str | None = None, parts: tuple[str, ...] = PARTS
) -> Event:
    """Read one event: `read_event(folder, 1000)`, `read_event(folder, "event000001000")` or
    `read_event("folder/event000001000")`.

    Every part in `parts` must exist, except cells: an event without a cells file gets `cells=None`
    (trackml-library: "each event can have up to four associated files"). Pass
    `parts=("hits", "cells")` for a test set without truth. Cells must belong to the hits: a cell
    naming a hit_id the hits file lacks, or a cells file without cells, is an InputError.
    """
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown part(s) {unknown}; choose from {PARTS}")
    prefix = event_prefix(folder_or_prefix, event)
    if not prefix.parent.is_dir():
        raise InputError(prefix.parent, "no such folder")
    columns, paths = {}, {}
    for part in parts:
        path = paths[part] = find_file(prefix, part)
        if path is None:
            if part == "cells":
                continue
            raise InputError(f"{prefix}-{part}.csv", f"file not found (nor {prefix.name}-{part}.csv.gz)")
        columns[part] = read_table(path, part)
    if "hits" not in columns:
        raise ValueError("parts must include 'hits'")
    if "cells" in columns:
        _check_cells(paths["cells"], columns["cells"], paths["hits"], columns["hits"])
    return Event(prefix=prefix.name, **columns)


def _check_cells(path: Path, cells: Columns, hits_path: Path, hits: Columns) -> None:
    """InputError naming the cells file when its cells do not belong to the event's hits.

    The cells give the node features n_cells and cell_value; a cell whose hit_id is not a hit
    would be dropped without a word, and cells of another event would leave every hit at zero.
    """
    same_event = f"the cells file must come from the same event as {hits_path.name}"
    cell_ids = np.asarray(cells["hit_id"])
    if cell_ids.size == 0:
        raise InputError(
            path, "the cells file holds no cells, so no hit has any; write the event's cells or delete it"
        )
    stray = np.setdiff1d(cell_ids, np.asarray(hits["hit_id"]))
    if stray.size == 0:
        return
    n_stray = int(np.isin(cell_ids, stray).sum())
    if n_stray == cell_ids.size:
        raise InputError(
            path,
            f"none of its {cell_ids.size} cells belongs to a hit of {hits_path.name} (e.g. hit_id "
            f"{int(stray[0])}), so no hit has any cell; {same_event}",
        )
    raise InputError(
        path,
        f"{n_stray} of its {cell_ids.size} cells name {stray.size} hit_id(s) that {hits_path.name} does "
        f"not hold (e.g. hit_id {int(stray[0])}); {same_event}",
    )


def list_events(folder: str | os.PathLike) -> list[str]:
    """Sorted prefixes (`event000001000`, ...) of the events in a folder that have a hits file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "no such folder")
    prefixes = set()
    for name in os.listdir(folder):
        match = EVENT_PREFIX.match(name)
        if match and match.group(2) == "hits":
            prefixes.add(match.group(1))
    return sorted(prefixes)
