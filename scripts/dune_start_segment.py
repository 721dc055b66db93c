"""What the start of a DUNE electron's track tells, without learning: the axis error of the
classical fit of the whole cluster against that of its first L mm (`moments.start_axes`), at the
true start (the sense given by the truth: an oracle) and at the wrong end, overall and by energy.

Produces the start-segment figures of BUILD_NOTES.md (DUNE, "The fit as the network's start"): the
bound on what a start-segment axis gives even with a perfect sense, and how much a wrong sense costs.
With --run, a finished direction run of the fit inside (`head=axis_sense`, `start_mm`): its network's
axis as it is, and with the sense given by the truth (the start axis at the true start plus the
network's correction), which splits its axis error into the sense's share and the rest.

    python scripts/dune_start_segment.py                      # the 24 k-event sample's test split
    python scripts/dune_start_segment.py --n-events 50000 --lengths 10 15 20
    python scripts/dune_start_segment.py --run runs/dune/<run-id> --lengths 15   # its own sample

The sample is simulated once into --data-dir (as the experiment does) and split as the experiment
splits it.
"""

from __future__ import annotations

import argparse


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-events", type=int, default=24_000, help="simulated ES events (data.n_events)")
    p.add_argument("--data-dir", default="data", help="where the simulated sample is cached")
    p.add_argument("--lengths", type=float, nargs="+", default=[10, 15, 20, 25, 30, 40, 60], help="L (mm)")
    p.add_argument("--run", help="a finished direction run with head=axis_sense and start_mm (its sample)")
    a = p.parse_args(argv)

    import numpy as np

    from jaxhep import metrics
    from jaxhep.dune import dataset, evaluate, moments
    from jaxhep.dune.config import DataConfig

    if a.run:
        import json

        from jaxhep.config import from_dict
        from jaxhep.dune.config import DuneConfig
        from jaxhep.dune.training import load_trained

        cfg = from_dict(DuneConfig, json.loads(open(f"{a.run}/config.json").read())["dune"])
        if cfg.net.direction.head != "axis_sense" or not cfg.net.direction.start_mm:
            raise SystemExit(f"{a.run}: --run needs a direction run with head=axis_sense and start_mm > 0")
        trained = load_trained(f"{a.run}/models/direction_three_plane")
        data = dataset.load_run(cfg, a.data_dir)
    else:
        data = dataset.load("direction", DataConfig(n_events=a.n_events), a.data_dir)
    n = len(data.rows["test"])
    batch = data.reader("test")(np.arange(n))
    images = {k: batch[k] for k in ("images_u", "images_v", "images_x")}
    true, energy = data.column("direction", "test"), data.column("energy", "test")
    fit = moments.principal_axes(images)
    going = np.where(np.sum(fit * true, 1, keepdims=True) >= 0, fit, -fit)  # the oracle's sense

    def by_energy(err):
        _, mean, _, _ = metrics.binned_mean(energy, err, evaluate.ENERGY_BINS)
        return " | ".join(f"{m:.1f}" for m in mean)

    bins = evaluate.ENERGY_BINS
    heads = " | ".join(f"{lo:g}-{hi:g}" for lo, hi in zip(bins[:-1], bins[1:]))
    print(f"test split of {n} events; mean axis error (deg), by electron energy (MeV)")
    print(f"| axis | all | {heads} |")
    print("|---|---:|" + "---:|" * (len(bins) - 1))
    whole = metrics.axis_error_deg(fit, true)
    print(f"| whole cluster (the fit) | {whole.mean():.1f} | {by_energy(whole)} |")
    for length in a.lengths:
        for name, sense in (("true start", 1.0), ("wrong end", -1.0)):
            err = metrics.axis_error_deg(moments.start_axes(images, sense * going, length), true)
            print(f"| first {length:g} mm, {name} | {err.mean():.1f} | {by_energy(err)} |")
    if a.run:
        network, oracle, direction = _network_axes(trained.model.member(0), batch, true)
        for name, axes in (("the network", network), ("the network, sense from the truth", oracle)):
            err = metrics.axis_error_deg(axes, true)
            print(f"| {name} | {err.mean():.1f} | {by_energy(err)} |")
        right = (metrics.angular_error_deg(direction, true) < 90).astype(float)
        _, mean, _, count = metrics.binned_mean(energy, right, bins)
        print("\nthe network's sense right (angle < 90 deg), by electron energy (MeV)")
        print(f"| | all | {heads} |")
        print("|---|---:|" + "---:|" * (len(bins) - 1))
        print(f"| test events | {n} | " + " | ".join(str(c) for c in count) + " |")
        print(f"| sense right | {right.mean():.3f} | " + " | ".join(f"{m:.3f}" for m in mean) + " |")


def _network_axes(member, batch: dict, true, chunk: int = 256):
    """(its axes [n, 3], the same with the sense given by the truth [n, 3], its directions [n, 3]) of a
    direction network of the fit inside with start axes (`DirectionCNN.raw`: axis = p s_along + (1 - p)
    s_against + correction, p the sense probability): the oracle puts p = 1 where the electron goes along
    the fit's axis, else 0, and keeps the correction."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxhep.dune import models

    member.eval()
    keys = [k for k in batch if k in (*models.PLANE_KEYS.values(), models.VOLUME_KEY)]

    @jax.jit
    def parts(b):
        axis, _, _, starts = member.fit(b)
        raw = member.raw(b)
        p = jax.nn.sigmoid(raw[:, 3:])
        correction = raw[:, :3] - (p * starts[:, 0] + (1.0 - p) * starts[:, 1])
        return axis, starts, raw[:, :3], correction, models.directions(raw)

    network, oracle, direction = [], [], []
    for lo in range(0, len(true), chunk):
        sl = slice(lo, lo + chunk)
        axis, starts, raw, correction, d = parts({k: jnp.asarray(batch[k][sl], jnp.float32) for k in keys})
        along = np.sum(np.asarray(axis) * true[sl], 1, keepdims=True) >= 0
        start = np.where(along, np.asarray(starts[:, 0]), np.asarray(starts[:, 1]))
        network.append(np.asarray(raw))
        oracle.append(start + np.asarray(correction))
        direction.append(np.asarray(d))
    return np.concatenate(network), np.concatenate(oracle), np.concatenate(direction)


if __name__ == "__main__":
    main()
