"""What the volume around a DUNE electron says about its sense, without learning: on which side of the
cluster, along the classical fit's axis, the X-plane volume's off-track charge lies
(`moments.volume_profiles`), against the side the electron went, overall and by energy.

Produces the "brems side" figures of BUILD_NOTES.md (DUNE, "The fit as the network's start"): why the
direction network reads volume_x (`--set net.direction.volume_bins=16`). Bremsstrahlung photons
convert ahead of the electron, mostly outside its 16-channel cluster image.

    python scripts/dune_brems_side.py                 # the 24 k-event sample's test split
    python scripts/dune_brems_side.py --part val

The sample is simulated once into --data-dir (as the experiment does) and split as the experiment
splits it.
"""

from __future__ import annotations

import argparse


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-events", type=int, default=24_000, help="simulated ES events (data.n_events)")
    p.add_argument("--data-dir", default="data", help="where the simulated sample is cached")
    p.add_argument("--part", default="test", choices=("train", "val", "test"))
    p.add_argument("--bins", type=int, default=16, help="profile bins over +-200 mm")
    a = p.parse_args(argv)

    import numpy as np

    from jaxhep import metrics
    from jaxhep.dune import dataset, evaluate, moments
    from jaxhep.dune.config import DataConfig

    data = dataset.load("direction", DataConfig(n_events=a.n_events), a.data_dir, ("volume_x",))
    n = len(data.rows[a.part])
    batch = data.reader(a.part)(np.arange(n))
    fit = moments.principal_axes({k: batch[k] for k in ("images_u", "images_v", "images_x")})
    true, energy = data.column("direction", a.part), data.column("energy", a.part)
    along = np.sum(fit * true, axis=1) >= 0  # the electron goes along the fit's axis
    profiles = moments.volume_profiles(batch["volume_x"], batch["images_x"], fit, a.bins)
    off = np.expm1(profiles[:, : a.bins]) * moments.VOLUME_ADC_SCALE  # ADC in each bin, off the track
    centres = np.linspace(-200.0, 200.0, a.bins)
    ahead = off @ np.sign(centres)  # off-track charge ahead of the centroid minus behind it
    has = off.sum(1) > 0
    right = (ahead > 0) == along

    print(f"{a.part} split, {n} events: off-track charge ahead of the cluster: the electron went that way")
    print(f"ROC AUC of the asymmetry for the sense: {metrics.roc_auc(along.astype(int), ahead):.3f}")
    print("| MeV | events with off-track charge | sense right among them |")
    print("|---|---:|---:|")
    bins = evaluate.ENERGY_BINS
    rows = [("all", np.ones(n, bool))] + [
        (f"{lo:g}-{hi:g}", (energy >= lo) & (energy < hi)) for lo, hi in zip(bins[:-1], bins[1:])
    ]
    for name, sel in rows:
        m = sel & has
        print(f"| {name} | {m.sum() / max(sel.sum(), 1):.2f} | {right[m].mean():.3f} |")


if __name__ == "__main__":
    main()
