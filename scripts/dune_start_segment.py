"""What the start of a DUNE electron's track tells, without learning: the axis error of the
classical fit of the whole cluster against that of its first L mm (`moments.start_axes`), at the
true start (the sense given by the truth: an oracle) and at the wrong end, overall and by energy.

Produces the start-segment figures of BUILD_NOTES.md (DUNE, "The fit as the network's start"): the
bound on what a start-segment axis gives even with a perfect sense, and how much a wrong sense costs.

    python scripts/dune_start_segment.py                      # the 24 k-event sample's test split
    python scripts/dune_start_segment.py --n-events 50000 --lengths 10 15 20

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
    a = p.parse_args(argv)

    import numpy as np

    from jaxhep import metrics
    from jaxhep.dune import dataset, evaluate, moments
    from jaxhep.dune.config import DataConfig

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


if __name__ == "__main__":
    main()
