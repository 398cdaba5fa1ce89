"""Fixtures of the bridge tests: the reference library, built once per session with CMake (cached by source hash
in ``$MADNIS_BUILD_DIR`` or ``~/.cache/madnis_plugin``), and processes on it."""

from __future__ import annotations

import sys
import types

import pytest

from madnis_plugin.bridge.build import build_reference
from madnis_plugin.bridge.process import load_process


@pytest.fixture(scope="session")
def reference_so():
    return build_reference()


@pytest.fixture(scope="session")
def ref_process(reference_so):
    proc = load_process(reference_so, n_workers=2)
    yield proc
    proc.close()


@pytest.fixture(scope="session")
def ref_process_sde2(reference_so):
    proc = load_process(reference_so, sde_strategy=2, n_workers=2)
    yield proc
    proc.close()


@pytest.fixture
def test_hooks(monkeypatch):
    """Workers started while this fixture is active enable the reference library's crash hooks."""
    monkeypatch.setenv("MADNIS_REFERENCE_TEST_HOOKS", "1")


def make_fake_output(root, pdirs=("P1_a", "P2_b"), version="3.5.7"):
    """A directory shaped like an `output madevent` (enough for load_process's checks)."""
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "madevent").write_text("#!/bin/sh\n")
    (root / "MGMEVersion.txt").write_text(version + "\n")
    for name in pdirs:
        d = root / "SubProcesses" / name
        d.mkdir(parents=True)
        (d / "auto_dsig.f").write_text("c fake\n")
    return root


@pytest.fixture
def fake_mg5build(monkeypatch, reference_so):
    """Replace madnis_plugin.bridge.mg5build by a stand-in whose build_library returns the reference library, so the
    MG5 code paths (frozen-channel routing, concatenated P-dirs) run without MG5. Records its calls."""
    calls = []

    def build_library(p_dir, *, sde_strategy):
        calls.append((p_dir, sde_strategy))
        return reference_so

    mod = types.ModuleType("madnis_plugin.bridge.mg5build")
    mod.build_library = build_library
    monkeypatch.setitem(sys.modules, "madnis_plugin.bridge.mg5build", mod)
    import madnis_plugin.bridge as bridge_pkg

    monkeypatch.setattr(bridge_pkg, "mg5build", mod, raising=False)
    return calls
