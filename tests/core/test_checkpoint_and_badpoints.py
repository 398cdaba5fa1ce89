"""Checkpoint resume is bit-identical; NaN/inf points are counted and excluded; integrand errors are clear."""

from __future__ import annotations

import torch
import pytest

from madnis_plugin.core import MadnisConfig, Trainer, integrate, load_checkpoint, save_checkpoint
from madnis_plugin.core.checkpoint import CheckpointError
from madnis_plugin.core.trainer import IntegrandError
from madnis_plugin.integrands.protocol import IntegrandBatch
from madnis_plugin.integrands.toys import make_toy

FAST = dict(batch_size=128, vegas_samples=1000, vegas_iterations=2, progress=False, buffer_batches=4,
            buffer_ratio=3, uniform_warmup_steps=5, drop_every=10, drop_cutoff=0.05, stats_window=10,
            n_integration=4000)


def test_resume_gives_identical_numbers(tmp_path):
    toy = make_toy("resonances")
    cfg = MadnisConfig(n_steps=40, **FAST)
    ref = Trainer(toy, cfg)
    ref.train()
    ref_result = integrate(ref)

    part = Trainer(toy, cfg)
    part.train(20)
    path = save_checkpoint(part, tmp_path / "ck.pt")
    resumed = load_checkpoint(path, toy)
    assert resumed.step == 20
    resumed.train()
    res = integrate(resumed)
    for (k, a), (_, b) in zip(ref.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert res.integral == ref_result.integral and res.error == ref_result.error
    assert res.n_calls_training == ref_result.n_calls_training
    assert ref.buffer.size > 0 and any(ref.history.buffered)  # the buffered path was exercised


def test_checkpoint_rejects_other_integrand(tmp_path):
    tr = Trainer(make_toy("camel_bw"), MadnisConfig(n_steps=2, **FAST))
    tr.train()
    path = save_checkpoint(tr, tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match="n_dims"):
        load_checkpoint(path, make_toy("resonances"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(tmp_path / "junk.pt", make_toy("camel_bw"))


class Poisoned:
    """Wraps an integrand and turns a fixed fraction of weights into NaN or inf."""

    def __init__(self, inner):
        self.inner = inner
        for k in ("n_dims", "n_channels", "n_features", "groups", "channel_names", "exact", "unit"):
            setattr(self, k, getattr(inner, k, None))
        self.poisoned = 0

    def evaluate(self, channels, r):
        b = self.inner.evaluate(channels, r)
        w = b.weight.clone()
        bad = (r[:, 0] * 1000).floor() % 50 == 0  # ~2 % of points, deterministic in r
        w[bad & (r[:, 0] < 0.5)] = float("nan")
        w[bad & (r[:, 0] >= 0.5)] = float("inf")
        self.poisoned += int(bad.sum())
        return IntegrandBatch(w, b.alpha_prior, b.features, b.valid, b.momenta, b.status)


def test_nan_and_inf_points_are_counted_and_excluded():
    toy = Poisoned(make_toy("camel_bw"))
    tr = Trainer(toy, MadnisConfig(n_steps=30, **FAST))
    tr.train()
    assert all(torch.isfinite(p).all() for p in tr.model.parameters())
    assert tr.invalid["training"] + tr.invalid["vegas"] > 0
    res = integrate(tr)
    assert res.status_counts.get("nonfinite", 0) > 0
    assert res.n_invalid >= res.status_counts["nonfinite"]
    assert torch.isfinite(torch.tensor(res.integral)) and res.error > 0


def test_bad_integrand_rejected_before_training():
    class NoDims:
        n_channels = 1
        n_features = 1
        groups = [[0]]

        def evaluate(self, c, r):  # pragma: no cover - never reached
            raise AssertionError

    with pytest.raises(IntegrandError, match="n_dims"):
        Trainer(NoDims(), MadnisConfig(n_steps=1, **FAST))
    bad = make_toy("camel_bw")
    bad.groups = [[0]]  # channel 1 in no group
    with pytest.raises(ValueError, match="in no group"):
        Trainer(bad, MadnisConfig(n_steps=1, **FAST))
