"""ALICE Run 3 particle identification: SimpleNN, DNN and FSE+Attention vs Bayesian PID.

python -m experiments.pid                        # simulated 1 M-track Pb-Pb sample, 3 models x 3 ranges
python -m experiments.pid --quick                # one-minute smoke run
python -m experiments.pid --data tracks.parquet --model fse --range 0.7-1.5
python -m experiments.pid --resume runs/pid/<run-id>
python -m experiments.pid --tpu                  # same on a TPU (clear error if there is none)
"""

from jaxhep import cli
from jaxhep.pid import config, experiment, export

TASK = cli.Task.of("pid", __doc__, config.PIDConfig, config, experiment, export=export)


def main(argv=None):
    """The experiment on `argv` (the command line's arguments); returns its Run."""
    return cli.main(TASK, argv)


if __name__ == "__main__":
    cli.run(TASK)
