"""Every bridge failure is a clear exception, and the worker pool survives crashing, stopping and hanging calls."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest

from madnis_plugin.bridge import build
from madnis_plugin.bridge.errors import (
    BridgeError,
    ChannelOutOfRange,
    CompileError,
    FortranStop,
    InitError,
    InvalidInput,
    NotAMadEventOutput,
    ProcessNotFound,
    UnsupportedMG5Version,
    WorkerCrashed,
)
from madnis_plugin.bridge.library import Library
from madnis_plugin.bridge.pool import LibrarySpec, WorkerPool
from madnis_plugin.bridge.process import load_process

from .conftest import make_fake_output

R = np.full((4, 3), 0.5)
CH = np.array([0, 1, 0, 1])


# ------------------------------------------------------------------------------------------------ loading
def test_missing_path(tmp_path):
    with pytest.raises(ProcessNotFound, match="does not exist"):
        load_process(tmp_path / "nope")
    with pytest.raises(FileNotFoundError):  # ProcessNotFound is also a FileNotFoundError
        load_process(tmp_path / "nope")


def test_not_a_madevent_output(tmp_path):
    with pytest.raises(NotAMadEventOutput, match="neither"):
        load_process(tmp_path)
    (tmp_path / "SubProcesses").mkdir()
    with pytest.raises(NotAMadEventOutput, match="bin/madevent"):
        load_process(tmp_path)
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(ProcessNotFound, match="not a shared library"):
        load_process(f)


def test_unsupported_version(tmp_path):
    root = make_fake_output(tmp_path / "out", version="2.9.18")
    with pytest.raises(UnsupportedMG5Version, match="2.9.18.*3.5.x"):
        load_process(root)
    with pytest.raises(UnsupportedMG5Version):
        load_process(root / "SubProcesses" / "P1_a")
    (root / "MGMEVersion.txt").unlink()
    with pytest.raises(UnsupportedMG5Version, match="cannot determine"):
        load_process(root)
    (root / "Cards").mkdir()
    (root / "Cards" / "proc_card_mg5.dat").write_text("#*   VERSION 3.6.0     2024-09-30\n")
    with pytest.raises(UnsupportedMG5Version, match="3.6.0"):
        load_process(root)


def test_mg5_compile_failure_is_reported(tmp_path, monkeypatch):
    import sys
    import types

    root = make_fake_output(tmp_path / "out")
    mod = types.ModuleType("madnis_plugin.bridge.mg5build")

    class MG5BuildError(RuntimeError):
        pass

    class MG5VersionError(MG5BuildError):
        pass

    def build_library(p_dir, *, sde_strategy):
        if p_dir.name == "P2_b":
            raise MG5VersionError("made by 3.4.2")
        raise MG5BuildError(f"make failed in {p_dir}: matrix1.f:12: Error: syntax")

    mod.build_library = build_library
    mod.MG5VersionError = MG5VersionError
    monkeypatch.setitem(sys.modules, "madnis_plugin.bridge.mg5build", mod)
    import madnis_plugin.bridge as pkg

    monkeypatch.setattr(pkg, "mg5build", mod, raising=False)
    with pytest.raises(CompileError, match="matrix1.f:12"):
        load_process(root)
    with pytest.raises(UnsupportedMG5Version, match="3.4.2"):
        load_process(root / "SubProcesses" / "P2_b")


def test_bad_sde_strategy(reference_so):
    with pytest.raises(InvalidInput, match="sde_strategy"):
        load_process(reference_so, sde_strategy=3)
    lib = Library(reference_so)
    with pytest.raises(InitError, match="sde_strategy must be 1 or 2"):
        lib.init("", sde_strategy=0)


def test_library_errors(reference_so, tmp_path):
    with pytest.raises(ProcessNotFound):
        Library(tmp_path / "libnothing.so")
    fake = tmp_path / "libfake.so"
    fake.write_bytes(b"not an ELF file")
    with pytest.raises(InitError, match="cannot load"):
        Library(fake)
    other = np._core._multiarray_umath.__file__ if hasattr(np, "_core") else np.core._multiarray_umath.__file__
    with pytest.raises(InitError, match="does not export"):  # an ELF shared object without the ABI
        Library(other)


def _copy_sources(dst):
    shutil.copytree(build.source_root(), dst, ignore=shutil.ignore_patterns("mg5_shim", "__pycache__"))
    return dst


def test_compile_error_shows_compiler_output(tmp_path, monkeypatch):
    src = _copy_sources(tmp_path / "src")
    f = src / "reference" / "mb_reference.f90"
    f.write_text(f.read_text().replace("s_gam = 0d0", "s_gam = 0d0 +* syntax_error_here"))
    monkeypatch.setenv("MADNIS_SOURCE_DIR", str(src))
    monkeypatch.setenv("MADNIS_BUILD_DIR", str(tmp_path / "cache"))
    assert build.source_root() == src.resolve()
    with pytest.raises(CompileError) as info:
        build.build_reference()
    msg = str(info.value)
    assert "mb_reference.f90" in msg and "Error" in msg
    assert "syntax_error_here" in info.value.output
    assert list((tmp_path / "cache").glob("*/build.log"))


def test_sources_digest_tracks_sources(tmp_path, monkeypatch):
    src = _copy_sources(tmp_path / "src")
    d1 = build.sources_digest(src)
    assert d1 == build.sources_digest(src)
    f = src / "reference" / "mb_reference.f90"
    f.write_text(f.read_text() + "\n! changed\n")
    assert build.sources_digest(src) != d1
    monkeypatch.setenv("MADNIS_BUILD_DIR", str(tmp_path / "c"))
    assert build.cache_root() == tmp_path / "c"
    monkeypatch.setenv("MADNIS_SOURCE_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setattr(build, "PACKAGE_DIR", tmp_path / "pkg")
    with pytest.raises(CompileError, match="cannot find the bridge sources"):
        build.source_root()


# ------------------------------------------------------------------------------------------------ evaluation input
def test_channel_out_of_range(ref_process, reference_so):
    with pytest.raises(ChannelOutOfRange, match="channel 2 at point 1"):
        ref_process.evaluate(np.array([0, 2]), np.full((2, 3), 0.5))
    with pytest.raises(IndexError):
        ref_process.evaluate(np.array([-1]), np.full((1, 3), 0.5))
    lib = Library(reference_so)  # the Fortran's own check (MB_ERR_CHANNEL)
    lib.init("", 1)
    with pytest.raises(ChannelOutOfRange, match="out of range"):
        lib.evaluate(np.array([0, 5]), np.full((2, 3), 0.5))
    with pytest.raises(InvalidInput, match=r"r\[1\]\[2\]"):
        lib.evaluate(np.array([0, 1]), np.array([[0.5, 0.5, 0.5], [0.5, 0.5, -0.1]]))


@pytest.mark.parametrize(
    "channels, r, match",
    [
        (CH, np.where(np.eye(4, 3) > 0, 1.5, 0.5), r"r\[0\]\[0\] = 1.5"),
        (CH, np.full((4, 3), np.nan), "NaN"),
        (CH, np.full((4, 3), -1e-300), "outside"),
        (CH, np.full((4, 2), 0.5), r"shape \[n, 3\]"),
        (CH, np.full((3, 3), 0.5), "4 entries but r has 3"),
        (CH, np.full((4, 3), 0.5, dtype=np.float32), "float64"),
        (CH.astype(np.float64), R, "integer dtype"),
        (CH[:, None], R, "1-d"),
    ],
)
def test_invalid_input(ref_process, channels, r, match):
    with pytest.raises(InvalidInput, match=match):
        ref_process.evaluate(channels, r)
    with pytest.raises(ValueError):  # InvalidInput is also a ValueError
        ref_process.evaluate(channels, r)


# ------------------------------------------------------------------------------------------------ crashes
def _good(pool):
    return pool.evaluate(0, CH, R)


def test_fortran_stop_abort_and_recovery(reference_so, test_hooks):
    spec = LibrarySpec(str(reference_so), name="reference")
    with WorkerPool([spec], n_workers=2) as pool:
        before = _good(pool)
        # a Fortran STOP exits the worker process
        with pytest.raises(FortranStop, match="(?s)exited with status 0.*test hook STOP"):
            pool.evaluate(0, np.array([-1]), np.full((1, 3), 0.5))
        after = _good(pool)
        np.testing.assert_array_equal(before.weight, after.weight)
        # abort(): killed by SIGABRT
        with pytest.raises(WorkerCrashed, match="SIGABRT"):
            pool.evaluate(0, np.array([-2]), np.full((1, 3), 0.5))
        np.testing.assert_array_equal(_good(pool).weight, before.weight)
        # an intercepted STOP (MB_ERR_STOP): the worker answers and is retired
        pids = set(pool.worker_pids())
        with pytest.raises(FortranStop, match="STOP intercepted"):
            pool.evaluate(0, np.array([-3]), np.full((1, 3), 0.5))
        assert len(set(pool.worker_pids()) & pids) == len(pids) - 1
        np.testing.assert_array_equal(_good(pool).weight, before.weight)
        # a crash in one chunk of a large batch: the other chunk is drained, the pool keeps working
        pool.min_chunk = 8
        ch = np.zeros(64, np.int64)
        ch[50] = -2
        with pytest.raises(WorkerCrashed):
            pool.evaluate(0, ch, np.full((64, 3), 0.5))
        np.testing.assert_array_equal(_good(pool).weight, before.weight)
        assert pool.n_live_workers <= 2


def test_hang_times_out(reference_so, test_hooks):
    spec = LibrarySpec(str(reference_so), name="reference")
    with WorkerPool([spec], n_workers=1, timeout=1.5) as pool:
        before = _good(pool)
        t = time.monotonic()
        with pytest.raises(WorkerCrashed, match="timeout"):
            pool.evaluate(0, np.array([-4]), np.full((1, 3), 0.5))
        assert time.monotonic() - t < 10
        np.testing.assert_array_equal(_good(pool).weight, before.weight)


def test_crash_through_process_api(reference_so, test_hooks, tmp_path, fake_mg5build):
    """A crash inside an MG5-style (channel-frozen) process surfaces as an exception of Process.evaluate."""
    root = make_fake_output(tmp_path / "out", pdirs=("P1_a",))
    with load_process(root, n_workers=2) as proc:
        ok = proc.evaluate(CH, R)
        # reach the hook through the pool (Process.evaluate rejects negative channels itself)
        with pytest.raises(FortranStop):
            proc.pool.evaluate(0, np.array([-1]), np.full((1, 3), 0.5))
        np.testing.assert_array_equal(proc.evaluate(CH, R).weight, ok.weight)


def test_pool_close_ends_workers(reference_so):
    pool = WorkerPool([LibrarySpec(str(reference_so))], n_workers=2)
    _good(pool)
    pool.min_chunk = 1
    _good(pool)
    pids = pool.worker_pids()
    assert len(pids) == 2
    pool.close()
    pool.close()  # idempotent
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(BridgeError, match="closed"):
        _good(pool)


def test_init_failure_in_worker(tmp_path):
    fake = tmp_path / "libfake.so"
    fake.write_bytes(b"\x7fELF garbage")
    with pytest.raises(InitError):
        load_process(fake)
