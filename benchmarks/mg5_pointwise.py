"""Point by point: does the bridge evaluate exactly what MadEvent's own ``madevent`` evaluates?

    MG5_HOME=/work/mg5 python benchmarks/mg5_pointwise.py --proc /work/mg5_procs/xcheck_www \
        [--pdir P1_qq_wpwpwm] [--configs 7,1] [--points 20000] [--work /tmp/madnis_pointwise]

MadEvent integrates channel ``c`` with ``madevent`` (``sample_full``): every variable j of a point is drawn by
``sample_get_x → ntuple(x, a, b, j, ·)``, which returns ``a + u_j (b − a)`` with a uniform ``u_j`` from ``ranmar``;
the point's weight is ``wgt · DSIG`` (grid Jacobian × phase-space weight × multi-channel matrix element). The bridge's
``mb_evaluate(c, r)`` replaces that ``ntuple`` by ``a + r_j (b − a)``. So on the same grid, ``r = u`` must give the
same point and the same weight up to MadEvent's constant normalisation (1/(ncall·itmax)).

This script checks it without touching the original directory: it copies the launched process directory to
``--work``, patches two MadEvent source files *of the copy* (``Source/ranmar.f``: ``ntuple`` records u_j per index j
in a COMMON; ``Source/dsample.f``: ``sample_full`` writes u_1..u_D, wgt·DSIG and the per-index draw counts of every
point to unit 77), rebuilds ``libdsample.a`` and ``madevent`` there, and runs ``madevent`` per config on a flat,
frozen grid (the bridge's grid: x = u) with the multi-channel factor on and the helicity sum. Then the bridge
(``load_process`` on the *original*, unpatched P directory) evaluates the same u as r in the same channel, and the
per-point ratio bridge α_c·w / MadEvent wgt·DSIG is compared with its median (MadEvent's normalisation). Nothing of
MG5 is copied into this repository; the patches are applied at run time to the scratch copy.

Writes ``benchmarks/out/mg5_pointwise.json`` (key: the process directory's name) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "out" / "mg5_pointwise.json"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

RANMAR_DECL = """      double precision pw_u(50)
      integer pw_n(50)
      common /madnis_pw/ pw_u, pw_n
"""
DSAMPLE_DECL = """      integer k_pw
      double precision pw_u(50)
      integer pw_n(50)
      common /madnis_pw/ pw_u, pw_n
"""


def patch_sources(src: Path) -> None:
    """Record the uniform numbers of ``ntuple`` (ranmar.f) and write them with the weight of every point
    evaluated by ``sample_full`` (dsample.f). Raises if MadEvent's code does not look as expected."""
    f = src / "ranmar.f"
    s = f.read_text()
    i = s.index("      subroutine ntuple(x,a,b,ii,jconfig)")
    j = s.index("      x = a+x*(b-a)", i)
    k = s.index("      implicit none\n", i) + len("      implicit none\n")
    s = (s[:k] + RANMAR_DECL + s[k:j]
         + "      if (ii.ge.1 .and. ii.le.50) then\n         pw_u(ii) = x\n         pw_n(ii) = pw_n(ii) + 1\n"
           "      endif\n" + s[j:])
    f.write_text(s)
    f = src / "dsample.f"
    s = f.read_text()
    i = s.index("      subroutine sample_full(")
    k = s.index("      implicit none\n", i) + len("      implicit none\n")
    s = s[:k] + DSAMPLE_DECL + s[k:]
    anchor = "               fx = dsig(p,wgt,0) !Evaluate function\n               wgt = wgt*fx\n"
    j = s.index(anchor, i) + len(anchor)
    s = (s[:j]
         + "               write(77,'(60e25.16)') (pw_u(k_pw),k_pw=1,ndim), wgt,\n"
           "     &              (dble(pw_n(k_pw)),k_pw=1,ndim)\n"
           "               do k_pw = 1, 50\n                  pw_n(k_pw) = 0\n               enddo\n"
         + s[j:])
    f.write_text(s)


def build(work: Path, pdir: str) -> None:
    src = work / "Source"
    for o in ("ranmar.o", "dsample.o"):
        (src / o).unlink(missing_ok=True)
    subprocess.run(["make", "../lib/libdsample.a"], cwd=src, check=True, capture_output=True)
    p = work / "SubProcesses" / pdir
    (p / "madevent").unlink(missing_ok=True)
    subprocess.run(["make", "madevent"], cwd=p, check=True, capture_output=True)


def flat_grid(p: Path, dest: Path) -> None:
    """MadEvent's grid file with every variable flat (x = u), the tail (helicity flags) of an existing grid."""
    from madnis_plugin.bridge.gridfile import MadEventGrid, read_grid, write_grid

    grids = sorted(p.glob("G*/ftn26"))
    if not grids:
        raise FileNotFoundError(f"no G*/ftn26 in {p}: launch the process once (survey) before this check")
    g = read_grid(grids[0])
    write_grid(dest, MadEventGrid.flat(g.invar, tail=g.tail))


def run_madevent(p: Path, config: int, points: int, grid: Path) -> np.ndarray:
    d = p / f"PW_{config}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    shutil.copy(grid, d / "ftn25")
    # points, 1 iteration / accuracy / 0 = frozen grid / 1 = multi-channel factor / 0 = helicity sum / config
    (d / "input_app.txt").write_text(f"  {points} 1 1\n  0.00001\n  0\n  1\n  0\n  {config}\n")
    with open(d / "input_app.txt") as fin, open(d / "log.txt", "w") as fout:
        rc = subprocess.run(["../madevent"], cwd=d, stdin=fin, stdout=fout, stderr=subprocess.STDOUT).returncode
    if rc != 0 or not (d / "fort.77").is_file():
        raise RuntimeError(f"madevent failed in {d} (rc={rc}); see {d / 'log.txt'}")
    return np.loadtxt(d / "fort.77", ndmin=2)


def compare(proc, config: int, rows: np.ndarray) -> dict:
    """Bridge (``proc``, the loaded original P directory) against MadEvent's rows for one config."""
    nd = proc.n_dims
    ch = list(proc.info.subprocesses[0].channel_diagram).index(config)
    u, me, cnt = rows[:, :nd], rows[:, nd], rows[:, nd + 1: nd + 1 + nd]
    full = (cnt == 1).all(axis=1)  # every variable drawn exactly once (otherwise the point is not r-addressable)
    ev = proc.evaluate(np.full(int(full.sum()), ch), u[full])
    br = ev.weight * ev.alpha[:, ch]
    m = me[full]
    both = (m != 0) & (br != 0)
    ratio = br[both] / m[both]
    med = float(np.median(ratio)) if ratio.size else float("nan")
    dev = np.abs(ratio / med - 1.0) if ratio.size else np.zeros(0)
    return dict(
        config=config, bridge_channel=ch, points=int(len(rows)), points_all_drawn=int(full.sum()),
        zero_both=int(np.sum((m == 0) & (br == 0))), zero_only_madevent=int(np.sum((m == 0) & (br != 0))),
        zero_only_bridge=int(np.sum((br == 0) & (m != 0))), ratio_median=med,
        max_rel_deviation=float(dev.max()) if dev.size else None, n_dev_gt_1e6=int(np.sum(dev > 1e-6)),
        share_not_drawn=float(np.abs(me[~full]).sum() / max(np.abs(me).sum(), 1e-300)),
        bridge_mean=float(br.mean()), madevent_mean_normalised=float(m.mean() * med),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--proc", required=True, help="a launched `output madevent` directory (not modified)")
    ap.add_argument("--pdir", default=None, help="P directory (default: the only one)")
    ap.add_argument("--configs", default="7,1", help="comma-separated config (G tag) numbers")
    ap.add_argument("--points", type=int, default=20000)
    ap.add_argument("--work", default="/tmp/madnis_pointwise")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    proc = Path(args.proc).resolve()
    pdirs = [d.name for d in (proc / "SubProcesses").glob("P*") if (d / "configs.inc").is_file()]
    pdir = args.pdir or (pdirs[0] if len(pdirs) == 1 else None)
    if pdir is None:
        raise SystemExit(f"--pdir needed: {proc} has {sorted(pdirs)}")
    work = Path(args.work) / proc.name
    t0 = time.time()
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(proc, work, symlinks=True, ignore=shutil.ignore_patterns("Events", "madnis_bridge", "XC_*"))
    patch_sources(work / "Source")
    build(work, pdir)
    grid = work / "flat.ftn25"
    flat_grid(work / "SubProcesses" / pdir, grid)
    from madnis_plugin.bridge.process import load_process

    results = []
    with load_process(proc / "SubProcesses" / pdir, n_workers=1) as bridge:
        for c in (int(x) for x in args.configs.split(",")):
            rows = run_madevent(work / "SubProcesses" / pdir, c, args.points, grid)
            results.append(compare(bridge, c, rows))
    out = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    out[proc.name] = dict(proc=str(proc), pdir=pdir, points=args.points, wall_s=time.time() - t0, configs=results)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print("| config | points (all drawn) | zero only ME / bridge | ratio bridge/MadEvent (median) | max rel. dev. "
          "| dev > 1e-6 | bridge mean | MadEvent mean × ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['config']} | {r['points']} ({r['points_all_drawn']}) | {r['zero_only_madevent']} / "
              f"{r['zero_only_bridge']} | {r['ratio_median']:.10g} | {r['max_rel_deviation']:.2g} | "
              f"{r['n_dev_gt_1e6']} | {r['bridge_mean']:.6g} | {r['madevent_mean_normalised']:.6g} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
