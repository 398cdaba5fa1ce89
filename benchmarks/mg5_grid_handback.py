"""Do the grids MadNIS writes back help MadEvent alone?  Classic MadEvent runs with and without them, real MG5.

    MG5_HOME=/work/mg5 python benchmarks/mg5_grid_handback.py \
        --proc 'ppee:p p > e+ e-' --proc 'www:u d~ > w+ w+ w-' --nevents 10000 [--seed 11] \
        [--madnis-set n_steps=2000 ...] [--only-arm ...]

How MadEvent picks up a grid (MG5 3.5.7, read in ``Template/LO/SubProcesses/{survey,refine}.sh`` and
``madgraph/madevent/gen_ximprove.py``): the **survey** never does (``survey.sh`` deletes ``ftn25``/``ftn26`` of every
channel it starts, gensym deletes ``results.dat``); the **refine** reads ``G<tag>/results.dat`` (σ per channel decides
which channels need events, and how many) and, for a channel run as one job, copies ``G<tag>/ftn26`` to ``ftn25`` and
runs MadEvent with that grid fixed (``grid_refinment 0``; "Grid read from file" in the log). A channel that needs more
than ``refine_evt_by_job`` (default 1000) events is split into jobs ``G<tag>a0, G<tag>b0, ...`` that start from
MadEvent's default grid (no ``ftn26`` copied unless ``keep_grid_for_refine``). So the route that uses the MadNIS grids
is the plugin's ``madnis_refine`` (``madnis-mg5 refine PROC``; launch.prepare_classic_refine): no survey; every
``G*/results.dat`` of the MadNIS run with its event counts set to 0 and ``G*/events.lhe`` removed (so MadEvent refines
every channel with σ > 0 itself; ``madnis_dropped`` channels keep σ = 0 and are skipped); one refine job per channel
(``refine_evt_by_job`` = 1e9 unless the card sets it); then MG5's own refine, combine_events, store_events.

Per process, on a fresh copy ``<procs-root>/scratch/handback_<name>`` of ``bench_<name>`` (same seed and nevents for
every launch, ``nb_core 1``; ``keep_log = debug`` for the refine launches so the per-channel MadEvent logs are kept), through the MG5 shell
with the plugin on PYTHONPATH (as benchmarks/mg5_side_by_side.py):

1. ``classic``: ``False = madnis``: MadEvent's survey + refine, default grids (reference).
2. ``madnis``: ``True = madnis`` (writes ``G*/ftn26``, ``G*/results.dat``, ``G*/madnis_dropped``).
3. ``refine_madnis_grids``: ``madnis_refine`` on what (2) left (MG5 shell ``launch DIR -f`` with the request
   ``MADNIS_REQUEST={"refine": true}``, i.e. what ``madnis_refine DIR`` / ``madnis-mg5 refine DIR`` do).
4. ``refine_default_grids``: the same, after restoring (2)'s G directories and deleting every ``G*/ftn26``: same
   σ per channel and job plan, but MadEvent starts each channel from its default grid (and adapts it).

Figures per launch: σ ± error (``SubProcesses/results.dat``), ME calls = PS points MadEvent evaluated (column 4 of every
distinct version of ``G<tag>/results.dat`` polled during the launch, as mg5_side_by_side.py; the MadNIS versions the
refine starts from are excluded; for the classic run, whose split refine jobs update the parent results.dat with
partial sums, the survey version (the smallest) + the final version), unweighting efficiency ε = [Σ_c (σ_c/σ)/ε_c]⁻¹ with ε_c = nunwgt/nevents, per-channel
σ ± error, number of channel logs with "Grid read from file". Writes ``benchmarks/out/mg5_grid_handback.json`` and a
Markdown table (``benchmarks/out/mg5_grid_handback.md``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mg5_side_by_side import (  # noqa: E402
    HEADER,
    add_launch_args,
    common_card_entries,
    classic_stats,
    launch_env,
    lhe_init,
    madnis_card_entries,
    new_run,
    read_results_dat,
    run_mg5,
    set_card,
)

OUT = Path(__file__).resolve().parent / "out" / "mg5_grid_handback.json"
ARMS = ("classic", "madnis", "refine_madnis_grids", "refine_default_grids")


def gdirs(proc_dir: Path) -> list[Path]:
    return [g for g in sorted(proc_dir.glob("SubProcesses/P*/G*")) if re.fullmatch(r"G[0-9.]+", g.name)]


SNAP_FILES = ("results.dat", "ftn26", "madnis_dropped", "events.lhe")


def snapshot(proc_dir: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    for g in gdirs(proc_dir):
        d = dest / g.relative_to(proc_dir)
        d.mkdir(parents=True)
        for f in SNAP_FILES:
            if (g / f).exists():
                shutil.copy2(g / f, d / f)


def restore(proc_dir: Path, src: Path) -> None:
    for g in gdirs(proc_dir):
        for f in SNAP_FILES + ("ftn25",):
            if (g / f).exists():
                (g / f).unlink()
        s = src / g.relative_to(proc_dir)
        for f in SNAP_FILES:
            if (s / f).exists():
                shutil.copy2(s / f, g / f)


def grid_reads(proc_dir: Path, run: str) -> dict:
    """Channel logs of this run (keep_log = debug: G*/<run>_app.log) and how many say 'Grid read from file'."""
    logs = [f for f in proc_dir.glob(f"SubProcesses/P*/G*/{run}_app.log")]
    n_read = sum(1 for f in logs if "Grid read from file" in f.read_text(errors="replace"))
    return {"logs": len(logs), "grid_read_from_file": n_read}


def exclude_versions(seen: dict[str, set], before: dict[str, str]) -> dict[str, set]:
    """Drop results.dat versions that are the MadNIS ones the refine started from (same σ and point count)."""
    out = {}
    for g, versions in seen.items():
        ref = before.get(g)
        keep = set()
        for v in versions:
            if ref is not None and v.split("\n", 1)[0].split()[:4] == ref.split("\n", 1)[0].split()[:4]:
                continue
            keep.add(v)
        if keep:
            out[g] = keep
    return out


def survey_plus_final(proc_dir: Path, seen: dict[str, set]) -> int:
    n = 0
    for g, versions in seen.items():
        pts = [int(float(v.split("\n", 1)[0].split()[3])) for v in versions]
        final = int(read_results_dat(proc_dir / g / "results.dat")[3])
        n += final + (min(pts) if len(pts) > 1 else 0)
    return n


def madnis_channels(proc_dir: Path) -> list[dict]:
    chans = []
    for g in gdirs(proc_dir):
        if not (g / "results.dat").exists():
            continue
        c = read_results_dat(g / "results.dat")
        chans.append({"dir": str(g.relative_to(proc_dir)), "xsec": c[0], "err": c[1], "points": int(c[3]),
                      "dropped": (g / "madnis_dropped").exists(), "has_ftn26": (g / "ftn26").exists()})
    return chans


def main() -> None:
    ap = argparse.ArgumentParser()
    add_launch_args(ap)
    ap.add_argument("--arms", nargs="*", default=list(ARMS), choices=ARMS)
    ap.add_argument("--fresh", action="store_true", help="recopy the scratch directory from bench_<name>")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()

    root = Path(args.procs_root)
    env0 = launch_env(root, args.grouped)
    env0.pop("MADNIS_REQUEST", None)
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    madnis_card = madnis_card_entries(args.madnis_set, madnis_write_grids="True")
    common = common_card_entries(args)

    for spec in args.proc:
        name, process = spec.split(":", 1)
        src = root / f"bench_{name}"
        proc_dir = root / "scratch" / f"handback_{name}"
        snap = root / "scratch" / f"handback_{name}_madnis_gdirs"
        if args.fresh or not proc_dir.exists():
            if proc_dir.exists():
                shutil.rmtree(proc_dir)
            shutil.copytree(src, proc_dir, symlinks=True)
            for d in (proc_dir / "Events").glob("run_*"):
                shutil.rmtree(d)
        row = results.get(name, {})
        row.update({"process": process, "proc_dir": str(proc_dir), "nevents": args.nevents, "seed": args.seed})
        card = proc_dir / "Cards" / "run_card.dat"
        for arm in ARMS:
            if arm not in args.arms:
                continue
            env = dict(env0)
            before_texts: dict[str, str] = {}
            # keep_log = debug (per-channel logs kept, for "Grid read from file") only for the refine arms: it also
            # keeps ftn26 in split refine jobs, which changes a classic run's second refine
            card_common = {**common, "keep_log": "debug" if arm.startswith("refine") else "normal"}
            if arm == "madnis":
                set_card(card, card_common, madnis_card)
            else:
                set_card(card, card_common, {"madnis": "False"})
            if arm.startswith("refine"):
                if not snap.exists():
                    raise RuntimeError(f"run the madnis arm first (no {snap})")
                restore(proc_dir, snap)
                if arm == "refine_default_grids":
                    for g in gdirs(proc_dir):
                        for f in ("ftn26", "ftn25"):
                            if (g / f).exists():
                                (g / f).unlink()
                env["MADNIS_REQUEST"] = json.dumps({"refine": True})
                before_texts = {str(g.relative_to(proc_dir)): (g / "results.dat").read_text()
                                for g in gdirs(proc_dir) if (g / "results.dat").exists()}
            before = set(p.name for p in (proc_dir / "Events").glob("run_*"))
            print(f"[{name}] {arm} launch ...", flush=True)
            wall, seen = run_mg5(HEADER + [f"launch {proc_dir} -f"], proc_dir / f"handback_{arm}.log", env,
                                 poll_dir=proc_dir if arm != "madnis" else None)
            run = new_run(proc_dir, before)
            lhe = run / "unweighted_events.lhe.gz"
            xs, err, n = lhe_init(lhe)
            r = {"run": run.name, "wall_s": wall, "lhe_cross": xs, "lhe_error": err, "n_events_lhe": n,
                 "settings": {**card_common, **(madnis_card if arm == "madnis" else {"madnis": "False"}), "nb_core": "1"}}
            if arm == "madnis":
                mr = json.loads((run / "madnis_results.json").read_text())
                r.update({"cross": mr["cross"], "error": mr["error"],
                          "calls": int(mr["n_calls_training"]) + int(mr["n_calls_integration"]),
                          "calls_training": int(mr["n_calls_training"]),
                          "calls_integration": int(mr["n_calls_integration"]),
                          "unweighting_efficiency": mr["unweighting_efficiency"],
                          "n_channels": mr.get("n_channels"), "dropped_channels": mr.get("dropped_channels"),
                          "n_steps": mr.get("n_steps"), "channels": madnis_channels(proc_dir)})
                snapshot(proc_dir, snap)
            else:
                if arm.startswith("refine"):
                    seen = exclude_versions(seen, before_texts)
                    r["request"] = env["MADNIS_REQUEST"]
                r.update(classic_stats(proc_dir, seen))
                r.update(grid_reads(proc_dir, run.name))
                if arm == "classic":
                    # split refine jobs update the parent results.dat with partial sums: count the survey version
                    # (the smallest) + the final one, not every intermediate version (mg5_side_by_side.py's sum)
                    r["calls_all_versions"] = r["calls"]
                    r["calls"] = survey_plus_final(proc_dir, seen)
            r["events_per_call"] = n / r["calls"] if r["calls"] else None
            row[arm] = r
            results[name] = row
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(results, indent=1))
        results[name] = row
        out_path.write_text(json.dumps(results, indent=1))
    md = markdown(results)
    print(md)
    out_path.with_suffix(".md").write_text(md + "\n")
    print("wrote", out_path)


def markdown(results: dict) -> str:
    rows = ["| process | launch | σ (pb) | error | ME calls | ε unweight | events/call | wall (s) | logs with grid read "
            "| per-channel σ ± err (largest 3) |", "|" + "---|" * 10]
    for name, row in results.items():
        for arm in ARMS:
            r = row.get(arm)
            if not r:
                continue
            calls = (f"{r['calls_training']} + {r['calls_integration']}" if arm == "madnis" else f"{r['calls']}")
            chans = sorted(r.get("channels", []), key=lambda c: -abs(c["xsec"]))[:3]
            cs = "; ".join(f"{c['dir'].split('/')[-1]} {c['xsec']:.4g} ± {c['err']:.2g}" for c in chans)
            gr = f"{r['grid_read_from_file']}/{r['logs']}" if "logs" in r else ""
            eps = r.get("unweighting_efficiency")
            rows.append(f"| {row['process']} | {arm} | {r['cross']:.5g} | {r['error']:.2g} | {calls} | "
                        f"{eps:.3g} | {r['events_per_call']:.3g} | {r['wall_s']:.0f} | {gr} | {cs} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
