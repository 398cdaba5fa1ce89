"""Build the bridge library (``fortran_bridge/madnis_bridge.h``) for one MG5_aMC 3.5.x ``SubProcesses/P*`` directory.

The library is MadEvent itself, compiled from the P directory's sources with MadEvent's flags and link line, plus
the project's shim (``fortran_bridge/mg5_shim``): a replacement ``ntuple`` that takes the random numbers from the
caller, a driver that evaluates one point of one channel, and the C ABI. The build lives in ``P/madnis_bridge/``
(never in this repository) and is cached: it is redone only when the shim, the P directory's sources, the
compiled-in cards or MG5's libraries change, or when ``force=True``.

Contract used by the rest of the bridge::

    build_library(p_dir, *, sde_strategy=1, force=False) -> Path   # the shared library
    prepare_process_dir(me_dir)                                     # treatcards, make in Source, matrix*_optim.f

Runtime behaviour of the library (documented in ``fortran_bridge/mg5_shim/README.md``): the channel is frozen by
the first evaluation; grouped directories choose (subprocess, mirror) from a hash of (channel, r) or sum over them
(``MADNIS_MG5_GROUPED=sum``); ``sde_strategy`` is chosen at ``mb_init``, not at build time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .build import file_lock
from .errors import CompileError, UnsupportedMG5Version

__all__ = [
    "MG5BuildError",
    "MG5VersionError",
    "SUPPORTED_MG5",
    "build_library",
    "check_mg5_version",
    "find_me_dir",
    "prepare_process_dir",
    "shim_source_dir",
    "LIBRARY_NAME",
]

SUPPORTED_MG5 = (3, 5)
LIBRARY_NAME = "libmadnis_mg5.so"
BUILD_SUBDIR = "madnis_bridge"
_SHIM_FILES = ("madnis_bridge.mk", "mb_mg5_shim.f", "mb_shim.inc", "mb_mg5_bridge.c")
_BUILD_FORMAT = 2  # bump to invalidate every cached build


class MG5BuildError(CompileError):
    """Preparing or building the bridge library failed; the message (and ``.output``) carry the make/compiler
    output."""

    def __init__(self, message: str, output: str | None = None):
        super().__init__(message, message if output is None else output)


class MG5VersionError(UnsupportedMG5Version):
    """The process directory was not made by a supported MG5_aMC version (3.5.x)."""


# ----------------------------------------------------------------------------------------------- locations
def shim_source_dir() -> Path:
    """The folder holding the shim sources and ``madnis_bridge.h`` one level up.

    Looked up in ``$MADNIS_MG5_SHIM_DIR``, then the source checkout (``<repo>/fortran_bridge/mg5_shim``), then
    package data (``madnis_plugin/fortran/mg5_shim``).
    """
    candidates = []
    env = os.environ.get("MADNIS_MG5_SHIM_DIR")
    if env:
        candidates.append(Path(env))
    here = Path(__file__).resolve()
    candidates.append(here.parents[2] / "fortran_bridge" / "mg5_shim")
    candidates.append(here.parents[1] / "fortran" / "mg5_shim")
    for c in candidates:
        if all((c / f).is_file() for f in _SHIM_FILES) and (c.parent / "madnis_bridge.h").is_file():
            return c
    raise MG5BuildError(
        "cannot find the MG5 shim sources (fortran_bridge/mg5_shim with madnis_bridge.h one level up); "
        f"looked in {[str(c) for c in candidates]}; set MADNIS_MG5_SHIM_DIR"
    )


def find_me_dir(p_dir: Path) -> Path:
    """The process directory (made by ``output madevent``) that holds ``p_dir`` = ``ME/SubProcesses/P*``."""
    p_dir = Path(p_dir).resolve()
    if not (p_dir / "configs.inc").is_file() or p_dir.parent.name != "SubProcesses":
        raise MG5BuildError(f"{p_dir} is not an MG5 SubProcesses/P* directory (no configs.inc under SubProcesses)")
    return p_dir.parent.parent


def check_mg5_version(me_dir: Path) -> str:
    """Return the MG5 version that made ``me_dir`` (``MGMEVersion.txt``); raise unless it is 3.5.x."""
    me_dir = Path(me_dir)
    f = me_dir / "MGMEVersion.txt"
    if not f.is_file():
        f2 = me_dir / "SubProcesses" / "MGVersion.txt"
        if not f2.is_file():
            raise MG5VersionError(f"{me_dir}: no MGMEVersion.txt; not an MG5_aMC madevent output?")
        f = f2
    text = f.read_text(errors="replace").strip()
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    if not m:
        raise MG5VersionError(f"{f}: cannot read an MG5 version from {text!r}")
    version = tuple(int(x) for x in m.groups())
    if version[:2] != SUPPORTED_MG5:
        raise MG5VersionError(
            f"{me_dir} was made by MG5_aMC {'.'.join(map(str, version))}; the MadNIS bridge supports "
            f"{SUPPORTED_MG5[0]}.{SUPPORTED_MG5[1]}.x only (it relies on 3.5's MadEvent Fortran internals)"
        )
    return ".".join(map(str, version))


# ----------------------------------------------------------------------------------------------- helpers
def _run(cmd, cwd: Path, what: str, env=None, timeout: float = 3600) -> str:
    try:
        proc = subprocess.run(
            cmd, cwd=str(cwd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
            timeout=timeout, stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise MG5BuildError(f"{what}: cannot run {cmd[0]!r}: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise MG5BuildError(f"{what}: timed out after {timeout} s\n{exc.output or ''}") from exc
    if proc.returncode != 0:
        raise MG5BuildError(f"{what} failed (exit {proc.returncode}) in {cwd}:\n$ {' '.join(map(str, cmd))}\n"
                            f"{proc.stdout[-20000:]}")
    return proc.stdout


def _newer(a: Path, b: Path) -> bool:
    """a exists and is newer than b (or b is missing)."""
    return a.exists() and (not b.exists() or a.stat().st_mtime > b.stat().st_mtime)


def _p_dirs(me_dir: Path):
    sub = me_dir / "SubProcesses"
    listed = sub / "subproc.mg"
    if listed.is_file():
        names = [l.strip() for l in listed.read_text().splitlines() if l.strip()]
        return [sub / n for n in names if (sub / n).is_dir()]
    return sorted(p for p in sub.glob("P*") if (p / "configs.inc").is_file())


def _needs_prepare(me_dir: Path, p_dir: Path | None = None) -> list[str]:
    reasons = []
    lib = me_dir / "lib"
    for a in ("libdsample.a", "libgeneric.a", "libmodel.a", "libpdf.a", "libdhelas.a", "libcernlib.a",
              "libbias.a", "libgammaUPC.a"):
        if not (lib / a).is_file():
            reasons.append(f"lib/{a} missing")
    src = me_dir / "Source"
    if not (src / "run_card.inc").is_file() or _newer(me_dir / "Cards" / "run_card.dat", src / "run_card.inc"):
        reasons.append("run_card.inc out of date")
    if not (src / "param_card.inc").is_file() or _newer(me_dir / "Cards" / "param_card.dat",
                                                        src / "param_card.inc"):
        reasons.append("param_card.inc out of date")
    for p in [p_dir] if p_dir is not None else _p_dirs(me_dir):
        for orig in p.glob("matrix*_orig.f"):
            if not (p / orig.name.replace("_orig", "_optim")).is_file():
                reasons.append(f"{p.name}/{orig.name.replace('_orig', '_optim')} missing")
    return reasons


def prepare_process_dir(me_dir: Path, *, force: bool = False) -> None:
    """Make a madevent output directory ready for building bridge libraries.

    * ``bin/madevent treatcards param run`` when the cards are newer than ``Source/*_card.inc`` (the cards are
      compiled into MadEvent);
    * ``make`` in ``Source`` (MG5's libraries ``lib/*.a``);
    * in each P directory, ``matrix*_optim.f`` copied from ``matrix*_orig.f`` where no survey made them (MadEvent
      then sums all helicities: the bridge reads all good-helicity flags as true, which is exact but slower than
      the helicity-filtered ``_optim`` files a MadEvent survey writes).
    """
    me_dir = Path(me_dir).resolve()
    check_mg5_version(me_dir)
    src = me_dir / "Source"
    with file_lock(me_dir / "SubProcesses" / ".madnis_prepare.lock"):
        cards_stale = (not (src / "run_card.inc").is_file()
                       or _newer(me_dir / "Cards" / "run_card.dat", src / "run_card.inc")
                       or not (src / "param_card.inc").is_file()
                       or _newer(me_dir / "Cards" / "param_card.dat", src / "param_card.inc"))
        if force or cards_stale:
            _run([sys.executable, str(me_dir / "bin" / "madevent"), "treatcards", "param", "run"], me_dir,
                 "MG5 treatcards")
        _run(["make"], src, "make in Source")
        for p in _p_dirs(me_dir):
            for orig in p.glob("matrix*_orig.f"):
                optim = p / orig.name.replace("_orig", "_optim")
                if not optim.is_file():
                    shutil.copyfile(orig, optim)


def _fingerprint(me_dir: Path, p_dir: Path, shim: Path) -> str:
    h = hashlib.sha256()
    h.update(f"format={_BUILD_FORMAT}\n".encode())

    def add_file(f: Path):
        h.update(str(f.name).encode())
        try:
            h.update(f.read_bytes())
        except OSError:
            h.update(b"<missing>")

    for f in _SHIM_FILES:
        add_file(shim / f)
    add_file(shim.parent / "madnis_bridge.h")
    for pat in ("*.f", "*.inc"):
        for f in sorted(p_dir.glob(pat)):
            add_file(f)
    for f in ("makefile", "symfact_orig.dat"):
        add_file(p_dir / f)
    src = me_dir / "Source"
    for f in sorted(src.glob("*.inc")) + [src / "make_opts"]:
        add_file(f)
    for f in sorted((me_dir / "lib").glob("*.a")):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _write_generated(p_dir: Path, build: Path) -> dict:
    """mb_build.inc, mb_dispatch.f, driver_subs.f for this P directory."""
    grouped = any(p_dir.glob("auto_dsig[0-9]*.f"))
    maxamps = (p_dir / "maxamps.inc").read_text()
    m = re.search(r"MAXSPROC\s*=\s*(\d+)", maxamps, re.I)
    maxsproc = int(m.group(1)) if m else 1
    dsig_text = (p_dir / "auto_dsig.f").read_text(errors="replace")
    m = re.search(r"SUBROUTINE\s+READ_GOOD_HEL(.*?)\n\s+END\b", dsig_text, re.I | re.S)
    if not m:
        raise MG5BuildError(f"{p_dir}/auto_dsig.f: no READ_GOOD_HEL (unsupported MadEvent layout)")
    body = m.group(1)
    mn = re.search(r"NCOMB\s*=\s*(\d+)", body, re.I)
    if not mn:
        raise MG5BuildError(f"{p_dir}/auto_dsig.f: cannot find NCOMB in READ_GOOD_HEL")
    ncomb = int(mn.group(1))
    two = re.search(r"GOODHEL\s*\(\s*NCOMB\s*,\s*2\s*\)", body, re.I) is not None
    ngoodhel = ncomb * (2 if two else 1)
    # the matrix files MadEvent links (P/makefile: matrix*_optim.f if matrix*_orig.f exist, else matrix*.f);
    # helicity filtering at run time (GOODHEL/NTRY) unless the survey wrote helicity-recycled _optim files
    origs = sorted(p_dir.glob("matrix*_orig.f"))
    mats = [p_dir / o.name.replace("_orig", "_optim") for o in origs] if origs else \
        sorted(f for f in p_dir.glob("matrix*.f") if not f.name.startswith("matrix_"))
    helfilter = any(re.search(r"\bGOODHEL\b", m.read_text(errors="replace"), re.I) for m in mats if m.is_file())
    nsym = 1
    swap = p_dir / "symswap.inc"
    if swap.is_file():
        ms = re.search(r"DATA\s+NSYM\s*/\s*(\d+)\s*/", swap.read_text(errors="replace"), re.I)
        if ms:
            nsym = int(ms.group(1))
    (build / "mb_build.inc").write_text(
        "c     generated by madnis_plugin.bridge.mg5build for this P directory\n"
        "      integer mb_grouped, mb_ngoodhel, mb_nntry, mb_helfilter, mb_nsym\n"
        f"      parameter (mb_grouped={1 if grouped else 0}, mb_ngoodhel={ngoodhel})\n"
        f"      parameter (mb_nntry={2 if two else 1}, mb_helfilter={1 if helfilter else 0})\n"
        f"      parameter (mb_nsym={nsym})\n"
    )
    (build / "mb_mirrorprocs.inc").write_text(
        "      include 'mirrorprocs.inc'\n" if grouped else "      data mirrorprocs /maxsproc*.false./\n"
    )
    lines = [
        "c     generated by madnis_plugin.bridge.mg5build: subprocess k -> DSIG<k>",
        "      double precision function mb_dsign(k, p, wgt, imode)",
        "      implicit none",
        "      include 'nexternal.inc'",
        "      integer k, imode",
        "      double precision p(0:3,nexternal), wgt",
    ]
    if grouped:
        n = 0
        while (p_dir / f"auto_dsig{n + 1}.f").is_file():
            n += 1
        if n != maxsproc:
            raise MG5BuildError(f"{p_dir}: {n} auto_dsig<n>.f files but MAXSPROC = {maxsproc}")
        for k in range(1, n + 1):  # one per line: fixed-form line length
            lines += [f"      double precision dsig{k}", f"      external dsig{k}"]
        lines.append("      mb_dsign = 0d0")
        for k in range(1, n + 1):
            lines.append(f"      if (k .eq. {k}) mb_dsign = dsig{k}(p, wgt, imode)")
    else:
        lines += ["      double precision dsig", "      external dsig", "      mb_dsign = dsig(p, wgt, imode)"]
    lines.append("      end")
    (build / "mb_dispatch.f").write_text("\n".join(lines) + "\n")
    # driver.f without its PROGRAM: from the first SUBROUTINE/FUNCTION after the main program's END
    drv = (p_dir / "driver.f").read_text(errors="replace").splitlines(keepends=True)
    start = None
    in_prog = False
    for i, line in enumerate(drv):
        if line[:1] in "cC*!":
            continue
        s = line.strip().lower()
        if s.startswith("program"):
            in_prog = True
        elif in_prog and re.match(r"^(subroutine|(\w+\s+)*function)\b", s):
            start = i
            break
    if start is None:
        raise MG5BuildError(f"{p_dir}/driver.f: cannot find the subroutines after PROGRAM DRIVER")
    (build / "driver_subs.f").write_text(
        "c     generated by madnis_plugin.bridge.mg5build: driver.f without PROGRAM DRIVER\n" + "".join(drv[start:])
    )
    return {"grouped": grouped, "maxsproc": maxsproc, "ngoodhel": ngoodhel, "helicity_filter": helfilter, "nsym": nsym,
            "matrix_files": [m.name for m in mats]}


# ----------------------------------------------------------------------------------------------- main entry
def build_library(p_dir: Path, *, sde_strategy: int = 1, force: bool = False) -> Path:
    """Return the path of a shared library implementing ``madnis_bridge.h`` for the MG5 P directory ``p_dir``.

    Args:
        p_dir: ``<madevent output>/SubProcesses/P*``.
        sde_strategy: 1 or 2. Checked here but chosen at run time (``mb_init``); the same library serves both.
        force: rebuild even if the cached build is current.

    Raises:
        MG5VersionError: the directory is not from MG5_aMC 3.5.x.
        MG5BuildError: preparing or compiling failed (the message holds the make/compiler output).
    """
    if sde_strategy not in (1, 2):
        raise ValueError(f"sde_strategy must be 1 or 2, got {sde_strategy!r}")
    p_dir = Path(p_dir).resolve()
    me_dir = find_me_dir(p_dir)
    check_mg5_version(me_dir)
    shim = shim_source_dir()
    out_dir = p_dir / BUILD_SUBDIR
    build = out_dir / "build"
    lib = out_dir / LIBRARY_NAME
    stamp = out_dir / "build_stamp.json"
    with file_lock(out_dir / ".build.lock"):
        reasons = _needs_prepare(me_dir, p_dir)
        if reasons or force:
            prepare_process_dir(me_dir, force=False)
        fp = _fingerprint(me_dir, p_dir, shim)
        if not force and lib.is_file() and stamp.is_file():
            try:
                old = json.loads(stamp.read_text())
            except (OSError, ValueError):
                old = {}
            if old.get("fingerprint") == fp:
                return lib
        if build.exists():
            shutil.rmtree(build)
        build.mkdir(parents=True)
        info = _write_generated(p_dir, build)
        tmp_out = build / LIBRARY_NAME
        env = dict(os.environ)
        env.pop("MAKEFLAGS", None)
        jobs = str(max(1, min(4, os.cpu_count() or 1)))
        log = _run(
            ["make", "-j", jobs, "-f", str(shim / "madnis_bridge.mk"), f"SHIM_DIR={shim}",
             f"BUILD={BUILD_SUBDIR}/build", f"OUT={BUILD_SUBDIR}/build/{LIBRARY_NAME}", "madnis_bridge"],
            p_dir, f"building the MadNIS bridge for {p_dir}", env=env,
        )
        (build / "build.log").write_text(log)
        # atomic replace: workers that still map the old file keep their copy
        tmp_final = out_dir / f".{LIBRARY_NAME}.{os.getpid()}"
        shutil.copyfile(tmp_out, tmp_final)
        os.replace(tmp_final, lib)
        # the fingerprint may change during the build (MG5's makefile can refresh lib/*.a): take it after
        stamp.write_text(json.dumps({"fingerprint": _fingerprint(me_dir, p_dir, shim), "p_dir": str(p_dir),
                                     "mg5_version": check_mg5_version(me_dir), **info}, indent=1))
        return lib
