"""Against a real MG5_aMC 3.5.x (MG5_HOME): MG5's own readers accept what the plugin writes, the plugin hooks the
real MadEventCmd, and (slow) a full `launch` with madnis = True / False on p p > e+ e-.

Skipped unless MG5_HOME is set (tests/conftest.py). Process directories are made under pytest's tmp_path.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from madnis_plugin.mg5.cards import parse_entries, register_run_card_entries, repair_run_inc
from madnis_plugin.mg5.launch import LaunchSettings, MadnisRun
from conftest import FAST

pytestmark = pytest.mark.mg5
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mg5():
    home = Path(os.environ["MG5_HOME"]).resolve()
    if str(home) not in sys.path:
        sys.path.insert(0, str(home))
    import madgraph.madevent.sum_html as sum_html
    import madgraph.various.banner as banner_mod
    import madgraph.various.lhe_parser as lhe_parser

    return home, sum_html, lhe_parser, banner_mod


def _default_run_card(home, banner_mod, path: Path) -> str:
    banner_mod.RunCardLO().write(str(path), template=str(home / "Template" / "LO" / "Cards" / "run_card.dat"),
                                 python_template=True)
    return path.read_text()


def test_mg5_combines_our_gdirs_to_exactly_nevents(mg5, proc_dir, fake_factory, tmp_path):
    home, sum_html, lhe_parser, banner_mod = mg5
    s = LaunchSettings(proc_dir, "run_01", 300, parse_entries(FAST))
    summary = MadnisRun(s, process_factory=fake_factory).run()
    banner = banner_mod.Banner()
    banner["mgruncard"] = _default_run_card(home, banner_mod, tmp_path / "rc.dat")
    events = lhe_parser.MultiEventFile()
    events.banner = banner
    tot = 0.0
    for g in sorted(proc_dir.glob("SubProcesses/P*/G*")):
        r = sum_html.OneResult("")
        r.read_results(str(g / "results.dat"))
        tot += r.xsec
        events.add(str(g / "events.lhe"), r.get("xsec"), r.get("xerru"), r.get("axsec"))
    assert tot == pytest.approx(summary.cross, rel=1e-4)
    random.seed(1)
    out = tmp_path / "unweighted_events.lhe.gz"
    n = events.unweight(str(out), lambda e: e.wgt, trunc_error=1e-2, event_target=300, normalization="average")
    assert n == 300
    read = list(lhe_parser.EventFile(str(out)))
    assert len(read) == 300 and len({e.wgt for e in read}) == 1
    assert read[0].wgt == pytest.approx(summary.cross, rel=1e-3)
    init = re.search(r"<init>\n(.*?)</init>", gzip.open(out, "rt").read(), re.S).group(1).split("\n")
    assert sorted(int(line.split()[3]) for line in init[1:3]) == [1, 2]  # one line per P-group


def test_registration_and_run_inc_repair_with_mg5_runcard(mg5, tmp_path):
    home, _, _, banner_mod = mg5
    card = _default_run_card(home, banner_mod, tmp_path / "rc0.dat")
    card += "  True = madnis\n  300 = madnis_n_steps\n  cpu = madnis_device\n  3 = madnis_min_points_per_channel\n"
    (tmp_path / "run_card.dat").write_text(card)
    rc = banner_mod.RunCard(str(tmp_path / "run_card.dat"), consistency=False)
    assert "madnis_n_steps" in rc.user_set  # unknown entries before registration (MG5 guesses the types)
    klass = banner_mod.RunCardLO
    try:
        register_run_card_entries(klass)
        rc2 = banner_mod.RunCard(str(tmp_path / "run_card.dat"), consistency=False)
        assert rc2["madnis"] is True and rc2["madnis_n_steps"] == 300 and rc2["madnis_min_points_per_channel"] == 3
        assert not any(n.startswith("madnis") for n in rc2.includepath[True])  # never written to Fortran
        opts = parse_entries({k: rc2[k] for k in rc2.user_set if k.startswith("madnis")})
        assert opts.config.n_steps == 300
    finally:
        klass.default_setup = klass.default_setup.__wrapped__
        del klass._madnis_registered
    inc = ("      INTEGER MADNIS_N_STEPS ! added by autodef\n      LOGICAL MADNIS ! added by autodef\n"
           "C     START USER COMMON BLOCK\n      COMMON/USER_CUSTOM_RUN/MADNIS_N_STEPS,MADNIS\n"
           "C     STOP USER COMMON BLOCK\n")
    assert "MADNIS" not in repair_run_inc(inc)


def _mg5(home, script: Path, env=None, timeout=1500):
    return subprocess.run([sys.executable, str(home / "bin" / "mg5_aMC"), str(script)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=script.parent)


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    d = tmp_path_factory.mktemp("plug")
    (d / "MG5aMC_PLUGIN").mkdir()
    (d / "MG5aMC_PLUGIN" / "__init__.py").write_text("")
    (d / "MG5aMC_PLUGIN" / "madnis").symlink_to(REPO / "mg5_plugin_config")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(d), str(REPO), env.get("PYTHONPATH", "")])
    env["MADNIS_PLUGIN_TRACE"] = str(d / "trace.txt")
    return env, d


@pytest.mark.slow
def test_launch_ppee_with_and_without_madnis(mg5, plugin_env, tmp_path):
    home = mg5[0]
    env, plugdir = plugin_env
    out = tmp_path / "ppee"
    gen = tmp_path / "gen.mg5"
    gen.write_text(f"set auto_update 0 --no_save\nset automatic_html_opening False --no_save\n"
                   f"generate p p > e+ e-\noutput madevent {out} -nojpeg\n")
    r = _mg5(home, gen, env)
    assert r.returncode == 0 and (out / "bin" / "madevent").is_file(), r.stdout[-3000:]
    card = out / "Cards" / "run_card.dat"
    card.write_text(card.read_text() + "  True = madnis\n  150 = madnis_n_steps\n  3 = madnis_vegas_iterations\n"
                    "  3000 = madnis_vegas_samples\n  10000 = madnis_n_integration\n")
    launch = tmp_path / "launch.mg5"
    launch.write_text(f"set auto_update 0 --no_save\nset automatic_html_opening False --no_save\n"
                      f"launch {out}\n0\nset nevents 500\nset iseed 7\n0\n")
    r = _mg5(home, launch, env)
    log = r.stdout + r.stderr
    assert "MadNIS replaces survey + refine" in log, log[-4000:]
    ev = out / "Events" / "run_01"
    lhe = gzip.open(ev / "unweighted_events.lhe.gz", "rt").read()
    assert lhe.count("<event>") == 500 and "<MGRunCard>" in lhe and "madnis" in lhe
    xs = float(re.search(r"Cross-section :\s+([\d.eE+-]+)", log.split("combine_events")[-1]).group(1))
    assert 780 < xs < 900  # classic MadEvent: 842.2 +- 5.1 pb with the default cards
    assert (ev / "madnis_checkpoint.pt").is_file() and (ev / "madnis_results.json").is_file()
    js = json.loads((ev / "madnis_results.json").read_text())
    # the events' details (flavour, colour, helicity, record, <mgrwt>) cost one matrix-element pass per event
    # (mb_event_full), and are counted
    assert js["n_calls_events"] == js["n_handed_to_mg5"] > 0
    assert "MadNIS" in (out / "HTML" / "run_01" / "results.html").read_text()
    assert "internal.madevent_interface" not in (plugdir / "trace.txt").read_text()  # the MG5-shell route
    # the event record comes from the bridge (ABI 2): all flavours and both beam orders, Z lines, lab boost,
    # SCALUP = m_ll (Drell-Yan's dynamical scale), running alpha_s, helicities, colour
    lhe_parser = mg5[2]
    evs = list(lhe_parser.EventFile(str(ev / "unweighted_events.lhe.gz")))
    inc = [[p for p in e if p.status == -1] for e in evs]
    assert {abs(i[0].pid) for i in inc} == {1, 2, 3, 4} and 0.3 < sum(i[0].pid < 0 for i in inc) / len(evs) < 0.7
    assert 0.5 < sum(any(p.status == 2 and p.pid == 23 for p in e) for e in evs) / len(evs) < 0.95
    assert all(abs(i[0].pz + i[1].pz) > 1e-6 for i in inc)
    for e, i in zip(evs[:100], inc):
        q = [lhe_parser.FourMomentum(p) for p in e if p.status == 1]
        assert abs(e.scale - (q[0] + q[1]).mass) < 1e-4 * e.scale
        assert {int(p.helicity) for p in e if abs(p.status) == 1} <= {-1, 1}
        assert i[0].color1 + i[0].color2 == 501 and (i[0].color1 == i[1].color2 or i[0].color2 == i[1].color1)
    assert len({round(e.aqcd, 6) for e in evs}) > 100
    # use_syst = True (MG5's default run card): MadEvent's <mgrwt> block in every event, read by MG5's own parser;
    # per beam the PDF parton and x are the incoming parton of that beam, the factorisation scale is SCALUP
    for e, i in zip(evs, inc):
        lo = e.parse_lo_weight()
        assert lo is not None and lo["n_qcd"] == 0 and lo["asrwt"] == [] and lo["tot_fact"] > 0
        assert lo["ren_scale"] == pytest.approx(e.scale, rel=1e-6)
        b1 = i[0] if i[0].pz > 0 else i[1]
        b2 = i[1] if b1 is i[0] else i[0]
        assert (lo["pdf_pdg_code1"], lo["pdf_pdg_code2"]) == ([b1.pid], [b2.pid])
        assert lo["pdf_x1"][0] == pytest.approx(b1.E / 6500.0, rel=2e-6)
        assert lo["pdf_x2"][0] == pytest.approx(b2.E / 6500.0, rel=2e-6)
        assert lo["pdf_q1"][0] == pytest.approx(e.scale, rel=1e-6) == lo["pdf_q2"][0]
    assert "use_syst is switched off" not in log
    # ./bin/madevent route, from the saved model, no training
    r = subprocess.run([sys.executable, "-m", "madnis_plugin.cli", "generate", str(out), "--from", "run_01",
                        "--run-name", "run_02"], capture_output=True, text=True, env=env, timeout=1500)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "no further training" in r.stdout + r.stderr
    assert gzip.open(out / "Events" / "run_02" / "unweighted_events.lhe.gz", "rt").read().count("<event>") == 500
    # madnis = False: MG5's own survey/refine, exactly as without the plugin
    card.write_text(re.sub(r"(?m)^\s*True\s*=\s*madnis\b.*$", "  False = madnis", card.read_text()))
    r = _mg5(home, launch, env)
    log = r.stdout + r.stderr
    assert "MadNIS" not in log.split("generate_events")[-1] and "Nb of events :  500" in log, log[-3000:]
