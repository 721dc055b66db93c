"""Argument lists of the experiment tests: `--quick` on one device, no progress bars, plus settings."""


def smoke_args(*settings: str, workdir=None, data_dir=None) -> list[str]:
    """["--quick", "--no-progress", "--devices", "1"] + ["--set", s] for each "key=value" setting,
    + --workdir / --data-dir when given. One device keeps compile times down; sharding has its
    own tests (test_train, test_distributed)."""
    args = ["--quick", "--no-progress", "--devices", "1"]
    for setting in settings:
        args += ["--set", setting]
    if workdir is not None:
        args += ["--workdir", str(workdir)]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    return args
