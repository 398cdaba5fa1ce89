"""Rational-quadratic splines on the unit interval (Durkan et al. 2019, MadNIS Reloaded eq. 21).

A spline with ``K`` bins is a monotone bijection of [0, 1] onto itself through the knots
``(x_k, y_k)``, ``k = 0..K``, with ``(x_0, y_0) = (0, 0)`` and ``(x_K, y_K) = (1, 1)``. Inside each
bin it is a monotone rational-quadratic function fixed by the bin width ``w_k``, the bin height
``h_k`` and the derivatives ``d_{k-1}, d_k`` at the bin's two knots.

Two parametrisations are used:

* :class:`SplineParams` — unconstrained network outputs ``(theta_w, theta_h, theta_d)`` with
  shapes ``[..., K]``, ``[..., K]``, ``[..., K+1]``;
* :class:`Knots` — the constrained ``(widths, heights, derivs)`` with the same shapes,
  ``widths`` and ``heights`` positive and summing to one, ``derivs`` positive.

:func:`knots_from_params` implements eq. (21) with lower bounds taken from :class:`SplineBounds`::

    widths  = min_w + (1 - K min_w) softmax(theta_w)
    heights = min_h + (1 - K min_h) softmax(theta_h)
    derivs  = min_d + (1 - min_d) softplus(theta_d) / log 2

so that all-zero parameters give exactly the identity (uniform bins, unit derivatives).
:func:`params_from_knots` is its inverse (used by the VEGAS initialisation).

Direction convention: :func:`forward` maps ``x`` (the axis partitioned by the ``widths``) to ``y``
(the axis partitioned by the ``heights``); :func:`inverse` maps back. Both return the
``log|dy/dx|`` resp. ``log|dx/dy|`` of the map they apply. All tensors are float64 in this
package (nothing here forces a dtype, the caller's dtype is kept).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "SplineBounds",
    "SplineParams",
    "Knots",
    "knots_from_params",
    "params_from_knots",
    "forward",
    "inverse",
    "forward_knots",
    "inverse_knots",
    "split_params",
    "n_params",
    "clamp01",
]

_LOG2 = math.log(2.0)


@dataclass(frozen=True)
class SplineBounds:
    """Lower bounds that keep the spline numerically stable.

    ``min_width * K < 1`` and ``min_height * K < 1`` are required; ``0 <= min_derivative < 1``.
    """

    min_width: float = 1e-6
    min_height: float = 1e-6
    min_derivative: float = 1e-6

    def check(self, n_bins: int) -> None:
        """Raise ``ValueError`` if the bounds cannot be met with ``n_bins`` bins."""
        if not (0.0 <= self.min_width * n_bins < 1.0 and 0.0 <= self.min_height * n_bins < 1.0):
            raise ValueError(f"minimum bin width/height too large for {n_bins} bins: {self}")
        if not 0.0 <= self.min_derivative < 1.0:
            raise ValueError(f"min_derivative must lie in [0, 1): {self.min_derivative}")


DEFAULT_BOUNDS = SplineBounds()


class SplineParams(NamedTuple):
    """Unconstrained spline parameters: ``theta_w [..., K]``, ``theta_h [..., K]``, ``theta_d [..., K+1]``."""

    theta_w: Tensor
    theta_h: Tensor
    theta_d: Tensor

    def flat(self) -> Tensor:
        """Concatenate to one tensor ``[..., 3K+1]`` (inverse of :func:`split_params`)."""
        return torch.cat((self.theta_w, self.theta_h, self.theta_d), dim=-1)


class Knots(NamedTuple):
    """Constrained spline: ``widths [..., K]``, ``heights [..., K]`` (each summing to 1),
    ``derivs [..., K+1]`` (> 0)."""

    widths: Tensor
    heights: Tensor
    derivs: Tensor


def n_params(n_bins: int) -> int:
    """Number of unconstrained parameters of one spline with ``n_bins`` bins: ``3K + 1``."""
    return 3 * n_bins + 1


def split_params(theta: Tensor, n_bins: int) -> SplineParams:
    """Split ``theta [..., 3K+1]`` into :class:`SplineParams` (widths, heights, derivatives)."""
    if theta.shape[-1] != n_params(n_bins):
        raise ValueError(f"expected last dim {n_params(n_bins)}, got {theta.shape[-1]}")
    k = n_bins
    return SplineParams(theta[..., :k], theta[..., k : 2 * k], theta[..., 2 * k :])


def _softmax(x: Tensor) -> Tensor:
    """Softmax over the last dim from elementwise ops. Same values and gradient as ``torch.softmax``, but the
    latter's CPU kernel is ~4× slower for the short last dim (K bins) of float64 spline parameters, and this runs
    12 times per flow evaluation (many_channels: ~17 % of a training step)."""
    e = torch.exp(x - x.amax(dim=-1, keepdim=True).detach())  # shift-invariant: no gradient through the max
    return e / e.sum(dim=-1, keepdim=True)


def _softplus(x: Tensor) -> Tensor:
    """log(1 + e^x) = max(x, 0) + log1p(e^{−|x|}) with max(x, 0) written as (x + |x|)/2, so the gradient is
    sigmoid(x) everywhere, 1/2 at x = 0 included (zero-initialised flows start there). ~3.5× faster than
    ``F.softplus`` on CPU for these shapes."""
    a = x.abs()
    return 0.5 * (x + a) + torch.log1p(torch.exp(-a))


def knots_from_params(params: SplineParams, bounds: SplineBounds = DEFAULT_BOUNDS) -> Knots:
    """Eq. (21) with lower bounds: unconstrained ``params`` -> :class:`Knots` (same shapes)."""
    k = params.theta_w.shape[-1]
    bounds.check(k)
    widths = bounds.min_width + (1.0 - k * bounds.min_width) * _softmax(params.theta_w)
    heights = bounds.min_height + (1.0 - k * bounds.min_height) * _softmax(params.theta_h)
    derivs = bounds.min_derivative + (1.0 - bounds.min_derivative) * _softplus(params.theta_d) / _LOG2
    return Knots(widths, heights, derivs)


def _inverse_softplus(y: Tensor) -> Tensor:
    """Stable ``log(exp(y) - 1)`` for ``y > 0``."""
    return y + torch.log(-torch.expm1(-y))


def params_from_knots(knots: Knots, bounds: SplineBounds = DEFAULT_BOUNDS) -> SplineParams:
    """Inverse of :func:`knots_from_params`.

    ``widths``/``heights`` are renormalised to sum to one; they must exceed the bounds
    (``widths > min_width`` etc.), otherwise ``ValueError``. The softmax inverse is fixed up to an
    additive constant; the returned ``theta_w``/``theta_h`` are ``log`` of the normalised excess.
    """
    widths = knots.widths / knots.widths.sum(dim=-1, keepdim=True)
    heights = knots.heights / knots.heights.sum(dim=-1, keepdim=True)
    k = widths.shape[-1]
    bounds.check(k)
    if bool((widths <= bounds.min_width).any()) or bool((heights <= bounds.min_height).any()):
        raise ValueError("bin widths/heights must exceed the minimum bin width/height")
    if bool((knots.derivs <= bounds.min_derivative).any()):
        raise ValueError("derivatives must exceed the minimum derivative")
    theta_w = torch.log((widths - bounds.min_width) / (1.0 - k * bounds.min_width))
    theta_h = torch.log((heights - bounds.min_height) / (1.0 - k * bounds.min_height))
    sp = (knots.derivs - bounds.min_derivative) / (1.0 - bounds.min_derivative) * _LOG2
    theta_d = _inverse_softplus(sp)
    return SplineParams(theta_w, theta_h, theta_d)


def _cumulative(sizes: Tensor) -> Tensor:
    """Knot positions ``[..., K+1]`` from bin sizes ``[..., K]``, with exact 0 and 1 at the ends."""
    cum = torch.cumsum(sizes, dim=-1)
    cum = F.pad(cum, (1, 0), value=0.0)
    cum[..., -1] = 1.0
    return cum


def clamp01(v: Tensor) -> Tensor:
    """Clamp to [0, 1] in value while passing the gradient through unchanged (rounding guard)."""
    return v + (v.clamp(0.0, 1.0) - v).detach()


def _gather(t: Tensor, idx: Tensor) -> Tensor:
    return torch.gather(t, -1, idx).squeeze(-1)


def _locate(cum: Tensor, v: Tensor) -> Tensor:
    """Bin index ``[..., 1]`` (int64 in ``[0, K-1]``) of ``v [...]`` in knots ``cum [..., K+1]``."""
    inner = cum[..., 1:-1].contiguous()
    return torch.searchsorted(inner, v.unsqueeze(-1).contiguous(), right=True)


def _rqs(v: Tensor, knots: Knots, inverse: bool) -> tuple[Tensor, Tensor]:
    """Shared kernel. ``v [...]`` in [0, 1]; knots broadcast to ``[..., K(+1)]`` with v's shape."""
    widths, heights, derivs = knots
    shape = v.shape
    widths = widths.expand(*shape, widths.shape[-1])
    heights = heights.expand(*shape, heights.shape[-1])
    derivs = derivs.expand(*shape, derivs.shape[-1])
    v = clamp01(v)
    cw = _cumulative(widths)
    ch = _cumulative(heights)
    idx = _locate(ch if inverse else cw, v)

    xk = _gather(cw, idx)
    wk = _gather(cw, idx + 1) - xk
    yk = _gather(ch, idx)
    hk = _gather(ch, idx + 1) - yk
    dk = _gather(derivs, idx)
    dk1 = _gather(derivs, idx + 1)
    s = hk / wk
    dsum = dk + dk1 - 2.0 * s

    if not inverse:
        t = clamp01((v - xk) / wk)
        t1 = t * (1.0 - t)
        den = s + dsum * t1
        out = yk + hk * (s * t * t + dk * t1) / den
        dnum = s * s * (dk1 * t * t + 2.0 * s * t1 + dk * (1.0 - t) ** 2)
        logdet = torch.log(dnum) - 2.0 * torch.log(den)
    else:
        dy = v - yk
        a = hk * (s - dk) + dy * dsum
        b = hk * dk - dy * dsum
        c = -s * dy
        disc = (b * b - 4.0 * a * c).clamp(min=0.0)
        t = clamp01((2.0 * c) / (-b - torch.sqrt(disc)))
        t1 = t * (1.0 - t)
        den = s + dsum * t1
        out = xk + t * wk
        dnum = s * s * (dk1 * t * t + 2.0 * s * t1 + dk * (1.0 - t) ** 2)
        logdet = 2.0 * torch.log(den) - torch.log(dnum)
    return clamp01(out), logdet


def forward_knots(x: Tensor, knots: Knots) -> tuple[Tensor, Tensor]:
    """Spline ``x -> y`` for constrained knots. ``x [...]``; knots ``[..., K]``/``[..., K+1]``.

    Returns ``(y [...], log|dy/dx| [...])``. Inputs are clamped to [0, 1].
    """
    return _rqs(x, knots, inverse=False)


def inverse_knots(y: Tensor, knots: Knots) -> tuple[Tensor, Tensor]:
    """Inverse spline ``y -> x``. Returns ``(x [...], log|dx/dy| [...])``. Inputs are clamped to [0, 1]."""
    return _rqs(y, knots, inverse=True)


def forward(x: Tensor, params: SplineParams, bounds: SplineBounds = DEFAULT_BOUNDS) -> tuple[Tensor, Tensor]:
    """Spline ``x -> y`` from unconstrained ``params``; see :func:`forward_knots`."""
    return _rqs(x, knots_from_params(params, bounds), inverse=False)


def inverse(y: Tensor, params: SplineParams, bounds: SplineBounds = DEFAULT_BOUNDS) -> tuple[Tensor, Tensor]:
    """Inverse spline ``y -> x`` from unconstrained ``params``; see :func:`inverse_knots`."""
    return _rqs(y, knots_from_params(params, bounds), inverse=True)
