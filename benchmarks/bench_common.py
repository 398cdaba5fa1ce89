"""Shared pieces of the benchmark harness: call counting, metrics, result records, output.

Metrics (MadNIS Reloaded sec. 3.2):

* ``rel_std``: relative standard deviation per point σ/I of the final (frozen) sampler. For a multi-channel
  sampler with N_c points in channel c this is ``sqrt(N Σ_c σ_c²/N_c) / I`` (the stratified estimator's error
  times √N), for a single map ``std(w)/mean(w)``.
* ``unweighting_efficiency``: ε = ⟨w⟩ / w_max with ``w_max`` the median, over bootstrap replicas of the
  evaluation sample, of the replica's maximum weight.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from madnis_plugin.integrands.protocol import IntegrandBatch, sanitize  # noqa: E402


def limit_threads(n: int = 1) -> None:
    """Keep CPU use modest (shared machine)."""
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # already set
        pass


class CallCounter:
    """Wraps an Integrand and counts ``evaluate`` points (the integrand-call budget); forwards all attributes."""

    def __init__(self, integrand):
        self._inner = integrand
        self.calls = 0
        self.time_s = 0.0

    def evaluate(self, channels, r) -> IntegrandBatch:
        t0 = time.perf_counter()
        out = self._inner.evaluate(channels, r)
        self.time_s += time.perf_counter() - t0
        self.calls += int(r.shape[0])
        return out

    def __getattr__(self, name):
        return getattr(self._inner, name)


def time_steps(step, counter: "CallCounter", n_steps: int, warmup: int) -> tuple[float, float]:
    """Call ``step()`` ``warmup`` times, then time ``n_steps`` calls: (wall seconds per step, integrand seconds
    per step, from ``counter``)."""
    for _ in range(warmup):
        step()
    counter.time_s = 0.0
    t0 = time.perf_counter()
    for _ in range(n_steps):
        step()
    return (time.perf_counter() - t0) / n_steps, counter.time_s / n_steps


def unweighting_efficiency(weights, n_replicas: int = 50, seed: int = 0) -> float:
    """ε = mean(w) / median_b(max(bootstrap replica b of w)); weights ≤ 0 count as zero (≥ 0 toys)."""
    w = np.asarray(torch.as_tensor(weights, dtype=torch.float64).cpu().numpy(), dtype=np.float64)
    w = np.where(np.isfinite(w), w, 0.0)
    n = len(w)
    if n == 0 or w.max() <= 0:
        return 0.0
    rng = np.random.default_rng(seed)
    maxima = np.empty(n_replicas)
    for b in range(n_replicas):
        maxima[b] = w[rng.integers(0, n, n)].max()
    return float(w.mean() / np.median(maxima))


def stratified_rel_std(weights: torch.Tensor, channels: torch.Tensor | None) -> tuple[float, float, float]:
    """(integral, error, rel_std) from per-point weights that already carry the N/N_c factors.

    ``weights`` must satisfy mean(weights) = estimate of I; with ``channels`` the error is the stratified one.
    """
    w = torch.as_tensor(weights, dtype=torch.float64)
    n = w.shape[0]
    if channels is None:
        integral = w.mean().item()
        error = (w.var() / n).sqrt().item()
    else:
        ch = torch.as_tensor(channels, dtype=torch.int64)
        n_c = torch.bincount(ch).to(torch.float64)
        # contribution of channel c: (N_c/N) * mean_c(w)  ; variance of that: (N_c/N)^2 var_c(w) / N_c
        sums = torch.bincount(ch, weights=w)
        means = sums / n_c.clamp_min(1)
        var = torch.bincount(ch, weights=(w - means[ch]) ** 2) / (n_c - 1).clamp_min(1)
        frac = n_c / n
        integral = (frac * means).sum().item()
        error = torch.nansum(frac**2 * var / n_c.clamp_min(1)).sqrt().item()
    rel_std = error * math.sqrt(n) / abs(integral) if integral != 0 else float("inf")
    return integral, error, rel_std


@dataclass
class MethodResult:
    """One (method, toy) cell of the comparison table."""

    method: str
    toy: str
    integral: float | None = None
    error: float | None = None
    exact: float | None = None
    pull: float | None = None
    rel_std: float | None = None
    unweighting_efficiency: float | None = None
    # ε of a second sample of eval-calls points drawn for event generation (core: generate(), channel allocation
    # N_i ∝ √(σ_i² + I_i²)); None for methods that sample events like they integrate
    unweighting_efficiency_events: float | None = None
    n_calls_training: int | None = None
    n_calls_integration: int | None = None
    n_train_steps: int | None = None
    train_time_s: float | None = None
    train_step_time_s: float | None = None
    wall_time_s: float | None = None
    status: str = "ok"  # ok | error | skipped
    message: str = ""
    config: dict[str, Any] = field(default_factory=dict)

    def finalize(self) -> "MethodResult":
        if self.integral is not None and self.exact is not None and self.error:
            self.pull = (self.integral - self.exact) / self.error
        return self


def environment() -> dict[str, Any]:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    for mod in ("madnis", "vegas"):
        try:
            from importlib.metadata import version

            info[mod] = version(mod)
        except Exception:  # noqa: BLE001
            info[mod] = None
    return info


def _fmt(v, spec: str) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return format(v, spec)


def markdown_table(results: list[MethodResult]) -> str:
    head = (
        "| toy | method | integral ± error | exact | pull | σ/I per point | ε_unw | ε events | train calls | eval calls "
        "| train steps | step time [ms] | train time [s] | status |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in results:
        integ = "–" if r.integral is None else f"{r.integral:.6g} ± {_fmt(r.error, '.2g')}"
        step_ms = None if r.train_step_time_s is None else 1e3 * r.train_step_time_s
        status = r.status if not r.message else f"{r.status}: {r.message[:60]}"
        rows.append(
            f"| {r.toy} | {r.method} | {integ} | {_fmt(r.exact, '.6g')} | {_fmt(r.pull, '+.2f')} "
            f"| {_fmt(r.rel_std, '.4g')} | {_fmt(r.unweighting_efficiency, '.4f')} "
            f"| {_fmt(r.unweighting_efficiency_events, '.4f')} | {_fmt(r.n_calls_training, 'd')} "
            f"| {_fmt(r.n_calls_integration, 'd')} | {_fmt(r.n_train_steps, 'd')} | {_fmt(step_ms, '.2f')} "
            f"| {_fmt(r.train_time_s, '.1f')} | {status} |"
        )
    return head + "\n".join(rows) + "\n"


def seed_summary_table(results: list[MethodResult]) -> str:
    """Per (toy, method) over seeds: mean σ/I and ε with their range, largest |pull|, mean step time."""
    groups: dict[tuple[str, str], list[MethodResult]] = {}
    for r in results:
        if r.status == "ok":
            groups.setdefault((r.toy, r.method), []).append(r)
    lines = ["| toy | method | seeds | σ/I mean (min–max) | ε mean (min–max) | ε events mean (min–max) | max abs pull "
             "| step time [ms] |",
             "|---|---|---|---|---|---|---|---|"]
    for (toy, method), rs in groups.items():
        rel = [r.rel_std for r in rs if r.rel_std is not None]
        eps = [r.unweighting_efficiency for r in rs if r.unweighting_efficiency is not None]
        eev = [r.unweighting_efficiency_events for r in rs if r.unweighting_efficiency_events is not None]
        eev_s = f"{np.mean(eev):.4f} ({min(eev):.4f}–{max(eev):.4f})" if eev else "–"
        pulls = [abs(r.pull) for r in rs if r.pull is not None]
        steps = [r.train_step_time_s for r in rs if r.train_step_time_s]
        lines.append(
            f"| {toy} | {method} | {len(rs)} | {np.mean(rel):.4g} ({min(rel):.4g}–{max(rel):.4g}) | "
            f"{np.mean(eps):.4f} ({min(eps):.4f}–{max(eps):.4f}) | {eev_s} | {max(pulls) if pulls else float('nan'):.2f} | "
            f"{1e3 * np.mean(steps) if steps else float('nan'):.2f} |"
        )
    return "\n".join(lines) + "\n"


def scaling_table(rows: list[dict[str, Any]]) -> str:
    head = "| method | channels | groups | batch | step time [ms] | steps timed | status |\n|---|---|---|---|---|---|---|\n"
    body = []
    for r in rows:
        st = r.get("step_time_s")
        body.append(
            f"| {r['method']} | {r['n_channels']} | {r['n_groups']} | {r.get('batch_size', '–')} "
            f"| {_fmt(None if st is None else 1e3 * st, '.2f')} | {_fmt(r.get('n_steps'), 'd')} "
            f"| {r.get('status', 'ok')}{': ' + r['message'][:60] if r.get('message') else ''} |"
        )
    return head + "\n".join(body) + "\n"


def to_jsonable(obj):
    if dataclasses.is_dataclass(obj):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    return obj


def write_json(path: str, payload) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(to_jsonable(payload), fh, indent=2)
