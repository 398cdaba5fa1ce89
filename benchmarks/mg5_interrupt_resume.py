"""Ctrl-C during MadNIS training on real MG5, then resume: checkpoint kept, no half-written LHE, exact event count.

    MG5_HOME=/work/mg5 python benchmarks/mg5_interrupt_resume.py [--proc 'ppee:p p > e+ e-'] [--nevents 5000] \
        [--steps 3000] [--interrupt-after-progress 1] [--delay 4]

On a fresh copy ``<procs-root>/scratch/interrupt_<name>`` of ``bench_<name>`` (Events emptied):

1. ``launch DIR -f`` in the MG5 shell (plugin on PYTHONPATH as benchmarks/mg5_side_by_side.py) with ``True = madnis``,
   ``madnis_n_steps = --steps``; the shell runs in its own process group (``start_new_session``), like a terminal's
   foreground job. Once the log shows the training has started and ``--interrupt-after-progress`` progress lines
   ("MadNIS training: step k/N", every 10 %) plus ``--delay`` seconds, SIGINT goes to the whole group
   (``killpg``), as Ctrl-C in a terminal does. (The bridge workers run in sessions of their own: pool.py.)
2. Checks after the shell exits: ``Events/run_01/madnis_checkpoint.pt`` exists and loads (``torch.load``: step,
   model, optimizer; and :func:`madnis_plugin.core.load_checkpoint` against the real process through the bridge);
   no ``Events/*/unweighted_events.lhe(.gz)``, no ``Events/*/*.lhe*`` at all, no ``G*/events.lhe``, no staged
   temporary files (``.*.madnis*``/``.*tmp*``) anywhere under ``Events`` or ``SubProcesses``; how MG5 exited.
3. Resume: ``Events/run_01/madnis_checkpoint.pt = madnis_checkpoint`` in the run card, ``launch DIR -f`` again (no
   signal): training continues from the saved step to ``--steps``; then the events. Checks: the log says "model
   loaded from ... (step k of N)", ``madnis_results.json`` has ``n_steps = N`` and ``resumed_from``, the LHE holds
   exactly ``nevents`` events, σ ± error (compared with ``benchmarks/out/mg5_side_by_side.json`` when present).

Writes ``benchmarks/out/mg5_interrupt_resume.json``; exit status 0 iff every check passed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mg5_side_by_side import HEADER, MG5_HOME, REPO, lhe_init, plugin_path, run_mg5, set_card  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "mg5_interrupt_resume.json"
PROGRESS = re.compile(r"MadNIS training: step (\d+)/(\d+)")  # MG5's log repeats each line: count distinct ones


def interrupted_launch(proc_dir: Path, log: Path, env: dict, n_progress: int, delay: float, timeout: float) -> dict:
    script = log.with_suffix(".mg5")
    script.write_text("\n".join(HEADER + [f"launch {proc_dir} -f"]) + "\n")
    t0 = time.time()
    with open(log, "w") as fh:
        p = subprocess.Popen([str(MG5_HOME / "bin" / "mg5_aMC"), str(script)], stdout=fh, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env, cwd=str(log.parent), start_new_session=True)
        sent_at = None
        step_seen = None
        while p.poll() is None and time.time() - t0 < timeout:
            text = log.read_text(errors="replace")
            prog = list(dict.fromkeys(PROGRESS.findall(text)))
            if sent_at is None and "MadNIS: training" in text and len(prog) >= n_progress:
                if n_progress:
                    step_seen = int(prog[-1][0])
                time.sleep(delay)
                os.killpg(p.pid, signal.SIGINT)  # Ctrl-C: SIGINT to the foreground process group
                sent_at = time.time() - t0
            time.sleep(0.2)
        hung = p.poll() is None
        if hung:  # MG5 did not exit after the interrupt: give it a second Ctrl-C, then end it
            os.killpg(p.pid, signal.SIGINT)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(30)
        rc = p.returncode
    return {"sigint_sent_at_s": sent_at, "progress_step_before_sigint": step_seen, "rc": rc,
            "hung_after_sigint": hung, "wall_s": time.time() - t0}


def leftovers(proc_dir: Path) -> dict:
    ev = proc_dir / "Events"
    lhe = sorted(str(f.relative_to(proc_dir)) for f in ev.rglob("*.lhe*"))
    g_lhe = sorted(str(f.relative_to(proc_dir)) for f in proc_dir.glob("SubProcesses/P*/G*/events.lhe"))
    tmp = sorted(str(f.relative_to(proc_dir)) for d in (ev, proc_dir / "SubProcesses") for f in d.rglob(".*")
                 if f.is_file() and ("madnis" in f.name or "tmp" in f.name))
    return {"event_files_in_Events": lhe, "G_events_lhe": g_lhe, "staged_temp_files": tmp}


def check_checkpoint(path: Path, proc_dir: Path) -> dict:
    import torch

    out = {"path": str(path), "exists": path.is_file()}
    if not path.is_file():
        return out
    out["bytes"] = path.stat().st_size
    state = torch.load(path, map_location="cpu", weights_only=False)
    out["keys"] = sorted(state.keys())
    # load it against the real process (the bridge), as the resume will
    sys.path.insert(0, str(REPO))
    from madnis_plugin.core import load_checkpoint
    from madnis_plugin.mg5 import harness

    proc = harness.open_process(str(proc_dir))
    try:
        tr = load_checkpoint(path, proc)
        out["step"] = int(tr.step)
        out["loaded_n_channels"] = int(tr.n_channels)
        out["loads"] = True
    finally:
        close = getattr(getattr(proc, "process", proc), "close", None)
        if close is not None:
            close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--proc", default="ppee:p p > e+ e-")
    ap.add_argument("--nevents", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--interrupt-after-progress", type=int, default=1, help="progress lines (10 %% each) before SIGINT")
    ap.add_argument("--delay", type=float, default=4.0, help="seconds after that line before SIGINT")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--procs-root", default="/work/mg5_procs")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()

    name, process = args.proc.split(":", 1)
    root = Path(args.procs_root)
    proc_dir = root / "scratch" / f"interrupt_{name}"
    if proc_dir.exists():
        shutil.rmtree(proc_dir)
    shutil.copytree(root / f"bench_{name}", proc_dir, symlinks=True)
    for d in (proc_dir / "Events").glob("run_*"):
        shutil.rmtree(d)
    for g in proc_dir.glob("SubProcesses/P*/G*/events.lhe"):
        g.unlink()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(plugin_path(root)), str(REPO), env.get("PYTHONPATH", "")])
    env.setdefault("MADNIS_MG5_GROUPED", "sum")
    os.environ["MADNIS_MG5_GROUPED"] = env["MADNIS_MG5_GROUPED"]  # the same integrand for check_checkpoint    env.pop("MADNIS_REQUEST", None)
    card = proc_dir / "Cards" / "run_card.dat"
    common = {"nevents": str(args.nevents), "iseed": str(args.seed), "use_syst": "False"}
    madnis = {"madnis": "True", "madnis_device": "cpu", "madnis_progress": "False", "madnis_survey_grids": "False",
              "madnis_n_steps": str(args.steps)}
    res: dict = {"process": process, "proc_dir": str(proc_dir), "nevents": args.nevents, "steps": args.steps,
                 "seed": args.seed}
    checks: dict[str, bool] = {}

    # 1. interrupted launch
    set_card(card, common, madnis)
    log1 = proc_dir / "interrupt_launch1.log"
    print(f"[{name}] launch with SIGINT during training ...", flush=True)
    res["interrupt"] = interrupted_launch(proc_dir, log1, env, args.interrupt_after_progress, args.delay,
                                          args.timeout)
    text1 = log1.read_text(errors="replace")
    res["interrupt"]["log_lines"] = [ln for ln in text1.splitlines()
                                     if re.search(r"MadNIS|interrupt|Interrupt|stopping|KeyboardInterrupt", ln)][-12:]
    runs = sorted(d.name for d in (proc_dir / "Events").glob("run_*"))
    res["interrupt"]["runs"] = runs
    ckpt = proc_dir / "Events" / (runs[-1] if runs else "run_01") / "madnis_checkpoint.pt"
    res["interrupt"]["checkpoint"] = check_checkpoint(ckpt, proc_dir)
    res["interrupt"]["leftovers"] = lo = leftovers(proc_dir)
    c = res["interrupt"]["checkpoint"]
    checks["sigint_sent_during_training"] = res["interrupt"]["sigint_sent_at_s"] is not None
    checks["mg5_exited_after_sigint"] = not res["interrupt"]["hung_after_sigint"]
    checks["checkpoint_exists"] = c["exists"]
    checks["checkpoint_loads"] = bool(c.get("loads"))
    checks["checkpoint_mid_training"] = 0 < c.get("step", -1) < args.steps
    checks["no_event_files"] = not lo["event_files_in_Events"] and not lo["G_events_lhe"]
    checks["no_staged_temp_files"] = not lo["staged_temp_files"]
    out_path = Path(args.out)
    out_path.write_text(json.dumps({**res, "checks": checks}, indent=1))

    # 2. resume
    rel = ckpt.relative_to(proc_dir)
    set_card(card, common, {**madnis, "madnis_checkpoint": str(rel)})
    before = set(runs)
    print(f"[{name}] resume from {rel} (step {c.get('step')}) ...", flush=True)
    wall, _ = run_mg5(HEADER + [f"launch {proc_dir} -f"], proc_dir / "interrupt_launch2_resume.log", env)
    text2 = (proc_dir / "interrupt_launch2_resume.log").read_text(errors="replace")
    new = sorted(set(d.name for d in (proc_dir / "Events").glob("run_*")) - before)
    run2 = proc_dir / "Events" / new[-1]
    xs, err, n = lhe_init(run2 / "unweighted_events.lhe.gz")
    mr = json.loads((run2 / "madnis_results.json").read_text())
    m = re.search(r"model loaded from (\S+) \(step (\d+) of (\d+)\)", text2)
    r2 = {"run": run2.name, "wall_s": wall, "loaded_line": m.group(0) if m else None,
          "cross": mr["cross"], "error": mr["error"], "lhe_cross": xs, "lhe_error": err, "n_events_lhe": n,
          "n_steps": mr["n_steps"], "resumed_from": mr.get("resumed_from"),
          "n_calls_training": mr["n_calls_training"], "unweighting_efficiency": mr["unweighting_efficiency"]}
    ref_file = REPO / "benchmarks" / "out" / "mg5_side_by_side.json"
    if ref_file.exists():
        ref = json.loads(ref_file.read_text()).get(name, {}).get("classic")
        if ref:
            r2["reference_classic"] = {"cross": ref["cross"], "error": ref["error"]}
            r2["pull_vs_classic"] = (mr["cross"] - ref["cross"]) / math.hypot(mr["error"], ref["error"])
    res["resume"] = r2
    checks["resume_loaded_saved_step"] = bool(m) and int(m.group(2)) == c.get("step")
    checks["resume_trained_to_n_steps"] = mr["n_steps"] == args.steps
    checks["resume_exact_nevents"] = n == args.nevents
    checks["resume_sigma_sensible"] = abs(r2.get("pull_vs_classic", 0.0)) < 4
    res["checks"] = checks
    res["all_passed"] = all(checks.values())
    out_path.write_text(json.dumps(res, indent=1))
    print(json.dumps({"checks": checks, "resume": r2, "interrupt": {k: v for k, v in res["interrupt"].items()
                                                                    if k != "log_lines"}}, indent=1))
    print("wrote", out_path)
    return 0 if res["all_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
