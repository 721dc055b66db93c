"""From the vertex to the ECAL front: bending, bremsstrahlung and photon conversions.

The CMS tracker is modelled as thin slabs of material at the radii of its barrel layers
(3 pixel, 4 TIB, 6 TOB) and of its outer support, in a uniform B = 3.8 T field along z; the
ECAL barrel front is at R = 1.29 m (CMS detector paper, JINST 3 S08004). A particle of transverse
momentum pT curls with radius Rc = pT / (0.3 B), so an unradiating 50 GeV electron reaches the ECAL
ΔΦ = R / (2 Rc) = 0.0147 rad (0.85 crystal) from where a photon of the same direction lands.

Each event carries two tracks (an electron, or the e+e− pair of a converted photon, or one
unconverted photon and an empty slot). In each slab a charged track keeps the fraction
f = e^(−g), g ~ Gamma(x/ln 2) of its energy (Bethe–Heitler; ⟨f⟩ = e^(−x) for x in X0) and the
radiated energy travels on as a photon along the track's direction at that point, so it lands
between the undeflected and the fully bent position; the electron, lighter now, bends more.
A photon converts in a slab with probability 1 − exp(−7/9 · x) (x in X0); its pair shares the
energy by the Bethe–Heitler spectrum dσ/du ∝ 1 − 4/3 u(1 − u) and the two charges bend apart
in φ, which is what makes early conversions look electron-like.

Small-angle, transverse-plane kinematics: positions are the φ displacement y (metres at
radius r) and the direction ψ (rad) relative to the original direction; over Δr a track of
curvature κ moves by y += ψ Δr + κ Δr²/2, ψ += κ Δr. Neglected: the conversion of brem
photons, multiple scattering (0.3 mrad at 50 GeV), energy loss by ionisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

B_TESLA = 3.8  # CMS solenoid (JINST 3 S08004)
R_ECAL_M = 1.29  # ECAL barrel front face (JINST 3 S08004)
CONVERSION_PER_X0 = 7.0 / 9.0  # pair-production mean free path 9/7 X0 (PDG, "Passage of particles")
# Barrel layer radii (m) of the CMS tracker (JINST 3 S08004, Run 1): pixel 4.4 / 7.3 / 10.2 cm,
# TIB 25.5 / 33.9 / 41.8 / 49.8 cm, TOB 60.8 ... 108 cm, plus one slab at 1.18 m for the outer
# tracker support, thermal screen and services between the TOB and the ECAL. The share of the
# material per slab is our rough reading of the material-budget plots (pixel + beam pipe 15 %,
# TIB 30 %, TOB 40 %, outside the TOB 15 %); the material added at higher |eta| (cables, cooling)
# is spread alike. Material far out matters: brem and conversions there barely spread in phi.
LAYER_RADII_M = (
    0.044,
    0.073,
    0.102,
    0.255,
    0.339,
    0.418,
    0.498,
    0.608,
    0.692,
    0.780,
    0.868,
    0.965,
    1.080,
    1.180,
)
LAYER_SHARE = (0.05,) * 3 + (0.075,) * 4 + (0.40 / 6,) * 6 + (0.15,)

# Tracker material in X0 in front of the ECAL barrel versus |eta| (CMS tracker TDR / JINST 3
# S08004 Fig. 3.7 read roughly: ~0.4 X0 at eta = 0 rising to ~1.8 X0 at the barrel edge), as
# (|eta|, X0) knots interpolated linearly.
MATERIAL_KNOTS = ((0.0, 0.40), (0.5, 0.50), (1.0, 0.90), (1.2, 1.30), (1.479, 1.80))


def curvature_radius_m(pt_gev: float | np.ndarray, b_tesla: float = B_TESLA) -> float | np.ndarray:
    """Radius of curvature in metres: R = pT / (0.3 B), pT in GeV, B in tesla."""
    return pt_gev / (0.3 * b_tesla)


def tracker_material_x0(abs_eta: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Material traversed from the vertex to the ECAL front, in X0, [n] for |eta| [n]."""
    knots = np.asarray(MATERIAL_KNOTS)
    return scale * np.interp(abs_eta, knots[:, 0], knots[:, 1])


def pair_energy_share(n: int, rng: np.random.Generator) -> np.ndarray:
    """Energy fraction u of the electron of a conversion pair, [n], dσ/du ∝ 1 − 4/3 u(1 − u)."""
    u = rng.random(n)
    todo = rng.random(n) > 1.0 - 4.0 / 3.0 * u * (1.0 - u)
    while todo.any():  # rejection sampling; the acceptance is >= 2/3, so this ends fast
        k = int(todo.sum())
        u[todo] = rng.random(k)
        todo[todo] = rng.random(k) > 1.0 - 4.0 / 3.0 * u[todo] * (1.0 - u[todo])
    return u


@dataclass(frozen=True)
class Deposits:
    """Where the energy of each event reaches the ECAL, as S = 2 (n_layers + 1) sub-showers.

    Columns: layer 0 (track 0, track 1), layer 1 (...), ..., the ECAL front (track 0, track 1):
    a layer's columns hold the brem photon radiated there, the last two what is left of the
    tracks themselves.

    fraction: [n, S] share of the event's energy (rows sum to 1).
    phi: [n, S] impact position in φ, radians, relative to an undeflected straight line.
    slant: [n, S] angle between the sub-shower's direction and the radial direction at its
        impact point (rad, in φ): the shower axis drifts by depth × slant inside the crystal.
    is_photon: [n, S] the sub-shower is started by a photon (starts ≈ 9/7 X0 deeper).
    converted: [n] the photon converted in the tracker (always False for electrons).
    """

    fraction: np.ndarray
    phi: np.ndarray
    slant: np.ndarray
    is_photon: np.ndarray
    converted: np.ndarray


def propagate(
    is_electron: np.ndarray,
    abs_eta: np.ndarray,
    charge: np.ndarray,
    pt_gev: float,
    rng: np.random.Generator,
    material_scale: float = 1.0,
    b_tesla: float = B_TESLA,
) -> Deposits:
    """Carry electrons / photons through the tracker and return their ECAL sub-showers.

    Args:
        is_electron: [n] True for an electron event, False for a photon.
        abs_eta: [n] |eta| (sets the material).
        charge: [n] ±1, the electron's charge (ignored for photons).
        pt_gev: transverse momentum of the primary.
        material_scale: multiplies the material of every layer.
    """
    n = is_electron.shape[0]
    radii = np.asarray(LAYER_RADII_M)
    n_layers = len(radii)
    share = np.asarray(LAYER_SHARE) / np.sum(LAYER_SHARE)
    material = tracker_material_x0(abs_eta, material_scale)  # [n]
    rc0 = curvature_radius_m(pt_gev, b_tesla)

    # Photon conversion: the material depth t at which it converts is exponential with mean
    # 9/7 X0; it happens in the layer where the cumulative material first reaches t.
    t_conv = rng.exponential(1.0 / CONVERSION_PER_X0, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth_frac = np.where(material > 0, t_conv / material, np.inf)
    k_conv = np.searchsorted(np.cumsum(share)[:-1], depth_frac, side="left")
    k_conv = np.where(depth_frac <= 1.0, k_conv, n_layers)
    converted = ~is_electron & (k_conv < n_layers)
    pair = pair_energy_share(n, rng)

    # Two track slots per event. Electron: (e, empty). Converted: (e-, e+). Unconverted: (gamma, empty).
    frac = np.zeros((n, 2))
    frac[:, 0] = np.where(converted, pair, 1.0)
    frac[:, 1] = np.where(converted, 1.0 - pair, 0.0)
    q = np.zeros((n, 2))
    q[:, 0] = np.where(is_electron, charge, np.where(converted, -1.0, 0.0))
    q[:, 1] = np.where(converted, 1.0, 0.0)
    start_k = np.where(is_electron, -1, np.where(converted, k_conv, n_layers))[:, None]
    r_start = np.where(start_k < 0, 0.0, radii[np.minimum(start_k, n_layers - 1)])

    y = np.zeros((n, 2))
    psi = np.zeros((n, 2))
    sub_frac, sub_phi, sub_slant, sub_photon = [], [], [], []
    r_prev = 0.0
    for k, r in enumerate(list(radii) + [R_ECAL_M]):
        dr = np.clip(r - np.maximum(r_prev, r_start), 0.0, None)
        kappa = q / (rc0 * np.maximum(frac, 1e-4))
        y += psi * dr + 0.5 * kappa * dr**2
        psi += kappa * dr
        r_prev = r
        if k == n_layers:  # the ECAL front: what is left of each track showers here
            sub_frac.append(frac)
            sub_phi.append(y / R_ECAL_M)
            sub_slant.append(psi - y / R_ECAL_M)
            sub_photon.append(np.broadcast_to((q == 0)[...], (n, 2)))
            break
        radiates = (q != 0) & (k > start_k)
        slab_x0 = material * share[k]
        kept = np.exp(-rng.gamma(np.broadcast_to(slab_x0[:, None] / np.log(2.0), (n, 2))))
        new_frac = np.where(radiates, frac * kept, frac)
        y_gamma = y + psi * (R_ECAL_M - r)  # the brem photon flies straight on
        sub_frac.append(frac - new_frac)
        sub_phi.append(y_gamma / R_ECAL_M)
        sub_slant.append(psi - y_gamma / R_ECAL_M)
        sub_photon.append(np.ones((n, 2), bool))
        frac = new_frac

    return Deposits(
        fraction=np.concatenate(sub_frac, axis=1),
        phi=np.concatenate(sub_phi, axis=1),
        slant=np.concatenate(sub_slant, axis=1),
        is_photon=np.concatenate(sub_photon, axis=1),
        converted=converted,
    )
