"""Event writing: lab boost, leshouche parsing, partial unweighting, atomic files, LHE round trip (pylhe)."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

from madnis_plugin.mg5 import lhe
from fakes import LESHOUCHE_P1


def _cm_event(sqrt_s, cos):
    e = sqrt_s / 2
    s = np.sqrt(1 - cos**2)
    return np.array([[[e, 0, 0, e], [e, 0, 0, -e], [e, e * s, 0, e * cos], [e, -e * s, 0, -e * cos]]])


def test_boost_to_lab_gives_parton_momenta():
    x1, x2, eb = 0.02, 0.005, (6500.0, 6500.0)
    sqrt_s = 2 * np.sqrt(x1 * x2) * 6500.0
    p = lhe.boost_to_lab(_cm_event(sqrt_s, 0.3), np.array([x1]), np.array([x2]), eb)
    np.testing.assert_allclose(p[0, 0], [x1 * 6500, 0, 0, x1 * 6500], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(p[0, 1], [x2 * 6500, 0, 0, -x2 * 6500], rtol=1e-12, atol=1e-9)
    # momentum conservation and masses survive the boost
    np.testing.assert_allclose(p[0, :2].sum(0), p[0, 2:].sum(0), atol=1e-9)
    np.testing.assert_allclose(lhe.invariant_mass(p[0]), 0.0, atol=1e-5)


def test_read_leshouche(tmp_path):
    (tmp_path / "leshouche.inc").write_text(LESHOUCHE_P1)
    les = lhe.read_leshouche(tmp_path)
    assert les.idup[(1, 1)] == (2, -2, -11, 11) and les.idup[(2, 1)] == (4, -4, -11, 11)
    pdg, flow = les.representative()
    assert pdg == (2, -2, -11, 11) and flow == [(501, 0), (0, 501), (0, 0), (0, 0)]
    assert lhe.read_leshouche(tmp_path / "nothing").idup == {}


def test_partial_unweighting_is_unbiased():
    rng = np.random.default_rng(1)
    w = rng.exponential(1.0, 200_000)
    idx, nw = lhe.partial_unweight(w, 2.0, rng)
    assert np.all(nw >= 2.0) and np.all(nw[w[idx] > 2.0] == w[idx][w[idx] > 2.0])
    assert abs(nw.sum() - w.sum()) < 5 * np.sqrt(2.0 * w.sum())
    assert idx.size < w.size / 1.8


def test_p_group_number():
    assert lhe.p_group_number("P1_qq_ll") == 1 and lhe.p_group_number("P12_gg_ttx") == 12
    assert lhe.p_group_number("Pfoo") == 1


def test_format_and_read_back_and_pylhe(tmp_path):
    sub = lhe.SubprocessEventInfo(idprup=3, n_external=4, n_incoming=2, pdg=(2, -2, -11, 11), masses=(0.0,) * 4,
                                  ebeam=(6500.0, 6500.0), colour=((501, 0), (0, 501), (0, 0), (0, 0)))
    p = np.concatenate([_cm_event(91.0, 0.1), _cm_event(120.0, -0.7)])
    det = lhe.fallback_details(p, sub, aqed=1 / 132.5, aqcd=0.118,
                               given=lhe.EventDetails(x1x2=np.array([[0.01, 0.0098], [0.003, 0.0184]])))
    assert "frame (partonic c.m., no x1/x2)" not in det.faked
    text = lhe.format_events(p, np.array([1.5, 2.5]), sub, det)
    init = lhe.init_block((2212, 2212), (6500, 6500), (247000, 247000), [(4.0, 0.1, 4.0, 3)])
    path = lhe.write_lhe_file(tmp_path / "ev.lhe.gz", text, init, "<MGVersion>\n3.5.7\n</MGVersion>")
    evs = lhe.read_events(path)
    assert len(evs) == 2 and evs[0]["idprup"] == 3 and evs[1]["weight"] == 2.5
    assert [q["pdg"] for q in evs[0]["particles"]] == [2, -2, -11, 11]
    assert evs[0]["particles"][0]["col"] == 501 and evs[0]["particles"][1]["acol"] == 501
    tot = np.array([q["p"] for q in evs[0]["particles"]])
    np.testing.assert_allclose(tot[:2].sum(0), tot[2:].sum(0), atol=1e-6)
    pylhe = pytest.importorskip("pylhe")
    f = pylhe.LHEFile.fromfile(str(path), generator=False)
    events = list(f.events)
    assert len(events) == 2 and events[1].eventinfo.weight == pytest.approx(2.5)
    assert [int(q.id) for q in events[0].particles] == [2, -2, -11, 11]
    assert int(f.init.procInfo[0].procId) == 3


def test_atomic_group_all_or_nothing(tmp_path):
    g = lhe.AtomicGroup()
    g.stage(tmp_path / "a" / "events.lhe", "A")
    g.stage(tmp_path / "b" / "events.lhe", "B")
    assert not (tmp_path / "a" / "events.lhe").exists()
    g.abort()
    assert not any(f.name.endswith(".tmp") for f in tmp_path.rglob("*"))
    with pytest.raises(KeyboardInterrupt):
        with lhe.AtomicGroup() as g:
            g.stage(tmp_path / "c.lhe", "C")
            raise KeyboardInterrupt
    assert not (tmp_path / "c.lhe").exists() and not list(tmp_path.glob(".c.lhe*"))
    with lhe.AtomicGroup() as g:
        g.stage(tmp_path / "d.lhe.gz", "D")
    assert gzip.open(tmp_path / "d.lhe.gz", "rt").read() == "D"


def test_atomic_write_interrupted_leaves_old_file(tmp_path, monkeypatch):
    f = tmp_path / "x.lhe"
    f.write_text("old")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        lhe.atomic_write_text(f, "new")
    assert f.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


# ---------------------------------------------------------------------------------------------------- ABI 2 details
def _reference_details(n=40):
    """Event details of the project's reference process (e+ e- > mu+ mu-) from the real bridge."""
    from madnis_plugin.bridge.process import load_process

    rng = np.random.default_rng(7)
    r = rng.random((4 * n, 3))
    ch = rng.integers(0, 2, 4 * n)
    with load_process("reference", n_workers=1) as proc:
        ev = proc.evaluate(ch, r)
        ok = np.flatnonzero(ev.status == 0)[:n]
        det = proc.event_details(ch[ok], r[ok])
        info = proc.info.subprocesses[0]
    return ev.momenta[ok], det, info


def test_details_from_the_bridge_fill_every_field(tmp_path):
    mom, det, info = _reference_details()
    sub = lhe.SubprocessEventInfo(idprup=1, n_external=4, n_incoming=2, pdg=info.pdg, masses=info.masses,
                                  ebeam=info.ebeam)
    d = lhe.fallback_details(mom, sub, aqed=1 / 132.507, aqcd=0.118,
                             given=lhe.details_from_process(det, 4, aqed=1 / 132.507))
    assert d.faked == []
    text = lhe.format_events(mom, np.ones(len(mom)), sub, d)
    path = lhe.write_lhe_file(tmp_path / "ref.lhe", text, lhe.init_block((-11, 11), info.ebeam, (0, 0), [(1, 0, 1, 1)]))
    evs = lhe.read_events(path)
    assert len(evs) == len(mom)
    for e, k in zip(evs, range(len(mom))):
        assert [q["pdg"] for q in e["particles"]] == [-11, 11, -13, 13]
        assert [q["spin"] for q in e["particles"]] == list(det.helicity[k].astype(float))
        assert e["scale"] == pytest.approx(det.scale[k], rel=1e-7) and e["aqcd"] == -1.0
        np.testing.assert_allclose([q["p"] for q in e["particles"]], det.momenta_lab[k], rtol=1e-9, atol=1e-9)
    bad = dataclasses_replace_status(det)
    with pytest.raises(ValueError, match="status"):
        lhe.details_from_process(bad, 4)


def dataclasses_replace_status(det):
    import dataclasses

    st = det.status.copy()
    st[0] = 1
    return dataclasses.replace(det, status=st)


def test_record_with_resonance_round_trip(tmp_path):
    from fakes import FakeProcessWithDetails, make_process_dir

    me = make_process_dir(tmp_path / "P")
    proc = FakeProcessWithDetails(me)
    r = np.random.default_rng(3).random((5, 2)) * 0.9
    ev = proc.evaluate(np.zeros(5, np.int64), r)
    sub = lhe.SubprocessEventInfo(idprup=1, n_external=4, n_incoming=2, pdg=(2, -2, -11, 11), masses=(0.0,) * 4,
                                  ebeam=(6500.0, 6500.0))
    det = lhe.fallback_details(ev.momenta, sub, aqed=1 / 132.5, aqcd=0.118,
                               given=lhe.details_from_process(proc.event_details(np.zeros(5), r), 4, aqed=1 / 132.5))
    text = lhe.format_events(ev.momenta, np.full(5, 2.0), sub, det)
    path = lhe.write_lhe_file(tmp_path / "rec.lhe.gz", text,
                              lhe.init_block((2212, 2212), (6500, 6500), (247000, 247000), [(10.0, 0.1, 10.0, 1)]))
    evs = lhe.read_events(path)
    assert [q["pdg"] for q in evs[0]["particles"]] == [-1, 1, 23, -11, 11]
    assert [q["status"] for q in evs[0]["particles"]] == [-1, -1, 2, 1, 1]
    assert evs[0]["particles"][2]["m"] == pytest.approx(2 * ev.momenta[0, 0, 0])
    pylhe = pytest.importorskip("pylhe")
    events = list(pylhe.LHEFile.fromfile(str(path), generator=False).events)
    q = events[0].particles
    assert [int(x.id) for x in q] == [-1, 1, 23, -11, 11] and [int(x.status) for x in q] == [-1, -1, 2, 1, 1]
    assert [int(x.mother1) for x in q] == [0, 0, 1, 3, 3] and int(q[0].color2) == 501 and int(q[1].color1) == 501
    tot_in = np.array([[x.e, x.px, x.py, x.pz] for x in q[:2]]).sum(0)
    tot_out = np.array([[x.e, x.px, x.py, x.pz] for x in q[3:]]).sum(0)
    np.testing.assert_allclose(tot_in, tot_out, atol=1e-6)


def test_fortran_e_matches_madevent_strings():
    # strings copied from a MadEvent 3.5.7 <mgrwt> block (p p > e+ e-, use_syst = True)
    assert lhe.fortran_e(89.036163) == " 0.89036163E+02"
    assert lhe.fortran_e(0.016220394) == " 0.16220394E-01"
    assert lhe.fortran_e(3514.8834) == " 0.35148834E+04"
    assert lhe.fortran_e(0.0) == " 0.00000000E+00"
    assert lhe.fortran_e(-1.5) == "-0.15000000E+01"
    assert lhe.fortran_e(9.999999999) == " 0.10000000E+02"  # rounding carries into the next decade
    assert lhe.fortran_e(1e-3) == " 0.10000000E-02"
    for x in (1e-12, 0.3, 7.0, 123456.789, 6.5e3):
        assert float(lhe.fortran_e(x)) == pytest.approx(x, rel=1e-8)


def test_mgrwt_block_written_and_read_back(tmp_path):
    """use_syst: every event carries MadEvent's <mgrwt> block (the layout MG5's lhe_parser.parse_lo_weight reads);
    a beam without PDF weight is written as ``0``; pylhe still reads the file."""
    import re
    from types import SimpleNamespace

    sub = lhe.SubprocessEventInfo(idprup=1, n_external=4, n_incoming=2, pdg=(2, -2, -11, 11), masses=(0.0,) * 4,
                                  ebeam=(6500.0, 6500.0), colour=((501, 0), (0, 501), (0, 0), (0, 0)))
    p = np.concatenate([_cm_event(91.0, 0.1), _cm_event(120.0, -0.7)])
    syst = SimpleNamespace(n_qcd=np.array([0, 2]), ren_scale=np.array([91.0, 120.0]),
                           pdf_pdg=np.array([[2, -2], [21, 0]]), pdf_x=np.array([[0.01, 0.0098], [0.003, 0.0]]),
                           pdf_q=np.array([[91.0, 91.0], [120.0, 0.0]]), totfact=np.array([3514.8834, 17.5]))
    det = lhe.fallback_details(p, sub, aqed=1 / 132.5, aqcd=0.118,
                               given=lhe.EventDetails(x1x2=np.array([[0.01, 0.0098], [0.003, 0.0184]]), syst=syst))
    text = lhe.format_events(p, np.array([1.5, 2.5]), sub, det)
    blocks = re.findall(r"<mgrwt>\n(.*?)</mgrwt>\n</event>", text, re.S)
    assert len(blocks) == 2
    assert blocks[0] == ("<rscale>  0 0.91000000E+02</rscale>\n<asrwt>0</asrwt>\n"
                         '<pdfrwt beam="1">  1        2 0.10000000E-01 0.91000000E+02</pdfrwt>\n'
                         '<pdfrwt beam="2">  1       -2 0.98000000E-02 0.91000000E+02</pdfrwt>\n'
                         "<totfact> 0.35148834E+04</totfact>\n")
    assert '<pdfrwt beam="2">0</pdfrwt>' in blocks[1] and "<rscale>  2 0.12000000E+03</rscale>" in blocks[1]
    path = lhe.write_lhe_file(tmp_path / "syst.lhe.gz", text,
                              lhe.init_block((2212, 2212), (6500, 6500), (247000, 247000), [(4.0, 0.1, 4.0, 1)]))
    evs = lhe.read_events(path)
    assert len(evs) == 2 and [q["pdg"] for q in evs[1]["particles"]] == [2, -2, -11, 11]
    pylhe = pytest.importorskip("pylhe")
    assert len(list(pylhe.LHEFile.fromfile(str(path), generator=False).events)) == 2
    # no syst object: no block (use_syst off, or a process without the information)
    plain = lhe.format_events(p, np.array([1.5, 2.5]), sub,
                              lhe.fallback_details(p, sub, aqed=1 / 132.5, aqcd=0.118))
    assert "<mgrwt>" not in plain
