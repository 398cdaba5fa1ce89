"""Exact checks of the analysis helpers behind the README's u d~ > w+ w+ w- accounting (benchmarks/, no MG5 needed):
the fixed-weight re-average of MadEvent's iterations and MadEvent's grid density in the bridge's r-space."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


ib = _load("mg5_iteration_bias")
pw = _load("mg5_pointwise")


def _results_dat(head: float, err: float, points: int, its: list[tuple[int, float, float]]) -> str:
    # MadEvent's layout (dsample.f): a head line, then "i mean sigma eff wmax rmean" per listed iteration
    lines = [f" {head:.5E} {err:.5E} 0.00000E+00 {points:8d}     7619    5     1783 0.129E+06 0.78659E-08"]
    lines += [f"{k:4d} {m:14.5E} {s:14.5E} 0.13398E+02 0.27533E+02 {m:14.5E}" for k, m, s in its]
    return "\n".join(lines) + "\n <lo_statistics> \n </lo_statistics>\n"


def test_fixed_weight_is_points_weighted_and_not_inverse_variance():
    its = [(3, 0.015503, 0.0014688), (4, 0.013619, 0.00015104), (5, 0.013844, 0.000098432)]  # MadEvent's G7a0
    mean, err, w = ib.fixed_weight(its)
    assert w == 2**3 + 2**4 + 2**5
    assert mean == pytest.approx((8 * 0.015503 + 16 * 0.013619 + 32 * 0.013844) / 56, rel=1e-15)
    assert err == pytest.approx(math.sqrt((8 * 0.0014688) ** 2 + (16 * 0.00015104) ** 2 + (32 * 0.000098432) ** 2) / 56)
    # MadEvent's own (mean/σ)² combination of the same lines is the 0.013785 it reported: lower
    wi = [(m / s) ** 2 for _, m, s in its]
    madevent = sum(a * m for a, (_, m, _) in zip(wi, its)) / sum(wi)
    assert madevent == pytest.approx(0.013785, rel=2e-4) and mean > madevent


def test_channels_single_job_multijob_and_split_folders(tmp_path):
    p = tmp_path / "SubProcesses" / "P1_x"
    # one job: iteration numbers as written by madevent
    (p / "G1").mkdir(parents=True)
    (p / "G1" / "results.dat").write_text(_results_dat(1.0, 0.1, 100, [(1, 1.0, 0.2), (2, 2.0, 0.1)]))
    # two jobs whose lines combine_runs concatenated (renumbered 1..4), plain average of the jobs
    (p / "G2").mkdir()
    (p / "G2" / "multijob.dat").write_text("2\n")
    (p / "G2" / "results.dat").write_text(
        _results_dat(5.0, 0.5, 400, [(1, 4.0, 1.0), (2, 7.0, 1.0), (3, 1.0, 1.0), (4, 4.0, 1.0)]))
    # split-job folders present: each job's own iterations, then the plain average
    for name, its in (("G3", [(1, 9.0, 1.0)]), ("G3a0", [(3, 1.0, 1.0), (4, 4.0, 1.0)]), ("G3b0", [(2, 2.0, 1.0)])):
        (p / name).mkdir()
        (p / name / "results.dat").write_text(_results_dat(its[0][1], 1.0, 10, its))
    res = ib.analyse(tmp_path / "SubProcesses")
    rows = {r["channel"].split("/")[-1]: r for r in res["channels"]}
    assert rows["G1"]["jobs"] == 1 and rows["G1"]["fixed_weight"] == pytest.approx((2 * 1.0 + 4 * 2.0) / 6)
    job1, job2 = (2 * 4.0 + 4 * 7.0) / 6, (2 * 1.0 + 4 * 4.0) / 6  # positions 1, 2 within each job
    assert rows["G2"]["jobs"] == 2 and rows["G2"]["fixed_weight"] == pytest.approx((job1 + job2) / 2)
    assert rows["G3"]["jobs"] == 2 and rows["G3"]["fixed_weight"] == pytest.approx(((8 + 64) / 24 + 2.0) / 2)
    assert res["total_fixed_weight"] == pytest.approx(sum(r["fixed_weight"] for r in rows.values()))
    assert res["total_madevent"] == pytest.approx(1.0 + 5.0 + 9.0, rel=1e-5)
    (p / "G2" / "multijob.dat").write_text("3\n")
    with pytest.raises(ValueError, match="do not split into 3 jobs"):
        ib.analyse(tmp_path / "SubProcesses")


def _rows(u: np.ndarray, lo: np.ndarray, hi: np.ndarray, ij: np.ndarray) -> np.ndarray:
    """Unit-77 rows as the patched madevent writes them: u, weight, counts, src, lo, hi, grid row."""
    n, nd = u.shape
    return np.hstack([u, np.ones((n, 1)), np.ones((n, nd)), np.ones((n, 1)), lo, hi, ij.astype(float)])


def test_madevent_grid_density_flat_is_one_and_adapted_integrates_to_one():
    rng = np.random.default_rng(3)
    n, nd = 200_000, 2
    u = rng.random((n, nd))
    # variable 1 over the whole [0, 1] part of the grid (bin coordinates 48..96), variable 2 over a point-dependent
    # sub-range, as for s-channel invariants
    lo = np.column_stack([np.full(n, 48.0), 48.0 + 20.0 * rng.random(n)])
    hi = np.column_stack([np.full(n, 96.0), 80.0 + 16.0 * rng.random(n)])
    ij = np.tile([1, 2], (n, 1))
    flat = -1.0 + 2.0 * np.arange(1, 97) / 96.0
    q_flat = pw.madevent_grid_density(_rows(u, lo, hi, ij), nd, np.vstack([flat, flat]))
    assert np.allclose(q_flat, 1.0, rtol=1e-12)
    # an adapted grid: bins crowded near x = 0.3 in row 1 and near x = 0.9 in row 2
    t = np.arange(1, 97) / 96.0
    g1 = -1.0 + 2.0 * (t + 0.15 * np.sin(2 * np.pi * t) / (2 * np.pi))
    g2 = -1.0 + 2.0 * t ** 1.7
    q = pw.madevent_grid_density(_rows(u, lo, hi, ij), nd, np.vstack([g1, g2]))
    assert np.all(q > 0)
    per = pw.madevent_grid_density(_rows(u, lo, hi, ij), nd, np.vstack([g1, g2]), per_dim=True)
    assert np.allclose(per.prod(axis=1), q)
    # each conditional factor is a density of r_j on [0, 1]: its mean over uniform r_j is 1 (5 σ)
    for j in range(nd):
        assert abs(per[:, j].mean() - 1.0) < 5 * per[:, j].std() / math.sqrt(n)
