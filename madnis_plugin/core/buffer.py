"""Fixed-size replay buffer for buffered training (MadNIS Reloaded sec. 2.4).

Each stored point keeps what a later loss evaluation needs without calling the integrand again:
r, the sampling channel, the weight w = f/g_c, the CWnet features, the top-m prior channel weights (with the
sampling channel always kept) and log q_s, the density the point was drawn from.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class BufferedBatch:
    """Points drawn from the buffer (all on the buffer's device).

    r: float64 [n, D]; channels: int64 [n]; weight: float64 [n]; features: float64 [n, F];
    prior_idx: int64 [n, m]; prior_val: float64 [n, m]; log_q_sample: float64 [n].
    """

    r: Tensor
    channels: Tensor
    weight: Tensor
    features: Tensor
    prior_idx: Tensor
    prior_val: Tensor
    log_q_sample: Tensor


def top_m_prior(alpha_prior: Tensor, channels: Tensor, m: int) -> tuple[Tensor, Tensor]:
    """The m largest prior weights per row, with the sampling channel forced in (replacing the smallest).

    Args:
        alpha_prior: float64 ``[n, C]``. channels: int64 ``[n]``. m: kept entries (clipped to C).
    Returns:
        (idx int64 ``[n, m]``, val float64 ``[n, m]``).
    """
    m = min(m, alpha_prior.shape[1])
    val, idx = torch.topk(alpha_prior, m, dim=1, sorted=True)
    present = (idx == channels[:, None]).any(dim=1)
    idx[:, -1] = torch.where(present, idx[:, -1], channels)
    val = alpha_prior.gather(1, idx)
    return idx, val


class ReplayBuffer:
    """Ring buffer of at most ``capacity`` points; the oldest are replaced first."""

    def __init__(self, capacity: int, n_dims: int, n_features: int, top_m: int, device: torch.device | str = "cpu"):
        self.capacity = capacity
        self.top_m = top_m
        dev = torch.device(device)
        f64 = dict(dtype=torch.float64, device=dev)
        self.r = torch.zeros(capacity, n_dims, **f64)
        self.channels = torch.zeros(capacity, dtype=torch.int64, device=dev)
        self.weight = torch.zeros(capacity, **f64)
        self.features = torch.zeros(capacity, n_features, **f64)
        self.prior_idx = torch.zeros(capacity, top_m, dtype=torch.int64, device=dev)
        self.prior_val = torch.zeros(capacity, top_m, **f64)
        self.log_q_sample = torch.zeros(capacity, **f64)
        self.size = 0
        self.pos = 0

    def _fields(self) -> tuple[str, ...]:
        return ("r", "channels", "weight", "features", "prior_idx", "prior_val", "log_q_sample")

    def add(self, r: Tensor, channels: Tensor, weight: Tensor, features: Tensor, alpha_prior: Tensor,
            log_q_sample: Tensor) -> None:
        """Store n points (oldest overwritten). alpha_prior is dense ``[n, C]``; only its top-m is kept."""
        idx, val = top_m_prior(alpha_prior, channels, self.top_m)
        m = idx.shape[1]
        if m < self.top_m:  # fewer channels than top_m: pad with entries that are masked out later
            pad = self.top_m - m
            idx = torch.cat([idx, idx[:, :1].expand(-1, pad)], dim=1)
            val = torch.cat([val, torch.full_like(val[:, :1].expand(-1, pad), -1.0)], dim=1)
        new = dict(r=r, channels=channels, weight=weight, features=features, prior_idx=idx, prior_val=val,
                   log_q_sample=log_q_sample)
        n = r.shape[0]
        if n >= self.capacity:
            for k, v in new.items():
                getattr(self, k).copy_(v[-self.capacity :])  # copy_ casts dtype and device
            self.size, self.pos = self.capacity, 0
            return
        slots = (self.pos + torch.arange(n, device=self.r.device)) % self.capacity
        for k, v in new.items():
            dest = getattr(self, k)
            dest[slots] = v.to(dest.device, dest.dtype)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    @property
    def full(self) -> bool:
        return self.size >= self.capacity

    def sample(self, n: int, generator: torch.Generator) -> BufferedBatch:
        """n points drawn uniformly with replacement."""
        if self.size == 0:
            raise RuntimeError("the replay buffer is empty")
        idx = torch.randint(0, self.size, (n,), generator=generator, device=generator.device)
        idx = idx.to(self.r.device)
        return BufferedBatch(*(getattr(self, k)[idx] for k in self._fields()))

    def keep_mask(self, prior_idx: Tensor, prior_val: Tensor, active: Tensor) -> Tensor:
        """bool ``[n, m]``: entries that are real (not padding) and belong to active channels."""
        return (prior_val >= 0) & active[prior_idx]

    def remove_channels(self, dropped: Tensor) -> int:
        """Remove every point sampled in a dropped channel (bool ``[C]``); returns how many were removed.

        Compacts the stored points (oldest first), so the ring continues after the survivors.
        """
        n = self.size
        if n == 0:
            return 0
        # chronological order: oldest at pos when full
        order = (self.pos + torch.arange(n, device=self.r.device)) % self.capacity if self.full else torch.arange(n, device=self.r.device)
        keep = ~dropped.to(self.r.device)[self.channels[order]]
        survivors = order[keep]
        m = survivors.shape[0]
        for k in self._fields():
            t = getattr(self, k)
            t[:m] = t[survivors].clone()
        self.size = m
        self.pos = m % self.capacity
        return n - m

    def state_dict(self) -> dict:
        st = {k: getattr(self, k)[: self.size].cpu().clone() for k in self._fields()}
        st.update(size=self.size, pos=self.pos, capacity=self.capacity, top_m=self.top_m)
        return st

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity or state["top_m"] != self.top_m:
            raise ValueError("buffer shape in checkpoint does not match the configuration")
        n = int(state["size"])
        for k in self._fields():
            getattr(self, k)[:n] = state[k].to(getattr(self, k).device)
        self.size = n
        self.pos = int(state["pos"])
