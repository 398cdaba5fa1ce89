"""Writing events: the per-channel ``G*/events.lhe`` MG5's ``combine_events`` reads, and complete LHE files.

Two outputs:

* :func:`write_gdir_events`: bare ``<event>`` blocks (no header), the contract of ``SubProcesses/P*/G*/events.lhe``
  (mg5-internals §2). MG5's own ``combine_events`` reads them with ``lhe_parser``, rescales each file to its
  ``results.dat`` cross section and unweights to exactly ``nevents``, writing
  ``Events/run_XX/unweighted_events.lhe.gz`` with MG5's banner. IDPRUP is the P-group number (``P1_...`` → 1).
* :func:`write_lhe_file`: a complete LHE file (``<LesHouchesEvents>``, banner ``<header>``, ``<init>``, events),
  gzip-compressed when the name ends in ``.gz``; used by ``madnis_generate --lhe`` and the harness.

Every file is written to a temporary name in the same directory and renamed into place (``os.replace``), so an
interrupted run never leaves a half-written event file.

What goes into an event. The bridge (ABI 2, ``Process.event_details(channels, r)``) gives for every event the
flavours of the chosen subprocess and beam mirror, x1/x2, the lab-frame momenta, SCALUP and AQCDUP as the matrix
element used them, the colour flow and the helicities MadEvent would choose, and MadEvent's full event record with
intermediate resonances (``addmothers``): :func:`details_from_process` turns that into :class:`EventDetails`, and
:func:`format_events` writes the record lines as MadEvent's ``write_leshouche`` does. AQEDUP is the param card's
α (MG5 writes the fixed ``gal(1)²/4π`` too). A process without ``event_details`` (test fakes) gets the documented
fallbacks of :func:`fallback_details` — representative flavours (``leshouche.inc`` IDUP of subprocess 1, or the
bridge's PDG list), the first colour flow (``ICOLUP``), no boost, SCALUP = √ŝ, the param card's couplings, SPINUP =
9 — and the banner records which fields were faked.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

LHE_SPIN_UNKNOWN = 9


# ---------------------------------------------------------------------------------------------------- atomic I/O
def _write_temp(path: Path, text: str, compress: bool | None) -> str:
    """Write ``text`` (gzip when ``compress``, default by suffix) to a fsynced temp file beside ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress is None:
        compress = path.name.endswith(".gz")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            data = text.encode("utf-8")
            if compress:
                with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
                    gz.write(data)
            else:
                raw.write(data)
            raw.flush()
            os.fsync(raw.fileno())
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write_text(path: str | Path, text: str, *, compress: bool | None = None) -> Path:
    """Write ``text`` to ``path`` atomically (temp file in the same directory, fsync, rename).

    ``compress`` defaults to ``path.endswith('.gz')``.
    """
    path = Path(path)
    tmp = _write_temp(path, text, compress)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


class AtomicGroup:
    """Stage several files and rename them all at the end (``commit``); ``abort`` (or an exception inside a
    ``with`` block) removes every staged file, so either all files appear or none."""

    def __init__(self) -> None:
        self._staged: list[tuple[str, Path]] = []

    def stage(self, path: str | Path, text: str, *, compress: bool | None = None) -> None:
        path = Path(path)
        self._staged.append((_write_temp(path, text, compress), path))

    def commit(self) -> list[Path]:
        done = []
        for tmp, path in self._staged:
            os.replace(tmp, path)
            done.append(path)
        self._staged = []
        return done

    def abort(self) -> None:
        for tmp, _ in self._staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self._staged = []

    def __enter__(self) -> "AtomicGroup":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


# ---------------------------------------------------------------------------------------------------- kinematics
def boost_to_lab(p_cm: np.ndarray, x1: np.ndarray, x2: np.ndarray, ebeam: Sequence[float]) -> np.ndarray:
    """Boost partonic c.m. momenta ``[n, n_ext, 4]`` (E, px, py, pz) along z into the lab frame.

    Incoming parton 1 moves along +z with energy x1·E1, parton 2 along −z with x2·E2 (massless partons);
    the c.m. velocity is β = (x1E1 − x2E2)/(x1E1 + x2E2).
    """
    p = np.asarray(p_cm, dtype=np.float64)
    e1 = np.asarray(x1, dtype=np.float64) * float(ebeam[0])
    e2 = np.asarray(x2, dtype=np.float64) * float(ebeam[1])
    beta = (e1 - e2) / (e1 + e2)
    gamma = 1.0 / np.sqrt(1.0 - beta**2)
    e, pz = p[..., 0], p[..., 3]
    out = p.copy()
    out[..., 0] = gamma[:, None] * (e + beta[:, None] * pz)
    out[..., 3] = gamma[:, None] * (pz + beta[:, None] * e)
    return out


def invariant_mass(p: np.ndarray) -> np.ndarray:
    m2 = p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(axis=-1)
    return np.sqrt(np.maximum(m2, 0.0))


# ---------------------------------------------------------------------------------------------------- leshouche.inc
@dataclass(frozen=True)
class LesHouche:
    """What a P-directory's ``leshouche.inc`` says: per (subprocess iproc, flavour k) the PDG ids, per iproc the
    colour flows ``icolup[iproc][flow] = [(col, acol) per particle]``."""

    idup: dict[tuple[int, int], tuple[int, ...]]
    icolup: dict[int, list[list[tuple[int, int]]]]

    def representative(self) -> tuple[tuple[int, ...] | None, list[tuple[int, int]] | None]:
        pdg = self.idup.get((1, 1)) if self.idup else None
        flows = self.icolup.get(1) if self.icolup else None
        return pdg, (flows[0] if flows else None)


_IDUP = re.compile(r"DATA\s*\(IDUP\(I,\s*(\d+),\s*(\d+)\),\s*I=1,\s*\d+\)\s*/([^/]*)/", re.I)
_ICOL = re.compile(r"DATA\s*\(ICOLUP\((\d),\s*I,\s*(\d+),\s*(\d+)\),\s*I=1,\s*\d+\)\s*/([^/]*)/", re.I)


def _ints(text: str) -> list[int]:
    return [int(x) for x in re.split(r"[,\s]+", text.strip()) if x]


def read_leshouche(pdir: str | Path) -> LesHouche:
    """Parse ``leshouche.inc`` of an MG5 3.5 P-directory (empty tables if absent)."""
    f = Path(pdir) / "leshouche.inc"
    if not f.is_file():
        return LesHouche({}, {})
    text = f.read_text(errors="replace")
    idup = {(int(k), int(ip)): tuple(_ints(v)) for k, ip, v in _IDUP.findall(text)}
    cols: dict[tuple[int, int], dict[int, list[int]]] = {}
    for which, flow, ip, v in _ICOL.findall(text):
        cols.setdefault((int(ip), int(flow)), {})[int(which)] = _ints(v)
    icolup: dict[int, list[list[tuple[int, int]]]] = {}
    for (ip, flow) in sorted(cols):
        c = cols[(ip, flow)]
        if 1 in c and 2 in c:
            icolup.setdefault(ip, []).append(list(zip(c[1], c[2])))
    return LesHouche(idup, icolup)


# ---------------------------------------------------------------------------------------------------- event data
@dataclass
class EventDetails:
    """Per-event information besides momenta and weight; every field optional (None = not provided).

    pdg int [n, n_ext]; colour int [n, n_ext, 2]; helicity int [n, n_ext] (−1/0/+1);
    x1x2 float [n, 2] (Bjorken x, for the lab boost); scale float [n] (GeV); aqed, aqcd float [n];
    momenta_lab float [n, n_ext, 4] (overrides the boost). ``record``: the full LHE record (an object with
    n_lines, idup, istup, mothup, icolup, pup, spinup as the bridge's ``EventRecord``); when given,
    :func:`format_events` writes its lines (with intermediate resonances) instead of the external particles.
    ``syst``: MadEvent's systematics information (an object with n_qcd, ren_scale, pdf_pdg, pdf_x, pdf_q, totfact
    as the bridge's ``SystDetails``); when given, every event gets MadEvent's ``<mgrwt>`` block (what MG5's
    ``systematics`` reads). ``faked`` lists the fields a fallback filled in.
    """

    pdg: np.ndarray | None = None
    colour: np.ndarray | None = None
    helicity: np.ndarray | None = None
    x1x2: np.ndarray | None = None
    scale: np.ndarray | None = None
    aqed: np.ndarray | None = None
    aqcd: np.ndarray | None = None
    momenta_lab: np.ndarray | None = None
    record: object | None = None
    syst: object | None = None
    faked: list[str] = field(default_factory=list)


def details_from_process(d, n_external: int, *, aqed: float = -1.0) -> EventDetails:
    """:class:`EventDetails` from the bridge's ``Process.event_details`` result (duck-typed: ``pdg``, ``icolup``,
    ``helicity``, ``x1x2``, ``scale``, ``alphas``, ``momenta_lab``, ``record``), cut to ``n_external`` particles.
    AQEDUP is ``aqed`` (the param card's α, as MG5 writes it); AQCDUP the αs the matrix element used (kept as −1
    where the process has none)."""
    if isinstance(d, EventDetails):
        return d
    if not hasattr(d, "momenta_lab"):
        return EventDetails(**dict(d))
    status = np.asarray(getattr(d, "status", np.zeros(len(d.scale), np.int32)))
    if np.any(status != 0):
        bad = int(np.flatnonzero(status != 0)[0])
        raise ValueError(f"event_details: point {bad} has status {int(status[bad])} (an event must have status 0)")
    ne = n_external
    n = len(d.scale)
    return EventDetails(
        pdg=np.asarray(d.pdg)[:, :ne].astype(np.int64), colour=np.asarray(d.icolup)[:, :ne].astype(np.int64),
        helicity=np.asarray(d.helicity)[:, :ne].astype(np.int64), x1x2=np.asarray(d.x1x2, np.float64),
        scale=np.asarray(d.scale, np.float64), aqed=np.full(n, float(aqed)),
        aqcd=np.asarray(d.alphas, np.float64), momenta_lab=np.asarray(d.momenta_lab, np.float64)[:, :ne],
        record=getattr(d, "record", None), syst=getattr(d, "syst", None),
    )


@dataclass(frozen=True)
class SubprocessEventInfo:
    """Static per-P-directory data for writing events."""

    idprup: int
    n_external: int
    n_incoming: int
    pdg: tuple[int, ...]
    masses: tuple[float, ...]
    ebeam: tuple[float, float]
    colour: tuple[tuple[int, int], ...] | None = None


def p_group_number(pdir_name: str) -> int:
    """The P-group number MG5 uses as IDPRUP: ``P1_qq_ll`` → 1, ``P12_gg_ttx`` → 12 (1 if none)."""
    m = re.match(r"P(\d+)", pdir_name)
    return int(m.group(1)) if m else 1


def fallback_details(momenta: np.ndarray, sub: SubprocessEventInfo, *, aqed: float = -1.0, aqcd: float = -1.0,
                     given: EventDetails | None = None) -> EventDetails:
    """Fill every field ``given`` lacks with the documented fallback (see module docstring)."""
    d = given or EventDetails()
    n = momenta.shape[0]
    ne = sub.n_external
    faked = list(d.faked)
    if d.pdg is None:
        d.pdg = np.tile(np.asarray(sub.pdg[:ne], np.int64), (n, 1))
        faked.append("flavour (representative subprocess)")
    if d.colour is None:
        if sub.colour is not None:
            d.colour = np.tile(np.asarray(sub.colour[:ne], np.int64)[None], (n, 1, 1))
            faked.append("colour (first colour flow)")
        else:
            d.colour = np.zeros((n, ne, 2), np.int64)
            if any(abs(p) <= 6 or p == 21 for p in sub.pdg[:ne]):
                faked.append("colour (none)")
    if d.helicity is None:
        d.helicity = np.full((n, ne), LHE_SPIN_UNKNOWN, np.int64)
    if d.momenta_lab is None and d.x1x2 is None:
        faked.append("frame (partonic c.m., no x1/x2)")
    if d.scale is None:
        ptot = momenta[:, : sub.n_incoming].sum(axis=1)
        d.scale = invariant_mass(ptot)
        faked.append("scale (sqrt(s_hat))")
    if d.aqed is None:
        d.aqed = np.full(n, aqed)
    if d.aqcd is None:
        d.aqcd = np.full(n, aqcd)
    d.faked = sorted(set(faked))
    return d


def lab_momenta(momenta: np.ndarray, sub: SubprocessEventInfo, details: EventDetails) -> np.ndarray:
    p = momenta[:, : sub.n_external]
    if details.momenta_lab is not None:
        return np.asarray(details.momenta_lab, np.float64)[:, : sub.n_external]
    if details.x1x2 is not None and sub.n_incoming == 2:
        x = np.asarray(details.x1x2, np.float64)
        return boost_to_lab(p, x[:, 0], x[:, 1], sub.ebeam)
    return p


def format_events(momenta: np.ndarray, weights: np.ndarray, sub: SubprocessEventInfo,
                  details: EventDetails) -> str:
    """``<event>`` blocks (MG5's column layout) for n events of one P-directory."""
    p = lab_momenta(momenta, sub, details)
    n, ne = p.shape[0], sub.n_external
    masses = np.asarray(sub.masses[:ne], np.float64) if len(sub.masses) >= ne else None
    out = io.StringIO()
    rec = details.record
    for k in range(n):
        if rec is not None and int(rec.n_lines[k]) > 0:
            _format_record_event(out, k, rec, sub.idprup, weights[k], details)
            continue
        out.write("<event>\n")
        out.write(f" {ne:d} {sub.idprup:6d} {weights[k]:+.7e} {details.scale[k]:.8e} "
                  f"{details.aqed[k]:.8e} {details.aqcd[k]:.8e}\n")
        for i in range(ne):
            incoming = i < sub.n_incoming
            status = -1 if incoming else 1
            m1, m2 = (0, 0) if incoming else (1, min(2, sub.n_incoming))
            col, acol = (int(details.colour[k, i, 0]), int(details.colour[k, i, 1]))
            e, px, py, pz = p[k, i]
            mass = masses[i] if masses is not None else math.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0))
            spin = int(details.helicity[k, i])
            out.write(f" {int(details.pdg[k, i]):8d} {status:2d} {m1:4d} {m2:4d} {col:4d} {acol:4d} "
                      f"{px:+.10e} {py:+.10e} {pz:+.10e} {e:.10e} {mass:.10e} 0.0000e+00 {float(spin):.4e}\n")
        out.write(mgrwt_block(details.syst, k))
        out.write("</event>\n")
    return out.getvalue()


def _format_record_event(out, k: int, rec, idprup: int, weight: float, details: EventDetails) -> None:
    """One ``<event>`` from the record lines of event k (MadEvent's ``write_leshouche`` content)."""
    nl = int(rec.n_lines[k])
    out.write("<event>\n")
    out.write(f" {nl:d} {idprup:6d} {weight:+.7e} {details.scale[k]:.8e} "
              f"{details.aqed[k]:.8e} {details.aqcd[k]:.8e}\n")
    for i in range(nl):
        e, px, py, pz, mass = (float(x) for x in rec.pup[k, i])
        m1, m2 = int(rec.mothup[k, i, 0]), int(rec.mothup[k, i, 1])
        col, acol = int(rec.icolup[k, i, 0]), int(rec.icolup[k, i, 1])
        out.write(f" {int(rec.idup[k, i]):8d} {int(rec.istup[k, i]):2d} {m1:4d} {m2:4d} {col:4d} {acol:4d} "
                  f"{px:+.10e} {py:+.10e} {pz:+.10e} {e:.10e} {mass:.10e} 0.0000e+00 "
                  f"{float(rec.spinup[k, i]):.4e}\n")
    out.write(mgrwt_block(details.syst, k))
    out.write("</event>\n")


def fortran_e(x: float, digits: int = 8, width: int = 15) -> str:
    """``x`` as Fortran's ``E<width>.<digits>`` edit descriptor writes it (``0.89036163E+02``), right-justified."""
    x = float(x)
    if x == 0.0 or not math.isfinite(x):
        body = f"0.{'0' * digits}E+00" if x == 0.0 else str(x)
        return body.rjust(width)
    # Python's d.ddd…e±XX with `digits` significant digits (rounding carries into the exponent) is 0.dddd…E±(XX+1)
    mant, exp = f"{abs(x):.{digits - 1}e}".split("e")
    return f"{'-' if x < 0 else ''}0.{mant.replace('.', '')}E{int(exp) + 1:+03d}".rjust(width)


def mgrwt_block(syst, k: int) -> str:
    """MadEvent's ``<mgrwt>`` block of event k (unwgt.f ``write_leshouche``, use_syst = True, no CKKW history):
    ``<rscale>`` n_qcd and μR, ``<asrwt>0``, one ``<pdfrwt>`` per beam (``0`` where the beam has no PDF weight),
    ``<totfact>``. Empty string when ``syst`` is None."""
    if syst is None:
        return ""
    lines = ["<mgrwt>", f"<rscale>{int(syst.n_qcd[k]):3d}{fortran_e(syst.ren_scale[k])}</rscale>", "<asrwt>0</asrwt>"]
    for b in range(2):
        pdg = int(syst.pdf_pdg[k, b])
        if pdg == 0:
            lines.append(f'<pdfrwt beam="{b + 1}">0</pdfrwt>')
        else:
            lines.append(f'<pdfrwt beam="{b + 1}">{1:3d}{pdg:9d}{fortran_e(syst.pdf_x[k, b])}'
                         f"{fortran_e(syst.pdf_q[k, b])}</pdfrwt>")
    lines += [f"<totfact>{fortran_e(syst.totfact[k])}</totfact>", "</mgrwt>"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------- unweighting
def partial_unweight(weights: np.ndarray, threshold: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """MadEvent-style partial unweighting: |w| ≥ threshold is kept with its weight, |w| < threshold is kept with
    probability |w|/threshold and then carries ±threshold. Unbiased: E[Σ kept weights] = Σ w.

    Returns (indices of kept events, their new weights).
    """
    w = np.asarray(weights, np.float64)
    if threshold <= 0:
        idx = np.flatnonzero(w != 0)
        return idx, w[idx]
    a = np.abs(w)
    u = rng.random(w.shape[0])
    keep = (a >= threshold) | (u * threshold < a)
    keep &= a > 0
    idx = np.flatnonzero(keep)
    new = np.where(a[idx] >= threshold, w[idx], np.sign(w[idx]) * threshold)
    return idx, new


# ---------------------------------------------------------------------------------------------------- writers
def write_gdir_events(path: str | Path, blocks: str, group: AtomicGroup | None = None) -> None:
    """Write the bare event blocks of one G directory (``G*/events.lhe``), atomically or staged in ``group``."""
    if group is not None:
        group.stage(path, blocks, compress=False)
    else:
        atomic_write_text(path, blocks, compress=False)


def init_block(beams: Sequence[int], ebeam: Sequence[float], pdf_ids: Sequence[int], processes: Iterable[tuple],
               lha_strategy: int = -4) -> str:
    """``<init>`` text: beams, energies, PDF ids, then one ``xsec err wgt idprup`` line per process."""
    processes = list(processes)
    lines = [f"{int(beams[0])} {int(beams[1])} {float(ebeam[0]):.6e} {float(ebeam[1]):.6e} 0 0 "
             f"{int(pdf_ids[0])} {int(pdf_ids[1])} {lha_strategy:d} {len(processes)}"]
    for xs, err, wgt, idprup in processes:
        lines.append(f"{xs:.6e} {err:.6e} {wgt:.6e} {int(idprup)}")
    return "<init>\n" + "\n".join(lines) + "\n</init>\n"


def write_lhe_file(path: str | Path, events: str, init: str, header: str = "") -> Path:
    """A complete LHE 3.0 file, atomically (gzip when the name ends in ``.gz``)."""
    text = ('<LesHouchesEvents version="3.0">\n<header>\n' + header.rstrip("\n") + "\n</header>\n"
            + init + events + "</LesHouchesEvents>\n")
    return atomic_write_text(path, text)


def read_events(path: str | Path) -> list[dict]:
    """Minimal reader of ``<event>`` blocks (tests, harness): weight, idprup, particles [(pdg, status, col, acol,
    p(E,px,py,pz), m)]."""
    p = Path(path)
    opener = gzip.open if p.name.endswith(".gz") else open
    with opener(p, "rt") as fh:
        text = fh.read()
    out = []
    for block in re.findall(r"<event>\n(.*?)</event>", text, flags=re.S):
        lines = [ln for ln in block.strip("\n").split("\n") if ln.strip() and not ln.lstrip().startswith("<")]
        head = lines[0].split()
        ne = int(head[0])
        parts = []
        for ln in lines[1 : 1 + ne]:
            f = ln.split()
            parts.append(dict(pdg=int(f[0]), status=int(f[1]), col=int(f[4]), acol=int(f[5]),
                              p=(float(f[9]), float(f[6]), float(f[7]), float(f[8])), m=float(f[10]),
                              spin=float(f[12])))
        out.append(dict(n=ne, idprup=int(head[1]), weight=float(head[2]), scale=float(head[3]),
                        aqed=float(head[4]), aqcd=float(head[5]), particles=parts))
    return out
