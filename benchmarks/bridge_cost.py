"""CPU cost per phase-space point: the MG5 bridge library vs MadEvent's own ``madevent`` executable.

Both evaluate the same channel with the same phase-space mapping on a flat grid:

* MadEvent: ``P/madevent`` run in a scratch directory ``P/madnis_bench_<pid>/`` with a flat ``ftn25`` written by
  ``madnis_plugin.bridge.gridfile`` (MadEvent's log must say "Grid read from file"), a fixed grid (use_cut 0), one
  iteration, exact helicity sum setting of the run (nhel 0), multi-channel on. MadEvent stops an iteration after
  ``ncall`` points with a *non-zero* weight, so the number of generated points is ``kevent / f_nonzero`` with
  ``f_nonzero`` from its ``Iteration`` line. The CPU time of the child (user + sys) is measured for a small and a
  large run and the difference divided by the difference in generated points (start-up cancels).
  Optionally (``--adaptive``) the same with MadEvent's default pre-shaped grid adapted each iteration (use_cut 2);
  this is the reference when the matrix files filter helicities at run time (ungrouped directories, or no survey),
  because a flat ftn25 has to list good-helicity flags and all-true makes MadEvent sum every helicity.
* Bridge: a fresh Python process loads the library (``madnis_plugin.bridge.library.Library``), evaluates a
  warm-up batch (which freezes the channel), then ``n`` uniform points in batches; CPU time of the process over
  the timed batches / n. Both grouped modes (``MADNIS_MG5_GROUPED=sample`` and ``sum``) are timed.

Usage::

    python benchmarks/bridge_cost.py --p-dir /work/mg5_procs/ppee/SubProcesses/P1_qq_ll --n 400000 \
        --out benchmarks/out/bridge_cost_ppee.json

Prints the JSON (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from madnis_plugin.bridge import gridfile, mg5build  # noqa: E402

_BRIDGE_WORKER = r"""
import sys, time, json, numpy as np
sys.path.insert(0, {repo!r})
from madnis_plugin.bridge.library import Library
lib = Library({so!r}); info = lib.init({p!r}, sde_strategy=1, seed=1)
ch, n, batch = {channel}, {n}, {batch}
rng = np.random.default_rng(1234 + ch)
lib.evaluate(np.full(1000, ch), rng.random((1000, info.n_dims)))      # warm-up: freezes the channel
rs = [rng.random((min(batch, n - k), info.n_dims)) for k in range(0, n, batch)]
acc = 0.0; nz = 0
t0 = time.process_time(); w0 = time.perf_counter()
for r in rs:
    ev = lib.evaluate(np.full(r.shape[0], ch), r)
    acc += float((ev.alpha[:, ch] * ev.weight).sum()); nz += int((ev.weight != 0).sum())
cpu = time.process_time() - t0; wall = time.perf_counter() - w0
print("RESULT " + json.dumps(dict(cpu_s=cpu, wall_s=wall, points=n, nonzero_fraction=nz / n,
                                   us_per_point=cpu / n * 1e6, integral=acc / n)))
"""


def bridge_cost(so: Path, p_dir: Path, channel: int, n: int, mode: str, batch: int = 50_000) -> dict:
    env = dict(os.environ, MADNIS_MG5_GROUPED=mode, OMP_NUM_THREADS="1")
    code = _BRIDGE_WORKER.format(repo=str(REPO), so=str(so), p=str(p_dir), channel=channel, n=n, batch=batch)
    proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, timeout=7200)
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if not line:
        raise RuntimeError(f"bridge worker failed:\n{proc.stdout[-4000:]}")
    return json.loads(line[0][7:])


def _run_madevent(p_dir: Path, work: Path, ncall: int, diagram: int, use_cut: int) -> dict:
    (work / "input_app.txt").write_text(f"{ncall} 1 1\n0.1\n{use_cut}\n1\n0\n{diagram}\n")
    for f in ("results.dat", "ftn26", "log.txt"):
        (work / f).unlink(missing_ok=True)
    with open(work / "input_app.txt") as fin, open(work / "log.txt", "w") as fout:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(p_dir / "madevent")], cwd=work, stdin=fin, stdout=fout, stderr=subprocess.STDOUT)
        proc.wait()
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    log = (work / "log.txt").read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"madevent failed (exit {proc.returncode}):\n{log[-3000:]}")
    m = re.search(r"Iteration\s+1\s+Mean:\s*(\S+).*?([\d.]+)%", log)
    first = (work / "results.dat").read_text().split("\n")[0].split()
    kevent = int(first[3])
    frac = float(m.group(2)) / 100.0
    return dict(cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall_s=wall,
                nonzero_points=kevent, nonzero_fraction=frac, points=kevent / frac,
                integral=float(first[9]), error=float(first[1]),
                grid_read_from_file="Grid read from file" in log)


def madevent_cost(p_dir: Path, channel_diagram: int, ncall: int, ndim: int, ngoodhel: int,
                  adaptive: bool = False, ncall_small: int = 2000) -> dict:
    if not (p_dir / "madevent").is_file():
        mg5build._run(["make", "madevent"], p_dir, "make madevent")
    work = p_dir / f"madnis_bench_{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    try:
        if not adaptive:
            gridfile.write_flat_grid(work / "ftn25", max(2, ndim), tail=" " + " ".join(["T"] * ngoodhel) + "\n")
        use_cut = 2 if adaptive else 0
        small = _run_madevent(p_dir, work, ncall_small, channel_diagram, use_cut)
        big = _run_madevent(p_dir, work, ncall, channel_diagram, use_cut)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    d_cpu = big["cpu_s"] - small["cpu_s"]
    d_pts = big["points"] - small["points"]
    return dict(small_run=small, large_run=big, us_per_point=d_cpu / d_pts * 1e6,
                mode="adaptive grid (use_cut 2, MadEvent's pre-shaped grid)" if adaptive
                else "fixed flat grid (use_cut 0) from a Python-written ftn25")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--p-dir", required=True, type=Path, help="MG5 SubProcesses/P* directory (launched once)")
    ap.add_argument("--channels", type=int, nargs="*", default=None, help="0-based channels (default: all)")
    ap.add_argument("--n", type=int, default=200_000, help="bridge points per channel and mode")
    ap.add_argument("--madevent-ncall", type=int, default=None,
                    help="MadEvent non-zero points of the large run (default: n x bridge non-zero fraction)")
    ap.add_argument("--adaptive", action="store_true", help="also time MadEvent with its adaptive grid")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    p_dir = args.p_dir.resolve()
    so = mg5build.build_library(p_dir)
    stamp = json.loads((so.parent / "build_stamp.json").read_text())
    info_code = (f"import sys; sys.path.insert(0,{str(REPO)!r}); from madnis_plugin.bridge.library import Library;"
                 f"i=Library({str(so)!r}).init({str(p_dir)!r}); "
                 "print('INFO', i.n_dims, ' '.join(map(str, i.channel_diagram)))")
    out = subprocess.run([sys.executable, "-c", info_code], stdout=subprocess.PIPE, text=True).stdout
    line = [l for l in out.splitlines() if l.startswith("INFO")][0].split()
    ndim, diagrams = int(line[1]), [int(x) for x in line[2:]]
    channels = args.channels if args.channels is not None else list(range(len(diagrams)))

    result = dict(
        benchmark="bridge_cost", p_dir=str(p_dir), mg5_version=stamp.get("mg5_version"),
        grouped=stamp.get("grouped"), helicity_filter=stamp.get("helicity_filter"),
        matrix_files=stamp.get("matrix_files"), n_dims=ndim,
        command=" ".join([Path(sys.executable).name, "benchmarks/bridge_cost.py", *(argv or sys.argv[1:])]),
        host=dict(machine=platform.machine(), python=platform.python_version(), cpus=os.cpu_count(),
                  load_avg=os.getloadavg()),
        channels=[],
    )
    for ch in channels:
        entry = dict(channel=ch, diagram=diagrams[ch], bridge={})
        for mode in (["sample", "sum"] if stamp.get("grouped") else ["sample"]):
            entry["bridge"][mode] = bridge_cost(so, p_dir, ch, args.n, mode)
        nz = entry["bridge"]["sample"]["nonzero_fraction"]
        ncall = args.madevent_ncall or max(10_000, int(args.n * max(nz, 0.01)))
        entry["madevent"] = madevent_cost(p_dir, diagrams[ch], ncall, ndim, stamp.get("ngoodhel", 0))
        # a flat ftn25 must carry GOODHEL flags; all-true makes MadEvent sum every helicity, so where its matrix
        # files filter helicities at run time the fair reference is the run without ftn25 (adaptive grid)
        reference = "madevent_adaptive" if stamp.get("helicity_filter") else "madevent"
        if args.adaptive or reference == "madevent_adaptive":
            entry["madevent_adaptive"] = madevent_cost(p_dir, diagrams[ch], ncall, ndim, stamp.get("ngoodhel", 0),
                                                       adaptive=True)
        me_us = entry[reference]["us_per_point"]
        entry["reference"] = reference
        entry["ratio_bridge_over_madevent"] = {m: v["us_per_point"] / me_us for m, v in entry["bridge"].items()}
        result["channels"].append(entry)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()
