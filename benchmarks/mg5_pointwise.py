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

PW_COMMON = """      double precision pw_u(50), pw_in(50), pw_lo(50), pw_hi(50), pw_ij(50)
      integer pw_n(50), pw_src, pw_mode
      common /madnis_pw/ pw_u, pw_in, pw_lo, pw_hi, pw_ij, pw_n, pw_src, pw_mode
"""
RANMAR_DECL = PW_COMMON
DSAMPLE_DECL = """      integer k_pw
      logical pw_ex
""" + PW_COMMON  # a COMMON starts zeroed (pw_mode 0 = not yet looked for points.in), like pw_n
# Before each point: with a file points.in in the run directory (--sampler vegas), the point's uniform numbers are
# the file's next row (pw_src = 1) instead of ranmar's; at its end MadEvent goes on with ranmar (pw_src = 0).
READ_POINT = """               if (pw_mode .eq. 0) then
                  inquire(file='points.in', exist=pw_ex)
                  pw_mode = 2
                  if (pw_ex) then
                     open(78, file='points.in', status='old')
                     pw_mode = 1
                  endif
               endif
               pw_src = 0
               if (pw_mode .eq. 1) then
                  read(78, *, end=9781) (pw_in(k_pw), k_pw=1, ndim)
                  pw_src = 1
                  goto 9782
 9781             pw_mode = 2
 9782             continue
               endif
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
         + "      if (ii.ge.1 .and. ii.le.50) then\n"
           "         if (pw_src.eq.1 .and. pw_n(ii).eq.0) x = pw_in(ii)\n"
           "         pw_u(ii) = x\n         pw_n(ii) = pw_n(ii) + 1\n"
           "      endif\n" + s[j:])
    f.write_text(s)
    f = src / "dsample.f"
    s = f.read_text()
    i = s.index("      subroutine sample_full(")
    k = s.index("      implicit none\n", i) + len("      implicit none\n")
    s = s[:k] + DSAMPLE_DECL + s[k:]
    before = "            call x_to_f_arg(ndim,ipole,mincfig,maxcfig,ninvar,wgt,x,p)\n"
    j = s.index(before, i)
    s = s[:j] + READ_POINT + s[j:]
    anchor = "               fx = dsig(p,wgt,0) !Evaluate function\n               wgt = wgt*fx\n"
    j = s.index(anchor, i) + len(anchor)
    s = (s[:j]
         + "               write(77,'(300e25.16)') (pw_u(k_pw),k_pw=1,ndim), wgt,\n"
           "     &              (dble(pw_n(k_pw)),k_pw=1,ndim), dble(pw_src),\n"
           "     &              (pw_lo(k_pw),k_pw=1,ndim), (pw_hi(k_pw),k_pw=1,ndim),\n"
           "     &              (pw_ij(k_pw),k_pw=1,ndim)\n"
           "               do k_pw = 1, 50\n                  pw_n(k_pw) = 0\n               enddo\n"
         + s[j:])
    # sample_get_x: the bin-coordinate range [xbin(xmin), xbin(xmax)] ntuple draws in and the grid row (Minvar) of
    # every variable, so that MadEvent's own grid density can be evaluated at any point (madevent_grid_density)
    i = s.index("      subroutine sample_get_x(")
    k = s.index("      implicit none\n", i) + len("      implicit none\n")
    s = s[:k] + PW_COMMON + s[k:]
    call = "            call ntuple(ddum(j), xbin_min,xbin_max, j, ipole)\n"
    j = s.index(call, i) + len(call)
    s = (s[:j] + "            if (j.ge.1 .and. j.le.50) then\n               pw_lo(j) = xbin_min\n"
         "               pw_hi(j) = xbin_max\n               pw_ij(j) = dble(minvar(j,ipole))\n            endif\n"
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


def run_madevent(p: Path, config: int, points: int, grid: Path, r_in: np.ndarray | None = None) -> np.ndarray:
    """Rows of unit 77 (u_1..u_D, wgt·DSIG, draw counts per index, 1 if the point's u came from ``r_in``)."""
    d = p / f"PW_{config}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    shutil.copy(grid, d / "ftn25")
    if r_in is not None:
        np.savetxt(d / "points.in", r_in, fmt="%.17e")
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
    u, me, cnt = rows[:, :nd], rows[:, nd], rows[:, nd + 1: 2 * nd + 1]
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


def vegas_points(proc, ch: int, n: int, n_adapt: int, adapt_n: int, seed: int):
    """The bridge's own VEGAS grid for channel ``ch`` (64 bins, adapted ``n_adapt`` times on ``adapt_n`` points of
    α_c·w), then ``n`` points r drawn from it: r float64 [n, D] and the Jacobian dr/du float64 [n] (1/q(r))."""
    import torch  # noqa: PLC0415

    from madnis_plugin.core.vegas import VegasGrid  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    D = proc.n_dims
    grid = VegasGrid(1, D, 64)
    g0 = lambda m: torch.zeros(m, dtype=torch.int64)  # noqa: E731
    for _ in range(n_adapt):
        r, logj = grid.map(torch.from_numpy(rng.random((adapt_n, D))), g0(adapt_n))
        ev = proc.evaluate(np.full(adapt_n, ch), r.numpy())
        f = ev.weight * ev.alpha[:, ch] * np.exp(logj.numpy())
        grid.adapt(r, g0(adapt_n), torch.from_numpy(np.where(np.isfinite(f), f, 0.0)), alpha=0.7)
    r, logj = grid.map(torch.from_numpy(rng.random((n, D))), g0(n))
    return r.numpy(), np.exp(logj.numpy())


def read_grid_edges(path: str) -> np.ndarray:
    from madnis_plugin.bridge.gridfile import read_grid  # noqa: PLC0415

    return read_grid(path).edges


def madevent_grid_density(rows: np.ndarray, nd: int, edges: np.ndarray, per_dim: bool = False) -> np.ndarray:
    """MadEvent's sampling density in the bridge's r-space, q_ME(r) float64 [n], had it drawn these points with the
    grid ``edges`` (float64 [invar, 96], upper bin edges in [-1, 1], e.g. a G directory's ``ftn26``).

    For variable j MadEvent draws the bin coordinate b uniformly in [xbin(xmin), xbin(xmax)] and maps it through the
    grid (dsample.f ``sample_get_x``); the bridge runs the same code on the flat grid, so r_j = (b_flat − lo)/(hi − lo)
    and y = −1 + 2 b_flat/96 (the transpole of BW variables comes after y and is common to both). With the grid G,
    the density of y is xbin_G'(y)/(xbin_G(y_hi) − xbin_G(y_lo)); relative to the flat grid's 1/(y_hi − y_lo) that is
    the density of r_j. The product over j (conditional ranges included) integrates to 1 over the unit cube.
    ``per_dim``: the factors float64 [n, D] instead of their product."""
    lo, hi = rows[:, 2 * nd + 2: 3 * nd + 2], rows[:, 3 * nd + 2: 4 * nd + 2]
    ij = rows[:, 4 * nd + 2: 5 * nd + 2].astype(np.int64)
    u = rows[:, :nd]
    n = rows.shape[0]
    full = np.concatenate([np.full((edges.shape[0], 1), -1.0), edges], axis=1)  # [invar, 97]: lower edge of bin 1

    def xbin(y, row):  # bin coordinate of grid value y in grid row `row` (piecewise-linear inverse of the grid)
        e = full[row]  # [n, 97]
        i = np.clip((e[:, 1:] <= y[:, None]).sum(axis=1) + 1, 1, 96)  # bin whose upper edge is the first > y
        lo_e, up_e = np.take_along_axis(e, (i - 1)[:, None], 1)[:, 0], np.take_along_axis(e, i[:, None], 1)[:, 0]
        return i - 1 + (y - lo_e) / (up_e - lo_e), 1.0 / (up_e - lo_e)

    q = np.ones((n, nd))
    for j in range(nd):
        row = ij[:, j] - 1
        ok = row >= 0
        b = lo[:, j] + u[:, j] * (hi[:, j] - lo[:, j])
        y, ylo, yhi = (-1.0 + 2.0 * v / 96.0 for v in (b, lo[:, j], hi[:, j]))
        bg, dbg = xbin(y[ok], row[ok])
        blo, _ = xbin(ylo[ok], row[ok])
        bhi, _ = xbin(yhi[ok], row[ok])
        q[ok, j] = dbg * (yhi[ok] - ylo[ok]) / (bhi - blo)
    return q if per_dim else q.prod(axis=1)


def tail_analysis(fb: np.ndarray, jac: np.ndarray, q_dims: np.ndarray, r: np.ndarray, ij: np.ndarray,
                  n_me: int) -> dict:
    """Where MadEvent's grid puts the channel integral, estimated on the bridge's VEGAS sample (f·J, J = 1/q_V):
    MadEvent's weight at each point is w_ME = f/q_ME; the share of the integral carried by points whose w_ME exceeds
    K × the integral, and the number of such points a MadEvent run of ``n_me`` points expects to draw (n_me ×
    E_qV[q_ME/q_V · 1{w_ME > K·I}]). A share whose expected count is ≪ 1 is missing from a typical MadEvent run.
    For the points beyond 10⁶ × the integral: which variable's grid factor q_j is the smallest, and where in r_j."""
    q_me = q_dims.prod(axis=1)
    f = fb / jac  # the integrand in r-space
    w_v = fb
    integral = w_v.mean()
    w_me = np.where(q_me > 0, f / np.where(q_me > 0, q_me, 1.0), np.inf)
    k = w_me / integral
    rows = []
    for K in (1e2, 1e3, 1e4, 1e5, 1e6, 1e7):
        sel = k > K
        rows.append(dict(K=K, share=float(w_v[sel].sum() / w_v.sum()),
                         expected_madevent_points=float(n_me * np.mean(np.where(sel, q_me * jac, 0.0))),
                         bridge_points=int(sel.sum())))
    far = k > 1e6
    where = []
    if far.any():
        jmin = np.argmin(q_dims[far], axis=1)
        for j in np.unique(jmin):
            sel = jmin == j
            share = float(w_v[far][sel].sum() / w_v.sum())
            rj = r[far][sel, j]
            where.append(dict(variable=int(j) + 1, grid_row=int(ij[far][sel, j][0]), share=share,
                              points=int(sel.sum()), r_quantiles=[float(x) for x in np.quantile(rj, [0, .5, 1])],
                              median_q_j=float(np.median(q_dims[far][sel, j]))))
        where.sort(key=lambda d: -d["share"])
    return dict(norm_check_mean_qme_over_qv=float(np.mean(q_me * jac)), n_madevent=n_me, integral=float(integral),
                max_w_me_over_integral=float(np.max(k[np.isfinite(k)])), thresholds=rows,
                beyond_1e6_smallest_grid_factor=where)


def compare_sampled(proc, config: int, rows: np.ndarray, r: np.ndarray, jac: np.ndarray,
                    me_grid: np.ndarray | None = None, n_me: int = 0) -> dict:
    """MadEvent's weight at the bridge's VEGAS points against the bridge's, and both importance-sampling estimates
    of the channel integral on those same points (bridge: mean of α_c·w·J; MadEvent: its constant × mean of
    wgt·DSIG·J, the constant being the median per-point ratio, as in :func:`compare`)."""
    nd = proc.n_dims
    ch = list(proc.info.subprocesses[0].channel_diagram).index(config)
    from_file = rows[rows[:, 2 * nd + 1] == 1]
    if len(from_file) != len(r):
        raise RuntimeError(f"config {config}: madevent read {len(from_file)} of the {len(r)} points of points.in")
    u, me, cnt = from_file[:, :nd], from_file[:, nd], from_file[:, nd + 1: 2 * nd + 1]
    full = (cnt == 1).all(axis=1)
    u_dev = float(np.abs(u[full] - r[full]).max()) if full.any() else None  # alignment: madevent used r as u
    ev = proc.evaluate(np.full(len(r), ch), r)
    br = ev.weight * ev.alpha[:, ch]
    both = full & (me != 0) & (br != 0)
    ratio = br[both] / me[both]
    med = float(np.median(ratio))
    dev = np.abs(ratio / med - 1.0)
    fb, fm = br * jac, np.where(full, me, 0.0) * med * jac
    n = len(r)
    srt = np.sort(fb)[::-1]
    tails = None
    if me_grid is not None:
        q_dims = madevent_grid_density(from_file, nd, me_grid, per_dim=True)
        ij = from_file[:, 4 * nd + 2: 5 * nd + 2].astype(np.int64)
        tails = tail_analysis(fb[full], jac[full], q_dims[full], r[full], ij[full], n_me)
    return dict(
        tails_on_madevent_grid=tails,
        config=config, bridge_channel=ch, sampler="bridge VEGAS (64 bins)", points=n,
        points_all_drawn=int(full.sum()), max_abs_u_minus_r=u_dev,
        zero_only_madevent=int(np.sum(full & (me == 0) & (br != 0))),
        zero_only_bridge=int(np.sum(full & (br == 0) & (me != 0))), ratio_median=med,
        max_rel_deviation=float(dev.max()), n_dev_gt_1e6=int(np.sum(dev > 1e-6)),
        share_not_drawn=float(np.abs(br[~full] * jac[~full]).sum() / max(np.abs(fb).sum(), 1e-300)),
        bridge_integral=float(fb.mean()), bridge_integral_err=float(fb.std() / np.sqrt(n)),
        madevent_integral_normalised=float(fm.mean()), madevent_integral_err=float(fm.std() / np.sqrt(n)),
        w_max_over_mean=float(srt[0] / fb.mean()), top10_share=float(srt[:10].sum() / fb.sum()),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--proc", required=True, help="a launched `output madevent` directory (not modified)")
    ap.add_argument("--pdir", default=None, help="P directory (default: the only one)")
    ap.add_argument("--configs", default="7,1", help="comma-separated config (G tag) numbers")
    ap.add_argument("--points", type=int, default=20000)
    ap.add_argument("--work", default="/tmp/madnis_pointwise")
    ap.add_argument("--sampler", choices=["flat", "vegas"], default="flat",
                    help="flat: MadEvent draws u (flat grid); vegas: the bridge's VEGAS grid draws r, madevent reads "
                         "them (points.in) and both integrate the channel on those points")
    ap.add_argument("--vegas-adapt", type=int, default=6)
    ap.add_argument("--vegas-adapt-n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--madevent-grid", default=None,
                    help="with --sampler vegas and one config: a MadEvent grid (ftn26 of that G directory) whose "
                         "density is evaluated at the VEGAS points (share of the integral MadEvent rarely samples)")
    ap.add_argument("--madevent-points", type=int, default=13685470,
                    help="points of the MadEvent run the --madevent-grid tail analysis refers to")
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
            if args.sampler == "flat":
                rows = run_madevent(work / "SubProcesses" / pdir, c, args.points, grid)
                results.append(compare(bridge, c, rows))
                continue
            ch = list(bridge.info.subprocesses[0].channel_diagram).index(c)
            r, jac = vegas_points(bridge, ch, args.points, args.vegas_adapt, args.vegas_adapt_n, args.seed + c)
            rows = run_madevent(work / "SubProcesses" / pdir, c, args.points, grid, r_in=r)
            me_grid = read_grid_edges(args.madevent_grid) if args.madevent_grid else None
            results.append(compare_sampled(bridge, c, rows, r, jac, me_grid, args.madevent_points))
    out = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    key = proc.name if args.sampler == "flat" else f"{proc.name}:vegas" + (":madevent_grid" if args.madevent_grid else "")
    out[key] = dict(proc=str(proc), pdir=pdir, points=args.points, sampler=args.sampler, wall_s=time.time() - t0,
                    madevent_grid=args.madevent_grid, madevent_points=args.madevent_points if args.madevent_grid else None,
                    configs=results)
    Path(args.out).write_text(json.dumps(out, indent=2))
    if args.sampler == "vegas":
        print("| config | points (all drawn) | max |u − r| | zero only ME / bridge | max rel. dev. | dev > 1e-6 "
              "| bridge ∫ (VEGAS) | MadEvent ∫ on the same points | w_max/⟨w⟩ |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in results:
            print(f"| {r['config']} | {r['points']} ({r['points_all_drawn']}) | {r['max_abs_u_minus_r']:.1g} | "
                  f"{r['zero_only_madevent']} / {r['zero_only_bridge']} | {r['max_rel_deviation']:.2g} | "
                  f"{r['n_dev_gt_1e6']} | {r['bridge_integral']:.6g} ± {r['bridge_integral_err']:.2g} | "
                  f"{r['madevent_integral_normalised']:.6g} ± {r['madevent_integral_err']:.2g} | "
                  f"{r['w_max_over_mean']:.3g} |")
        print(f"wrote {args.out}")
        return
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
