"""DUNE supernova electrons: direction regression, ES/CC channel tagging, main-track identification.

python -m experiments.dune direction                 # three-plane vs single-plane CNN ensembles
python -m experiments.dune channel                   # ES vs CC on the collection-plane volume images
python -m experiments.dune maintrack                 # main track vs background clusters
python -m experiments.dune direction --search 20     # 20-trial hyper-parameter search (resumable)
python -m experiments.dune direction --data three_plane_matched_50k.npz
python -m experiments.dune registry                  # every run and trial, as a table
python -m experiments.dune export RUN_DIR            # its networks as ONNX files
"""

from jaxhep import cli
from jaxhep.dune import config, experiment, export, search

TASK = cli.Task.of(
    "dune",
    __doc__,
    config.DuneConfig,
    config,
    experiment,
    export=export,
    search=search.search,
    commands={"registry": experiment.registry},
)


def main(argv=None):
    """The experiment on `argv` (the command line's arguments); returns its Run (the search's
    result with --search, the table with `registry`)."""
    return cli.main(TASK, argv)


if __name__ == "__main__":
    cli.run(TASK)
