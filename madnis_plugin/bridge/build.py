"""Build the bridge libraries with CMake, on demand, into a cache directory.

Sources ("the bridge source dir": ``madnis_bridge.h``, ``reference/`` with its own CMakeLists.txt, ``mg5_shim/``)
are found, in this order, in
  1. ``$MADNIS_SOURCE_DIR``;
  2. the source checkout: ``<repo>/fortran_bridge`` next to the ``madnis_plugin`` package (editable installs, git);
  3. the installed package data: ``madnis_plugin/fortran/`` (non-editable installs: setup.py copies the contents of
     ``fortran_bridge/`` there), the same layout mg5build.py expects for the MG5 shim.
CMake is run on ``<source dir>/reference`` (which also builds standalone); the top-level CMakeLists.txt of the
repository includes the same directory for a manual ``cmake -S . -B _build``.

The build directory is ``$MADNIS_BUILD_DIR/<hash>/`` or ``~/.cache/madnis_plugin/<hash>/``, ``<hash>`` being a digest
of the sources and of the compiler settings, so a change of any source file rebuilds and different checkouts never
share a stale library. Concurrent builds of the same hash are serialised with a file lock. A failed build raises
:class:`~madnis_plugin.bridge.errors.CompileError` whose message ends with the tail of the compiler output (the full
log is in ``.output`` and in ``<build dir>/build.log``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

from .errors import CompileError

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # .../madnis_plugin
REFERENCE_LIBRARY_NAME = "libmb_reference.so"
HEADER_NAME = "madnis_bridge.h"

# files that define the reference build (relative to the source dir)
_REFERENCE_SOURCES = (HEADER_NAME, "reference")


def source_root() -> Path:
    """The bridge source dir: ``madnis_bridge.h`` + ``reference/CMakeLists.txt`` (see module docstring)."""
    candidates = []
    env = os.environ.get("MADNIS_SOURCE_DIR")
    if env:
        candidates.append(Path(env))
    candidates += [PACKAGE_DIR.parent / "fortran_bridge", PACKAGE_DIR / "fortran"]
    for c in candidates:
        if (c / HEADER_NAME).is_file() and (c / "reference" / "CMakeLists.txt").is_file():
            return c.resolve()
    raise CompileError(
        "cannot find the bridge sources (madnis_bridge.h and reference/CMakeLists.txt); looked in: "
        + ", ".join(str(c) for c in candidates)
        + ". Install madnis-plugin with its package data (madnis_plugin/fortran/) or set MADNIS_SOURCE_DIR."
    )


def header_path() -> Path:
    """Path of ``madnis_bridge.h`` (the C ABI)."""
    return source_root() / HEADER_NAME


def cache_root() -> Path:
    """``$MADNIS_BUILD_DIR`` or ``~/.cache/madnis_plugin`` (``$XDG_CACHE_HOME`` honoured)."""
    env = os.environ.get("MADNIS_BUILD_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "madnis_plugin"


def _iter_files(root: Path, rels) -> list[Path]:
    out = []
    for rel in rels:
        p = root / rel
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file() and "__pycache__" not in q.parts)
        elif p.is_file():
            out.append(p)
    return out


def sources_digest(root: Path | None = None, rels=_REFERENCE_SOURCES) -> str:
    """Digest of the source files and of the compiler environment (FC, CC, the compilers found on PATH)."""
    root = root or source_root()
    h = hashlib.sha256()
    for f in _iter_files(root, rels):
        h.update(str(f.relative_to(root)).encode())
        h.update(b"\0")
        h.update(f.read_bytes())
        h.update(b"\0")
    for var in ("FC", "CC", "FFLAGS", "CFLAGS", "LDFLAGS"):
        h.update(f"{var}={os.environ.get(var, '')}\0".encode())
    for tool in ("cmake", "gfortran", "gcc"):
        h.update(f"{tool}={shutil.which(tool)}\0".encode())
    return h.hexdigest()[:16]


def _run(cmd: list[str], cwd: Path, log: list[str]) -> None:
    log.append("$ " + " ".join(cmd))
    try:
        proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except FileNotFoundError as exc:  # cmake itself missing
        log.append(str(exc))
        raise CompileError(
            f"{cmd[0]} not found: the bridge needs cmake (>= 3.16), make and gfortran/gcc "
            "(e.g. apt-get install cmake make gfortran gcc)",
            "\n".join(log),
        ) from None
    log.append(proc.stdout)
    if proc.returncode != 0:
        full = "\n".join(log)
        tail = "\n".join(full.splitlines()[-60:])
        raise CompileError(f"build step failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}", full)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``path`` (created if missing) for the duration of the block, so concurrent
    processes (pool workers, test sessions) never build the same library at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_reference(*, force: bool = False, build_dir: Path | None = None) -> Path:
    """Build (if needed) the reference process library and return the path of ``libmb_reference.so``.

    Args:
        force: rebuild even when an up-to-date library exists.
        build_dir: build here instead of the cache directory (no hashing; always reconfigured when ``force``).
    """
    root = source_root()
    if build_dir is None:
        build_dir = cache_root() / sources_digest(root)
    build_dir = Path(build_dir).expanduser().resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    lib = build_dir / REFERENCE_LIBRARY_NAME
    stamp = build_dir / "build.ok"
    with file_lock(build_dir / "build.lock"):
        if not force and lib.is_file() and stamp.is_file():
            return lib
        stamp.unlink(missing_ok=True)
        log: list[str] = []
        cmake_dir = build_dir / "cmake"
        try:
            _run(["cmake", "-S", str(root / "reference"), "-B", str(cmake_dir), "-DCMAKE_BUILD_TYPE=Release"], build_dir, log)
            _run(["cmake", "--build", str(cmake_dir), "--target", "mb_reference", "--parallel", "2"], build_dir, log)
        finally:
            (build_dir / "build.log").write_text("\n".join(log))
        built = cmake_dir / REFERENCE_LIBRARY_NAME
        if not built.is_file():
            raise CompileError(f"the build finished but {built} is missing", "\n".join(log))
        tmp = build_dir / (REFERENCE_LIBRARY_NAME + ".tmp")
        shutil.copy2(built, tmp)
        os.replace(tmp, lib)  # atomic: a running worker keeps its mapped copy
        stamp.write_text(sources_digest(root))
        return lib

