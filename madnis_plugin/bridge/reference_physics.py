"""Physics of the project's reference process, in Python, independent of the Fortran library.

The reference process (``fortran_bridge/reference/mb_reference.f90``) is

    e+ e-  ->  gamma*/Z  ->  mu+ mu-      (tree level, massless fermions, s-channel photon and Z, interference)

with a variable partonic energy: the squared c.m. energy ``s`` is distributed by a normalised, flat "beam
spectrum" ``L(s) = 1/(S_MAX - S_MIN)`` on ``[S_MIN, S_MAX] = [40², 160²] GeV²``, a range that contains the Z peak
and where the photon's 1/s matters. The only cut is ``|cos θ| < COS_CUT = 0.9``, θ the angle between the e- and
the mu- in the c.m. frame. The quoted cross section is

    σ = ∫ ds L(s) σ̂(s),   σ̂(s) = ∫_{|cosθ|<c} dcosθ dσ̂/dcosθ.

Standard-Model parameters (MG5 ``sm`` model defaults, G_mu scheme):
    M_Z = 91.188 GeV, Γ_Z = 2.441404 GeV (fixed width, s-independent), 1/α = 132.507, G_F = 1.16639e-5 GeV⁻²,
    M_W² = M_Z²/2 + sqrt(M_Z⁴/4 − π α M_Z²/(√2 G_F))  (M_W = 80.419 GeV),  sin²θ_W = 1 − M_W²/M_Z²;
    conversion 1 GeV⁻² = 0.389379e9 pb.

Helicity amplitudes (e- helicity λ, mu- helicity λ', λ, λ' ∈ {L, R}; the e+ and mu+ have the opposite ones):
    M_λλ' = e² s P_λλ'(s) (1 + η cosθ),  η = +1 if λ = λ' else −1,
    P_λλ' = Q_e Q_μ / s + g_λ g_λ' / D(s),  D = s − M_Z² + i M_Z Γ_Z,  Q_e Q_μ = 1,
    g_L = (−1/2 + sin²θ_W)/(sinθ_W cosθ_W),  g_R = sin²θ_W/(sinθ_W cosθ_W)   (same for e and mu).
    Spin average: |M|² = (1/4) Σ_λλ' |M_λλ'|².
Integrating over φ and |cosθ| < c (∫ (1 ± cosθ)² = K = 2c + 2c³/3 for both signs):

    σ̂(s) = (π α² K / 8) [ 4/s + 2 G1 (s − M²)/|D|² + G2 s/|D|² ]     (QED limit, c = 1: 4πα²/(3s)),
    G1 = (g_L + g_R)²,  G2 = (g_L² + g_R²)²,  |D|² = (s − M²)² + M²Γ²,

and the s integral is elementary (logs and an arctangent):

    σ = conv · (π α² K / 8) / (S_MAX − S_MIN) · [ 4 ln(S_MAX/S_MIN) + (2 G1 + G2) I1 + G2 M² I0 ],
    I1 = ∫ (s − M²)/|D|² ds = ½ ln(|D(S_MAX)|² / |D(S_MIN)|²),
    I0 = ∫ 1/|D|² ds = [atan((S_MAX − M²)/(MΓ)) − atan((S_MIN − M²)/(MΓ))] / (MΓ).

:func:`exact_cross_section` evaluates this closed form (relative precision ~1e-15); :func:`quadrature_cross_section`
recomputes it by composite Gauss–Legendre quadrature of the helicity sum (a check of the algebra, agreement
~1e-13), and :func:`channel_cross_sections` gives the per-channel integrals σ_i = ∫ α_i f, which have no closed form,
by the same quadrature.

Channels (the phase-space mappings of the Fortran library; r ∈ [0,1]³):
    channel 0 ("photon", diagram 1): s = S_MIN (S_MAX/S_MIN)^r0   (density ∝ 1/s),
    channel 1 ("Z", diagram 2):      s = M² + MΓ tan(y), y uniform between atan((S_MIN − M²)/(MΓ)) and
                                      atan((S_MAX − M²)/(MΓ))     (Breit–Wigner density),
    both: cosθ = 2 r1 − 1 (cut applied after the mapping: status 1, weight 0), φ = 2π r2.
Prior channel weights α_i (rows sum to 1):
    sde_strategy 1: α_i ∝ Σ_hel |M_i|² of diagram i alone (photon: |Q/s|², Z: |g g'/D|², each with (1 + η cosθ)²),
    sde_strategy 2: α_i ∝ product of the diagram's propagator denominators squared: 1/s² and 1/|D|².
"""

from __future__ import annotations

import math

import numpy as np

# ---- parameters (keep in sync with fortran_bridge/reference/mb_reference.f90) --------------------------------
MZ = 91.188
WZ = 2.441404
AEWM1 = 132.507
GF = 1.16639e-5
SQRTS_MIN = 40.0
SQRTS_MAX = 160.0
COS_CUT = 0.9
CONV_PB = 0.389379e9

S_MIN = SQRTS_MIN**2
S_MAX = SQRTS_MAX**2

PDG = (-11, 11, -13, 13)  # e+ e- > mu+ mu-
CHANNEL_NAMES = ("photon", "Z")


def couplings() -> dict[str, float]:
    """Derived electroweak couplings: alpha, sw2, g_L, g_R (see module docstring)."""
    alpha = 1.0 / AEWM1
    mw2 = MZ**2 / 2.0 + math.sqrt(MZ**4 / 4.0 - alpha * math.pi * MZ**2 / (GF * math.sqrt(2.0)))
    sw2 = 1.0 - mw2 / MZ**2
    swcw = math.sqrt(sw2 * (1.0 - sw2))
    return {
        "alpha": alpha,
        "mw": math.sqrt(mw2),
        "sw2": sw2,
        "gL": (-0.5 + sw2) / swcw,
        "gR": sw2 / swcw,
    }


def exact_cross_section() -> float:
    """Exact σ in pb of the reference process (closed form; see the module docstring for the formula)."""
    c = couplings()
    alpha, gl, gr = c["alpha"], c["gL"], c["gR"]
    m2 = MZ * MZ
    mg = MZ * WZ
    k = 2.0 * COS_CUT + 2.0 * COS_CUT**3 / 3.0
    g1 = (gl + gr) ** 2
    g2 = (gl * gl + gr * gr) ** 2

    def d2(s: float) -> float:
        return (s - m2) ** 2 + mg * mg

    i_log = math.log(S_MAX / S_MIN)
    i1 = 0.5 * math.log(d2(S_MAX) / d2(S_MIN))
    i0 = (math.atan((S_MAX - m2) / mg) - math.atan((S_MIN - m2) / mg)) / mg
    bracket = 4.0 * i_log + (2.0 * g1 + g2) * i1 + g2 * m2 * i0
    return CONV_PB * math.pi * alpha**2 * k / 8.0 / (S_MAX - S_MIN) * bracket


# ---- pointwise quantities (numpy, vectorised) ---------------------------------------------------------------
def helicity_sums(s: np.ndarray, cos_theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Σ|P_γ|²(1+ηc)², Σ|P_Z|²(1+ηc)², Σ|P_γ+P_Z|²(1+ηc)²) summed over the four helicity combinations."""
    c = couplings()
    g = {"L": c["gL"], "R": c["gR"]}
    d = (s - MZ * MZ) + 1j * MZ * WZ
    s_gam = np.zeros_like(s)
    s_z = np.zeros_like(s)
    s_tot = np.zeros_like(s)
    for l1 in "LR":
        for l2 in "LR":
            eta = 1.0 if l1 == l2 else -1.0
            fac = (1.0 + eta * cos_theta) ** 2
            a_gam = 1.0 / s
            a_z = g[l1] * g[l2] / d
            s_gam = s_gam + a_gam**2 * fac
            s_z = s_z + np.abs(a_z) ** 2 * fac
            s_tot = s_tot + np.abs(a_gam + a_z) ** 2 * fac
    return s_gam, s_z, s_tot


def dsigma_ds_dcos(s: np.ndarray, cos_theta: np.ndarray) -> np.ndarray:
    """L(s) dσ̂/dcosθ in pb/GeV² (no cut applied)."""
    alpha = couplings()["alpha"]
    e4 = (4.0 * math.pi * alpha) ** 2
    _, _, s_tot = helicity_sums(s, cos_theta)
    msq = e4 * s * s * s_tot / 4.0
    # (1/2s) |M|² 2π/(32π²) per unit cosθ
    return CONV_PB / (S_MAX - S_MIN) * msq / (2.0 * s) / (16.0 * math.pi)


def prior_alpha(s: np.ndarray, cos_theta: np.ndarray, sde_strategy: int = 1) -> np.ndarray:
    """Prior channel weights [n, 2] (photon, Z) as the Fortran library defines them."""
    if sde_strategy == 1:
        a_gam, a_z, _ = helicity_sums(s, cos_theta)
    elif sde_strategy == 2:
        a_gam = 1.0 / s**2
        a_z = 1.0 / ((s - MZ * MZ) ** 2 + (MZ * WZ) ** 2)
    else:
        raise ValueError(f"sde_strategy must be 1 or 2, got {sde_strategy!r}")
    tot = a_gam + a_z
    return np.stack([a_gam / tot, a_z / tot], axis=-1)


def _gauss_legendre_s_c(n_panels: int, n_nodes: int, n_cos: int):
    """Nodes and weights for ∫ds∫dcosθ over [S_MIN,S_MAX]×[−c,c], in y = atan((s−M²)/(MΓ)) panels."""
    m2, mg = MZ * MZ, MZ * WZ
    y0, y1 = math.atan((S_MIN - m2) / mg), math.atan((S_MAX - m2) / mg)
    xg, wg = np.polynomial.legendre.leggauss(n_nodes)
    edges = np.linspace(y0, y1, n_panels + 1)
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    y = (mid[:, None] + half[:, None] * xg[None, :]).ravel()
    wy = (half[:, None] * wg[None, :]).ravel()
    s = m2 + mg * np.tan(y)
    ws = wy * ((s - m2) ** 2 + mg * mg) / mg  # ds = |D|²/(MΓ) dy
    xc, wc = np.polynomial.legendre.leggauss(n_cos)
    cos = COS_CUT * xc
    wcos = COS_CUT * wc
    return s, ws, cos, wcos


def quadrature_cross_section(n_panels: int = 64, n_nodes: int = 24, n_cos: int = 24) -> float:
    """σ in pb by composite Gauss–Legendre quadrature of the helicity sum (check of :func:`exact_cross_section`)."""
    s, ws, cos, wcos = _gauss_legendre_s_c(n_panels, n_nodes, n_cos)
    f = dsigma_ds_dcos(s[:, None], cos[None, :])
    return float(np.einsum("i,j,ij->", ws, wcos, f))


def channel_cross_sections(sde_strategy: int = 1, n_panels: int = 64, n_nodes: int = 24, n_cos: int = 48) -> np.ndarray:
    """σ_i = ∫ α_i f in pb for the two channels (photon, Z), by Gauss–Legendre quadrature (~1e-12 relative)."""
    s, ws, cos, wcos = _gauss_legendre_s_c(n_panels, n_nodes, n_cos)
    S, C = np.meshgrid(s, cos, indexing="ij")
    f = dsigma_ds_dcos(S, C)
    a = prior_alpha(S, C, sde_strategy)
    return np.einsum("i,j,ijk->k", ws, wcos, f[..., None] * a)
