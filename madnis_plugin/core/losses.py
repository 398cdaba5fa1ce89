"""Multi-channel losses, importance-weighted with the stored sampling density so one formula serves online and
buffered points (MadNIS Reloaded eqs. 24-26; MadNIS appendix A).

Notation per point k sampled in channel c_k with density q_s (the density it was *drawn* from, detached):
    h_k = α_{c_k}(x_k) · w_k      the channel's contribution on the flat-r measure (w = f/g_c)
    q_θ(r_k)                        the current flow density of the point's group (carries the gradient)
Per channel i:
    I_i  = ⟨h / q_s⟩,   σ_i² = ⟨(h/q_θ − I_i)² · q_θ/q_s⟩    (expectations over points of channel i)
In expectation this is ⟨h²/(q_θ q_s)⟩ − I_i² (eq. 24), and when q_s = q_θ it is the usual variance of h/q. The
centred form matters for the gradient: with respect to the flow it is ⟨(I_i² − h²/q_θ²) ∇q_θ / q_s⟩, where I_i²
acts as a control variate (its expectation ⟨∇q_θ/q_s⟩ = ∇∫q_θ = 0). Without it the per-point gradient is
−h²/q_θ² ∇q_θ/q_s, whose noise does not vanish as the flow converges; with it, it does (as in madnis 1.0).
The losses are divided by (Σ_i |I_i|)² (detached), so they are dimensionless (relative variances): the gradient
scale is the same for a toy and for an MG5 cross section in pb, and one outlying batch cannot inflate Adam's
second moments by the square of the integrand's unit.
Gradients never flow through w (the integrand is a black box).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor


@dataclass(frozen=True)
class ChannelMoments:
    """Per-channel statistics of one batch; all float64 ``[C]`` except ``counts`` (int64 ``[C]``).

    ``mean`` and ``var`` carry gradients; channels with fewer than two points have var = 0 and ``has_var`` False.
    """

    counts: Tensor
    mean: Tensor
    var: Tensor
    has_var: Tensor


def channel_moments(channels: Tensor, h: Tensor, log_q_model: Tensor, log_q_sample: Tensor, n_channels: int) -> ChannelMoments:
    """Importance-weighted per-channel mean and variance (no Python loop over channels).

    Args:
        channels: int64 ``[n]``. h: float64 ``[n]``. log_q_model, log_q_sample: float64 ``[n]``.
    """
    counts = torch.bincount(channels, minlength=n_channels)
    n_f = counts.to(h.dtype)
    safe_n = n_f.clamp_min(1.0)
    ratio = h * torch.exp(-log_q_sample)
    zeros = torch.zeros(n_channels, dtype=h.dtype, device=h.device)
    mean = zeros.index_add(0, channels, ratio) / safe_n
    # centred second moment ⟨(h/q_θ − I)² q_θ/q_s⟩ (see the module docstring for why it is centred)
    dev = h * torch.exp(-log_q_model) - mean[channels]
    centred = dev * dev * torch.exp(log_q_model - log_q_sample)
    has_var = counts >= 2
    # unbiased finite-sample variance (factor N/(N−1), MadNIS Reloaded below eq. 10)
    var = zeros.index_add(0, channels, centred) / (safe_n - 1.0).clamp_min(1.0)
    var = torch.where(has_var, var, torch.zeros_like(var))
    return ChannelMoments(counts, mean, var, has_var)


def _norm2(m: ChannelMoments) -> Tensor:
    """(Σ_i |I_i|)², detached; 1 where the batch has no signal (all weights zero)."""
    total = m.mean.detach().abs().sum()
    return torch.where(total > 0, total * total, torch.ones_like(total))


def _safe_sqrt(x: Tensor) -> Tensor:
    pos = x > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))), torch.zeros_like(x))


def madnis_loss(m: ChannelMoments) -> Tensor:
    """(Σ_i σ_i)² / (Σ_i |I_i|)² — the relative variance at optimal stratification N_i ∝ σ_i (eq. 26)."""
    return _safe_sqrt(m.var).sum() ** 2 / _norm2(m)


def variance_loss(m: ChannelMoments) -> Tensor:
    """Σ_i (N/N_i) σ_i² / (Σ_i |I_i|)² with the batch's own allocation (eq. 24)."""
    n = m.counts.sum().to(m.var.dtype)
    frac = torch.where(m.has_var, n / m.counts.to(m.var.dtype).clamp_min(1.0), torch.zeros_like(m.var))
    return (frac * m.var).sum() / _norm2(m)


def kl_loss(channels: Tensor, h: Tensor, log_q_model: Tensor, log_q_sample: Tensor, n_channels: int) -> Tensor:
    """Σ_i KL(p_i ‖ q_θ) up to constants, p_i = h/I_i: −Σ_i ⟨(h/q_s) log q_θ⟩_i / |I_i|.

    Trains the flows only: the target p_i contains α, which a KL to a normalised p_i cannot optimise.
    """
    w = (h / torch.exp(log_q_sample)).detach()
    counts = torch.bincount(channels, minlength=n_channels).to(h.dtype).clamp_min(1.0)
    s_w = torch.zeros(n_channels, dtype=h.dtype, device=h.device).index_add(0, channels, w)
    s_wl = torch.zeros(n_channels, dtype=h.dtype, device=h.device).index_add(0, channels, w * log_q_model)
    norm = (s_w / counts).abs()
    ok = norm > 0
    per = torch.where(ok, -(s_wl / counts) / torch.where(ok, norm, torch.ones_like(norm)), torch.zeros_like(norm))
    return per.sum()


LossName = Literal["madnis", "variance", "kl"]


def compute_loss(name: LossName, channels: Tensor, h: Tensor, log_q_model: Tensor, log_q_sample: Tensor,
                 n_channels: int) -> tuple[Tensor, ChannelMoments]:
    """The named loss and the batch's per-channel moments (for running statistics)."""
    m = channel_moments(channels, h, log_q_model, log_q_sample, n_channels)
    if name == "madnis":
        return madnis_loss(m), m
    if name == "variance":
        return variance_loss(m), m
    if name == "kl":
        return kl_loss(channels, h, log_q_model, log_q_sample, n_channels), m
    raise ValueError(f"unknown loss {name!r}; valid: 'madnis', 'variance', 'kl'")
