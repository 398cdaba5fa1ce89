"""MadNIS commands: in MG5's shells (``madnis_*``) and in the ``madnis-mg5`` console script (``install-plugin``).

MadEvent shell of a process directory (``./bin/madevent``, or ``launch DIR -i`` in MG5), added to ``MadEventCmd``
when MG5 imports the plugin:

    madnis_train    [RUN_NAME] [--steps=N] [--from=RUN|FILE]   train (or resume) and save the model, no events
    madnis_generate [RUN_NAME] [--from=RUN|FILE]               new run from a saved model: no retraining, nevents
                                                               from the run card, MG5's combine/store/HTML as usual
    madnis_refine   [RUN_NAME]                                 classic MadEvent run (refine, combine, store) without a
                                                               survey, from the grids/results a MadNIS run left in G*
    madnis_channels [RUN]                                      channels, G directories, σ share, dropped or not
    madnis_plots    [RUN]                                      (re)write the plots of a run and link them in HTML

MG5 main shell with ``./bin/mg5_aMC --mode=madnis``: the same commands with the process directory first
(``madnis_generate PROC_DIR [--from=RUN]`` launches PROC_DIR with the saved model; ``madnis_channels PROC_DIR``...).

Console script: ``madnis-mg5 install-plugin MG5_DIR [--copy] [--name NAME] [--uninstall]``,
``madnis-mg5 run-card-snippet``, ``madnis-mg5 generate|refine|channels|plots PROC_DIR``.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

logger = logging.getLogger("madgraph.madnis")

PLUGIN_NAME = "madnis"
COMMANDS = ("madnis_train", "madnis_generate", "madnis_refine", "madnis_channels", "madnis_plots")


# ================================================================================================== helpers
def _parse(line: str) -> tuple[list[str], dict[str, str]]:
    pos, opt = [], {}
    for tok in line.split():
        if tok.startswith("--"):
            k, _, v = tok[2:].partition("=")
            opt[k.replace("-", "_")] = v
        else:
            pos.append(tok)
    return pos, opt


def find_checkpoint(me_dir: str | Path, ref: str | None) -> Path:
    """A checkpoint from a run name (``Events/<run>/madnis_checkpoint.pt``), a path, or the newest run's."""
    from .launch import CHECKPOINT_NAME, default_run_dirs  # noqa: PLC0415

    me_dir = Path(me_dir)
    if ref:
        p = Path(ref).expanduser()
        cands = [p, me_dir / p, me_dir / "Events" / ref / CHECKPOINT_NAME]
        for c in cands:
            if c.is_dir() and (c / CHECKPOINT_NAME).is_file():
                return c / CHECKPOINT_NAME
            if c.is_file():
                return c
        raise FileNotFoundError(f"no MadNIS model for {ref!r} (looked for {', '.join(map(str, cands))})")
    runs = default_run_dirs(me_dir)
    if not runs:
        raise FileNotFoundError(f"no MadNIS model in {me_dir}/Events/*/{CHECKPOINT_NAME}; run madnis_train or a "
                                "launch with madnis = True first")
    return me_dir / "Events" / runs[-1] / CHECKPOINT_NAME


def _latest_summary_run(me_dir: Path, run: str | None) -> str | None:
    from .launch import SUMMARY_NAME, natural_key  # noqa: PLC0415

    if run:
        return run
    ev = Path(me_dir) / "Events"
    runs = sorted((d.name for d in ev.iterdir() if (d / SUMMARY_NAME).is_file()), key=natural_key) if ev.is_dir() else []
    return runs[-1] if runs else None


def channels_table(me_dir: str | Path, run: str | None = None) -> str:
    """Text table of the G directories and, if a MadNIS run exists, its channels (σ, share, state)."""
    from .launch import SUMMARY_NAME  # noqa: PLC0415
    from .results import RunSummary, gdir_tags, read_symfact  # noqa: PLC0415

    me_dir = Path(me_dir)
    lines = []
    sub = me_dir / "SubProcesses"
    pdirs = sorted(d for d in sub.iterdir() if d.is_dir() and d.name.startswith("P")) if sub.is_dir() else []
    for p in pdirs:
        tags = gdir_tags(read_symfact(p))
        marks = [t + ("(dropped)" if (p / f"G{t}" / "madnis_dropped").exists() else "") for t in tags]
        lines.append(f"{p.name}: {len(tags)} G directories: " + " ".join("G" + m for m in marks))
    run = _latest_summary_run(me_dir, run)
    if run is not None and (me_dir / "Events" / run / SUMMARY_NAME).is_file():
        s = RunSummary.from_json((me_dir / "Events" / run / SUMMARY_NAME).read_text())
        lines.append(f"MadNIS run {run}: sigma = {s.cross:.6g} +- {s.error:.3g} {s.unit}, eff = "
                     f"{s.unweighting_efficiency:.4f}, {len(s.active_channels)}/{s.n_channels} channels active")
        total = s.cross or 1.0
        prior = s.prior_channel_integrals or []
        lines.append(f"  {'#':>4s} {'channel':24s} {'sigma':>12s} {'error':>10s} {'share':>8s}"
                     + (f" {'prior share':>11s}" if prior else "") + "  state")
        ptot = sum(prior) if prior else 1.0
        for c, name in enumerate(s.channel_names):
            state = "dropped" if c in s.dropped_channels else "active"
            extra = f" {100 * prior[c] / ptot:10.2f}%" if prior else ""
            lines.append(f"  {c:4d} {name:24s} {s.channel_integrals[c]:12.5g} {s.channel_errors[c]:10.3g} "
                         f"{100 * s.channel_integrals[c] / total:7.2f}%{extra}  {state}")
    else:
        lines.extend(_trained_only_lines(me_dir, run))
    return "\n".join(lines)


def _trained_only_lines(me_dir: Path, run: str | None) -> list[str]:
    """Channel table of a model trained without a refine phase (``madnis_train``): the running means of I_i
    from training, read from the newest checkpoint (of ``run`` if given)."""
    import math  # noqa: PLC0415

    import torch  # noqa: PLC0415

    try:
        ckpt = find_checkpoint(me_dir, run)
    except FileNotFoundError:
        return ["no MadNIS run yet (launch with madnis = True, or madnis_train)"]
    from madnis_plugin.core.channels import RunningStats  # noqa: PLC0415

    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    names = state["integrand"]["channel_names"]
    active = state["model"]["active"].tolist()
    stats = RunningStats(len(names), 1)
    stats.load_state_dict(state["stats"])
    integrals = stats.integral_mean().tolist()
    known = [x for x, a in zip(integrals, active) if a and math.isfinite(x)]
    total = sum(known) or 1.0
    lines = [f"MadNIS model {ckpt.parent.name}: trained {state['counters']['step']} steps, "
             f"{sum(active)}/{len(active)} channels active; no refine phase yet (madnis_generate --from="
             f"{ckpt.parent.name} samples from it). Running means from training:",
             f"  {'#':>4s} {'channel':24s} {'sigma (train)':>14s} {'share':>8s}  state"]
    for c, name in enumerate(names):
        val = integrals[c]
        shown = f"{val:14.5g}" if math.isfinite(val) else f"{'-':>14s}"
        share = f"{100 * val / total:7.2f}%" if math.isfinite(val) else f"{'-':>8s}"
        lines.append(f"  {c:4d} {name:24s} {shown} {share}  {'active' if active[c] else 'dropped'}")
    return lines


def replot(me_dir: str | Path, run: str | None = None) -> list[str]:
    """Plots of a run from its checkpoint history and JSON summary (no integrand needed); updates the HTML."""
    import torch  # noqa: PLC0415

    from . import plots  # noqa: PLC0415
    from .launch import CHECKPOINT_NAME, SUMMARY_NAME, LaunchSettings, add_html  # noqa: PLC0415
    from .results import RunSummary  # noqa: PLC0415

    me_dir = Path(me_dir)
    run = _latest_summary_run(me_dir, run)
    if run is None:
        raise FileNotFoundError(f"no MadNIS run in {me_dir}/Events")
    ev = me_dir / "Events" / run
    history = {}
    if (ev / CHECKPOINT_NAME).is_file():
        history = torch.load(ev / CHECKPOINT_NAME, map_location="cpu", weights_only=False).get("history", {})
    summary = RunSummary.from_json((ev / SUMMARY_NAME).read_text()) if (ev / SUMMARY_NAME).is_file() else None
    paths = plots.write_summary_plots(history, summary, me_dir / "HTML" / run)
    if summary is not None:
        keep = {Path(p).name for p in summary.plots}
        summary.plots = sorted(set(summary.plots) | set(paths), key=lambda p: Path(p).name) if keep else paths
        (ev / SUMMARY_NAME).write_text(summary.to_json())
        if (me_dir / "HTML" / run / "results.html").is_file():
            from .cards import MadnisCardOptions  # noqa: PLC0415

            add_html(LaunchSettings(me_dir, run, summary.nevents_requested,
                                    MadnisCardOptions(True, None, {}, {})), summary)
    return paths


# ================================================================================================== MadEvent shell
class MadnisShellCommands:
    """``do_/help_/complete_`` methods added to MG5's ``MadEventCmd`` (``self.me_dir`` is the process dir)."""

    # ---------------------------------------------------------------- madnis_train
    def do_madnis_train(self, line):
        """Train (or resume) the MadNIS model of this process directory and save it; no events."""
        from .launch import card_options, train_only  # noqa: PLC0415

        pos, opt = _parse(line)
        ckpt = find_checkpoint(self.me_dir, opt["from"]) if "from" in opt else None
        opts = card_options(self, force_enable=True)
        steps = int(opt["steps"]) if opt.get("steps") else None
        path = train_only(self, opts, run_name=pos[0] if pos else None, load_checkpoint=ckpt, n_steps=steps)
        logger.info("MadNIS model: %s", path)

    def help_madnis_train(self):
        logger.info("syntax: madnis_train [RUN_NAME] [--steps=N] [--from=RUN|FILE]")
        logger.info("-- train the MadNIS model over all channels of all P-directories and save it in")
        logger.info("   Events/RUN_NAME/madnis_checkpoint.pt (run-card madnis_* options apply).")
        logger.info("   --from resumes from a saved model; --steps sets the total number of steps.")

    def complete_madnis_train(self, text, line, begidx, endidx):
        return self._madnis_complete(text, line, ["--steps=", "--from="])

    # ---------------------------------------------------------------- madnis_generate
    def do_madnis_generate(self, line):
        """Generate a new run (nevents of the run card) from a saved model, without retraining."""
        from .launch import request_next_survey  # noqa: PLC0415

        pos, opt = _parse(line)
        ckpt = find_checkpoint(self.me_dir, opt.get("from") or None)
        request_next_survey(self.me_dir, checkpoint=ckpt, train=False)
        logger.info("MadNIS: generating from %s (no training)", ckpt)
        self.exec_cmd("generate_events %s -f" % (pos[0] if pos else ""), postcmd=False)

    def help_madnis_generate(self):
        logger.info("syntax: madnis_generate [RUN_NAME] [--from=RUN|FILE]")
        logger.info("-- a new run with nevents (run card) events from a saved MadNIS model, no retraining;")
        logger.info("   default model: the newest Events/*/madnis_checkpoint.pt. Results, banner, HTML and")
        logger.info("   later steps are MG5's own, as for a launch.")

    def complete_madnis_generate(self, text, line, begidx, endidx):
        return self._madnis_complete(text, line, ["--from="])

    # ---------------------------------------------------------------- madnis_refine
    def do_madnis_refine(self, line):
        """Classic MadEvent refine (no survey) starting from the grids and results of the last MadNIS run."""
        from .launch import request_next_survey  # noqa: PLC0415

        pos, _ = _parse(line)
        request_next_survey(self.me_dir, refine=True)
        logger.info("MadNIS: classic MadEvent refine from the MadNIS grids (G*/ftn26) and results (G*/results.dat)")
        self.exec_cmd("generate_events %s -f" % (pos[0] if pos else ""), postcmd=False)

    def help_madnis_refine(self):
        logger.info("syntax: madnis_refine [RUN_NAME]")
        logger.info("-- a classic MadEvent run (MadEvent's refine, combine_events, store_events; no MadNIS events)")
        logger.info("   that skips the survey and starts every channel from what the last MadNIS run left in its")
        logger.info("   G directory: the VEGAS grid (ftn26) and sigma (results.dat); dropped channels (sigma = 0)")
        logger.info("   are not refined. One refine job per channel (refine_evt_by_job, unless the run card sets it).")

    def complete_madnis_refine(self, text, line, begidx, endidx):
        return self._madnis_complete(text, line, [])

    # ---------------------------------------------------------------- madnis_channels
    def do_madnis_channels(self, line):
        """List the channels (G directories) and the σ share of each channel in the last MadNIS run."""
        pos, _ = _parse(line)
        for ln in channels_table(self.me_dir, pos[0] if pos else None).splitlines():
            logger.info(ln)

    def help_madnis_channels(self):
        logger.info("syntax: madnis_channels [RUN]")
        logger.info("-- G directories per P-directory (dropped ones marked) and, for the last (or given) MadNIS")
        logger.info("   run, every channel's cross section, share and state.")

    def complete_madnis_channels(self, text, line, begidx, endidx):
        return self._madnis_complete(text, line, [])

    # ---------------------------------------------------------------- madnis_plots
    def do_madnis_plots(self, line):
        """(Re)write the plots of a MadNIS run (HTML/<run>/madnis_*.png) and link them in the results page."""
        pos, _ = _parse(line)
        for p in replot(self.me_dir, pos[0] if pos else None):
            logger.info("written %s", p)

    def help_madnis_plots(self):
        logger.info("syntax: madnis_plots [RUN]")
        logger.info("-- plots of the training (loss, variance) and channel contributions of a MadNIS run,")
        logger.info("   written to HTML/RUN/ and linked from HTML/RUN/results.html.")

    def complete_madnis_plots(self, text, line, begidx, endidx):
        return self._madnis_complete(text, line, [])

    # ---------------------------------------------------------------- completion helper
    def _madnis_complete(self, text, line, options):
        from .launch import default_run_dirs  # noqa: PLC0415

        runs = []
        try:
            ev = Path(self.me_dir) / "Events"
            runs = sorted(d.name for d in ev.iterdir() if d.is_dir()) if ev.is_dir() else default_run_dirs(self.me_dir)
        except OSError:
            pass
        if text.startswith("--from="):
            return ["--from=" + r for r in runs if ("--from=" + r).startswith(text)]
        return [c for c in options + runs if c.startswith(text)]


def install_commands(klass) -> list[str]:
    """Add the ``madnis_*`` commands to ``klass`` (MG5's MadEventCmd); returns the attribute names added."""
    added = []
    for name, value in MadnisShellCommands.__dict__.items():
        if name.startswith(("do_madnis_", "help_madnis_", "complete_madnis_", "_madnis_")) and name not in klass.__dict__:
            setattr(klass, name, value)
            added.append(name)
    return added


# ================================================================================================== MG5 main shell
def make_master_interface(master_cls):
    """A subclass of MG5's ``MasterCmd`` with the MadNIS commands taking the process directory first
    (for ``./bin/mg5_aMC --mode=madnis``)."""

    class MadnisMasterCmd(master_cls):
        def do_madnis_channels(self, line):
            pos, _ = _parse(line)
            if not pos:
                raise self.InvalidCmd("madnis_channels needs the process directory")
            for ln in channels_table(pos[0], pos[1] if len(pos) > 1 else None).splitlines():
                logger.info(ln)

        def help_madnis_channels(self):
            logger.info("syntax: madnis_channels PROC_DIR [RUN]")

        def do_madnis_plots(self, line):
            pos, _ = _parse(line)
            if not pos:
                raise self.InvalidCmd("madnis_plots needs the process directory")
            for p in replot(pos[0], pos[1] if len(pos) > 1 else None):
                logger.info("written %s", p)

        def help_madnis_plots(self):
            logger.info("syntax: madnis_plots PROC_DIR [RUN]")

        def do_madnis_generate(self, line):
            from .launch import request_next_survey  # noqa: PLC0415

            pos, opt = _parse(line)
            if not pos:
                raise self.InvalidCmd("madnis_generate needs the process directory")
            ckpt = find_checkpoint(pos[0], opt.get("from") or None)
            request_next_survey(pos[0], checkpoint=ckpt, train=False)
            self.exec_cmd("launch %s -f" % pos[0])

        def do_madnis_refine(self, line):
            from .launch import request_next_survey  # noqa: PLC0415

            pos, _ = _parse(line)
            if not pos:
                raise self.InvalidCmd("madnis_refine needs the process directory")
            request_next_survey(pos[0], refine=True)
            self.exec_cmd("launch %s -f" % pos[0])

        def help_madnis_refine(self):
            logger.info("syntax: madnis_refine PROC_DIR")
            logger.info("-- launch PROC_DIR as a classic MadEvent run without survey, from the last MadNIS run's grids")

        def help_madnis_generate(self):
            logger.info("syntax: madnis_generate PROC_DIR [--from=RUN|FILE]")
            logger.info("-- launch PROC_DIR with a saved MadNIS model (no retraining)")

        def complete_madnis_generate(self, text, line, begidx, endidx):
            return self.path_completion(text) if hasattr(self, "path_completion") else []

        complete_madnis_channels = complete_madnis_generate
        complete_madnis_refine = complete_madnis_generate
        complete_madnis_plots = complete_madnis_generate

    return MadnisMasterCmd


# ================================================================================================== console script
def plugin_source_dir() -> Path:
    """The ``mg5_plugin_config`` package that MG5 loads."""
    here = Path(__file__).resolve().parent.parent.parent / "mg5_plugin_config"
    if (here / "__init__.py").is_file():
        return here
    import mg5_plugin_config  # noqa: PLC0415

    return Path(mg5_plugin_config.__file__).resolve().parent


def _check_mg5_dir(mg5_dir: Path) -> None:
    if not (mg5_dir / "bin" / "mg5_aMC").is_file() or not (mg5_dir / "madgraph").is_dir():
        raise FileNotFoundError(f"{mg5_dir} is not an MG5_aMC installation (no bin/mg5_aMC and madgraph/)")


def install_plugin(mg5_dir: str | Path, *, name: str = PLUGIN_NAME, copy: bool = False, force: bool = False) -> Path:
    """Link (default) or copy ``mg5_plugin_config`` to ``MG5_DIR/PLUGIN/<name>``; returns the target.

    A copy records where this package lives (``madnis_source_path.txt``) so MG5 finds ``madnis_plugin`` even when
    it is not installed in MG5's Python.
    """
    mg5_dir = Path(mg5_dir).expanduser().resolve()
    _check_mg5_dir(mg5_dir)
    plugin_dir = mg5_dir / "PLUGIN"
    plugin_dir.mkdir(exist_ok=True)
    if not (plugin_dir / "__init__.py").exists():
        (plugin_dir / "__init__.py").write_text("")
    target = plugin_dir / name
    src = plugin_source_dir()
    if target.exists() or target.is_symlink():
        if target.is_symlink() and Path(os.readlink(target)) == src:
            return target
        if not force:
            raise FileExistsError(f"{target} exists; pass --force to replace it or --uninstall first")
        uninstall_plugin(mg5_dir, name=name)
    if copy:
        shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (target / "madnis_source_path.txt").write_text(str(src.parent) + "\n")
    else:
        target.symlink_to(src, target_is_directory=True)
    return target


def uninstall_plugin(mg5_dir: str | Path, *, name: str = PLUGIN_NAME) -> bool:
    """Remove ``MG5_DIR/PLUGIN/<name>`` (link or copy made by install_plugin); False if there was none."""
    mg5_dir = Path(mg5_dir).expanduser().resolve()
    target = mg5_dir / "PLUGIN" / name
    if target.is_symlink():
        target.unlink()
        return True
    if target.is_dir():
        if not (target / "__init__.py").is_file() or "madnis" not in (target / "__init__.py").read_text():
            raise RuntimeError(f"{target} does not look like the MadNIS plugin; not removing it")
        shutil.rmtree(target)
        return True
    return False


def cmd_install_plugin(args) -> int:
    try:
        if args.uninstall:
            removed = uninstall_plugin(args.mg5_dir, name=args.name)
            print(f"removed {Path(args.mg5_dir) / 'PLUGIN' / args.name}" if removed else "nothing to remove")
            return 0
        target = install_plugin(args.mg5_dir, name=args.name, copy=args.copy, force=args.force)
    except (FileExistsError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=__import__("sys").stderr)
        return 2
    print(f"installed: {target} -> {os.path.realpath(target)}")
    if not any(shutil.which(n) for n in ("f2py", "f2py3", "f2py%d.%d" % __import__("sys").version_info[:2])):
        print("warning: no f2py on PATH. MG5 3.5 imports plugins during `launch` only when reweighting is available;"
              " set  f2py_compiler_py3 = f2py  in MG5_DIR/input/mg5_configuration.txt and in each process's"
              " Cards/me5_configuration.txt (or start MG5 with --mode=madnis)")
    print("enable it per process: add  'True = madnis'  to Cards/run_card.dat (see: madnis-mg5 run-card-snippet)")
    return 0


def cmd_snippet(args) -> int:
    from .cards import run_card_snippet  # noqa: PLC0415

    print(run_card_snippet())
    return 0


def cmd_channels(args) -> int:
    print(channels_table(args.proc_dir, args.run))
    return 0


def cmd_plots(args) -> int:
    for p in replot(args.proc_dir, args.run):
        print(f"written {p}")
    return 0


def cmd_generate(args) -> int:
    """New run from a saved model: ``PROC_DIR/bin/madevent`` with ``generate_events -f`` and MADNIS_REQUEST."""
    import json  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from .launch import REQUEST_ENV, SUMMARY_NAME  # noqa: PLC0415

    me = Path(args.proc_dir).resolve()
    if not (me / "bin" / "madevent").is_file():
        print(f"error: {me} is not an `output madevent` directory", file=sys.stderr)
        return 2
    ckpt = find_checkpoint(me, args.from_run)
    before = {d.name for d in (me / "Events").iterdir()} if (me / "Events").is_dir() else set()
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write(f"generate_events {args.run_name or ''} -f\n")
        script = fh.name
    env = dict(os.environ)
    env[REQUEST_ENV] = json.dumps({"checkpoint": str(ckpt), "train": False})
    print(f"generating from {ckpt} (no training)")
    rc = subprocess.call([sys.executable, str(me / "bin" / "madevent"), script], cwd=me, env=env)
    os.unlink(script)
    new = [d for d in (me / "Events").iterdir() if d.name not in before and (d / SUMMARY_NAME).is_file()]
    if rc == 0 and not new:
        print("error: the run did not use MadNIS: is the plugin installed (madnis-mg5 install-plugin MG5_DIR)?",
              file=sys.stderr)
        return 3
    return rc


def cmd_refine(args) -> int:
    """Classic MadEvent run from the MadNIS grids: ``PROC_DIR/bin/madevent`` ``generate_events -f`` with the request
    ``{"refine": true}`` (the patched survey prepares MadEvent's refine instead of surveying)."""
    import json  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from .launch import REQUEST_ENV  # noqa: PLC0415

    me = Path(args.proc_dir).resolve()
    if not (me / "bin" / "madevent").is_file():
        print(f"error: {me} is not an `output madevent` directory", file=sys.stderr)
        return 2
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write(f"generate_events {args.run_name or ''} -f\n")
        script = fh.name
    env = dict(os.environ)
    env[REQUEST_ENV] = json.dumps({"refine": True})
    rc = subprocess.call([sys.executable, str(me / "bin" / "madevent"), script], cwd=me, env=env)
    os.unlink(script)
    return rc


def add_cli_commands(subparsers) -> None:
    """Register ``install-plugin`` and ``run-card-snippet`` in the ``madnis-mg5`` console script."""
    sp = subparsers.add_parser("install-plugin", help="install (or --uninstall) the MG5 plugin into MG5_DIR/PLUGIN")
    sp.add_argument("mg5_dir", metavar="MG5_DIR", help="the MG5_aMC installation directory")
    sp.add_argument("--uninstall", action="store_true", help="remove the plugin instead")
    sp.add_argument("--copy", action="store_true", help="copy instead of a symbolic link")
    sp.add_argument("--force", action="store_true", help="replace an existing PLUGIN/<name>")
    sp.add_argument("--name", default=PLUGIN_NAME, help=f"plugin directory name (default {PLUGIN_NAME})")
    sp.set_defaults(func=cmd_install_plugin)
    sp = subparsers.add_parser("run-card-snippet", help="print the run-card lines that enable MadNIS")
    sp.set_defaults(func=cmd_snippet)
    sp = subparsers.add_parser("channels", help="channels and σ shares of a process directory's MadNIS run")
    sp.add_argument("proc_dir", metavar="PROC_DIR")
    sp.add_argument("run", nargs="?", help="run name (default: the newest MadNIS run)")
    sp.set_defaults(func=cmd_channels)
    sp = subparsers.add_parser("plots", help="(re)write the plots of a MadNIS run and link them in its HTML page")
    sp.add_argument("proc_dir", metavar="PROC_DIR")
    sp.add_argument("run", nargs="?")
    sp.set_defaults(func=cmd_plots)
    sp = subparsers.add_parser("generate", help="a new MG5 run from a saved MadNIS model (no retraining)")
    sp.add_argument("proc_dir", metavar="PROC_DIR")
    sp.add_argument("--from", dest="from_run", help="run name or checkpoint file (default: the newest model)")
    sp.add_argument("--run-name", help="name of the new run (default: MG5's next run_XX)")
    sp.set_defaults(func=cmd_generate)
    sp = subparsers.add_parser("refine", help="a classic MadEvent run (no survey) from the last MadNIS run's grids")
    sp.add_argument("proc_dir", metavar="PROC_DIR")
    sp.add_argument("--run-name", help="name of the new run (default: MG5's next run_XX)")
    sp.set_defaults(func=cmd_refine)

