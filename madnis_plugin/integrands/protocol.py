"""The Integrand protocol: the one contract between the MadNIS core and anything it integrates.

A multi-channel integrand maps, for channel ``i``, a point ``r`` of the unit hypercube ``[0,1]^D`` to a point
``x = G_i(r)`` of the physical space and returns the weight ``w = f(x) / g_i(x)``, where ``g_i`` is the density
of ``x`` when ``r`` is uniform. Hence ``∫ d^D r  α_i(x) w(r) = I_i`` and ``Σ_i I_i = ∫ f``.

Toys, the project's reference process (Fortran through the bridge) and MG5 processes all implement it, so the
core is tested on exact answers and used unchanged on MG5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import torch
from torch import Tensor


@dataclass(frozen=True)
class IntegrandBatch:
    """What one ``evaluate`` call returns for ``n`` points.

    Attributes:
        weight: float64 ``[n]``; ``f(x)/g_i(x)`` in the integrand's units (pb for MG5 processes).
            Exactly 0 where ``valid`` is False.
        alpha_prior: float64 ``[n, C]``; prior channel weights α_j(x) for every channel j, rows sum to 1.
        features: float64 ``[n, F]``; a channel-independent description of x (the input of the channel-weight
            network), e.g. x itself for toys or (log pT, η, φ) of the final state for MG5 processes.
        valid: bool ``[n]``; False for points outside cuts, with NaN/inf weight or a failed mapping.
        momenta: float64 ``[n, n_ext, 4]`` (E, px, py, pz) in GeV, or None for integrands without momenta.
        status: int32 ``[n]``; 0 = ok, 1 = cut, 2 = failed mapping, 3 = NaN/inf, 4 = other error.
    """

    weight: Tensor
    alpha_prior: Tensor
    features: Tensor
    valid: Tensor
    momenta: Tensor | None = None
    status: Tensor | None = None


STATUS_OK = 0
STATUS_CUT = 1
STATUS_FAILED_MAPPING = 2
STATUS_NONFINITE = 3
STATUS_ERROR = 4


@runtime_checkable
class Integrand(Protocol):
    """A multi-channel integrand on ``[0,1]^n_dims`` (C = 1 for a single-channel one).

    Attributes:
        n_dims: D, the dimension of r.
        n_channels: C.
        n_features: F, width of ``IntegrandBatch.features``.
        groups: channel indices that share one flow (they differ only by a permutation of final-state momenta);
            every channel is in exactly one group.
        channel_names: one label per channel, for reports.
        exact: the exact integral when known (toys, reference process), else None.
        unit: unit of weights and integrals, e.g. "pb" or "" for toys.
    """

    n_dims: int
    n_channels: int
    n_features: int
    groups: Sequence[Sequence[int]]
    channel_names: Sequence[str]
    exact: float | None
    unit: str

    def evaluate(self, channels: Tensor, r: Tensor) -> IntegrandBatch:
        """Evaluate at ``channels`` (int64 ``[n]``, values in ``[0, C)``) and ``r`` (float64 ``[n, D]`` in [0,1])."""
        ...


def sanitize(batch: IntegrandBatch) -> IntegrandBatch:
    """Mark non-finite weights invalid and zero them, so a bad point never poisons a loss.

    Returns a new batch; ``status`` gets STATUS_NONFINITE where the weight or prior was not finite.
    """
    finite = torch.isfinite(batch.weight) & torch.isfinite(batch.alpha_prior).all(dim=1)
    valid = batch.valid & finite
    weight = torch.where(valid, batch.weight, torch.zeros_like(batch.weight))
    n_ch = batch.alpha_prior.shape[1]
    alpha = torch.where(
        finite[:, None], batch.alpha_prior, torch.full_like(batch.alpha_prior, 1.0 / n_ch)
    )
    status = batch.status
    if status is None:
        status = torch.zeros(weight.shape, dtype=torch.int32)
    status = torch.where(~finite, torch.full_like(status, STATUS_NONFINITE), status)
    features = torch.nan_to_num(batch.features, nan=0.0, posinf=0.0, neginf=0.0)
    return IntegrandBatch(weight, alpha, features, valid, batch.momenta, status)
