"""Tier 3: exact checks of the combination algebra, allocation, dropping, buffer and losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from madnis_plugin.core.buffer import ReplayBuffer, top_m_prior
from madnis_plugin.core.channels import RunningStats, allocate, channels_to_drop
from madnis_plugin.core.cwnet import ChannelWeightNet
from madnis_plugin.core.integrator import bootstrap_wmax, combine_channels, unweight
from madnis_plugin.core.losses import channel_moments, compute_loss, madnis_loss, variance_loss
from madnis_plugin.core.result import WeightedEvents
from madnis_plugin.core.trainer import lr_factor


def test_allocation_sums_and_is_proportional_to_sigma():
    sigma = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    active = torch.ones(4, dtype=torch.bool)
    counts = allocate(1000, sigma, active, uniform_fraction=0.0, min_per_channel=0)
    assert int(counts.sum()) == 1000
    assert counts.tolist() == [100, 200, 300, 400]
    counts = allocate(1000, sigma, active, uniform_fraction=0.2, min_per_channel=0)
    # 200 uniform (50 each) + 800 ∝ σ
    assert counts.tolist() == [50 + 80, 50 + 160, 50 + 240, 50 + 320]


def test_allocation_rounding_inactive_and_unknown_sigma():
    sigma = torch.tensor([1.0, float("nan"), 1.0, 5.0], dtype=torch.float64)
    active = torch.tensor([True, True, True, False])
    counts = allocate(101, sigma, active, uniform_fraction=0.1, min_per_channel=2)
    assert int(counts.sum()) == 101
    assert counts[3] == 0
    assert counts[1] >= 2  # NaN σ: only the uniform share and the minimum
    assert counts[0] == counts[2] or abs(int(counts[0]) - int(counts[2])) == 1
    with pytest.raises(ValueError, match="no active channel"):
        allocate(10, None, torch.zeros(3, dtype=torch.bool), 0.1)


def test_dropping_smallest_until_cutoff():
    integrals = torch.tensor([5e-4, 100.0, 3e-4, 2e-4, 50.0], dtype=torch.float64)
    active = torch.ones(5, dtype=torch.bool)
    total = float(integrals.sum())
    drop = channels_to_drop(integrals, active, cutoff=5.5e-4 / total)
    # smallest first: 2e-4, 3e-4 (sum 5e-4 ≤ 5.5e-4); adding 5e-4 would exceed
    assert drop.tolist() == [False, False, True, True, False]
    assert not channels_to_drop(integrals, active, 0.0).any()
    nan_ints = torch.tensor([float("nan"), 1.0], dtype=torch.float64)
    assert not channels_to_drop(nan_ints, torch.ones(2, dtype=torch.bool), 0.4).any()


def test_combine_channels_matches_numpy():
    rng = np.random.default_rng(1)
    vals = [rng.exponential(size=n) * s for n, s in [(10, 1.0), (37, 3.0), (2, 0.5)]]
    s1 = torch.tensor([v.sum() for v in vals])
    s2 = torch.tensor([(v**2).sum() for v in vals])
    counts = torch.tensor([len(v) for v in vals])
    mean, err2 = combine_channels(s1, s2, counts)
    for i, v in enumerate(vals):
        assert mean[i].item() == pytest.approx(v.mean(), rel=1e-14)
        assert err2[i].item() == pytest.approx(v.var(ddof=1) / len(v), rel=1e-12)
    total_err = math.sqrt(float(err2.sum()))
    assert total_err == pytest.approx(math.sqrt(sum(v.var(ddof=1) / len(v) for v in vals)), rel=1e-12)


def test_moments_equal_plain_statistics_when_q_model_is_q_sample():
    g = torch.Generator().manual_seed(3)
    n, c = 400, 3
    channels = torch.randint(0, c, (n,), generator=g)
    h = torch.rand(n, generator=g, dtype=torch.float64)
    log_q = torch.log(torch.rand(n, generator=g, dtype=torch.float64) + 0.5)
    m = channel_moments(channels, h, log_q, log_q, c)
    v = h / torch.exp(log_q)
    for i in range(c):
        sel = v[channels == i].numpy()
        assert m.mean[i].item() == pytest.approx(sel.mean(), rel=1e-13)
        assert m.var[i].item() == pytest.approx(sel.var(ddof=1), rel=1e-12)
    sig = torch.sqrt(m.var)
    norm = float(m.mean.abs().sum()) ** 2
    assert madnis_loss(m).item() == pytest.approx(float(sig.sum()) ** 2 / norm, rel=1e-13)
    nn = m.counts.double()
    assert variance_loss(m).item() == pytest.approx(float((n / nn * m.var).sum()) / norm, rel=1e-13)


def test_centred_variance_expectation_and_flow_gradient():
    """With q_model ≠ q_sample the centred estimator still estimates ⟨h²/(q_θ q_s)⟩ − I² (checked exactly on
    a two-point 'sample' by expanding the sums), and its flow gradient is ⟨(I² − h²/q_θ²)∇q_θ/q_s⟩/(N−1)·N."""
    h = torch.tensor([1.0, 3.0], dtype=torch.float64)
    log_qs = torch.log(torch.tensor([0.5, 2.0], dtype=torch.float64))
    log_qm = torch.log(torch.tensor([0.8, 1.5], dtype=torch.float64)).requires_grad_(True)
    ch = torch.zeros(2, dtype=torch.int64)
    m = channel_moments(ch, h, log_qm, log_qs, 1)
    qs, qm = torch.exp(log_qs), torch.exp(log_qm.detach())
    mean = (h / qs).mean()
    expect = ((h / qm - mean) ** 2 * qm / qs).sum() / 1.0  # N − 1 = 1
    assert m.var.item() == pytest.approx(expect.item(), rel=1e-14)
    (g,) = torch.autograd.grad(m.var.sum(), log_qm)
    # d/dlog q_θ of (h/q_θ − I)² q_θ/q_s = (I² − h²/q_θ²) q_θ/q_s
    torch.testing.assert_close(g, (mean**2 - h**2 / qm**2) * qm / qs, rtol=1e-12, atol=0)


def test_buffered_loss_equals_online_loss_when_q_is_current_model():
    """Evaluating buffered points with the stored q = current model and all channels kept reproduces the online
    loss and its gradients exactly (m = C so the top-m approximation is exact)."""
    from madnis_plugin.core import MadnisConfig, Trainer
    from madnis_plugin.integrands.toys import make_toy

    toy = make_toy("resonances")
    cfg = MadnisConfig(n_steps=0, batch_size=256, vegas_samples=2000, vegas_iterations=2, progress=False,
                       buffer_top_m=toy.n_channels, buffer_batches=1)
    tr = Trainer(toy, cfg)
    tr.pretrain_vegas()
    with torch.no_grad():  # make the CWnet non-trivial so α differs from the prior
        for p in tr.model.cwnet.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0), dtype=p.dtype))
    counts = tr.allocation(256)
    ch = torch.repeat_interleave(torch.arange(toy.n_channels), counts)
    with torch.no_grad():
        r, log_q_s = tr.model.sample(ch, tr.generator)
    b = tr.evaluate(ch, r, "training")
    out = tr.model.evaluate(ch, r, b.weight, b.features, b.alpha_prior)
    online, _ = compute_loss("madnis", ch, out.h, out.log_q, log_q_s, toy.n_channels)
    g_online = torch.autograd.grad(online, [p for p in tr.model.parameters() if p.requires_grad], allow_unused=True)
    tr.buffer.add(r, ch, b.weight, b.features, b.alpha_prior, log_q_s)
    bb = tr.buffer
    n = bb.size
    out_b = tr.model.evaluate_topm(bb.channels[:n], bb.r[:n], bb.weight[:n], bb.features[:n], bb.prior_idx[:n],
                                   bb.prior_val[:n])
    buffered, _ = compute_loss("madnis", bb.channels[:n], out_b.h, out_b.log_q, bb.log_q_sample[:n], toy.n_channels)
    g_buf = torch.autograd.grad(buffered, [p for p in tr.model.parameters() if p.requires_grad], allow_unused=True)
    assert buffered.item() == pytest.approx(online.item(), rel=1e-10)
    for a, b_ in zip(g_online, g_buf):
        if a is None:
            assert b_ is None or float(b_.abs().max()) == 0.0
        else:
            torch.testing.assert_close(a, b_, rtol=1e-8, atol=1e-12)


def test_top_m_keeps_sampling_channel():
    alpha = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.7, 0.2, 0.1, 0.0]], dtype=torch.float64)
    idx, val = top_m_prior(alpha, torch.tensor([3, 1]), m=2)
    assert set(idx[0].tolist()) == {0, 3} and set(idx[1].tolist()) == {0, 1}
    torch.testing.assert_close(val, alpha.gather(1, idx))


def test_buffer_ring_and_channel_removal():
    buf = ReplayBuffer(capacity=5, n_dims=1, n_features=1, top_m=2)
    for k in range(3):
        ch = torch.tensor([k % 2, (k + 1) % 2])
        buf.add(torch.full((2, 1), float(k)), ch, torch.ones(2, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64),
                torch.full((2, 2), 0.5, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    assert buf.size == 5 and buf.full
    removed = buf.remove_channels(torch.tensor([True, False]))
    assert removed + buf.size == 5
    assert (buf.channels[: buf.size] == 1).all()
    st = buf.state_dict()
    other = ReplayBuffer(capacity=5, n_dims=1, n_features=1, top_m=2)
    other.load_state_dict(st)
    assert other.size == buf.size and torch.equal(other.r[: other.size], buf.r[: buf.size])


def test_cwnet_starts_at_prior_and_renormalises_over_active():
    net = ChannelWeightNet(n_features=2, n_channels=3, hidden=8, layers=2, trainable=True)
    feats = torch.randn(5, 2, dtype=torch.float64)
    prior = torch.softmax(torch.randn(5, 3, dtype=torch.float64), dim=1)
    active = torch.ones(3, dtype=torch.bool)
    torch.testing.assert_close(torch.exp(net.log_alpha(feats, prior, active)), prior, rtol=1e-14, atol=0)
    active = torch.tensor([True, False, True])
    a = torch.exp(net.log_alpha(feats, prior, active))
    assert torch.all(a[:, 1] == 0)
    torch.testing.assert_close(a.sum(dim=1), torch.ones(5, dtype=torch.float64))
    # a row whose prior is zero on every active channel gives α = 0 there, not NaN
    prior2 = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)
    a2 = torch.exp(net.log_alpha(feats[:1], prior2, active))
    assert torch.isfinite(a2).all()


def test_lr_schedules_end_at_final():
    assert lr_factor("inverse", 0, 100, 1e-3, 1e-4) == 1.0
    assert lr_factor("inverse", 100, 100, 1e-3, 1e-4) == pytest.approx(0.1)
    assert lr_factor("cosine", 100, 100, 1e-3, 1e-4) == pytest.approx(0.1)
    assert lr_factor("constant", 50, 100, 1e-3, 1e-4) == 1.0


def test_bootstrap_wmax_matches_explicit_resampling():
    g = torch.Generator().manual_seed(5)
    w = torch.rand(200, generator=g, dtype=torch.float64) ** 3
    fast = [bootstrap_wmax(w, 1, torch.Generator().manual_seed(s)) for s in range(2000)]
    rng = np.random.default_rng(0)
    slow = [w.numpy()[rng.integers(0, 200, 200)].max() for _ in range(2000)]
    # same distribution of replica maxima: compare quantiles
    for q in (0.1, 0.5, 0.9):
        assert np.quantile(fast, q) == pytest.approx(np.quantile(slow, q), rel=0.05)


def test_unweighting_keeps_integral_and_reports_overweights():
    g = torch.Generator().manual_seed(7)
    w = torch.rand(20000, generator=g, dtype=torch.float64) ** 2
    ev = WeightedEvents(torch.zeros(20000, 1), torch.zeros(20000, dtype=torch.int64), w, torch.zeros(20000, 1),
                        torch.ones(20000, dtype=torch.bool))
    uw = unweight(ev, 0.5, torch.Generator().manual_seed(1))
    assert uw.overweight_fraction == pytest.approx(float((w > 0.5).double().mean()))
    # sum of kept weights reproduces the sum of all weights exactly (unit weight is fixed by it)
    assert float(uw.weight.sum()) == pytest.approx(float(w.sum()), rel=1e-12)
    # and the acceptance is ⟨min(w/w_max,1)⟩ within statistics
    p = float((w / 0.5).clamp(max=1).mean())
    assert abs(len(uw.indices) / 20000 - p) < 5 * math.sqrt(p * (1 - p) / 20000)
    uw10 = unweight(ev, 1.0, torch.Generator().manual_seed(1), n_target=100)
    assert len(uw10.indices) == 100 and uw10.overweight_fraction == 0.0


def test_running_stats_window():
    st = RunningStats(2, window=3)
    for k in range(5):
        st.update(torch.tensor([k, 1.0], dtype=torch.float64), torch.tensor([1.0, k], dtype=torch.float64),
                  torch.tensor([True, k % 2 == 0]))
    assert st.sigma_mean()[0].item() == pytest.approx((2 + 3 + 4) / 3)
    assert st.integral_mean()[1].item() == pytest.approx((2 + 4) / 2)


@pytest.mark.parametrize("start, expected", [
    # buffer of 4 batches, R = 3: with start = 1 buffered steps begin as soon as one batch is stored
    (1, "OBBOBBOBBOBB"),
    # start = 0: online until the buffer is full (4 online steps), then one online step in every R
    (0, "OOOOBBOBBOBB"),
    # start = 2: two batches first
    (2, "OOBOBBOBBOBB"),
])
def test_online_buffered_schedule(start, expected):
    """Deterministic step pattern of online (O) and buffered (B) steps for ``buffer_start_batches``."""
    from madnis_plugin.core import MadnisConfig, Trainer
    from madnis_plugin.integrands.toys import make_toy

    cfg = MadnisConfig(seed=3, progress=False, n_steps=12, batch_size=64, vegas_init=False, buffer_ratio=3,
                       buffer_batches=4, buffer_start_batches=start, drop_cutoff=0.0, n_integration=100)
    tr = Trainer(make_toy("camel_bw"), cfg)
    tr.train()
    pattern = "".join("B" if b else "O" for b in tr.history.buffered)
    assert pattern == expected
    assert tr.calls["training"] == 64 * expected.count("O")


def test_truncated_wmax_exact():
    """MadEvent's truncation rule: the overflow above w_max is exactly the budget, and w_max is the smallest such."""
    from madnis_plugin.core.integrator import truncated_wmax

    w = torch.tensor([1.0, 1.0, 1.0, 10.0], dtype=torch.float64)
    assert truncated_wmax(w, 0.1) == pytest.approx(10.0 - 1.3)  # overflow 1.3 = 0.1 × 13
    assert truncated_wmax(w, 0.0) == 10.0
    assert truncated_wmax(-w, 0.1) == pytest.approx(8.7)  # |w|
    # budget larger than the top weight's excess over the next: the solution sits below the second weight
    assert truncated_wmax(torch.tensor([4.0, 2.0, 2.0]), 0.5) == pytest.approx((4.0 + 2.0 + 2.0 - 4.0) / 3)
    rng = np.random.default_rng(1)
    for _ in range(100):
        x = torch.as_tensor(rng.pareto(1.5, size=int(rng.integers(2, 60))))
        tau = float(rng.choice([0.001, 0.01, 0.1]))
        t = truncated_wmax(x, tau)
        assert float((x - t).clamp_min(0).sum()) == pytest.approx(tau * float(x.sum()), rel=1e-9)


def test_group_pooled_sigma_allocates_evenly_inside_groups():
    """Symmetric channels of a group get equal shares; the group gets N_g ∝ √(K Σ σ_j²) (exact)."""
    from madnis_plugin.core.channels import pool_sigma_in_groups

    sigma = torch.tensor([1.0, 3.0, 2.0, float("nan"), 4.0], dtype=torch.float64)
    group = torch.tensor([0, 0, 1, 1, 2])
    active = torch.tensor([True, True, True, True, False])
    pooled = pool_sigma_in_groups(sigma, group, active, 3)
    assert pooled[0].item() == pytest.approx(math.sqrt(5.0)) and pooled[1].item() == pooled[0].item()
    assert pooled[2].item() == pooled[3].item() == 2.0  # NaN left out of the RMS, filled in from the known one
    assert math.isnan(pooled[4].item())  # inactive only
    counts = allocate(1000, pooled, active, uniform_fraction=0.0, min_per_channel=0)
    assert counts[0] == counts[1] and counts[2] == counts[3] and counts[4] == 0
    # group totals ∝ K·rms (= √(K Σ σ²) when every σ is known): √(2·10) : 2·2
    ratio = (counts[0] + counts[1]).item() / (counts[2] + counts[3]).item()
    assert ratio == pytest.approx(math.sqrt(20.0) / 4.0, rel=2e-3)


def test_event_allocation_rms_and_refine_allocation_sigma():
    """generate() allocates N_i ∝ √(σ_i² + I_i²) (config.event_allocation = "rms"), the integral's refine phase
    N_i ∝ σ_i (exact, from fixed running statistics; no uniform share, no groups)."""
    from madnis_plugin.core import MadnisConfig, Trainer, generate
    from madnis_plugin.core.integrator import refine_allocation
    from madnis_plugin.integrands.toys import make_toy

    cfg = MadnisConfig(seed=1, progress=False, n_steps=0, vegas_init=False, uniform_fraction=0.0,
                       min_points_per_channel=1, pool_group_sigma=False)
    tr = Trainer(make_toy("camel_bw"), cfg)
    sigma = torch.tensor([3.0, 4.0], dtype=torch.float64)
    mean = torch.tensor([4.0, 0.0], dtype=torch.float64)
    tr.stats.update(sigma, mean, torch.tensor([True, True]))
    assert refine_allocation(tr, 7000).tolist() == [3000, 4000]  # ∝ σ = 3 : 4
    assert refine_allocation(tr, 9000, "rms").tolist() == [5000, 4000]  # ∝ √(σ² + I²) = 5 : 4
    assert torch.bincount(generate(tr, 900, seed=2).channels, minlength=2).tolist() == [500, 400]
    tr.config = cfg.replace(event_allocation="sigma")
    assert torch.bincount(generate(tr, 700, seed=2).channels, minlength=2).tolist() == [300, 400]
    with pytest.raises(ValueError, match="rms"):
        refine_allocation(tr, 10, "bogus")


def test_cwnet_input_scaling_upscales_only():
    """"upscale": (f − mean)/min(std, 1): narrow features are stretched to unit std, wide ones keep their scale."""
    net = ChannelWeightNet(2, 3)
    f = torch.stack([torch.linspace(-0.1, 0.1, 101, dtype=torch.float64),
                     torch.linspace(-20.0, 20.0, 101, dtype=torch.float64)], dim=1) + 5.0
    net.set_standardisation(f, upscale_only=True)
    assert net.feat_mean.tolist() == pytest.approx([5.0, 5.0])
    assert net.feat_std[0].item() == pytest.approx(f[:, 0].std().item()) and net.feat_std[1].item() == 1.0
    net.set_standardisation(f)
    assert net.feat_std[1].item() == pytest.approx(f[:, 1].std().item())
