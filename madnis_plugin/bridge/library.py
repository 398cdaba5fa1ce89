"""Load one process library (the C ABI of fortran_bridge/madnis_bridge.h) with cffi in ABI mode.

A :class:`Library` lives in the process that loaded it; the library has global state and is not re-entrant, so
use one Library per process (the worker pool does exactly that). ``dlopen`` of the same path twice in one process
returns the same state.

Example::

    lib = Library(build_reference())
    lib.init("", sde_strategy=1)
    info = lib.info()
    out = lib.evaluate(np.zeros(5, np.int64), np.full((5, info.n_dims), 0.5))
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InitError, InvalidInput, ProcessNotFound, error_for_code

_FFI = None
ABI_VERSION = 2


def _cdef_from_header(text: str) -> str:
    """The declarations of the header in the subset cffi's cdef accepts (integer #defines and prototypes)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    lines = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#"):
            m = re.match(r"#\s*define\s+(MB_\w+)\s+(-?\d+)\s*$", s)
            if m:
                lines.append(f"#define {m.group(1)} {m.group(2)}")
            continue
        lines.append(line)
    return "\n".join(lines)


def ffi():
    """The process-wide cffi.FFI with the ABI declarations (parsed once from madnis_bridge.h)."""
    global _FFI
    if _FFI is None:
        import cffi

        from .build import header_path

        f = cffi.FFI()
        f.cdef(_cdef_from_header(header_path().read_text()))
        _FFI = f
    return _FFI


@dataclass(frozen=True)
class LibraryInfo:
    """What ``mb_info_*`` report (numpy arrays are int32/float64)."""

    n_dims: int
    n_external: int
    n_incoming: int
    n_channels: int
    n_subprocesses: int
    sde_strategy: int
    pdg: np.ndarray = field(repr=False)
    masses: np.ndarray = field(repr=False)
    ebeam: np.ndarray = field(repr=False)
    lpp: np.ndarray = field(repr=False)
    channel_diagram: np.ndarray = field(repr=False)
    channel_group: np.ndarray = field(repr=False)
    max_record_lines: int = 0  # mb_event_record_size: external particles + intermediate resonances
    has_syst_details: bool = False  # the library exports the optional mb_syst_details (MG5 shim: yes)
    has_event_full: bool = False  # the library exports the optional mb_event_full (MG5 shim: yes)


@dataclass(frozen=True)
class RawEvaluation:
    """Outputs of one ``mb_evaluate`` call: momenta [n, n_ext, 4], weight [n], alpha [n, C], status [n] (int32)."""

    momenta: np.ndarray
    weight: np.ndarray
    alpha: np.ndarray
    status: np.ndarray


@dataclass(frozen=True)
class RawEventDetails:
    """Outputs of ``mb_event_details`` for n points (int32/float64 arrays; see madnis_bridge.h).

    status [n]; iproc [n] (0-based subprocess); mirror [n] (1 = beams swapped); x1x2 [n, 2]; scale [n] (GeV);
    alphas [n]; pdg [n, n_ext]; icolup [n, n_ext, 2]; helicity [n, n_ext]; momenta_lab [n, n_ext, 4].
    """

    status: np.ndarray
    iproc: np.ndarray
    mirror: np.ndarray
    x1x2: np.ndarray
    scale: np.ndarray
    alphas: np.ndarray
    pdg: np.ndarray
    icolup: np.ndarray
    helicity: np.ndarray
    momenta_lab: np.ndarray

    @classmethod
    def zeros(cls, n: int, n_external: int) -> "RawEventDetails":
        """All-zero outputs for n points (int32 but x1x2, scale, alphas, momenta_lab)."""
        i, ne = np.int32, n_external
        return cls(np.zeros(n, i), np.zeros(n, i), np.zeros(n, i), np.zeros((n, 2)), np.zeros(n), np.zeros(n),
                   np.zeros((n, ne), i), np.zeros((n, ne, 2), i), np.zeros((n, ne), i), np.zeros((n, ne, 4)))


@dataclass(frozen=True)
class RawEventRecord:
    """Outputs of ``mb_event_record`` for n points, L = max_record_lines: n_lines [n]; idup, istup, spinup [n, L];
    mothup, icolup [n, L, 2]; pup [n, L, 5] = (E, px, py, pz, m), lab frame."""

    n_lines: np.ndarray
    idup: np.ndarray
    istup: np.ndarray
    mothup: np.ndarray
    icolup: np.ndarray
    pup: np.ndarray
    spinup: np.ndarray

    @classmethod
    def zeros(cls, n: int, max_lines: int) -> "RawEventRecord":
        """All-zero outputs for n points of ``max_lines`` lines (int32 but pup)."""
        i, nl = np.int32, max_lines
        return cls(np.zeros(n, i), np.zeros((n, nl), i), np.zeros((n, nl), i), np.zeros((n, nl, 2), i),
                   np.zeros((n, nl, 2), i), np.zeros((n, nl, 5)), np.zeros((n, nl), i))


@dataclass(frozen=True)
class RawSystDetails:
    """Outputs of the optional ``mb_syst_details`` for n points (MadEvent's ``<mgrwt>`` information):
    status [n]; n_qcd [n] (power of αs); ren_scale [n] (GeV); per beam (0 = beam 1, +z) pdf_pdg [n, 2] (0 = no
    PDF), pdf_x [n, 2], pdf_q [n, 2] (factorisation scale, GeV); totfact [n] (MadEvent's s_rwfact)."""

    status: np.ndarray
    n_qcd: np.ndarray
    ren_scale: np.ndarray
    pdf_pdg: np.ndarray
    pdf_x: np.ndarray
    pdf_q: np.ndarray
    totfact: np.ndarray

    @classmethod
    def zeros(cls, n: int) -> "RawSystDetails":
        """All-zero outputs for n points (int32 status, n_qcd, pdf_pdg; float64 otherwise)."""
        i = np.int32
        return cls(np.zeros(n, i), np.zeros(n, i), np.zeros(n), np.zeros((n, 2), i), np.zeros((n, 2)),
                   np.zeros((n, 2)), np.zeros(n))


RAW_DETAILS_FIELDS = tuple(RawEventDetails.__dataclass_fields__)
RAW_SYST_FIELDS = tuple(RawSystDetails.__dataclass_fields__)
RAW_RECORD_FIELDS = tuple(RawEventRecord.__dataclass_fields__)


class Library:
    """One loaded process library."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if not path.is_file():
            raise ProcessNotFound(f"process library not found: {path}")
        self.path = path.resolve()
        self._ffi = ffi()
        try:
            self._lib = self._ffi.dlopen(str(self.path))
        except OSError as exc:
            raise InitError(f"cannot load {self.path}: {exc}") from None
        try:
            version = self._lib.mb_abi_version()
        except AttributeError as exc:
            raise InitError(f"{self.path} does not export the bridge ABI: {exc}") from None
        if version != ABI_VERSION:
            raise InitError(f"{self.path}: ABI version {version}, expected {ABI_VERSION}")
        self._info: LibraryInfo | None = None

    # -- errors ----------------------------------------------------------------------------------------------------
    def last_error(self) -> str:
        buf = self._ffi.new("char[]", 4096)
        self._lib.mb_last_error(buf, 4096)
        return self._ffi.string(buf).decode("utf-8", "replace")

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            msg = self.last_error().strip() or "(no message)"
            if not msg.startswith(what):
                msg = f"{what}: {msg}"
            raise error_for_code(rc, msg)

    # -- ABI -------------------------------------------------------------------------------------------------------
    def init(self, process_dir: str | Path = "", sde_strategy: int = 1, seed: int = 0) -> LibraryInfo:
        """``mb_init``; returns :meth:`info`."""
        self._check(self._lib.mb_init(str(process_dir).encode(), int(sde_strategy), int(seed)), "mb_init")
        self._info = None
        return self.info()

    def info(self) -> LibraryInfo:
        if self._info is not None:
            return self._info
        f, lib = self._ffi, self._lib
        sizes = [f.new("int *") for _ in range(6)]
        self._check(lib.mb_info_sizes(*sizes), "mb_info_sizes")
        n_dims, n_ext, n_inc, n_ch, n_sub, sde = (int(p[0]) for p in sizes)
        pdg = np.zeros(n_ext, np.int32)
        masses = np.zeros(n_ext, np.float64)
        ebeam = np.zeros(2, np.float64)
        lpp = np.zeros(2, np.int32)
        self._check(
            lib.mb_info_particles(self._iptr(pdg), self._dptr(masses), self._dptr(ebeam), self._iptr(lpp)),
            "mb_info_particles",
        )
        diag = np.zeros(n_ch, np.int32)
        group = np.zeros(n_ch, np.int32)
        self._check(lib.mb_info_channels(self._iptr(diag), self._iptr(group)), "mb_info_channels")
        max_lines = f.new("int *")
        self._check(lib.mb_event_record_size(max_lines), "mb_event_record_size")
        self._info = LibraryInfo(n_dims, n_ext, n_inc, n_ch, n_sub, sde, pdg, masses, ebeam, lpp, diag, group,
                                 int(max_lines[0]), self.has_syst_details, self._has("mb_event_full"))
        return self._info

    def evaluate(self, channels, r) -> RawEvaluation:
        """``mb_evaluate`` on numpy arrays. Shapes and dtypes are checked here; ranges by the library."""
        info = self.info()
        channels, r = check_inputs(channels, r, info.n_dims)
        n = channels.shape[0]
        momenta = np.zeros((n, info.n_external, 4), np.float64)
        weight = np.zeros(n, np.float64)
        alpha = np.zeros((n, info.n_channels), np.float64)
        status = np.zeros(n, np.int32)
        if n:
            rc = self._lib.mb_evaluate(
                n,
                self._iptr(channels),
                self._dptr(r),
                self._dptr(momenta),
                self._dptr(weight),
                self._dptr(alpha),
                self._iptr(status),
            )
            self._check(rc, "mb_evaluate")
        return RawEvaluation(momenta, weight, alpha, status)

    def event_details(self, channels, r) -> RawEventDetails:
        """``mb_event_details`` on numpy arrays (same input rules as :meth:`evaluate`)."""
        info = self.info()
        channels, r = check_inputs(channels, r, info.n_dims)
        n = channels.shape[0]
        out = RawEventDetails.zeros(n, info.n_external)
        if n:
            rc = self._lib.mb_event_details(
                n, self._iptr(channels), self._dptr(r), self._iptr(out.iproc), self._iptr(out.mirror),
                self._dptr(out.x1x2), self._dptr(out.scale), self._dptr(out.alphas), self._iptr(out.pdg),
                self._iptr(out.icolup), self._iptr(out.helicity), self._dptr(out.momenta_lab),
                self._iptr(out.status),
            )
            self._check(rc, "mb_event_details")
        return out

    def _has(self, symbol: str) -> bool:
        try:
            getattr(self._lib, symbol)
        except (AttributeError, NotImplementedError):
            return False
        return True

    @property
    def has_syst_details(self) -> bool:
        """Whether the library exports the optional ``mb_syst_details`` (the MG5 shim does, the reference not)."""
        return self._has("mb_syst_details")

    def event_full(self, channels, r, syst: bool = False) -> tuple[RawEventDetails, RawEventRecord,
                                                                     RawSystDetails | None]:
        """The optional ``mb_event_full``: :meth:`event_details`, :meth:`event_record` and (``syst``)
        :meth:`syst_details` of the same points from one matrix-element evaluation per point (same outputs)."""
        info = self.info()
        channels, r = check_inputs(channels, r, info.n_dims)
        if not info.has_event_full:
            raise InvalidInput(f"mb_event_full: {self.path.name} does not export it (not an MG5 process)")
        n, nl = channels.shape[0], max(info.max_record_lines, 1)
        d, rec, sy = RawEventDetails.zeros(n, info.n_external), RawEventRecord.zeros(n, nl), RawSystDetails.zeros(n)
        if n:
            I, D = self._iptr, self._dptr  # noqa: N806
            rc = self._lib.mb_event_full(
                n, I(channels), D(r), I(d.iproc), I(d.mirror), D(d.x1x2), D(d.scale), D(d.alphas), I(d.pdg),
                I(d.icolup), I(d.helicity), D(d.momenta_lab), nl, I(rec.n_lines), I(rec.idup), I(rec.istup),
                I(rec.mothup), I(rec.icolup), D(rec.pup), I(rec.spinup), int(bool(syst)), I(sy.n_qcd),
                D(sy.ren_scale), I(sy.pdf_pdg), D(sy.pdf_x), D(sy.pdf_q), D(sy.totfact), I(d.status),
            )
            self._check(rc, "mb_event_full")
            sy.status[:] = d.status
        return d, rec, (sy if syst else None)

    def syst_details(self, channels, r) -> RawSystDetails:
        """``mb_syst_details`` on numpy arrays (same input rules as :meth:`evaluate`); :class:`InvalidInput` when the
        library lacks it or its process was built with ``use_syst = False``."""
        info = self.info()
        channels, r = check_inputs(channels, r, info.n_dims)
        if not self.has_syst_details:
            raise InvalidInput(f"mb_syst_details: {self.path.name} has no systematics information (not an MG5 process)")
        n = channels.shape[0]
        out = RawSystDetails.zeros(n)
        if n:
            rc = self._lib.mb_syst_details(
                n, self._iptr(channels), self._dptr(r), self._iptr(out.n_qcd), self._dptr(out.ren_scale),
                self._iptr(out.pdf_pdg), self._dptr(out.pdf_x), self._dptr(out.pdf_q), self._dptr(out.totfact),
                self._iptr(out.status),
            )
            self._check(rc, "mb_syst_details")
        return out

    def event_record(self, channels, r) -> RawEventRecord:
        """``mb_event_record`` on numpy arrays, with max_lines = the library's record size."""
        info = self.info()
        channels, r = check_inputs(channels, r, info.n_dims)
        n, nl = channels.shape[0], max(info.max_record_lines, 1)
        out = RawEventRecord.zeros(n, nl)
        if n:
            rc = self._lib.mb_event_record(
                n, self._iptr(channels), self._dptr(r), nl, self._iptr(out.n_lines), self._iptr(out.idup),
                self._iptr(out.istup), self._iptr(out.mothup), self._iptr(out.icolup), self._dptr(out.pup),
                self._iptr(out.spinup),
            )
            self._check(rc, "mb_event_record")
        return out

    # -- helpers ---------------------------------------------------------------------------------------------------
    def _dptr(self, a: np.ndarray):
        return self._ffi.cast("double *", a.ctypes.data)

    def _iptr(self, a: np.ndarray):
        return self._ffi.cast("int *", a.ctypes.data)


def check_inputs(channels, r, n_dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert (channels, r): integer channels [n] -> int32, float64 r [n, n_dims] C-contiguous.

    Accepts numpy arrays, sequences and CPU torch tensors (anything with ``__array__``). Raises InvalidInput.
    Channel *ranges* are not checked here (the library or Process does that).
    """
    ch = np.asarray(channels)
    rr = np.asarray(r)
    if ch.ndim != 1:
        raise InvalidInput(f"channels must be 1-d [n], got shape {ch.shape}")
    if ch.size and not np.issubdtype(ch.dtype, np.integer):
        raise InvalidInput(f"channels must have an integer dtype, got {ch.dtype}")
    if rr.ndim != 2 or rr.shape[1] != n_dims:
        raise InvalidInput(f"r must have shape [n, {n_dims}], got {rr.shape}")
    if rr.shape[0] != ch.shape[0]:
        raise InvalidInput(f"channels has {ch.shape[0]} entries but r has {rr.shape[0]} rows")
    if rr.size and rr.dtype != np.float64:
        raise InvalidInput(f"r must be float64, got {rr.dtype}")
    if ch.size and (ch.max() > np.iinfo(np.int32).max or ch.min() < np.iinfo(np.int32).min):
        raise InvalidInput("channel index does not fit in a C int")
    return np.ascontiguousarray(ch, dtype=np.int32), np.ascontiguousarray(rr, dtype=np.float64)
