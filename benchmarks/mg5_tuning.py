"""VEGAS-only start vs trained MadNIS on MG5 processes: rel. std per point, unweighting efficiency ε, calls.

    MG5_HOME=/work/mg5 MADNIS_MG5_GROUPED=sum python benchmarks/mg5_tuning.py [--steps 1500] [--targets ppee,www_group]

ε is heavy-tail dominated, so every number is evaluated twice (two integration seeds, n points each) and both
are reported. Writes benchmarks/out/mg5_tuning.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("MG5_HOME", "/work/mg5")
os.environ.setdefault("MADNIS_MG5_GROUPED", "sum")

from madnis_plugin.core.config import from_dict  # noqa: E402
from madnis_plugin.core.integrator import integrate  # noqa: E402
from madnis_plugin.core.trainer import Trainer  # noqa: E402
from madnis_plugin.integrands import resolve_target  # noqa: E402
from madnis_plugin.recipes import recipe_for  # noqa: E402


def evaluate(tr: Trainer, n: int, seeds: list[int]) -> dict:
    res = [integrate(tr, n=n, seed=s) for s in seeds]
    return {"rel_std": [r.rel_std for r in res], "eps": [r.unweighting_efficiency for r in res],
            "integral": [r.integral for r in res], "error": [r.error for r in res],
            "n_calls_training": res[0].n_calls_training, "n_steps": tr.step}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", default="ppee,www_group")
    ap.add_argument("--steps", type=int, default=None, help="default: the recipe's / config's n_steps")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--set", nargs="*", default=[], help="extra key=value config overrides")
    args = ap.parse_args()
    out = {}
    for name in args.targets.split(","):
        target = f"mg5:/work/mg5_procs/{name}"
        values = {**recipe_for(target), "progress": False, "seed": args.seed, "vegas_samples": 10000,
                  **dict(kv.split("=", 1) for kv in args.set)}
        if args.steps is not None:
            values["n_steps"] = args.steps
        cfg = from_dict(values)
        tr = Trainer(resolve_target(target), cfg)
        t0 = time.time()
        tr.pretrain_vegas()
        row = {"config": cfg.to_dict(), "vegas_only": evaluate(tr, args.n, [7, 8])}
        tr.train()
        row["trained"] = evaluate(tr, args.n, [7, 8])
        row["wall_s"] = time.time() - t0
        out[name] = row
        print(name, json.dumps({k: row[k] for k in ("vegas_only", "trained")}), flush=True)
    path = Path(__file__).parent / "out" / "mg5_tuning.json"
    path.write_text(json.dumps(out, indent=1))
    print("wrote", path)


if __name__ == "__main__":
    main()
