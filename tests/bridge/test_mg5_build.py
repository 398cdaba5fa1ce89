"""mg5build without MG5: version checks, locating the shim, and the per-P-directory generated files (on fake P dirs).

The real builds are tested in test_mg5_bridge.py (needs MG5_HOME)."""

from __future__ import annotations

from pathlib import Path

import pytest

from madnis_plugin.bridge import errors, mg5build

READ_GOOD_HEL_GROUPED = """
      SUBROUTINE READ_GOOD_HEL(STREAM_ID)
      IMPLICIT NONE
      INCLUDE 'genps.inc'
      INTEGER STREAM_ID
      INTEGER                 NCOMB
      PARAMETER (             NCOMB=16)
      LOGICAL GOODHEL(NCOMB, 2)
      INTEGER NTRY(2)
      COMMON/BLOCK_GOODHEL/NTRY,GOODHEL
      READ(STREAM_ID,*) GOODHEL
      NTRY(1) = MAXTRIES + 1
      NTRY(2) = MAXTRIES + 1
      RETURN
      END
"""
READ_GOOD_HEL_UNGROUPED = READ_GOOD_HEL_GROUPED.replace("NCOMB=16", "NCOMB=108").replace(
    "GOODHEL(NCOMB, 2)", "GOODHEL(NCOMB)").replace("NTRY(2)", "NTRY")
DRIVER = """      Program DRIVER
      implicit none
      integer i
      call sample_full()
      end

c     $B$ get_user_params $B$ ! tag for MadWeight
      subroutine get_user_params(ncall,itmax,itmin,iconfig)
      end

      subroutine open_file_local(lun,filename,fopened)
      end
"""


def fake_me(tmp_path: Path, *, grouped: bool, version: str = "3.5.7", optim_goodhel: bool = False) -> Path:
    me = tmp_path / "ME"
    p = me / "SubProcesses" / ("P1_qq_ll" if grouped else "P1_udx_x")
    p.mkdir(parents=True)
    (me / "MGMEVersion.txt").write_text(version)
    (p / "configs.inc").write_text("      DATA MAPCONFIG(0)/2/\n")
    (p / "maxamps.inc").write_text(
        "      INTEGER    MAXAMPS, MAXFLOW, MAXPROC, MAXSPROC\n"
        f"      PARAMETER (MAXAMPS=2, MAXFLOW=1)\n      PARAMETER (MAXPROC=2, MAXSPROC={2 if grouped else 1})\n"
    )
    (p / "driver.f").write_text(DRIVER)
    if grouped:
        (p / "auto_dsig.f").write_text("      DOUBLE PRECISION FUNCTION DSIG(PP,WGT,IMODE)\n      END\n"
                                       + READ_GOOD_HEL_GROUPED)
        for k in (1, 2):
            (p / f"auto_dsig{k}.f").write_text(f"      DOUBLE PRECISION FUNCTION DSIG{k}(PP,WGT,IMODE)\n      END\n")
            (p / f"matrix{k}_orig.f").write_text("      LOGICAL GOODHEL(NCOMB,2)\n")
            (p / f"matrix{k}_optim.f").write_text("      LOGICAL GOODHEL(NCOMB,2)\n" if optim_goodhel else "c\n")
    else:
        (p / "auto_dsig.f").write_text("      DOUBLE PRECISION FUNCTION DSIG(PP,WGT,IMODE)\n      END\n"
                                       + READ_GOOD_HEL_UNGROUPED)
        (p / "matrix.f").write_text("      LOGICAL GOODHEL(NCOMB)\n")
    return p


def test_version_check(tmp_path):
    p = fake_me(tmp_path, grouped=True)
    assert mg5build.check_mg5_version(p.parent.parent) == "3.5.7"
    (p.parent.parent / "MGMEVersion.txt").write_text("3.6.0\n")
    with pytest.raises(mg5build.MG5VersionError, match=r"3\.6\.0.*3\.5\.x"):
        mg5build.build_library(p)
    assert issubclass(mg5build.MG5VersionError, errors.UnsupportedMG5Version)
    assert issubclass(mg5build.MG5BuildError, errors.CompileError)
    (p.parent.parent / "MGMEVersion.txt").unlink()
    with pytest.raises(mg5build.MG5VersionError, match="MGMEVersion"):
        mg5build.check_mg5_version(p.parent.parent)


def test_not_a_p_dir(tmp_path):
    with pytest.raises(mg5build.MG5BuildError, match="not an MG5 SubProcesses/P"):
        mg5build.build_library(tmp_path)
    with pytest.raises(ValueError, match="sde_strategy"):
        mg5build.build_library(tmp_path, sde_strategy=3)


def test_shim_sources_found():
    d = mg5build.shim_source_dir()
    assert (d / "mb_mg5_shim.f").is_file() and (d.parent / "madnis_bridge.h").is_file()


@pytest.mark.parametrize("optim_goodhel", [False, True])
def test_generated_files_grouped(tmp_path, optim_goodhel):
    p = fake_me(tmp_path, grouped=True, optim_goodhel=optim_goodhel)
    build = tmp_path / "build"
    build.mkdir()
    info = mg5build._write_generated(p, build)
    assert info["grouped"] and info["maxsproc"] == 2 and info["ngoodhel"] == 32
    assert info["helicity_filter"] is optim_goodhel
    inc = (build / "mb_build.inc").read_text()
    assert "mb_grouped=1, mb_ngoodhel=32" in inc and f"mb_helfilter={int(optim_goodhel)}" in inc
    assert "mb_nntry=2" in inc
    disp = (build / "mb_dispatch.f").read_text()
    assert "if (k .eq. 2) mb_dsign = dsig2(p, wgt, imode)" in disp
    assert all(len(line) <= 72 for line in disp.splitlines() if not line.startswith("c"))
    assert "include 'mirrorprocs.inc'" in (build / "mb_mirrorprocs.inc").read_text()
    drv = (build / "driver_subs.f").read_text()
    assert "Program" not in drv and "subroutine get_user_params" in drv and "open_file_local" in drv


def test_generated_files_ungrouped(tmp_path):
    p = fake_me(tmp_path, grouped=False)
    build = tmp_path / "build"
    build.mkdir()
    info = mg5build._write_generated(p, build)
    assert not info["grouped"] and info["ngoodhel"] == 108 and info["helicity_filter"]
    assert "mb_nntry=1" in (build / "mb_build.inc").read_text()
    assert "mb_dsign = dsig(p, wgt, imode)" in (build / "mb_dispatch.f").read_text()
    assert ".false." in (build / "mb_mirrorprocs.inc").read_text()
