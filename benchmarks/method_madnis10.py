"""Adapter: the ``madnis`` 1.0 library (PyPI, madgraph-ml/madnis) configured as in MadNIS Reloaded Tab. 2.

How a project Integrand is handed to madnis 1.0 (read from madnis/integrator/{integrand,integrator}.py):

* ``madnis.integrator.Integrand(function, input_dim=D, channel_count=C, remapped_dim=F,
  has_channel_weight_prior=True, channel_grouping=...)`` with ``function(r, c) -> (w, features, alpha_prior)``;
  ``w = f/g_c`` is exactly ``IntegrandBatch.weight`` (the channel mapping lives inside the integrand, the flow
  acts on r ∈ [0,1]^D), ``features`` is the CWnet input (``remapped_dim``), ``alpha_prior`` the MG5-like prior
  that the CWnet corrects multiplicatively (α ∝ prior · exp(cwnet(features))). Single-channel toys use
  ``channel_count=None`` and ``function(r) -> w``.
* Groups: ``ChannelGrouping([None or target])`` (every channel points to its group's first channel). With
  groups, ``channel_grouping_mode="uniform"``: one flow and one σ per group in the loss, channels drawn
  uniformly inside a group (MadNIS Reloaded: "we resort to this assignment as our default"); the CWnet keeps one
  output per channel.

Tab. 2 settings used: Adam, lr 1e-3 with inverse-time decay to 1e-4 at the end of training; MadNIS loss
(``stratified_variance``, eq. 26); log-decomposition permutations (``2⌈log2 D⌉`` RQS blocks), subnets 3×32,
leaky ReLU; CWnet 3×64 leaky ReLU; max 75 stored channel weights; buffered training with R = 5
(``buffered_steps=4``), buffer 1000 batches (capped at a quarter of the training budget); channel dropping
cutoff 1e-3; uniform training fraction r = 0.1; VEGAS pre-training 7 iterations, 64 bins, damping 0.7 (samples per
iteration scaled down to 20% of the call budget instead of 20k per channel). Batch size: Tab. 2's formula reads
``min(200 · 0.8^{n_c}, 10000)`` in our text copy, which cannot be meant (it shrinks with n_c); we use
``min(round(200 · n_c^0.8), 10000)`` and never less than 256 (``batch_size`` can be overridden).
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn as nn

from bench_common import CallCounter, MethodResult, sanitize, stratified_rel_std, time_steps, unweighting_efficiency

NAME = "madnis-1.0"


def available() -> tuple[bool, str]:
    try:
        import madnis  # noqa: F401
        from importlib.metadata import version

        return True, version("madnis")
    except Exception as exc:  # noqa: BLE001
        return False, f"madnis not importable: {exc}"


def tab2_batch_size(n_channels: int) -> int:
    return int(max(256, min(round(200 * n_channels**0.8), 10000)))


def wrap_integrand(counter: CallCounter):
    """Build the madnis.integrator.Integrand for a (counted) project Integrand."""
    from madnis.integrator import ChannelGrouping, Integrand

    C = counter.n_channels
    D = counter.n_dims

    def evaluate(r, channels):
        b = sanitize(counter.evaluate(channels, r.to(torch.float64)))
        return b.weight.to(r.dtype), b.features.to(r.dtype), b.alpha_prior.to(r.dtype)

    if C == 1:

        def single(r):
            return evaluate(r, torch.zeros(r.shape[0], dtype=torch.int64))[0]

        return Integrand(single, input_dim=D), False

    grouped = any(len(g) > 1 for g in counter.groups)
    grouping = None
    if grouped:
        assign: list[int | None] = [None] * C
        for g in counter.groups:
            for c in g[1:]:
                assign[c] = g[0]
        grouping = ChannelGrouping(assign)
    integrand = Integrand(
        evaluate,
        input_dim=D,
        channel_count=C,
        remapped_dim=counter.n_features,
        has_channel_weight_prior=True,
        channel_grouping=grouping,
    )
    return integrand, grouped


def build_integrator(
    counter: CallCounter,
    total_steps_estimate: int,
    batch_size: int | None = None,
    buffer_capacity: int = 0,
    integration_history_length: int = 1000,
    buffered_steps: int = 4,
    seed: int = 0,
):
    from madnis.integrator import Integrator, stratified_variance

    torch.manual_seed(seed)
    integrand, grouped = wrap_integrand(counter)
    C = counter.n_channels
    bs = batch_size or tab2_batch_size(C)
    decay = 9.0 / max(total_steps_estimate, 1)  # lr(T) = 1e-3 / (1 + 9) = 1e-4

    integrator = Integrator(
        integrand,
        flow_kwargs=dict(permutations="log", layers=3, units=32, activation=nn.LeakyReLU),
        cwnet_kwargs=dict(layers=3, units=64, activation=nn.LeakyReLU),
        train_channel_weights=C > 1,
        loss=stratified_variance,
        batch_size=bs,
        learning_rate=1e-3,
        scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (1.0 + decay * t)),
        uniform_channel_ratio=0.1,
        integration_history_length=integration_history_length,
        buffer_capacity=buffer_capacity,
        minimum_buffer_size=max(buffer_capacity - 1, 50),
        buffered_steps=buffered_steps if buffer_capacity > 0 else 0,
        max_stored_channel_weights=75 if C > 1 else None,
        channel_dropping_threshold=1e-3 if C > 1 else 0.0,
        channel_dropping_interval=100,
        channel_grouping_mode="uniform" if grouped else "none",
        dtype=torch.float64,
    )
    return integrator, bs


def run(toy, train_calls: int, eval_calls: int, seed: int = 0, vegas_fraction: float = 0.2,
        batch_size: int | None = None) -> MethodResult:
    from madnis.integrator import VegasPreTraining

    t_wall = time.perf_counter()
    counter = CallCounter(toy)
    C = toy.n_channels
    res = MethodResult(method=NAME, toy=getattr(toy, "name", "?"), exact=toy.exact)
    bs = batch_size or tab2_batch_size(C)
    n_groups = len(toy.groups) if any(len(g) > 1 for g in toy.groups) else C
    vegas_calls = int(vegas_fraction * train_calls)
    online_calls = train_calls - vegas_calls
    online_steps = max(online_calls // bs, 1)
    buffer_capacity = min(1000 * bs, online_calls // 4)
    if buffer_capacity < 4 * bs:
        buffer_capacity = 0
    # steps: online until the buffer is full, then 1 online + 4 buffered
    steps_to_fill = buffer_capacity // bs if buffer_capacity else online_steps
    total_steps = steps_to_fill + 5 * max(online_steps - steps_to_fill, 0) if buffer_capacity else online_steps
    hist = int(min(1000, max(10, online_steps // 5)))
    integrator, bs = build_integrator(
        counter, total_steps, batch_size=bs, buffer_capacity=buffer_capacity,
        integration_history_length=hist, seed=seed,
    )
    res.config = dict(
        batch_size=bs, vegas_fraction=vegas_fraction, buffer_capacity=buffer_capacity, buffered_steps=4,
        integration_history_length=hist, lr="1e-3 -> 1e-4 inverse decay", loss="stratified_variance (eq. 26)",
        flow="RQS, log permutations, 3x32 leaky ReLU", cwnet="3x64 leaky ReLU" if C > 1 else None,
        channel_grouping_mode="uniform" if n_groups < C else "none", seed=seed,
    )

    # --- VEGAS pre-training (Tab. 2: 7 iterations, 64 bins, damping 0.7) ---
    t_train = time.perf_counter()
    if vegas_calls > 0:
        try:
            vegas_pre = VegasPreTraining(integrator, bins=64, damping=0.7)
            n_grids = len(vegas_pre.grids)
            per_grid = max(vegas_calls // (7 * n_grids), 50)
            vegas_pre.train([per_grid] * 7)
            vegas_pre.initialize_integrator()
            res.config["vegas_samples_per_grid_per_iteration"] = per_grid
        except Exception as exc:  # noqa: BLE001
            res.config["vegas_pretraining"] = f"failed, skipped: {type(exc).__name__}: {exc}"
    # --- flow / CWnet training until the call budget is spent ---
    steps = 0
    t_steps = time.perf_counter()
    while True:
        online_next = integrator.step_type_count == 0  # buffered steps do not call the integrand
        if online_next and steps > 0 and counter.calls + bs > train_calls:
            break
        integrator.train_step()
        steps += 1
    t_end = time.perf_counter()
    res.n_calls_training = counter.calls
    res.n_train_steps = steps
    res.train_time_s = t_end - t_train
    res.train_step_time_s = res.train_time_s / max(steps, 1)  # incl. VEGAS pre-training, as for the core
    res.config["pure_step_time_s"] = (t_end - t_steps) / max(steps, 1)
    res.config["dropped_channels"] = int((~integrator.active_channels_mask).sum()) if C > 1 else 0

    # --- frozen evaluation: stratified by the running channel variances ---
    calls0 = counter.calls
    with torch.no_grad():
        samples = integrator.sample(eval_calls, batch_size=min(eval_calls, 100_000), channel_weight_mode="variance")
    res.n_calls_integration = counter.calls - calls0
    weights, chans = sample_weights(samples, C)
    res.integral, res.error, res.rel_std = stratified_rel_std(weights, chans)
    res.unweighting_efficiency = unweighting_efficiency(weights, seed=seed)
    res.wall_time_s = time.perf_counter() - t_wall
    return res.finalize()


def sample_weights(samples, n_channels: int):
    """Per-point weights with mean = I, and the stratum (integration channel) of each point.

    Recomputed from the SampleBatch instead of using ``samples.weights``: in madnis 1.0.0 ``Integrator.sample``
    normalises with the counts of ``channels`` rather than ``integration_channels``, which makes the weights a
    factor (group size) too large with ``channel_grouping_mode="uniform"`` (``func_vals`` already carries the
    group-size factor). ``integrate()`` is not affected.
    """
    if n_channels == 1:
        return samples.func_vals / samples.q_sample, None
    strata = samples.channels if samples.integration_channels is None else samples.integration_channels
    alpha = samples.alphas.gather(1, samples.channels[:, None])[:, 0]
    w = alpha * samples.func_vals / samples.q_sample
    counts = torch.bincount(strata).to(w.dtype)
    w = w * (strata.shape[0] / counts)[strata]
    return w, strata


def step_time(toy, n_steps: int = 20, warmup: int = 3, batch_size: int = 1024, seed: int = 0) -> dict[str, Any]:
    """Online training step time (no buffer, no VEGAS) at a fixed batch size, for the channel-scaling study."""
    counter = CallCounter(toy)
    integrator, bs = build_integrator(counter, n_steps + warmup, batch_size=batch_size, buffer_capacity=0,
                                      integration_history_length=n_steps + warmup + 10, seed=seed)
    dt, t_integrand = time_steps(integrator.train_step, counter, n_steps, warmup)
    return dict(step_time_s=dt, n_steps=n_steps, batch_size=bs,
                integrand_time_per_step_s=t_integrand)
