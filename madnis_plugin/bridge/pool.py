"""Worker processes that each load one process library and evaluate batches of points.

Why processes: a library keeps global state (MadEvent's COMMON blocks), is not re-entrant, and an MG5 library
freezes its phase-space channel at the first evaluation; a Fortran STOP or a segfault must not kill the caller.

How workers are started: ``subprocess.Popen([sys.executable, "-c", ...])`` with a socketpair for the messages (pickled
numpy arrays over :class:`multiprocessing.connection.Connection`). This is a fresh interpreter like the 'spawn'
start method, but it never re-imports the parent's ``__main__`` (under MG5 that is ``bin/mg5_aMC``, which must not
run again) and never forks a parent that has torch's threads. A worker imports only numpy, cffi and this package's
bridge modules. Its stdout/stderr go to a log file whose tail is quoted when it dies.

Routing:
  * a library that is *not* channel-frozen (the reference process): a batch is cut into up to ``n_workers``
    contiguous chunks; any worker of that library takes any chunk;
  * a *channel-frozen* library (MG5): every worker is bound to one channel by its first evaluation, and points of
    channel c only ever go to workers bound to c. Large channels may use several workers. At most
    ``max_workers`` worker processes live at once; when a new (library, channel) needs a worker and the cap is
    reached, the least recently used idle worker is ended (preferring ones whose channel the current batch does
    not need) and a new one started.
At most ``n_workers`` calls run at the same time. Results are reassembled in input order; the output does not depend
on the number of workers (each point is evaluated independently).

Failures: a worker that dies during a call (EOF on its socket) raises :class:`FortranStop` if it exited normally
(Fortran STOP / exit()) or :class:`WorkerCrashed` if a signal killed it (segfault, abort); a call that exceeds
``timeout`` kills the worker and raises :class:`WorkerCrashed`. The dead worker is removed, the other calls of the
batch are drained, and the pool stays usable. Errors the library reports (MB_ERR_*) are re-raised with their class;
after anything but InvalidInput/ChannelOutOfRange the worker is retired (its state is not trusted).

Shutdown: :meth:`WorkerPool.close` (also via ``with`` and at interpreter exit) asks workers to quit, then kills them.
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import weakref
from collections import deque
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path

import numpy as np

from .errors import (
    BY_NAME,
    BridgeError,
    ChannelOutOfRange,
    FortranStop,
    InternalError,
    InvalidInput,
    WorkerCrashed,
)
from .library import (
    RAW_DETAILS_FIELDS,
    RAW_RECORD_FIELDS,
    RAW_SYST_FIELDS,
    LibraryInfo,
    RawEvaluation,
    RawEventDetails,
    RawEventRecord,
    RawSystDetails,
    check_inputs,
)

_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)


@dataclass(frozen=True)
class LibrarySpec:
    """How a worker loads and initialises one library."""

    path: str
    process_dir: str = ""
    sde_strategy: int = 1
    seed: int = 0
    frozen_channel: bool = False
    name: str = ""


# ======================================================================================================== worker side
def _worker_main(fd: int) -> None:
    """Entry point of a worker process (runs until 'quit' or EOF)."""
    from .library import Library  # noqa: PLC0415  (import here: keeps the worker's imports minimal)

    conn = Connection(fd)
    lib = None
    spec = None

    def load(spec_dict):
        nonlocal lib, spec
        if lib is None:
            spec = LibrarySpec(**spec_dict)
            lib = Library(spec.path)
            lib.init(spec.process_dir, spec.sde_strategy, spec.seed)
        return lib

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        kind = msg[0]
        if kind == "quit":
            break
        try:
            if kind == "info":
                info = load(msg[1]).info()
                conn.send(("ok", info))
            elif kind == "eval":
                out = load(msg[1]).evaluate(msg[2], msg[3])
                conn.send(("ok", out.momenta, out.weight, out.alpha, out.status))
            elif kind == "details":
                out = load(msg[1]).event_details(msg[2], msg[3])
                conn.send(("ok", *(getattr(out, f) for f in RAW_DETAILS_FIELDS)))
            elif kind == "record":
                out = load(msg[1]).event_record(msg[2], msg[3])
                conn.send(("ok", *(getattr(out, f) for f in RAW_RECORD_FIELDS)))
            elif kind == "syst":
                out = load(msg[1]).syst_details(msg[2], msg[3])
                conn.send(("ok", *(getattr(out, f) for f in RAW_SYST_FIELDS)))
            elif kind in ("full", "full_syst"):
                d, rec, sy = load(msg[1]).event_full(msg[2], msg[3], syst=kind == "full_syst")
                arrays = [getattr(d, f) for f in RAW_DETAILS_FIELDS] + [getattr(rec, f) for f in RAW_RECORD_FIELDS]
                if sy is not None:
                    arrays += [getattr(sy, f) for f in RAW_SYST_FIELDS]
                conn.send(("ok", *arrays))
            else:
                conn.send(("err", "InternalError", f"unknown request {kind!r}"))
        except BridgeError as exc:
            conn.send(("err", type(exc).__name__, str(exc)))
        except Exception as exc:  # noqa: BLE001  (anything else is reported, never kills the worker silently)
            conn.send(("err", "InternalError", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    try:
        conn.close()
    except OSError:
        pass


# ======================================================================================================== parent side
class _Worker:
    _counter = 0

    def __init__(self, pool: "WorkerPool", lib_index: int, channel):
        _Worker._counter += 1
        self.id = _Worker._counter
        self.lib_index = lib_index
        self.channel = channel  # None = unbound (not frozen, or frozen but no evaluation yet)
        self.last_used = time.monotonic()
        self.channels_seen: set[int] = set()  # every channel this worker evaluated (checks of the routing)
        self.log_path = Path(pool._tmpdir) / f"worker{self.id}.log"
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = _PACKAGE_PARENT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        code = "import sys; from madnis_plugin.bridge.pool import _worker_main; _worker_main(int(sys.argv[1]))"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code, str(child_sock.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(child_sock.fileno(),),
                env=env,
                cwd=pool._cwd,
                close_fds=True,
                start_new_session=True,  # a Ctrl-C in the terminal goes to the parent only
            )
        child_sock.close()
        self.conn = Connection(parent_sock.detach())

    def describe(self, pool: "WorkerPool") -> str:
        spec = pool.specs[self.lib_index]
        ch = "" if self.channel is None else f", channel {self.channel}"
        return f"worker pid {self.proc.pid} ({spec.name or Path(spec.path).name}{ch})"

    def log_tail(self, n_chars: int = 2000) -> str:
        try:
            data = self.log_path.read_bytes()[-n_chars:]
        except OSError:
            return ""
        return data.decode("utf-8", "replace").strip()

    def kill(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def quit(self) -> None:
        try:
            self.conn.send(("quit",))
        except OSError:
            pass


@dataclass
class _Task:
    lib_index: int
    key: object  # channel for frozen libraries, None otherwise
    index: int  # position in the results list
    msg: tuple


_LIVE_POOLS: "weakref.WeakSet[WorkerPool]" = weakref.WeakSet()


@atexit.register
def _memory_worker_budget(per_worker_bytes: int = 100 * 2**20) -> int:
    """How many library workers a quarter of the physical memory holds."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 64
    return max(8, int(total // 4 // per_worker_bytes))


def _close_all_pools() -> None:
    for pool in list(_LIVE_POOLS):
        pool.close()


class WorkerPool:
    """Worker processes for one or more libraries.

    Args:
        specs: the libraries (index = position).
        n_workers: calls running at the same time; default ``os.cpu_count()``.
        max_workers: worker processes alive at once; default ``n_workers`` when no library is channel-frozen,
            else one per channel of the frozen libraries (at least ``max(4 * n_workers, 8)``), capped by a
            memory budget (a quarter of the machine's memory at ~100 MB per worker). Fewer workers than
            channels make every batch end and restart workers (a process start and a library init each).
        timeout: seconds one batch may take before the workers still busy are killed (None = no limit;
            default from ``$MADNIS_BRIDGE_TIMEOUT``).
        min_chunk: smallest chunk a batch is cut into for a non-frozen library.
        cwd: working directory of the workers (default: the parent's).
    """

    def __init__(
        self,
        specs,
        n_workers: int | None = None,
        *,
        max_workers: int | None = None,
        timeout: float | None = None,
        min_chunk: int = 512,
        cwd: str | os.PathLike | None = None,
    ):
        self.specs: list[LibrarySpec] = list(specs)
        if not self.specs:
            raise ValueError("WorkerPool needs at least one library")
        self.n_workers = max(1, int(n_workers or os.cpu_count() or 1))
        any_frozen = any(s.frozen_channel for s in self.specs)
        self._auto_cap = max_workers is None and any_frozen
        if max_workers is None:
            max_workers = max(4 * self.n_workers, 8) if any_frozen else self.n_workers
        self.max_workers = max(int(max_workers), 1)
        if timeout is None and os.environ.get("MADNIS_BRIDGE_TIMEOUT"):
            timeout = float(os.environ["MADNIS_BRIDGE_TIMEOUT"])
        self.timeout = timeout
        self.min_chunk = max(1, int(min_chunk))
        self._cwd = str(cwd) if cwd is not None else None
        self._tmpdir = tempfile.mkdtemp(prefix="madnis_pool_")
        self._workers: list[_Worker] = []
        self._infos: dict[int, LibraryInfo] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.n_spawned = 0
        _LIVE_POOLS.add(self)

    # ------------------------------------------------------------------------------------------------ public API
    def info(self, lib_index: int = 0) -> LibraryInfo:
        """The library's info (loaded and initialised in a worker; the parent never dlopens a library)."""
        if lib_index not in self._infos:
            spec = asdict(self.specs[lib_index])
            (res,) = self._run([_Task(lib_index, None, 0, ("info", spec))], info_request=True)
            self._infos[lib_index] = res
        return self._infos[lib_index]

    def evaluate(self, lib_index: int, channels, r) -> RawEvaluation:
        """Evaluate one library on (channels [n], r [n, n_dims]); see :meth:`evaluate_many`."""
        return self.evaluate_many([(lib_index, channels, r)])[0]

    def evaluate_many(self, requests) -> list[RawEvaluation]:
        """Evaluate several (lib_index, channels, r) requests in one scheduling round; results in request order.

        Channel ranges are not checked here (a library reports MB_ERR_CHANNEL); shapes and dtypes are.
        """
        return [RawEvaluation(*arrays) for arrays in self._points_many("eval", requests)]

    def event_details_many(self, requests) -> list[RawEventDetails]:
        """``mb_event_details`` for several (lib_index, channels, r) requests, routed like :meth:`evaluate_many`
        (a channel-frozen library's points go to the workers bound to their channel)."""
        return [RawEventDetails(*arrays) for arrays in self._points_many("details", requests)]

    def event_record_many(self, requests) -> list[RawEventRecord]:
        """``mb_event_record`` for several (lib_index, channels, r) requests, routed like :meth:`evaluate_many`."""
        return [RawEventRecord(*arrays) for arrays in self._points_many("record", requests)]

    def syst_details_many(self, requests) -> list[RawSystDetails]:
        """``mb_syst_details`` (MadEvent's ``<mgrwt>`` information) for several (lib_index, channels, r) requests,
        routed like :meth:`evaluate_many`."""
        return [RawSystDetails(*arrays) for arrays in self._points_many("syst", requests)]

    def event_full_many(self, requests, syst: bool = False) -> list[tuple[RawEventDetails, RawEventRecord,
                                                                          RawSystDetails | None]]:
        """The optional ``mb_event_full`` (details + record [+ systematics] from one matrix-element evaluation per
        point) for several (lib_index, channels, r) requests, routed like :meth:`evaluate_many`."""
        nd, nr = len(RAW_DETAILS_FIELDS), len(RAW_RECORD_FIELDS)
        out = []
        for arrays in self._points_many("full_syst" if syst else "full", requests):
            sy = RawSystDetails(*arrays[nd + nr:]) if syst else None
            out.append((RawEventDetails(*arrays[:nd]), RawEventRecord(*arrays[nd:nd + nr]), sy))
        return out

    @staticmethod
    def _empty(kind: str, n: int, info: LibraryInfo) -> list[np.ndarray]:
        """All-zero output arrays of a request kind, in the order the worker sends them."""
        if kind == "eval":
            ne, nc = info.n_external, info.n_channels
            return [np.zeros((n, ne, 4)), np.zeros(n), np.zeros((n, nc)), np.zeros(n, np.int32)]
        parts = []
        if kind in ("details", "full", "full_syst"):
            d = RawEventDetails.zeros(n, info.n_external)
            parts += [getattr(d, f) for f in RAW_DETAILS_FIELDS]
        if kind in ("record", "full", "full_syst"):
            rec = RawEventRecord.zeros(n, max(info.max_record_lines, 1))
            parts += [getattr(rec, f) for f in RAW_RECORD_FIELDS]
        if kind in ("syst", "full_syst"):
            sy = RawSystDetails.zeros(n)
            parts += [getattr(sy, f) for f in RAW_SYST_FIELDS]
        return parts

    def _points_many(self, kind: str, requests) -> list[list[np.ndarray]]:
        """Cut per-point requests into worker tasks (frozen libraries: one channel per task), run them, and
        reassemble every output array in input order."""
        prepared = []
        tasks: list[_Task] = []
        for lib_index, channels, r in requests:
            info = self.info(lib_index)
            ch, rr = check_inputs(channels, r, info.n_dims)
            prepared.append((lib_index, ch, rr, info))
        n_total = sum(p[1].shape[0] for p in prepared)
        chunk = max(self.min_chunk, math.ceil(n_total / self.n_workers)) if n_total else 1
        pieces = []  # (request index, point indices)
        for req_i, (lib_index, ch, rr, _info) in enumerate(prepared):
            spec = asdict(self.specs[lib_index])
            if self.specs[lib_index].frozen_channel:
                groups = [(int(c), np.flatnonzero(ch == c)) for c in np.unique(ch)]
            else:
                groups = [(None, np.arange(ch.shape[0]))]
            for key, idx in groups:
                n_chunks = max(1, math.ceil(idx.shape[0] / chunk))
                for part in np.array_split(idx, n_chunks):
                    if part.shape[0] == 0:
                        continue
                    tasks.append(_Task(lib_index, key, len(pieces), (kind, spec, ch[part], rr[part])))
                    pieces.append((req_i, part))
        results = self._run(tasks) if tasks else []
        outs = [self._empty(kind, ch.shape[0], info) for _lib, ch, _rr, info in prepared]
        for (req_i, part), res in zip(pieces, results):
            for dst, src in zip(outs[req_i], res):
                dst[part] = src
        return outs

    @property
    def n_live_workers(self) -> int:
        return len(self._workers)

    def worker_pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]

    def worker_channels(self) -> list[tuple[int, set[int]]]:
        """(library index, channels evaluated) of each live worker: one channel each for frozen libraries."""
        return [(w.lib_index, set(w.channels_seen)) for w in self._workers]

    def close(self) -> None:
        """Stop all workers (quit, then kill after 2 s) and remove the log directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        workers, self._workers = self._workers, []
        for w in workers:
            w.quit()
        deadline = time.monotonic() + 2.0
        for w in workers:
            try:
                w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            w.kill()
        shutil.rmtree(self._tmpdir, ignore_errors=True)
        _LIVE_POOLS.discard(self)

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    # ------------------------------------------------------------------------------------------------ scheduling
    def _spawn(self, lib_index: int, channel) -> _Worker:
        w = _Worker(self, lib_index, channel)
        self._workers.append(w)
        self.n_spawned += 1
        return w

    def _retire(self, w: _Worker) -> None:
        if w in self._workers:
            self._workers.remove(w)
        w.kill()

    def _cap(self) -> int:
        """Live-worker cap; with the automatic default it grows to one worker per known frozen channel."""
        if not self._auto_cap:
            return self.max_workers
        n_frozen = sum(info.n_channels for i, info in self._infos.items() if self.specs[i].frozen_channel)
        return max(self.max_workers, min(n_frozen, _memory_worker_budget()))

    def _acquire(self, task: _Task, busy: set, pending_keys: set, info_request: bool):
        spec = self.specs[task.lib_index]
        idle = [w for w in self._workers if w not in busy]
        same_lib = [w for w in idle if w.lib_index == task.lib_index]
        if not spec.frozen_channel or info_request:
            if same_lib:
                return max(same_lib, key=lambda w: w.last_used)
        else:
            for w in same_lib:
                if w.channel == task.key:
                    return w
            for w in same_lib:
                if w.channel is None:
                    w.channel = task.key
                    return w
        key = None if (info_request or not spec.frozen_channel) else task.key
        if len(self._workers) < self._cap():
            return self._spawn(task.lib_index, key)
        victims = [w for w in idle if (w.lib_index, w.channel) not in pending_keys]
        if not victims:
            if busy:
                return None  # wait for a running call to finish
            victims = idle
        if not victims:
            return None
        victim = min(victims, key=lambda w: w.last_used)
        self._retire(victim)
        return self._spawn(task.lib_index, key)

    def _death_error(self, w: _Worker) -> BridgeError:
        try:
            rc = w.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            w.kill()
            rc = w.proc.returncode
        tail = w.log_tail()
        tail_msg = f"\n--- last output of the worker ---\n{tail}" if tail else ""
        if rc is not None and rc < 0:
            try:
                sig = signal.Signals(-rc).name
            except ValueError:
                sig = f"signal {-rc}"
            return WorkerCrashed(f"{w.describe(self)} was killed by {sig} during a call{tail_msg}")
        return FortranStop(
            f"{w.describe(self)} exited with status {rc} during a call "
            f"(a Fortran STOP or exit() in the library){tail_msg}"
        )

    def _run(self, tasks: list[_Task], info_request: bool = False) -> list:
        if self._closed:
            raise BridgeError("the worker pool is closed")
        with self._lock:
            return self._run_locked(tasks, info_request)

    def _run_locked(self, tasks: list[_Task], info_request: bool) -> list:
        pending = deque(tasks)
        inflight: dict[_Worker, _Task] = {}
        results: list = [None] * len(tasks)
        errors: list[BridgeError] = []
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        try:
            while pending or inflight:
                while pending and not errors and len(inflight) < self.n_workers:
                    task = pending[0]
                    pending_keys = {(t.lib_index, t.key) for t in list(pending)[1:]}
                    w = self._acquire(task, set(inflight), pending_keys, info_request)
                    if w is None:
                        break
                    pending.popleft()
                    try:
                        w.conn.send(task.msg)
                    except OSError:
                        errors.append(self._death_error(w))
                        self._retire(w)
                        continue
                    inflight[w] = task
                    if task.msg[0] in ("eval", "details", "record"):
                        w.channels_seen.update(np.unique(task.msg[2]).tolist())
                if errors:
                    pending.clear()
                if not inflight:
                    if pending:
                        raise InternalError("worker pool scheduler made no progress (please report)")
                    break
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                by_conn = {w.conn: w for w in inflight}
                ready = wait(list(by_conn), timeout=remaining)
                if not ready:
                    stuck = list(inflight)
                    for w in stuck:
                        inflight.pop(w)
                        self._retire(w)
                    errors.append(
                        WorkerCrashed(
                            f"timeout: {len(stuck)} worker call(s) did not finish within {self.timeout} s "
                            f"({', '.join(w.describe(self) for w in stuck)}); the workers were killed"
                        )
                    )
                    continue
                for conn in ready:
                    w = by_conn[conn]
                    task = inflight.pop(w)
                    w.last_used = time.monotonic()
                    try:
                        reply = conn.recv()
                    except (EOFError, OSError):
                        errors.append(self._death_error(w))
                        self._retire(w)
                        continue
                    if reply[0] == "ok":
                        results[task.index] = reply[1] if info_request else reply[1:]
                    else:
                        cls = BY_NAME.get(reply[1], InternalError)
                        errors.append(cls(reply[2]))
                        if cls not in (InvalidInput, ChannelOutOfRange):
                            self._retire(w)
        except BaseException:
            # interrupted (KeyboardInterrupt, ...): the busy workers' state is unknown; end them
            for w in list(inflight):
                self._retire(w)
            raise
        if errors:
            raise errors[0]
        return results
