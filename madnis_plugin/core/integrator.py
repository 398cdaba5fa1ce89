"""Refine phase on the frozen model: integral and error, weighted samples, unweighting (design.md "Numbers").

The channel allocation is N_i ∝ σ_i (running means from training, a small uniform share on top); the estimate
and its error come only from the points drawn here.
"""

from __future__ import annotations

import math
import sys
import time

import torch
from torch import Tensor

from ..integrands.protocol import STATUS_CUT, STATUS_ERROR, STATUS_FAILED_MAPPING, STATUS_NONFINITE, STATUS_OK
from .channels import allocate
from .result import IntegrationResult, UnweightedEvents, WeightedEvents
from .trainer import Trainer

_STATUS_NAMES = {STATUS_OK: "ok", STATUS_CUT: "cut", STATUS_FAILED_MAPPING: "failed_mapping",
                 STATUS_NONFINITE: "nonfinite", STATUS_ERROR: "error"}

INTEGRATION_SEED_OFFSET = 1_000_003


def refine_allocation(trainer: Trainer, n: int, kind: str = "sigma") -> Tensor:
    """int64 ``[C]``: N_i ∝ running σ_i over active channels (``kind="rms"``: ∝ √(σ_i² + I_i²)), uniform share
    ``uniform_fraction`` on top."""
    cfg = trainer.config
    sigma = trainer.allocation_sigma(kind) if trainer.stats.filled else None
    return allocate(n, sigma, trainer.model.active, cfg.uniform_fraction, cfg.min_points_per_channel)


def _refine_plan(trainer: Trainer, n: int, seed: int | None, generator: torch.Generator | None,
                 kind: str = "sigma") -> tuple[torch.Generator, Tensor, Tensor, Tensor]:
    """Generator (seeded from config.seed unless given), counts ``[C]``, the channel of every point ``[N]`` and
    the per-channel event-weight factor N/N_i ``[C]``; puts the model in eval mode."""
    if generator is None:
        s = trainer.config.seed + INTEGRATION_SEED_OFFSET if seed is None else seed
        generator = torch.Generator(device=trainer.device).manual_seed(s)
    trainer.model.eval()
    counts = refine_allocation(trainer, n, kind)
    channels_all = torch.repeat_interleave(torch.arange(trainer.n_channels, device=trainer.device), counts)
    scale = int(counts.sum()) / counts.to(torch.float64).clamp_min(1.0)
    return generator, counts, channels_all, scale


@torch.no_grad()
def _draw(trainer: Trainer, channels: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, object]:
    """Sample r for ``channels``, evaluate integrand and model: (r, v = α_c w / q, integrand batch)."""
    model = trainer.model
    r, log_q = model.sample(channels, generator)
    b = trainer.evaluate(channels, r, "integration")
    log_alpha = model.cwnet.log_alpha(b.features, b.alpha_prior, model.active).gather(1, channels[:, None]).squeeze(1)
    v = torch.exp(log_alpha) * b.weight * torch.exp(-log_q)
    v = torch.where(b.valid & torch.isfinite(v), v, torch.zeros_like(v))
    return r, v, b


def _chunks(channels: Tensor, size: int):
    for start in range(0, channels.shape[0], size):
        yield channels[start : start + size]


@torch.no_grad()
def generate(trainer: Trainer, n: int, *, seed: int | None = None, generator: torch.Generator | None = None,
             progress: bool | None = None) -> WeightedEvents:
    """``n`` weighted events from the frozen model; event weight = (α_c w / q)·N/N_c, so ⟨weight⟩ estimates I.
    Channel allocation ``config.event_allocation`` (default N_c ∝ √(σ_c² + I_c²), see the config)."""
    from tqdm.auto import tqdm

    cfg = trainer.config
    generator, counts, channels_all, scale = _refine_plan(trainer, n, seed, generator, cfg.event_allocation)
    n_tot = int(counts.sum())
    rs, cs, ws, fs, vs, ms = [], [], [], [], [], []
    show = cfg.progress if progress is None else progress
    with tqdm(total=n_tot, desc="MadNIS sampling", unit="pt", disable=not show, file=sys.stderr,
              dynamic_ncols=True, mininterval=0.5) as bar:
        for ch in _chunks(channels_all, cfg.integration_batch):
            r, v, b = _draw(trainer, ch, generator)
            rs.append(r)
            cs.append(ch)
            ws.append(v * scale[ch])
            fs.append(b.features)
            vs.append(b.valid)
            if b.momenta is not None:
                ms.append(b.momenta)
            bar.update(int(ch.shape[0]))
    return WeightedEvents(torch.cat(rs), torch.cat(cs), torch.cat(ws), torch.cat(fs), torch.cat(vs),
                          torch.cat(ms) if ms else None)


def bootstrap_wmax(weights: Tensor, replicas: int, generator: torch.Generator) -> float:
    """Median over bootstrap replicas of the maximum weight (MadNIS Reloaded sec. 3.2).

    Exact and O(n log n): the maximum of a resample of size n is the order statistic w_(j) with
    P(j ≤ k) = (k/n)^n, so j = ceil(n · u^(1/n)) for uniform u.
    """
    w = torch.sort(weights.abs().to(torch.float64).cpu()).values
    n = w.shape[0]
    if n == 0:
        return 0.0
    u = torch.rand(replicas, generator=generator, dtype=torch.float64, device=generator.device).cpu()
    j = torch.ceil(n * torch.exp(torch.log(u.clamp_min(1e-300)) / n)).to(torch.int64).clamp(1, n) - 1
    return float(torch.median(w[j]))


def truncated_wmax(weights: Tensor, trunc: float) -> float:
    """The smallest w_max whose overflow Σ_k max(|w_k| − w_max, 0) is at most ``trunc`` · Σ_k |w_k|.

    MadEvent's rule (``trunc_max`` = 0.01 in run_config.inc, and MG5's final ``unweight(trunc_error=0.01)``):
    unit-weight events are drawn up to w_max; the rarest, largest weights above it carry at most the fraction
    ``trunc`` of the cross section. Exact (piecewise-linear overflow, solved on the sorted weights).
    ``trunc`` = 0 returns max |w|.
    """
    a = torch.sort(weights.abs().to(torch.float64).cpu().flatten(), descending=True).values
    n = a.shape[0]
    if n == 0 or float(a[0]) <= 0:
        return 0.0
    if trunc <= 0:
        return float(a[0])
    budget = trunc * float(a.sum())
    cs = torch.cumsum(a, 0)
    k = torch.arange(1, n + 1, dtype=torch.float64)
    # overflow at t = a[k] with the k largest weights above it (k = 1..n-1): cs[k-1] - k·a[k], non-decreasing in k
    over = cs[:-1] - k[:-1] * a[1:]
    beyond = torch.nonzero(over > budget).flatten()
    if beyond.numel() == 0:  # even the smallest weight as w_max overflows less than the budget
        j = n
    else:
        j = int(beyond[0]) + 1  # the j largest weights lie above the solution, which lies in [a[j], a[j-1]]
    t = (float(cs[j - 1]) - budget) / j
    return max(t, float(a[j]) if j < n else 0.0)


def unweighting_efficiency(weights: Tensor, replicas: int, generator: torch.Generator) -> tuple[float, float]:
    """(ε = ⟨|w|⟩ / w_max, w_max) with w_max the bootstrap median of maxima."""
    w_max = bootstrap_wmax(weights, replicas, generator)
    if w_max <= 0:
        return 0.0, w_max
    return float(weights.abs().mean()) / w_max, w_max


def unweight(events: WeightedEvents, w_max: float, generator: torch.Generator, n_target: int | None = None) -> UnweightedEvents:
    """Hit-or-miss: keep event k with probability |w_k|/w_max; overweight events (|w| > w_max) keep weight
    |w|/w_max in units of the unit weight. ``n_target`` truncates to the first n kept events.

    The unit weight is ⟨|w|⟩ · n_tried / (Σ kept multiplicities), so the kept events reproduce the integral.
    """
    if w_max <= 0:
        raise ValueError("w_max must be positive")
    w = events.weight.abs().cpu()
    u = torch.rand(w.shape[0], generator=generator, dtype=torch.float64, device=generator.device).cpu()
    ratio = w / w_max
    keep = u < ratio
    idx = torch.nonzero(keep).flatten()
    mult = ratio[idx].clamp_min(1.0)
    n_tried = int(w.shape[0])
    if n_target is not None:
        idx, mult = idx[:n_target], mult[:n_target]
        if idx.shape[0] == n_target and n_target > 0:
            n_tried = int(idx[-1]) + 1
    overweight = float((w[:n_tried] > w_max).to(torch.float64).mean()) if n_tried else 0.0
    total = float(w[:n_tried].sum())
    unit = total / float(mult.sum()) if mult.numel() else 0.0
    eff = float(w[:n_tried].mean()) / w_max if n_tried else 0.0
    return UnweightedEvents(idx, mult * unit, unit, w_max, eff, overweight, n_tried)


def combine_channels(s1: Tensor, s2: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel estimates from sums: (I_i = S1/N_i, Δ_i² = σ_i²/N_i) with the unbiased σ_i² (eq. 10-11).

    Args: s1, s2 float64 ``[C]`` = Σ v and Σ v² per channel; counts int64 ``[C]``.
    The total is I = Σ_i I_i with Δ² = Σ_i Δ_i² (independent channels).
    """
    nf = counts.to(torch.float64)
    has = counts > 0
    mean = torch.where(has, s1 / nf.clamp_min(1.0), torch.zeros_like(s1))
    var = torch.where(counts > 1, (s2 / nf.clamp_min(1.0) - mean**2) * nf / (nf - 1.0).clamp_min(1.0),
                      torch.zeros_like(s1)).clamp_min(0.0)
    err2 = torch.where(has, var / nf.clamp_min(1.0), torch.zeros_like(var))
    return mean, err2


@torch.no_grad()
def integrate(trainer: Trainer, n: int | None = None, *, seed: int | None = None) -> IntegrationResult:
    """Refine-phase integral from ``n`` fresh points of the frozen model (default config.n_integration)."""
    cfg = trainer.config
    n = cfg.n_integration if n is None else n
    t0 = time.perf_counter()
    calls_before = trainer.calls["integration"]
    invalid_before = trainer.invalid["integration"]
    generator, counts, channels_all, scale = _refine_plan(trainer, n, seed, None)
    n_tot = int(counts.sum())
    c = trainer.n_channels
    s1 = torch.zeros(c, dtype=torch.float64, device=trainer.device)
    s2 = torch.zeros(c, dtype=torch.float64, device=trainer.device)
    status_counts: dict[str, int] = {}
    event_w = []
    from tqdm.auto import tqdm

    with tqdm(total=n_tot, desc="MadNIS integration", unit="pt", disable=not cfg.progress, file=sys.stderr,
              dynamic_ncols=True, mininterval=0.5) as bar:
        for ch in _chunks(channels_all, cfg.integration_batch):
            _, v, b = _draw(trainer, ch, generator)
            s1.index_add_(0, ch, v)
            s2.index_add_(0, ch, v * v)
            event_w.append(v * scale[ch])
            if b.status is not None:
                for code, cnt in zip(*torch.unique(b.status, return_counts=True)):
                    name = _STATUS_NAMES.get(int(code), f"status_{int(code)}")
                    status_counts[name] = status_counts.get(name, 0) + int(cnt)
            bar.update(int(ch.shape[0]))
    mean, err2 = combine_channels(s1, s2, counts)
    integral = float(mean.sum())
    error = math.sqrt(float(err2.sum()))
    rel_std = math.sqrt(n_tot) * error / abs(integral) if integral != 0 else float("inf")
    weights = torch.cat(event_w)
    eff, w_max = unweighting_efficiency(weights, cfg.bootstrap_replicas, generator)
    train_steps = max(trainer.step, 1)
    return IntegrationResult(
        integral=integral,
        error=error,
        rel_std=rel_std,
        channel_integrals=mean.cpu().tolist(),
        channel_errors=torch.sqrt(err2).cpu().tolist(),
        channel_points=counts.cpu().tolist(),
        active_channels=torch.nonzero(trainer.model.active).flatten().cpu().tolist(),
        n_points=n_tot,
        n_invalid=trainer.invalid["integration"] - invalid_before,
        status_counts=status_counts,
        unweighting_efficiency=eff,
        w_max=w_max,
        n_calls_training=trainer.n_calls_training,
        n_calls_integration=trainer.calls["integration"] - calls_before,
        wall_time_s=time.perf_counter() - t0,
        train_time_s=trainer.train_time_s,
        train_step_time_s=trainer.train_time_s / train_steps,
        n_steps=trainer.step,
        exact=getattr(trainer.integrand, "exact", None),
        unit=getattr(trainer.integrand, "unit", ""),
    )
