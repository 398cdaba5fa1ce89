"""The trained object: one flow per channel group, the channel-weight network and the channel bookkeeping.

Everything is evaluated batched over channels and groups (no Python loop over channels in the hot path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from .config import MadnisConfig
from .cwnet import ChannelWeightNet
from .flows import MultiFlow
from .splines import SplineBounds
from .vegas import VegasGrid


def channel_group_map(groups: Sequence[Sequence[int]], n_channels: int) -> Tensor:
    """int64 ``[C]``: the group of each channel. Every channel must be in exactly one group."""
    out = torch.full((n_channels,), -1, dtype=torch.int64)
    for g, chans in enumerate(groups):
        for c in chans:
            if not 0 <= int(c) < n_channels:
                raise ValueError(f"group {g} lists channel {c}, outside [0, {n_channels})")
            if out[int(c)] >= 0:
                raise ValueError(f"channel {c} is in more than one group")
            out[int(c)] = g
    missing = torch.nonzero(out < 0).flatten().tolist()
    if missing:
        raise ValueError(f"channels {missing[:10]} are in no group")
    return out


@dataclass(frozen=True)
class ModelOutput:
    """Evaluation of the model at points with known integrand values.

    h: float64 [n] channel contribution α_c(x)·w (flat-r measure); log_q: float64 [n] flow density of r;
    log_alpha: float64 [n] log α of the sampling channel.
    """

    h: Tensor
    log_q: Tensor
    log_alpha: Tensor


class MadnisModel(nn.Module):
    """Flows (one per group), CWnet, channel → group map and the active-channel mask."""

    def __init__(self, n_dims: int, n_channels: int, n_features: int, groups: Sequence[Sequence[int]],
                 config: MadnisConfig):
        super().__init__()
        self.n_dims = n_dims
        self.n_channels = n_channels
        self.n_groups = len(groups)
        self.register_buffer("channel_group", channel_group_map(groups, n_channels))
        self.register_buffer("active", torch.ones(n_channels, dtype=torch.bool))
        self.flows = MultiFlow(
            self.n_groups, n_dims, bins=config.flow_bins, hidden=config.flow_hidden, layers=config.flow_layers,
            n_blocks=config.resolved_flow_blocks(n_dims),
            bounds=SplineBounds(config.flow_min_bin, config.flow_min_bin, config.flow_min_bin),
        )
        self.cwnet = ChannelWeightNet(
            n_features, n_channels, config.cwnet_hidden, config.cwnet_layers, config.train_channel_weights
        )
        self.vegas = VegasGrid(self.n_groups, n_dims, config.vegas_bins)

    def sample(self, channels: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw r for each channel from its group's flow: (r float64 ``[n, D]``, log q float64 ``[n]``)."""
        return self.flows.sample(self.channel_group[channels], generator)

    def log_q(self, r: Tensor, channels: Tensor) -> Tensor:
        """log density of r under the flow of each point's group: float64 ``[n]``."""
        return self.flows.log_prob(r, self.channel_group[channels])

    def evaluate(self, channels: Tensor, r: Tensor, weight: Tensor, features: Tensor, alpha_prior: Tensor) -> ModelOutput:
        """h = α_c(x)·w and log q for online points with dense priors ``[n, C]``."""
        log_q = self.log_q(r, channels)
        log_alpha = self.cwnet.log_alpha(features, alpha_prior, self.active).gather(1, channels[:, None]).squeeze(1)
        return ModelOutput(torch.exp(log_alpha) * weight, log_q, log_alpha)

    def evaluate_topm(self, channels: Tensor, r: Tensor, weight: Tensor, features: Tensor, prior_idx: Tensor,
                      prior_val: Tensor) -> ModelOutput:
        """Same as :meth:`evaluate` for buffered points with top-m priors ``[n, m]``."""
        log_q = self.log_q(r, channels)
        keep = (prior_val >= 0) & self.active[prior_idx]
        log_a = self.cwnet.log_alpha_topm(features, prior_idx, prior_val, keep)
        pos = (prior_idx == channels[:, None]) & keep
        log_alpha = torch.where(pos, log_a, torch.full_like(log_a, float("-inf"))).max(dim=1).values
        return ModelOutput(torch.exp(log_alpha) * weight, log_q, log_alpha)
