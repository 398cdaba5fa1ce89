"""The MadNIS launch flow on a fake process: G-directory outputs, cross section, checkpoint reuse, interruption."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from madnis_plugin.mg5 import lhe
from madnis_plugin.mg5.cards import parse_entries
from madnis_plugin.mg5.launch import CHECKPOINT_NAME, LaunchSettings, MadnisRun, read_couplings, resolve_checkpoint
from madnis_plugin.mg5.results import parse_results_dat
from conftest import FAST


def _settings(proc_dir, nevents=400, run="run_01", **extra):
    opts = parse_entries({**FAST, **extra})
    return LaunchSettings(proc_dir, run, nevents, opts, aqed=1 / 132.5, aqcd=0.13)


def _gdirs(proc_dir):
    return sorted(proc_dir.glob("SubProcesses/P*/G*"))


def test_run_writes_everything_mg5_reads(proc_dir, fake_factory):
    s = _settings(proc_dir)
    summary = MadnisRun(s, process_factory=fake_factory).run()
    assert fake_factory.made[0].closed
    exact = 845.48  # 850 pb minus the cut sliver r1 > 0.995 (see fakes.py)
    assert abs(summary.cross - exact) < 5 * summary.error
    assert summary.error < 0.01 * exact
    gd = _gdirs(proc_dir)
    assert [g.name for g in gd] == ["G1", "G2", "G1", "G2.2"]
    tot = sum(parse_results_dat((g / "results.dat").read_text()).xsec for g in gd)
    assert tot == pytest.approx(summary.cross, rel=1e-4)
    n_events = 0
    for g in gd:
        res = parse_results_dat((g / "results.dat").read_text())
        evs = lhe.read_events(g / "events.lhe")
        assert len(evs) == res.nunwgt
        assert all(e["idprup"] == (1 if g.parent.name.startswith("P1") else 2) for e in evs)
        assert all(e["weight"] >= res.maxwgt * (1 - 1e-4) for e in evs)  # results.dat keeps 5 digits
        n_events += len(evs)
        assert (g / "ftn26").is_file()
    # about madnis_event_factor × nevents handed over (Poisson around 480), never fewer than nevents
    assert n_events == summary.n_handed_to_mg5 and 400 <= n_events <= 480 + 5 * 480**0.5
    assert (proc_dir / "Events" / "run_01" / CHECKPOINT_NAME).is_file()
    js = json.loads((proc_dir / "Events" / "run_01" / "madnis_results.json").read_text())
    assert js["cross"] == summary.cross and len(js["channel_integrals"]) == 5
    assert js["n_calls_events"] == 0  # this fake has no event_details: fallback details, nothing evaluated
    assert {p.split("/")[-1] for p in js["plots"]} >= {"madnis_loss.png", "madnis_weights.png", "madnis_channels.png"}
    assert "flavour (representative subprocess)" in summary.faked_event_fields
    ev = lhe.read_events(gd[0] / "events.lhe")[0]
    assert ev["aqcd"] == pytest.approx(0.13) and ev["particles"][0]["col"] == 501


def test_reuse_without_retraining_and_resume(proc_dir, fake_factory):
    s1 = _settings(proc_dir)
    MadnisRun(s1, process_factory=fake_factory).run()
    ck = s1.checkpoint_path
    calls_train = fake_factory.made[0].calls
    # reuse: no training calls, a different run directory, same model
    s2 = _settings(proc_dir, run="run_02")
    s2.load_checkpoint = ck
    s2.train = False
    r2 = MadnisRun(s2, process_factory=fake_factory)
    summary2 = r2.run()
    assert r2.trainer.step == 60 and summary2.resumed_from == str(ck)
    assert fake_factory.made[1].calls < calls_train  # only sampling (+ diagnostics)
    assert (proc_dir / "Events" / "run_02" / CHECKPOINT_NAME).is_file()
    # resume: longer training continues from step 60
    s3 = _settings(proc_dir, run="run_03", madnis_n_steps=80)
    s3.load_checkpoint = ck
    r3 = MadnisRun(s3, process_factory=fake_factory)
    r3.open()
    r3.train()
    r3.close()
    assert r3.trainer.step == 80
    assert torch.load(s3.checkpoint_path, weights_only=False)["counters"]["step"] == 80


def test_ctrl_c_in_training_leaves_checkpoint_and_no_events(proc_dir, fake_factory, monkeypatch):
    from madnis_plugin.core import trainer as trainer_mod

    orig = trainer_mod.Trainer.train_step

    def interrupting(self):
        if self.step == 25:
            raise KeyboardInterrupt
        return orig(self)

    monkeypatch.setattr(trainer_mod.Trainer, "train_step", interrupting)
    s = _settings(proc_dir)
    with pytest.raises(KeyboardInterrupt):
        MadnisRun(s, process_factory=fake_factory).run()
    assert fake_factory.made[0].closed
    assert torch.load(s.checkpoint_path, weights_only=False)["counters"]["step"] == 25
    assert not list(proc_dir.glob("SubProcesses/P*/G*/events.lhe"))
    monkeypatch.setattr(trainer_mod.Trainer, "train_step", orig)
    # the resumed launch gets another seed from MG5 (here: madnis_seed), as every new launch does
    s2 = _settings(proc_dir, run="run_02", madnis_seed=98765)
    s2.load_checkpoint = resolve_checkpoint(proc_dir, "Events/run_01")
    run = MadnisRun(s2, process_factory=fake_factory)
    resumed = run.run()
    assert run.trainer.step == 60
    # an uninterrupted run with run_01's settings gives the same numbers as interrupt + resume
    # (run_02 left G*/ftn26 grids behind, which run_01 did not find: start VEGAS the same way as run_01)
    s3 = _settings(proc_dir, run="run_03", madnis_survey_grids=False)
    uninterrupted = MadnisRun(s3, process_factory=fake_factory).run()
    assert resumed.cross == uninterrupted.cross and resumed.error == uninterrupted.error


def test_ctrl_c_while_writing_leaves_no_event_file(proc_dir, fake_factory, monkeypatch):
    s = _settings(proc_dir)
    run = MadnisRun(s, process_factory=fake_factory)
    run.open()
    run.train()
    run.sample()
    calls = {"n": 0}
    orig = lhe.AtomicGroup.stage

    def stage(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return orig(self, *a, **k)

    monkeypatch.setattr(lhe.AtomicGroup, "stage", stage)
    with pytest.raises(KeyboardInterrupt):
        run.write()
    run.close()
    leftovers = [p for p in proc_dir.rglob("*") if p.name.endswith(".tmp") or p.name == "events.lhe"]
    assert leftovers == []


def test_more_sampling_rounds_when_efficiency_is_low(proc_dir, fake_factory):
    s = _settings(proc_dir, nevents=3000, madnis_n_integration=1000)
    summary = MadnisRun(s, process_factory=fake_factory).run()
    assert summary.n_weighted > 1000
    assert summary.n_handed_to_mg5 >= 1.2 * 3000 * 0.95


def test_checkpoint_entry_and_couplings(proc_dir):
    from madnis_plugin.mg5.cards import RunCardError

    assert resolve_checkpoint(proc_dir, "") is None
    with pytest.raises(RunCardError, match="madnis_checkpoint"):
        resolve_checkpoint(proc_dir, "Events/run_09/madnis_checkpoint.pt")
    aqed, aqcd = read_couplings(proc_dir)
    assert aqed == pytest.approx(1 / 132.507) and aqcd == pytest.approx(0.13)
    assert np.isfinite(aqed)


def test_vegas_starts_from_survey_grids(proc_dir, fake_factory):
    import numpy as np

    from madnis_plugin.bridge import gridfile
    from madnis_plugin.mg5.grids import initial_group_edges

    edges01 = np.tile(np.linspace(0, 1, 97) ** 2, (2, 1))  # bins crowd at small r
    g1 = proc_dir / "SubProcesses" / "P1_qq_ll" / "G1"
    g1.mkdir(parents=True)
    gridfile.write_grid(g1 / "ftn26", gridfile.MadEventGrid.from_unit_edges(edges01))
    run = MadnisRun(_settings(proc_dir, madnis_vegas_iterations=0), process_factory=fake_factory)
    run.open()
    edges, found = initial_group_edges(proc_dir, run.cmap, run.integrand.groups, run._n_dims_of_channel, 2, 64)
    assert found == 1 and edges.shape == (4, 2, 65)
    np.testing.assert_allclose(edges[0, 0], np.linspace(0, 1, 65) ** 2, atol=1e-3)
    np.testing.assert_allclose(edges[1, 0], np.linspace(0, 1, 65))  # group of G2: no grid, flat
    trainer = run._make_trainer()
    run._vegas_from_survey(trainer)
    assert run.vegas_from_madevent == 1
    assert float(trainer.model.vegas.edges[0, 0, 32]) == pytest.approx(0.25, abs=1e-3)
    run.close()


def test_write_back_grids_and_dropped_marker(proc_dir):
    import numpy as np

    from madnis_plugin.bridge import gridfile
    from madnis_plugin.mg5.grids import DROPPED_MARKER, write_back_grids
    from madnis_plugin.mg5.results import build_channel_map
    from fakes import FakeProcess

    proc = FakeProcess(proc_dir)
    cmap = build_channel_map(proc.info.subprocesses, proc_dir)
    edges = np.tile(np.linspace(0, 1, 65), (4, 2, 1))
    active = [True, False, True, True, False]  # G2 of P1 and G2.2 of P2 lose their only channel
    counts = write_back_grids(proc_dir, cmap, proc.groups, edges, active, lambda c: 2)
    assert counts == {"written": 2, "dropped": 2}
    sub = proc_dir / "SubProcesses"
    assert (sub / "P1_qq_ll" / "G2" / DROPPED_MARKER).is_file() and (sub / "P2_gg_ll" / "G2.2" / DROPPED_MARKER).is_file()
    g = gridfile.read_grid(sub / "P1_qq_ll" / "G1" / "ftn26")
    assert g.invar == 2
    np.testing.assert_allclose(g.to_unit_edges(), np.tile(np.linspace(0, 1, 97), (2, 1)), atol=1e-12)
    active = [True] * 5
    write_back_grids(proc_dir, cmap, proc.groups, edges, active, lambda c: 2)
    assert not (sub / "P1_qq_ll" / "G2" / DROPPED_MARKER).exists()


def test_events_carry_the_bridge_details(proc_dir):
    """With a process that has event_details (ABI 2), the G-directory events carry its record: flavours, mirror,
    Z line, lab momenta, SCALUP, AQCDUP, helicities; nothing is filled by fallbacks."""
    from fakes import FakeProcessWithDetails

    made = []

    def factory(me_dir, sde_strategy, n_workers):
        made.append(FakeProcessWithDetails(me_dir))
        return made[-1]

    summary = MadnisRun(_settings(proc_dir), process_factory=factory).run()
    assert summary.faked_event_fields == []
    # without mb_event_full, details and record are two bridge passes per event handed to MG5, and are counted
    assert summary.n_calls_events == 2 * summary.n_handed_to_mg5 > 0
    evs = lhe.read_events(proc_dir / "SubProcesses" / "P1_qq_ll" / "G1" / "events.lhe")
    assert evs
    for e in evs[:50]:
        q = e["particles"]
        assert [x["pdg"] for x in q] == [-1, 1, 23, -11, 11] and [x["status"] for x in q] == [-1, -1, 2, 1, 1]
        assert e["aqcd"] == pytest.approx(0.118) and e["aqed"] == pytest.approx(1 / 132.5)
        assert e["scale"] == pytest.approx(q[2]["m"], rel=1e-6)
        assert q[0]["p"][0] == pytest.approx(65.0) and q[0]["spin"] == 1.0
        np.testing.assert_allclose(np.sum([x["p"] for x in q[:2]], 0), np.sum([x["p"] for x in q[3:]], 0), atol=1e-5)


def test_auto_stop_ends_training_when_it_no_longer_pays(proc_dir, fake_factory):
    """madnis_auto_stop: training stops before madnis_n_steps once the estimated generation calls stop falling
    by more than the training calls spent; every check is recorded in madnis_results.json."""
    s = _settings(proc_dir, madnis_n_steps=2000, madnis_auto_stop=True)
    run = MadnisRun(s, process_factory=fake_factory)
    summary = run.run()
    hist = summary.auto_stop_history
    assert 100 <= run.trainer.step < 2000 and run.trainer.step == hist[-1]["step"]
    assert len(hist) >= 3 and all(0 < h["eps"] <= 1 for h in hist)
    # the stop condition held at the last two checks
    for a, b in zip(hist[-3:-1], hist[-2:]):
        assert a["calls_to_generate"] - b["calls_to_generate"] < b["training_calls"] - a["training_calls"]
    assert abs(summary.cross - 845.48) < 5 * summary.error
    js = json.loads((proc_dir / "Events" / "run_01" / "madnis_results.json").read_text())
    assert js["auto_stop_history"] == hist and js["n_steps"] == run.trainer.step


def test_auto_stop_off_trains_to_n_steps(proc_dir, fake_factory):
    run = MadnisRun(_settings(proc_dir, madnis_n_steps=400, madnis_auto_stop=False), process_factory=fake_factory)
    assert run.run().auto_stop_history == [] and run.trainer.step == 400
