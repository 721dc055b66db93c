"""Errors that a user can act on: each names the file (or flag) and the problem.

`jaxhep.cli.run_main` turns them into one line on stderr and a non-zero exit status,
instead of a traceback. Their text is kept printable and on one line (`printable`): a
problem often quotes a library's error, which may quote the bytes of a corrupt file.
"""

from __future__ import annotations

import re

# Characters of problem text kept; a library's error quoting a corrupt file's rows can be
# kilobytes long, and what the user needs is in its first line.
PROBLEM_LIMIT = 300
# The whole message of the other errors: they name no path apart, but may embed one (a run
# folder, a checkpoint) besides their problem.
MESSAGE_LIMIT = 600

# A line break, with the blanks around it (and further breaks), becomes one space.
_LINE_BREAKS = re.compile(r"(?:[ \t]*(?:\r\n|\r|\n))+[ \t]*")


def _escape(char: str) -> str:
    """A printable stand-in for one unprintable character."""
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that did not decode (errors="surrogateescape")
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text, limit: int | None = PROBLEM_LIMIT) -> str:
    """`text` on one printable line, at most `limit` characters (then "…"); None: no limit.

    Line breaks are folded into a space; control characters, undecodable bytes (surrogate
    escapes, bytes objects) and U+FFFD, the mark a decoder leaves for a byte it could not
    decode, are written as Python escapes (\\x07, \\ufffd), so a message quoting a corrupt
    file cannot garble the terminal or span lines. Other non-ASCII text (µ, é) is kept.
    """
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", errors="surrogateescape")
    text = _LINE_BREAKS.sub(" ", str(text).strip())
    out, size = [], 0
    for char in text:
        piece = char if char.isprintable() and char != "\ufffd" else _escape(char)
        if limit is not None and size + len(piece) > limit:
            out.append("…")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


class JaxhepError(Exception):
    """Base class of every error meant for the user rather than the developer."""

    def __str__(self) -> str:
        return printable(super().__str__(), MESSAGE_LIMIT)


class InputError(JaxhepError):
    """A data file is missing, unreadable, or does not hold what the task needs.

    `path` and `problem` keep what was given; the message escapes both and cuts the problem
    to PROBLEM_LIMIT characters, never the path (it is what the user has to find).
    """

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{printable(self.path, None)}: {printable(problem)}")

    def __str__(self) -> str:
        return self.args[0]  # already printable; a long path must not be cut

    def __reduce__(self):
        # Rebuilt from (path, problem), not from the message: a grain worker process that
        # raises one (e.g. NpzSource.read_rows) sends it to the parent pickled.
        return type(self), (self.path, self.problem)


class DeviceError(JaxhepError):
    """The requested accelerator (e.g. --tpu) is not available."""


class ConfigError(JaxhepError):
    """A configuration value or override is invalid."""


class NonFiniteLossError(JaxhepError):
    """Training produced a NaN/inf loss; the last good checkpoint is kept."""
