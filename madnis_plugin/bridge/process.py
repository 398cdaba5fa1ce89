"""Open a process (the reference process, an MG5 P-directory, or a whole ``output madevent`` directory) and
evaluate it at chosen channels and random numbers through the worker pool.

    proc = load_process("reference")                      # the project's Fortran reference process
    proc = load_process("MY_OUTPUT/SubProcesses/P1_epem_mupmum", sde_strategy=1)
    proc = load_process("MY_OUTPUT")                      # every SubProcesses/P* dir, channels concatenated
    ev = proc.evaluate(channels, r)                       # numpy (or CPU torch) in, numpy Evaluation out
    det = proc.event_details(channels, r)                 # per-event flavour, colour, helicity, x1/x2, scale, αs,
                                                          # lab momenta and the LHE record (ABI 2)
    proc.close()                                          # or: with load_process(...) as proc:

Channels of a multi-P-directory output are concatenated in the sorted order of the P-dirs; ``info.subprocesses[k]``
gives each one's channel offset. For a point of a channel of P-dir k, ``alpha`` is nonzero only in P-dir k's columns
(each P-dir is its own integral; the total is the sum), ``momenta`` is zero-padded to the largest n_external, and
only the first ``n_dims_k`` entries of r are used (the others are integrated trivially). MG5 libraries freeze their
channel, so their workers are bound to one channel each (see pool.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import (
    BridgeError,
    ChannelOutOfRange,
    CompileError,
    InvalidInput,
    NotAMadEventOutput,
    ProcessNotFound,
    UnsupportedMG5Version,
)
from .library import RawSystDetails, check_inputs
from .pool import LibrarySpec, WorkerPool

SUPPORTED_MG5 = ((3, 5),)  # major.minor series the MG5 shim is written and verified for


# ============================================================================================================ data
@dataclass(frozen=True)
class SubprocessInfo:
    """One library (one P-directory, or the reference process)."""

    name: str
    path: str | None  # the P-directory (None for the reference process)
    library: str  # the .so
    pdg: tuple[int, ...]
    masses: tuple[float, ...]
    n_dims: int
    n_external: int
    n_incoming: int
    n_channels: int
    channel_offset: int  # global index of this subprocess's channel 0
    channel_diagram: tuple[int, ...]  # MG5 MAPCONFIG: diagram number of each local channel
    channel_group: tuple[int, ...]  # local group index of each local channel
    n_flavour_subprocesses: int  # the ABI's n_subprocesses (matrix elements summed in a P-group)
    ebeam: tuple[float, float]
    lpp: tuple[int, int]


@dataclass(frozen=True)
class ProcessInfo:
    """Static description of a loaded process."""

    kind: str  # "reference" | "mg5-pdir" | "mg5-output" | "library"
    path: str
    mg5_version: str | None
    sde_strategy: int
    subprocesses: tuple[SubprocessInfo, ...]
    channel_subprocess: tuple[int, ...]  # subprocess index of each global channel
    channel_diagram: tuple[int, ...]  # diagram number of each global channel (within its subprocess)

    @property
    def pdg(self) -> tuple[int, ...]:
        """PDG ids of the (first) subprocess."""
        return self.subprocesses[0].pdg

    @property
    def masses(self) -> tuple[float, ...]:
        return self.subprocesses[0].masses

    @property
    def ebeam(self) -> tuple[float, float]:
        return self.subprocesses[0].ebeam

    @property
    def lpp(self) -> tuple[int, int]:
        return self.subprocesses[0].lpp

    @property
    def beams(self) -> dict:
        return {"ebeam": self.ebeam, "lpp": self.lpp}


@dataclass(frozen=True)
class Evaluation:
    """Result of :meth:`Process.evaluate` for n points (numpy).

    weight: float64 [n], f/g_channel in pb, 0 where status != 0.
    momenta: float64 [n, n_ext, 4] (E, px, py, pz), GeV, partonic c.m. frame (zero-padded across P-dirs).
    alpha: float64 [n, n_channels], prior channel weights, rows sum to 1.
    status: int32 [n], 0 ok, 1 cut, 2 failed mapping, 3 non-finite, 4 error.
    channels: int64 [n], the channels evaluated.
    """

    weight: np.ndarray
    momenta: np.ndarray
    alpha: np.ndarray
    status: np.ndarray
    channels: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        return (self.status == 0) & np.isfinite(self.weight)

    def channel_weight(self) -> np.ndarray:
        """alpha[k, channels[k]] * weight[k]: the integrand of the evaluated channel (its mean is σ_channel)."""
        return self.alpha[np.arange(self.weight.shape[0]), self.channels] * self.weight


@dataclass(frozen=True)
class EventRecord:
    """The LHE event record of n points (what MadEvent writes; ``mb_event_record``), zero-padded to L lines.

    n_lines int [n]; idup, istup (-1 in, 1 out, 2 intermediate resonance), spinup int [n, L]; mothup (1-based line
    numbers), icolup int [n, L, 2]; pup float [n, L, 5] = (E, px, py, pz, m) in the lab frame (GeV).
    """

    n_lines: np.ndarray
    idup: np.ndarray
    istup: np.ndarray
    mothup: np.ndarray
    icolup: np.ndarray
    pup: np.ndarray
    spinup: np.ndarray


#: MadEvent's ``<mgrwt>`` information for n points, merged over the P-directories in input order: the library's own
#: result type (status, n_qcd, ren_scale, pdf_pdg, pdf_x, pdf_q, totfact; see madnis_bridge.h ``mb_syst_details``)
SystDetails = RawSystDetails


@dataclass(frozen=True)
class EventDetails:
    """Result of :meth:`Process.event_details` for n points (numpy; see madnis_bridge.h, ``mb_event_details``).

    status int32 [n] (as in :class:`Evaluation`; other fields are zero where status != 0);
    subprocess int64 [n] (index into ``info.subprocesses``: the P-directory); iproc int32 [n] (0-based flavour
    subprocess inside the P-group); mirror int32 [n] (1 = beams swapped); x1x2 float64 [n, 2] (beam 1, beam 2);
    scale float64 [n] (SCALUP, GeV); alphas float64 [n] (AQCDUP, -1 = no strong coupling);
    pdg int32 [n, n_ext]; icolup int32 [n, n_ext, 2]; helicity int32 [n, n_ext] (9 = unknown);
    momenta_lab float64 [n, n_ext, 4] (E, px, py, pz): incoming in beam order (0 = beam 1, +z), final state in
    process order; zero-padded to the largest n_external. ``record``: the full LHE record (with resonances) or None.
    """

    status: np.ndarray
    subprocess: np.ndarray
    iproc: np.ndarray
    mirror: np.ndarray
    x1x2: np.ndarray
    scale: np.ndarray
    alphas: np.ndarray
    pdg: np.ndarray
    icolup: np.ndarray
    helicity: np.ndarray
    momenta_lab: np.ndarray
    channels: np.ndarray
    record: EventRecord | None = None
    syst: SystDetails | None = None

    @property
    def valid(self) -> np.ndarray:
        return self.status == 0


# ============================================================================================================ process
class Process:
    """A loaded process; evaluates in worker processes. Use :func:`load_process` to create one."""

    unit = "pb"

    def __init__(
        self,
        kind: str,
        path: str,
        specs: list[LibrarySpec],
        subprocess_names: list[str],
        subprocess_paths: list[str | None],
        *,
        sde_strategy: int,
        mg5_version: str | None = None,
        exact: float | None = None,
        channel_names: list[str] | None = None,
        n_workers: int | None = None,
        timeout: float | None = None,
        max_workers: int | None = None,
    ):
        self.pool = WorkerPool(specs, n_workers, timeout=timeout, max_workers=max_workers)
        try:
            self._setup(kind, path, specs, subprocess_names, subprocess_paths, sde_strategy, mg5_version)
        except BaseException:
            self.pool.close()
            raise
        self.exact = exact
        if channel_names is None:
            channel_names = [
                f"{sp.name}/G{d}" if len(self.info.subprocesses) > 1 else f"G{d}"
                for sp in self.info.subprocesses
                for d in sp.channel_diagram
            ]
        self.channel_names = list(channel_names)

    def _setup(self, kind, path, specs, names, paths, sde_strategy, mg5_version):
        subs = []
        offset = 0
        for k, spec in enumerate(specs):
            li = self.pool.info(k)
            subs.append(
                SubprocessInfo(
                    name=names[k],
                    path=paths[k],
                    library=spec.path,
                    pdg=tuple(int(x) for x in li.pdg),
                    masses=tuple(float(x) for x in li.masses),
                    n_dims=li.n_dims,
                    n_external=li.n_external,
                    n_incoming=li.n_incoming,
                    n_channels=li.n_channels,
                    channel_offset=offset,
                    channel_diagram=tuple(int(x) for x in li.channel_diagram),
                    channel_group=tuple(int(x) for x in li.channel_group),
                    n_flavour_subprocesses=li.n_subprocesses,
                    ebeam=(float(li.ebeam[0]), float(li.ebeam[1])),
                    lpp=(int(li.lpp[0]), int(li.lpp[1])),
                )
            )
            offset += li.n_channels
        self.info = ProcessInfo(
            kind=kind,
            path=str(path),
            mg5_version=mg5_version,
            sde_strategy=sde_strategy,
            subprocesses=tuple(subs),
            channel_subprocess=tuple(k for k, sp in enumerate(subs) for _ in range(sp.n_channels)),
            channel_diagram=tuple(d for sp in subs for d in sp.channel_diagram),
        )
        self._has_syst = all(self.pool.info(k).has_syst_details for k in range(len(specs)))
        self._has_event_full = all(self.pool.info(k).has_event_full for k in range(len(specs)))
        self.n_channels = offset
        self.n_dims = max(sp.n_dims for sp in subs)
        self.n_external = max(sp.n_external for sp in subs)
        groups: dict[tuple[int, int], list[int]] = {}
        for k, sp in enumerate(subs):
            for c, g in enumerate(sp.channel_group):
                groups.setdefault((k, g), []).append(sp.channel_offset + c)
        self.channel_groups = [groups[key] for key in sorted(groups, key=lambda key: (key[0], min(groups[key])))]
        self.groups = self.channel_groups
        self._channel_sub = np.asarray(self.info.channel_subprocess, np.int64)
        self._offsets = np.asarray([sp.channel_offset for sp in subs], np.int64)
        n_final = max(sp.n_external - sp.n_incoming for sp in subs)
        self.n_features = 2 if kind == "reference" else 1 + 3 * n_final

    # -------------------------------------------------------------------------------------------------- evaluate
    def _split(self, channels, r):
        """Validate (channels, r) and cut them per P-directory: (ch, rr, [(k, idx)], [(k, local ch, r_k)])."""
        channels = _as_numpy(channels)
        r = _as_numpy(r)
        ch, rr = check_inputs(channels, r, self.n_dims)
        n = ch.shape[0]
        if n and (ch.min() < 0 or ch.max() >= self.n_channels):
            bad = int(np.flatnonzero((ch < 0) | (ch >= self.n_channels))[0])
            raise ChannelOutOfRange(
                f"channel {int(ch[bad])} at point {bad} is out of range [0, {self.n_channels})"
            )
        if n:
            bad_r = ~((rr >= 0.0) & (rr <= 1.0))
            if bad_r.any():
                k, j = (int(x) for x in np.argwhere(bad_r)[0])
                raise InvalidInput(f"r[{k}][{j}] = {float(rr[k, j])!r} is outside [0, 1] (or NaN)")
        subs = self.info.subprocesses
        sub_of_point = self._channel_sub[ch] if n else np.zeros(0, np.int64)
        requests, index_sets = [], []
        for k, sp in enumerate(subs):
            idx = np.flatnonzero(sub_of_point == k) if len(subs) > 1 else np.arange(n)
            if idx.shape[0] == 0:
                continue
            requests.append((k, ch[idx] - sp.channel_offset, np.ascontiguousarray(rr[idx, : sp.n_dims])))
            index_sets.append((k, idx))
        return ch, rr, index_sets, requests

    def evaluate(self, channels, r) -> Evaluation:
        """Evaluate at ``channels`` (integer [n]) and ``r`` (float64 [n, n_dims] in [0, 1]); numpy or CPU torch."""
        ch, _rr, index_sets, requests = self._split(channels, r)
        n = ch.shape[0]
        weight = np.zeros(n)
        momenta = np.zeros((n, self.n_external, 4))
        alpha = np.zeros((n, self.n_channels))
        status = np.zeros(n, np.int32)
        subs = self.info.subprocesses
        outs = self.pool.evaluate_many(requests) if requests else []
        for (k, idx), out in zip(index_sets, outs):
            sp = subs[k]
            weight[idx] = out.weight
            momenta[idx, : sp.n_external] = out.momenta
            alpha[idx, sp.channel_offset : sp.channel_offset + sp.n_channels] = out.alpha
            status[idx] = out.status
        return Evaluation(weight, momenta, alpha, status, ch.astype(np.int64))

    @property
    def has_syst_details(self) -> bool:
        """Whether :meth:`event_details` can add MadEvent's ``<mgrwt>`` information (``syst=True``): every library
        exports ``mb_syst_details`` (the MG5 shim does, whichever way it was opened; the reference process not)."""
        return self._has_syst

    def event_detail_passes(self, *, record: bool = True, syst: bool = False) -> int:
        """Matrix-element evaluations per point that :meth:`event_details` costs with these options: 1 where every
        library exports ``mb_event_full`` (the MG5 shim), else one per bridge function called (details, record,
        systematics)."""
        if self._has_event_full:
            return 1
        return 1 + int(record) + int(syst)

    def event_details(self, channels, r, *, record: bool = True, syst: bool = False) -> EventDetails:
        """Per-event details at (``channels``, ``r``), the same points as :meth:`evaluate` takes: the flavours, beam
        mirror, colour flow and helicities chosen for each point, x1/x2, the scale and αs the matrix element used,
        lab-frame momenta, (``record=True``) the full LHE record with intermediate resonances and (``syst=True``,
        MG5 processes built with ``use_syst = True`` only) MadEvent's systematics information. Deterministic in
        (channel, r) and consistent with :meth:`evaluate` (same subprocess choice, same phase-space point). Runs in
        the same workers (an MG5 library's points go to the workers frozen to their channel)."""
        ch, _rr, index_sets, requests = self._split(channels, r)
        n, ne = ch.shape[0], self.n_external
        i32 = np.int32
        status = np.zeros(n, i32)
        subproc = np.zeros(n, np.int64)
        iproc = np.zeros(n, i32)
        mirror = np.zeros(n, i32)
        x1x2 = np.zeros((n, 2))
        scale = np.zeros(n)
        alphas = np.zeros(n)
        pdg = np.zeros((n, ne), i32)
        icolup = np.zeros((n, ne, 2), i32)
        helicity = np.zeros((n, ne), i32)
        mom = np.zeros((n, ne, 4))
        if not requests:
            outs, recs, systs = [], [], []
        elif (record or syst) and self._has_event_full:
            # MG5 shim: details, record and systematics from one matrix-element evaluation per point
            outs, recs, systs = (list(x) for x in zip(*self.pool.event_full_many(requests, syst=syst)))
        else:  # one bridge pass per part (see event_detail_passes)
            outs = self.pool.event_details_many(requests)
            recs = self.pool.event_record_many(requests) if record else []
            systs = self.pool.syst_details_many(requests) if syst else []
        for (k, idx), o in zip(index_sets, outs):
            m = self.info.subprocesses[k].n_external
            status[idx], subproc[idx], iproc[idx], mirror[idx] = o.status, k, o.iproc, o.mirror
            x1x2[idx], scale[idx], alphas[idx] = o.x1x2, o.scale, o.alphas
            pdg[idx, :m], icolup[idx, :m], helicity[idx, :m], mom[idx, :m] = o.pdg, o.icolup, o.helicity, o.momenta_lab
        rec = None
        if record:
            nl = max([1] + [self.pool.info(k).max_record_lines for k in range(len(self.info.subprocesses))])
            rec = EventRecord(np.zeros(n, i32), np.zeros((n, nl), i32), np.zeros((n, nl), i32),
                              np.zeros((n, nl, 2), i32), np.zeros((n, nl, 2), i32), np.zeros((n, nl, 5)),
                              np.zeros((n, nl), i32))
            for (k, idx), o in zip(index_sets, recs):
                L = o.idup.shape[1]
                rec.n_lines[idx] = o.n_lines
                rec.idup[idx, :L], rec.istup[idx, :L], rec.spinup[idx, :L] = o.idup, o.istup, o.spinup
                rec.mothup[idx, :L], rec.icolup[idx, :L], rec.pup[idx, :L] = o.mothup, o.icolup, o.pup
        sy = None
        if syst:
            sy = SystDetails.zeros(n)
            for (_k, idx), o in zip(index_sets, systs):
                sy.status[idx], sy.n_qcd[idx] = o.status, o.n_qcd
                sy.ren_scale[idx], sy.totfact[idx] = o.ren_scale, o.totfact
                sy.pdf_pdg[idx], sy.pdf_x[idx], sy.pdf_q[idx] = o.pdf_pdg, o.pdf_x, o.pdf_q
        return EventDetails(status, subproc, iproc, mirror, x1x2, scale, alphas, pdg, icolup, helicity, mom,
                            ch.astype(np.int64), rec, sy)

    __call__ = evaluate

    # -------------------------------------------------------------------------------------------------- features
    def features(self, ev: Evaluation) -> np.ndarray:
        """Channel-independent features [n, n_features] for the channel-weight network.

        Reference process: (ln(s/M_Z²), cosθ) with θ the angle between e- and mu-.
        MG5: (ln(√ŝ/√s_beams), then per final-state particle ln(pT/√ŝ), η, φ/π) from the c.m.-frame momenta,
        zero-padded to the largest final state (MadNIS CWnet momentum parametrisation).
        """
        p = ev.momenta
        n = p.shape[0]
        out = np.zeros((n, self.n_features))
        if n == 0:
            return out
        with np.errstate(all="ignore"):
            if self.info.kind == "reference":
                from .reference_physics import MZ  # noqa: PLC0415

                s = (p[:, 0, 0] + p[:, 1, 0]) ** 2
                out[:, 0] = np.log(s / MZ**2)
                out[:, 1] = -p[:, 3, 3] / p[:, 3, 0]
            else:
                subs = self.info.subprocesses
                n_in = np.asarray([subs[k].n_incoming for k in range(len(subs))])[self._channel_sub[ev.channels]]
                n_ext = np.asarray([subs[k].n_external for k in range(len(subs))])[self._channel_sub[ev.channels]]
                ptot = np.where((np.arange(p.shape[1])[None, :] < n_in[:, None])[..., None], p, 0.0).sum(axis=1)
                m2 = ptot[:, 0] ** 2 - (ptot[:, 1:] ** 2).sum(axis=1)
                sqrt_s = np.sqrt(np.maximum(m2, 1e-300))
                eb = self.info.ebeam
                s_beam = 2.0 * np.sqrt(max(eb[0] * eb[1], 0.0))
                out[:, 0] = np.log(sqrt_s / s_beam) if s_beam > 0 else np.log(sqrt_s)
                n_final = (self.n_features - 1) // 3
                for j in range(n_final):
                    col = n_in + j
                    has = col < n_ext
                    q = p[np.arange(n), np.minimum(col, p.shape[1] - 1)]
                    pt = np.hypot(q[:, 1], q[:, 2])
                    pt_safe = np.maximum(pt, 1e-12 * sqrt_s)
                    out[:, 1 + 3 * j] = np.where(has, np.log(pt_safe / sqrt_s), 0.0)
                    out[:, 2 + 3 * j] = np.where(has, np.arcsinh(q[:, 3] / pt_safe), 0.0)
                    out[:, 3 + 3 * j] = np.where(has, np.arctan2(q[:, 2], q[:, 1]) / np.pi, 0.0)
        out[~ev.valid & (ev.status != 1)] = 0.0
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)

    # -------------------------------------------------------------------------------------------------- lifecycle
    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> "Process":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Process({self.info.kind}, {self.info.path!r}, n_dims={self.n_dims}, n_channels={self.n_channels}, "
            f"subprocesses={len(self.info.subprocesses)})"
        )


def _as_numpy(x):
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor (never imported here)
        return x.detach().cpu().numpy()
    return np.asarray(x)


# ============================================================================================================ loading
def mg5_version(output_dir: Path) -> str:
    """The MG5_aMC version that wrote ``output_dir`` (MGMEVersion.txt, else Cards/proc_card_mg5.dat's banner)."""
    f = output_dir / "MGMEVersion.txt"
    if f.is_file():
        m = re.search(r"(\d+\.\d+\.\d+\S*)", f.read_text(errors="replace"))
        if m:
            return m.group(1)
    card = output_dir / "Cards" / "proc_card_mg5.dat"
    if card.is_file():
        m = re.search(r"VERSION\s+(\d+\.\d+\.\d+\S*)", card.read_text(errors="replace"))
        if m:
            return m.group(1)
    raise UnsupportedMG5Version(
        f"cannot determine the MG5_aMC version of {output_dir}: no MGMEVersion.txt and no VERSION line in "
        "Cards/proc_card_mg5.dat"
    )


def check_mg5_version(version: str, where: Path) -> None:
    m = re.match(r"(\d+)\.(\d+)", version)
    if not m or (int(m.group(1)), int(m.group(2))) not in SUPPORTED_MG5:
        ok = ", ".join(f"{a}.{b}.x" for a, b in SUPPORTED_MG5)
        raise UnsupportedMG5Version(f"{where} was generated by MG5_aMC {version}; supported: {ok}")


def _is_pdir(d: Path) -> bool:
    return d.is_dir() and d.name.startswith("P") and ((d / "auto_dsig.f").is_file() or (d / "configs.inc").is_file())


def _check_output_root(root: Path) -> None:
    missing = [x for x in ("SubProcesses", "bin/madevent") if not (root / x).exists()]
    if missing:
        raise NotAMadEventOutput(
            f"{root} is not an MG5 `output madevent` directory (missing {', '.join(missing)}); pass the output "
            "directory, one of its SubProcesses/P* directories, or 'reference'"
        )


def _mg5_specs(pdirs: list[Path], sde_strategy: int) -> list[LibrarySpec]:
    try:
        from . import mg5build  # noqa: PLC0415  (lazy: MG5 support is optional)
    except ImportError as exc:
        raise CompileError(f"MG5 library build support is unavailable: {exc}") from exc
    specs = []
    for p in pdirs:
        try:
            so = mg5build.build_library(p, sde_strategy=sde_strategy)
        except BridgeError:
            raise
        except Exception as exc:  # mg5build's own exception classes -> the bridge's
            version_error = getattr(mg5build, "MG5VersionError", None)
            if version_error is not None and isinstance(exc, version_error):
                raise UnsupportedMG5Version(str(exc)) from exc
            raise CompileError(f"building the bridge library for {p} failed: {exc}", str(exc)) from exc
        specs.append(
            LibrarySpec(str(so), process_dir=str(p), sde_strategy=sde_strategy, frozen_channel=True, name=p.name)
        )
    return specs


def load_process(
    path: str | Path = "reference",
    *,
    sde_strategy: int = 1,
    n_workers: int | None = None,
    timeout: float | None = None,
    max_workers: int | None = None,
    process_dir: str | Path | None = None,
    frozen_channel: bool | None = None,
) -> Process:
    """Open a process.

    Args:
        path: ``"reference"`` (the project's reference process, built on demand), a ``.so`` implementing the
            bridge ABI, an MG5 ``SubProcesses/P*`` directory, or a whole ``output madevent`` directory.
        sde_strategy: channel-weight strategy, 1 (|M_diagram|², default) or 2 (propagator product).
        n_workers: worker processes evaluating at once (default ``os.cpu_count()``).
        timeout: seconds a single evaluate call may take before its workers are killed (default: no limit).
        max_workers: live worker processes at most (see :class:`~madnis_plugin.bridge.pool.WorkerPool`).
        process_dir: for a bare ``.so`` only: the directory passed to ``mb_init``.
        frozen_channel: for a bare ``.so`` only: whether the library freezes its channel (default True, safe).

    Raises:
        ProcessNotFound, NotAMadEventOutput, UnsupportedMG5Version, CompileError, InitError (all BridgeError).
    """
    if sde_strategy not in (1, 2):
        raise InvalidInput(f"sde_strategy must be 1 or 2, got {sde_strategy!r}")
    common = dict(sde_strategy=sde_strategy, n_workers=n_workers, timeout=timeout, max_workers=max_workers)
    if isinstance(path, str) and path == "reference" and not Path(path).exists():
        from .build import build_reference  # noqa: PLC0415

        return _reference_process(build_reference(), **common)
    p = Path(path).expanduser()
    if not p.exists():
        raise ProcessNotFound(f"process path does not exist: {p}")
    p = p.resolve()
    if p.is_file():
        if p.suffix != ".so" and ".so." not in p.name:
            raise ProcessNotFound(f"{p} is a file but not a shared library (.so) implementing the bridge ABI")
        if p.name.startswith("libmb_reference"):
            return _reference_process(p, **common)
        frozen = True if frozen_channel is None else bool(frozen_channel)
        spec = LibrarySpec(
            str(p), process_dir=str(process_dir or ""), sde_strategy=sde_strategy, frozen_channel=frozen, name=p.stem
        )
        return Process("library", str(p), [spec], [p.stem], [str(process_dir) if process_dir else None], **common)
    if _is_pdir(p):
        root = p.parent.parent
        if p.parent.name != "SubProcesses":
            raise NotAMadEventOutput(f"{p} looks like a P-directory but is not inside an output's SubProcesses/")
        _check_output_root(root)
        version = mg5_version(root)
        check_mg5_version(version, root)
        specs = _mg5_specs([p], sde_strategy)
        return Process("mg5-pdir", str(p), specs, [p.name], [str(p)], mg5_version=version, **common)
    if (p / "SubProcesses").exists() or (p / "bin" / "madevent").exists():
        _check_output_root(p)
        version = mg5_version(p)
        check_mg5_version(version, p)
        pdirs = sorted(d for d in (p / "SubProcesses").iterdir() if _is_pdir(d))
        if not pdirs:
            raise NotAMadEventOutput(f"{p}/SubProcesses has no P* subprocess directories")
        specs = _mg5_specs(pdirs, sde_strategy)
        return Process(
            "mg5-output", str(p), specs, [d.name for d in pdirs], [str(d) for d in pdirs], mg5_version=version,
            **common,
        )
    raise NotAMadEventOutput(
        f"{p} is neither an MG5 `output madevent` directory (SubProcesses/ and bin/madevent) nor one of its "
        "SubProcesses/P* directories"
    )


def _reference_process(so: Path, **common) -> Process:
    from .reference_physics import CHANNEL_NAMES, exact_cross_section  # noqa: PLC0415

    spec = LibrarySpec(str(so), sde_strategy=common["sde_strategy"], frozen_channel=False, name="reference")
    return Process(
        "reference",
        "reference",
        [spec],
        ["reference: e+ e- > mu+ mu- (gamma/Z, flat s spectrum 40-160 GeV, |cos theta| < 0.9)"],
        [None],
        exact=exact_cross_section(),
        channel_names=list(CHANNEL_NAMES),
        **common,
    )
