"""Per-event details (ABI 2: mb_event_details, mb_event_record) on the reference process e+ e- > mu+ mu-.

The reference is trivial but exact: e+ e- beams with a symmetric spectrum (x1 = x2 = √s/160, lab = c.m.), no
colour, SCALUP = √s, no strong coupling (AQCDUP = −1), helicities chosen with probability |M_hel|²/Σ|M|² from a hash
of (channel, r). Checked: consistency with evaluate, determinism across batches and workers, kinematics, the
helicity frequencies against the helicity amplitudes (χ²), the LHE record, NULL outputs, routing through the pool.
"""

from __future__ import annotations

import numpy as np
import pytest

from madnis_plugin.bridge import reference_physics as rp
from madnis_plugin.bridge.errors import ChannelOutOfRange, InvalidInput
from madnis_plugin.bridge.library import Library
from madnis_plugin.bridge.process import load_process


def _points(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, n), rng.random((n, 3))


def test_details_consistent_with_evaluate(ref_process):
    ch, r = _points(3000, 1)
    ev = ref_process.evaluate(ch, r)
    d = ref_process.event_details(ch, r)
    np.testing.assert_array_equal(d.status, ev.status)
    np.testing.assert_array_equal(d.channels, ch)
    ok = d.valid
    assert 0.5 < ok.mean() < 1.0  # |cos θ| < 0.9 cuts some points
    # lab frame = c.m. frame (symmetric beams): the evaluated momenta
    np.testing.assert_array_equal(d.momenta_lab[ok], ev.momenta[ok])
    assert np.all(d.momenta_lab[~ok] == 0) and np.all(d.pdg[~ok] == 0) and np.all(d.helicity[~ok] == 0)
    np.testing.assert_array_equal(d.pdg[ok], np.tile(rp.PDG, (ok.sum(), 1)))
    assert np.all(d.icolup == 0) and np.all(d.iproc == 0) and np.all(d.mirror == 0) and np.all(d.subprocess == 0)
    p = d.momenta_lab[ok]
    sqrt_s = p[:, 0, 0] + p[:, 1, 0]
    np.testing.assert_allclose(d.scale[ok], sqrt_s, rtol=1e-14)
    assert np.all(d.alphas[ok] == -1.0)
    # x1, x2 and the lab momenta of the beams (ebeam = 80 GeV each)
    eb = ref_process.info.ebeam
    np.testing.assert_allclose(d.x1x2[ok, 0] * eb[0], p[:, 0, 0], rtol=1e-14)
    np.testing.assert_allclose(d.x1x2[ok, 1] * eb[1], p[:, 1, 0], rtol=1e-14)
    np.testing.assert_allclose(p[:, 0, 3], p[:, 0, 0], rtol=1e-14)  # beam 1 along +z
    np.testing.assert_allclose(p[:, :2].sum(1), p[:, 2:].sum(1), atol=1e-10)
    # helicity conservation of massless vector couplings: e+ = −e-, mu+ = −mu-, each ±1
    h = d.helicity[ok]
    assert set(np.unique(h)) == {-1, 1}
    np.testing.assert_array_equal(h[:, 0], -h[:, 1])
    np.testing.assert_array_equal(h[:, 2], -h[:, 3])


def test_record_matches_details(ref_process):
    ch, r = _points(500, 2)
    d = ref_process.event_details(ch, r)
    rec = d.record
    ok = d.valid
    assert rec.idup.shape[1] == 4 and np.all(rec.n_lines == np.where(ok, 4, 0))
    np.testing.assert_array_equal(rec.idup[ok], d.pdg[ok])
    np.testing.assert_array_equal(rec.istup[ok], np.tile([-1, -1, 1, 1], (ok.sum(), 1)))
    np.testing.assert_array_equal(rec.mothup[ok][:, 2:], 1 + np.tile([[0, 1]], (ok.sum(), 2, 1)))
    np.testing.assert_array_equal(rec.mothup[ok][:, :2], 0)
    np.testing.assert_array_equal(rec.pup[ok][..., :4], d.momenta_lab[ok])
    np.testing.assert_array_equal(rec.pup[..., 4], 0.0)
    np.testing.assert_array_equal(rec.spinup[ok], d.helicity[ok])
    assert np.all(rec.idup[~ok] == 0)
    assert ref_process.event_details(ch[:3], r[:3], record=False).record is None


def test_helicity_frequencies_follow_the_helicity_amplitudes(reference_so):
    """Counts of the four (e-, mu-) helicity combinations vs Σ_points P_h(point), P_h = |M_h|²/Σ|M|² (χ², 3 dof)."""
    lib = Library(reference_so)
    lib.init("", sde_strategy=1)
    n = 60_000
    ch, r = _points(n, 3)
    d = lib.event_details(ch, r)
    ok = d.status == 0
    p = d.momenta_lab[ok]
    s = (p[:, 0, 0] + p[:, 1, 0]) ** 2
    c = -p[:, 3, 3] / p[:, 3, 0]
    cp = rp.couplings()
    g = {-1: cp["gL"], 1: cp["gR"]}  # keyed by the e-/mu- helicity
    dz = s - rp.MZ**2 + 1j * rp.MZ * rp.WZ
    combos = [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    w = np.stack([np.abs(1 / s + g[a] * g[b] / dz) ** 2 * (1 + (1 if a == b else -1) * c) ** 2 for a, b in combos], 1)
    prob = w / w.sum(1, keepdims=True)
    hel = d.helicity[ok]
    observed = np.array([np.sum((hel[:, 1] == a) & (hel[:, 3] == b)) for a, b in combos])
    expected = prob.sum(0)
    var = (prob * (1 - prob)).sum(0)  # Poisson-binomial variance of each count
    chi2 = float((((observed - expected) ** 2) / var).sum())
    assert observed.sum() == ok.sum()
    print("helicity chi2", chi2, observed, expected)
    assert chi2 < 20.0, (observed, expected, chi2)  # 3-4 dof: p < 5e-4
    # the choice is not the same for every point (the hash is not constant)
    assert min(observed) > 0.02 * ok.sum()


def test_deterministic_across_batches_and_workers(reference_so, ref_process):
    ch, r = _points(4000, 4)
    a = ref_process.event_details(ch, r)
    perm = np.random.default_rng(5).permutation(len(ch))
    with load_process(reference_so, n_workers=1) as p1:
        b = p1.event_details(ch[perm], r[perm])
    inv = np.argsort(perm)
    for f in ("status", "helicity", "momenta_lab", "x1x2", "scale", "alphas", "pdg"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f)[inv], err_msg=f)
    np.testing.assert_array_equal(a.record.spinup, b.record.spinup[inv])


def test_null_outputs_and_input_errors(reference_so, ref_process):
    lib = Library(reference_so)
    lib.init("", sde_strategy=1)
    # the reference exports no mb_syst_details: no <mgrwt> block is promised for it
    assert not lib.info().has_syst_details and not ref_process.has_syst_details
    # nor mb_event_full: details and record are two passes there
    assert not lib.info().has_event_full and ref_process.event_detail_passes(record=True) == 2
    f = lib._ffi
    ch = np.zeros(4, np.int32)
    r = np.full((4, 3), 0.4)
    hel = np.zeros((4, 4), np.int32)
    null = f.NULL
    rc = lib._lib.mb_event_details(4, lib._iptr(ch), lib._dptr(r), null, null, null, null, null, null, null,
                                   lib._iptr(hel), null, null)
    assert rc == 0 and np.all(np.abs(hel) == 1)
    rc = lib._lib.mb_event_record(4, lib._iptr(ch), lib._dptr(r), 3, null, null, null, null, null, null, null)
    assert rc != 0 and "max_lines" in lib.last_error()
    with pytest.raises(ChannelOutOfRange):
        ref_process.event_details([0, 2], np.full((2, 3), 0.5))
    with pytest.raises(InvalidInput):
        ref_process.event_details([0], np.full((1, 3), 1.5))
    empty = ref_process.event_details(np.zeros(0, np.int64), np.zeros((0, 3)))
    assert empty.pdg.shape == (0, 4) and empty.record.pup.shape == (0, 4, 5)
