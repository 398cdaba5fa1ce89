"""MadNIS plugin for MadGraph5_aMC@NLO 3.5.x: what MG5 loads from its ``PLUGIN/`` folder.

Install: ``madnis-mg5 install-plugin MG5_DIR`` (a symbolic link ``MG5_DIR/PLUGIN/madnis`` to this folder), or by
hand: ``ln -s $PWD/mg5_plugin_config MG5_DIR/PLUGIN/madnis``, or without touching MG5: put a folder
``MG5aMC_PLUGIN/`` holding ``madnis`` (a link to this folder) and an empty ``__init__.py`` on ``$PYTHONPATH``.
Then ``True = madnis`` in a process directory's ``Cards/run_card.dat`` makes ``launch`` (MG5 shell) and
``./bin/madevent`` / ``./bin/generate_events`` use MadNIS instead of survey + refine; without it nothing changes.

This package is a thin hand-over: on import it finds ``madnis_plugin`` (installed, or the checkout this folder
belongs to, or the path in ``madnis_source_path.txt``) and calls ``madnis_plugin.mg5.hooks.install_hooks()``.
Nothing heavy (torch) is imported here. MG5 imports every plugin with stdout silenced and ignores import errors,
so failures are reported through MG5's logger and the hooks are simply not installed.
"""

import logging
import os
import sys

# ---- MG5's plugin contract (misc.is_plugin_supported) ---------------------------------------------------------
minimal_mg5amcnlo_version = (3, 5, 0)
maximal_mg5amcnlo_version = (3, 5, 1000)
latest_validated_version = (3, 5, 7)

__author__ = "MadNIS plugin authors"
__version__ = "0.1.0"

new_output = {}  # no new output format: a plain `output madevent` directory is used
new_cluster = {}
new_reweight = {}
new_interface = None  # set below when MG5's main shell is loaded (./bin/mg5_aMC --mode=madnis)

_logger = logging.getLogger("madgraph.madnis")
HOOKS_INSTALLED = []
IMPORT_ERROR = None


def _find_madnis_plugin():
    """Import madnis_plugin: installed, else from the checkout holding this folder, else madnis_source_path.txt."""
    try:
        import madnis_plugin  # noqa: F401

        return True
    except ImportError:
        pass
    here = os.path.dirname(os.path.realpath(__file__))
    candidates = [os.path.dirname(here)]
    path_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), "madnis_source_path.txt")
    if os.path.isfile(path_file):
        with open(path_file) as fh:
            candidates.insert(0, fh.read().strip())
    env = os.environ.get("MADNIS_PLUGIN_SOURCE")
    if env:
        candidates.insert(0, env)
    for c in candidates:
        if c and os.path.isfile(os.path.join(c, "madnis_plugin", "__init__.py")):
            if c not in sys.path:
                sys.path.append(c)
            try:
                import madnis_plugin  # noqa: F401

                return True
            except ImportError:
                continue
    return False


def _handover():
    global new_interface, IMPORT_ERROR
    if os.environ.get("MADNIS_PLUGIN_DISABLE"):
        return
    if not _find_madnis_plugin():
        IMPORT_ERROR = "cannot import madnis_plugin (pip install the MadNIS plugin into MG5's Python)"
        _logger.warning("MadNIS plugin: %s; launch is not modified", IMPORT_ERROR)
        return
    try:
        from madnis_plugin.mg5.hooks import install_hooks

        HOOKS_INSTALLED.extend(install_hooks())
    except Exception as exc:  # noqa: BLE001 - never break MG5 because of the plugin
        IMPORT_ERROR = repr(exc)
        _logger.warning("MadNIS plugin: hooks not installed: %s", exc)
        return
    master = sys.modules.get("madgraph.interface.master_interface")
    if master is not None and hasattr(master, "MasterCmd"):
        try:
            from madnis_plugin.mg5.commands import make_master_interface

            new_interface = make_master_interface(master.MasterCmd)
        except Exception as exc:  # noqa: BLE001
            _logger.debug("MadNIS plugin: no --mode interface: %s", exc)


_handover()

if os.environ.get("MADNIS_PLUGIN_TRACE"):  # debugging aid: where and when MG5 imported the plugin
    try:
        with open(os.environ["MADNIS_PLUGIN_TRACE"], "a") as _fh:
            _fh.write("pid=%d hooks=%s error=%s modules=%s\n" % (
                os.getpid(), HOOKS_INSTALLED, IMPORT_ERROR,
                [m for m in ("madgraph.interface.madevent_interface", "internal.madevent_interface") if m in sys.modules]))
    except OSError:
        pass
