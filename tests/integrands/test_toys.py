"""Tests for madnis_plugin.integrands.toys: exact constants, multi-channel MC identity, protocol conformance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from madnis_plugin.integrands.protocol import (
    STATUS_CUT,
    STATUS_FAILED_MAPPING,
    STATUS_NONFINITE,
    STATUS_OK,
    Integrand,
    sanitize,
)
from madnis_plugin.integrands.toys import TOYS, CamelBW, CrossedRing, ManyChannels, Resonances, make_toy

# (name, kwargs) of every configuration that is checked
CONFIGS = [
    ("camel", {}),
    ("camel", {"n_dims": 4}),
    ("camel_bw", {}),
    ("camel_bw", {"cut": 2.5}),
    ("crossed_ring", {}),
    ("crossed_ring", {"with_flat": True}),
    ("resonances", {}),
    ("many_channels", {}),
    ("many_channels", {"n_channels": 10, "n_groups": 2}),
    ("many_channels", {"n_channels": 1, "n_groups": 1}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}" for n, kw in CONFIGS]


def f_np(toy, *coords):
    """f at one point, through the toy's own torch implementation (for scipy callbacks)."""
    x = torch.tensor([list(coords)], dtype=torch.float64)
    return float(toy.density(x)[0])


# ------------------------------------------------------------------------------------------------
# exact constants against independent quadrature
# ------------------------------------------------------------------------------------------------


def test_camel_exact_quadrature():
    toy = make_toy("camel")  # D = 2
    val, err = integrate.dblquad(
        lambda y, x: math.exp(-((x - 0.25) ** 2 + (y - 0.25) ** 2) / 0.01)
        + math.exp(-((x - 0.75) ** 2 + (y - 0.75) ** 2) / 0.01),
        0,
        1,
        0,
        1,
        epsabs=1e-12,
        epsrel=1e-10,
    )
    assert toy.exact == pytest.approx(val, rel=1e-8)
    assert toy.exact == pytest.approx(0.0628062861238, rel=1e-10)
    # n-D: 1-D factor by quadrature, raised to the power D
    for d in (1, 4, 8):
        t = make_toy("camel", n_dims=d)
        one = [integrate.quad(lambda u, m=m: math.exp(-((u - m) ** 2) / 0.01), 0, 1, epsabs=1e-14)[0] for m in (0.25, 0.75)]
        assert t.exact == pytest.approx(one[0] ** d + one[1] ** d, rel=1e-9)


@pytest.mark.parametrize("cut", [None, 2.5, 4.9])
def test_camel_bw_exact_quadrature(cut):
    toy = CamelBW(cut=cut)
    lo = -30.0 if cut is None else cut
    val, _ = integrate.quad(lambda x: f_np(toy, x), lo, 40.0, points=[p for p in (2.0, 5.0) if p > lo], limit=200, epsabs=1e-12)
    assert toy.exact == pytest.approx(val, rel=1e-8)


@pytest.mark.parametrize("sigma0", [0.05, 0.3])
def test_crossed_ring_exact_quadrature(sigma0):
    """Cartesian 2-D quadrature of an independent re-implementation of eq. (44) over a box, with the narrow
    ring and line given as break points; also checks that the toy's f agrees with it."""
    toy = CrossedRing(sigma0=sigma0)
    r0, s1, s2 = 1.0, 3.0, 0.05
    # ring normalisation by 1-D quadrature in r (independent of the erf formula)
    ring_norm = 2 * math.pi * integrate.quad(lambda r: r * math.exp(-0.5 * ((r - r0) / sigma0) ** 2), 0, r0 + 40 * sigma0, points=[r0], epsabs=1e-14)[0]

    def f(x1, x2):
        rad = math.hypot(x1, x2)
        ring = math.exp(-0.5 * ((rad - r0) / sigma0) ** 2) / ring_norm
        y1 = (x1 - x2) / math.sqrt(2.0)
        y2 = (x1 + x2) / math.sqrt(2.0)
        line = math.exp(-0.5 * (y1 / s1) ** 2 - 0.5 * (y2 / s2) ** 2) / (2 * math.pi * s1 * s2)
        return 0.5 * ring + 0.5 * line

    for pt in [(0.3, -0.2), (0.7, 0.7), (-0.71, 0.7), (2.0, -2.01)]:
        assert f_np(toy, *pt) == pytest.approx(f(*pt), rel=1e-10, abs=1e-300)

    L = 25.0  # line tails: σ1 = 3 along the diagonal, exp(-(25√2)²/18) ~ 1e-30

    def inner(x1):
        pts = [-x1]  # line x2 = -x1 (angle π/4)
        if abs(x1) < 1.0:
            h = math.sqrt(1.0 - x1 * x1)
            pts += [-h, h]
        return integrate.quad(lambda x2: f(x1, x2), -L, L, points=sorted(pts), limit=400, epsabs=1e-11)[0]

    val, _ = integrate.quad(inner, -L, L, points=[-1.0, 0.0, 1.0], limit=400, epsabs=1e-9)
    assert toy.exact == 1.0
    assert val == pytest.approx(1.0, abs=2e-6)


def test_resonances_exact_quadrature():
    toy = Resonances()
    s_min, s_max = toy.s_min, toy.s_max
    total = 0.0
    for k in range(3):
        m2, w, c = (float(v[k]) for v in (toy.m2, toy.w, toy.c))
        s_int = integrate.quad(lambda s: (w / math.pi) / ((s - m2) ** 2 + w * w), s_min, s_max, points=[m2], limit=400, epsabs=1e-13)[0]
        b, kap = float(toy.beta[k]), float(toy.kappa[k])
        y_int = integrate.dblquad(
            lambda y2, y1: 1 + b * (12 * (y1 - 0.5) ** 2 - 1) + kap * math.cos(2 * math.pi * y2), 0, 1, 0, 1
        )[0]
        total += c * s_int * y_int
    total += integrate.quad(lambda s: toy.background * s_min / s, s_min, s_max)[0]
    assert toy.exact == pytest.approx(total, rel=1e-9)
    assert toy.exact == pytest.approx(1.8955235650, rel=1e-9)
    # and the full f over s at fixed y integrates like the formula (cross-check of _f)
    ys = (0.3, 0.8)
    fs = integrate.quad(lambda s: f_np(toy, s, *ys), s_min, s_max, points=toy.m2.tolist(), limit=400, epsabs=1e-12)[0]
    h = [1 + float(toy.beta[k]) * (12 * (ys[0] - 0.5) ** 2 - 1) + float(toy.kappa[k]) * math.cos(2 * math.pi * ys[1]) for k in range(3)]
    expect = sum(float(toy.c[k]) * float(toy.span[k]) / math.pi * h[k] for k in range(3)) + toy.background * s_min * math.log(s_max / s_min)
    assert fs == pytest.approx(expect, rel=1e-8)


@pytest.mark.parametrize("n_channels,n_groups", [(100, 20), (10, 2), (1, 1)])
def test_many_channels_exact_quadrature(n_channels, n_groups):
    toy = ManyChannels(n_channels=n_channels, n_groups=n_groups)
    q_int = integrate.quad(lambda t: 1 + toy.beta * (12 * (t - 0.5) ** 2 - 1), 0, 1)[0]
    total = 0.0
    for g in range(n_groups):
        m, w, c = float(toy.m[g]), float(toy.w[g]), float(toy.c[g])
        b_int = integrate.quad(lambda t: (w / math.pi) / ((t - m) ** 2 + w * w), 0, 1, points=[m], limit=400, epsabs=1e-13)[0]
        total += c * toy.k * b_int * q_int ** (toy.n_dims - 1)
    total /= n_channels
    assert toy.exact == pytest.approx(total, rel=1e-9)


# ------------------------------------------------------------------------------------------------
# multi-channel MC identity  Σ_i ∫ dr α_i w_i = I
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_flat_multichannel_estimate(name, kwargs):
    toy = make_toy(name, **kwargs)
    gen = torch.Generator().manual_seed(1234)
    n_total = 400_000
    n_per = max(n_total // toy.n_channels, 4000)
    channels = torch.arange(toy.n_channels).repeat_interleave(n_per)
    r = torch.rand((channels.shape[0], toy.n_dims), dtype=torch.float64, generator=gen)
    b = toy.evaluate(channels, r)
    contrib = b.alpha_prior.gather(1, channels[:, None])[:, 0] * b.weight
    c = contrib.view(toy.n_channels, n_per)
    est = c.mean(dim=1).sum().item()
    err = math.sqrt((c.var(dim=1) / n_per).sum().item())
    assert abs(est - toy.exact) < 5 * err, (est, err, toy.exact)
    assert err / toy.exact < 0.05  # the estimate is meaningful


# ------------------------------------------------------------------------------------------------
# protocol conformance
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_protocol_fields_and_shapes(name, kwargs):
    toy = make_toy(name, **kwargs)
    assert isinstance(toy, Integrand)
    C = toy.n_channels
    assert len(toy.channel_names) == C
    flat = sorted(i for g in toy.groups for i in g)
    assert flat == list(range(C))  # every channel in exactly one group
    assert isinstance(toy.exact, float) and toy.exact > 0
    assert toy.unit == ""
    n = 2000
    gen = torch.Generator().manual_seed(7)
    channels = torch.randint(0, C, (n,), generator=gen)
    r = torch.rand((n, toy.n_dims), dtype=torch.float64, generator=gen)
    b = toy.evaluate(channels, r)
    assert b.weight.shape == (n,) and b.weight.dtype == torch.float64
    assert b.alpha_prior.shape == (n, C) and b.alpha_prior.dtype == torch.float64
    assert b.features.shape == (n, toy.n_features) and b.features.dtype == torch.float64
    assert b.valid.shape == (n,) and b.valid.dtype == torch.bool
    assert b.status.shape == (n,) and b.status.dtype == torch.int32
    assert b.momenta is None
    assert torch.allclose(b.alpha_prior.sum(dim=1), torch.ones(n, dtype=torch.float64), atol=1e-12)
    assert (b.alpha_prior >= 0).all()
    assert torch.isfinite(b.weight).all() and (b.weight >= 0).all()
    assert torch.isfinite(b.features).all()
    assert (b.weight[~b.valid] == 0).all()
    assert ((b.status == STATUS_OK) == b.valid).all()
    # float32 input is accepted and promoted
    b32 = toy.evaluate(channels, r.float())
    assert b32.weight.dtype == torch.float64
    # sanitize leaves a clean batch unchanged
    s = sanitize(b)
    assert torch.equal(s.weight, b.weight) and torch.equal(s.valid, b.valid)


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_features_depend_only_on_x(name, kwargs):
    """features are a fixed function of x: equal x from different channels give equal features."""
    toy = make_toy(name, **kwargs)
    n = 500
    gen = torch.Generator().manual_seed(3)
    channels = torch.randint(0, toy.n_channels, (n,), generator=gen)
    r = torch.rand((n, toy.n_dims), dtype=torch.float64, generator=gen)
    x = toy.map(channels, r)
    b = toy.evaluate(channels, r)
    assert torch.allclose(b.features, torch.nan_to_num(toy._features(x)))
    # prior is a function of x only as well
    assert torch.allclose(b.alpha_prior, torch.softmax(toy._log_alpha_unnorm(x, toy.channel_log_densities(x)), dim=1))


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_weight_is_f_over_jacobian_density(name, kwargs):
    """w = f(x) |det dG/dr| with the Jacobian from autograd: checks every channel's analytic density g_i."""
    toy = make_toy(name, **kwargs)
    gen = torch.Generator().manual_seed(11)
    D = toy.n_dims
    chans = list(range(toy.n_channels))[:12]
    for c in chans:
        for _ in range(3):
            r0 = 0.05 + 0.9 * torch.rand((D,), dtype=torch.float64, generator=gen)
            jac = torch.autograd.functional.jacobian(lambda rr: toy.map(torch.tensor([c]), rr[None])[0], r0)
            det = abs(torch.linalg.det(jac).item())
            b = toy.evaluate(torch.tensor([c]), r0[None])
            x = toy.map(torch.tensor([c]), r0[None])
            expect = toy.density(x)[0].item() * det
            assert b.weight[0].item() == pytest.approx(expect, rel=1e-7, abs=1e-300)


def test_many_channels_symmetry():
    toy = ManyChannels()
    K, D = toy.k, toy.n_dims
    gen = torch.Generator().manual_seed(5)
    r = torch.rand((100, D), dtype=torch.float64, generator=gen)
    for g in (0, 7, 19):
        base = toy.map(torch.full((100,), g * K), r)
        for j in range(K):
            xj = toy.map(torch.full((100,), g * K + j), r)
            perm = [(d - j) % K for d in range(K)] + list(range(K, D))  # cyclic shift of the first K coordinates
            assert torch.equal(xj, base[:, perm])
            assert torch.allclose(toy.density(xj), toy.density(base), rtol=1e-12)
            # channel (g, j) has the same weight as (g, 0) at the same r: the group shares one flow legitimately
            wj = toy.evaluate(torch.full((100,), g * K + j), r).weight
            w0 = toy.evaluate(torch.full((100,), g * K), r).weight
            assert torch.allclose(wj, w0, rtol=1e-12)
    assert len(toy.groups) == 20 and all(len(gr) == 5 for gr in toy.groups)
    assert toy.n_channels >= 100


def test_resonance_prior_is_propagator():
    toy = Resonances()
    s = torch.tensor([0.15, 0.40, 0.70, 0.3], dtype=torch.float64)
    x = torch.stack([s, torch.full_like(s, 0.5), torch.full_like(s, 0.5)], dim=1)
    # invert the mapping of channel 0 numerically is unnecessary: evaluate prior directly
    a = torch.softmax(toy._log_alpha_unnorm(x, toy.channel_log_densities(x)), dim=1)
    prop = 1.0 / ((s[:, None] - toy.m2) ** 2 + toy.w**2)
    assert torch.allclose(a, prop / prop.sum(dim=1, keepdim=True))
    assert (a[torch.arange(3), torch.arange(3)] > 0.99).all()  # on a peak its own channel dominates


def test_resonances_ignoring_a_channel_misses_its_peak():
    """Single-channel integration with channel 0 only (α = 1) is unbiased but its variance explodes."""
    toy = Resonances()
    gen = torch.Generator().manual_seed(2)
    n = 200_000
    r = torch.rand((n, 3), dtype=torch.float64, generator=gen)
    w_single = toy.evaluate(torch.zeros(n, dtype=torch.int64), r).weight
    rel_single = (w_single.std() / w_single.mean()).item()
    ch = torch.arange(3).repeat_interleave(n // 3)
    r3 = torch.rand((ch.shape[0], 3), dtype=torch.float64, generator=gen)
    b = toy.evaluate(ch, r3)
    contrib = (b.alpha_prior.gather(1, ch[:, None])[:, 0] * b.weight).view(3, -1)
    rel_multi = math.sqrt(3 * contrib.var(dim=1).sum().item()) / toy.exact
    assert rel_single > 10 * rel_multi


# ------------------------------------------------------------------------------------------------
# invalid input / NaN handling
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TOYS))
def test_invalid_points(name):
    toy = make_toy(name)
    D, C = toy.n_dims, toy.n_channels
    r = torch.full((6, D), 0.5, dtype=torch.float64)
    r[0, 0] = -0.1  # outside the unit cube
    r[1, -1] = 1.5
    r[2, 0] = float("nan")
    r[3, 0] = float("inf")
    channels = torch.zeros(6, dtype=torch.int64)
    channels[4] = C  # channel out of range
    channels[5] = -1
    b = toy.evaluate(channels, r)
    assert not b.valid.any()
    assert (b.weight == 0).all()
    assert (b.status == STATUS_FAILED_MAPPING).all()
    assert torch.allclose(b.alpha_prior.sum(dim=1), torch.ones(6, dtype=torch.float64))
    assert torch.isfinite(b.features).all()


def test_cut_points():
    toy = CamelBW(cut=2.5)
    r = torch.tensor([[0.1], [0.5], [0.9]], dtype=torch.float64)
    b = toy.evaluate(torch.zeros(3, dtype=torch.int64), r)  # channel 0: x = 2 + 0.707 tan(pi (r-1/2))
    x = toy.map(torch.zeros(3, dtype=torch.int64), r)[:, 0]
    is_cut = x < 2.5
    assert is_cut.any() and (~is_cut).any()
    assert (b.status[is_cut] == STATUS_CUT).all() and not b.valid[is_cut].any() and (b.weight[is_cut] == 0).all()
    assert b.valid[~is_cut].all() and (b.weight[~is_cut] > 0).all()


def test_nonfinite_mapping_edge():
    """The flat (logistic) channel at r = 0 maps to x = -inf: weight non-finite → invalid, weight 0."""
    toy = CrossedRing(with_flat=True)
    r = torch.tensor([[0.0, 0.5], [0.5, 1.0], [0.3, 0.6]], dtype=torch.float64)
    b = toy.evaluate(torch.full((3,), 2), r)
    assert (b.status[:2] == STATUS_NONFINITE).all() and not b.valid[:2].any() and (b.weight[:2] == 0).all()
    assert b.valid[2] and b.status[2] == STATUS_OK
    assert torch.isfinite(b.features).all() and torch.isfinite(b.alpha_prior).all()
    # Breit-Wigner edges r = 0, 1 stay finite (tan(±π/2) is finite in floating point) and give weight ~ 0
    for name in ("camel_bw", "resonances", "many_channels", "crossed_ring"):
        t = make_toy(name)
        rr = torch.zeros((2, t.n_dims), dtype=torch.float64)
        rr[1] = 1.0
        bb = t.evaluate(torch.zeros(2, dtype=torch.int64), rr)
        assert torch.isfinite(bb.weight).all() and torch.isfinite(bb.alpha_prior).all()


def test_make_toy_errors():
    with pytest.raises(ValueError) as exc:
        make_toy("no_such_toy")
    for name in TOYS:
        assert name in str(exc.value)
    with pytest.raises(ValueError):
        make_toy("many_channels", n_channels=101, n_groups=20)
    with pytest.raises(ValueError):
        make_toy("many_channels", n_channels=100, n_groups=10, n_dims=5)  # 10 per group > D
    with pytest.raises(ValueError):
        make_toy("camel").evaluate(torch.zeros(3, dtype=torch.int64), torch.rand(3, 5))


def test_registry_complete():
    assert set(TOYS) == {"camel", "camel_bw", "crossed_ring", "resonances", "many_channels"}
    mc = make_toy("many_channels")
    assert mc.n_channels >= 100 and len(mc.groups) >= 20


@pytest.mark.parametrize("name,kwargs", [("camel_bw", {}), ("camel_bw", {"cut": 2.5}), ("crossed_ring", {})])
def test_x_bounds_hold_the_integral(name, kwargs):
    """x_bounds (used by plain vegas on f(x)) contain all but a negligible part of ∫f."""
    toy = make_toy(name, **kwargs)
    if toy.n_dims == 1:
        (lo, hi), = toy.x_bounds
        val = integrate.quad(lambda x: f_np(toy, x), lo, hi, points=[2.0, 5.0], limit=200, epsabs=1e-13)[0]
        assert val == pytest.approx(toy.exact, rel=1e-10)
    else:
        (lo, hi), _ = toy.x_bounds
        # ring fully inside; line mass outside the box: |y1| = √2|x1| > √2 hi along the diagonal
        outside = math.erfc(math.sqrt(2.0) * hi / (math.sqrt(2.0) * 3.0))
        assert outside < 1e-12
