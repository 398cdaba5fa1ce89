"""MadEvent VEGAS grid files: layout, lossless round trips, conversion to the core's [0,1] edges, and that a Fortran
program reading it the way MadEvent's sample_init does gets the same numbers."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from madnis_plugin.bridge.gridfile import (
    N_BINS,
    GridFileError,
    MadEventGrid,
    flat_edges,
    format_grid,
    goodhel_tail,
    parse_grid,
    read_grid,
    rebin,
    write_flat_grid,
    write_grid,
)

DS_TAIL = """ T T F T
<DiscreteSampler_grid>
Helicity
# binID   n_entries weight   weight_sqr   abs_weight
   1   10   0.1000000000000000E+01   0.1000000000000000E+01   0.1000000000000000E+01
</DiscreteSampler_grid>
"""


def random_grid(invar: int, seed: int, tail: str = "") -> MadEventGrid:
    rng = np.random.default_rng(seed)
    w = rng.gamma(0.3, size=(invar, N_BINS)) + 1e-6  # very uneven bins, as after VEGAS adaptation
    e = -1.0 + 2.0 * np.cumsum(w, axis=1) / w.sum(axis=1, keepdims=True)
    e[:, -1] = 1.0
    return MadEventGrid(e, twgt=0.0123456789012345678, force_max_wgt=-1.0, tail=tail)


def test_flat_grid_layout(tmp_path):
    p = write_flat_grid(tmp_path / "ftn25", 3)
    lines = p.read_text().splitlines()
    assert len(lines) == 3 * 24 + 1
    assert all(len(line) == 84 for line in lines[:-1])
    assert lines[0] == " -0.97916666666666663 -0.95833333333333337 -0.93750000000000000 -0.91666666666666663"
    assert lines[23].endswith("  1.00000000000000000")
    g = read_grid(p)
    assert g.invar == 3 and g.twgt == -1 and g.force_max_wgt == -1 and g.tail == ""
    np.testing.assert_array_equal(g.edges, flat_edges(3))
    np.testing.assert_allclose(g.to_unit_edges(), np.tile(np.linspace(0, 1, 97), (3, 1)), atol=1e-16)


@pytest.mark.parametrize("tail", ["", DS_TAIL, goodhel_tail(16)])
def test_round_trips(tmp_path, tail):
    g = random_grid(5, seed=len(tail), tail=tail)
    t1 = format_grid(g)
    g1 = parse_grid(t1)
    t2 = format_grid(g1)
    assert t1 == t2  # write -> read -> write: byte-identical
    assert g1.tail == tail and g1.invar == 5
    np.testing.assert_allclose(g1.edges, g.edges, rtol=0, atol=1e-17)  # 17 decimals
    # read -> write -> read: equal
    write_grid(tmp_path / "a", g1)
    g2 = read_grid(tmp_path / "a")
    assert g2 == g1


def test_ftn26_with_tail_kept_verbatim():
    edges = flat_edges(2)
    body = "\n".join("".join(f"{v:21.17f}" for v in edges.ravel()[i:i + 4]) for i in range(0, 192, 4))
    text = body + "\n   1234.5678000000000        3.0000000000000001E-005\n" + DS_TAIL
    g = parse_grid(text)
    assert g.invar == 2 and g.twgt == 1234.5678 and g.force_max_wgt == 3.0000000000000001e-05
    assert g.tail == DS_TAIL
    np.testing.assert_array_equal(g.edges, edges)
    # Fortran D exponents and repeat counts are list-directed input too
    g2 = parse_grid("96*1D0 96*1.0 -1 -2\n", invar=2)
    assert g2.twgt == -1 and g2.force_max_wgt == -2 and np.all(g2.edges == 1)


def test_unit_edge_conversion():
    g = random_grid(3, seed=4)
    u = g.to_unit_edges()
    assert u.shape == (3, 97) and np.all(u[:, 0] == 0) and np.all(u[:, -1] == 1) and np.all(np.diff(u) > 0)
    # unit edges -> MadEvent: bin 1 = [-1, 0] (xbin(0) = 1), the map on 95 bins over [0, 1]; and back
    core = np.sort(np.concatenate([[0.0, 1.0], np.random.default_rng(0).random(63)]))[None, :]
    g64 = MadEventGrid.from_unit_edges(core, invar=2)
    assert g64.invar == 2 and np.array_equal(g64.edges[1], flat_edges(1)[0])
    assert g64.edges[0, 0] == 0.0 and g64.edges[0, -1] == 1.0
    np.testing.assert_allclose(g64.edges[0, 1:], rebin(core, 95)[0, 1:], atol=1e-15)
    np.testing.assert_allclose(g64.to_unit_edges()[0], rebin(rebin(core, 95), 96)[0], atol=1e-15)
    np.testing.assert_allclose(rebin(rebin(core, 128), 64), core, atol=1e-15)  # 128 = 2 x 64 keeps the map
    back = MadEventGrid.from_unit_edges(u)
    np.testing.assert_allclose(back.to_unit_edges(), rebin(rebin(u, 95), 96), atol=1e-15)


def test_unit_edges_of_a_madevent_grid():
    # MadEvent's adapted grids: bin 1 on [-1, xmin], the other 95 bins inside [0, 1] (p p > e+ e- G1: 0.053, ...)
    inner = np.linspace(0.0, 1.0, 96) ** 2
    e = np.concatenate([[0.053], 0.053 + (1 - 0.053) * inner[1:]])[None, :]
    g = MadEventGrid(np.repeat(e, 2, axis=0))
    u = g.to_unit_edges()
    u0 = 96 * 0.0 + 1 / 1.053  # xbin(0) inside bin 1 = [-1, 0.053]
    v = np.linspace(0, 1, 97)
    np.testing.assert_allclose(u[0], np.interp(u0 + (96 - u0) * v, np.arange(97), np.concatenate([[-1], e[0]])),
                               atol=1e-15)
    assert u[0, 1] < 0.06 and u[0, 48] < 0.3  # crowded at small x, as MadEvent's map, not (g + 1) / 2
    np.testing.assert_allclose(MadEventGrid.flat(1).to_unit_edges()[0], v, atol=1e-15)


def test_bad_grids():
    with pytest.raises(GridFileError, match="96\\*invar"):
        parse_grid("1 2 3\n")
    with pytest.raises(GridFileError, match="shape"):
        MadEventGrid(np.zeros((2, 10)))
    bad = flat_edges(1)
    bad[0, 5] = bad[0, 4]
    with pytest.raises(GridFileError, match="increasing"):
        format_grid(MadEventGrid(bad))
    bad = flat_edges(1) * 0.5
    with pytest.raises(GridFileError, match="last edge"):
        format_grid(MadEventGrid(bad))


@pytest.mark.skipif(shutil.which("gfortran") is None, reason="gfortran not installed")
def test_fortran_reads_it_like_madevent(tmp_path):
    """Read with list-directed READ exactly as dsample.f's sample_init + read_good_hel do, write back as MadEvent's
    write_grid does, and compare."""
    invar, ncomb = 4, 6
    g = random_grid(invar, seed=9, tail=goodhel_tail(ncomb))
    write_grid(tmp_path / "ftn25", g)
    src = tmp_path / "rd.f90"
    src.write_text(f"""
program rd
  implicit none
  integer, parameter :: ng = 96, invar = {invar}, ncomb = {ncomb}
  double precision :: grid(ng, invar), twgt, fmw
  logical :: goodhel(ncomb, 2)
  integer :: i, j
  open(25, file='ftn25', status='old')
  read(25, *) ((grid(i, j), i = 1, ng), j = 1, invar)
  read(25, *) twgt, fmw
  read(25, *) ((goodhel(i, j), i = 1, ncomb), j = 1, 2)
  close(25)
  if (.not. all(goodhel)) stop 1
  open(26, file='ftn26', status='unknown')
  write(26, fmt='(4f21.17)') ((grid(i, j), i = 1, ng), j = 1, invar)
  write(26, *) twgt, fmw
  close(26)
end program rd
""")
    subprocess.run(["gfortran", "-O0", "-o", "rd", "rd.f90"], cwd=tmp_path, check=True, capture_output=True)
    subprocess.run(["./rd"], cwd=tmp_path, check=True, capture_output=True)
    back = read_grid(tmp_path / "ftn26")
    in_file = read_grid(tmp_path / "ftn25")  # the values as 17-decimal text, which is what MadEvent gets
    np.testing.assert_array_equal(back.edges, in_file.edges)
    np.testing.assert_allclose(back.edges, g.edges, rtol=0, atol=1e-17)
    assert back.twgt == g.twgt and back.force_max_wgt == g.force_max_wgt and back.tail == ""
    # gfortran's (4f21.17) text is exactly ours
    ours = format_grid(g).splitlines()[: invar * 24]
    assert (tmp_path / "ftn26").read_text().splitlines()[: invar * 24] == ours
