"""TrackML tracking: hits -> graph -> TransformerConv edge classifier -> tracks -> TrackML score.

python -m experiments.tracking                       # simulated mu = 200 events, train + evaluate
python -m experiments.tracking --quick               # one-minute smoke run (low pile-up)
python -m experiments.tracking --data path/to/train_100_events --pt-min 1.0
python -m experiments.tracking --tpu

Two stages by default (`cascade.stages`, jaxhep/tracking/cascade.py): a first classifier prunes each
graph, a second classifies what is left. `--set cascade.filter_run=RUN_DIR` reuses a finished run's
classifier as the first stage.

python -m experiments.tracking export RUN_DIR       # its classifiers as ONNX files (RUN_DIR/export/onnx)
"""

from jaxhep import cli
from jaxhep.tracking import config, experiment, export

TASK = cli.Task.of("tracking", __doc__, config.TrackingConfig, config, experiment, export=export)


def main(argv=None):
    """The experiment on `argv` (the command line's arguments); returns its Run."""
    return cli.main(TASK, argv)


if __name__ == "__main__":
    cli.run(TASK)
