"""Fixtures of the MG5-layer tests: a fake ``output madevent`` directory and fast MadNIS settings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import FakeProcess, make_process_dir  # noqa: E402

FAST = {
    "madnis": True, "madnis_n_steps": 60, "madnis_batch_size": 256, "madnis_vegas_samples": 1000,
    "madnis_vegas_iterations": 2, "madnis_n_integration": 4000, "madnis_progress": False,
    "madnis_uniform_warmup_steps": 20, "madnis_drop_every": 20, "madnis_bootstrap_replicas": 50,
}


@pytest.fixture
def proc_dir(tmp_path):
    return make_process_dir(tmp_path / "PROC")


@pytest.fixture
def fake_factory():
    made = []

    def factory(me_dir, sde_strategy, n_workers):
        p = FakeProcess(me_dir)
        made.append(p)
        return p

    factory.made = made
    return factory
