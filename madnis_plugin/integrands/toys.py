"""Toy integrands with exact answers, implementing the :class:`Integrand` protocol.

Every toy is a sum ``∫ f(x) dx`` over a physical space ``x``, split into channels. Channel ``i`` has a fixed
mapping ``x = G_i(r)`` from the unit hypercube with density ``g_i(x)`` (the inverse Jacobian), so the weight is
``w = f(x) / g_i(x)`` and ``Σ_i ∫ dr α_i(G_i(r)) w_i(r) = ∫ f`` for any prior ``α`` with rows summing to one
(``α_j = 0`` where ``g_j = 0``). Unless stated otherwise ``alpha_prior`` is the standard multi-channel prior
``α_j(x) = g_j(x) / Σ_k g_k(x)``, computed as a softmax of ``log g_j`` so it never under/overflows.

All exact values are analytic (erf / arctan / log closed forms); ``tests/integrands/test_toys.py`` recomputes
each of them with ``scipy.integrate`` quadrature.

Toys (see each class for details and references):

===============  =====  ========  ===========================================================================
name             D      channels  what
===============  =====  ========  ===========================================================================
camel            2 (n)  1         ZüNIS eq. (C.1): two Gaussians on the diagonal of [0,1]^D, identity mapping
camel_bw         1      2         MadNIS eq. (40-41): 1-D Gaussian mixture on R, Breit-Wigner (Cauchy) channels
crossed_ring     2      2 (3)     MadNIS eq. (44-49): Gaussian ring + diagonal line on R^2; ring, line (+flat)
resonances       3      3         three narrow s-channel resonances + continuum; BW channel per resonance
many_channels    5      100       sum of narrow peaks, 20 groups x 5 channels related by coordinate permutations
===============  =====  ========  ===========================================================================

Invalid input (``r`` outside ``[0,1]^D``, non-finite ``r``, channel index out of range) gives ``valid=False``,
weight 0 and ``status=STATUS_FAILED_MAPPING``; points removed by a cut get ``STATUS_CUT``; non-finite weights
(e.g. a mapping evaluated exactly at ``r=0`` where ``x=±inf``) get ``STATUS_NONFINITE``. ``alpha_prior`` rows of
such points are uniform, features are finite.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor

from .protocol import (
    STATUS_CUT,
    STATUS_FAILED_MAPPING,
    STATUS_NONFINITE,
    STATUS_OK,
    Integrand,
    IntegrandBatch,
)

__all__ = [
    "ToyIntegrand",
    "Camel",
    "CamelBW",
    "CrossedRing",
    "Resonances",
    "ManyChannels",
    "TOYS",
    "make_toy",
]

DTYPE = torch.float64
_LOG_PI = math.log(math.pi)
_LOG_2PI = math.log(2.0 * math.pi)


def _soft_clip(x: Tensor, scale: float) -> Tensor:
    """Fixed, smooth, monotonic squashing ``scale * tanh(x / scale)``; ≈ x for |x| << scale."""
    return scale * torch.tanh(x / scale)


def _cauchy_log_density(x: Tensor, mu: Tensor | float, gamma: Tensor | float) -> Tensor:
    """log of the Cauchy density γ / (π ((x-μ)² + γ²)) on the whole real line."""
    gamma_t = torch.as_tensor(gamma, dtype=DTYPE)
    return torch.log(gamma_t) - _LOG_PI - torch.log((x - mu) ** 2 + gamma_t**2)


class ToyIntegrand:
    """Common machinery: input validation, weight/prior assembly, status codes.

    Subclasses set ``n_dims, n_channels, n_features, groups, channel_names, exact`` and implement

    * ``_map(channels, r) -> x`` (channel-wise mapping, vectorised over points),
    * ``_f(x) -> Tensor`` (the physical integrand, ``[n]``),
    * ``_log_g_all(x) -> [n, C]`` (log densities of every channel at x),
    * optionally ``_log_alpha_unnorm(x, log_g_all)`` (defaults to ``log_g_all``), ``_cut(x)``, ``_features(x)``.
    """

    name: str = "toy"
    n_dims: int
    n_channels: int
    n_features: int
    groups: Sequence[Sequence[int]]
    channel_names: Sequence[str]
    exact: float | None
    unit: str = ""
    exact_method: str = ""
    #: finite box [[lo, hi], ...] in x space holding all but < 1e-12 of ∫f (for single-map integrators
    #: such as plain vegas on f(x)); not part of the Integrand protocol.
    x_bounds: list[list[float]]

    # ---- to be provided by subclasses -------------------------------------------------------------
    def _map(self, channels: Tensor, r: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _f(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _log_g_all(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _log_alpha_unnorm(self, x: Tensor, log_g_all: Tensor) -> Tensor:
        return log_g_all

    def _cut(self, x: Tensor) -> Tensor | None:
        """Boolean ``[n]``: True where the point is removed by a cut (f = 0 there). None: no cuts."""
        return None

    def _features(self, x: Tensor) -> Tensor:
        return x

    # ---- public -----------------------------------------------------------------------------------
    def density(self, x: Tensor) -> Tensor:
        """The physical integrand f(x) (cuts applied), float64 ``[n]``; handy for vegas and plots."""
        x = torch.as_tensor(x, dtype=DTYPE)
        f = self._f(x)
        cut = self._cut(x)
        if cut is not None:
            f = torch.where(cut, torch.zeros_like(f), f)
        return f

    def channel_log_densities(self, x: Tensor) -> Tensor:
        """log g_j(x) for every channel, ``[n, C]``."""
        return self._log_g_all(torch.as_tensor(x, dtype=DTYPE))

    def map(self, channels: Tensor, r: Tensor) -> Tensor:
        """x = G_c(r) (no validation), ``[n, X]``."""
        return self._map(torch.as_tensor(channels, dtype=torch.int64), torch.as_tensor(r, dtype=DTYPE))

    def evaluate(self, channels: Tensor, r: Tensor) -> IntegrandBatch:
        r = torch.as_tensor(r).to(DTYPE)
        channels = torch.as_tensor(channels).to(torch.int64)
        if r.ndim != 2 or r.shape[1] != self.n_dims:
            raise ValueError(f"{self.name}: r must have shape [n, {self.n_dims}], got {tuple(r.shape)}")
        if channels.shape != r.shape[:1]:
            raise ValueError(f"{self.name}: channels must have shape [{r.shape[0]}], got {tuple(channels.shape)}")
        n = r.shape[0]
        C = self.n_channels

        ok_input = (
            torch.isfinite(r).all(dim=1)
            & (r >= 0.0).all(dim=1)
            & (r <= 1.0).all(dim=1)
            & (channels >= 0)
            & (channels < C)
        )
        r_safe = torch.where(ok_input[:, None], r, torch.full_like(r, 0.5))
        ch_safe = torch.where(ok_input, channels, torch.zeros_like(channels))

        x = self._map(ch_safe, r_safe)
        log_g_all = self._log_g_all(x)
        log_g = log_g_all.gather(1, ch_safe[:, None])[:, 0]
        f = self._f(x)
        weight = f * torch.exp(-log_g)

        cut = self._cut(x)
        if cut is None:
            cut = torch.zeros(n, dtype=torch.bool)
        log_a = self._log_alpha_unnorm(x, log_g_all)
        alpha = torch.softmax(log_a, dim=1)

        finite = torch.isfinite(weight) & torch.isfinite(alpha).all(dim=1) & torch.isfinite(x).all(dim=1)
        valid = ok_input & ~cut & finite

        status = torch.full((n,), STATUS_OK, dtype=torch.int32)
        status = torch.where(ok_input & ~finite, torch.full_like(status, STATUS_NONFINITE), status)
        status = torch.where(ok_input & finite & cut, torch.full_like(status, STATUS_CUT), status)
        status = torch.where(~ok_input, torch.full_like(status, STATUS_FAILED_MAPPING), status)

        weight = torch.where(valid, weight, torch.zeros_like(weight))
        alpha_ok = ok_input & torch.isfinite(alpha).all(dim=1)
        alpha = torch.where(alpha_ok[:, None], alpha, torch.full_like(alpha, 1.0 / C))
        features = torch.nan_to_num(self._features(x), nan=0.0, posinf=0.0, neginf=0.0)
        return IntegrandBatch(
            weight=weight, alpha_prior=alpha, features=features, valid=valid, momenta=None, status=status
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_dims={self.n_dims}, n_channels={self.n_channels}, exact={self.exact!r})"


# ================================================================================================
# camel (ZüNIS)
# ================================================================================================


class Camel(ToyIntegrand):
    """n-D camel of ZüNIS eq. (C.1)/(C.4) on ``[0,1]^D``; one channel, identity mapping.

    ``f(x) = exp(-|x-μ1|²/σ²) + exp(-|x-μ2|²/σ²)``, ``μ1 = 0.25·(1,..,1)``, ``μ2 = 0.75·(1,..,1)``, σ = 0.1
    (ZüNIS eq. C.4 uses D = 2, which is the default; D is a parameter, as in their Tab. 3 scans).

    Exact (analytic): each Gaussian factorises, ``∫_0^1 exp(-(t-μ)²/σ²) dt = σ√π/2 [erf((1-μ)/σ) + erf(μ/σ)]``,
    so ``I = Σ_peaks Π_d σ√π/2 [erf((1-μ_d)/σ) + erf(μ_d/σ)]``. For D=2, σ=0.1: I = 0.0628062861238 (π σ² = 0.0628318...
    minus the tails cut off at the cube faces, erf(2.5) = 0.99959).

    ``g(x) = 1``, ``alpha_prior = [[1]]``, ``features = x``.
    """

    name = "camel"

    def __init__(self, n_dims: int = 2, sigma: float = 0.1, mu1: float = 0.25, mu2: float = 0.75):
        if n_dims < 1:
            raise ValueError("camel: n_dims must be >= 1")
        self.n_dims = int(n_dims)
        self.n_channels = 1
        self.n_features = self.n_dims
        self.groups = [[0]]
        self.channel_names = ["identity"]
        self.sigma = float(sigma)
        self.mu1 = float(mu1)
        self.mu2 = float(mu2)
        self.exact = self.exact_value(self.n_dims, self.sigma, self.mu1, self.mu2)
        self.exact_method = "analytic (product of erf differences)"
        self.x_bounds = [[0.0, 1.0]] * self.n_dims

    @staticmethod
    def exact_value(n_dims: int, sigma: float, mu1: float, mu2: float) -> float:
        def one_dim(mu: float) -> float:
            return 0.5 * sigma * math.sqrt(math.pi) * (math.erf((1.0 - mu) / sigma) + math.erf(mu / sigma))

        return one_dim(mu1) ** n_dims + one_dim(mu2) ** n_dims

    def _map(self, channels: Tensor, r: Tensor) -> Tensor:
        return r

    def _f(self, x: Tensor) -> Tensor:
        s2 = self.sigma**2
        return torch.exp(-((x - self.mu1) ** 2).sum(dim=1) / s2) + torch.exp(-((x - self.mu2) ** 2).sum(dim=1) / s2)

    def _log_g_all(self, x: Tensor) -> Tensor:
        return torch.zeros((x.shape[0], 1), dtype=DTYPE)


# ================================================================================================
# camel back with Breit-Wigner channels (MadNIS sec. 4.1)
# ================================================================================================


class CamelBW(ToyIntegrand):
    """1-D camel back of MadNIS eq. (40) with the two Breit-Wigner (Cauchy) channels of eq. (41).

    ``f(x) = a1 N(x; μ1, σ1) + a2 N(x; μ2, σ2)`` on ``x ∈ R`` (normalised Gaussians), μ = (2, 5), σ = (0.5, 0.1),
    a = (0.5, 0.5) as in the MadNIS reference code (madnis-tf ``experiments/toy/camel``). Channel i maps
    ``x = μ_i + ρ_i tan(π (r - 1/2))`` with density ``g_i(x) = ρ_i / (π((x-μ_i)² + ρ_i²))``, ρ_i = √2 σ_i ("roughly
    the same width" as the Gaussian). Optional ``cut``: f = 0 for x < cut (MadNIS eq. 43, "camel back with cut").

    Exact (analytic): ``I = Σ_k a_k Φ_k`` with ``Φ_k = 1`` without cut and ``Φ_k = ½ erfc((cut-μ_k)/(√2 σ_k))``
    with cut. Default: I = 1.

    Prior: ``α_i ∝ g_i(x)`` (the "(nearly) optimal" choice of MadNIS Tab. 1). Features: ``10 tanh(x/10)`` (≈ x on
    the support of f; bounded for the Cauchy tails).
    """

    name = "camel_bw"

    def __init__(
        self,
        mu: Sequence[float] = (2.0, 5.0),
        sigma: Sequence[float] = (0.5, 0.1),
        amplitude: Sequence[float] = (0.5, 0.5),
        map_width_factor: float = math.sqrt(2.0),
        cut: float | None = None,
    ):
        if not (len(mu) == len(sigma) == len(amplitude) == 2):
            raise ValueError("camel_bw: mu, sigma, amplitude need two entries each")
        self.n_dims = 1
        self.n_channels = 2
        self.n_features = 1
        self.groups = [[0], [1]]
        self.channel_names = ["bw_peak1", "bw_peak2"]
        self.mu = torch.tensor(mu, dtype=DTYPE)
        self.sigma = torch.tensor(sigma, dtype=DTYPE)
        self.amplitude = torch.tensor(amplitude, dtype=DTYPE)
        self.rho = self.sigma * float(map_width_factor)
        self.cut = None if cut is None else float(cut)
        self.exact = self.exact_value(mu, sigma, amplitude, self.cut)
        self.exact_method = "analytic (normalised Gaussians; erfc for the cut)"
        lo = min(m - 14.0 * sg for m, sg in zip(mu, sigma))
        hi = max(m + 14.0 * sg for m, sg in zip(mu, sigma))
        self.x_bounds = [[lo if self.cut is None else max(lo, self.cut), hi]]

    @staticmethod
    def exact_value(mu, sigma, amplitude, cut: float | None) -> float:
        total = 0.0
        for m, s, a in zip(mu, sigma, amplitude):
            frac = 1.0 if cut is None else 0.5 * math.erfc((cut - m) / (math.sqrt(2.0) * s))
            total += a * frac
        return total

    def _map(self, channels: Tensor, r: Tensor) -> Tensor:
        mu = self.mu[channels]
        rho = self.rho[channels]
        return (mu + rho * torch.tan(math.pi * (r[:, 0] - 0.5)))[:, None]

    def _f(self, x: Tensor) -> Tensor:
        z = (x - self.mu[None, :]) / self.sigma[None, :]  # [n, 2]
        dens = torch.exp(-0.5 * z**2) / (self.sigma * math.sqrt(2.0 * math.pi))
        return (self.amplitude * dens).sum(dim=1)

    def _cut(self, x: Tensor) -> Tensor | None:
        if self.cut is None:
            return None
        return x[:, 0] < self.cut

    def _log_g_all(self, x: Tensor) -> Tensor:
        return _cauchy_log_density(x, self.mu[None, :], self.rho[None, :])

    def _features(self, x: Tensor) -> Tensor:
        return _soft_clip(x, 10.0)


# ================================================================================================
# crossed ring (MadNIS sec. 4.2)
# ================================================================================================


class CrossedRing(ToyIntegrand):
    """2-D crossed ring ("no-parking" sign) of MadNIS eq. (44): Gaussian ring + Gaussian line on R².

    ``f = A f_ring + (1-A) f_line`` with A = 1/2 (as in the MadNIS reference code ``TwoChannelLineRing``),

    * ``f_ring(x) = N_0 exp(-(|x| - r0)² / (2σ0²))``, r0 = 1, σ0 = 0.05,
      ``1/N_0 = 2π [σ0² e^{-w²} + √(π/2) r0 σ0 (1 + erf w)]``, ``w = r0/(√2 σ0)`` (exact norm on R², r ≥ 0);
    * ``f_line(x) = N(y1; μ1, σ1) N(y2; μ2, σ2)`` with ``y = R(π/4) x`` (a line along the diagonal
      ``x1 = -x2``), μ = (0, 0), σ1 = 3, σ2 = 0.05.

    Both pieces are normalised densities, so the exact integral is ``I = 1`` (analytic; checked by 2-D
    quadrature in the tests). (The plain-text copy of the paper is garbled here; σ0 = 0.05 is read from eq. 44,
    the reference code used 0.01 — a parameter.)

    Channels (eq. 45-48), mapping widths γ = √40·σ (eq. 49, "wide channel widths", as in the reference code):

    * ``ring``: r = r0 + γ0 tan(-C0 + (π/2 + C0) u1), C0 = arctan(r0/γ0) (so r > 0), θ = 2π u2;
      ``g_ring(x) = γ0/((|x|-r0)² + γ0²) / (π/2 + C0) / (2π |x|)``;
    * ``line``: y_j = μ_j + γ_j tan(π(u_j - 1/2)), x = R(π/4)^{-1} y; ``g_line = Π_j Cauchy(y_j; μ_j, γ_j)``;
    * ``flat`` (only with ``with_flat=True``, Tab. 2 "ring, line, flat"): logistic map x_j = logit(u_j)·s,
      ``g = Π_j σ(x_j/s)(1-σ(x_j/s))/s`` with s = 2.

    Prior ``α_j ∝ g_j(x)``; features ``10 tanh(x/10)``.
    """

    name = "crossed_ring"

    def __init__(
        self,
        r0: float = 1.0,
        sigma0: float = 0.05,
        line_mu: Sequence[float] = (0.0, 0.0),
        line_sigma: Sequence[float] = (3.0, 0.05),
        angle: float = math.pi / 4,
        ring_fraction: float = 0.5,
        map_width_factor: float = math.sqrt(40.0),
        with_flat: bool = False,
        flat_scale: float = 2.0,
    ):
        self.n_dims = 2
        self.n_features = 2
        self.with_flat = bool(with_flat)
        self.n_channels = 3 if self.with_flat else 2
        self.groups = [[i] for i in range(self.n_channels)]
        self.channel_names = ["ring", "line", "flat"][: self.n_channels]
        self.r0 = float(r0)
        self.sigma0 = float(sigma0)
        self.line_mu = torch.tensor(line_mu, dtype=DTYPE)
        self.line_sigma = torch.tensor(line_sigma, dtype=DTYPE)
        self.angle = float(angle)
        self.ring_fraction = float(ring_fraction)
        self.gamma0 = self.sigma0 * float(map_width_factor)
        self.line_gamma = self.line_sigma * float(map_width_factor)
        self.flat_scale = float(flat_scale)
        w = self.r0 / (math.sqrt(2.0) * self.sigma0)
        inv_norm = (
            2.0
            * math.pi
            * (
                self.sigma0**2 * math.exp(-(w**2))
                + math.sqrt(math.pi / 2.0) * self.r0 * self.sigma0 * (1.0 + math.erf(w))
            )
        )
        self.log_ring_norm = -math.log(inv_norm)
        self.c0 = math.atan(self.r0 / self.gamma0)
        self.ring_span = 0.5 * math.pi + self.c0
        c, s = math.cos(self.angle), math.sin(self.angle)
        # y = R x  with  y1 = c x1 - s x2,  y2 = s x1 + c x2  (rotation used by the reference code)
        self.rot = torch.tensor([[c, -s], [s, c]], dtype=DTYPE)
        self.exact = 1.0
        self.exact_method = "analytic (ring and line are normalised densities on R^2)"
        # the line runs along R^T e1 = (cos α, -sin α): a box of half-width 7.6 σ1 max(|cos α|, |sin α|) keeps all
        # but 2Φ(-7.6) ≈ 3e-14 of it
        ext = max(abs(c), abs(s)) * 7.6 * float(self.line_sigma[0]) + 8.0 * float(self.line_sigma[1])
        half = max(self.r0 + 12.0 * self.sigma0, ext + float(self.line_mu.abs().max()))
        self.x_bounds = [[-half, half], [-half, half]]

    # helpers
    def _rotate(self, x: Tensor) -> Tensor:
        return x @ self.rot.T

    def _unrotate(self, y: Tensor) -> Tensor:
        return y @ self.rot

    def _map(self, channels: Tensor, r: Tensor) -> Tensor:
        # ring
        rad = self.r0 + self.gamma0 * torch.tan(-self.c0 + self.ring_span * r[:, 0])
        theta = 2.0 * math.pi * r[:, 1]
        x_ring = torch.stack([rad * torch.cos(theta), rad * torch.sin(theta)], dim=1)
        # line
        y = self.line_mu + self.line_gamma * torch.tan(math.pi * (r - 0.5))
        x_line = self._unrotate(y)
        x = torch.where((channels == 0)[:, None], x_ring, x_line)
        if self.with_flat:
            x_flat = self.flat_scale * (torch.log(r) - torch.log1p(-r))
            x = torch.where((channels == 2)[:, None], x_flat, x)
        return x

    def _f(self, x: Tensor) -> Tensor:
        rad = torch.sqrt((x**2).sum(dim=1))
        f_ring = torch.exp(self.log_ring_norm - 0.5 * ((rad - self.r0) / self.sigma0) ** 2)
        y = self._rotate(x)
        z = (y - self.line_mu) / self.line_sigma
        f_line = torch.exp(-0.5 * (z**2).sum(dim=1) - torch.log(self.line_sigma).sum() - _LOG_2PI)
        return self.ring_fraction * f_ring + (1.0 - self.ring_fraction) * f_line

    def _log_g_all(self, x: Tensor) -> Tensor:
        rad = torch.sqrt((x**2).sum(dim=1)).clamp_min(1e-300)
        log_g_ring = (
            math.log(self.gamma0)
            - torch.log((rad - self.r0) ** 2 + self.gamma0**2)
            - math.log(self.ring_span)
            - _LOG_2PI
            - torch.log(rad)
        )
        y = self._rotate(x)
        log_g_line = _cauchy_log_density(y, self.line_mu, self.line_gamma).sum(dim=1)
        cols = [log_g_ring, log_g_line]
        if self.with_flat:
            z = x / self.flat_scale
            log_g_flat = (
                torch.nn.functional.logsigmoid(z) + torch.nn.functional.logsigmoid(-z) - math.log(self.flat_scale)
            ).sum(dim=1)
            cols.append(log_g_flat)
        return torch.stack(cols, dim=1)

    def _features(self, x: Tensor) -> Tensor:
        return _soft_clip(x, 10.0)


# ================================================================================================
# three narrow resonances (in the spirit of MadNIS sec. 5)
# ================================================================================================


class Resonances(ToyIntegrand):
    """Three narrow s-channel resonances plus a continuum, in 3-D: x = (s, y1, y2) ∈ [s_min, s_max] × [0,1]².

    ``f(s, y) = Σ_k c_k (w_k/π) / ((s - m_k²)² + w_k²) · h_k(y)  +  b · s_min / s``
    with ``w_k = m_k Γ_k`` and angular shapes ``h_k(y) = 1 + β_k (12 (y1-½)² - 1) + κ_k cos(2π y2)``
    (``∫ h_k dy = 1``, h_k > 0). Defaults: s ∈ [0.05, 1], m² = (0.15, 0.40, 0.70), mΓ = (0.002, 0.004, 0.003),
    c = (1, 0.6, 0.3), β = (0.4, -0.3, 0.2), κ = (0.3, 0.2, -0.4), b = 0.05.

    Channel k maps the resonance k with the standard Breit-Wigner mapping restricted to [s_min, s_max],
    ``s = m_k² + w_k tan(a_k + (b_k - a_k) r0)`` with ``a_k, b_k = arctan((s_min|max - m_k²)/w_k)``, and y = (r1, r2);
    ``g_k = w_k / ((s - m_k²)² + w_k²) / (b_k - a_k)``. The prior is MG5-like, ``α_k ∝ |propagator_k|² =
    1/((s - m_k²)² + w_k²)``. A run that ignores channel k samples its peak only through the Cauchy tails of the
    other channels and gets huge weights there.

    Exact (analytic): ``I = Σ_k c_k (b_k - a_k)/π + b s_min ln(s_max/s_min)``. Default: I = 1.8955235650. Features: x itself (already O(1)).
    """

    name = "resonances"

    def __init__(
        self,
        s_min: float = 0.05,
        s_max: float = 1.0,
        mass2: Sequence[float] = (0.15, 0.40, 0.70),
        mass_width: Sequence[float] = (0.002, 0.004, 0.003),
        coupling: Sequence[float] = (1.0, 0.6, 0.3),
        beta: Sequence[float] = (0.4, -0.3, 0.2),
        kappa: Sequence[float] = (0.3, 0.2, -0.4),
        background: float = 0.05,
    ):
        k = len(mass2)
        if not (len(mass_width) == len(coupling) == len(beta) == len(kappa) == k):
            raise ValueError("resonances: parameter lists must have equal length")
        for bb, kk in zip(beta, kappa):
            # 12(y-1/2)^2 - 1 ranges over [-1, 2]; cos over [-1, 1]
            if 1.0 - abs(kk) + min(-bb, 2.0 * bb) <= 0.0:
                raise ValueError("resonances: need h_k(y) > 0, i.e. 1 - |kappa| + min(-beta, 2 beta) > 0")
        self.n_dims = 3
        self.n_features = 3
        self.n_channels = k
        self.groups = [[i] for i in range(k)]
        self.channel_names = [f"bw_m2={m:g}" for m in mass2]
        self.s_min, self.s_max = float(s_min), float(s_max)
        self.m2 = torch.tensor(mass2, dtype=DTYPE)
        self.w = torch.tensor(mass_width, dtype=DTYPE)
        self.c = torch.tensor(coupling, dtype=DTYPE)
        self.beta = torch.tensor(beta, dtype=DTYPE)
        self.kappa = torch.tensor(kappa, dtype=DTYPE)
        self.background = float(background)
        self.a = torch.atan((self.s_min - self.m2) / self.w)
        self.b = torch.atan((self.s_max - self.m2) / self.w)
        self.span = self.b - self.a
        self.exact = float((self.c * self.span).sum() / math.pi) + self.background * self.s_min * math.log(
            self.s_max / self.s_min
        )
        self.exact_method = "analytic (arctan for the Breit-Wigners, log for the continuum)"
        self.x_bounds = [[self.s_min, self.s_max], [0.0, 1.0], [0.0, 1.0]]

    def _map(self, channels: Tensor, r: Tensor) -> Tensor:
        m2, w, a, span = self.m2[channels], self.w[channels], self.a[channels], self.span[channels]
        s = m2 + w * torch.tan(a + span * r[:, 0])
        s = s.clamp(self.s_min, self.s_max)  # guard round-off at the ends
        return torch.cat([s[:, None], r[:, 1:]], dim=1)

    def _f(self, x: Tensor) -> Tensor:
        s = x[:, :1]
        y1, y2 = x[:, 1:2], x[:, 2:3]
        bw = (self.w / math.pi) / ((s - self.m2) ** 2 + self.w**2)  # [n, K]
        h = 1.0 + self.beta * (12.0 * (y1 - 0.5) ** 2 - 1.0) + self.kappa * torch.cos(2.0 * math.pi * y2)
        return (self.c * bw * h).sum(dim=1) + self.background * self.s_min / x[:, 0]

    def _log_g_all(self, x: Tensor) -> Tensor:
        s = x[:, :1]
        return torch.log(self.w) - torch.log((s - self.m2) ** 2 + self.w**2) - torch.log(self.span)

    def _log_alpha_unnorm(self, x: Tensor, log_g_all: Tensor) -> Tensor:
        s = x[:, :1]
        return -torch.log((s - self.m2) ** 2 + self.w**2)


# ================================================================================================
# many channels in symmetry groups (scale test)
# ================================================================================================


class ManyChannels(ToyIntegrand):
    """Scale test: ``G`` groups × ``K`` channels (C = G·K), channels in a group related by a permutation of x.

    x ∈ [0,1]^D (D ≥ K). Group g is a narrow truncated Cauchy peak ``B_g(t) = (w_g/π)/((t - m_g)² + w_g²)`` that
    may sit in any of the first K coordinates (think: K identical final-state particles):

    ``f(x) = (1/C) Σ_g c_g Σ_{j<K} B_g(x_j) Π_{d≠j} q(x_d)``,   ``q(t) = 1 + β (12 (t-½)² - 1)``  (∫q = 1).

    f is symmetric under permutations of the first K coordinates. Channel (g, j) (index g·K + j) maps
    ``x_j = m_g + w_g tan(a_g + (b_g - a_g) r_0)`` (the Cauchy restricted to [0,1]) and fills the other
    coordinates with ``r_1..r_{D-1}`` in cyclic order; it equals channel (g, 0) followed by the cyclic shift by j of
    the first K coordinates, a symmetry of f, so a group legitimately shares one flow (``groups``).
    ``g_{g,j}(x) = B_g(x_j) π / (b_g - a_g)``; prior ``α ∝ g`` over all C channels (one gather, no loops).

    Defaults: n_channels=100, n_groups=20 (K=5), D=5, m_g = 0.1 + 0.8 (g+½)/G, w_g = 0.002 (1 + (3g mod 5)/4),
    c_g = 1 + (g mod 4)/3, β = 0.3.

    Exact (analytic): ``I = (K/C) Σ_g c_g (b_g - a_g)/π`` with ``a_g = arctan(-m_g/w_g)``,
    ``b_g = arctan((1-m_g)/w_g)``.
    """

    name = "many_channels"

    def __init__(self, n_channels: int = 100, n_groups: int = 20, n_dims: int = 5, beta: float = 0.3, width: float = 0.002):
        if n_channels < 1 or n_groups < 1 or n_channels % n_groups != 0:
            raise ValueError("many_channels: n_channels must be a positive multiple of n_groups")
        k = n_channels // n_groups
        if n_dims < max(k, 1):
            raise ValueError(f"many_channels: n_dims ({n_dims}) must be >= channels per group ({k})")
        if not (abs(beta) < 1.0 and 1 + 2 * beta > 0):
            raise ValueError("many_channels: need q(t) > 0, i.e. |beta| < 1 and beta > -1/2")
        self.n_dims = int(n_dims)
        self.n_features = self.n_dims
        self.n_channels = int(n_channels)
        self.n_groups = int(n_groups)
        self.k = k
        self.groups = [[g * k + j for j in range(k)] for g in range(n_groups)]
        self.channel_names = [f"g{g}_perm{j}" for g in range(n_groups) for j in range(k)]
        gi = torch.arange(n_groups, dtype=DTYPE)
        self.m = 0.1 + 0.8 * (gi + 0.5) / n_groups
        self.w = width * (1.0 + torch.remainder(3 * torch.arange(n_groups), 5).to(DTYPE) / 4.0)
        self.c = 1.0 + torch.remainder(torch.arange(n_groups), 4).to(DTYPE) / 3.0
        self.beta = float(beta)
        self.a = torch.atan(-self.m / self.w)
        self.b = torch.atan((1.0 - self.m) / self.w)
        self.span = self.b - self.a
        # per-channel lookup tables
        self.ch_group = torch.arange(n_channels) // k
        self.ch_perm = torch.arange(n_channels) % k
        # position of r_d in x for channel with shift j:  r_0 -> x_j ; r_i (1<=i<K) -> x_{(j+i) mod K};  r_i (i>=K) -> x_i
        D = self.n_dims
        src = torch.empty((k, D), dtype=torch.int64)  # src[j, d] = index of r feeding x_d
        for j in range(k):
            for i in range(D):
                dest = (j + i) % k if i < k else i
                src[j, dest] = i
        self.src_index = src
        self.exact = float((k / n_channels) * (self.c * self.span).sum() / math.pi)
        self.exact_method = "analytic (arctan)"
        self.x_bounds = [[0.0, 1.0]] * self.n_dims

    def _map(self, channels: Tensor, r: Tensor) -> Tensor:
        g = self.ch_group[channels]
        j = self.ch_perm[channels]
        t = self.m[g] + self.w[g] * torch.tan(self.a[g] + self.span[g] * r[:, 0])
        t = t.clamp(0.0, 1.0)
        r_mod = torch.cat([t[:, None], r[:, 1:]], dim=1)
        return r_mod.gather(1, self.src_index[j])

    def _q(self, t: Tensor) -> Tensor:
        return 1.0 + self.beta * (12.0 * (t - 0.5) ** 2 - 1.0)

    def _denominators(self, x: Tensor) -> Tensor:
        """``(x_j - m_g)² + w_g²`` for every group g and peak coordinate j < K, shape ``[n, G, K]``."""
        xk = x[:, None, : self.k]
        return (xk - self.m[None, :, None]) ** 2 + (self.w**2)[None, :, None]

    def _f(self, x: Tensor) -> Tensor:
        q_all = self._q(x)  # [n, D]
        q_prod = q_all.prod(dim=1, keepdim=True)  # [n, 1]
        coef = (self.c * self.w / math.pi)[None, :, None]
        per_j = (coef / self._denominators(x)).sum(dim=1)  # [n, K]
        return (per_j * q_prod / q_all[:, : self.k]).sum(dim=1) / self.n_channels

    def _log_g_all(self, x: Tensor) -> Tensor:
        # channel index g*K + j  <->  [g, j] of the [n, G, K] tensor
        log_norm = (torch.log(self.w) - torch.log(self.span))[None, :, None]
        return (log_norm - torch.log(self._denominators(x))).reshape(x.shape[0], self.n_channels)


# ================================================================================================
# registry
# ================================================================================================

TOYS: dict[str, Callable[..., Integrand]] = {
    "camel": Camel,
    "camel_bw": CamelBW,
    "crossed_ring": CrossedRing,
    "resonances": Resonances,
    "many_channels": ManyChannels,
}


def make_toy(name: str, **kwargs) -> Integrand:
    """Build a toy integrand by name; ``kwargs`` go to its constructor."""
    try:
        factory = TOYS[name]
    except KeyError:
        raise ValueError(f"unknown toy {name!r}; valid names: {', '.join(sorted(TOYS))}") from None
    return factory(**kwargs)
