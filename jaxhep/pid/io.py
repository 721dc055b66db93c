"""Read ALICE PID track tables (Parquet, CSV, gzipped CSV, O2 ROOT files) into NumPy columns.

The reader takes only the 21 feature columns and the label (extra columns are ignored)
and checks what the task needs; every problem is one `InputError(path, problem)` that
names the file and says what is wrong, never a pyarrow or uproot traceback. A path with
glob characters (`AO2D_*.root`) reads every matching file, sorted by name, as one table.
ROOT files are O2Physics' PID-ML table, mapped to our columns by `jaxhep.pid.root_io`.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from jaxhep.errors import InputError
from jaxhep.pid import root_io
from jaxhep.pid.species import FEATURES, LABEL, labels_from_pdg

_CSV_COLUMN = re.compile(r"CSV column #(\d+)")
_GLOB_CHARACTERS = frozenset("*?[")


def data_files(spec: str | os.PathLike) -> list[Path]:
    """The files `spec` names: itself, or the name-sorted matches of a glob pattern (`~` expanded).

    Raises:
      InputError: a pattern that matches no regular file.
    """
    text = str(spec)
    if not _GLOB_CHARACTERS & set(text) or Path(text).exists():  # a file named "run[1].csv" is itself
        return [Path(text)]
    files = sorted(Path(p) for p in glob.glob(os.path.expanduser(text)) if Path(p).is_file())
    if not files:
        raise InputError(text, "no file matches this pattern")
    return files


def _table_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".parquet") or name.endswith(".pq"):
        return "parquet"
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        return "csv"
    if name.endswith(".root"):
        return "root"
    raise InputError(path, "unsupported file type (expected .parquet, .csv, .csv.gz or .root)")


def _is_numeric(dtype: pa.DataType) -> bool:
    return (
        pa.types.is_integer(dtype)
        or pa.types.is_floating(dtype)
        or pa.types.is_boolean(dtype)
        or pa.types.is_null(dtype)
    )


def _column_names(path: Path, fmt: str) -> list[str]:
    """Column names from the file's schema/header (reads no data beyond the first block)."""
    try:
        if fmt == "parquet":
            schema = pq.read_schema(path)
        else:
            with pacsv.open_csv(path) as reader:
                schema = reader.schema
    except pa.ArrowInvalid as err:
        if "empty" in str(err).lower():
            raise InputError(path, "empty file (no header and no rows)") from None
        raise InputError(path, f"unreadable or corrupt {fmt} file ({err})") from None
    except (OSError, pa.ArrowException, EOFError) as err:
        raise InputError(path, f"unreadable or corrupt {fmt} file ({err})") from None
    return list(schema.names)


def _read(path: Path, fmt: str, names: list[str], needed: list[str]) -> pa.Table:
    try:
        if fmt == "parquet":
            return pq.read_table(path, columns=needed)
        types = {name: pa.float64() for name in needed}
        convert = pacsv.ConvertOptions(include_columns=needed, column_types=types)
        return pacsv.read_csv(path, convert_options=convert)
    except pa.ArrowInvalid as err:
        match = _CSV_COLUMN.search(str(err))
        if fmt == "csv" and match and "conversion error" in str(err):
            column = names[int(match.group(1))] if int(match.group(1)) < len(names) else "?"
            raise InputError(path, f"column {column!r} is not numeric ({err})") from None
        raise InputError(path, f"unreadable or corrupt {fmt} file ({err})") from None
    except (OSError, pa.ArrowException, EOFError) as err:
        raise InputError(path, f"unreadable or corrupt {fmt} file ({err})") from None


def read_table(path: str | os.PathLike, *, require_label: bool = True) -> dict[str, np.ndarray]:
    """Read a PID table: one file, or every file a glob pattern matches (concatenated in name order).

    Args:
      path: a .parquet, .csv or .csv.gz file with (at least) the FEATURES columns and,
        if `require_label`, the LABEL column mc_pdg; or a .root file with O2Physics' PID-ML
        tree (`jaxhep.pid.root_io`); or a glob pattern of such files.
      require_label: False to read unlabelled data (e.g. real data for inference).

    Returns:
      dict with each feature as float32 [N] (missing values NaN) and, when present (in every
      file), "mc_pdg" as int64 [N].

    Raises:
      InputError: file missing, unreadable/corrupt, empty, missing columns (all named), a
        non-numeric column, +-inf in any column (named, with counts), a feature column
        entirely NaN (named), mc_pdg with missing or unknown codes (listed); a pattern that
        matches nothing. The message names the file; for an all-NaN column, the pattern.
    """
    parts, absent = [], set(FEATURES)
    for file in data_files(path):
        columns, absent_here = _read_file(file, require_label)
        parts.append(columns)
        absent &= absent_here
    out = parts[0] if len(parts) == 1 else _concatenate(parts)
    all_nan = [name for name in FEATURES if name not in absent and np.isnan(out[name]).all()]
    if all_nan:
        raise InputError(path, f"feature column(s) entirely NaN: {', '.join(all_nan)}")
    return out


def _read_file(path: Path, require_label: bool) -> tuple[dict[str, np.ndarray], set[str]]:
    """One file's columns (float32 features, int64 mc_pdg) and the features its format cannot hold."""
    if not path.exists():
        raise InputError(path, "file not found")
    if not path.is_file():
        raise InputError(path, "not a regular file")
    fmt = _table_format(path)
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")
    if fmt == "root":
        columns, absent = root_io.read_o2_table(path, require_label=require_label), set(root_io.ABSENT)
    else:
        columns, absent = _read_arrow(path, fmt, require_label), set()
    _reject_infinities(path, columns)
    out = {name: columns[name].astype(np.float32) for name in FEATURES}
    if LABEL in columns:
        out[LABEL] = _labels(path, columns[LABEL])
    return out, absent


def _read_arrow(path: Path, fmt: str, require_label: bool) -> dict[str, np.ndarray]:
    """float64 columns [N] of a CSV / Parquet file: the FEATURES and, if there, mc_pdg."""
    names = _column_names(path, fmt)
    needed = list(FEATURES)
    if require_label or LABEL in names:
        needed.append(LABEL)
    missing = [name for name in needed if name not in names]
    if missing:
        raise InputError(path, f"missing column(s): {', '.join(missing)}")

    table = _read(path, fmt, names, needed)
    if table.num_rows == 0:
        raise InputError(path, "no rows (the file holds only a header/schema)")
    bad_types = [f"{f.name} ({f.type})" for f in table.schema if not _is_numeric(f.type)]
    if bad_types:
        raise InputError(path, f"non-numeric column(s): {', '.join(bad_types)}")
    return {name: table.column(name).cast(pa.float64()).to_numpy() for name in needed}


def _concatenate(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Row-wise concatenation; mc_pdg only when every file has it (unlabelled reads)."""
    keys = [name for name in parts[0] if all(name in part for part in parts)]
    return {name: np.concatenate([part[name] for part in parts]) for name in keys}


def _reject_infinities(path: Path, columns: dict[str, np.ndarray]) -> None:
    """InputError naming every column holding +-inf, with its count and first row.

    NaN is the table's "missing measurement"; an infinity is no measurement at all (an
    overflow, a division by zero upstream) and would only surface later as a NaN loss.
    """
    found = []
    for name, values in columns.items():
        rows = np.flatnonzero(np.isinf(values))
        if rows.size:
            found.append(f"{name} ({rows.size} row(s), first row {int(rows[0])})")
    if found:
        raise InputError(
            path,
            f"infinite values in column(s) {', '.join(found)} (row 0 is the first data row). "
            "Infinity is not a measurement: write a missing measurement as NaN, or drop those rows",
        )


def _labels(path: Path, pdg: np.ndarray) -> np.ndarray:
    """Validated int64 PDG codes [N] from a float64 column [N]."""
    n_missing = int(np.isnan(pdg).sum())
    if n_missing:
        raise InputError(path, f"{LABEL} has {n_missing} missing value(s)")
    if not np.array_equal(pdg, np.round(pdg)):
        raise InputError(path, f"{LABEL} holds non-integer values")
    codes = pdg.astype(np.int64)
    try:
        labels_from_pdg(codes)
    except ValueError as err:
        raise InputError(path, f"{LABEL}: {err}") from None
    return codes
