"""The MG5 hooks on a fake ``internal.madevent_interface``: madnis off → MG5 untouched; on → MadNIS flow,
refine skipped; bad entries rejected before any computation; uninstall restores everything."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from madnis_plugin.mg5 import hooks, launch
from madnis_plugin.mg5.results import parse_results_dat
from conftest import FAST


class InvalidCmd(Exception):
    pass


class FakeRunCard(dict):
    def __init__(self, path, consistency=True):
        super().__init__()
        for line in Path(path).read_text().splitlines():
            s = line.split("!")[0].strip()
            if "=" in s and not s.startswith("#"):
                v, k = (x.strip() for x in s.split("=", 1))
                self[k.lower()] = v


def make_fake_mg5(proc_dir):
    mod = types.ModuleType("internal.madevent_interface")
    calls = []

    class Results(dict):
        def add_detail(self, k, v):
            self[k] = v

    class FakeGensym:
        def __init__(self, cmd):
            self.cmd = cmd

        def launch(self, to_submit=True):
            calls.append("gensym")
            sub = Path(self.cmd.me_dir) / "SubProcesses"
            return {str(sub / "P1_qq_ll"): ["1", "2"], str(sub / "P2_gg_ll"): ["1", "2.2"]}, []

    class MadEventCmd:
        InvalidCmd = InvalidCmd

        def __init__(self):
            self.me_dir = str(proc_dir)
            self.run_name = "run_01"
            self.run_card = {"nevents": 300, "use_syst": True, "gridpack": False}
            self.ninitial = 2
            self.random = 33
            self.results = Results()
            self.options = {"run_mode": 0, "nb_core": 1}

        def do_survey(self, line):
            calls.append("orig_survey")

        def do_refine(self, line):
            calls.append("orig_refine")

        def split_arg(self, line):
            return line.split()

        def check_survey(self, args):
            pass

        def configure_directory(self):
            calls.append("configure")

        def update_random(self):
            self.random += 3

        def save_random(self):
            pass

        def update_status(self, *a, **k):
            pass

        def get_Gdir(self):
            return []

        def make_make_all_html_results(self):
            tot = err2 = 0.0
            for f in Path(self.me_dir).glob("SubProcesses/P*/G*/results.dat"):
                r = parse_results_dat(f.read_text())
                tot += r.xsec
                err2 += r.xerru**2
            (Path(self.me_dir) / "HTML" / self.run_name).mkdir(parents=True, exist_ok=True)
            (Path(self.me_dir) / "HTML" / self.run_name / "results.html").write_text("<html><body></body></html>")
            return tot, err2**0.5

        def exec_cmd(self, line, **k):
            calls.append(line.split()[0])

    mod.MadEventCmd = MadEventCmd
    mod.gen_ximprove = types.SimpleNamespace(gensym=FakeGensym)
    mod.banner_mod = types.SimpleNamespace(RunCard=FakeRunCard)
    mod.misc = types.SimpleNamespace(glob=lambda pat, d: [str(p) for p in Path(d).glob(pat)])
    mod.files = types.SimpleNamespace(cp=lambda a, b: Path(b).write_bytes(Path(a).read_bytes()))
    mod.ZeroResult = RuntimeError
    banner = types.ModuleType("internal.banner")

    class RunCardLO(dict):
        def default_setup(self):
            pass

        def add_param(self, name, value, include=True, hidden=False, comment=None):
            self[name] = value

    banner.RunCardLO = RunCardLO
    return mod, banner, calls


@pytest.fixture
def fake_mg5(proc_dir, monkeypatch, fake_factory):
    mod, banner, calls = make_fake_mg5(proc_dir)
    monkeypatch.setitem(sys.modules, "internal.madevent_interface", mod)
    monkeypatch.setitem(sys.modules, "internal.banner", banner)
    monkeypatch.setattr(launch, "default_process_factory", fake_factory)
    done = hooks.install_hooks(import_mg5=False)
    assert set(done) >= {"internal.madevent_interface", "internal.banner"}
    yield mod, banner, calls
    hooks.uninstall_hooks()


def write_card(proc_dir, entries):
    lines = ["  300 = nevents"] + [f"  {v} = {k}" for k, v in entries.items()]
    (Path(proc_dir) / "Cards" / "run_card.dat").write_text("\n".join(lines) + "\n")


def test_madnis_off_calls_mg5_original(fake_mg5, proc_dir):
    mod, _, calls = fake_mg5
    write_card(proc_dir, {"madnis": "False", "madnis_n_steps": 10})
    cmd = mod.MadEventCmd()
    cmd.do_survey("run_01")
    cmd.do_refine("300")
    assert calls == ["orig_survey", "orig_refine"]
    write_card(proc_dir, {})
    cmd.do_survey("run_01")
    assert calls[-1] == "orig_survey"


def test_madnis_on_runs_madnis_and_skips_refine(fake_mg5, proc_dir, fake_factory):
    mod, _, calls = fake_mg5
    write_card(proc_dir, FAST)
    cmd = mod.MadEventCmd()
    cmd.do_survey("run_01")
    assert "orig_survey" not in calls and calls[:2] == ["configure", "gensym"]
    assert fake_factory.made and fake_factory.made[0].closed
    assert cmd.results["cross"] == pytest.approx(845.48, rel=0.02)
    assert cmd.run_card["use_syst"] is False  # no <mgrwt> from the bridge
    html = (Path(proc_dir) / "HTML" / "run_01" / "results.html").read_text()
    assert "MadNIS" in html and "madnis_loss.png" in html
    assert (Path(proc_dir) / "SubProcesses" / "P2_gg_ll" / "G2.2" / "events.lhe").is_file()
    cmd.do_refine("300")
    cmd.do_refine("300 --treshold=0.9")
    assert "orig_refine" not in calls
    cmd.run_name = "run_02"  # a later classic run is not affected
    cmd.do_refine("300")
    assert calls[-1] == "orig_refine"


def test_bad_entry_rejected_before_any_computation(fake_mg5, proc_dir, fake_factory):
    mod, _, calls = fake_mg5
    write_card(proc_dir, {"madnis": "True", "madnis_buffer_ratio": "three"})
    cmd = mod.MadEventCmd()
    with pytest.raises(InvalidCmd, match="madnis_buffer_ratio"):
        cmd.do_survey("run_01")
    write_card(proc_dir, {"madnis": "True", "madnis_checkpoint": "Events/none/x.pt"})
    with pytest.raises(InvalidCmd, match="madnis_checkpoint"):
        cmd.do_survey("run_01")
    assert calls == [] and not fake_factory.made


def test_madnis_generate_request_reuses_model(fake_mg5, proc_dir, fake_factory):
    mod, _, calls = fake_mg5
    write_card(proc_dir, FAST)
    cmd = mod.MadEventCmd()
    cmd.do_survey("run_01")
    ck = Path(proc_dir) / "Events" / "run_01" / launch.CHECKPOINT_NAME
    write_card(proc_dir, {**FAST, "madnis": "False"})  # the request enables MadNIS for one survey
    launch.request_next_survey(proc_dir, checkpoint=ck, train=False)
    cmd.run_name = "run_02"
    cmd.do_survey("run_02")
    assert len(fake_factory.made) == 2
    assert (Path(proc_dir) / "Events" / "run_02" / "madnis_results.json").is_file()
    cmd.do_survey("run_03")  # request consumed: madnis = False again
    assert calls[-1] == "orig_survey"


def test_madnis_refine_request_prepares_classic_refine(fake_mg5, proc_dir, fake_factory):
    mod, _, calls = fake_mg5
    write_card(proc_dir, FAST)
    cmd = mod.MadEventCmd()
    cmd.do_survey("run_01")
    sub = Path(proc_dir) / "SubProcesses"
    g1 = sub / "P1_qq_ll" / "G1"
    before = parse_results_dat((g1 / "results.dat").read_text())
    assert before.nunwgt > 0 and (g1 / "ftn26").is_file() and (g1 / "events.lhe").is_file()
    cmd.compile = lambda progs, cwd=None: calls.append("compile")
    write_card(proc_dir, {"madnis": "False"})
    launch.request_next_survey(proc_dir, refine=True)
    cmd.run_name = "run_02"
    cmd.run_card = {"nevents": 300, "use_syst": False, "refine_evt_by_job": -1}
    cmd.do_survey("run_02")
    assert "orig_survey" not in calls and len(fake_factory.made) == 1  # no survey, no MadNIS
    after = parse_results_dat((g1 / "results.dat").read_text())
    assert (after.axsec, after.xerru, after.nevents) == (before.axsec, before.xerru, before.nevents)
    assert after.nunwgt == 0 and after.nw == 0 and after.luminosity == 0 and after.th_nunwgt == 0
    assert not list(sub.glob("P*/G*/events.lhe")) and (g1 / "ftn26").is_file()
    assert cmd.run_card["refine_evt_by_job"] == launch.REFINE_EVT_BY_JOB  # one job per channel: ftn26 is used
    assert calls.count("compile") == 2 and cmd.results["cross"] == pytest.approx(845.48, rel=0.02)  # the MadNIS sigma per channel
    cmd.do_refine("300")
    assert calls[-1] == "orig_refine"  # MadEvent's own refine
    assert launch._zero_event_counts(" 1 2 3 4 5 6 7 8 9 10 11 12 13\nx") == " 1 2 3 4 0 6 0 0.00000E+00 9 10 11 12 0\nx"


def test_commands_installed_and_uninstalled(fake_mg5):
    mod, banner, _ = fake_mg5
    for name in ("do_madnis_train", "help_madnis_generate", "complete_madnis_channels", "do_madnis_plots"):
        assert hasattr(mod.MadEventCmd, name)
    rc = banner.RunCardLO()
    rc.default_setup()
    assert rc["madnis"] is False
    hooks.uninstall_hooks()
    assert not hasattr(mod.MadEventCmd, "do_madnis_train")
    assert mod.MadEventCmd.do_survey.__name__ == "do_survey" and not hasattr(mod.MadEventCmd.do_survey,
                                                                              "_madnis_original")
    rc = banner.RunCardLO()
    rc.default_setup()
    assert "madnis" not in rc
    assert hooks.install_hooks(import_mg5=False)  # the fixture's uninstall then finds it installed again


def test_channels_table_and_replot(fake_mg5, proc_dir):
    from madnis_plugin.mg5.commands import channels_table, replot

    mod, _, _ = fake_mg5
    write_card(proc_dir, FAST)
    mod.MadEventCmd().do_survey("run_01")
    text = channels_table(proc_dir)
    assert "P1_qq_ll: 2 G directories" in text and "P2_gg_ll/G2" in text and "active" in text
    os.remove(Path(proc_dir) / "HTML" / "run_01" / "madnis_loss.png")
    paths = replot(proc_dir)
    assert any(p.endswith("madnis_loss.png") for p in paths)
    assert (Path(proc_dir) / "HTML" / "run_01" / "madnis_loss.png").is_file()


def test_channels_table_of_a_trained_only_model(fake_mg5, proc_dir):
    """``madnis_train`` leaves a checkpoint and no refine summary: the table shows the training's running σ_i."""
    import shutil

    from madnis_plugin.mg5.commands import channels_table
    from madnis_plugin.mg5.launch import CHECKPOINT_NAME

    mod, _, _ = fake_mg5
    assert "no MadNIS run yet" in channels_table(proc_dir)
    write_card(proc_dir, FAST)
    mod.MadEventCmd().do_survey("run_01")
    trained = Path(proc_dir) / "Events" / "run_02"
    trained.mkdir()
    shutil.copy(Path(proc_dir) / "Events" / "run_01" / CHECKPOINT_NAME, trained / CHECKPOINT_NAME)
    text = channels_table(proc_dir, "run_02")
    assert "MadNIS model run_02: trained" in text and "no refine phase yet" in text
    rows = [ln.split() for ln in text.splitlines() if ln.strip().endswith(("active", "dropped")) and ln[:6].strip().isdigit()]
    shares = [float(r[3].rstrip("%")) for r in rows if r[-1] == "active"]
    assert len(rows) >= 2 and sum(shares) == pytest.approx(100.0, abs=0.05)
