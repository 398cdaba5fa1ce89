"""VEGAS grids between MadEvent and MadNIS.

* **In** (:func:`survey_grid_edges`): MadEvent's survey/refine writes ``G<tag>/ftn26`` (its adapted VEGAS grid, in
  the variables r the bridge takes). When such grids exist from an earlier classic run, the VEGAS pre-training of
  each flow group starts from them instead of from a flat grid (:func:`initial_group_edges`): per group the grids of
  its channels are averaged as maps u → r (the mean of the bin edges), rebinned to the core's ``vegas_bins``.
* **Out** (:func:`write_back_grids`): after training, every surviving channel's G directory gets the VEGAS grid of
  its group as ``G<tag>/ftn26`` (MadEvent's format, via :mod:`madnis_plugin.bridge.gridfile`), so a later classic
  refine (which copies ftn26 → ftn25) starts from it; a G directory whose channels were all dropped gets a
  ``madnis_dropped`` marker file (and its ``results.dat`` says σ = 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .results import ChannelMap

DROPPED_MARKER = "madnis_dropped"


def _gridfile():
    from madnis_plugin.bridge import gridfile  # noqa: PLC0415

    return gridfile


def survey_grid_edges(gdir: str | Path, n_dims: int) -> np.ndarray | None:
    """Unit-interval edges ``[n_dims, 97]`` from ``gdir/ftn26`` (or ``ftn25``), or None if absent/unusable."""
    gf = _gridfile()
    for name in ("ftn26", "ftn25"):
        f = Path(gdir) / name
        if not f.is_file():
            continue
        try:
            grid = gf.read_grid(f)
            grid.validate()
        except (ValueError, OSError):
            continue
        e = grid.to_unit_edges()
        if e.shape[0] < n_dims:
            return None
        return e[:n_dims]
    return None


def initial_group_edges(me_dir: str | Path, cmap: ChannelMap, groups: Sequence[Sequence[int]], n_dims_of_channel,
                        n_dims: int, n_bins: int) -> tuple[np.ndarray | None, int]:
    """Edges ``[G, n_dims, n_bins+1]`` from MadEvent's survey grids, or (None, 0) if no channel has one.

    ``n_dims_of_channel(c)`` is the number of r entries channel c uses (others stay flat).
    Returns the edges and the number of groups that got a MadEvent grid.
    """
    gf = _gridfile()
    me_dir = Path(me_dir)
    out = np.tile(np.linspace(0.0, 1.0, n_bins + 1), (len(groups), n_dims, 1))
    found = 0
    for g, chans in enumerate(groups):
        rows = []
        for c in chans:
            gd = cmap.gdir_of(c)
            if gd is None:
                continue
            nd = int(n_dims_of_channel(c))
            e = survey_grid_edges(me_dir / "SubProcesses" / gd[0] / f"G{gd[1]}", nd)
            if e is not None:
                rows.append(gf.rebin(e, n_bins))
        if rows:
            nd = min(r.shape[0] for r in rows)
            mean = np.mean([r[:nd] for r in rows], axis=0)
            mean[:, 0], mean[:, -1] = 0.0, 1.0
            mean = np.maximum.accumulate(mean, axis=1)
            # strictly increasing (MadEvent grids are); guard against equal neighbours after averaging
            eps = 1e-12
            for j in range(1, mean.shape[1]):
                mean[:, j] = np.maximum(mean[:, j], mean[:, j - 1] + eps)
            mean = mean / mean[:, -1:]
            out[g, :nd] = mean
            found += 1
    return (out, found) if found else (None, 0)


def _helicity_tail(gpath: Path) -> str:
    """The part of ftn26 after the grid (GOODHEL logicals, DiscreteSampler blocks).

    Kept verbatim from MadEvent's own ftn26 in that G directory when there is one; otherwise every helicity is
    enabled (``NCOMB`` from the P-directory's Fortran, ×2 when grouped, i.e. ``mg.sym`` says 0); "" if unknown.
    """
    gf = _gridfile()
    old = gpath / "ftn26"
    if old.is_file():
        try:
            return gf.read_grid(old).tail
        except (ValueError, OSError):
            pass
    pdir = gpath.parent
    import re  # noqa: PLC0415

    ncomb = None
    for name in ("auto_dsig1.f", "matrix1_orig.f", "matrix.f", "auto_dsig.f"):
        f = pdir / name
        if f.is_file():
            m = re.search(r"NCOMB\s*=\s*(\d+)", f.read_text(errors="replace"))
            if m:
                ncomb = int(m.group(1))
                break
    if ncomb is None:
        return ""
    sym = pdir / "mg.sym"
    grouped = sym.is_file() and sym.read_text().split()[:1] == ["0"]
    return gf.goodhel_tail(ncomb, grouped=grouped)


def write_back_grids(me_dir: str | Path, cmap: ChannelMap, groups: Sequence[Sequence[int]], group_edges: np.ndarray,
                     active: Sequence[bool], n_dims_of_channel) -> dict[str, int]:
    """Write ftn26 for G directories with a surviving channel; mark G directories whose channels were all dropped.

    ``group_edges``: float ``[G, D, K+1]`` (the core's VEGAS edges). Returns counts {'written', 'dropped'}.
    """
    gf = _gridfile()
    me_dir = Path(me_dir)
    group_of = {}
    for g, chans in enumerate(groups):
        for c in chans:
            group_of[c] = g
    written = dropped = 0
    for pdir, tag in cmap.gdirs:
        gpath = me_dir / "SubProcesses" / pdir / f"G{tag}"
        chans = cmap.channels_of(pdir, tag)
        alive = [c for c in chans if active[c]]
        marker = gpath / DROPPED_MARKER
        if chans and not alive:
            gpath.mkdir(parents=True, exist_ok=True)
            marker.write_text("all MadNIS channels of this G directory were dropped (share below madnis_drop_cutoff)\n"
                              + " ".join(str(c) for c in chans) + "\n")
            dropped += 1
            continue
        if marker.exists():
            marker.unlink()
        if not alive:
            continue
        c = alive[0]
        nd = int(n_dims_of_channel(c))
        edges = np.asarray(group_edges[group_of[c]][:nd], np.float64)
        grid = gf.MadEventGrid.from_unit_edges(edges, invar=max(2, nd), tail=_helicity_tail(gpath))
        gpath.mkdir(parents=True, exist_ok=True)
        tmp = gpath / ".ftn26.madnis.tmp"
        gf.write_grid(tmp, grid)
        tmp.replace(gpath / "ftn26")
        written += 1
    return {"written": written, "dropped": dropped}
