"""The DUNE direction head's two parts and the rules that combine them, on validation and test.

Produces the head-combination figures of BUILD_NOTES.md (DUNE, "Axis and sense"): the default
direction head (`DirectionConfig.head = "axis_vector"`) outputs an axis a (trained sign-blind) and a
vector v (trained on the direction loss). For a finished one-member three-plane direction run this
prints, per split, the mean and median angular error, the mean axis error and the fraction of events
with the right sense (angle < 90 deg) of each rule: v alone, the axis turned to v's side, and
v + k s a for k = 0.5, 1, 2 (s = sign(a . v); k = 1 is the bisector, the rule the model uses).

    python scripts/dune_combine.py runs/dune/<run-id>            # a run of --network three_plane --members 1
    python scripts/dune_combine.py runs/dune/<run-id> --data-dir data

The run's data (its config.json) is read again from --data-dir (simulated once, cached there).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a DUNE direction run folder, finished or interrupted (its best checkpoint)")
    p.add_argument("--data-dir", default="data", help="where the simulated default data is cached")
    a = p.parse_args(argv)

    import numpy as np

    from jaxhep import metrics
    from jaxhep.config import from_dict
    from jaxhep.dune import dataset
    from jaxhep.dune.config import DuneConfig
    from jaxhep.dune.training import build, load_trained, optimizer
    from jaxhep.train import load_best, predict_with

    run = Path(a.run)
    cfg = json.loads((run / "config.json").read_text())["dune"]
    data = dataset.load_run(from_dict(DuneConfig, cfg), a.data_dir)
    folder = run / "models" / "direction_three_plane"
    if (folder / "model.json").exists():
        model = load_trained(folder).model
    else:  # an interrupted run: its best checkpoint so far
        dune = from_dict(DuneConfig, cfg)
        model = build("direction", "three_plane", dune.net, dune.train.precision, dune.train.seed)
        model = load_best(model, dune.train, folder / "ckpt", optimizer)
    if cfg["net"]["direction"]["head"] != "axis_vector":
        raise SystemExit(
            f"{run}: head {cfg['net']['direction']['head']!r}; the rules combine axis_vector's parts"
        )
    print("split | rule | mean angle | median angle | mean axis | sense right")
    for part in ("val", "test"):
        n = len(data.rows[part])
        outputs = predict_with(model, lambda m, b: {"raw": m.member_outputs(b)[0]}, data.reader(part), n, 512)
        raw = np.asarray(outputs["raw"])
        axis, vector, true = raw[:, :3], raw[:, 3:], data.column("direction", part)
        s = np.where(np.sum(axis * vector, 1) < 0, -1.0, 1.0)[:, None]
        rules = {"vector": vector, "oriented axis": s * axis}
        rules.update({f"v + {k} s a": vector + k * s * axis for k in (0.5, 1, 2)})
        for name, d in rules.items():
            ang, ax = metrics.angular_error_deg(d, true), metrics.axis_error_deg(d, true)
            print(
                f"{part} | {name} | {ang.mean():.1f} | {np.median(ang):.1f} | {ax.mean():.1f} "
                f"| {np.mean(ang < 90):.3f}"
            )


if __name__ == "__main__":
    main()
