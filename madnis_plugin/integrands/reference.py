"""The project's reference process as an Integrand: e+ e- -> γ*/Z -> μ+ μ- (project-written Fortran, via the bridge).

Physics, parameters, channels and the exact cross section are documented in
:mod:`madnis_plugin.bridge.reference_physics`; in short:

* tree-level e+ e- → γ*/Z → μ+ μ-, massless, M_Z = 91.188 GeV, Γ_Z = 2.441404 GeV, 1/α = 132.507,
  G_F = 1.16639e-5 GeV⁻² (sin²θ_W = 1 − M_W²/M_Z² = 0.2222465), 1 GeV⁻² = 0.389379e9 pb;
* s flat on [40², 160²] GeV² (normalised spectrum), cut |cosθ| < 0.9 (θ between e- and μ-);
* D = 3 (s, cosθ, φ), 2 channels: 0 "photon" (s ∝ 1/s mapping), 1 "Z" (Breit–Wigner mapping);
  prior α: sde_strategy 1 = per-diagram |M|², 2 = propagator denominators.

``exact_cross_section()`` = 61.04769698061417 pb comes from the closed form (logs and an arctangent of the s
integral of the helicity-summed |M|², angular integral done analytically); it agrees with an independent
Gauss–Legendre quadrature of the helicity sum to ~1e-15 relative. Per-channel integrals σ_i = ∫ α_i f
(sde 1: 9.1862167 / 51.8614803 pb; sde 2: 4.2696736 / 56.7780234 pb) come from that quadrature,
:func:`channel_cross_sections`.
"""

from __future__ import annotations

from madnis_plugin.bridge.process import load_process
from madnis_plugin.bridge.reference_physics import (
    CHANNEL_NAMES,
    channel_cross_sections,
    dsigma_ds_dcos,
    exact_cross_section,
    prior_alpha,
    quadrature_cross_section,
)

from .mg5 import ProcessIntegrand

__all__ = [
    "ReferenceIntegrand",
    "exact_cross_section",
    "channel_cross_sections",
    "quadrature_cross_section",
    "dsigma_ds_dcos",
    "prior_alpha",
    "CHANNEL_NAMES",
]


class ReferenceIntegrand(ProcessIntegrand):
    """The reference process (built on demand with CMake) as an Integrand; unit pb, ``exact`` known.

    Features: (ln(s/M_Z²), cosθ). Close it (or use ``with``) to stop its worker processes.
    """

    def __init__(self, *, sde_strategy: int = 1, n_workers: int | None = None, **kwargs):
        super().__init__(load_process("reference", sde_strategy=sde_strategy, n_workers=n_workers, **kwargs))
