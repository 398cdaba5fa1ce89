"""The debugging harness and the plots, on the fake process."""

from __future__ import annotations

import numpy as np
import pytest

from madnis_plugin.integrands.mg5 import ProcessIntegrand
from madnis_plugin.mg5 import harness as h
from madnis_plugin.mg5 import plots
from fakes import FakeProcess


@pytest.fixture
def integrand(proc_dir):
    return ProcessIntegrand(FakeProcess(proc_dir))


def test_channels_and_evaluate(integrand, proc_dir):
    rows = h.channels(integrand, proc_dir)
    assert [r["gtag"] for r in rows] == ["1", "2", "1", "1", "2.2"]
    assert rows[2]["group"] == rows[0]["group"] and rows[4]["pdir"] == "P2_gg_ll"
    assert "P2_gg_ll" in h.channel_table(integrand, proc_dir)
    assert h.groups(integrand) == [[0, 2], [1], [3], [4]]
    out = h.evaluate(integrand, 1, [0.25, 0.5])
    assert out["weight"].shape == (1,) and out["momenta"].shape == (1, 4, 4)
    assert out["alpha_prior"][0, :3].sum() == pytest.approx(1.0)
    assert out["channel_weight"][0] == pytest.approx(out["alpha_prior"][0, 1] * out["weight"][0])
    t, sc = h.scan(integrand, 3, 0, n=11)
    assert t.shape == (11,) and np.all(sc["valid"])


def test_stepwise_training_and_plots(integrand, tmp_path):
    tr = h.make_trainer(integrand, n_steps=40, batch_size=128, vegas_samples=500, vegas_iterations=2,
                        uniform_warmup_steps=10, n_integration=2000, bootstrap_replicas=20)
    h.pretrain(tr)
    a = h.train_steps(tr, 20)
    b = h.train_steps(tr, 20)
    assert (a["step"], b["step"]) == (20, 40) and b["calls"] > a["calls"]
    res = h.integrate(tr, 3000)
    assert abs(res.integral - 845.48) < 5 * res.error
    cw = h.channel_weights(tr, 1000)
    assert cw["sigma_prior"].shape == (5,) and cw["sigma_prior"].sum() == pytest.approx(845.48, rel=0.05)
    assert cw["alpha_learned"].sum() == pytest.approx(1.0, rel=1e-6)  # each row sums to 1
    for p in (h.plot_weights(tr, 2000, tmp_path / "w.png"), h.plot_channel_weights(tr, 500, tmp_path / "a.png"),
              plots.plot_training(tr.history.to_dict(), tmp_path / "l.png"),
              plots.plot_rel_std(tr.history.to_dict(), tmp_path / "r.png")):
        assert p.is_file() and p.read_bytes()[:4] == b"\x89PNG"
