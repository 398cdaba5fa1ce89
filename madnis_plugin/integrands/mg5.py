"""The Integrand protocol for processes evaluated through the bridge (MG5 processes and the reference process).

    from madnis_plugin.integrands.mg5 import load_integrand
    with load_integrand("MY_OUTPUT/SubProcesses/P1_epem_mupmum") as integrand:
        batch = integrand.evaluate(channels, r)          # torch in, IntegrandBatch out

:class:`ProcessIntegrand` wraps a :class:`~madnis_plugin.bridge.process.Process`: torch tensors are converted to
numpy, evaluated in the bridge's worker processes, and returned as float64 tensors. Features are the process's
(:meth:`Process.features`): for MG5, ln(√ŝ/√s) and (ln pT/√ŝ, η, φ/π) of each final-state particle; for the
reference process (ln(s/M_Z²), cosθ).

Like the toys, invalid input does not raise here: points with r outside [0,1] (beyond 1e-12, which is clipped) or
non-finite, and channels out of range, get ``valid=False``, weight 0, ``STATUS_FAILED_MAPPING`` and a uniform prior.
Errors of the library itself (Fortran STOP, crashed worker, ...) are raised as bridge exceptions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from madnis_plugin.bridge.process import Process, load_process

from .protocol import STATUS_FAILED_MAPPING, IntegrandBatch, sanitize

__all__ = ["ProcessIntegrand", "load_integrand"]

_R_TOLERANCE = 1e-12


class ProcessIntegrand:
    """A bridge :class:`Process` as an :class:`~madnis_plugin.integrands.protocol.Integrand`."""

    def __init__(self, process: Process):
        self.process = process
        self.n_dims = process.n_dims
        self.n_channels = process.n_channels
        self.n_features = process.n_features
        self.groups = [list(g) for g in process.groups]
        self.channel_names = list(process.channel_names)
        self.exact = process.exact
        self.unit = process.unit
        self.info = process.info
        self.n_calls = 0  # matrix-element evaluations requested (valid input points)

    def evaluate(self, channels: Tensor, r: Tensor) -> IntegrandBatch:
        ch = torch.as_tensor(channels).detach().cpu().numpy().astype(np.int64, copy=False).reshape(-1)
        rr = torch.as_tensor(r, dtype=torch.float64).detach().cpu().numpy()
        n = ch.shape[0]
        if rr.ndim != 2 or rr.shape != (n, self.n_dims):
            raise ValueError(f"r must have shape [{n}, {self.n_dims}], got {tuple(rr.shape)}")
        ok = (ch >= 0) & (ch < self.n_channels) & np.all(np.isfinite(rr), axis=1)
        ok &= np.all((rr >= -_R_TOLERANCE) & (rr <= 1.0 + _R_TOLERANCE), axis=1)
        idx = np.flatnonzero(ok)
        weight = np.zeros(n)
        alpha = np.full((n, self.n_channels), 1.0 / self.n_channels)
        status = np.full(n, STATUS_FAILED_MAPPING, np.int32)
        momenta = np.zeros((n, self.process.n_external, 4))
        features = np.zeros((n, self.n_features))
        if idx.shape[0]:
            ev = self.process.evaluate(ch[idx], np.clip(rr[idx], 0.0, 1.0))
            self.n_calls += idx.shape[0]
            weight[idx] = ev.weight
            alpha[idx] = ev.alpha
            status[idx] = ev.status
            momenta[idx] = ev.momenta
            features[idx] = self.process.features(ev)
        valid = torch.from_numpy(status == 0)
        batch = IntegrandBatch(
            weight=torch.from_numpy(weight),
            alpha_prior=torch.from_numpy(alpha),
            features=torch.from_numpy(features),
            valid=valid,
            momenta=torch.from_numpy(momenta),
            status=torch.from_numpy(status),
        )
        return sanitize(batch)

    __call__ = evaluate

    def close(self) -> None:
        self.process.close()

    def __enter__(self) -> "ProcessIntegrand":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_integrand(path: str | Path, *, sde_strategy: int = 1, n_workers: int | None = None, **kwargs) -> ProcessIntegrand:
    """:func:`~madnis_plugin.bridge.process.load_process` wrapped as an Integrand."""
    return ProcessIntegrand(load_process(path, sde_strategy=sde_strategy, n_workers=n_workers, **kwargs))
