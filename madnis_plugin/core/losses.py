"""Multi-channel losses, importance-weighted with the stored sampling density so one formula serves online and
buffered points (MadNIS Reloaded eqs. 24-26; MadNIS appendix A).

Notation per point k sampled in channel c_k with density q_s (the density it was *drawn* from, detached):
    h_k = α_{c_k}(x_k) · w_k      the channel's contribution on the flat-r measure (w = f/g_c)
    q_θ(r_k)                        the current flow density of the point's group (carries the gradient)
Per channel i:
    I_i  = ⟨h / q_s⟩,   σ_i² = ⟨h² / (q_θ q_s)⟩ − I_i²    (expectations over points of channel i)
When q_s = q_θ this is the usual variance of h/q; gradients never flow through w (the integrand is a black box).
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
    q_s = torch.exp(log_q_sample)
    ratio = h / q_s
    second = h * h * torch.exp(-log_q_model - log_q_sample)
    s1 = torch.zeros(n_channels, dtype=h.dtype, device=h.device).index_add(0, channels, ratio)
    s2 = torch.zeros(n_channels, dtype=h.dtype, device=h.device).index_add(0, channels, second)
    safe_n = n_f.clamp_min(1.0)
    mean = s1 / safe_n
    has_var = counts >= 2
    # unbiased finite-sample variance (factor N/(N−1), MadNIS Reloaded below eq. 10)
    var = (s2 / safe_n - mean * mean) * safe_n / (safe_n - 1.0).clamp_min(1.0)
    var = torch.where(has_var, var.clamp_min(0.0), torch.zeros_like(var))
    return ChannelMoments(counts, mean, var, has_var)


def _safe_sqrt(x: Tensor) -> Tensor:
    pos = x > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))), torch.zeros_like(x))


def madnis_loss(m: ChannelMoments) -> Tensor:
    """(Σ_i σ_i)² — the variance at optimal stratification N_i ∝ σ_i (eq. 26)."""
    return _safe_sqrt(m.var).sum() ** 2


def variance_loss(m: ChannelMoments) -> Tensor:
    """Σ_i (N/N_i) σ_i² with the batch's own allocation (eq. 24)."""
    n = m.counts.sum().to(m.var.dtype)
    frac = torch.where(m.has_var, n / m.counts.to(m.var.dtype).clamp_min(1.0), torch.zeros_like(m.var))
    return (frac * m.var).sum()


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
