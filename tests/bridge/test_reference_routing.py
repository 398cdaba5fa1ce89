"""The MG5 code paths of load_process/Process/WorkerPool, run on the reference library standing in for MG5 P-dir
libraries (mg5build replaced by a stub): channel-frozen routing, LRU worker cap, concatenated P-directories."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from madnis_plugin.bridge.library import Library
from madnis_plugin.bridge.process import load_process
from madnis_plugin.integrands.mg5 import ProcessIntegrand
from madnis_plugin.integrands.protocol import Integrand

from .conftest import make_fake_output


@pytest.fixture
def direct(reference_so):
    lib = Library(reference_so)
    lib.init("", 1)
    return lib


def _inputs(n, n_channels, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_channels, n), rng.random((n, 3))


def test_output_dir_concatenates_pdirs(tmp_path, fake_mg5build, direct):
    root = make_fake_output(tmp_path / "out", pdirs=("P2_b", "P1_a"))
    with load_process(root, n_workers=2, sde_strategy=1) as proc:
        assert [c[0].name for c in fake_mg5build] == ["P1_a", "P2_b"]  # sorted
        assert all(c[1] == 1 for c in fake_mg5build)
        info = proc.info
        assert info.kind == "mg5-output" and info.mg5_version == "3.5.7"
        assert [sp.name for sp in info.subprocesses] == ["P1_a", "P2_b"]
        assert [sp.channel_offset for sp in info.subprocesses] == [0, 2]
        assert proc.n_channels == 4 and proc.n_dims == 3
        assert proc.groups == [[0], [1], [2], [3]]
        assert info.channel_subprocess == (0, 0, 1, 1) and info.channel_diagram == (1, 2, 1, 2)
        assert proc.channel_names == ["P1_a/G1", "P1_a/G2", "P2_b/G1", "P2_b/G2"]
        assert proc.exact is None and proc.n_features == 1 + 3 * 2
        ch, r = _inputs(3000, 4, 1)
        ev = proc.evaluate(ch, r)
        ref = direct.evaluate(ch % 2, r)
        np.testing.assert_array_equal(ev.weight, ref.weight)
        np.testing.assert_array_equal(ev.momenta, ref.momenta)
        in_p1 = ch < 2
        np.testing.assert_array_equal(ev.alpha[in_p1, :2], ref.alpha[in_p1])
        np.testing.assert_array_equal(ev.alpha[~in_p1, 2:], ref.alpha[~in_p1])
        assert np.all(ev.alpha[in_p1, 2:] == 0) and np.all(ev.alpha[~in_p1, :2] == 0)
        # frozen routing: every worker saw exactly one (library, channel)
        seen = proc.pool.worker_channels()
        assert all(len(chs) <= 1 for _, chs in seen)
        assert {(lib, c) for lib, chs in seen for c in chs} == {(0, 0), (0, 1), (1, 0), (1, 1)}
        feats = proc.features(ev)
        assert feats.shape == (3000, 7) and np.isfinite(feats).all()
        # features of the MG5 kind: ln(√ŝ/√s_beam), then ln(pT/√ŝ), η, φ/π of the two final-state particles
        s = (ev.momenta[:, 0, 0] + ev.momenta[:, 1, 0]) ** 2
        np.testing.assert_allclose(feats[:, 0], np.log(np.sqrt(s) / 160.0), rtol=1e-12)
        np.testing.assert_allclose(feats[:, 2], -feats[:, 5], atol=1e-9)  # back to back: η3 = -η4


def test_lru_cap_and_pool_size_independence(tmp_path, fake_mg5build, direct):
    root = make_fake_output(tmp_path / "out", pdirs=("P1_a", "P2_b"))
    ch, r = _inputs(2000, 4, 2)
    ref = direct.evaluate(ch % 2, r)
    results = []
    for n_workers, max_workers in ((1, 1), (2, 3), (2, None)):
        with load_process(root, n_workers=n_workers, max_workers=max_workers) as proc:
            for _ in range(2):
                ev = proc.evaluate(ch, r)
                np.testing.assert_array_equal(ev.weight, ref.weight)
                results.append(ev)
            assert proc.pool.n_live_workers <= (max_workers or 8)
            assert all(len(chs) <= 1 for _, chs in proc.pool.worker_channels())
            if max_workers is not None and max_workers < 4:
                assert proc.pool.n_spawned > max_workers  # workers were recycled
    for ev in results[1:]:
        np.testing.assert_array_equal(ev.alpha, results[0].alpha)
        np.testing.assert_array_equal(ev.momenta, results[0].momenta)


def test_pdir_path(tmp_path, fake_mg5build, direct):
    root = make_fake_output(tmp_path / "out", pdirs=("P1_a", "P2_b"))
    with load_process(root / "SubProcesses" / "P2_b", n_workers=1, sde_strategy=2) as proc:
        assert fake_mg5build[-1][1] == 2
        assert proc.info.kind == "mg5-pdir" and proc.n_channels == 2 and proc.info.sde_strategy == 2
        assert proc.channel_names == ["G1", "G2"]
        ch, r = _inputs(100, 2, 3)
        d2 = Library(direct.path)
        d2.init("", 2)
        np.testing.assert_array_equal(proc.evaluate(ch, r).alpha, d2.evaluate(ch, r).alpha)


def test_process_integrand_on_mg5_kind(tmp_path, fake_mg5build):
    root = make_fake_output(tmp_path / "out", pdirs=("P1_a",))
    with ProcessIntegrand(load_process(root, n_workers=2)) as integrand:
        assert isinstance(integrand, Integrand)
        g = torch.Generator().manual_seed(1)
        batch = integrand.evaluate(torch.randint(0, 2, (500,), generator=g),
                                   torch.rand((500, 3), generator=g, dtype=torch.float64))
        assert batch.features.shape == (500, 7) and torch.isfinite(batch.features).all()
        assert integrand.n_calls == 500
