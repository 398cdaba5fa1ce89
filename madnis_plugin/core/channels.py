"""Channel bookkeeping: running statistics, stratified allocation (MadNIS Reloaded eq. 25) and channel dropping."""

from __future__ import annotations

import torch
from torch import Tensor


class RunningStats:
    """Running means of per-channel σ_i and I_i over the last ``window`` online batches.

    Stored as a ring of ``[window, C]`` float64 tensors with NaN where a channel had no estimate in that batch.
    """

    def __init__(self, n_channels: int, window: int):
        self.sigma = torch.full((window, n_channels), float("nan"), dtype=torch.float64)
        self.mean = torch.full((window, n_channels), float("nan"), dtype=torch.float64)
        self.pos = 0
        self.filled = 0

    def update(self, sigma: Tensor, mean: Tensor, has_value: Tensor) -> None:
        """Record one batch: float64 ``[C]`` σ_i and I_i, bool ``[C]`` where they were estimated."""
        nan = torch.full_like(sigma, float("nan"))
        self.sigma[self.pos] = torch.where(has_value, sigma.detach().cpu(), nan.cpu())
        self.mean[self.pos] = torch.where(has_value, mean.detach().cpu(), nan.cpu())
        self.pos = (self.pos + 1) % self.sigma.shape[0]
        self.filled = min(self.filled + 1, self.sigma.shape[0])

    def sigma_mean(self) -> Tensor:
        """float64 ``[C]``; NaN for channels never estimated in the window."""
        return torch.nanmean(self.sigma, dim=0)

    def integral_mean(self) -> Tensor:
        return torch.nanmean(self.mean, dim=0)

    def state_dict(self) -> dict:
        return {"sigma": self.sigma.clone(), "mean": self.mean.clone(), "pos": self.pos, "filled": self.filled}

    def load_state_dict(self, state: dict) -> None:
        self.sigma = state["sigma"].clone()
        self.mean = state["mean"].clone()
        self.pos = int(state["pos"])
        self.filled = int(state["filled"])


def pool_sigma_in_groups(sigma: Tensor, channel_group: Tensor, active: Tensor, n_groups: int) -> Tensor:
    """σ_i replaced by the RMS of the running σ_j over the active channels j of its group.

    Channels of one group are symmetric (they share a flow), so their true σ are equal; the running estimates
    scatter (30 % is common after a short training), and N_i ∝ noisy σ_i gives the under-allocated channels of a
    group larger event weights N/N_i and so a larger w_max. Pooling allocates a group's points evenly and gives
    the group N_g ∝ √(K Σ_j σ_j²), the optimum for uniform sampling inside the group (MadNIS Reloaded's
    "uniform" grouping). Unknown (NaN) σ_j are left out; a group without any known σ keeps NaN.

    Args: sigma float64 ``[C]``; channel_group int64 ``[C]``; active bool ``[C]``.
    """
    ok = active & torch.isfinite(sigma)
    s2 = torch.where(ok, sigma.to(torch.float64) ** 2, torch.zeros_like(sigma, dtype=torch.float64))
    zeros = torch.zeros(n_groups, dtype=torch.float64, device=sigma.device)
    tot = zeros.index_add(0, channel_group, s2)
    cnt = zeros.index_add(0, channel_group, ok.to(torch.float64))
    rms = torch.where(cnt > 0, torch.sqrt(tot / cnt.clamp_min(1.0)), torch.full_like(tot, float("nan")))
    return rms[channel_group]


def allocate(n: int, sigma: Tensor | None, active: Tensor, uniform_fraction: float, min_per_channel: int = 1) -> Tensor:
    """Points per channel: a fraction ``uniform_fraction`` spread evenly over active channels, the rest ∝ σ_i.

    Rounding by largest remainder, so the counts sum to exactly ``n`` (or to ``min_per_channel`` × #active when
    that is larger). Channels with unknown σ (NaN) get only the uniform share. Deterministic.

    Args:
        n: total points. sigma: float64 ``[C]`` or None (→ uniform). active: bool ``[C]``.
    Returns:
        int64 ``[C]``, zero for inactive channels.
    """
    n_ch = active.shape[0]
    act = active.to(torch.float64)
    n_act = int(active.sum())
    if n_act == 0:
        raise ValueError("no active channel left to allocate points to")
    share = act / n_act
    if sigma is not None:
        s = torch.nan_to_num(sigma.to(torch.float64), nan=0.0).clamp_min(0.0) * act
        if s.sum() > 0:
            share = uniform_fraction * share + (1.0 - uniform_fraction) * s / s.sum()
    n = max(n, min_per_channel * n_act)
    free = n - min_per_channel * n_act
    exact = share * free
    counts = torch.floor(exact).to(torch.int64)
    rest = free - int(counts.sum())
    if rest > 0:
        # largest remainders first; ties broken by channel index (stable sort) for determinism
        order = torch.argsort(-(exact - counts), stable=True)
        order = order[active[order]]
        counts[order[:rest]] += 1
    counts = counts + min_per_channel * active.to(torch.int64)
    assert counts.shape == (n_ch,)
    return counts


def channels_to_drop(integrals: Tensor, active: Tensor, cutoff: float) -> Tensor:
    """Which active channels to drop: the smallest |I_i| first, while their summed share stays ≤ ``cutoff``.

    Channels without an estimate (NaN) are never dropped; at least one channel always stays.

    Args:
        integrals: float64 ``[C]`` running means of I_i. active: bool ``[C]``.
    Returns:
        bool ``[C]``: True for channels to drop now.
    """
    mag = integrals.abs()
    known = active & torch.isfinite(mag)
    total = torch.nan_to_num(mag, nan=0.0)[active].sum()
    drop = torch.zeros_like(active)
    if total <= 0 or cutoff <= 0:
        return drop
    idx = torch.nonzero(known).flatten()
    order = idx[torch.argsort(mag[idx], stable=True)]
    cum = torch.cumsum(mag[order], dim=0) / total
    n_drop = int((cum <= cutoff).sum())
    n_drop = min(n_drop, int(active.sum()) - 1)
    drop[order[:n_drop]] = True
    return drop
