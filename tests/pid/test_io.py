"""Reading PID tables: round trips and one clear InputError per bad input."""

import gzip

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jaxhep.errors import InputError
from jaxhep.pid.io import read_table
from jaxhep.pid.sim.simulate import simulate_tracks, write_table
from jaxhep.pid.species import FEATURES, LABEL


@pytest.fixture(scope="module")
def columns():
    return simulate_tracks(500, 1)


def _assert_same(a, b):
    assert set(a) == set(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".csv.gz"])
def test_round_trip(tmp_path, columns, suffix):
    path = write_table(columns, tmp_path / f"tracks{suffix}")
    _assert_same(read_table(path), columns)


def test_gzip_is_really_compressed(tmp_path, columns):
    path = write_table(columns, tmp_path / "tracks.csv.gz")
    with gzip.open(path, "rt") as f:
        assert f.readline().startswith('"pt","eta"')


def test_extra_columns_and_unlabelled_tables(tmp_path, columns):
    extra = dict(columns, run_number=np.full(500, 544_124), note=np.array(["x"] * 500))
    _assert_same(read_table(write_table(extra, tmp_path / "extra.parquet")), columns)
    unlabelled = {k: v for k, v in columns.items() if k != LABEL}
    out = read_table(write_table(unlabelled, tmp_path / "real.csv"), require_label=False)
    assert LABEL not in out and set(out) == set(FEATURES)


def _raises(path, *fragments):
    with pytest.raises(InputError) as info:
        read_table(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_file(tmp_path):
    _raises(tmp_path / "nope.parquet", "file not found")


def test_missing_columns_are_all_named(tmp_path, columns):
    cols = {k: v for k, v in columns.items() if k not in ("tof_beta", "dca_z", LABEL)}
    for suffix in (".parquet", ".csv.gz"):
        _raises(write_table(cols, tmp_path / f"t{suffix}"), "missing column(s)", "tof_beta", "dca_z", LABEL)


def test_all_nan_feature_column(tmp_path, columns):
    cols = dict(columns, tof_nsigma_ka=np.full(500, np.nan, np.float32))
    for suffix in (".parquet", ".csv"):
        _raises(write_table(cols, tmp_path / f"t{suffix}"), "entirely NaN", "tof_nsigma_ka")


def test_empty_files(tmp_path, columns):
    for name in ("empty.csv", "empty.parquet", "empty.csv.gz"):
        (tmp_path / name).write_bytes(b"")
        _raises(tmp_path / name, "empty file")
    header_only = {k: v[:0] for k, v in columns.items()}
    _raises(write_table(header_only, tmp_path / "header.csv"), "no rows")
    _raises(write_table(header_only, tmp_path / "header.parquet"), "no rows")


def test_corrupt_files(tmp_path, columns):
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet at all")
    _raises(tmp_path / "bad.parquet", "corrupt parquet")
    good = write_table(columns, tmp_path / "good.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(good[: len(good) // 2])
    _raises(tmp_path / "cut.parquet", "corrupt parquet")
    (tmp_path / "bad.csv.gz").write_bytes(b"\x1f\x8b\x08 definitely not gzip")
    _raises(tmp_path / "bad.csv.gz", "corrupt csv")


def test_unknown_pdg_codes_are_listed(tmp_path, columns):
    pdg = columns[LABEL].copy()
    pdg[:3] = (13, -13, 2112)
    _raises(write_table(dict(columns, mc_pdg=pdg), tmp_path / "t.parquet"), "mc_pdg", "-13", "13", "2112")


def test_missing_labels(tmp_path, columns):
    pdg = columns[LABEL].astype(np.float64)
    pdg[7] = np.nan
    _raises(write_table(dict(columns, mc_pdg=pdg), tmp_path / "t.csv"), "mc_pdg", "missing")


def test_non_numeric_column(tmp_path, columns):
    text = columns["tpc_signal"].astype(str)
    text[400] = "overflow"
    cols = dict(columns, tpc_signal=text)
    _raises(write_table(cols, tmp_path / "t.csv"), "tpc_signal", "not numeric")
    _raises(write_table(cols, tmp_path / "t.parquet"), "non-numeric", "tpc_signal")


def test_unsupported_suffix(tmp_path, columns):
    path = tmp_path / "t.feather"
    pq.write_table(pa.table({"pt": columns["pt"]}), path)
    _raises(path, "unsupported file type")


def test_infinities_are_rejected_naming_each_column(tmp_path, columns):
    pt, dedx = columns["pt"].copy(), columns["tpc_signal"].copy()
    pt[[12, 40, 41]] = np.inf
    dedx[7] = -np.inf
    dedx[8] = np.nan  # NaN is a missing measurement, not an error
    cols = dict(columns, pt=pt, tpc_signal=dedx)
    for suffix in (".parquet", ".csv", ".csv.gz"):
        message = _raises(
            write_table(cols, tmp_path / f"t{suffix}"),
            "infinite values",
            "pt (3 row(s), first row 12)",
            "tpc_signal (1 row(s), first row 7)",
            "missing measurement as NaN",
        )
        assert "tof_beta" not in message


def test_glob_reads_every_match_in_name_order(tmp_path, columns):
    first, second = ({k: v[rows] for k, v in columns.items()} for rows in (slice(0, 200), slice(200, None)))
    write_table(second, tmp_path / "part_2.csv")
    write_table(first, tmp_path / "part_1.parquet")  # formats may differ; order is by name
    _assert_same(read_table(tmp_path / "part_*"), columns)
    # A feature missing in one file only is fine; missing in every file names the pattern.
    nan = np.full(200, np.nan, np.float32)
    write_table(dict(first, tof_beta=nan), tmp_path / "part_1.parquet")
    assert np.isnan(read_table(tmp_path / "part_*")["tof_beta"][:200]).all()
    write_table(dict(second, tof_beta=np.full(300, np.nan, np.float32)), tmp_path / "part_2.csv")
    _raises(tmp_path / "part_*", "entirely NaN", "tof_beta")
    _raises(tmp_path / "nothing_*.csv", "no file matches")
