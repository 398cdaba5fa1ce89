"""`madnis-mg5 install-plugin MG5_DIR [--uninstall]`, and the plugin package MG5 imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from madnis_plugin.cli import main
from madnis_plugin.mg5.commands import install_plugin, plugin_source_dir, uninstall_plugin

REPO = Path(__file__).resolve().parents[2]


def fake_mg5(tmp_path):
    d = tmp_path / "MG5"
    (d / "bin").mkdir(parents=True)
    (d / "bin" / "mg5_aMC").write_text("#!/usr/bin/env python3\n")
    (d / "madgraph").mkdir()
    return d


def test_install_link_and_uninstall(tmp_path, capsys):
    d = fake_mg5(tmp_path)
    assert main(["install-plugin", str(d)]) == 0
    target = d / "PLUGIN" / "madnis"
    assert target.is_symlink() and target.resolve() == plugin_source_dir()
    assert (d / "PLUGIN" / "__init__.py").is_file()
    assert main(["install-plugin", str(d)]) == 0  # idempotent
    assert main(["install-plugin", str(d), "--uninstall"]) == 0
    assert not target.exists() and not target.is_symlink()
    assert "nothing to remove" in (main(["install-plugin", str(d), "--uninstall"]) == 0 and capsys.readouterr().out)


def test_install_copy_records_source(tmp_path):
    d = fake_mg5(tmp_path)
    t = install_plugin(d, copy=True)
    assert (t / "__init__.py").is_file() and not t.is_symlink()
    assert (t / "madnis_source_path.txt").read_text().strip() == str(REPO)
    with pytest.raises(FileExistsError):
        install_plugin(d, copy=True)
    install_plugin(d, force=True)  # replace the copy by a link
    assert (d / "PLUGIN" / "madnis").is_symlink()
    assert uninstall_plugin(d)


def test_install_rejects_non_mg5_dir(tmp_path, capsys):
    assert main(["install-plugin", str(tmp_path)]) == 2
    assert "not an MG5_aMC installation" in capsys.readouterr().err


def test_run_card_snippet_cli(capsys):
    assert main(["run-card-snippet"]) == 0
    assert "= madnis " in capsys.readouterr().out


def test_plugin_package_contract_in_fresh_interpreter(tmp_path):
    """Imported the way MG5 does (PLUGIN.<name>) in a Python where madnis_plugin is not on sys.path."""
    d = fake_mg5(tmp_path)
    install_plugin(d, copy=True)
    code = f"""
import sys
sys.path = [p for p in sys.path if p not in ('', {str(REPO)!r})]
sys.path.insert(0, {str(d)!r})
mod = __import__('PLUGIN.madnis', fromlist=['x'])
assert mod.minimal_mg5amcnlo_version == (3, 5, 0) and mod.latest_validated_version == (3, 5, 7)
assert mod.maximal_mg5amcnlo_version >= (3, 5, 7)
assert isinstance(mod.new_output, dict)
assert mod.IMPORT_ERROR is None, mod.IMPORT_ERROR
assert 'torch' not in sys.modules
print('ok', mod.HOOKS_INSTALLED)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")
