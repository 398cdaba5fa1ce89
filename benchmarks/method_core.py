"""Adapter: this project's core, ``madnis_plugin.core.run(integrand, MadnisConfig) -> IntegrationResult``.

Configured like the madnis-1.0 run on the same call budget (MadNIS Reloaded Tab. 2 where the core exposes the
knob): 20% of the training budget in VEGAS pre-training (7 iterations), the rest in online batches of the Tab. 2
batch size; buffered training with R = 5 (``buffer_ratio=5``), buffer of min(1000, online steps / 4) batches;
``n_integration = eval_calls`` for the refine phase. ``n_steps`` (total optimizer steps) is derived from the budget
(online until the buffer is full, then one online step in every R).

Everything that touches the core's API is in :func:`make_config` and :func:`run` below; adjust there if the
API changes. Field names are set only when the config has them (others are reported in ``config['ignored']``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from bench_common import CallCounter, MethodResult, stratified_rel_std, time_steps, unweighting_efficiency

NAME = "core"

# core settings that differ from the config defaults in every benchmark run (empty: the defaults)
DEFAULTS: dict[str, Any] = {}


def available() -> tuple[bool, str]:
    try:
        from madnis_plugin.core import MadnisConfig, run  # noqa: F401

        return True, "madnis_plugin.core"
    except Exception as exc:  # noqa: BLE001
        return False, f"madnis_plugin.core.run not importable yet: {type(exc).__name__}: {exc}"


def _tab2_batch(n_channels: int) -> int:
    return int(max(256, min(round(200 * n_channels**0.8), 10000)))


def plan(n_channels: int, train_calls: int, vegas_fraction: float = 0.2, buffer_ratio: int = 5,
         vegas_iterations: int = 7, batch_size: int | None = None, buffer_start_batches: int = 0) -> dict[str, Any]:
    """Translate a call budget into the core's step-based knobs."""
    bs = batch_size or _tab2_batch(n_channels)
    vegas_samples = max(int(vegas_fraction * train_calls) // vegas_iterations, n_channels * 2) if vegas_fraction > 0 else 0
    online_calls = max(train_calls - vegas_samples * vegas_iterations, bs)
    online_steps = max(online_calls // bs, 1)
    buffer_batches = max(1, min(1000, online_steps // 4))
    if buffer_ratio > 1 and buffer_start_batches > 0:
        # buffered steps from the second step on: one online step in every buffer_ratio
        n_steps = online_steps * buffer_ratio
    elif buffer_ratio > 1 and online_steps > buffer_batches:
        n_steps = buffer_batches + (online_steps - buffer_batches) * buffer_ratio
    else:
        n_steps = online_steps
    return dict(batch_size=bs, vegas_samples=vegas_samples, vegas_iterations=vegas_iterations,
                buffer_batches=buffer_batches, buffer_ratio=buffer_ratio, n_steps=n_steps,
                online_steps=online_steps)


def _config_default(name: str) -> Any:
    from madnis_plugin.core import MadnisConfig

    return getattr(MadnisConfig(), name)


def make_config(values: dict[str, Any]):
    """MadnisConfig from ``values``, keeping only the fields the config defines."""
    from madnis_plugin.core import MadnisConfig

    known = {f.name for f in dataclasses.fields(MadnisConfig)}
    used = {k: v for k, v in values.items() if k in known}
    ignored = sorted(set(values) - known)
    return MadnisConfig(**used), used, ignored


def run(toy, train_calls: int, eval_calls: int, seed: int = 0, vegas_fraction: float = 0.2,
        batch_size: int | None = None, overrides: dict[str, Any] | None = None) -> MethodResult:
    from madnis_plugin.core import Trainer, generate, integrate

    t_wall = time.perf_counter()
    res = MethodResult(method=NAME, toy=getattr(toy, "name", "?"), exact=toy.exact)
    overrides = dict(DEFAULTS if overrides is None else overrides)
    p = plan(toy.n_channels, train_calls, vegas_fraction, batch_size=batch_size,
             buffer_start_batches=int(overrides.get("buffer_start_batches", _config_default("buffer_start_batches"))))
    values = dict(
        seed=seed, progress=False, n_steps=p["n_steps"], batch_size=p["batch_size"],
        vegas_init=vegas_fraction > 0, vegas_iterations=p["vegas_iterations"], vegas_samples=max(p["vegas_samples"], 1),
        vegas_bins=64, vegas_damping=0.7,
        buffer_ratio=p["buffer_ratio"], buffer_batches=p["buffer_batches"], buffer_top_m=75,
        uniform_fraction=0.1, uniform_warmup_steps=min(1000, max(10, p["online_steps"] // 5)),
        stats_window=min(1000, max(10, p["online_steps"] // 5)), drop_cutoff=1e-3,
        n_integration=eval_calls, lr=1e-3, lr_final=1e-4, lr_schedule="inverse", loss="madnis",
    )
    values.update(overrides)
    cfg, used, ignored = make_config(values)
    counter = CallCounter(toy)
    trainer = Trainer(counter, cfg)
    trainer.train()
    out = integrate(trainer)
    wall_integral = time.perf_counter() - t_wall
    # a second sample of the same size, drawn as for event generation (generate(): N_i ∝ √(σ_i² + I_i²)); its calls
    # are reported apart, the table's call columns are the integral's
    calls_before = counter.calls
    events = generate(trainer, eval_calls, seed=seed + 7, progress=False)
    res.unweighting_efficiency_events = unweighting_efficiency(events.weight, seed=seed)
    res.config["events_integral"], res.config["events_error"], res.config["events_rel_std"] = stratified_rel_std(
        events.weight, events.channels)
    res.config["n_calls_events"] = counter.calls - calls_before
    res.config.update(used, ignored=ignored, online_steps_planned=p["online_steps"])
    res.integral = float(out.integral)
    res.error = float(out.error)
    res.rel_std = float(out.rel_std)
    res.unweighting_efficiency = float(out.unweighting_efficiency)
    res.n_calls_training = int(out.n_calls_training)
    res.n_calls_integration = int(out.n_calls_integration)
    res.n_train_steps = int(getattr(out, "n_steps", 0)) or None
    res.train_time_s = float(getattr(out, "train_time_s", 0.0)) or None
    res.train_step_time_s = float(out.train_step_time_s)
    res.wall_time_s = wall_integral
    res.config["counted_calls"] = calls_before
    if abs(calls_before - (res.n_calls_training + res.n_calls_integration)) > 0:
        res.config["call_count_mismatch"] = calls_before - (res.n_calls_training + res.n_calls_integration)
    return res.finalize()


def step_time(toy, n_steps: int = 20, warmup: int = 3, batch_size: int = 1024, seed: int = 0) -> dict[str, Any]:
    """Online training step time (no buffer, no VEGAS) at a fixed batch size, for the channel-scaling study.

    Uses ``madnis_plugin.core.Trainer`` directly (``run`` would add pre-training and integration).
    """
    from madnis_plugin.core import Trainer

    cfg, _, _ = make_config(dict(seed=seed, progress=False, n_steps=n_steps + warmup, batch_size=batch_size,
                                 vegas_init=False, buffer_ratio=1, drop_cutoff=0.0,
                                 uniform_warmup_steps=10**9))
    counter = CallCounter(toy)
    trainer = Trainer(counter, cfg)
    trainer.pretrain_vegas()  # with vegas_init=False: one small batch for feature standardisation only
    dt, t_integrand = time_steps(trainer.train_step, counter, n_steps, warmup)
    return dict(step_time_s=dt, n_steps=n_steps, batch_size=trainer.batch_size,
                integrand_time_per_step_s=t_integrand)
