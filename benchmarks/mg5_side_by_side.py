"""MG5 classic launch (survey + refine) vs MadNIS launch, side by side on the same process directory and machine.

    MG5_HOME=/work/mg5 python benchmarks/mg5_side_by_side.py \
        --proc 'ppee:p p > e+ e-' --proc 'www:u d~ > w+ w+ w-' --nevents 10000 [--seed 11] \
        [--madnis-set n_steps=2000 ...] [--grouped sum] [--only classic|madnis]

For every ``name:process`` the directory ``<procs-root>/bench_<name>`` is generated (``output madevent``) unless it
exists, then launched twice through the MG5 shell with the plugin on ``PYTHONPATH`` (``MG5aMC_PLUGIN`` folder,
MG5 itself untouched): first ``False = madnis`` (MadEvent's survey + refine), then ``True = madnis``; same
``nevents``, ``iseed``, ``nb_core 1``, ``use_syst False``. Recorded per launch:

* σ ± error: classic from ``SubProcesses/results.dat`` (what MG5 prints); MadNIS from ``madnis_results.json``;
  both also from the LHE ``<init>`` block.
* Integrand (matrix-element) calls. MadNIS: ``n_calls_training + n_calls_integration + n_calls_events`` of
  ``Events/run_XX/madnis_results.json`` (with ``MADNIS_MG5_GROUPED=sum`` one call evaluates every (subprocess,
  mirror) with non-zero PDF weight, i.e. up to ``dsig_per_call_max[P]`` = lines of ``P/processes.dat`` (subprocess
  + mirror rows) DSIG evaluations, where MadEvent evaluates one per point). Classic: MadEvent stores no counter (mg5-internals §6);
  while the launch runs, every ``SubProcesses/P*/G<channel>/results.dat`` (not the ``G*_<i>`` split-job
  folders, whose sums land in the parent) is polled every 0.2 s and column 4 (``nevents`` = PS points the
  madevent run evaluated, survey or refine) of the first version (survey) and the last (the refine's final,
  cumulative one) are added up; versions in between are intermediate refine writes. Survey versions are
  overwritten by the refine; polling keeps both. Helicity-filtering points (``Hel``) are not counted.
* Unweighting efficiency. MadNIS: ``unweighting_efficiency`` of ``madnis_results.json`` (⟨w⟩/w_max of the refine
  sample, w_max by MadEvent's 1 % overflow rule, ``madnis_unweight_trunc``; runs before that entry existed used the
  bootstrap median of the maximum, kept as ``unweighting_efficiency_bootstrap``). Classic (§6 (ii)+(iii)): per channel ε_c = nunwgt/nevents of its last ``results.dat`` (events that
  survive the 1 %-truncated maximum per evaluated point), global ε = [Σ_c (σ_c/σ)/ε_c]⁻¹. Also reported for both:
  ``events / calls`` (final events per integrand call of the whole run).
* Wall time of the whole launch (MG5 start to end, including compilation / bridge build / training).
* Events in ``unweighted_events.lhe.gz`` and a shape comparison of the two LHE files (MG5's ``lhe_parser``):
  invariant mass of all final-state particles (m_ll for p p > e+ e-, m_WWW for u d~ > w+ w+ w-) and the leading
  final-state pT, 20 bins with equal pooled population, χ² = Σ (p1−p2)²/(n1/N1² + n2/N2²), ndf = bins − 1.

Writes ``benchmarks/out/mg5_side_by_side.json`` (merging with the targets already there) and prints a Markdown
table.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "out" / "mg5_side_by_side.json"
MG5_HOME = Path(os.environ.setdefault("MG5_HOME", "/work/mg5"))


# ---------------------------------------------------------------------------------------------------------- MG5 runs
def plugin_path(root: Path) -> Path:
    """``root/plugin_path/MG5aMC_PLUGIN/madnis`` -> ``mg5_plugin_config`` (the PYTHONPATH route)."""
    base = root / "plugin_path"
    pkg = base / "MG5aMC_PLUGIN"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").touch()
    link = pkg / "madnis"
    if not link.exists():
        link.symlink_to(REPO / "mg5_plugin_config")
    return base


def run_mg5(script_lines: list[str], log: Path, env: dict, poll_dir: Path | None = None) -> tuple[float, dict]:
    script = log.with_suffix(".mg5")
    script.write_text("\n".join(script_lines) + "\n")
    seen: dict[str, dict[str, None]] = {}  # G dir -> distinct results.dat texts in the order first seen
    stop = threading.Event()
    # results.dat files left by an earlier run (e.g. a MadNIS launch on the same directory) are not this run's
    stale: set[tuple[str, str]] = set()
    if poll_dir is not None:
        for f in poll_dir.glob("SubProcesses/P*/G*/results.dat"):
            try:
                stale.add((str(f.parent.relative_to(poll_dir)), f.read_text()))
            except OSError:
                pass

    def poll():
        while not stop.is_set():
            for f in poll_dir.glob("SubProcesses/P*/G*/results.dat"):
                if not re.fullmatch(r"G[0-9.]+", f.parent.name):
                    continue
                try:
                    txt = f.read_text()
                except OSError:
                    continue
                if not txt.strip():
                    continue
                key = str(f.parent.relative_to(poll_dir))
                if (key, txt) not in stale:
                    seen.setdefault(key, {}).setdefault(txt, None)
            stop.wait(0.2)

    th = None
    if poll_dir is not None:
        th = threading.Thread(target=poll, daemon=True)
        th.start()
    t0 = time.time()
    with open(log, "w") as fh:
        rc = subprocess.call([str(MG5_HOME / "bin" / "mg5_aMC"), str(script)], stdout=fh, stderr=subprocess.STDOUT,
                             env=env, cwd=str(log.parent))
    wall = time.time() - t0
    if th is not None:
        stop.set()
        th.join()
    if rc != 0:
        raise RuntimeError(f"MG5 failed (rc {rc}), see {log}")
    return wall, seen


HEADER = ["set auto_update 0 --no_save", "set automatic_html_opening False --no_save", "set nb_core 1 --no_save",
          "set f2py_compiler_py3 f2py --no_save"]


def set_card(card: Path, values: dict[str, str], madnis: dict[str, str]) -> None:
    """Set ``value = name`` entries of the run card and replace every ``madnis*`` line by ``madnis``."""
    lines = [ln for ln in card.read_text().splitlines()
             if not re.match(r"\s*\S+\s*=\s*madnis\w*\b", ln)]
    for name, val in values.items():
        pat = re.compile(rf"^(\s*)\S+(\s*=\s*{name}\b.*)$")
        for i, ln in enumerate(lines):
            if pat.match(ln):
                lines[i] = pat.sub(rf"\g<1>{val}\g<2>", ln)
                break
        else:
            lines.append(f" {val} = {name}")
    lines += [f" {v} = {k}" for k, v in madnis.items()]
    card.write_text("\n".join(lines) + "\n")


def new_run(proc_dir: Path, before: set[str]) -> Path:
    runs = sorted(set(p.name for p in (proc_dir / "Events").glob("run_*")) - before)
    if not runs:
        raise RuntimeError(f"no new run in {proc_dir}/Events")
    return proc_dir / "Events" / runs[-1]


# ------------------------------------------------------------------------------------------------------ read results
def read_results_dat(path: Path) -> list[float]:
    return [float(x) for x in path.read_text().split("\n", 1)[0].split()]


def classic_stats(proc_dir: Path, seen: dict[str, dict[str, None]]) -> dict:
    calls_versions = 0
    per_dir = {}
    for g, versions in seen.items():
        # the survey's results.dat (first version) + the refine's final one (last); versions in between are the
        # refine's intermediate, cumulative writes and must not be added again
        texts = list(versions)
        pts = [int(float(v.split("\n", 1)[0].split()[3])) for v in texts]
        n = pts[0] + pts[-1] if len(pts) > 1 else pts[0]
        per_dir[g] = {"versions": len(texts), "points": n, "points_per_version": pts}
        calls_versions += n
    # final per-channel numbers (§6 (ii)+(iii))
    chans = []
    for f in sorted(proc_dir.glob("SubProcesses/P*/G*/results.dat")):
        if not re.fullmatch(r"G[0-9.]+", f.parent.name):
            continue
        c = read_results_dat(f)
        chans.append({"dir": str(f.parent.relative_to(proc_dir)), "xsec": c[0], "err": c[1], "points": int(c[3]),
                      "nunwgt": int(c[6]), "eps": (c[6] / c[3]) if c[3] > 0 else 0.0})
    sig = sum(c["xsec"] for c in chans)
    inv = sum((c["xsec"] / sig) / c["eps"] for c in chans if c["xsec"] > 0 and c["eps"] > 0)
    top = read_results_dat(proc_dir / "SubProcesses" / "results.dat")
    return {"cross": top[0], "error": top[1], "calls": calls_versions,
            "calls_final_results_dat": int(sum(c["points"] for c in chans)),
            "unweighting_efficiency": 1.0 / inv if inv > 0 else None,
            "channels": chans, "points_per_G": per_dir}


def lhe_init(path: Path) -> tuple[float, float, int]:
    n = 0
    xs = err = float("nan")
    with gzip.open(path, "rt") as fh:
        in_init = 0
        for ln in fh:
            if ln.startswith("<event"):
                n += 1
            elif ln.startswith("<init>"):
                in_init = 1
            elif in_init:
                in_init += 1
                if in_init == 3:
                    p = ln.split()
                    xs, err = float(p[0]), float(p[1])
                    in_init = 0
    return xs, err, n


def readback(path: Path) -> dict:
    """Events of an LHE file as MG5's ``lhe_parser`` and ``pylhe`` read them (None where pylhe is missing), and
    whether every event's weight is the same (unweighted events)."""
    sys.path.insert(0, str(MG5_HOME))
    from madgraph.various import lhe_parser  # noqa: E402

    weights = [ev.wgt for ev in lhe_parser.EventFile(str(path))]
    out = {"n_events_lhe_parser": len(weights), "unit_weights": len(set(weights)) == 1, "n_events_pylhe": None}
    try:
        import pylhe  # noqa: PLC0415
    except ImportError:
        return out
    out["n_events_pylhe"] = sum(1 for _ in pylhe.LHEFile.fromfile(str(path), generator=False).events)
    return out


def observables(path: Path) -> dict[str, np.ndarray]:
    sys.path.insert(0, str(MG5_HOME))
    from madgraph.various import lhe_parser  # noqa: E402

    m, pt = [], []
    for ev in lhe_parser.EventFile(str(path)):
        fs = [p for p in ev if p.status == 1]
        E = sum(p.E for p in fs)
        px, py, pz = sum(p.px for p in fs), sum(p.py for p in fs), sum(p.pz for p in fs)
        m.append(math.sqrt(max(E * E - px * px - py * py - pz * pz, 0.0)))
        pt.append(max(math.hypot(p.px, p.py) for p in fs))
    return {"m_final_state": np.array(m), "pt_leading": np.array(pt)}


def chi2(a: np.ndarray, b: np.ndarray, nbins: int = 20) -> dict:
    edges = np.unique(np.quantile(np.concatenate([a, b]), np.linspace(0, 1, nbins + 1)))
    edges[-1] = np.nextafter(edges[-1], np.inf)
    n1, _ = np.histogram(a, edges)
    n2, _ = np.histogram(b, edges)
    N1, N2 = n1.sum(), n2.sum()
    ok = (n1 + n2) > 0
    c2 = float(np.sum((n1[ok] / N1 - n2[ok] / N2) ** 2 / (n1[ok] / N1**2 + n2[ok] / N2**2)))
    ndf = int(ok.sum()) - 1
    return {"chi2": c2, "ndf": ndf, "chi2_ndf": c2 / ndf, "edges": edges.tolist(), "classic": n1.tolist(),
            "madnis": n2.tolist()}


# --------------------------------------------------------------------------------------------------------------- main
def launch_env(root: Path, grouped: str) -> dict[str, str]:
    """Environment of an MG5 launch: the plugin on PYTHONPATH (MG5 untouched) and the grouped-DSIG mode."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(plugin_path(root)), str(REPO), env.get("PYTHONPATH", "")])
    env["MADNIS_MG5_GROUPED"] = grouped
    return env


def madnis_card_entries(madnis_set: list[str], **extra: str) -> dict[str, str]:
    """Run-card entries of a MadNIS launch: CPU, no progress bar, not started from the classic run's G*/ftn26
    grids; ``extra`` and the ``--madnis-set key=value`` items on top."""
    return {"madnis": "True", "madnis_device": "cpu", "madnis_progress": "False", "madnis_survey_grids": "False",
            **extra, **{f"madnis_{k}": v for k, v in (kv.split("=", 1) for kv in madnis_set)}}


def common_card_entries(args: argparse.Namespace) -> dict[str, str]:
    """Run-card entries shared by the classic and the MadNIS launch (``--card-set`` entries last, so they win)."""
    extra = {}
    for item in args.card_set:
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--card-set wants KEY=VALUE, got {item!r}")
        extra[key.strip()] = val.strip()
    return {"nevents": str(args.nevents), "iseed": str(args.seed), "use_syst": "False", **extra}


def add_launch_args(ap: argparse.ArgumentParser) -> None:
    """The options every MG5 launch benchmark takes (processes, events, seed, where, MadNIS run-card extras)."""
    ap.add_argument("--proc", action="append", required=True, help="name:MG5 process, e.g. 'ppee:p p > e+ e-'")
    ap.add_argument("--nevents", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--procs-root", default="/work/mg5_procs")
    ap.add_argument("--grouped", default="sum", help="MADNIS_MG5_GROUPED for the MadNIS launch")
    ap.add_argument("--madnis-set", nargs="*", default=[], help="extra run-card entries madnis_<key>=value")
    ap.add_argument("--card-set", nargs="*", default=[],
                    help="run-card entries KEY=VALUE for both launches (e.g. sde_strategy=2)")


def main() -> None:
    ap = argparse.ArgumentParser()
    add_launch_args(ap)
    ap.add_argument("--only", choices=["classic", "madnis"], default=None)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()

    root = Path(args.procs_root)
    env = launch_env(root, args.grouped)
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    madnis_card = madnis_card_entries(args.madnis_set)
    common = common_card_entries(args)

    for spec in args.proc:
        name, process = spec.split(":", 1)
        proc_dir = root / f"bench_{name}"
        row = results.get(name, {}) if args.only else {}
        row.update({"process": process, "proc_dir": str(proc_dir), "nevents": args.nevents, "seed": args.seed})
        if not proc_dir.exists():
            wall, _ = run_mg5(HEADER + [f"generate {process}", f"output madevent {proc_dir} -nojpeg"],
                              root / f"bench_{name}_output.log", env)
            row["output_wall_s"] = wall
        card = proc_dir / "Cards" / "run_card.dat"
        for mode in ("classic", "madnis"):
            if args.only and mode != args.only:
                continue
            before = set(p.name for p in (proc_dir / "Events").glob("run_*"))
            set_card(card, common, madnis_card if mode == "madnis" else {"madnis": "False"})
            print(f"[{name}] {mode} launch ...", flush=True)
            wall, seen = run_mg5(HEADER + [f"launch {proc_dir} -f"], proc_dir / f"bench_{mode}.log", env,
                                 poll_dir=proc_dir if mode == "classic" else None)
            run = new_run(proc_dir, before)
            lhe = run / "unweighted_events.lhe.gz"
            xs, err, n = lhe_init(lhe)
            r = {"run": run.name, "wall_s": wall, "lhe": str(lhe), "lhe_cross": xs, "lhe_error": err,
                 "n_events_lhe": n, **readback(lhe)}
            if mode == "classic":
                r.update(classic_stats(proc_dir, seen))
                r["settings"] = {**common, "madnis": "False", "nb_core": "1"}
            else:
                mr = json.loads((run / "madnis_results.json").read_text())
                r.update({"cross": mr["cross"], "error": mr["error"],
                          "calls": int(mr["n_calls_training"]) + int(mr["n_calls_integration"])
                          + int(mr.get("n_calls_events", 0)),
                          "calls_events": mr.get("n_calls_events"),
                          "calls_training": int(mr["n_calls_training"]),
                          "calls_integration": int(mr["n_calls_integration"]),
                          "unweighting_efficiency": mr["unweighting_efficiency"],
                          "unweighting_efficiency_bootstrap": mr.get("unweighting_efficiency_bootstrap"),
                          "train_time_s": mr.get("train_time_s"), "sample_time_s": mr.get("sample_time_s"),
                          "n_channels": mr.get("n_channels"), "dropped_channels": mr.get("dropped_channels"),
                          "n_steps": mr.get("n_steps"), "config": mr.get("config"),
                          "settings": {**common, **madnis_card, "nb_core": "1",
                                       "env MADNIS_MG5_GROUPED": args.grouped}})
            if mode == "madnis":
                r["dsig_per_call_max"] = {
                    f.parent.name: sum(1 for ln in f.read_text().splitlines()
                                        if ln.strip() and ln.split()[:2] != ["mirror", "none"])
                    for f in sorted(proc_dir.glob("SubProcesses/P*/processes.dat"))} if args.grouped == "sum" else 1
            r["events_per_call"] = n / r["calls"] if r["calls"] else None
            row[mode] = r
            results[name] = row
            out_path.write_text(json.dumps(results, indent=1))
        if "classic" in row and "madnis" in row:
            oa = observables(Path(row["classic"]["lhe"]))
            ob = observables(Path(row["madnis"]["lhe"]))
            row["histograms"] = {k: chi2(oa[k], ob[k]) for k in oa}
            c, m = row["classic"], row["madnis"]
            row["pull_sigma"] = (m["cross"] - c["cross"]) / math.hypot(m["error"], c["error"])
        results[name] = row
        out_path.write_text(json.dumps(results, indent=1))
    print(markdown(results))
    print("wrote", out_path)


def markdown(results: dict) -> str:
    rows = ["| process | method | σ (pb) | error | calls (train + gen) | ε unweight | events/call | wall (s) "
            "| LHE events | χ²/ndf m_fs | χ²/ndf pT_lead |", "|" + "---|" * 11]
    for name, row in results.items():
        h = row.get("histograms", {})
        for mode in ("classic", "madnis"):
            r = row.get(mode)
            if not r:
                continue
            calls = (f"{r['calls_training']} + {r['calls_integration']}" if mode == "madnis" else f"{r['calls']}")
            eps = r.get("unweighting_efficiency")
            hm = h.get("m_final_state")
            hp = h.get("pt_leading")
            rows.append(f"| {row['process']} | {mode} | {r['cross']:.5g} | {r['error']:.2g} | {calls} | "
                        f"{eps:.3g} | {r['events_per_call']:.3g} | {r['wall_s']:.0f} | {r['n_events_lhe']} | "
                        + (f"{hm['chi2_ndf']:.2f} ({hm['ndf']}) | {hp['chi2_ndf']:.2f} ({hp['ndf']}) |"
                           if hm and mode == "madnis" else " | |"))
    return "\n".join(rows)


if __name__ == "__main__":
    main()
