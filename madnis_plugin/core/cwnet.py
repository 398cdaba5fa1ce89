"""Channel-weight network (CWnet) on top of a prior: α = softmax(log α_prior + Δ_ξ(x)) (MadNIS Reloaded eq. 15).

The correction Δ starts at exactly zero (last layer zero-initialised), so an untrained CWnet reproduces the prior.
Dropped channels get log α = −∞ and the softmax renormalises over the active ones, which keeps every estimate
unbiased as long as the active channels' mappings cover the support.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

NEG_INF = float("-inf")


def masked_log_prior(alpha_prior: Tensor) -> Tensor:
    """log α_prior with exact zeros → −∞; rows that are all zero become uniform (log 1 everywhere).

    Args:
        alpha_prior: float64 ``[n, C]`` (or ``[n, m]`` for top-m buffered weights), non-negative.
    Returns:
        float64 tensor of the same shape.
    """
    log_a = torch.where(alpha_prior > 0, torch.log(alpha_prior.clamp_min(1e-300)), NEG_INF)
    dead = ~(alpha_prior > 0).any(dim=-1, keepdim=True)
    return torch.where(dead, torch.zeros_like(log_a), log_a)


class ChannelWeightNet(nn.Module):
    """Δ_ξ: features ``[n, F]`` → correction ``[n, C]``, with fixed input standardisation.

    Args:
        n_features: F.
        n_channels: C.
        hidden: hidden nodes per layer.
        layers: number of hidden layers.
        trainable: False freezes α to the prior (Δ ≡ 0, no parameters trained).
    """

    def __init__(self, n_features: int, n_channels: int, hidden: int = 64, layers: int = 3, trainable: bool = True):
        super().__init__()
        self.n_channels = n_channels
        self.trainable = trainable and n_channels > 1
        self.register_buffer("feat_mean", torch.zeros(n_features, dtype=torch.float64))
        self.register_buffer("feat_std", torch.ones(n_features, dtype=torch.float64))
        mods: list[nn.Module] = []
        width = n_features
        for _ in range(layers):
            mods += [nn.Linear(width, hidden, dtype=torch.float64), nn.LeakyReLU()]
            width = hidden
        last = nn.Linear(width, n_channels, dtype=torch.float64)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        mods.append(last)
        self.net = nn.Sequential(*mods)
        if not self.trainable:
            self.net.requires_grad_(False)

    @torch.no_grad()
    def set_standardisation(self, features: Tensor, upscale_only: bool = False) -> None:
        """Fix the input shift/scale from a sample of features ``[n, F]`` (e.g. the VEGAS pre-training points).
        ``upscale_only``: the scale is min(std, 1), so features wider than unit scale are not compressed."""
        if features.numel() == 0:
            return
        std = features.std(dim=0).clamp_min(1e-8)
        self.feat_mean.copy_(features.mean(dim=0))
        self.feat_std.copy_(std.clamp_max(1.0) if upscale_only else std)

    def correction(self, features: Tensor) -> Tensor:
        """Δ_ξ(x): float64 ``[n, C]`` (zeros when frozen)."""
        if not self.trainable:
            return torch.zeros(features.shape[0], self.n_channels, dtype=torch.float64, device=features.device)
        return self.net((features - self.feat_mean) / self.feat_std)

    def log_alpha(self, features: Tensor, alpha_prior: Tensor, active: Tensor) -> Tensor:
        """log α over all channels: float64 ``[n, C]``, normalised over ``active`` (bool ``[C]``)."""
        logits = masked_log_prior(alpha_prior) + self.correction(features)
        logits = torch.where(active[None, :], logits, NEG_INF)
        return _safe_log_softmax(logits)

    def log_alpha_topm(self, features: Tensor, prior_idx: Tensor, prior_val: Tensor, keep: Tensor) -> Tensor:
        """log α restricted to stored top-m channels (buffered training, MadNIS Reloaded sec. 2.4).

        Args:
            prior_idx: int64 ``[n, m]`` channel indices; prior_val: float64 ``[n, m]`` prior weights there.
            keep: bool ``[n, m]``; False for padding and for dropped channels (their α is set to zero and the
                normalisation adjusted accordingly).
        Returns:
            float64 ``[n, m]``.
        """
        corr = self.correction(features).gather(1, prior_idx) if self.trainable else torch.zeros_like(prior_val)
        logits = masked_log_prior(prior_val) + corr
        logits = torch.where(keep, logits, NEG_INF)
        return _safe_log_softmax(logits)


def _safe_log_softmax(logits: Tensor) -> Tensor:
    """log_softmax along the last dim; rows that are all −∞ give −∞ (α = 0), never NaN."""
    all_dead = torch.isinf(logits).all(dim=-1, keepdim=True) & (logits < 0).all(dim=-1, keepdim=True)
    safe = torch.where(all_dead, torch.zeros_like(logits), logits)
    out = torch.log_softmax(safe, dim=-1)
    return torch.where(all_dead, torch.full_like(out, NEG_INF), out)
