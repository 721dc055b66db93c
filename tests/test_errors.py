"""User errors: one printable line that names the file, whatever the problem text quotes."""

import os
import pickle

import pytest

from jaxhep import cli
from jaxhep.errors import ConfigError, InputError, NonFiniteLossError
from jaxhep.tracking.io import read_event

# What a parser's error quoting a corrupt file's row looks like.
RAW = (
    "CSV parse error: Expected 7 columns, got 2: \x07\x00\x1b[31mred\x7f\udcff\ufffd \u202eevil"
    "\r\nsecond line\n"
)


def _is_one_printable_line(text):
    return text.isprintable() and "\ufffd" not in text


def test_problem_text_is_escaped_and_folded():
    err = InputError("/data/event000000001-hits.csv", RAW)
    message = str(err)
    assert _is_one_printable_line(message), repr(message)
    assert message == (
        "/data/event000000001-hits.csv: CSV parse error: Expected 7 columns, got 2: "
        "\\x07\\x00\\x1b[31mred\\x7f\\xff\\ufffd \\u202eevil second line"
    )
    assert err.path == "/data/event000000001-hits.csv" and err.problem == RAW  # kept as given


def test_non_ascii_text_is_kept():
    message = str(InputError("/data/données.csv", "column 'µ' is empty"))
    assert message == "/data/données.csv: column 'µ' is empty"


def test_long_problems_are_cut_but_not_the_path():
    path = "/data/" + "d" * 400 + "/tracks.csv"
    err = InputError(path, "unreadable (" + "\x01" * 1000 + ")")
    message = str(err)
    assert message.startswith(path + ": unreadable (\\x01") and message.endswith("…")
    problem = message[len(path) + 2 :]
    assert 280 <= len(problem) <= 301 and "\\x0…" not in problem  # an escape is never cut in two
    assert _is_one_printable_line(message)


def test_bytes_are_escaped():
    assert str(InputError("f.bin", b"magic \xff\xfe\n")) == "f.bin: magic \\xff\\xfe"


def test_the_other_errors_are_printable_too():
    message = str(ConfigError("unknown key 'a\nb' \x1b[2J" + "x" * 2000))
    assert _is_one_printable_line(message) and message.startswith("unknown key 'a b' \\x1b[2J")
    assert message.endswith("…") and len(message) < 700
    assert str(NonFiniteLossError("fse: the loss became NaN\n")) == "fse: the loss became NaN"


def test_input_errors_survive_pickling():
    # A grain worker process sends the error it raised to the parent pickled.
    err = pickle.loads(pickle.dumps(InputError("/data/x.npz", "'energy' holds NaN")))
    assert isinstance(err, InputError) and str(err) == "/data/x.npz: 'energy' holds NaN"


def test_run_main_prints_one_line(capsys):
    def main(argv):
        raise InputError("/data/t.csv", RAW)

    with pytest.raises(SystemExit) as info:
        cli.run_main(main, [])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: /data/t.csv: CSV parse error") and err.count("\n") == 1, repr(err)
    assert _is_one_printable_line(err[:-1])


@pytest.mark.parametrize("seed", range(5))
def test_a_trackml_file_of_random_bytes(tmp_path, capsys, seed):
    path = tmp_path / "event000000001-hits.csv"
    path.write_bytes(os.urandom(3000))

    def main(argv):
        read_event(tmp_path, 1, parts=("hits",))

    with pytest.raises(SystemExit) as info:
        cli.run_main(main, [])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and err.count("\n") == 1, repr(err)
    assert _is_one_printable_line(err[:-1]), repr(err)
    assert len(err) < len(str(path)) + 320
