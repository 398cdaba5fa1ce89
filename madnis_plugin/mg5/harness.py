"""Python debugging harness: open an MG5 process directory, look at its channels, evaluate it at chosen
(channel, r), train step by step, and plot weight distributions and learned vs prior channel weights.

    from madnis_plugin.mg5 import harness as h
    proc = h.open_process("PROC_pp_ee")                 # the bridge over every P-directory (Integrand protocol)
    print(h.channel_table(proc))                        # index, P-dir, G tag, diagram, flow group
    h.evaluate(proc, channel=1, r=[0.5, 0.5, 0.3, 0.7])  # weight [pb], prior alpha, momenta, status, features
    tr = h.make_trainer(proc, n_steps=500, batch_size=512)
    h.pretrain(tr)                                      # VEGAS pre-training and flow initialisation
    for _ in range(5):
        print(h.train_steps(tr, 100))                   # mean loss of the block, active channels, rel. std
    res = h.integrate(tr, 20000)                        # refine-phase estimate from the frozen model
    h.plot_weights(tr, 20000, "w.png"); h.plot_channel_weights(tr, 4000, "alpha.png")
    tr2 = h.load_run("PROC_pp_ee", "run_01")            # the model a launch saved
    proc.close()

Everything takes the integrand (``ProcessIntegrand``) or a trainer; nothing here writes into the process directory
except what the bridge builds (``P*/madnis_bridge/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np


# ---------------------------------------------------------------------------------------------------- process
def open_process(path: str | Path, *, sde_strategy: int = 1, n_workers: int = 1, **kwargs):
    """The process at ``path`` (an output dir or one P-dir) as an Integrand (``.process`` is the bridge Process)."""
    from madnis_plugin.integrands.mg5 import load_integrand  # noqa: PLC0415

    return load_integrand(path, sde_strategy=sde_strategy, n_workers=n_workers, **kwargs)


def _process(obj):
    return getattr(obj, "process", obj)


def channels(integrand, me_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """One dict per channel: index, name, P-directory, G tag (from symfact.dat), diagram, flow group, n_dims."""
    from .results import build_channel_map  # noqa: PLC0415

    proc = _process(integrand)
    subs = proc.info.subprocesses
    me = Path(me_dir) if me_dir else Path(proc.info.path)
    if proc.info.kind == "mg5-pdir":
        me = me.parent.parent
    cmap = build_channel_map(subs, me) if proc.info.kind.startswith("mg5") else None
    group_of = {c: g for g, chans in enumerate(proc.groups) for c in chans}
    out = []
    for c in range(proc.n_channels):
        k = proc.info.channel_subprocess[c]
        out.append(dict(index=c, name=proc.channel_names[c], pdir=subs[k].name,
                        gtag=(cmap.channel_tag[c] if cmap else None), diagram=proc.info.channel_diagram[c],
                        group=group_of.get(c), n_dims=subs[k].n_dims))
    return out


def groups(integrand) -> list[list[int]]:
    """Channel groups that share one flow."""
    return [list(g) for g in _process(integrand).groups]


def channel_table(integrand, me_dir: str | Path | None = None) -> str:
    rows = channels(integrand, me_dir)
    lines = [f"{'#':>4s} {'name':28s} {'P-dir':16s} {'G':>6s} {'diag':>5s} {'group':>5s} {'D':>3s}"]
    for r in rows:
        lines.append(f"{r['index']:4d} {r['name']:28s} {r['pdir']:16s} {str(r['gtag']):>6s} {r['diagram']:5d} "
                     f"{str(r['group']):>5s} {r['n_dims']:3d}")
    return "\n".join(lines)


def evaluate(integrand, channel: int | Sequence[int], r: Sequence[float] | np.ndarray) -> dict[str, np.ndarray]:
    """Evaluate at chosen (channel, r); r is [D] (one point) or [n, D]. Returns numpy arrays."""
    import torch  # noqa: PLC0415

    r = np.atleast_2d(np.asarray(r, dtype=np.float64))
    ch = np.broadcast_to(np.asarray(channel, dtype=np.int64), (r.shape[0],)).copy()
    b = integrand.evaluate(torch.as_tensor(ch), torch.as_tensor(r))
    out = {"weight": b.weight.numpy(), "alpha_prior": b.alpha_prior.numpy(), "valid": b.valid.numpy(),
           "features": b.features.numpy(), "channel_weight": (b.alpha_prior.numpy()[np.arange(len(ch)), ch]
                                                               * b.weight.numpy())}
    if b.momenta is not None:
        out["momenta"] = b.momenta.numpy()
    if b.status is not None:
        out["status"] = b.status.numpy()
    return out


def scan(integrand, channel: int, dim: int, *, base: Sequence[float] | None = None, n: int = 101):
    """Weight along one r dimension (others fixed at ``base``, default 0.5): (t, result dict)."""
    d = integrand.n_dims
    base = np.full(d, 0.5) if base is None else np.asarray(base, dtype=np.float64)
    t = np.linspace(0.0, 1.0, n)
    r = np.tile(base, (n, 1))
    r[:, dim] = t
    return t, evaluate(integrand, channel, r)


# ---------------------------------------------------------------------------------------------------- training
def make_trainer(integrand, config=None, **overrides):
    """A core Trainer for the integrand; ``overrides`` are MadnisConfig fields (progress off by default)."""
    from madnis_plugin.core import MadnisConfig, Trainer  # noqa: PLC0415

    cfg = config or MadnisConfig(progress=False)
    if overrides:
        cfg = cfg.replace(**overrides)
    return Trainer(integrand, cfg)


def pretrain(trainer) -> None:
    trainer.pretrain_vegas()


def train_steps(trainer, n: int) -> dict[str, Any]:
    """``n`` optimizer steps; returns the block's mean loss, the last rel. std estimate, active channels, calls."""
    losses = []
    for _ in range(n):
        losses.append(trainer.train_step())
    rel = [x for x in trainer.history.rel_std[-n:] if np.isfinite(x)]
    return {"step": trainer.step, "loss": float(np.nanmean(losses)) if losses else float("nan"),
            "rel_std": rel[-1] if rel else float("nan"), "active": int(trainer.model.active.sum()),
            "calls": int(trainer.n_calls_training)}


def integrate(trainer, n: int | None = None):
    from madnis_plugin.core import integrate as core_integrate  # noqa: PLC0415

    return core_integrate(trainer, n)


def load_run(me_dir: str | Path, run: str | None = None, integrand=None, **config_overrides):
    """The trainer saved by a launch (``Events/<run>/madnis_checkpoint.pt``, newest if ``run`` is None)."""
    from madnis_plugin.core import load_checkpoint  # noqa: PLC0415

    from .commands import find_checkpoint  # noqa: PLC0415

    ck = find_checkpoint(me_dir, run)
    integrand = integrand or open_process(me_dir)
    return load_checkpoint(ck, integrand, **{"progress": False, **config_overrides})


# ---------------------------------------------------------------------------------------------------- looking
def weights(trainer, n: int = 20000, seed: int = 99) -> np.ndarray:
    """Refine-phase event weights (pb) of ``n`` points from the frozen model."""
    from madnis_plugin.core import generate  # noqa: PLC0415

    return generate(trainer, n, seed=seed, progress=False).weight.cpu().numpy()


def plot_weights(trainer, n: int, path: str | Path) -> Path:
    import torch  # noqa: PLC0415

    from madnis_plugin.core.integrator import unweighting_efficiency  # noqa: PLC0415

    from . import plots  # noqa: PLC0415

    w = weights(trainer, n)
    eff, w_max = unweighting_efficiency(torch.as_tensor(w), trainer.config.bootstrap_replicas,
                                        torch.Generator().manual_seed(5))
    return plots.plot_weights(w, w_max, path, eff)


def channel_weights(trainer, n: int = 4000) -> dict[str, np.ndarray]:
    """Per channel: σ_i with MG5's prior channel weights and with the learned ones, and the mean α of each."""
    from .plots import diagnostic_alpha  # noqa: PLC0415

    i_prior, i_learned, a_prior, a_learned, calls = diagnostic_alpha(trainer, n)
    return {"sigma_prior": i_prior, "sigma_learned": i_learned, "alpha_prior": a_prior,
            "alpha_learned": a_learned, "calls": calls}


def plot_channel_weights(trainer, n: int, path: str | Path) -> Path:
    from . import plots  # noqa: PLC0415

    d = channel_weights(trainer, n)
    names = list(getattr(trainer.integrand, "channel_names", range(trainer.n_channels)))
    return plots.plot_channel_contributions([str(x) for x in names], d["sigma_prior"], d["sigma_learned"], path)
