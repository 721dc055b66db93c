"""Read ALICE PID track tables (Parquet, CSV, gzipped CSV) into NumPy columns.

The reader takes only the 21 feature columns and the label (extra columns are ignored)
and checks what the task needs; every problem is one `InputError(path, problem)` that
names the file and says what is wrong, never a pyarrow traceback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from jaxhep.errors import InputError
from jaxhep.pid.species import FEATURES, LABEL, labels_from_pdg

_CSV_COLUMN = re.compile(r"CSV column #(\d+)")


def _table_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".parquet") or name.endswith(".pq"):
        return "parquet"
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        return "csv"
    raise InputError(path, "unsupported file type (expected .parquet, .csv or .csv.gz)")


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
    """Read a PID table.

    Args:
      path: a .parquet, .csv or .csv.gz file with (at least) the FEATURES columns and,
        if `require_label`, the LABEL column mc_pdg.
      require_label: False to read unlabelled data (e.g. real data for inference).

    Returns:
      dict with each feature as float32 [N] (missing values NaN) and, when present,
      "mc_pdg" as int64 [N].

    Raises:
      InputError: file missing, unreadable/corrupt, empty, missing columns (all named), a
        non-numeric column, +-inf in any column (named, with counts), a feature column
        entirely NaN (named), mc_pdg with missing or unknown codes (listed).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if not path.is_file():
        raise InputError(path, "not a regular file")
    fmt = _table_format(path)
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")

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

    columns = {name: table.column(name).cast(pa.float64()).to_numpy() for name in needed}
    _reject_infinities(path, columns)
    all_nan = [name for name in FEATURES if np.isnan(columns[name]).all()]
    if all_nan:
        raise InputError(path, f"feature column(s) entirely NaN: {', '.join(all_nan)}")

    out = {name: columns[name].astype(np.float32) for name in FEATURES}
    if LABEL in columns:
        out[LABEL] = _labels(path, columns[LABEL])
    return out


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
