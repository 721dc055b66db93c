"""DUNE direction runs' members, each alone and all combined, on the test split.

Produces the ensemble figures of README.md and BUILD_NOTES.md (DUNE, "Ensembles"): the mean / median
angular error, mean axis error and fraction with the right sense of every member of every run's
three-plane network alone, and of all of them combined as `BootstrapEnsemble` combines its members
(`ensemble.combine_directions`: the bisector of the members' mean vector and the principal line of
their axes). A 5-member run alone gives its members beside the ensemble (the combined line is the
run's report); two one-member runs of different seeds give a two-member ensemble.

    python scripts/dune_members.py runs/dune/<5-member run>
    python scripts/dune_members.py runs/dune/<run, seed 0> runs/dune/<run, seed 1>

All runs must use the same data (the first run's config.json decides; read from --data-dir).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="finished DUNE direction run folders (three-plane network)")
    p.add_argument("--data-dir", default="data", help="where the simulated default data is cached")
    a = p.parse_args(argv)

    import jax.numpy as jnp
    import numpy as np

    from jaxhep import metrics
    from jaxhep.config import from_dict
    from jaxhep.dune import dataset
    from jaxhep.dune import ensemble as ens
    from jaxhep.dune.config import DuneConfig
    from jaxhep.dune.models import directions
    from jaxhep.dune.training import load_trained
    from jaxhep.train import predict_with

    runs = [Path(r) for r in a.runs]
    cfg = json.loads((runs[0] / "config.json").read_text())["dune"]
    data = dataset.load_run(from_dict(DuneConfig, cfg), a.data_dir)
    n, true = len(data.rows["test"]), data.column("direction", "test")

    def raw_outputs(run: Path) -> np.ndarray:
        """[M, n, ...]: every member's raw output on the test split."""
        model = load_trained(run / "models" / "direction_three_plane").model
        # Rows first ([n, M, ...]): predict_with trims and joins its batches along the leading axis.
        per_row = lambda m, b: {"raw": jnp.moveaxis(m.member_outputs(b), 0, 1)}  # noqa: E731
        return np.moveaxis(np.asarray(predict_with(model, per_row, data.reader("test"), n, 512)["raw"]), 1, 0)

    def show(name: str, d) -> np.ndarray:
        """Prints the figures of directions d [n, 3]; returns their angular errors [n] (degrees)."""
        ang, ax = metrics.angular_error_deg(d, true), metrics.axis_error_deg(d, true)
        print(f"{name}: mean angle {ang.mean():.1f}, median angle {np.median(ang):.1f}, ", end="")
        print(f"mean axis {ax.mean():.1f}, sense right {np.mean(ang < 90):.3f}")
        return ang

    raws, rights = [], []
    for run in runs:
        for m, raw in enumerate(raw_outputs(run)):
            rights.append(show(f"{run} member {m}", np.asarray(directions(raw))) < 90)
            raws.append(raw)
    show(f"combined ({len(raws)} members)", np.asarray(ens.combine_directions(np.stack(raws))["direction"]))
    # Whether the members' errors are shared: events where every member has the sense right / wrong.
    rights = np.stack(rights)
    print(
        f"sense right for every member {rights.all(0).mean():.3f}, wrong for every member "
        f"{(~rights).all(0).mean():.3f}, members disagreeing {(rights.any(0) & ~rights.all(0)).mean():.3f}"
    )


if __name__ == "__main__":
    main()
