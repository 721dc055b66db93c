"""TrackML CSV reading: round trips and one clear InputError per problem."""

import gzip

import numpy as np
import pytest

from jaxhep.errors import InputError
from jaxhep.tracking.io import DTYPES, list_events, read_event
from jaxhep.tracking.sim.simulate import simulate_event, write_event


@pytest.fixture(scope="module")
def event():
    return simulate_event(21, pileup=3)


def _assert_same(event, read):
    for part in ("hits", "cells", "particles", "truth"):
        columns = getattr(read, part)
        assert list(columns) == list(DTYPES[part])
        for name, dtype in DTYPES[part].items():
            assert columns[name].dtype == np.dtype(dtype)
            np.testing.assert_array_equal(columns[name], event[part][name], err_msg=f"{part}.{name}")


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(tmp_path, event, compress):
    prefix = write_event(event, tmp_path, 1000, compress=compress)
    suffix = ".csv.gz" if compress else ".csv"
    assert (tmp_path / f"event000001000-hits{suffix}").is_file()
    assert list_events(tmp_path) == ["event000001000"]
    _assert_same(event, read_event(tmp_path, 1000))
    _assert_same(event, read_event(prefix))
    read = read_event(tmp_path, "event000001000", parts=("hits",))
    assert read.prefix == "event000001000" and read.truth is None and read.cells is None


def test_the_header_is_plain(tmp_path, event):
    write_event(event, tmp_path, 5)
    first = (tmp_path / "event000000005-truth.csv").read_text().splitlines()[0]
    assert first == "hit_id,particle_id,tx,ty,tz,tpx,tpy,tpz,weight"


def test_cells_are_optional(tmp_path, event):
    write_event(event, tmp_path, 3)
    (tmp_path / "event000000003-cells.csv").unlink()
    assert read_event(tmp_path, 3).cells is None


def test_missing_file_names_the_file(tmp_path, event):
    write_event(event, tmp_path, 4)
    (tmp_path / "event000000004-truth.csv").unlink()
    with pytest.raises(InputError, match=r"event000000004-truth\.csv: file not found"):
        read_event(tmp_path, 4)
    with pytest.raises(InputError, match="no such folder"):
        read_event(tmp_path / "nowhere", 4)
    with pytest.raises(InputError, match="no such folder"):
        list_events(tmp_path / "nowhere")


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "event000000001-hits.csv"
    path.write_text("hit_id,x,y,volume_id,module_id\n1,0.5,0.5,8,3\n")
    with pytest.raises(InputError, match=r"hits\.csv: missing column\(s\) z, layer_id") as err:
        read_event(tmp_path, 1, parts=("hits",))
    assert err.value.path == str(path)


def test_empty_hits_file(tmp_path):
    path = tmp_path / "event000000001-hits.csv"
    path.write_text("hit_id,x,y,z,volume_id,layer_id,module_id\n")
    with pytest.raises(InputError, match="holds no hits"):
        read_event(tmp_path, 1, parts=("hits",))
    path.write_text("")
    with pytest.raises(InputError, match=r"hits\.csv: the hits file is empty"):
        read_event(tmp_path, 1, parts=("hits",))


def test_unparsable_values(tmp_path):
    path = tmp_path / "event000000001-hits.csv"
    path.write_text("hit_id,x,y,z,volume_id,layer_id,module_id\n1,0.5,abc,1,8,2,3\n")
    with pytest.raises(InputError, match=r"hits\.csv: cannot parse the hits file"):
        read_event(tmp_path, 1, parts=("hits",))
    path.write_text("hit_id,x,y,z,volume_id,layer_id,module_id\n1,0.5,,1,8,2,3\n")
    with pytest.raises(InputError, match="column y has 1 empty value"):
        read_event(tmp_path, 1, parts=("hits",))


def test_broken_gzip_and_duplicate_files(tmp_path, event):
    write_event(event, tmp_path, 2, compress=True)
    (tmp_path / "event000000002-hits.csv.gz").write_bytes(gzip.compress(b"hit_id,x\n1,2\n")[:-12])
    with pytest.raises(InputError, match=r"hits\.csv\.gz"):
        read_event(tmp_path, 2)
    write_event(event, tmp_path, 2)
    with pytest.raises(InputError, match="both"):
        read_event(tmp_path, 2)


def _rewrite_cells(tmp_path, event, event_id, hit_id):
    """Write the event, then its cells file again with the hit_ids `hit_id(old ids)`."""
    write_event(event, tmp_path, event_id)
    cells = dict(event["cells"], hit_id=hit_id(event["cells"]["hit_id"]).astype(np.int32))
    write_event({"cells": cells}, tmp_path, event_id)
    return tmp_path / f"event{event_id:09d}-cells.csv"


def test_cells_must_belong_to_the_hits(tmp_path, event):
    n_hits = len(event["hits"]["hit_id"])

    def every_tenth_stray(ids):
        return np.where(np.arange(len(ids)) % 10 == 0, ids + n_hits, ids)

    path = _rewrite_cells(tmp_path, event, 6, every_tenth_stray)
    n_bad = len(range(0, len(event["cells"]["hit_id"]), 10))
    with pytest.raises(InputError) as info:
        read_event(tmp_path, 6)
    message = str(info.value)
    assert info.value.path == str(path)
    assert f"{n_bad} of its {len(event['cells']['hit_id'])} cells" in message, message
    assert "event000000006-hits.csv does not hold (e.g. hit_id " in message, message
    example = int(message.split("e.g. hit_id ")[1].split(")")[0])
    assert example > n_hits and example not in event["hits"]["hit_id"]

    path = _rewrite_cells(tmp_path, event, 7, lambda ids: ids + 10 * n_hits)  # another event's cells
    with pytest.raises(InputError, match=r"-cells\.csv: none of its \d+ cells belongs to a hit") as info:
        read_event(tmp_path, 7, parts=("hits", "cells"))
    assert info.value.path == str(path) and "so no hit has any cell" in str(info.value)


def test_a_cells_file_without_cells(tmp_path, event):
    write_event(event, tmp_path, 8)
    path = tmp_path / "event000000008-cells.csv"
    path.write_text("hit_id,ch0,ch1,value\n")
    with pytest.raises(InputError, match=r"-cells\.csv: the cells file holds no cells, so no hit has any"):
        read_event(tmp_path, 8)
