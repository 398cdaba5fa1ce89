#!/usr/bin/env python
"""Side-by-side benchmark: this project's core vs. madnis 1.0 (PyPI) vs. plain vegas, on the toy integrands.

    python benchmarks/run_benchmarks.py [--quick] [--toys camel,resonances] [--methods core,madnis-1.0,vegas]
                                        [--seeds 1] [--no-scaling] [--out-dir benchmarks/out]

Every method gets the same integrand-call budget per toy (training calls, then evaluation calls on the frozen
sampler). Metrics: σ/I per point, unweighting efficiency ε = ⟨w⟩/w_max (w_max = bootstrap median of the max
weight), training wall time per optimizer step (vegas: per iteration), integrand calls. A second part times one
online training step against the channel count (1, 10, 100 channels of the ``many_channels`` toy, fixed batch
size) for the core and madnis 1.0.

Writes ``<out-dir>/benchmark_<quick|full>.json`` and ``.md`` and prints the Markdown tables. Quick mode stays
within ~5 minutes on 2 CPU cores (torch uses one thread).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import bench_common as bc  # noqa: E402  (also puts the repo root on sys.path)

bc.limit_threads(1)

import method_core  # noqa: E402
import method_madnis10  # noqa: E402
import method_vegas  # noqa: E402
from madnis_plugin.integrands.toys import make_toy  # noqa: E402

METHODS = {m.NAME: m for m in (method_core, method_madnis10, method_vegas)}

# (label, toy name, kwargs, budget multiplier)
SUITE = [
    ("camel", "camel", {}, 1),
    ("camel_4d", "camel", {"n_dims": 4}, 1),
    ("camel_bw", "camel_bw", {}, 1),
    ("crossed_ring", "crossed_ring", {}, 1),
    ("resonances", "resonances", {}, 1),
    ("many_channels", "many_channels", {}, 2),
]

BUDGETS = {
    "quick": dict(train=40_000, eval=20_000),
    "full": dict(train=500_000, eval=200_000),
}

SCALING = {
    "quick": dict(channels=[(1, 1), (10, 2), (100, 20)], steps=8, warmup=2, batch=1024),
    "full": dict(channels=[(1, 1), (10, 2), (100, 20)], steps=30, warmup=5, batch=1024),
}


def run_suite(mode: str, toys: list[str] | None, methods: list[str], seeds: int) -> list[bc.MethodResult]:
    budget = BUDGETS[mode]
    results: list[bc.MethodResult] = []
    for label, name, kwargs, mult in SUITE:
        if toys and label not in toys and name not in toys:
            continue
        for seed in range(seeds):
            for mname in methods:
                mod = METHODS[mname]
                ok, info = mod.available()
                toy = make_toy(name, **kwargs)
                if not ok:
                    results.append(bc.MethodResult(method=mname, toy=label, exact=toy.exact, status="skipped", message=info))
                    continue
                t0 = time.perf_counter()
                try:
                    r = mod.run(toy, train_calls=mult * budget["train"], eval_calls=mult * budget["eval"], seed=seed)
                    r.toy = label
                    r.config["toy_kwargs"] = kwargs
                    r.config["seed"] = seed
                except Exception as exc:  # noqa: BLE001
                    r = bc.MethodResult(method=mname, toy=label, exact=toy.exact, status="error",
                                        message=f"{type(exc).__name__}: {exc}",
                                        config={"traceback": traceback.format_exc()})
                    r.wall_time_s = time.perf_counter() - t0
                results.append(r)
                print(f"  {label:14s} {mname:11s} seed {seed}: {r.status:7s} "
                      f"I={r.integral if r.integral is not None else float('nan'):.6g} "
                      f"sigma/I={r.rel_std if r.rel_std is not None else float('nan'):.4g} "
                      f"eps={r.unweighting_efficiency if r.unweighting_efficiency is not None else float('nan'):.4f} "
                      f"({r.wall_time_s or 0:.1f}s) {r.message[:80]}", flush=True)
    return results


def run_scaling(mode: str, methods: list[str]) -> list[dict]:
    spec = SCALING[mode]
    rows = []
    for mname in methods:
        mod = METHODS[mname]
        if not hasattr(mod, "step_time"):
            continue
        ok, info = mod.available()
        for n_ch, n_gr in spec["channels"]:
            row = dict(method=mname, n_channels=n_ch, n_groups=n_gr)
            if not ok:
                row.update(status="skipped", message=info)
            else:
                try:
                    toy = make_toy("many_channels", n_channels=n_ch, n_groups=n_gr)
                    row.update(mod.step_time(toy, n_steps=spec["steps"], warmup=spec["warmup"], batch_size=spec["batch"]))
                    row["status"] = "ok"
                except Exception as exc:  # noqa: BLE001
                    row.update(status="error", message=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
            rows.append(row)
            st = row.get("step_time_s")
            print(f"  scaling {mname:11s} C={n_ch:4d}: {row['status']} "
                  f"{'' if st is None else f'{1e3 * st:.1f} ms/step'} {row.get('message', '')[:80]}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small budgets (≤ ~5 min on 2 cores)")
    ap.add_argument("--toys", default="", help="comma-separated suite labels or toy names (default: all)")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {', '.join(METHODS)}")
    ap.add_argument("--seeds", type=int, default=1, help="independent runs per (toy, method)")
    ap.add_argument("--no-scaling", action="store_true", help="skip the step-time vs. channel-count study")
    ap.add_argument("--only-scaling", action="store_true", help="run only the channel-scaling study")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "out"))
    args = ap.parse_args(argv)

    mode = "quick" if args.quick else "full"
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        ap.error(f"unknown method(s) {bad}; valid: {', '.join(METHODS)}")
    toys = [t.strip() for t in args.toys.split(",") if t.strip()] or None

    t0 = time.perf_counter()
    print(f"MadNIS benchmark ({mode}); budgets per toy: {BUDGETS[mode]} (x2 for many_channels)", flush=True)
    for name, mod in METHODS.items():
        print(f"  {name}: {mod.available()[1]}")
    results = [] if args.only_scaling else run_suite(mode, toys, methods, args.seeds)
    scaling = [] if args.no_scaling else run_scaling(mode, [m for m in methods if m != "vegas"])
    elapsed = time.perf_counter() - t0

    md = [f"# MadNIS benchmark ({mode})\n",
          f"Budgets per toy: train {BUDGETS[mode]['train']} / eval {BUDGETS[mode]['eval']} integrand calls "
          f"(x2 for many_channels); torch threads = 1; total wall time {elapsed:.0f} s.\n"]
    if results:
        md += ["## Toys\n", bc.markdown_table(results)]
        if args.seeds > 1:
            md += [f"## Over {args.seeds} seeds\n", bc.seed_summary_table(results)]
    if scaling:
        md += ["## Training step time vs. channel count (many_channels, fixed batch)\n", bc.scaling_table(scaling)]
    text = "\n".join(md)
    print("\n" + text)
    os.makedirs(args.out_dir, exist_ok=True)
    stem = os.path.join(args.out_dir, f"benchmark_{mode}" + (f"_{args.seeds}seeds" if args.seeds > 1 else ""))
    bc.write_json(stem + ".json", dict(mode=mode, budgets=BUDGETS[mode], environment=bc.environment(),
                                       wall_time_s=elapsed, results=results, scaling=scaling))
    with open(stem + ".md", "w") as fh:
        fh.write(text)
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
