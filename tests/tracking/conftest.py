"""The tiny two-stage tracking run that the experiment, config and API tests share (made once)."""

import pytest

from experiments import tracking as tracking_experiment
from tests.smoke import smoke_args

TINY = ("data.n_events=8", "data.pileup=5")  # --quick, smaller: 4 training, 2 validation, 2 test events


@pytest.fixture(scope="session")
def dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("tracking")
    return {"workdir": str(base / "runs"), "data": str(base / "data")}


@pytest.fixture(scope="session")
def quick_run(dirs):
    return tracking_experiment.main(
        smoke_args(*TINY, "train.epochs=2", workdir=dirs["workdir"], data_dir=dirs["data"])
    )


@pytest.fixture(scope="session")
def reused_filter_run(dirs, quick_run):
    """A run whose first stage is `quick_run`'s filter (cascade.filter_run), one epoch of stage 2."""
    return tracking_experiment.main(
        smoke_args(
            *TINY,
            "train.epochs=1",
            f"cascade.filter_run={quick_run.path}",
            workdir=dirs["workdir"],
            data_dir=dirs["data"],
        )
    )
