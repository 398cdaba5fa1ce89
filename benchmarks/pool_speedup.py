"""Pool speed-up: wall time to evaluate one batch with 1 worker vs N workers (default: all cores).

    python benchmarks/pool_speedup.py --target reference --n 400000
    python benchmarks/pool_speedup.py --target /path/to/PROC_DIR/SubProcesses/P1_qq_ll --n 200000

Workers are started and warmed up (each has evaluated its channels) before timing, so the figure is the
steady-state throughput of a training or integration loop. Best of ``--repeat`` timings. Writes JSON to
benchmarks/out/pool_speedup_<name>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def timed_evaluate(proc, channels: np.ndarray, r: np.ndarray, repeat: int) -> float:
    proc.evaluate(channels[:1000], r[:1000])  # warm-up: spawn and bind workers
    proc.evaluate(channels, r)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc.evaluate(channels, r)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    from madnis_plugin.bridge.process import load_process

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--target", default="reference", help="'reference' or an MG5 P-directory / output directory")
    ap.add_argument("--n", type=int, default=400_000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    out: dict = {"target": args.target, "n_points": args.n, "cpu_count": os.cpu_count(),
                 "load_average_before": os.getloadavg()}
    times = {}
    for n_workers in sorted({1, args.workers}):
        with load_process(args.target, n_workers=n_workers) as proc:
            # equal points per channel, interleaved in blocks so every worker gets work
            channels = np.sort(rng.integers(0, proc.n_channels, args.n)).astype(np.int64)
            r = rng.random((args.n, proc.n_dims))
            times[n_workers] = timed_evaluate(proc, channels, r, args.repeat)
    out["wall_s"] = {str(k): v for k, v in times.items()}
    out["us_per_point"] = {str(k): 1e6 * v / args.n for k, v in times.items()}
    out["speedup"] = times[1] / times[args.workers]
    out["load_average_after"] = os.getloadavg()
    name = "reference" if args.target == "reference" else Path(args.target).name
    dest = Path(__file__).parent / "out" / f"pool_speedup_{name}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
