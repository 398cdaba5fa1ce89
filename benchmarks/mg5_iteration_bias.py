"""How MadEvent combines its iterations, and what its own iterations give when averaged with fixed weights.

    python benchmarks/mg5_iteration_bias.py --proc /work/mg5_procs/bench_www [--label www_100k_seed12] \
        [--snapshot /path/to/results_snapshot.tgz]

After a classic launch every channel job's ``results.dat`` (``SubProcesses/P*/G<tag>/`` and the refine's split jobs
``G<tag>a0``, ``G<tag>b1``, …) lists its last iterations: index k, mean, σ. MadEvent combines them with weights
(mean/σ)² (``dsample.f``, "Results Last 3 iters") and MG5 combines the split jobs of a channel likewise. With
heavy-tailed weights that combination is biased low: an iteration that happens to draw one of the rare large
weights has a larger mean *and* a much larger σ, so it is down-weighted, while iterations that missed the tail keep
their full weight. Each iteration's mean is an unbiased estimate of the channel integral (whatever the grid), so any
combination with weights fixed in advance is unbiased; this script uses weights ∝ the iteration's points (MadEvent
doubles the points each iteration: ∝ 2^k) and, across the split jobs of a channel, ∝ the job's listed points.

Per channel (G tag) and in total it prints MadEvent's own combination (``G<tag>/results.dat``, what MG5 reports) next
to the fixed-weight average of the same iterations, and writes ``benchmarks/out/mg5_iteration_bias.json`` (key:
``--label``). Reads MadEvent's output only; runs nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import tarfile
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out" / "mg5_iteration_bias.json"
SPLIT = re.compile(r"^G(?P<tag>\d+(?:\.\d+)?)(?P<job>[a-z]+\d+)$")
MAIN = re.compile(r"^G(?P<tag>\d+(?:\.\d+)?)$")


def read_results(path: Path) -> dict | None:
    """First line (combined mean, error, points) and the iteration lines (k, mean, σ) of a ``results.dat``."""
    lines = path.read_text().splitlines()
    if not lines:
        return None
    head = lines[0].split()
    its = []
    for ln in lines[1:]:
        parts = ln.split()
        if len(parts) == 6 and parts[0].isdigit():
            its.append((int(parts[0]), float(parts[1]), float(parts[2])))
    return dict(mean=float(head[0]), err=float(head[1]), points=int(head[3]), iterations=its)


def fixed_weight(its: list[tuple[int, float, float]]) -> tuple[float, float, float]:
    """(mean, error, weight) of iterations averaged with weights ∝ 2^k (∝ their points)."""
    w = [2.0 ** k for k, _, _ in its]
    s = sum(w)
    mean = sum(wi * m for wi, (_, m, _) in zip(w, its)) / s
    err = math.sqrt(sum((wi * sg) ** 2 for wi, (_, _, sg) in zip(w, its))) / s
    return mean, err, s


def job_estimate(its: list[tuple[int, float, float]], positional: bool = False) -> tuple[float, float]:
    """One job's (mean, error) from its listed iterations with weights ∝ 2^k (k its iteration number, or its
    position in the list when the numbers were rewritten by MG5's combination)."""
    if positional:
        its = [(i + 1, m, sg) for i, (_, m, sg) in enumerate(its)]
    mean, err, _ = fixed_weight(its)
    return mean, err


def channel_jobs(g: Path, main: dict, split: dict[str, dict]) -> tuple[list[tuple[float, float]], str]:
    """The channel's jobs as (mean, error) pairs and how they were found. MG5's refine runs a channel as
    ``multijob.dat`` jobs in ``G<tag>a0``, ``G<tag>b0``, … and ``combine_runs`` writes the plain average of their
    results into ``G<tag>/results.dat`` with every job's iteration lines concatenated."""
    if split:
        return [job_estimate(r["iterations"]) for r in split.values() if r["iterations"]], "split job folders"
    njobs = int((g / "multijob.dat").read_text().split()[0]) if (g / "multijob.dat").is_file() else 0
    its = main["iterations"]
    if njobs > 1:
        if len(its) % njobs:
            raise ValueError(f"{g}: {len(its)} iteration lines do not split into {njobs} jobs")
        per = len(its) // njobs
        return [job_estimate(its[i * per:(i + 1) * per], positional=True) for i in range(njobs)], \
            f"{njobs} jobs × {per} iterations in results.dat"
    return [job_estimate(its)], "one job"


def analyse(sub: Path) -> dict:
    channels: dict[str, dict] = {}
    for pdir in sorted(p for p in sub.glob("P*") if p.is_dir()):
        for g in sorted(pdir.glob("G*")):
            m_main, m_split = MAIN.match(g.name), SPLIT.match(g.name)
            if not (m_main or m_split) or not (g / "results.dat").is_file():
                continue
            tag = f"{pdir.name}/G{(m_main or m_split)['tag']}"
            r = read_results(g / "results.dat")
            if r is None:
                continue
            ch = channels.setdefault(tag, dict(main=None, dir=pdir / f"G{(m_main or m_split)['tag']}", jobs={}))
            if m_main:
                ch["main"] = r
            else:
                ch["jobs"][m_split["job"]] = r
    rows = []
    for tag, ch in sorted(channels.items()):
        main = ch["main"]
        if main is None or main["mean"] == 0 or not main["iterations"]:
            continue
        jobs, how = channel_jobs(ch["dir"], main, ch["jobs"])
        # across jobs: the plain average, as MG5's combine_runs does (fixed weights, no bias)
        fw_mean = sum(m for m, _ in jobs) / len(jobs)
        fw_err = math.sqrt(sum(e ** 2 for _, e in jobs)) / len(jobs)
        rows.append(dict(channel=tag, madevent=main["mean"], madevent_err=main["err"], points=main["points"],
                         jobs=len(jobs), jobs_from=how, fixed_weight=fw_mean, fixed_weight_err=fw_err,
                         ratio=fw_mean / main["mean"]))
    tot_me = sum(r["madevent"] for r in rows)
    tot_me_err = math.sqrt(sum(r["madevent_err"] ** 2 for r in rows))
    tot_fw = sum(r["fixed_weight"] for r in rows)
    tot_fw_err = math.sqrt(sum(r["fixed_weight_err"] ** 2 for r in rows))
    return dict(channels=rows, total_madevent=tot_me, total_madevent_err=tot_me_err, total_fixed_weight=tot_fw,
                total_fixed_weight_err=tot_fw_err)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--proc", help="launched `output madevent` directory (reads its SubProcesses/)")
    ap.add_argument("--snapshot", help="instead: a .tgz of SubProcesses/P*/G*/results.dat taken after a launch")
    ap.add_argument("--label", required=True, help="key in the JSON, e.g. www_100k_seed12")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    if bool(args.proc) == bool(args.snapshot):
        raise SystemExit("give exactly one of --proc and --snapshot")
    if args.snapshot:
        with tempfile.TemporaryDirectory() as tmp:
            with tarfile.open(args.snapshot) as tf:
                tf.extractall(tmp, filter="data")
            res = analyse(Path(tmp) / "SubProcesses")
    else:
        res = analyse(Path(args.proc) / "SubProcesses")
    res["source"] = args.snapshot or args.proc
    out = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    out[args.label] = res
    Path(args.out).write_text(json.dumps(out, indent=1))
    print("| channel | jobs | points | MadEvent's result | fixed-weight average of its iterations | ratio |")
    print("|---|---|---|---|---|---|")
    for r in res["channels"]:
        print(f"| {r['channel']} | {r['jobs']} | {r['points']} | {r['madevent']:.6g} ± {r['madevent_err']:.2g} "
              f"| {r['fixed_weight']:.6g} ± {r['fixed_weight_err']:.2g} | {r['ratio']:.4f} |")
    print(f"| **total** | | | {res['total_madevent']:.6g} ± {res['total_madevent_err']:.2g} | "
          f"{res['total_fixed_weight']:.6g} ± {res['total_fixed_weight_err']:.2g} | "
          f"{res['total_fixed_weight'] / res['total_madevent']:.4f} |")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
