"""Hooks into MG5_aMC 3.5.x: installed when MG5 imports the plugin (mg5_plugin_config/__init__.py).

Why these hooks (mg5-internals §1 "Ways to change what launch does", option 3): both ways of launching — ``launch``
in the MG5 shell and ``./bin/madevent`` / ``./bin/generate_events`` of a process directory — end in
``MadEventCmd.run_generate_events`` → ``survey`` → ``refine`` → ``combine_events`` → ``store_events``. MG5 imports every
plugin (``misc.from_plugin_import``) while it builds the launch question (``AskRun.get_allowed_reweight``, reached
whenever reweighting is available: f2py found or ``f2py_compiler`` set), i.e. before the survey, in both entry
points. At that moment this module patches the ``MadEventCmd`` classes already loaded — the MG5 one
(``madgraph.interface.madevent_interface``, imported here if needed) and the process directory's copy
(``internal.madevent_interface``):

* ``do_survey``: with ``madnis = True`` in ``Cards/run_card.dat`` (read afresh, validated before any computation)
  it runs the MadNIS flow (launch.run_madnis_survey); otherwise MG5's original method, unchanged;
  or, after ``madnis_refine`` (a request), prepares MadEvent's classic refine from the MadNIS grids and results
  (launch.prepare_classic_refine) instead of the survey;
* ``do_refine``: a no-op for a run MadNIS has done (both refine calls of run_generate_events);
* ``RunCardLO.default_setup``: registers the typed ``madnis*`` entries (hidden, not written to Fortran);
* the MadNIS shell commands (``madnis_train``, ``madnis_generate``, ``madnis_channels``, ``madnis_plots``).

With ``madnis = False`` (or absent) MG5 behaves exactly as without the plugin: the originals are called with the
same arguments and nothing else changes. :func:`uninstall_hooks` restores every original (tests).
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("madgraph.madnis")

MODULE_NAMES = ("madgraph.interface.madevent_interface", "internal.madevent_interface")
BANNER_NAMES = ("madgraph.various.banner", "internal.banner")
SUPPORTED = ((3, 5),)
_PATCHED_ATTR = "_madnis_originals"


def mg5_version_tuple() -> tuple[int, ...] | None:
    for name in ("madgraph.various.misc", "internal.misc"):
        misc = sys.modules.get(name)
        if misc is not None and hasattr(misc, "get_pkg_info"):
            try:
                v = misc.get_pkg_info()["version"]
                return tuple(int(x) for x in v.split(".")[:3] if x.isdigit())
            except Exception:  # noqa: BLE001
                continue
    return None


def _make_do_survey(mod, original):
    def do_survey(self, line):
        from .cards import RunCardError  # noqa: PLC0415
        from .launch import card_options, run_madnis_survey, take_request  # noqa: PLC0415

        from .cards import repair_process_dir  # noqa: PLC0415

        if repair_process_dir(self.me_dir):
            logger.debug("MadNIS: removed madnis* Fortran declarations from Source/run.inc")
        request = take_request(self.me_dir) or {}
        if request.get("refine"):
            from .launch import prepare_classic_refine  # noqa: PLC0415

            prepare_classic_refine(self, line, mod)
            return None
        try:
            opts = card_options(self, mod, force_enable=bool(request))
        except RunCardError as exc:
            raise self.InvalidCmd(str(exc)) from None
        if opts is None or not opts.enabled:
            return original(self, line)
        try:
            run_madnis_survey(self, line, opts, mod, load_checkpoint=request.get("checkpoint"),
                              train=request.get("train", True))
        except RunCardError as exc:
            raise self.InvalidCmd(str(exc)) from None

    do_survey.__doc__ = original.__doc__
    do_survey._madnis_original = original
    return do_survey


def _make_do_refine(original):
    def do_refine(self, line):
        done = getattr(self, "_madnis_done_run", None)
        if done is not None and done == getattr(self, "run_name", None):
            logger.info("MadNIS: refine not needed (the MadNIS refine phase already produced the events)")
            return
        return original(self, line)

    do_refine.__doc__ = original.__doc__
    do_refine._madnis_original = original
    return do_refine


def patch_interface_module(mod) -> bool:
    """Patch ``mod.MadEventCmd`` (once). Returns True if it patched now."""
    klass = getattr(mod, "MadEventCmd", None)
    if klass is None or _PATCHED_ATTR in klass.__dict__:
        return False
    originals = {name: klass.__dict__[name] for name in ("do_survey", "do_refine") if name in klass.__dict__}
    if len(originals) != 2:
        logger.warning("MadNIS: %s.MadEventCmd lacks do_survey/do_refine; not patched", mod.__name__)
        return False
    klass.do_survey = _make_do_survey(mod, originals["do_survey"])
    klass.do_refine = _make_do_refine(originals["do_refine"])
    from .commands import install_commands  # noqa: PLC0415

    added = install_commands(klass)
    setattr(klass, _PATCHED_ATTR, {**originals, "_added": added})
    return True


def patch_banner_module(mod) -> bool:
    from .cards import register_run_card_entries  # noqa: PLC0415

    klass = getattr(mod, "RunCardLO", None)
    return bool(klass is not None and register_run_card_entries(klass))


def install_hooks(*, import_mg5: bool = True) -> list[str]:
    """Patch every loaded MadEvent interface module (and MG5's own, importing it if ``import_mg5``).

    Returns the names of the modules patched now. Unsupported MG5 versions are left alone with a warning.
    """
    version = mg5_version_tuple()
    if version is not None and tuple(version[:2]) not in SUPPORTED:
        logger.warning("MadNIS plugin: MG5_aMC %s is not supported (3.5.x only); launch is not modified",
                       ".".join(map(str, version)))
        return []
    inside_process_dir = "internal.madevent_interface" in sys.modules
    if import_mg5 and not inside_process_dir and "madgraph.interface.madevent_interface" not in sys.modules:
        try:
            import madgraph.interface.madevent_interface  # noqa: F401, PLC0415
        except Exception:  # noqa: BLE001 - inside ./bin/madevent only internal.* may be importable
            pass
    done = []
    for name in BANNER_NAMES:
        mod = sys.modules.get(name)
        if mod is not None and patch_banner_module(mod):
            done.append(name)
    for name in MODULE_NAMES:
        mod = sys.modules.get(name)
        if mod is not None and patch_interface_module(mod):
            done.append(name)
    return done


def uninstall_hooks() -> list[str]:
    """Restore the original methods (tests, or to switch the plugin off inside one session)."""
    undone = []
    for name in MODULE_NAMES:
        mod = sys.modules.get(name)
        klass = getattr(mod, "MadEventCmd", None) if mod is not None else None
        if klass is None or _PATCHED_ATTR not in klass.__dict__:
            continue
        orig = klass.__dict__[_PATCHED_ATTR]
        klass.do_survey = orig["do_survey"]
        klass.do_refine = orig["do_refine"]
        for attr in orig.get("_added", []):
            if attr in klass.__dict__:
                delattr(klass, attr)
        delattr(klass, _PATCHED_ATTR)
        undone.append(name)
    for name in BANNER_NAMES:
        mod = sys.modules.get(name)
        klass = getattr(mod, "RunCardLO", None) if mod is not None else None
        if klass is not None and klass.__dict__.get("_madnis_registered"):
            klass.default_setup = klass.default_setup.__wrapped__
            del klass._madnis_registered
            undone.append(name)
    return undone
