"""Electron vs photon from 32x32 ECAL crops: the seed's ResNet-15 + SE and the plain ResNet-15.

python -m experiments.egamma                           # simulated showers, both networks, report
python -m experiments.egamma --quick                   # one-minute smoke run
python -m experiments.egamma --data SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5 \\
                             --data SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5
python -m experiments.egamma --model se --tpu
python -m experiments.egamma export RUN_DIR           # its networks as ONNX files
"""

from jaxhep import cli
from jaxhep.egamma import config, experiment, export

TASK = cli.Task.of("egamma", __doc__, config.EgammaConfig, config, experiment, export=export)


def main(argv=None):
    """The experiment on `argv` (the command line's arguments); returns its Run."""
    return cli.main(TASK, argv)


if __name__ == "__main__":
    cli.run(TASK)
