"""Cross-check `jaxhep.tracking.score` against the official trackml-library (not part of the test suite).

trackml-library needs pandas, which jaxhep does not depend on, so this runs by hand in a throwaway
environment (jaxhep's tracking data code needs only numpy and pyarrow):

    python3 -m venv /tmp/trackml-venv && /tmp/trackml-venv/bin/pip install numpy "pandas<3" pyarrow
    git clone https://github.com/LAL/trackml-library /tmp/trackml-library
    PYTHONPATH=.:/tmp/trackml-library /tmp/trackml-venv/bin/python \
        tests/tracking/crosscheck_trackml_library.py

(pandas 3's copy-on-write turns the library's chained `fillna(..., inplace=True)` into a no-op, so its
weights break there; use pandas 2.) Each event is written with `write_event` and read back with the
library's own `load_event`, which checks the file format too. Prints one line per comparison and the
largest absolute difference; exits non-zero above 1e-9.
"""

from __future__ import annotations

import sys
import tempfile
import time

import numpy as np
import pandas as pd
from trackml.dataset import load_event
from trackml.score import score_event
from trackml.weights import weight_hits_phase1

from jaxhep.tracking.score import hit_weights, trackml_score
from jaxhep.tracking.sim.simulate import simulate_event, write_event

TOLERANCE = 1e-9


def submissions(truth: pd.DataFrame, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Hit -> track assignments that exercise every branch of the score."""
    hit = truth["hit_id"].to_numpy()
    pid = truth["particle_id"].to_numpy()
    tz = truth["tz"].to_numpy()
    uniq, dense = np.unique(pid, return_inverse=True)
    n = len(hit)
    out = {"perfect": pid.copy()}
    # Shuffled: 5 %, 30 % and 100 % of the hits moved to a random particle's track.
    for frac in (0.05, 0.3, 1.0):
        t = pid.copy()
        m = rng.random(n) < frac
        t[m] = rng.choice(uniq, m.sum())
        out[f"shuffled_{int(frac * 100)}"] = t
    # Half-split: each particle cut into two tracks at the middle of its hits ordered by |tz|.
    order = np.lexsort((np.abs(tz), dense))
    pos = np.empty(n, np.int64)
    counts = np.bincount(dense)
    starts = np.cumsum(counts) - counts
    pos[order] = np.arange(n) - np.repeat(starts, counts)
    out["half_split"] = dense * 2 + (pos >= counts[dense] / 2)
    out["split_at_third"] = dense * 2 + (pos >= counts[dense] / 3)
    # Merged: pairs (and triples) of particles share one track; ties of equal hit counts appear.
    out["merged_pairs"] = dense // 2
    out["merged_triples"] = dense // 3
    # Random: track ids uniform in 1..n/10.
    out["random"] = rng.integers(1, n // 10 + 2, n)
    # Noise hits all in one track; each noise hit its own track.
    t = pid.copy()
    t[pid == 0] = uniq.max() + 1
    out["noise_one_track"] = t
    t = pid.copy()
    t[pid == 0] = uniq.max() + 1 + np.arange((pid == 0).sum())
    out["noise_singletons"] = t
    # One-hit tracks everywhere.
    out["all_singletons"] = np.arange(n)
    subs = {name: pd.DataFrame({"hit_id": hit, "track_id": t.astype(np.int64)}) for name, t in out.items()}
    # Missing hits: a tenth of the hits left out of the submission (the library gives them NaN tracks).
    keep = rng.random(n) > 0.1
    subs["missing_10pct"] = subs["perfect"][keep].reset_index(drop=True)
    subs["missing_10pct_shuffled"] = subs["shuffled_30"][keep].reset_index(drop=True)
    # Extra hits that are not in the truth are ignored by the left join.
    extra = pd.DataFrame({"hit_id": np.arange(n + 1, n + 101), "track_id": np.arange(100)})
    subs["extra_hits"] = pd.concat([subs["perfect"], extra], ignore_index=True)
    return subs


def main() -> int:
    rng = np.random.default_rng(12345)
    worst = 0.0
    with tempfile.TemporaryDirectory() as folder:
        for seed, pileup in ((1, 200), (2, 200), (3, 20), (4, 5), (5, 1)):
            event = simulate_event(seed, pileup)
            prefix = write_event(event, folder, seed, compress=seed % 2 == 0)
            _, _, particles, truth = load_event(str(prefix))

            lib = weight_hits_phase1(truth, particles)
            ours = hit_weights(
                {k: truth[k].to_numpy() for k in truth}, {k: particles[k].to_numpy() for k in particles}
            )
            stored = event["truth"]["weight"].astype(np.float64)
            d_w = float(np.max(np.abs(lib["weight"].to_numpy() - ours)))
            d_stored = float(np.max(np.abs(lib["weight"].to_numpy() - stored)))
            print(
                f"event {seed} mu={pileup}: {len(truth)} hits; weights |lib - ours| = {d_w:.2e}, "
                f"|lib - file (float32)| = {d_stored:.2e}"
            )
            worst = max(worst, d_w)
            # Ties in |tz - vz| (pandas' average rank) and pT below the 0.05 GeV floor: coarse tz, and a
            # tenth of the particles slowed down.
            coarse_truth = truth.copy()
            coarse_truth["tz"] = (coarse_truth["tz"] / 200.0).round() * 200.0
            slow = particles.copy()
            slow.loc[::10, ["px", "py"]] *= 0.04
            lib_c = weight_hits_phase1(coarse_truth, slow)
            ours_c = hit_weights(
                {k: coarse_truth[k].to_numpy() for k in coarse_truth}, {k: slow[k].to_numpy() for k in slow}
            )
            d_c = float(np.max(np.abs(lib_c["weight"].to_numpy() - ours_c)))
            print(f"  weights with tied |tz - vz| and pT < 0.05 GeV: |lib - ours| = {d_c:.2e}")
            worst = max(worst, d_c)

            # Score with the library's float64 weights on both sides.
            truth64 = truth[["hit_id", "particle_id"]].copy()
            truth64["weight"] = lib["weight"].to_numpy()
            for name, sub in submissions(truth, rng).items():
                t0 = time.perf_counter()
                s_lib = float(score_event(truth64, sub))
                t1 = time.perf_counter()
                s_ours = trackml_score(
                    truth64["hit_id"],
                    truth64["particle_id"],
                    truth64["weight"],
                    sub["hit_id"],
                    sub["track_id"],
                )
                t2 = time.perf_counter()
                d = abs(s_lib - s_ours)
                worst = max(worst, d)
                print(
                    f"  {name:24s} lib {s_lib:.12f}  ours {s_ours:.12f}  diff {d:.1e}  "
                    f"time lib {t1 - t0:.2f}s ours {t2 - t1:.3f}s"
                )
    print(f"largest difference: {worst:.2e}")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
