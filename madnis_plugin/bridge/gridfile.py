"""MadEvent VEGAS grid files: read ``ftn26`` (what MadEvent writes), write ``ftn25`` (what it reads).

Layout (MG5 3.5 ``Source/dsample.f``; shared/docs/mg5-internals.md §2), read list-directed by MadEvent:
  1. ``((grid(2,i,j), i=1,96), j=1,invar)``: for each variable j the 96 **upper** bin edges in grid coordinates
     [-1, 1] (the lower edge of bin 1 is -1 implicitly; edges strictly increase; the last is 1), written as
     ``(4f21.17)``: 4 values per line, 24 lines per variable;
  2. ``twgt force_max_wgt`` (list-directed; -1/-2 = inactive);
  3. optionally the ``GOODHEL`` logicals (read when nhel = 0) and ``<DiscreteSampler_grid>`` blocks.
Part 3 is kept verbatim as ``tail``.

The grid maps the bin coordinate u in [0, 96] to x = grid value, piecewise linearly (value -1 at u = 0). MadEvent
draws u uniformly in [xbin(xmin), xbin(xmax)] and the phase-space variables live in x in [0, 1] (angles, t-channel
fractions, tau, y; s-channel invariants in a sub-range), so only the part of the map with value in [0, 1] is used:
MadEvent's adapted grids put bin 1 on [-1, ~xmin] and the other 95 bins on [0, 1] (e.g. first upper edge 0.053).
The bridge injects r through the flat grid (x = r on [0, 1]), so the core's VEGAS edges on [0, 1] (K+1 points per
dimension) are the map restricted to [0, 1]: :meth:`MadEventGrid.to_unit_edges` takes the map between
u0 = xbin(0) and 96; :meth:`MadEventGrid.from_unit_edges` writes bin 1 = [-1, 0] (never sampled: xbin(0) = 1) and the
core's map on 95 bins over [0, 1]. (Variables whose range is a sub-interval [xmin, xmax] of [0, 1], e.g. s-channel
invariants, see r = (x - xmin) / (xmax - xmin) in the bridge; for them the hand-back is approximate.)

Round trips: :func:`write_grid` then :func:`read_grid` then :func:`write_grid` is byte-identical, and read -> write
-> read gives equal values (17 decimals resolve every double of [-1, 1] that came from such a file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

N_BINS = 96  # MadEvent's ng (Source/genps.inc)
XGMIN, XGMAX = -1.0, 1.0


class GridFileError(ValueError):
    """A grid file that cannot be parsed or a grid that MadEvent could not use."""


@dataclass
class MadEventGrid:
    """A MadEvent VEGAS grid.

    edges: float64 [invar, 96], upper bin edges in [-1, 1], strictly increasing, last = 1.
    twgt, force_max_wgt: the second record (-1 = inactive).
    tail: the rest of the file verbatim (GOODHEL logicals, DiscreteSampler blocks), "" if none.
    """

    edges: np.ndarray
    twgt: float = -1.0
    force_max_wgt: float = -1.0
    tail: str = ""

    def __post_init__(self):
        self.edges = np.array(self.edges, dtype=np.float64, copy=True)
        if self.edges.ndim != 2 or self.edges.shape[1] != N_BINS:
            raise GridFileError(f"edges must have shape [invar, {N_BINS}], got {self.edges.shape}")

    @property
    def invar(self) -> int:
        return self.edges.shape[0]

    def validate(self) -> None:
        """Raise GridFileError unless MadEvent can use the grid (increasing, inside [-1, 1], last edge = 1)."""
        full = np.concatenate([np.full((self.invar, 1), XGMIN), self.edges], axis=1)
        if not np.all(np.isfinite(self.edges)):
            raise GridFileError("grid edges must be finite")
        if np.any(np.diff(full, axis=1) <= 0):
            raise GridFileError("grid edges must be strictly increasing from -1")
        if np.any(np.abs(self.edges[:, -1] - XGMAX) > 1e-12):
            raise GridFileError("the last edge of every variable must be 1")

    # ---- conversion to/from the core's [0, 1] edges ------------------------------------------------------------
    def to_unit_edges(self) -> np.ndarray:
        """[invar, 97] edges on [0, 1] (first 0, last 1) for the core's VEGAS grid: the map u -> x restricted to
        x in [0, 1] (u from xbin(0) to 96), evaluated at 97 equidistant u."""
        full = np.concatenate([np.full((self.invar, 1), XGMIN), self.edges], axis=1)  # value at u = 0..96
        u = np.arange(N_BINS + 1, dtype=np.float64)
        out = np.empty((self.invar, N_BINS + 1))
        for j in range(self.invar):
            u0 = float(np.interp(0.0, full[j], u))  # xbin(0)
            out[j] = np.interp(u0 + (N_BINS - u0) * np.linspace(0.0, 1.0, N_BINS + 1), u, full[j])
        out[:, 0], out[:, -1] = 0.0, 1.0
        return np.clip(out, 0.0, 1.0)

    @classmethod
    def from_unit_edges(cls, edges01, *, twgt: float = -1.0, force_max_wgt: float = -1.0, tail: str = "",
                        invar: int | None = None) -> "MadEventGrid":
        """From [D, K+1] edges on [0, 1] (the map r -> x on [0, 1]), rebinned to 95 bins on [0, 1] after bin 1 = [-1, 0].

        ``invar`` pads with flat variables up to that many (MadEvent reads max(2, ndim) variables).
        """
        e = np.asarray(edges01, dtype=np.float64)
        if e.ndim == 1:
            e = e[None, :]
        if np.any(np.abs(e[:, 0]) > 1e-12) or np.any(np.abs(e[:, -1] - 1.0) > 1e-12):
            raise GridFileError("unit edges must start at 0 and end at 1")
        e = rebin(e, N_BINS - 1)  # 95 bins on [0, 1]; bin 1 = [-1, 0] is below every x MadEvent draws
        g = np.concatenate([np.zeros((e.shape[0], 1)), e[:, 1:]], axis=1)
        g[:, -1] = XGMAX
        if invar is not None and invar > g.shape[0]:
            g = np.concatenate([g, flat_edges(invar - g.shape[0])], axis=0)
        return cls(g, twgt, force_max_wgt, tail)

    @classmethod
    def flat(cls, invar: int, *, twgt: float = -1.0, force_max_wgt: float = -1.0, tail: str = "") -> "MadEventGrid":
        """The flat grid (x = r, Jacobian 1)."""
        return cls(flat_edges(invar), twgt, force_max_wgt, tail)

    def __eq__(self, other) -> bool:
        if not isinstance(other, MadEventGrid):
            return NotImplemented
        return (
            np.array_equal(self.edges, other.edges)
            and self.twgt == other.twgt
            and self.force_max_wgt == other.force_max_wgt
            and self.tail == other.tail
        )


def flat_edges(invar: int) -> np.ndarray:
    """[invar, 96] upper edges of the flat grid: -1 + 2 i / 96."""
    e = XGMIN + (XGMAX - XGMIN) * np.arange(1, N_BINS + 1) / N_BINS
    return np.tile(e, (invar, 1))


def rebin(edges01: np.ndarray, n_bins: int) -> np.ndarray:
    """Edges [D, K+1] of a VEGAS map on [0,1] -> [D, n_bins+1]: the map u -> x evaluated at u = k/n_bins."""
    e = np.atleast_2d(np.asarray(edges01, dtype=np.float64))
    u_old = np.linspace(0.0, 1.0, e.shape[1])
    u_new = np.linspace(0.0, 1.0, n_bins + 1)
    return np.stack([np.interp(u_new, u_old, row) for row in e])


def goodhel_tail(ncomb: int, grouped: bool = True) -> str:
    """A GOODHEL record with every helicity enabled (NCOMB×2 logicals grouped, NCOMB ungrouped)."""
    n = ncomb * (2 if grouped else 1)
    vals = ["T"] * n
    lines = [" ".join(vals[i : i + 40]) for i in range(0, n, 40)]
    return "\n".join(" " + line for line in lines) + "\n"


# ---------------------------------------------------------------------------------------------------- reading
_TOKEN = re.compile(r"[^\s,]+")


def _parse_number(tok: str) -> list[float] | None:
    """A list-directed real (with optional r*value repeat and Fortran D exponent), or None if not numeric."""
    rep = 1
    if "*" in tok:
        a, b = tok.split("*", 1)
        if not a.isdigit():
            return None
        rep, tok = int(a), b
    t = tok.replace("D", "E").replace("d", "e")
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", t):
        return None
    return [float(t)] * rep


def parse_grid(text: str, invar: int | None = None) -> MadEventGrid:
    """Parse the text of a grid file (see module docstring). ``invar`` is inferred when not given."""
    values: list[float] = []
    end_of_numbers = len(text)
    for m in _TOKEN.finditer(text):
        nums = _parse_number(m.group(0))
        if nums is None or (invar is not None and len(values) >= N_BINS * invar + 2):
            end_of_numbers = m.start()
            break
        values.extend(nums)
    else:
        end_of_numbers = len(text)
    if invar is None:
        if len(values) < N_BINS + 2 or (len(values) - 2) % N_BINS:
            raise GridFileError(
                f"a grid file holds 96*invar edges and 2 numbers (twgt, force_max_wgt); found {len(values)} "
                "numbers before the first non-numeric token"
            )
        invar = (len(values) - 2) // N_BINS
    elif len(values) < N_BINS * invar + 2:
        raise GridFileError(f"expected {N_BINS * invar + 2} numbers for invar={invar}, found {len(values)}")
    edges = np.asarray(values[: N_BINS * invar], dtype=np.float64).reshape(invar, N_BINS)
    twgt, fmw = values[N_BINS * invar], values[N_BINS * invar + 1]
    # the tail starts at the line after the last number (or at the first non-numeric token if on that line)
    nl = text.rfind("\n", 0, end_of_numbers)
    tail_start = end_of_numbers
    if nl >= 0 and text[nl + 1 : end_of_numbers].strip() == "":
        tail_start = nl + 1
    tail = text[tail_start:] if end_of_numbers < len(text) else ""
    return MadEventGrid(edges, twgt, fmw, tail)


def read_grid(path: str | Path, invar: int | None = None) -> MadEventGrid:
    """Read a MadEvent grid file (``ftn26`` or ``ftn25``)."""
    return parse_grid(Path(path).read_text(), invar)


# ---------------------------------------------------------------------------------------------------- writing
def format_grid(grid: MadEventGrid) -> str:
    """The text of an ``ftn25`` MadEvent reads: edges as (4f21.17), then ``twgt force_max_wgt``, then the tail."""
    grid.validate()
    flat = grid.edges.reshape(-1)
    lines = []
    for i in range(0, flat.shape[0], 4):
        lines.append("".join(f"{v:21.17f}" for v in flat[i : i + 4]))
    lines.append(f" {grid.twgt:.17E} {grid.force_max_wgt:.17E}")
    text = "\n".join(lines) + "\n"
    tail = grid.tail
    if tail and not tail.endswith("\n"):
        tail += "\n"
    return text + tail


def write_grid(path: str | Path, grid: MadEventGrid) -> Path:
    """Write ``grid`` to ``path`` (e.g. ``G<tag>/ftn25``)."""
    path = Path(path)
    path.write_text(format_grid(grid))
    return path


def write_flat_grid(path: str | Path, invar: int, *, twgt: float = -1.0, tail: str = "") -> Path:
    """Write the flat grid (x = r) with ``invar`` variables; pass ``goodhel_tail(ncomb)`` as tail when nhel = 0."""
    return write_grid(path, MadEventGrid.flat(invar, twgt=twgt, tail=tail))
