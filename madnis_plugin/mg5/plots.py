"""Plots of a MadNIS run (matplotlib, Agg backend, PNG), linked from MG5's HTML results page.

    madnis_loss.png        training loss per step (online and buffered steps) and the active-channel count
    madnis_rel_std.png     estimated relative standard deviation per point during training (online steps)
    madnis_weights.png     distribution of the refine-phase event weights w/⟨w⟩, with w_max and ε
    madnis_channels.png    channel contributions σ_i: MG5's prior channel weights (before) vs learned (after)
    madnis_alpha.png       mean channel weight per channel, prior vs learned

Every function takes plain arrays, so the harness and ``madnis_plots`` use them without an integrand.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np


def _plt():
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90, bbox_inches="tight")
    tmp.replace(path)
    _plt().close(fig)
    return path


def plot_training(history: dict, path: str | Path) -> Path:
    """Loss per step (online dots, buffered line) and active channels."""
    plt = _plt()
    step = np.asarray(history.get("step", []))
    loss = np.asarray(history.get("loss", []), dtype=float)
    buffered = np.asarray(history.get("buffered", [False] * len(step)), dtype=bool)
    n_active = np.asarray(history.get("n_active", []))
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    if step.size:
        ax.plot(step[buffered], loss[buffered], ".", ms=1.5, alpha=0.4, label="buffered steps")
        ax.plot(step[~buffered], loss[~buffered], ".", ms=2.0, label="online steps")
        if np.all(loss[np.isfinite(loss)] > 0) and np.isfinite(loss).any():
            ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title("MadNIS training")
    if n_active.size:
        ax2 = ax.twinx()
        ax2.plot(step, n_active, color="gray", lw=1.0, label="active channels")
        ax2.set_ylabel("active channels")
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def plot_rel_std(history: dict, path: str | Path) -> Path:
    plt = _plt()
    step = np.asarray(history.get("step", []))
    rel = np.asarray(history.get("rel_std", []), dtype=float)
    ok = np.isfinite(rel)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    if ok.any():
        ax.plot(step[ok], rel[ok], ".", ms=2)
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("rel. std. dev. per point (online batches)")
    ax.set_title("MadNIS: variance during training")
    return _save(fig, path)


def plot_weights(weights: np.ndarray, w_max: float, path: str | Path, efficiency: float | None = None) -> Path:
    """Histogram of log10(|w|/⟨|w|⟩) of the refine sample; w_max marked."""
    plt = _plt()
    w = np.abs(np.asarray(weights, dtype=float))
    mean = w.mean() if w.size else 1.0
    nz = w[w > 0] / mean if mean > 0 else w[w > 0]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    if nz.size:
        lo, hi = np.log10(nz.min()), np.log10(max(nz.max(), w_max / mean if mean > 0 else 1.0))
        bins = np.linspace(lo - 0.05, hi + 0.05, 60)
        ax.hist(np.log10(nz), bins=bins, histtype="step", lw=1.5)
        ax.set_yscale("log")
        if w_max > 0 and mean > 0:
            ax.axvline(np.log10(w_max / mean), color="red", ls="--", label="w_max (bootstrap)")
    zero = (w == 0).mean() if w.size else 0.0
    title = "refine-phase weights"
    if efficiency is not None:
        title += f": ε = {efficiency:.3f}"
    title += f", {100 * zero:.1f}% zero"
    ax.set_title(title)
    ax.set_xlabel("log10(w / <w>)")
    ax.set_ylabel("events")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_channel_contributions(names: Sequence[str], before: np.ndarray, after: np.ndarray, path: str | Path,
                               *, labels=("prior channel weights (MG5)", "learned channel weights"),
                               top: int = 30) -> Path:
    """Channel shares σ_i/σ, two sets side by side (largest ``top`` channels of ``after``)."""
    plt = _plt()
    b = np.asarray(before, dtype=float)
    a = np.asarray(after, dtype=float)
    tb = b.sum() if b.sum() != 0 else 1.0
    ta = a.sum() if a.sum() != 0 else 1.0
    order = np.argsort(-np.abs(a))[:top]
    x = np.arange(order.size)
    fig, ax = plt.subplots(figsize=(max(6.4, 0.3 * order.size + 2), 4.2))
    ax.bar(x - 0.2, b[order] / tb, width=0.4, label=labels[0])
    ax.bar(x + 0.2, a[order] / ta, width=0.4, label=labels[1])
    ax.set_xticks(x)
    ax.set_xticklabels([names[i] for i in order], rotation=70, fontsize=7)
    ax.set_ylabel("share of σ")
    ax.set_title("channel contributions before / after training")
    ax.legend(fontsize=8)
    return _save(fig, path)


def diagnostic_alpha(trainer, n: int, seed: int = 4242):
    """Draw ``n`` points from the frozen model (refine allocation), evaluate the integrand once, and return per
    channel (I_prior, I_learned, ⟨α_prior⟩, ⟨α_learned⟩, calls): the channel integrals with MG5's prior channel
    weights and with the learned ones (both unbiased with the trained flows as sampling densities)."""
    import torch  # noqa: PLC0415

    from madnis_plugin.core.integrator import combine_channels, refine_allocation  # noqa: PLC0415
    from madnis_plugin.integrands.protocol import sanitize  # noqa: PLC0415

    model = trainer.model
    gen = torch.Generator(device=trainer.device).manual_seed(seed)
    counts = refine_allocation(trainer, n)
    channels = torch.repeat_interleave(torch.arange(trainer.n_channels, device=trainer.device), counts)
    with torch.no_grad():
        model.eval()
        r, log_q = model.sample(channels, gen)
        b = sanitize(trainer.integrand.evaluate(channels.cpu(), r.detach().cpu()))
        feats = b.features.to(trainer.device, torch.float64)
        prior = b.alpha_prior.to(trainer.device, torch.float64)
        w = b.weight.to(trainer.device, torch.float64)
        valid = b.valid.to(trainer.device)
        log_a = model.cwnet.log_alpha(feats, prior, model.active)
        a_own = torch.exp(log_a.gather(1, channels[:, None]).squeeze(1))
        p_own = prior.gather(1, channels[:, None]).squeeze(1)
        base = torch.where(valid, w * torch.exp(-log_q), torch.zeros_like(w))
        c = trainer.n_channels
        out = []
        for alpha in (p_own, a_own):
            v = alpha * base
            s1 = torch.zeros(c, dtype=torch.float64, device=trainer.device).index_add_(0, channels, v)
            s2 = torch.zeros(c, dtype=torch.float64, device=trainer.device).index_add_(0, channels, v * v)
            mean, _ = combine_channels(s1, s2, counts)
            out.append(mean.cpu().numpy())
        ok = valid[:, None].to(torch.float64)
        n_ok = max(float(valid.sum()), 1.0)
        mean_prior = (prior * ok).sum(0).cpu().numpy() / n_ok
        mean_learned = (torch.exp(log_a) * ok).sum(0).cpu().numpy() / n_ok
    return out[0], out[1], mean_prior, mean_learned, int(channels.shape[0])


def plot_alpha(names: Sequence[str], prior: np.ndarray, learned: np.ndarray, path: str | Path, top: int = 30) -> Path:
    return plot_channel_contributions(names, prior, learned, path,
                                      labels=("<α_prior> (MG5)", "<α_learned>"), top=top)


def write_run_plots(trainer, sample, outdir: str | Path, *, diag_points: int = 4000, summary=None
                    ) -> tuple[list[str], list[float]]:
    """All plots of a run into ``outdir``; returns (PNG paths, prior-α channel integrals)."""
    outdir = Path(outdir)
    paths = [plot_training(trainer.history.to_dict(), outdir / "madnis_loss.png"),
             plot_rel_std(trainer.history.to_dict(), outdir / "madnis_rel_std.png")]
    if sample is not None:
        paths.append(plot_weights(sample.weight, sample.w_max, outdir / "madnis_weights.png", sample.efficiency))
    prior_i: list[float] = []
    names = list(getattr(trainer.integrand, "channel_names", [str(i) for i in range(trainer.n_channels)]))
    if diag_points > 0:
        i_prior, i_learned, a_prior, a_learned, _ = diagnostic_alpha(trainer, diag_points)
        prior_i = [float(x) for x in i_prior]
        after = sample.channel_integrals if sample is not None else i_learned
        paths.append(plot_channel_contributions(names, i_prior, after, outdir / "madnis_channels.png"))
        paths.append(plot_alpha(names, a_prior, a_learned, outdir / "madnis_alpha.png"))
    return [str(p) for p in paths], prior_i


def write_summary_plots(history: dict, summary, outdir: str | Path) -> list[str]:
    """Plots that need no integrand (``madnis_plots``): training curves and channel contributions from the JSON."""
    outdir = Path(outdir)
    paths = [plot_training(history, outdir / "madnis_loss.png"), plot_rel_std(history, outdir / "madnis_rel_std.png")]
    if summary is not None and summary.channel_integrals:
        before = summary.prior_channel_integrals or [math.nan] * len(summary.channel_integrals)
        before = np.nan_to_num(np.asarray(before, dtype=float))
        paths.append(plot_channel_contributions(summary.channel_names, before, summary.channel_integrals,
                                                outdir / "madnis_channels.png"))
    return [str(p) for p in paths]
