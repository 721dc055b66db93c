"""O2 ROOT input: a PID-ML table written with uproot in O2Physics' layout, read back into our columns."""

import sys

import numpy as np
import pytest
import uproot

from jaxhep.errors import InputError
from jaxhep.pid import root_io
from jaxhep.pid.config import DataConfig
from jaxhep.pid.dataset import load_table, range_data
from jaxhep.pid.io import read_table
from jaxhep.pid.sim.simulate import simulate_tracks
from jaxhep.pid.species import BAYES_PROBS, FEATURES, LABEL

N = 400
O2 = {"pi": "Pi", "ka": "Ka", "pr": "Pr", "el": "El"}


@pytest.fixture(scope="module")
def tracks():
    out = simulate_tracks(N, 7)
    for name in ("dca_xy", "dca_z"):  # a failed DCA fit in each folder of the first test
        out[name][[5, 260]] = np.nan
    return out


def _o2_branches(tracks, rows, *, nan_tof=False):
    """The PidTracksMc branches (O2 names and dtypes) of simulated rows; -999 / 999 where O2 writes them."""
    t = {k: np.asarray(v, np.float64)[rows] for k, v in tracks.items()}
    f32 = lambda x: np.asarray(x, np.float32)
    no_tof = -999.0 if not nan_tof else np.nan  # the producer before / after O2Physics #7403
    out = {
        "fPt": f32(t["pt"]),
        "fPx": f32(t["pt"] * np.cos(t["phi"])),
        "fPy": f32(t["pt"] * np.sin(t["phi"])),
        "fPz": f32(t["pt"] * np.sinh(t["eta"])),
        "fP": f32(t["pt"] * np.cosh(t["eta"])),
        "fSign": f32(np.sign(t["mc_pdg"])),
        "fTPCSignal": f32(np.nan_to_num(t["tpc_signal"], nan=0.0)),
        "fBeta": f32(np.nan_to_num(t["tof_beta"], nan=no_tof)),
        "fTOFSignal": f32(np.where(np.isnan(t["tof_beta"]), no_tof, 15_000.0)),
        "fTRDPattern": np.zeros(len(rows), np.uint8),
        "fTPCNClsShared": np.zeros(len(rows), np.uint8),
        "fDcaXY": f32(np.nan_to_num(t["dca_xy"], nan=999.0)),
        "fDcaZ": f32(np.nan_to_num(t["dca_z"], nan=999.0)),
        "fPdgCode": np.asarray(t["mc_pdg"], np.int32),
        "fIsPhysicalPrimary": np.ones(len(rows), np.uint8),
    }
    for s, name in O2.items():
        out[f"fTPCNSigma{name}"] = f32(np.nan_to_num(t[f"tpc_nsigma_{s}"], nan=-999.0))
        out[f"fTOFNSigma{name}"] = f32(np.nan_to_num(t[f"tof_nsigma_{s}"], nan=-999.0))
        out[f"fTOFExpSigma{name}"] = f32(np.full(len(rows), 80.0))
    return out


def _write(path, folders: dict[str, dict], tree=root_io.LABELLED_TREE):
    """A ROOT file with one TTree `tree` per folder ("" = top level), in the given order."""
    with uproot.recreate(path) as f:
        for folder, branches in folders.items():
            name = f"{folder}/{tree}" if folder else tree
            f.mktree(name, {k: v.dtype for k, v in branches.items()})
            f[name].extend(branches)
    return path


def _expected(tracks, rows):
    """Our columns for `rows` as the reader should give them: float32, Bayes NaN, TPC 0 -> NaN."""
    out = {k: np.asarray(tracks[k], np.float32)[rows] for k in FEATURES}
    for name in BAYES_PROBS:
        out[name] = np.full(len(rows), np.nan, np.float32)
    return out


def _assert_matches(got, expected):
    assert list(got) == [*FEATURES, LABEL]
    for name in FEATURES:
        if name in ("eta", "phi"):
            continue  # derived from fPx/fPy/fPz: checked against the simulator's values below
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    np.testing.assert_allclose(got["eta"], expected["eta"], atol=2e-6)
    dphi = np.angle(np.exp(1j * (got["phi"].astype(np.float64) - expected["phi"])))
    assert np.abs(dphi).max() < 2e-6 and got["phi"].min() >= 0 and got["phi"].max() < 2 * np.pi


def test_two_df_folders_are_mapped_and_concatenated_in_file_order(tmp_path, tracks):
    first, second = np.arange(0, 250), np.arange(250, N)
    # DF_10 before DF_2 in the file: file order wins, not name order
    path = _write(
        tmp_path / "AO2D.root",
        {"DF_10": _o2_branches(tracks, first), "DF_2": _o2_branches(tracks, second, nan_tof=True)},
    )
    got = read_table(path)
    rows = np.arange(N)
    _assert_matches(got, _expected(tracks, rows))
    np.testing.assert_array_equal(got[LABEL], tracks[LABEL])
    assert got[LABEL].dtype == np.int64
    # -999 (first folder) and NaN (second) both read as "not measured"; has_tof from fBeta
    assert np.isnan(tracks["tof_beta"][:250]).any() and np.isnan(tracks["tof_beta"][250:]).any()
    np.testing.assert_array_equal(got["has_tof"], np.isfinite(tracks["tof_beta"]).astype(np.float32))
    assert np.isnan(tracks["dca_xy"]).any()  # the simulator's failed DCA fits: written as 999, read NaN


def test_other_species_are_dropped_with_a_count(tmp_path, tracks, capsys):
    branches = _o2_branches(tracks, np.arange(N))
    branches["fPdgCode"][[3, 50, 51]] = (13, -13, 1000010020)  # muons and a deuteron
    got = read_table(_write(tmp_path / "mu.root", {"DF_1": branches}))
    keep = np.setdiff1d(np.arange(N), [3, 50, 51])
    np.testing.assert_array_equal(got["pt"], np.asarray(tracks["pt"], np.float32)[keep])
    note = capsys.readouterr().out
    assert "dropped 3 track(s)" in note and "13: 1" in note and "-13: 1" in note and "1000010020: 1" in note


def test_top_level_tree_and_unlabelled_data(tmp_path, tracks):
    branches = _o2_branches(tracks, np.arange(N))
    got = read_table(_write(tmp_path / "top.root", {"": branches}))
    np.testing.assert_array_equal(got["tpc_signal"], _expected(tracks, np.arange(N))["tpc_signal"])
    data = {k: v for k, v in branches.items() if k not in ("fPdgCode", "fIsPhysicalPrimary")}
    real = _write(tmp_path / "data.root", {"DF_1": data}, tree=root_io.UNLABELLED_TREE)
    out = read_table(real, require_label=False)
    assert LABEL not in out and set(out) == set(FEATURES)
    with pytest.raises(InputError, match="real data, no fPdgCode"):
        read_table(real)


def test_glob_of_root_files_and_load_table(tmp_path, tracks):
    _write(tmp_path / "AO2D_1.root", {"DF_1": _o2_branches(tracks, np.arange(0, 300))})
    _write(tmp_path / "AO2D_2.root", {"DF_1": _o2_branches(tracks, np.arange(300, N))})
    pattern = str(tmp_path / "AO2D_*.root")
    got = read_table(pattern)
    np.testing.assert_array_equal(got["pt"], np.asarray(tracks["pt"], np.float32))
    np.testing.assert_array_equal(got[LABEL], tracks[LABEL])
    # The experiment's path: table, split, preprocessing; network inputs finite.
    table = load_table(DataConfig(path=pattern), tmp_path)
    assert len(table) == N and str(table.path) == pattern
    data = range_data(table, "full")
    assert np.isfinite(data.train.x).all() and data.train.x.shape[1] == len(FEATURES)
    np.testing.assert_array_equal(data.train.group_mask[:, 2], 1.0)  # Bayes group: uniform, not masked
    # A changed file changes the fingerprint (model reuse must not take the old training).
    _write(tmp_path / "AO2D_2.root", {"DF_1": _o2_branches(tracks, np.arange(300, N - 1))})
    assert load_table(DataConfig(path=pattern), tmp_path).fingerprint != table.fingerprint


def _raises(path, *fragments, **kwargs):
    with pytest.raises(InputError) as info:
        read_table(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_bad_root_files_give_one_line(tmp_path, tracks):
    (tmp_path / "text.root").write_bytes(b"this is not a ROOT file" * 20)
    _raises(tmp_path / "text.root", "unreadable or corrupt ROOT file", "not a ROOT file")
    good = _write(tmp_path / "good.root", {"DF_1": _o2_branches(tracks, np.arange(N))}).read_bytes()
    (tmp_path / "cut.root").write_bytes(good[: len(good) // 2])
    _raises(tmp_path / "cut.root", "unreadable or corrupt ROOT file")
    other = _write(tmp_path / "other.root", {"DF_1": {"fX": np.zeros(3, np.float32)}}, tree="O2track")
    _raises(other, "no O2pidtracksmc tree in the folder DF_1", "O2track")
    ml = _write(tmp_path / "ml.root", {"DF_1": _o2_branches(tracks, np.arange(5))}, tree="O2pidtracksmcml")
    _raises(ml, "ML-only table without n-sigma", "processMcAll")
    branches = _o2_branches(tracks, np.arange(N))
    del branches["fTOFNSigmaKa"], branches["fPdgCode"]
    _raises(
        _write(tmp_path / "cols.root", {"DF_7": branches}), "DF_7/O2pidtracksmc", "fTOFNSigmaKa", "fPdgCode"
    )
    empty = {k: v[:0] for k, v in _o2_branches(tracks, np.arange(N)).items()}
    _raises(_write(tmp_path / "empty.root", {"DF_1": empty, "DF_2": empty}), "no rows")
    muons = _o2_branches(tracks, np.arange(4))
    muons["fPdgCode"][:] = 13
    _raises(_write(tmp_path / "muons.root", {"DF_1": muons}), "no track of the four species")
    _raises(tmp_path / "none_*.root", "no file matches")


def test_missing_uproot_is_one_line_with_the_install_command(tmp_path, tracks, monkeypatch):
    path = _write(tmp_path / "t.root", {"DF_1": _o2_branches(tracks, np.arange(10))})
    monkeypatch.setitem(sys.modules, "uproot", None)  # `import uproot` now raises ImportError
    _raises(path, 'reading ROOT files needs uproot: pip install -e ".[root]"')
