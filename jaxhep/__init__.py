"""jaxhep: accelerator-first training of particle-physics neural networks in pure JAX.

The core (config, cli, mesh, pipeline, train, checkpoint, losses, metrics, plots, runs)
never imports a task; each physics task lives in its own sub-package.
"""

__version__ = "0.1.0"
