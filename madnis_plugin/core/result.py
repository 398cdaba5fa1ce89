"""Result objects (dataclasses) returned by the integrator, the sampler and the unweighter."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class IntegrationResult:
    """The refine-phase estimate from the frozen model (training samples never enter it).

    integral, error: the estimate and its standard error, in the integrand's unit.
    rel_std: relative standard deviation per point at the refine allocation, sqrt(N)·error/|integral|.
    channel_integrals, channel_errors: per channel (0 for dropped channels), length C.
    channel_points: points drawn per channel.
    """

    integral: float
    error: float
    rel_std: float
    channel_integrals: list[float]
    channel_errors: list[float]
    channel_points: list[int]
    active_channels: list[int]
    n_points: int
    n_invalid: int
    status_counts: dict[str, int]
    unweighting_efficiency: float
    w_max: float
    n_calls_training: int
    n_calls_integration: int
    wall_time_s: float
    train_time_s: float = 0.0
    train_step_time_s: float = 0.0
    n_steps: int = 0
    exact: float | None = None
    unit: str = ""

    @property
    def pull(self) -> float | None:
        """(I − I_exact)/error when an exact value is known."""
        if self.exact is None or self.error <= 0:
            return None
        return (self.integral - self.exact) / self.error

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pull"] = self.pull
        return d


@dataclass(frozen=True)
class WeightedEvents:
    """Weighted samples from the frozen model; the mean of ``weight`` estimates the integral.

    r: float64 [n, D]; channels: int64 [n]; weight: float64 [n] (integrand unit);
    momenta: float64 [n, n_ext, 4] or None; features: float64 [n, F]; valid: bool [n].
    """

    r: Tensor
    channels: Tensor
    weight: Tensor
    features: Tensor
    valid: Tensor
    momenta: Tensor | None = None

    def __len__(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True)
class UnweightedEvents:
    """Indices of kept events and their weights after hit-or-miss unweighting.

    indices: int64 [k] into the weighted sample; weight: float64 [k], equal to ``unit_weight`` except for
    overweight events (w > w_max), which keep w/w_max · unit_weight.
    """

    indices: Tensor
    weight: Tensor
    unit_weight: float
    w_max: float
    efficiency: float
    overweight_fraction: float
    n_tried: int


@dataclass
class TrainingHistory:
    """Per online step: loss, learning rate, estimated rel. std per point, active channels."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    rel_std: list[float] = field(default_factory=list)
    n_active: list[int] = field(default_factory=list)
    buffered: list[bool] = field(default_factory=list)

    def record(self, step: int, loss: float, lr: float, rel_std: float, n_active: int, buffered: bool) -> None:
        self.step.append(step)
        self.loss.append(loss if math.isfinite(loss) else float("nan"))
        self.lr.append(lr)
        self.rel_std.append(rel_std)
        self.n_active.append(n_active)
        self.buffered.append(buffered)

    def to_dict(self) -> dict[str, list]:
        return asdict(self)


def as_float(t: Tensor | float) -> float:
    return float(t.item()) if isinstance(t, torch.Tensor) else float(t)
