"""Per-event details of the MG5 bridge (ABI 2) against a real MG5_aMC 3.5.x (marked ``mg5``).

Uses the cached process directories of test_mg5_bridge.py (p p > e+ e-, grouped u d~ > w+ w+ w-). Checked per event:
consistency with evaluate (status, the c.m. momenta boosted with x1, x2 and the beam mirror), momentum conservation
and masses in the lab frame, x1/x2 against the incoming lab momenta, valid colour lines (every tag once as colour
and once as anticolour, incoming ones counted reversed), helicities, SCALUP = √ŝ for Drell-Yan and αs(SCALUP)
monotonic, the LHE record (Z line on the Z channel); statistically: the weighted shares of the flavour combinations
(u u~, u~ u, d d~, ..., beams included) against MadEvent's own unweighted events and between the 'sample' and 'sum'
grouped modes; determinism across batches and worker processes.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest

from madnis_plugin.bridge.process import load_process

from .test_mg5_bridge import generated_process, p_dir_of

pytestmark = pytest.mark.mg5

EBEAM = 6500.0


@pytest.fixture(scope="module")
def ppee() -> Path:
    return p_dir_of(generated_process("ppee"))


@pytest.fixture(scope="module")
def www() -> Path:
    return p_dir_of(generated_process("www_group"))


def boost_z(p, x1, x2):
    e1, e2 = x1 * EBEAM, x2 * EBEAM
    beta = (e1 - e2) / (e1 + e2)
    gam = 1 / np.sqrt(1 - beta**2)
    out = p.copy()
    out[..., 0] = gam[:, None] * (p[..., 0] + beta[:, None] * p[..., 3])
    out[..., 3] = gam[:, None] * (p[..., 3] + beta[:, None] * p[..., 0])
    return out


def colour_lines_ok(col, status) -> bool:
    """Every tag appears exactly once as a colour and once as an anticolour of the 'outgoing' view (an incoming
    particle's colour counts as an outgoing anticolour and vice versa)."""
    eff_c, eff_a = [], []
    for (c, a), st in zip(col, status):
        if st == -1:
            c, a = a, c
        if c:
            eff_c.append(int(c))
        if a:
            eff_a.append(int(a))
    return sorted(eff_c) == sorted(eff_a) and len(set(eff_c)) == len(eff_c)


def check_kinematics(ev, d, masses):
    ok = d.valid
    np.testing.assert_array_equal(d.status, ev.status)
    assert ok.mean() > 0.1
    p_cm = ev.momenta[ok].copy()
    mir = d.mirror[ok] == 1
    # mirror: the c.m. configuration rotated by pi about x, incoming in beam order
    p_cm[mir] = p_cm[mir] * np.array([1, 1, -1, -1])
    p_cm[mir, :2] = p_cm[mir][:, [1, 0]]
    x = d.x1x2[ok]
    lab = d.momenta_lab[ok]
    scale = np.abs(lab).max()
    # MadEvent's boost (write_leshouche) takes the *proton* beam (mass m_p) from the c.m. frame to the lab, so the
    # massless partons carry x E_beam up to O(m_p^2/E_beam,cm^2) (seen: < 2e-5 relative, largest at large x)
    np.testing.assert_allclose(lab[:, 0], np.stack([x[:, 0] * EBEAM, 0 * x[:, 0], 0 * x[:, 0], x[:, 0] * EBEAM], 1),
                               rtol=1e-4, atol=1e-12 * scale)
    np.testing.assert_allclose(lab[:, 1], np.stack([x[:, 1] * EBEAM, 0 * x[:, 1], 0 * x[:, 1], -x[:, 1] * EBEAM], 1),
                               rtol=1e-4, atol=1e-12 * scale)
    np.testing.assert_allclose(lab, boost_z(p_cm, x[:, 0], x[:, 1]), rtol=1e-4, atol=1e-5 * scale)
    np.testing.assert_allclose(lab[:, :2].sum(1), lab[:, 2:].sum(1), atol=1e-9 * scale)
    m = np.sqrt(np.maximum(lab[..., 0] ** 2 - (lab[..., 1:] ** 2).sum(-1), 0))
    np.testing.assert_allclose(m, np.broadcast_to(masses, m.shape), atol=1e-5 * scale)
    assert np.all((x > 0) & (x <= 1))
    return ok


def test_ppee_details_kinematics_colour_scales(ppee):
    n = 3000
    r = np.random.default_rng(31).random((n, 4))
    with load_process(ppee, n_workers=2) as proc:
        for ch in (0, 1):
            c = np.full(n, ch)
            ev = proc.evaluate(c, r)
            d = proc.event_details(c, r)
            ok = check_kinematics(ev, d, np.zeros(4))
            pdg = d.pdg[ok]
            assert set(map(tuple, pdg)) <= {(q, -q, -11, 11) for q in (1, -1, 2, -2, 3, -3, 4, -4)}
            np.testing.assert_array_equal(np.sign(pdg[:, 0]) == 1, d.mirror[ok] == 0)  # quark in beam 1 unless mirrored
            np.testing.assert_array_equal(d.iproc[ok], np.where(np.isin(np.abs(pdg[:, 0]), (2, 4)), 0, 1))
            for col in d.icolup[ok][:200]:
                assert colour_lines_ok(col, [-1, -1, 1, 1]), col
            h = d.helicity[ok]
            assert set(np.unique(h)) <= {-1, 1}
            np.testing.assert_array_equal(h[:, 0], -h[:, 1])  # massless q q~ annihilation into a vector
            np.testing.assert_array_equal(h[:, 2], -h[:, 3])
            # SCALUP: Drell-Yan's default dynamical scale is sqrt(s_hat); alpha_s runs with it
            lab = d.momenta_lab[ok]
            mll = np.sqrt((lab[:, 2:].sum(1)[:, 0]) ** 2 - (lab[:, 2:].sum(1)[:, 1:] ** 2).sum(-1))
            np.testing.assert_allclose(d.scale[ok], mll, rtol=1e-6)
            a = d.alphas[ok][np.argsort(d.scale[ok])]
            assert np.all((a > 0.09) & (a < 0.3)) and np.all(np.diff(a) <= 1e-12)
            # the LHE record: beams, Z line on the Z channel near its pole (B.W. cutoff 15 Gamma), leptons
            rec = d.record
            assert rec.idup.shape[1] == 5
            nl = rec.n_lines[ok]
            has_z = nl == 5
            if ch == 0:
                assert not has_z.any()
            else:
                assert has_z.any() and np.all(np.abs(mll[has_z] - 91.188) < 15 * 2.4414 + 1e-6)
                z = rec.pup[ok][has_z][:, 2]
                assert np.all(rec.idup[ok][has_z][:, 2] == 23) and np.all(rec.istup[ok][has_z][:, 2] == 2)
                np.testing.assert_allclose(z[:, 4], mll[has_z], rtol=1e-9)
                np.testing.assert_array_equal(rec.mothup[ok][has_z][:, 3:], 3)
            # every record's externals = the details (no identical particles: same order)
            for k in np.flatnonzero(ok)[:100]:
                L = rec.n_lines[k]
                ext = [i for i in range(L) if rec.istup[k, i] in (-1, 1)]
                np.testing.assert_array_equal(rec.idup[k, ext], d.pdg[k])
                np.testing.assert_allclose(rec.pup[k, ext, :4], d.momenta_lab[k], rtol=0, atol=1e-9)
                np.testing.assert_array_equal(rec.icolup[k, ext], d.icolup[k])
                np.testing.assert_array_equal(rec.spinup[k, ext], d.helicity[k])


def _madevent_flavour_shares(me: Path) -> tuple[dict, int]:
    text = gzip.open(me / "Events" / "run_01" / "unweighted_events.lhe.gz", "rt").read()
    counts: dict = {}
    for block in re.findall(r"<event>\n(.*?)</event>", text, flags=re.S):
        lines = block.strip().split("\n")
        key = (int(lines[1].split()[0]), int(lines[2].split()[0]))
        counts[key] = counts.get(key, 0) + 1
    n = sum(counts.values())
    return counts, n


def _bridge_flavour_shares(proc, n, seed):
    """Weighted shares of (pdg beam 1, pdg beam 2) over flat points in every channel: sum of alpha_c w per key."""
    rng = np.random.default_rng(seed)
    keys, vals = [], []
    for c in range(proc.n_channels):
        r = rng.random((n, proc.n_dims))
        ev = proc.evaluate(np.full(n, c), r)
        d = proc.event_details(np.full(n, c), r, record=False)
        v = ev.channel_weight()
        keys.append(d.pdg[:, :2])
        vals.append(v)
    keys = np.concatenate(keys)
    vals = np.concatenate(vals)
    return keys, vals


def _shares_chi2(keys, vals, ref_counts, n_ref):
    tot = vals.sum()
    chi2, dof, table = 0.0, 0, {}
    for key, cnt in ref_counts.items():
        sel = (keys[:, 0] == key[0]) & (keys[:, 1] == key[1])
        share = vals[sel].sum() / tot
        # ratio estimator variance: Var(sum(v 1_sel - share v))/tot^2
        resid = vals * (sel - share)
        var_b = resid.var() * len(vals) / tot**2
        pr = cnt / n_ref
        var_r = pr * (1 - pr) / n_ref
        chi2 += (share - pr) ** 2 / (var_b + var_r)
        dof += 1
        table[key] = (share, pr)
    return chi2, dof - 1, table


def test_ppee_flavour_shares_match_madevent_and_sum_mode(ppee, monkeypatch):
    ref, n_ref = _madevent_flavour_shares(ppee.parent.parent)
    assert n_ref == 1000 and len(ref) == 8
    with load_process(ppee, n_workers=2) as proc:
        keys, vals = _bridge_flavour_shares(proc, 40_000, 41)
    chi2, dof, table = _shares_chi2(keys, vals, ref, n_ref)
    print(f"flavour shares vs MadEvent: chi2/ndf = {chi2:.2f}/{dof}", {k: tuple(round(x, 4) for x in v) for k, v in table.items()})
    assert chi2 < dof + 4 * np.sqrt(2 * dof), (chi2, dof, table)
    # every nonzero weight belongs to one of MadEvent's 8 combinations
    nz = vals != 0
    assert {tuple(k) for k in keys[nz]} == set(ref)
    # sum mode records one choice with probability |DSIG_k|/sum: the same weighted shares
    monkeypatch.setenv("MADNIS_MG5_GROUPED", "sum")
    with load_process(ppee, n_workers=2) as proc_s:
        keys_s, vals_s = _bridge_flavour_shares(proc_s, 40_000, 42)
        r = np.random.default_rng(3).random((300, 4))
        d1 = proc_s.event_details(np.ones(300, np.int64), r)
        d2 = proc_s.event_details(np.ones(100, np.int64), r[200:])
    np.testing.assert_array_equal(d1.pdg[200:], d2.pdg)
    np.testing.assert_array_equal(d1.momenta_lab[200:], d2.momenta_lab)
    for key in ref:
        a = vals[(keys[:, 0] == key[0]) & (keys[:, 1] == key[1])].sum() / vals.sum()
        b = vals_s[(keys_s[:, 0] == key[0]) & (keys_s[:, 1] == key[1])].sum() / vals_s.sum()
        assert abs(a - b) < 0.02, (key, a, b)


def test_ppee_details_deterministic_across_batches_and_processes(ppee):
    r = np.random.default_rng(51).random((600, 4))
    with load_process(ppee, n_workers=1) as proc:
        a = proc.event_details(np.ones(600, np.int64), r)
        perm = np.random.default_rng(52).permutation(600)
        b = proc.event_details(np.ones(600, np.int64), r[perm])
    with load_process(ppee, n_workers=2) as proc2:
        c = proc2.event_details(np.ones(600, np.int64), r)
    inv = np.argsort(perm)
    for f in ("status", "pdg", "icolup", "helicity", "momenta_lab", "x1x2", "scale", "alphas", "mirror", "iproc"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f)[inv], err_msg=f)
        np.testing.assert_array_equal(getattr(a, f), getattr(c, f), err_msg=f)
    np.testing.assert_array_equal(a.record.pup, c.record.pup)


def test_www_grouped_details(www):
    n = 1500
    r = np.random.default_rng(61).random((n, 7))
    with load_process(www, n_workers=2) as proc:
        info = proc.info.subprocesses[0]
        masses = np.asarray(info.masses)
        for ch in (0, 6):
            c = np.full(n, ch)
            ev = proc.evaluate(c, r)
            d = proc.event_details(c, r)
            ok = check_kinematics(ev, d, masses)
            assert np.all(d.pdg[ok] == [2, -1, 24, 24, -24]) and np.all(d.mirror[ok] == 0)
            for col, in zip(d.icolup[ok][:200]):
                assert colour_lines_ok(col, [-1, -1, 1, 1, 1]), col
            assert np.all(d.icolup[ok][:, 0] == [501, 0]) and np.all(d.icolup[ok][:, 1] == [0, 501])
            h = d.helicity[ok]
            assert set(np.unique(h[:, 2:])) <= {-1, 0, 1} and set(np.unique(h[:, :2])) <= {-1, 1}
            assert np.all(h[:, 0] == -1) and np.all(h[:, 1] == 1)  # W couplings: left-handed u, right-handed d~
            assert np.all(d.scale[ok] > 0) and np.all((d.alphas[ok] > 0.05) & (d.alphas[ok] < 0.2))
            rec = d.record
            assert np.all(rec.n_lines[ok] >= 5)
            assert np.all(rec.istup[ok][:, :2] == -1)


def test_syst_details_need_use_syst(ppee):
    """The <mgrwt> information exists only when MadEvent was built with use_syst = True: asked of a process built
    without it, the bridge says so (and names the run-card entry) instead of returning zeros."""
    from madnis_plugin.bridge.errors import InvalidInput

    r = np.random.default_rng(5).random((50, 4))
    with load_process(ppee, n_workers=1) as proc:
        assert proc.has_syst_details
        d = proc.event_details(np.zeros(50, np.int64), r, record=False)
        assert d.syst is None
        with pytest.raises(InvalidInput, match="use_syst"):
            proc.event_details(np.zeros(50, np.int64), r, syst=True)
        sp = proc.info.subprocesses[0]
    # the same shim opened as a bare library: the capability follows the exported symbol, not the way it was opened
    with load_process(sp.library, process_dir=sp.path, n_workers=1) as bare:
        assert bare.info.kind == "library" and bare.has_syst_details


def test_event_full_equals_the_separate_passes(www):
    """mb_event_full (one matrix-element evaluation per point) gives exactly what mb_event_details and
    mb_event_record give point by point (grouped u d~ / c s~ directory: flavour, mirror, colour, helicity choices),
    and Process.event_details takes that one pass for MG5 libraries."""
    from madnis_plugin.bridge.library import RAW_DETAILS_FIELDS, RAW_RECORD_FIELDS

    rng = np.random.default_rng(9)
    with load_process(www, n_workers=1) as proc:
        assert all(proc.pool.info(k).has_event_full for k in range(len(proc.info.subprocesses)))
        assert proc.event_detail_passes(record=True, syst=True) == 1
        ch = np.sort(rng.integers(0, proc.n_channels, 120))
        r = rng.random((120, proc.n_dims))
        requests = [(0, ch, r)]
        (d_full, rec_full, sy_full), = proc.pool.event_full_many(requests)
        (d_sep,) = proc.pool.event_details_many(requests)
        (rec_sep,) = proc.pool.event_record_many(requests)
        assert sy_full is None
        assert np.count_nonzero(d_sep.status == 0) > 60
        for f in RAW_DETAILS_FIELDS:
            assert np.array_equal(getattr(d_full, f), getattr(d_sep, f)), f
        for f in RAW_RECORD_FIELDS:
            assert np.array_equal(getattr(rec_full, f), getattr(rec_sep, f)), f
        # the Process path: same details and record as the separate passes
        det = proc.event_details(ch, r)
        assert np.array_equal(det.helicity, d_sep.helicity) and np.array_equal(det.record.pup, rec_sep.pup)
        # asking for <mgrwt> of a process built without use_syst names the run-card entry, also in one pass
        from madnis_plugin.bridge.errors import InvalidInput

        with pytest.raises(InvalidInput, match="use_syst"):
            proc.pool.event_full_many(requests, syst=True)
