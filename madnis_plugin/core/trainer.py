"""MadNIS training: VEGAS pre-training and flow initialisation, then online + buffered steps with stratified
channel allocation and channel dropping (MadNIS Reloaded sec. 2).

One optimizer step is either *online* (new points from the current model, evaluated by the integrand, stored in
the buffer) or *buffered* (points re-used from the buffer, no integrand call). Once the buffer holds
``buffer_start_batches`` batches (0: once it is full), every ``buffer_ratio``-th step is online, so the integrand
is called ``buffer_ratio`` times less often.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Callable

import torch
from torch import Tensor

from ..integrands.protocol import Integrand, IntegrandBatch, sanitize
from .buffer import ReplayBuffer
from .channels import RunningStats, allocate, channels_to_drop, pool_sigma_in_groups
from .config import MadnisConfig
from .losses import compute_loss
from .model import MadnisModel
from .result import TrainingHistory


class IntegrandError(ValueError):
    """The integrand does not satisfy the Integrand protocol (named attribute or shape)."""


def check_integrand(integrand: Integrand) -> None:
    """Reject an integrand with inconsistent sizes before any computation."""
    for attr in ("n_dims", "n_channels", "n_features", "groups", "evaluate"):
        if not hasattr(integrand, attr):
            raise IntegrandError(f"integrand {type(integrand).__name__} has no attribute '{attr}'")
    if integrand.n_dims < 1:
        raise IntegrandError(f"integrand n_dims must be >= 1, got {integrand.n_dims}")
    if integrand.n_channels < 1:
        raise IntegrandError(f"integrand n_channels must be >= 1, got {integrand.n_channels}")
    if integrand.n_features < 1:
        raise IntegrandError(f"integrand n_features must be >= 1, got {integrand.n_features}")


def lr_factor(schedule: str, step: int, total: int, lr: float, lr_final: float) -> float:
    """Multiplier of the base learning rate at ``step`` of ``total``: inverse-time, cosine or constant decay."""
    if schedule == "constant" or total <= 0 or lr_final >= lr:
        return 1.0
    t = min(step, total)
    if schedule == "inverse":
        tau = total / (lr / lr_final - 1.0)
        return 1.0 / (1.0 + t / tau)
    # cosine
    return (lr_final + 0.5 * (lr - lr_final) * (1.0 + math.cos(math.pi * t / total))) / lr


class Trainer:
    """Owns the model, optimizer, buffer, running statistics, RNG and call counters of one MadNIS run.

    Args:
        integrand: anything implementing the Integrand protocol.
        config: the run's configuration.
    """

    def __init__(self, integrand: Integrand, config: MadnisConfig):
        check_integrand(integrand)
        self.integrand = integrand
        self.config = config
        if config.n_threads > 0:
            torch.set_num_threads(config.n_threads)
        self.device = torch.device(config.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("config key 'device': CUDA was requested but no CUDA device is available")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = MadnisModel(
                integrand.n_dims, integrand.n_channels, integrand.n_features, integrand.groups, config
            ).to(self.device)
        self.n_channels = integrand.n_channels
        self.batch_size = config.resolved_batch_size(integrand.n_channels)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: lr_factor(config.lr_schedule, s, config.n_steps, config.lr, config.lr_final),
        )
        self.buffer = ReplayBuffer(
            config.buffer_batches * self.batch_size, integrand.n_dims, integrand.n_features,
            config.buffer_top_m, self.device,
        )
        self.stats = RunningStats(integrand.n_channels, config.stats_window)
        self.step = 0
        self.online_steps = 0
        self.pretrained = False
        self.dropped_share = 0.0
        self.calls = {"vegas": 0, "training": 0, "integration": 0}
        self.invalid = {"vegas": 0, "training": 0, "integration": 0}
        self.skipped_steps = 0
        self.train_time_s = 0.0
        self.history = TrainingHistory()
        self.last_event_weights: Tensor | None = None

    # ------------------------------------------------------------------ integrand access
    def evaluate(self, channels: Tensor, r: Tensor, phase: str) -> IntegrandBatch:
        """Call the integrand on CPU tensors, sanitise (NaN/inf → invalid, weight 0), count calls and bad points."""
        batch = sanitize(self.integrand.evaluate(channels.cpu(), r.detach().cpu()))
        n = int(channels.shape[0])
        self.calls[phase] += n
        self.invalid[phase] += int((~batch.valid).sum())
        dev = self.device
        return IntegrandBatch(
            batch.weight.to(dev, torch.float64), batch.alpha_prior.to(dev, torch.float64),
            batch.features.to(dev, torch.float64), batch.valid.to(dev), batch.momenta, batch.status,
        )

    @property
    def n_calls_training(self) -> int:
        return self.calls["vegas"] + self.calls["training"]

    # ------------------------------------------------------------------ VEGAS pre-training
    @torch.no_grad()
    def pretrain_vegas(self) -> None:
        """Adapt one VEGAS grid per group on α_prior·w, then initialise each group's flow from its grid.

        Points are spread evenly over the channels of every group, so each grid learns the channels it maps.
        """
        cfg = self.config
        if self.pretrained:
            return
        model = self.model
        feats = []
        if cfg.vegas_init and cfg.vegas_iterations > 0:
            for _ in range(cfg.vegas_iterations):
                counts = allocate(cfg.vegas_samples, None, model.active, 1.0, 1)
                channels = torch.repeat_interleave(torch.arange(self.n_channels, device=self.device), counts)
                groups = model.channel_group[channels]
                u = torch.rand(channels.shape[0], model.n_dims, generator=self.generator, dtype=torch.float64,
                               device=self.device)
                r, log_jac = model.vegas.map(u, groups)
                b = self.evaluate(channels, r, "vegas")
                alpha_c = b.alpha_prior.gather(1, channels[:, None]).squeeze(1)
                values = alpha_c * b.weight * torch.exp(log_jac)
                model.vegas.adapt(r, groups, values, cfg.vegas_damping)
                feats.append(b.features[b.valid])
            model.flows.init_from_vegas(model.vegas.edges)
        elif cfg.cwnet_standardise != "none":  # only to fix the CWnet's input scaling
            counts = allocate(min(cfg.vegas_samples, 10 * self.batch_size), None, model.active, 1.0, 1)
            channels = torch.repeat_interleave(torch.arange(self.n_channels, device=self.device), counts)
            r, _ = model.sample(channels, self.generator)
            b = self.evaluate(channels, r, "vegas")
            feats.append(b.features[b.valid])
        if feats and cfg.cwnet_standardise != "none":
            model.cwnet.set_standardisation(torch.cat(feats), upscale_only=cfg.cwnet_standardise == "upscale")
        self.pretrained = True

    # ------------------------------------------------------------------ training steps
    def allocation(self, n: int) -> Tensor:
        """Points per channel for the next online batch (uniform during warm-up, then stratified)."""
        cfg = self.config
        sigma = None
        if cfg.stratified and self.online_steps >= cfg.uniform_warmup_steps:
            sigma = self.allocation_sigma()
        return allocate(n, sigma, self.model.active, cfg.uniform_fraction, cfg.min_points_per_channel)

    def allocation_sigma(self, kind: str = "sigma") -> Tensor:
        """Running σ_i used for stratified allocation (``kind="rms"``: √(σ_i² + I_i²), the RMS of α f/q in channel
        i), pooled within channel groups (``pool_group_sigma``). float64 ``[C]``, NaN where never estimated."""
        sigma = self.stats.sigma_mean().to(self.device)
        if kind == "rms":
            sigma = torch.sqrt(sigma**2 + self.stats.integral_mean().to(self.device) ** 2)
        elif kind != "sigma":
            raise ValueError(f"unknown allocation {kind!r}; valid: 'sigma', 'rms'")
        if self.config.pool_group_sigma and self.model.n_groups < self.n_channels:
            sigma = pool_sigma_in_groups(sigma, self.model.channel_group, self.model.active, self.model.n_groups)
        return sigma

    def _optimise(self, loss: Tensor) -> bool:
        if not torch.isfinite(loss):
            self.skipped_steps += 1
            self.optimizer.zero_grad(set_to_none=True)
            return False
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return True

    def online_step(self) -> float:
        """Draw a stratified batch from the current model, evaluate the integrand, take one gradient step."""
        model = self.model
        counts = self.allocation(self.batch_size)
        channels = torch.repeat_interleave(torch.arange(self.n_channels, device=self.device), counts)
        with torch.no_grad():
            r, log_q_s = model.sample(channels, self.generator)
        b = self.evaluate(channels, r, "training")
        out = model.evaluate(channels, r, b.weight, b.features, b.alpha_prior)
        loss, mom = compute_loss(self.config.loss, channels, out.h, out.log_q, log_q_s, self.n_channels)
        self._optimise(loss)
        sigma = torch.sqrt(mom.var.detach())
        self.stats.update(sigma, mom.mean.detach(), mom.has_var)
        # event weights of this batch, (α w / q_s)·N/N_i float64 [n]: what generation from this model would give
        # (read by stopping rules that estimate the unweighting efficiency during training)
        share = counts.to(torch.float64).clamp_min(1.0) / float(channels.shape[0])
        self.last_event_weights = out.h.detach() * torch.exp(-log_q_s) / share[channels]
        if self.config.buffer_ratio > 1:
            self.buffer.add(r, channels, b.weight, b.features, b.alpha_prior, log_q_s)
        self.online_steps += 1
        total = float(mom.mean.detach().sum())
        rel = float(sigma.sum()) / abs(total) if total != 0 else float("nan")
        self._record(float(loss.detach()), rel, buffered=False)
        return float(loss.detach())

    def buffered_step(self) -> float:
        """One gradient step on points re-used from the buffer (no integrand call)."""
        b = self.buffer.sample(self.batch_size, self.generator)
        out = self.model.evaluate_topm(b.channels, b.r, b.weight, b.features, b.prior_idx, b.prior_val)
        loss, mom = compute_loss(self.config.loss, b.channels, out.h, out.log_q, b.log_q_sample, self.n_channels)
        self._optimise(loss)
        self._record(float(loss.detach()), float("nan"), buffered=True)
        return float(loss.detach())

    def _record(self, loss: float, rel: float, buffered: bool) -> None:
        self.history.record(self.step, loss, self.optimizer.param_groups[0]["lr"], rel,
                            int(self.model.active.sum()), buffered)

    def maybe_drop(self) -> Tensor | None:
        """Drop channels with the smallest running I_i while the dropped share stays ≤ drop_cutoff."""
        cfg = self.config
        if cfg.drop_cutoff <= 0 or self.online_steps < cfg.uniform_warmup_steps or self.step % cfg.drop_every:
            return None
        integrals = self.stats.integral_mean().to(self.device)
        budget = cfg.drop_cutoff - self.dropped_share
        drop = channels_to_drop(integrals, self.model.active, budget)
        if not bool(drop.any()):
            return None
        total = float(torch.nan_to_num(integrals.abs(), nan=0.0)[self.model.active].sum())
        self.dropped_share += float(integrals.abs()[drop].sum()) / total if total > 0 else 0.0
        self.model.active &= ~drop
        self.buffer.remove_channels(drop)
        return drop

    def is_online(self) -> bool:
        cfg = self.config
        if cfg.buffer_ratio <= 1:
            return True
        start = self.buffer.capacity
        if cfg.buffer_start_batches > 0:
            start = min(cfg.buffer_start_batches * self.batch_size, start)
        return self.buffer.size < start or self.step % cfg.buffer_ratio == 0

    def train_step(self) -> float:
        """One optimizer step (online or buffered), the LR schedule and channel dropping."""
        if not self.pretrained:
            self.pretrain_vegas()
        self.model.train()
        loss = self.online_step() if self.is_online() else self.buffered_step()
        self.scheduler.step()
        self.step += 1
        self.maybe_drop()
        return loss

    def train(self, n_steps: int | None = None, *, callback: Callable[["Trainer"], None] | None = None,
              checkpoint_path: str | None = None, checkpoint_every: int = 0,
              should_stop: Callable[["Trainer"], bool] | None = None) -> TrainingHistory:
        """Train until ``n_steps`` total optimizer steps (default: config.n_steps), with a progress bar; earlier
        when ``should_stop(trainer)`` (called after every step) returns True.

        A KeyboardInterrupt writes the checkpoint (when a path is given) before it propagates, so the run resumes.
        """
        from tqdm.auto import tqdm

        from .checkpoint import save_checkpoint

        target = self.config.n_steps if n_steps is None else n_steps
        t0 = time.perf_counter()
        if not self.pretrained:
            self.pretrain_vegas()
        bar = tqdm(total=target, initial=min(self.step, target), desc="MadNIS training", unit="step",
                   disable=not self.config.progress, file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
        try:
            while self.step < target:
                loss = self.train_step()
                bar.update(1)
                if self.step % 20 == 0:
                    bar.set_postfix(loss=f"{loss:.3g}", active=int(self.model.active.sum()), refresh=False)
                if callback is not None:
                    callback(self)
                if checkpoint_path and checkpoint_every and self.step % checkpoint_every == 0:
                    save_checkpoint(self, checkpoint_path)
                if should_stop is not None and should_stop(self):
                    break
        except KeyboardInterrupt:
            if checkpoint_path:
                save_checkpoint(self, checkpoint_path)
            raise
        finally:
            bar.close()
            self.train_time_s += time.perf_counter() - t0
        if checkpoint_path:
            save_checkpoint(self, checkpoint_path)
        return self.history
