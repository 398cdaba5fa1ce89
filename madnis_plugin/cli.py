"""`madnis-mg5` console script.

    madnis-mg5 integrate [TARGET] [--config FILE] [--seed N] [--set key=value ...] [--json]
    madnis-mg5 integrate --list
    madnis-mg5 train TARGET --checkpoint FILE [--config FILE] [--seed N] [--set ...] [--steps N]
    madnis-mg5 sample --checkpoint FILE -n N --output FILE [--unweighted]

TARGET is ``toy:NAME`` (see ``--list``) or ``reference`` (the project's Fortran reference process through the
bridge). Without TARGET, ``integrate`` runs the embedded default, ``toy:crossed_ring``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

DEFAULT_TARGET = "toy:crossed_ring"


def _config(args: argparse.Namespace, target: str | None = None):
    """Recipe of the target (if any) < TOML file < --seed/--steps/--set."""
    from .core.config import load_config, parse_overrides
    from .recipes import recipe_for

    base = recipe_for(target) if target and not getattr(args, "no_recipe", False) else {}
    overrides: dict[str, Any] = parse_overrides(args.set or [])
    if args.seed is not None:
        overrides["seed"] = args.seed
    if getattr(args, "steps", None) is not None:
        overrides["n_steps"] = args.steps
    return load_config(args.config, overrides, base=base)


def _result_dict(result, target: str, integrand) -> dict[str, Any]:
    d = result.to_dict()
    out = {
        "target": target,
        "integral": result.integral,
        "error": result.error,
        "exact": result.exact,
        "pull": result.pull,
        "rel_std": result.rel_std,
        "unweighting_efficiency": result.unweighting_efficiency,
        "n_calls_training": result.n_calls_training,
        "n_calls_integration": result.n_calls_integration,
        "active_channels": result.active_channels,
        "wall_time_s": result.wall_time_s,
        "unit": result.unit,
        "channel_names": list(getattr(integrand, "channel_names", [])),
    }
    for k in ("channel_integrals", "channel_errors", "channel_points", "n_points", "n_invalid", "status_counts",
              "w_max", "train_time_s", "train_step_time_s", "n_steps"):
        out[k] = d[k]
    return out


def _print_summary(d: dict[str, Any]) -> None:
    unit = f" {d['unit']}" if d["unit"] else ""
    print(f"MadNIS result for {d['target']}")
    print(f"  integral            = {d['integral']:.8g} ± {d['error']:.3g}{unit}  "
          f"(rel. error {d['error'] / abs(d['integral']) if d['integral'] else math.inf:.3%})")
    if d["exact"] is not None:
        print(f"  exact               = {d['exact']:.8g}{unit}   pull = {d['pull']:+.2f} σ")
    print(f"  rel. std per point  = {d['rel_std']:.4f}")
    print(f"  unweighting eff. ε  = {d['unweighting_efficiency']:.4f}")
    print(f"  calls               = {d['n_calls_training']} training + {d['n_calls_integration']} integration")
    print(f"  active channels     = {len(d['active_channels'])}/{len(d['channel_integrals'])}")
    names = d["channel_names"] or [str(i) for i in range(len(d["channel_integrals"]))]
    total = d["integral"] or 1.0
    for name, ii, ee in zip(names, d["channel_integrals"], d["channel_errors"]):
        print(f"    {name:>20s}: {ii:.6g} ± {ee:.2g}  ({ii / total:6.1%})")
    print(f"  wall time           = {d['wall_time_s']:.1f} s  ({d['train_step_time_s'] * 1e3:.2f} ms per training step)")


def cmd_integrate(args: argparse.Namespace) -> int:
    from .integrands import list_targets, resolve_target

    if args.list:
        for name, doc in list_targets():
            print(f"{name:24s} {doc}")
        return 0
    target = args.target or DEFAULT_TARGET
    config = _config(args, target)
    integrand = resolve_target(target)
    from .core import Trainer, integrate

    t0 = time.perf_counter()
    trainer = Trainer(integrand, config)
    trainer.train()
    result = integrate(trainer)
    import dataclasses

    result = dataclasses.replace(result, wall_time_s=time.perf_counter() - t0)
    d = _result_dict(result, target, integrand)
    if args.json:
        print(json.dumps(d))
    else:
        _print_summary(d)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .core import Trainer, load_checkpoint
    from .integrands import resolve_target

    integrand = resolve_target(args.target)
    ckpt = Path(args.checkpoint)
    if args.resume and ckpt.exists():
        overrides: dict[str, Any] = {}
        if args.steps is not None:
            overrides["n_steps"] = args.steps
        trainer = load_checkpoint(ckpt, integrand, **overrides)
        print(f"resuming from step {trainer.step} of {trainer.config.n_steps}", file=sys.stderr)
    else:
        trainer = Trainer(integrand, _config(args, args.target))
    trainer.target = args.target  # recorded in the checkpoint so `sample` can rebuild the integrand
    trainer.train(checkpoint_path=str(ckpt), checkpoint_every=args.checkpoint_every)
    print(f"checkpoint written: {ckpt} (step {trainer.step})")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from .core import generate, load_checkpoint, unweight
    from .core.checkpoint import atomic_write_bytes, read_target
    from .integrands import resolve_target

    target = args.target or read_target(args.checkpoint)
    if target is None:
        print("error: the checkpoint records no target; pass --target", file=sys.stderr)
        return 2
    integrand = resolve_target(target)
    trainer = load_checkpoint(args.checkpoint, integrand)
    events = generate(trainer, args.n, seed=args.seed)
    arrays: dict[str, np.ndarray] = {
        "r": events.r.cpu().numpy(), "channel": events.channels.cpu().numpy(),
        "weight": events.weight.cpu().numpy(), "features": events.features.cpu().numpy(),
    }
    if events.momenta is not None:
        arrays["momenta"] = events.momenta.cpu().numpy()
    if args.unweighted:
        from .core.integrator import bootstrap_wmax

        gen = torch.Generator().manual_seed(trainer.config.seed + 17 if args.seed is None else args.seed + 17)
        w_max = bootstrap_wmax(events.weight, trainer.config.bootstrap_replicas, gen)
        uw = unweight(events, w_max, gen)
        idx = uw.indices.cpu().numpy()
        arrays = {k: v[idx] for k, v in arrays.items()}
        arrays["weight"] = uw.weight.cpu().numpy()
        print(f"unweighted: kept {len(idx)} of {len(events)} (ε = {uw.efficiency:.4f}, "
              f"overweight fraction {uw.overweight_fraction:.2e})")
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(args.output, buf.getvalue())
    print(f"wrote {len(arrays['weight'])} events to {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="madnis-mg5", description="MadNIS neural multi-channel importance sampling")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", help="TOML file with MadnisConfig keys (top level or [madnis])")
        sp.add_argument("--seed", type=int, help="random seed (overrides the config)")
        sp.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config key (repeatable)")
        sp.add_argument("--no-recipe", action="store_true",
                        help="ignore the target's recipe (madnis_plugin/recipes.py) and use plain defaults")

    sp = sub.add_parser("integrate", help="train and integrate a target; print the result")
    sp.add_argument("target", nargs="?", help=f"toy:NAME or reference (default {DEFAULT_TARGET})")
    sp.add_argument("--list", action="store_true", help="list the available targets")
    sp.add_argument("--json", action="store_true", help="print one JSON object")
    common(sp)
    sp.set_defaults(func=cmd_integrate)

    sp = sub.add_parser("train", help="train a target and write a checkpoint")
    sp.add_argument("target")
    sp.add_argument("--checkpoint", required=True)
    sp.add_argument("--steps", type=int, help="total optimizer steps (overrides n_steps)")
    sp.add_argument("--resume", action="store_true", help="continue from the checkpoint if it exists")
    sp.add_argument("--checkpoint-every", type=int, default=200)
    common(sp)
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("sample", help="generate events from a checkpoint (.npz)")
    sp.add_argument("--checkpoint", required=True)
    sp.add_argument("--target", help="override the target recorded in the checkpoint")
    sp.add_argument("-n", type=int, required=True, help="weighted points to draw")
    sp.add_argument("--output", required=True)
    sp.add_argument("--unweighted", action="store_true", help="hit-or-miss unweight to unit-weight events")
    sp.add_argument("--seed", type=int)
    sp.set_defaults(func=cmd_sample)

    try:
        from .mg5.commands import add_cli_commands  # issue 4: install-plugin etc.

        add_cli_commands(sub)
    except ImportError:
        pass
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from .core.config import ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
