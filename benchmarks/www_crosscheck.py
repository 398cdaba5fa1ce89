"""Which σ is right for u d~ > w+ w+ w-: MadEvent's classic launch (0.034909 ± 0.000070 pb) or the bridge/MadNIS
(0.035297 ± 0.000016 pb)?  Per MadEvent G directory, three estimates of the same channel integral:

* ``classic``: the numbers of the classic launch (survey + refine, nevents 10000, seed 11) recorded in
  ``benchmarks/out/mg5_side_by_side.json`` (key ``www``).
* ``madevent``: MadEvent's own ``madevent`` executable of the P directory, run by hand in a private sub-directory
  ``XC_<tag>_{adapt,fixed}`` of the P directory (MadEvent's integrand, mapping, symmetric-copy/BW-tag handling,
  random numbers; nothing of this project is involved):
  1. ``adapt``: ``input_app.txt`` = ``ncall itmax itmin / accuracy / 2 (adapt grid) / 1 / 0 (helicity sum) / tag``
     like the survey, more points; MadEvent writes the adapted grid ``ftn26``.
  2. ``fixed``: that ``ftn26`` as ``ftn25``, ``use_cut = 0`` (grid frozen), another seed (``moffset.dat``),
     many more points. On a frozen grid every iteration is an unbiased estimate of the channel integral; the
     estimate reported here is their plain point-weighted mean over the iterations MadEvent lists in
     ``results.dat`` (the last three; iteration k has ncall·2^(k-1) points), error from the per-iteration errors.
  MadEvent's *own* combination (``results.dat`` line 1, weights xmean²/xsigma² = 1/relative-variance of each
  iteration, last three iterations) is recorded next to it as ``madevent_combined``.
* ``bridge``: ``madnis_plugin.bridge.load_process`` on the same P directory, one VEGAS grid per channel (64 bins,
  ``--bridge-adapt`` iterations of ``--bridge-adapt-n`` points on α_c·w), then ``--bridge-n`` points on the frozen
  grid; mean and standard error of α_c·w·(dr/du). A G directory's value is the sum over its config and the
  configs symfact.dat marks as its copies (MadEvent's G directory integrates those through its J selection).

Pulls are (a − b)/sqrt(δa² + δb²). Runs one process at a time (madevent, then one bridge worker).

Two further parts probe MadEvent's sampling (both optional):

* ``--part replicas --tags 7``: ``--me-replicas`` independent frozen-grid madevent runs on the ``adapt`` grid
  (different ``moffset`` seeds): spread and mean of MadEvent's estimate of one G directory.
* ``--part sampling [--sampling-config 10]``: one config *without* its symmetric copy (madevent tag 10: MadEvent's
  DSIG integrates J = 10 only, i.e. exactly the bridge's channel 10) sampled five ways on the same integrand:
  madevent on its own adapted grid, on a flat grid (x = r: the same density as the bridge with uniform r), on the
  bridge's VEGAS grid written as ``ftn25``; the bridge with uniform r and with its VEGAS grid.

    MG5_HOME=/work/mg5 python benchmarks/www_crosscheck.py --proc /work/mg5_procs/xcheck_www \
        [--part madevent|bridge|all] [--tags 7,8,14.2] [--me-adapt-ncall 10000] [--me-fixed-ncall 100000] \
        [--bridge-n 400000]

``--proc`` should be a copy of the classic run's directory (``bench_www``) so that the ``XC_*`` folders do not land
in the benchmark's own directory. Writes (merging) ``benchmarks/out/www_crosscheck.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "out" / "www_crosscheck.json"
SIDE = Path(__file__).resolve().parent / "out" / "mg5_side_by_side.json"


# ------------------------------------------------------------------------------------------------- bookkeeping
def symfact_groups(pdir: Path) -> dict[str, list[int]]:
    """G tag -> configs it integrates (its own diagram first, then the copies symfact.dat maps onto it)."""
    tags: dict[str, list[int]] = {}
    copies: dict[int, list[int]] = {}
    rows = [ln.split() for ln in (pdir / "symfact.dat").read_text().splitlines() if ln.strip()]
    for tag, val in rows:
        v = int(val)
        base = int(tag.split(".")[0])
        if v > 0:
            tags[tag] = [base]
        elif v < 0:
            copies.setdefault(-v, []).append(base)
    for tag, cfgs in tags.items():
        cfgs.extend(sorted(copies.get(cfgs[0], [])))
    return tags


def pull(a, da, b, db) -> float:
    return (a - b) / math.sqrt(da * da + db * db) if da > 0 or db > 0 else float("nan")


# ------------------------------------------------------------------------------------------------- MadEvent
_ITER_RE = re.compile(r"^\s*(\d+)\s+([-+0-9.Ee]+)\s+([-+0-9.Ee]+)\s+([-+0-9.Ee]+)\s+([-+0-9.Ee]+)\s+([-+0-9.Ee]+)\s*$")


def parse_results_dat(path: Path) -> dict:
    lines = path.read_text().splitlines()
    head = lines[0].split()
    its = []
    for ln in lines[1:]:
        m = _ITER_RE.match(ln)
        if m:
            its.append(
                dict(it=int(m[1]), mean=float(m[2]), sigma=float(m[3]), eff=float(m[4]), wmax=float(m[5]))
            )
    return dict(
        axsec=float(head[0]), xerru=float(head[1]), nevents=int(head[3]), maxit=int(head[5]),
        xsec=float(head[9]), iterations=its,
    )


def run_madevent(pdir: Path, tag: str, name: str, ncall: int, itmax: int, use_cut: int, moffset: int,
                 ftn25: Path | None = None) -> dict:
    d = pdir / f"XC_{tag}_{name}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    (d / "input_app.txt").write_text(
        f"  {ncall} {itmax} {itmax}\n  0.00001\n  {use_cut}\n  1\n  0\n  {tag}\n"
    )
    (d / "moffset.dat").write_text(f"{moffset}\n")
    if ftn25 is not None:
        shutil.copy(ftn25, d / "ftn25")
    t0 = time.time()
    with open(d / "input_app.txt") as fin, open(d / "log.txt", "w") as fout:
        rc = subprocess.run(["../madevent"], cwd=d, stdin=fin, stdout=fout, stderr=subprocess.STDOUT).returncode
    wall = time.time() - t0
    if rc != 0 or not (d / "results.dat").exists():
        raise RuntimeError(f"madevent failed in {d} (rc={rc}); see {d / 'log.txt'}")
    res = parse_results_dat(d / "results.dat")
    log = (d / "log.txt").read_text()
    bw = [ln.strip() for ln in log.splitlines() if re.search(r"(Requiring|Excluding|No cut) BW|subdividing B\.W", ln)]
    n_iter = len(re.findall(r"^ Iteration\s+\d+\s+Mean:", log, re.M))
    its = res["iterations"]
    for it in its:
        it["points"] = ncall * 2 ** (it["it"] - 1)
    n = sum(it["points"] for it in its)
    mean = sum(it["points"] * it["mean"] for it in its) / n
    err = math.sqrt(sum((it["points"] * it["sigma"]) ** 2 for it in its)) / n
    # events.lhe is large and not needed
    (d / "events.lhe").unlink(missing_ok=True)
    return dict(
        dir=str(d), ncall=ncall, itmax_requested=itmax, n_iterations=n_iter, use_cut=use_cut, moffset=moffset,
        wall_s=wall, points_total=res["nevents"], bw_lines=bw,
        madevent_combined=dict(xsec=res["xsec"], err=res["xerru"]),
        iterations=its, points_listed=n, mean=mean, err=err,
    )


def madevent_part(pdir: Path, tags: list[str], args) -> dict:
    out = {}
    for tag in tags:
        print(f"[madevent] {tag}: adapt", flush=True)
        ad = run_madevent(pdir, tag, "adapt", args.me_adapt_ncall, args.me_adapt_it, 2, 101)
        grid = Path(ad["dir"]) / "ftn26"
        print(f"[madevent] {tag}: fixed grid", flush=True)
        fx = run_madevent(pdir, tag, "fixed", args.me_fixed_ncall, args.me_fixed_it, 0, 202, ftn25=grid)
        out[tag] = dict(adapt=ad, fixed=fx)
        print(f"   adapt: combined {ad['madevent_combined']['xsec']:.6g} +- {ad['madevent_combined']['err']:.2g}; "
              f"fixed: mean {fx['mean']:.6g} +- {fx['err']:.2g} ({fx['points_listed']} pts, {fx['wall_s']:.0f} s), "
              f"MadEvent's combination {fx['madevent_combined']['xsec']:.6g} +- {fx['madevent_combined']['err']:.2g}",
              flush=True)
    return out


def replicas_part(pdir: Path, tags: list[str], args) -> dict:
    """``--me-replicas`` independent frozen-grid madevent runs per tag (the ``adapt`` grid, seeds moffset 500+i):
    the spread of a heavy-tailed estimator (median below the mean, rare large upward jumps)."""
    out = {}
    for tag in tags:
        grid = pdir / f"XC_{tag}_adapt" / "ftn26"
        reps = []
        for i in range(args.me_replicas):
            fx = run_madevent(pdir, tag, "rep", args.me_rep_ncall, args.me_rep_it, 0, 500 + i, ftn25=grid)
            reps.append(dict(mean=fx["mean"], err=fx["err"], madevent_combined=fx["madevent_combined"],
                             points=fx["points_listed"], wmax=max(it["wmax"] for it in fx["iterations"])))
            print(f"[replica] {tag} #{i}: {fx['mean']:.6g} +- {fx['err']:.2g} (MadEvent's combination "
                  f"{fx['madevent_combined']['xsec']:.6g}), w_max {reps[-1]['wmax']:.3g}", flush=True)
        m = np.array([r["mean"] for r in reps])
        c = np.array([r["madevent_combined"]["xsec"] for r in reps])
        out[tag] = dict(
            runs=reps, ncall=args.me_rep_ncall, itmax=args.me_rep_it,
            mean_of_means=float(m.mean()), sem_of_means=float(m.std(ddof=1) / math.sqrt(len(m))),
            median_of_means=float(np.median(m)), median_reported_err=float(np.median([r["err"] for r in reps])),
            std_of_means=float(m.std(ddof=1)),
            mean_of_madevent_combined=float(c.mean()), median_of_madevent_combined=float(np.median(c)),
        )
    return out


def sampling_part(pdir: Path, c1: int, args) -> dict:
    """One config without its symmetric copy (madevent tag ``c1``, e.g. 10 = the copy of 7: MadEvent's DSIG then
    integrates J = c1 only, exactly the bridge's channel c1), sampled in four ways on the same integrand:
    madevent on its own adapted grid; madevent on a flat grid (x = r, the bridge's mapping); the bridge with r
    uniform (same density as the flat madevent run); the bridge with its VEGAS grid; madevent on the bridge's VEGAS
    grid written as ftn25 (approximate for variables with point-dependent ranges)."""
    import torch  # noqa: PLC0415

    from madnis_plugin.bridge.gridfile import MadEventGrid, read_grid, write_grid  # noqa: PLC0415
    from madnis_plugin.bridge.process import load_process  # noqa: PLC0415
    from madnis_plugin.core.vegas import VegasGrid  # noqa: PLC0415

    tag = str(c1)
    out = {}
    ad = run_madevent(pdir, tag, "adapt", args.me_adapt_ncall, args.me_adapt_it, 2, 101)
    own = run_madevent(pdir, tag, "fixed", args.me_fixed_ncall, args.me_fixed_it, 0, 202,
                       ftn25=Path(ad["dir"]) / "ftn26")
    me_grid = read_grid(Path(ad["dir"]) / "ftn26")
    write_grid(pdir / f"XC_{tag}_flat.ftn25", MadEventGrid.flat(me_grid.invar, tail=me_grid.tail))
    flat = run_madevent(pdir, tag, "flat", args.me_fixed_ncall // 2, args.me_fixed_it, 0, 404,
                        ftn25=pdir / f"XC_{tag}_flat.ftn25")

    def stats(f):
        srt = np.sort(f)[::-1]
        return dict(mean=float(f.mean()), err=float(f.std() / math.sqrt(len(f))), points=len(f), w_max=float(srt[0]),
                    top10_share=float(srt[:10].sum() / f.sum()))

    rng = np.random.default_rng(args.seed + 1)
    with load_process(pdir, n_workers=1, max_workers=2) as proc:
        D = proc.n_dims
        g0 = lambda n: torch.zeros(n, dtype=torch.int64)  # noqa: E731

        def run(n, grid=None):
            fs = []
            done = 0
            while done < n:
                m = min(50000, n - done)
                u = torch.from_numpy(rng.random((m, D)))
                r, logj = (u, torch.zeros(m, dtype=torch.float64)) if grid is None else grid.map(u, g0(m))
                ev = proc.evaluate(np.full(m, c1 - 1, np.int64), r.numpy())
                f = ev.channel_weight() * np.exp(logj.numpy())
                fs.append(np.where(np.isfinite(f), f, 0.0))
                done += m
            return np.concatenate(fs), r

        br_flat, _ = run(args.bridge_flat_n)
        grid = VegasGrid(1, D, 64)
        for _ in range(args.bridge_adapt):
            f, r = run(args.bridge_adapt_n, grid)
            grid.adapt(r, g0(r.shape[0]), torch.from_numpy(f), alpha=0.7)
        br_vegas, _ = run(args.bridge_n, grid)
    bg = MadEventGrid.from_unit_edges(grid.get_edges()[0].numpy(), tail=me_grid.tail, invar=me_grid.invar)
    write_grid(pdir / f"XC_{tag}_brgrid.ftn25", bg)
    brg = run_madevent(pdir, tag, "brgrid", args.me_fixed_ncall // 2, args.me_fixed_it, 0, 303,
                       ftn25=pdir / f"XC_{tag}_brgrid.ftn25")

    def me(fx):
        return dict(mean=fx["mean"], err=fx["err"], points=fx["points_listed"],
                    w_max_per_iteration=[it["wmax"] for it in fx["iterations"]],
                    iteration_means=[it["mean"] for it in fx["iterations"]],
                    madevent_combined=fx["madevent_combined"])

    out = dict(madevent_own_grid=me(own), madevent_flat=me(flat), madevent_bridge_grid=me(brg),
               bridge_flat=stats(br_flat), bridge_vegas=stats(br_vegas))
    for k, v in out.items():
        print(f"[sampling] tag {tag} {k}: {v['mean']:.6g} +- {v['err']:.2g} ({v['points']} pts)", flush=True)
    return {tag: out}


# ------------------------------------------------------------------------------------------------- bridge
def bridge_part(pdir: Path, channels: list[int], args) -> dict:
    import torch  # noqa: PLC0415

    from madnis_plugin.bridge.process import load_process  # noqa: PLC0415
    from madnis_plugin.core.vegas import VegasGrid  # noqa: PLC0415

    rng = np.random.default_rng(args.seed)
    out = {}
    with load_process(pdir, n_workers=1, max_workers=2) as proc:
        D = proc.n_dims
        for c1 in channels:  # 1-based config
            c = c1 - 1
            t0 = time.time()
            grid = VegasGrid(1, D, 64)
            g0 = lambda n: torch.zeros(n, dtype=torch.int64)  # noqa: E731

            def sample(n):
                u = torch.from_numpy(rng.random((n, D)))
                r, logj = grid.map(u, g0(n))
                ev = proc.evaluate(np.full(n, c, np.int64), r.numpy())
                f = ev.channel_weight() * np.exp(logj.numpy())
                f = np.where(np.isfinite(f), f, 0.0)
                return r, f, ev.status

            for _ in range(args.bridge_adapt):
                r, f, _ = sample(args.bridge_adapt_n)
                grid.adapt(r, g0(r.shape[0]), torch.from_numpy(f), alpha=0.7)
            s1 = s2 = 0.0
            n = 0
            wmax = 0.0
            status = {}
            batch = 50000
            while n < args.bridge_n:
                m = min(batch, args.bridge_n - n)
                _, f, st = sample(m)
                s1 += float(f.sum())
                s2 += float((f * f).sum())
                wmax = max(wmax, float(np.abs(f).max()))
                for k, v in zip(*np.unique(st, return_counts=True)):
                    status[int(k)] = status.get(int(k), 0) + int(v)
                n += m
            mean = s1 / n
            var = max(s2 / n - mean * mean, 0.0)
            err = math.sqrt(var / (n - 1))
            out[str(c1)] = dict(mean=mean, err=err, points=n, w_max=wmax, status=status, wall_s=time.time() - t0)
            print(f"[bridge] channel {c1}: {mean:.6g} +- {err:.2g} ({n} pts, {time.time() - t0:.0f} s)", flush=True)
    return out


# ------------------------------------------------------------------------------------------------- summary
def summarise(data: dict, groups: dict[str, list[int]]) -> list[dict]:
    classic = {}
    if SIDE.exists():
        for ch in json.loads(SIDE.read_text())["www"]["classic"]["channels"]:
            classic[ch["dir"].rsplit("/G", 1)[1]] = ch
    rows = []
    for tag, cfgs in groups.items():
        row = dict(tag=f"G{tag}", configs=cfgs)
        if tag in classic:
            row["classic"] = [classic[tag]["xsec"], classic[tag]["err"], classic[tag]["points"]]
        me = data.get("madevent", {}).get(tag)
        if me:
            row["madevent_fixed"] = [me["fixed"]["mean"], me["fixed"]["err"], me["fixed"]["points_listed"]]
            row["madevent_fixed_own_combination"] = [me["fixed"]["madevent_combined"]["xsec"],
                                                     me["fixed"]["madevent_combined"]["err"]]
        br = data.get("bridge", {})
        if all(str(c) in br for c in cfgs):
            row["bridge"] = [sum(br[str(c)]["mean"] for c in cfgs),
                             math.sqrt(sum(br[str(c)]["err"] ** 2 for c in cfgs)),
                             sum(br[str(c)]["points"] for c in cfgs)]
        for a, b in (("bridge", "madevent_fixed"), ("bridge", "classic"), ("madevent_fixed", "classic")):
            if a in row and b in row:
                row[f"pull_{a}_vs_{b}"] = pull(row[a][0], row[a][1], row[b][0], row[b][1])
                row[f"ratio_{a}_over_{b}"] = row[a][0] / row[b][0]
        rows.append(row)
    tot = {}
    for key in ("classic", "madevent_fixed", "bridge"):
        if all(key in r for r in rows):
            tot[key] = [sum(r[key][0] for r in rows), math.sqrt(sum(r[key][1] ** 2 for r in rows))]
    for a, b in (("bridge", "madevent_fixed"), ("bridge", "classic"), ("madevent_fixed", "classic")):
        if a in tot and b in tot:
            tot[f"pull_{a}_vs_{b}"] = pull(tot[a][0], tot[a][1], tot[b][0], tot[b][1])
    rows.append(dict(tag="total", **tot))
    return rows


def print_table(rows):
    def fmt(v):
        return f"{v[0]:.6g} ± {v[1]:.2g}" if v else "-"

    print("| G | configs | classic | MadEvent fixed grid | bridge (VEGAS) | pull br−ME | pull ME−classic | pull br−classic |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        p = lambda k: f"{r[k]:+.2f}" if k in r else "-"  # noqa: E731
        print(f"| {r['tag']} | {r.get('configs', '')} | {fmt(r.get('classic'))} | {fmt(r.get('madevent_fixed'))} | "
              f"{fmt(r.get('bridge'))} | {p('pull_bridge_vs_madevent_fixed')} | {p('pull_madevent_fixed_vs_classic')} "
              f"| {p('pull_bridge_vs_classic')} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proc", default="/work/mg5_procs/xcheck_www")
    ap.add_argument("--pdir", default="P1_qq_wpwpwm")
    ap.add_argument("--part", choices=("madevent", "bridge", "all", "summary", "replicas", "sampling"), default="all")
    ap.add_argument("--tags", default="", help="comma-separated G tags (default: every G of symfact.dat)")
    ap.add_argument("--me-adapt-ncall", type=int, default=10000)
    ap.add_argument("--me-adapt-it", type=int, default=5)
    ap.add_argument("--me-fixed-ncall", type=int, default=100000)
    ap.add_argument("--me-fixed-it", type=int, default=3)
    ap.add_argument("--me-replicas", type=int, default=12)
    ap.add_argument("--sampling-config", type=int, default=10)
    ap.add_argument("--bridge-flat-n", type=int, default=1500000)
    ap.add_argument("--me-rep-ncall", type=int, default=10000)
    ap.add_argument("--me-rep-it", type=int, default=3)
    ap.add_argument("--bridge-adapt", type=int, default=6)
    ap.add_argument("--bridge-adapt-n", type=int, default=20000)
    ap.add_argument("--bridge-n", type=int, default=400000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()

    pdir = Path(args.proc) / "SubProcesses" / args.pdir
    groups = symfact_groups(pdir)
    tags = [t for t in args.tags.split(",") if t] or list(groups)
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {}
    data.setdefault("process", "u d~ > w+ w+ w-")
    data["proc_dir"] = str(Path(args.proc))
    data["groups"] = groups
    settings = data.setdefault("settings", {})
    if args.part in ("madevent", "all"):
        settings["madevent"] = dict(adapt_ncall=args.me_adapt_ncall, adapt_it=args.me_adapt_it,
                                    fixed_ncall=args.me_fixed_ncall, fixed_it=args.me_fixed_it)
        data.setdefault("madevent", {}).update(madevent_part(pdir, tags, args))
        out.write_text(json.dumps(data, indent=1))
    if args.part == "sampling":
        data.setdefault("sampling", {}).update(sampling_part(pdir, args.sampling_config, args))
        out.write_text(json.dumps(data, indent=1))
    if args.part == "replicas":
        settings["replicas"] = dict(n=args.me_replicas, ncall=args.me_rep_ncall, it=args.me_rep_it)
        data.setdefault("replicas", {}).update(replicas_part(pdir, tags, args))
        out.write_text(json.dumps(data, indent=1))
    if args.part in ("bridge", "all"):
        settings["bridge"] = dict(adapt=args.bridge_adapt, adapt_n=args.bridge_adapt_n, n=args.bridge_n,
                                  seed=args.seed, grouped=os.environ.get("MADNIS_MG5_GROUPED", "sample"))
        channels = sorted({c for t in tags for c in groups[t]})
        data.setdefault("bridge", {}).update(bridge_part(pdir, channels, args))
        out.write_text(json.dumps(data, indent=1))
    data["summary"] = summarise(data, groups)
    out.write_text(json.dumps(data, indent=1))
    print_table(data["summary"])


if __name__ == "__main__":
    main()
