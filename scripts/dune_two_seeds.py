"""Two one-member DUNE direction runs combined as a two-member ensemble, on the test split.

Produces the two-seeds figure of BUILD_NOTES.md (DUNE, "Ensembles"): the mean / median angular
error, mean axis error and fraction with the right sense of each run's three-plane network alone,
and of the two combined as `BootstrapEnsemble` combines its members (`ensemble.combine_directions`:
the bisector of the members' mean vector and the principal line of their axes).

    python -m experiments.dune direction --network three_plane --members 1 --seed 0 ...   # run A
    python -m experiments.dune direction --network three_plane --members 1 --seed 1 ...   # run B
    python scripts/dune_two_seeds.py runs/dune/<run A> runs/dune/<run B>

Both runs must use the same data (the first run's config.json decides; read from --data-dir).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="finished one-member DUNE direction run folders")
    p.add_argument("--data-dir", default="data", help="where the simulated default data is cached")
    a = p.parse_args(argv)

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
        model = load_trained(run / "models" / "direction_three_plane").model
        out = predict_with(model, lambda m, b: {"raw": m.member_outputs(b)[0]}, data.reader("test"), n, 512)
        return np.asarray(out["raw"])

    def show(name: str, d) -> None:
        ang, ax = metrics.angular_error_deg(d, true), metrics.axis_error_deg(d, true)
        print(f"{name}: mean angle {ang.mean():.1f}, median angle {np.median(ang):.1f}, ", end="")
        print(f"mean axis {ax.mean():.1f}, sense right {np.mean(ang < 90):.3f}")

    raws = [raw_outputs(r) for r in runs]
    for run, raw in zip(runs, raws):
        show(str(run), np.asarray(directions(raw)))
    show("combined", np.asarray(ens.combine_directions(np.stack(raws))["direction"]))


if __name__ == "__main__":
    main()
