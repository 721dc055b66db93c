"""Errors that a user can act on: each names the file (or flag) and the problem.

`jaxhep.cli.run_main` turns them into one line on stderr and a non-zero exit status,
instead of a traceback.
"""


class JaxhepError(Exception):
    """Base class of every error meant for the user rather than the developer."""


class InputError(JaxhepError):
    """A data file is missing, unreadable, or does not hold what the task needs."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DeviceError(JaxhepError):
    """The requested accelerator (e.g. --tpu) is not available."""


class ConfigError(JaxhepError):
    """A configuration value or override is invalid."""


class NonFiniteLossError(JaxhepError):
    """Training produced a NaN/inf loss; the last good checkpoint is kept."""
