"""The reference process through the bridge: exact value, per-channel integrals, pointwise physics, determinism,
pool ordering, the Integrand adapter."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from madnis_plugin.bridge import reference_physics as rp
from madnis_plugin.bridge.library import Library
from madnis_plugin.bridge.process import load_process
from madnis_plugin.integrands.protocol import Integrand, IntegrandBatch
from madnis_plugin.integrands.reference import ReferenceIntegrand, exact_cross_section

EXACT = 61.04769698061417  # pb, closed form (reference_physics.exact_cross_section)


# ------------------------------------------------------------------------------------------------ the exact value
def test_exact_value_and_quadrature():
    assert exact_cross_section() == pytest.approx(EXACT, rel=1e-14)
    assert rp.quadrature_cross_section() == pytest.approx(EXACT, rel=1e-13)
    # coarse quadrature is measurably off, so the agreement above is not trivial
    assert abs(rp.quadrature_cross_section(8, 8, 8) / EXACT - 1) > 1e-8
    for sde in (1, 2):
        ch = rp.channel_cross_sections(sde)
        assert ch.sum() == pytest.approx(EXACT, rel=1e-12)
        assert np.all(ch > 0.05 * EXACT)  # both channels matter
        assert np.allclose(ch, rp.channel_cross_sections(sde, 128, 32, 64), rtol=1e-12)


def test_exact_against_textbook_limits():
    # pure QED at s: 4πα²/(3s) with the full angle; our K-factor for |cosθ|<0.9 relative to the full angle
    k = 2 * 0.9 + 2 * 0.9**3 / 3
    assert k / (8 / 3) == pytest.approx(0.857250, rel=1e-6)
    # dσ/dcosθ integrated numerically at one s reproduces the analytic σ̂(s)
    s = np.array([80.0**2])
    c = np.polynomial.legendre.leggauss(40)
    val = (rp.dsigma_ds_dcos(s[:, None], 0.9 * c[0][None, :]) * 0.9 * c[1]).sum()
    cp = rp.couplings()
    m2, mg = rp.MZ**2, rp.MZ * rp.WZ
    d2 = (s[0] - m2) ** 2 + mg**2
    g1, g2 = (cp["gL"] + cp["gR"]) ** 2, (cp["gL"] ** 2 + cp["gR"] ** 2) ** 2
    sig = math.pi * cp["alpha"] ** 2 * k / 8 * (4 / s[0] + 2 * g1 * (s[0] - m2) / d2 + g2 * s[0] / d2)
    assert val == pytest.approx(rp.CONV_PB * sig / (rp.S_MAX - rp.S_MIN), rel=1e-13)


# ------------------------------------------------------------------------------------------------ info
def test_info(ref_process):
    p = ref_process
    assert (p.n_dims, p.n_channels, p.n_features) == (3, 2, 2)
    assert p.groups == [[0], [1]] and p.channel_groups == p.groups
    assert p.channel_names == ["photon", "Z"]
    assert p.exact == pytest.approx(EXACT, rel=1e-14)
    assert p.unit == "pb"
    assert p.info.kind == "reference"
    assert p.info.pdg == (-11, 11, -13, 13)
    assert p.info.masses == (0.0,) * 4
    assert p.info.ebeam == (80.0, 80.0) and p.info.lpp == (0, 0)
    assert p.info.channel_diagram == (1, 2)
    assert p.info.sde_strategy == 1
    assert len(p.info.subprocesses) == 1


# ------------------------------------------------------------------------------------------------ pointwise physics
@pytest.mark.parametrize("sde", [1, 2])
def test_pointwise_against_python(reference_so, sde):
    lib = Library(reference_so)  # in this process: the Fortran directly
    lib.init("", sde_strategy=sde)
    rng = np.random.default_rng(11)
    n = 2000
    ch = rng.integers(0, 2, n)
    r = rng.random((n, 3))
    out = lib.evaluate(ch, r)
    p = out.momenta
    # kinematics: massless, momentum conservation, c.m. frame, energies √s/2
    s = (p[:, 0, 0] + p[:, 1, 0]) ** 2
    m2 = p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(-1)
    assert np.abs(m2).max() < 1e-9 * s.max()
    assert np.abs(p[:, :2].sum(1) - p[:, 2:].sum(1)).max() < 1e-10
    assert np.abs(p[:, :2, 1:].sum(1)).max() == 0.0
    cos = -p[:, 3, 3] / p[:, 3, 0]
    np.testing.assert_allclose(cos, 2 * r[:, 1] - 1, atol=1e-13)
    assert np.all((s >= rp.S_MIN * (1 - 1e-12)) & (s <= rp.S_MAX * (1 + 1e-12)))
    # the s mapping and its Jacobian
    ls = math.log(rp.S_MAX / rp.S_MIN)
    m2z, mg = rp.MZ**2, rp.MZ * rp.WZ
    y0, y1 = math.atan((rp.S_MIN - m2z) / mg), math.atan((rp.S_MAX - m2z) / mg)
    s_expect = np.where(ch == 0, rp.S_MIN * np.exp(r[:, 0] * ls), m2z + mg * np.tan(y0 + r[:, 0] * (y1 - y0)))
    np.testing.assert_allclose(s, s_expect, rtol=1e-12)
    jac = np.where(ch == 0, s * ls, (y1 - y0) * ((s - m2z) ** 2 + mg**2) / mg)
    w_expect = rp.dsigma_ds_dcos(s, cos) * jac * 2.0  # dcosθ/dr1 = 2; φ already integrated in dσ/dcosθ
    cut = np.abs(cos) > rp.COS_CUT
    w_expect[cut] = 0.0
    np.testing.assert_allclose(out.weight, w_expect, rtol=1e-11, atol=0)
    np.testing.assert_array_equal(out.status, np.where(cut, 1, 0))
    np.testing.assert_allclose(out.alpha, rp.prior_alpha(s, cos, sde), rtol=1e-12)
    np.testing.assert_allclose(out.alpha.sum(1), 1.0, rtol=1e-15)


# ------------------------------------------------------------------------------------------------ Monte Carlo
@pytest.mark.parametrize("sde", [1, 2])
def test_flat_mc_pull(reference_so, sde):
    """Σ_i mean(α_i w) over flat r per channel = σ within 5σ; each channel's mean = σ_i within 5σ."""
    n = 400_000
    rng = np.random.default_rng(20240 + sde)
    expect = rp.channel_cross_sections(sde)
    with load_process(reference_so, sde_strategy=sde, n_workers=2) as proc:
        total, var = 0.0, 0.0
        for c in range(2):
            ev = proc.evaluate(np.full(n, c), rng.random((n, 3)))
            f = ev.channel_weight()
            mean, err = f.mean(), f.std(ddof=1) / math.sqrt(n)
            assert abs(mean - expect[c]) < 5 * err, (c, mean, err, expect[c])
            assert err < 0.01 * expect[c]  # the mappings work: < 1% per channel at 4e5 points
            total += mean
            var += err**2
        assert abs(total - EXACT) < 5 * math.sqrt(var)
        assert math.sqrt(var) < 2e-3 * EXACT


def test_single_channel_is_a_valid_estimator(ref_process):
    """Channel-wise w alone (no α) integrates the full σ with either mapping (each mapping covers all of s)."""
    n = 300_000
    rng = np.random.default_rng(7)
    for c in range(2):
        ev = ref_process.evaluate(np.full(n, c), rng.random((n, 3)))
        mean, err = ev.weight.mean(), ev.weight.std(ddof=1) / math.sqrt(n)
        assert abs(mean - EXACT) < 5 * err


# ------------------------------------------------------------------------------------------------ determinism
def test_determinism_and_pool_sizes(reference_so, ref_process):
    rng = np.random.default_rng(3)
    n = 5000
    ch = rng.integers(0, 2, n)
    r = rng.random((n, 3))
    a = ref_process.evaluate(ch, r)
    b = ref_process.evaluate(ch, r)
    with load_process(reference_so, n_workers=1) as p1:
        c = p1.evaluate(ch, r)
    lib = Library(reference_so)
    lib.init("", 1)
    d = lib.evaluate(ch, r)
    for other in (b, c, d):
        for name in ("weight", "momenta", "alpha", "status"):
            np.testing.assert_array_equal(getattr(a, name), getattr(other, name))


def test_pool_ordering(reference_so):
    rng = np.random.default_rng(5)
    n = 4099
    ch = rng.integers(0, 2, n)
    r = rng.random((n, 3))
    with load_process(reference_so, n_workers=2) as proc:
        proc.pool.min_chunk = 64  # many chunks
        ref = proc.evaluate(ch, r)
        perm = rng.permutation(n)
        out = proc.evaluate(ch[perm], r[perm])
        np.testing.assert_array_equal(out.weight, ref.weight[perm])
        np.testing.assert_array_equal(out.momenta, ref.momenta[perm])
        np.testing.assert_array_equal(out.alpha, ref.alpha[perm])
        np.testing.assert_array_equal(out.channels, ch[perm])
        assert proc.pool.n_live_workers == 2
        # the rows really belong to their inputs
        np.testing.assert_allclose(-out.momenta[:, 3, 3] / out.momenta[:, 3, 0], 2 * r[perm, 1] - 1, atol=1e-13)


def test_empty_and_torch_input(ref_process):
    ev = ref_process.evaluate(np.zeros(0, np.int64), np.zeros((0, 3)))
    assert ev.weight.shape == (0,) and ev.momenta.shape == (0, 4, 4) and ev.alpha.shape == (0, 2)
    ch = torch.tensor([0, 1, 1])
    r = torch.full((3, 3), 0.5, dtype=torch.float64)
    ev = ref_process.evaluate(ch, r)
    assert ev.weight.dtype == np.float64 and np.all(ev.weight > 0)


def test_cut_points(ref_process):
    r = np.array([[0.5, 0.01, 0.3], [0.5, 0.99, 0.3], [0.5, 0.5, 0.3], [0.5, 0.95, 0.0], [0.5, 0.05, 1.0]])
    ev = ref_process.evaluate(np.array([0, 1, 0, 1, 0]), r)
    np.testing.assert_array_equal(ev.status, [1, 1, 0, 0, 0])
    assert ev.weight[0] == 0 and ev.weight[1] == 0 and np.all(ev.weight[2:] > 0)
    np.testing.assert_allclose(ev.alpha.sum(1), 1.0)
    assert not ev.valid[0] and ev.valid[2]


# ------------------------------------------------------------------------------------------------ Integrand adapter
def test_reference_integrand_protocol():
    with ReferenceIntegrand(n_workers=2) as integrand:
        assert isinstance(integrand, Integrand)
        assert integrand.exact == pytest.approx(EXACT, rel=1e-14)
        assert (integrand.n_dims, integrand.n_channels, integrand.n_features) == (3, 2, 2)
        g = torch.Generator().manual_seed(0)
        n = 1000
        ch = torch.randint(0, 2, (n,), generator=g)
        r = torch.rand((n, 3), generator=g, dtype=torch.float64)
        # a few bad inputs: out of range r, NaN, bad channel -> invalid, not an exception
        r[0, 0] = 1.5
        r[1, 2] = float("nan")
        ch[2] = 7
        r[3, 1] = 1.0 + 1e-15  # within tolerance: clipped
        batch = integrand.evaluate(ch, r)
        assert isinstance(batch, IntegrandBatch)
        for t in (batch.weight, batch.alpha_prior, batch.features, batch.momenta):
            assert t.dtype == torch.float64
        assert batch.valid.dtype == torch.bool and batch.status.dtype == torch.int32
        assert batch.features.shape == (n, 2) and batch.momenta.shape == (n, 4, 4)
        assert not batch.valid[:3].any() and (batch.status[:3] == 2).all() and (batch.weight[:3] == 0).all()
        assert batch.status[3] == 1  # cosθ = 1: cut
        torch.testing.assert_close(batch.alpha_prior.sum(1), torch.ones(n, dtype=torch.float64))
        assert torch.isfinite(batch.features).all()
        ok = batch.valid
        assert ((batch.weight > 0) == ok).all()
        # features: ln(s/MZ²), cosθ
        s = torch.exp(batch.features[ok, 0]) * rp.MZ**2
        assert ((s > rp.S_MIN * 0.999) & (s < rp.S_MAX * 1.001)).all()
        torch.testing.assert_close(batch.features[ok, 1], 2 * r[ok, 1] - 1, atol=1e-12, rtol=0)
        # the protocol's estimator: mean over channels of α_i w (unbiased, pull test with the adapter)
        n = 100_000
        est, var = 0.0, 0.0
        for c in range(2):
            rr = torch.rand((n, 3), generator=g, dtype=torch.float64)
            b = integrand.evaluate(torch.full((n,), c), rr)
            f = b.alpha_prior[:, c] * b.weight
            est += f.mean().item()
            var += f.var().item() / n
        assert abs(est - EXACT) < 5 * math.sqrt(var)
