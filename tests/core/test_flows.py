"""Tier-1 contract test of :class:`madnis_plugin.core.flows.MultiFlow` (design.md, "Testing tiers").

One test, parametrised over flow configurations; every configuration must pass every clause:

0. starts as the identity; the permutations condition every dimension on every other;
1. inverse(forward(x)) = x to 1e-9, in both directions, inputs exactly at 0 and 1 included;
2. the returned log-det equals autograd's log|det J| (per sample, both directions);
3. sample() and log_prob() agree; gradients reach every parameter;
4. state_dict save/load reproduces the outputs bit for bit;
5. q integrates to 1 (MC over uniform r: |mean - 1| < 5 sigma and sigma < 0.05);
6. batched-over-groups evaluation equals evaluating each group alone;
7. the VEGAS-initialised flow reproduces the grid's density (tolerances stated in
   ``MultiFlow.init_from_vegas`` and below).
"""

from __future__ import annotations

import io
import math
from functools import lru_cache

import pytest
import torch

from madnis_plugin.core import splines
from madnis_plugin.core.flows import MultiFlow
from madnis_plugin.core.vegas import VegasGrid, grid_to_knots

F64 = torch.float64
CONFIGS = [(d, g, b) for d in (1, 2, 3, 5, 8) for g in (1, 3) for b in (8, 16)]
GRID_BINS = 64

# VEGAS-init tolerances (grids adapted to a Gaussian peak of width 0.08 on a 0.05 floor, 64 -> 8/16 bins)
TOL_KNOT_CDF = 1e-12  # flow CDF at the reduced knots (a subset of the grid edges) is exact
TOL_EDGE_CDF = 0.02  # flow CDF at every grid edge vs k/64, absolute (measured max 0.016)
TOL_LOG_RATIO_1D = 0.4  # |log q_s(r_s) - log g_s(r_s)| per dimension, pointwise (measured max 0.31)


def _perturb(flow: MultiFlow, seed: int, scale: float = 0.2) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=F64))


def _groups(n: int, n_groups: int, seed: int) -> torch.Tensor:
    return torch.randint(0, n_groups, (n,), generator=torch.Generator().manual_seed(seed))


@lru_cache(maxsize=None)
def _adapted_grid(n_groups: int, n_dims: int) -> torch.Tensor:
    """Edges [G, D, 65] of grids adapted to a group-dependent Gaussian peak (deterministic)."""
    grid = VegasGrid(n_groups, n_dims, GRID_BINS)
    gen = torch.Generator().manual_seed(1234)
    centre = 0.3 + 0.4 * torch.arange(n_groups, dtype=F64) / max(n_groups, 2)
    for _ in range(8):
        group = torch.arange(n_groups).repeat_interleave(4000)
        u = torch.rand(group.shape[0], n_dims, generator=gen, dtype=F64)
        r, log_jac = grid.map(u, group)
        f = torch.exp(-((r - centre[group, None]) ** 2).sum(1) / (2 * 0.08**2)) + 0.05
        grid.adapt(r, group, f * log_jac.exp(), alpha=0.7)
    return grid.get_edges()


def _check_roundtrip(flow: MultiFlow, x: torch.Tensor, group: torch.Tensor) -> None:
    for inverse in (False, True):
        y, ld = flow.transform(x, group, inverse=inverse)
        xb, ldb = flow.transform(y, group, inverse=not inverse)
        assert torch.isfinite(y).all() and torch.isfinite(ld).all()
        assert ((y >= 0) & (y <= 1)).all()
        torch.testing.assert_close(xb, x, rtol=0, atol=1e-9)
        torch.testing.assert_close(ldb, -ld, rtol=0, atol=1e-8)


def _check_autograd_logdet(flow: MultiFlow, x: torch.Tensor, group: torch.Tensor) -> None:
    n, d = x.shape
    for inverse in (False, True):
        _, ld = flow.transform(x, group, inverse=inverse)
        jac = torch.autograd.functional.jacobian(lambda t: flow.transform(t, group, inverse=inverse)[0], x)
        per_sample = jac[torch.arange(n), :, torch.arange(n), :]  # [n, D, D]
        ref = torch.linalg.slogdet(per_sample).logabsdet
        torch.testing.assert_close(ld.detach(), ref, rtol=1e-9, atol=1e-9)


def _check_gradients(flow: MultiFlow, group: torch.Tensor) -> None:
    flow.zero_grad()
    r, log_q = flow.sample(group, torch.Generator().manual_seed(5))
    loss = log_q.square().mean() + flow.log_prob(r.detach(), group).mean()
    loss.backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    flow.zero_grad()


def _check_state_dict(flow: MultiFlow, cfg: dict, x: torch.Tensor, group: torch.Tensor) -> None:
    buf = io.BytesIO()
    torch.save(flow.state_dict(), buf)
    buf.seek(0)
    other = MultiFlow(**cfg)
    other.load_state_dict(torch.load(buf))
    for inverse in (False, True):
        a = flow.transform(x, group, inverse=inverse)
        b = other.transform(x, group, inverse=inverse)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def _check_normalisation(cfg: dict) -> None:
    """MC over uniform r on a moderately perturbed flow (so sigma is small enough to be a real test)."""
    flow = MultiFlow(**cfg)
    # D = 1: the unconditional blocks scale their raw parameters by UnconditionalBlock.RATE (10); two stacked
    # blocks compound the perturbation, so each gets a smaller one
    _perturb(flow, seed=8, scale=0.035 if cfg["n_dims"] == 1 else 0.05)
    gen = torch.Generator().manual_seed(7)
    n = 20000
    with torch.no_grad():
        for g in range(cfg["n_groups"]):
            r = torch.rand(n, cfg["n_dims"], generator=gen, dtype=F64)
            q = flow.log_prob(r, torch.full((n,), g)).exp()
            mean, err = q.mean().item(), (q.std() / math.sqrt(n)).item()
            assert q.std() > 0.05, "flow too close to uniform for a meaningful check"
            assert err < 0.01, (g, err)
            assert abs(mean - 1.0) < 5 * err, (g, mean, err)


def _check_group_batching(flow: MultiFlow, x: torch.Tensor, group: torch.Tensor, n_groups: int) -> None:
    for inverse in (False, True):
        y, ld = flow.transform(x, group, inverse=inverse)
        for g in range(n_groups):
            sel = group == g
            if sel.any():
                ys, lds = flow.transform(x[sel], group[sel], inverse=inverse)
                torch.testing.assert_close(ys, y[sel], rtol=1e-12, atol=1e-12)
                torch.testing.assert_close(lds, ld[sel], rtol=1e-12, atol=1e-12)


def _check_vegas_init(flow: MultiFlow, n_groups: int, n_dims: int, bins: int) -> None:
    edges = _adapted_grid(n_groups, n_dims)
    grid = VegasGrid(n_groups, n_dims, GRID_BINS)
    grid.set_edges(edges)
    _perturb(flow, seed=11)  # init must overwrite whatever the flow was
    flow.init_from_vegas(edges)
    knots = grid_to_knots(edges, bins)  # [G, D, bins(+1)]

    with torch.no_grad():
        # (a) flow = product of the 1-D knot splines, pointwise
        gen = torch.Generator().manual_seed(3)
        n = 4000
        group = _groups(n, n_groups, 4)
        r = torch.rand(n, n_dims, generator=gen, dtype=F64)
        log_q = flow.log_prob(r, group)
        k = _knots_at(knots, group)
        _, ld_1d = splines.forward_knots(r, k)  # [n, D]
        torch.testing.assert_close(log_q, ld_1d.sum(1), rtol=0, atol=1e-10)

        # (b) per dimension, 1-D spline density vs grid density: pointwise tolerance
        g_1d = -torch.log(GRID_BINS * grid.widths.reshape(-1)[
            (group[:, None] * n_dims + torch.arange(n_dims)) * GRID_BINS + grid.bin_index(r, group)])
        assert (ld_1d - g_1d).abs().max() < TOL_LOG_RATIO_1D
        # full density: the product of the above
        assert (log_q - grid.log_density(r, group)).abs().max() < n_dims * TOL_LOG_RATIO_1D

        # (c) CDF of the flow at every grid edge (mass of every VEGAS bin) and exactly at the knots
        for s in range(n_dims):
            x = torch.full((n_groups * (GRID_BINS + 1), n_dims), 0.5, dtype=F64)
            x[:, s] = edges[:, s, :].reshape(-1)
            gg = torch.arange(n_groups).repeat_interleave(GRID_BINS + 1)
            cdf = flow.transform(x, gg)[0][:, s].reshape(n_groups, GRID_BINS + 1)
            target = torch.linspace(0, 1, GRID_BINS + 1, dtype=F64).expand_as(cdf)
            assert (cdf - target).abs().max() < TOL_EDGE_CDF
            # reduced knots sit on grid edges: exact there
            knot_pos = torch.cumsum(knots.widths[:, s], -1)  # [G, bins]
            on_knot = (edges[:, s, 1:, None] - knot_pos[:, None, :]).abs().min(-1).values < 1e-14
            assert int(on_knot.sum()) == n_groups * bins
            torch.testing.assert_close(cdf[:, 1:][on_knot], target[:, 1:][on_knot], rtol=0, atol=TOL_KNOT_CDF)

        # (d) sampling direction agrees
        rs, lqs = flow.sample(group, torch.Generator().manual_seed(9))
        torch.testing.assert_close(lqs, grid.log_density(rs, group), rtol=0, atol=n_dims * TOL_LOG_RATIO_1D)


def _knots_at(knots: splines.Knots, group: torch.Tensor) -> splines.Knots:
    """Per-sample knots [n, D, ...] of each sample's group."""
    return splines.Knots(knots.widths[group], knots.heights[group], knots.derivs[group])


@pytest.mark.parametrize("n_dims,n_groups,bins", CONFIGS, ids=[f"D{d}-G{g}-K{b}" for d, g, b in CONFIGS])
def test_flow_contract(n_dims: int, n_groups: int, bins: int) -> None:
    torch.manual_seed(0)
    cfg = dict(n_groups=n_groups, n_dims=n_dims, bins=bins)
    flow = MultiFlow(**cfg)
    for p in flow.parameters():
        assert p.dtype == F64
    if n_dims >= 2:  # logarithmic decomposition: every dim is conditioned on every other at least once
        seen = torch.eye(n_dims, dtype=torch.bool)
        for m in flow.masks:
            seen |= m[:, None] & ~m[None, :]
        assert seen.all()

    # zero-initialised last layers: the flow starts as the identity
    x = torch.rand(64, n_dims, generator=torch.Generator().manual_seed(1), dtype=F64)
    x[0] = 0.0
    x[1] = 1.0
    group = _groups(64, n_groups, 2)
    z, ld = flow.transform(x, group)
    torch.testing.assert_close(z, x, rtol=0, atol=1e-12)
    torch.testing.assert_close(ld, torch.zeros_like(ld), rtol=0, atol=1e-12)

    _perturb(flow, seed=3)
    _check_roundtrip(flow, x, group)
    _check_autograd_logdet(flow, x[:6], group[:6])
    r, log_q = flow.sample(group, torch.Generator().manual_seed(2))
    torch.testing.assert_close(flow.log_prob(r, group), log_q, rtol=0, atol=1e-8)
    _check_gradients(flow, group)
    _check_state_dict(flow, cfg, x, group)
    _check_normalisation(cfg)
    _check_group_batching(flow, x, group, n_groups)
    _check_vegas_init(flow, n_groups, n_dims, bins)
