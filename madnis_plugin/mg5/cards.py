"""The ``madnis*`` entries of an MG5 run card: names, types, validation (before any computation).

An ``output madevent`` directory runs MadNIS instead of survey + refine when its ``Cards/run_card.dat`` holds

    True  = madnis            ! use MadNIS (neural multi-channel importance sampling) instead of survey/refine
    2000  = madnis_n_steps     ! optional: any MadnisConfig field as madnis_<field>

Two kinds of entries:

* **plugin entries** (:data:`PLUGIN_ENTRIES`): what the MG5 layer needs beyond the core configuration, e.g.
  ``madnis_checkpoint`` or ``madnis_sde_strategy``;
* **core entries**: ``madnis_<field>`` for every field of :class:`~madnis_plugin.core.config.MadnisConfig`
  (``madnis_n_steps`` = training length, ``madnis_buffer_ratio``, ``madnis_uniform_fraction``,
  ``madnis_drop_cutoff``, ``madnis_device``, ...).

MG5 3.5.7 accepts unknown run-card lines (``RunCard.add_unknown_entry``) but guesses their type from the value and
forces names containing ``min``/``max`` to float cuts, and by default writes them into the Fortran include files.
The plugin therefore registers every entry with its type and ``include=False`` (:func:`register_run_card_entries`),
and :func:`parse_entries` converts whatever MG5 stored back to the declared type. Every problem raises
:class:`RunCardError` naming the run-card entry and the valid choices.

This module imports nothing of MG5 and nothing heavy (no torch) at import time.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass
from typing import Any, Literal, Mapping

PREFIX = "madnis_"
ENABLE_KEY = "madnis"

_TRUE = ("true", "t", "1", "yes", "on", ".true.", "y")
_FALSE = ("false", "f", "0", "no", "off", ".false.", "n", "none", "")


class RunCardError(ValueError):
    """A ``madnis*`` run-card entry is unknown or has an invalid value; the message names the entry."""


@dataclass(frozen=True)
class PluginEntry:
    """One run-card entry of the MG5 layer (not a MadnisConfig field)."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None = None
    lo: float | None = None
    hi: float | None = None


#: Run-card entries of the MG5 layer, with type, default and meaning.
PLUGIN_ENTRIES: dict[str, PluginEntry] = {
    e.name: e
    for e in (
        PluginEntry("madnis", bool, False, "use MadNIS instead of MadEvent's survey + refine"),
        PluginEntry(
            "madnis_checkpoint", str, "auto",
            "model file: auto (or empty) = Events/<run>/madnis_checkpoint.pt; an existing file (absolute or relative to the "
            "process directory) is loaded: training resumes up to madnis_n_steps, or is skipped if done",
        ),
        PluginEntry("madnis_sde_strategy", int, 1, "prior channel weights: 1 = |M_diagram|^2, 2 = propagators",
                    choices=(1, 2)),
        PluginEntry("madnis_workers", int, 0,
                    "bridge worker processes evaluating at once; 0 = MG5's nb_core (1 in single-core mode)",
                    lo=0, hi=1024),
        PluginEntry("madnis_event_factor", float, 1.2,
                    "events handed to MG5's final unweighting = factor x nevents (MadEvent's refine uses 1.2)",
                    lo=1.0, hi=100.0),
        PluginEntry("madnis_auto_stop", bool, True,
                    "stop training before madnis_n_steps once the last steps cost more matrix-element calls than they "
                    "save in generating the requested events (efficiency estimated from recent training batches); "
                    "False = always train madnis_n_steps"),
        PluginEntry("madnis_unweight_trunc", float, 0.01,
                    "w_max of the unweighting: the smallest maximum whose overflow carries at most this fraction of "
                    "sigma (MadEvent's trunc_max and MG5's final unweighting use 0.01); 0 = bootstrap median of the "
                    "maximum weight (no truncation)", lo=0.0, hi=0.1),
        PluginEntry("madnis_sampling_rounds", int, 8,
                    "sampling rounds at most to reach factor x nevents events (each at most 4x the points so far)",
                    lo=1, hi=100),
        PluginEntry("madnis_plots", bool, True, "write PNG plots and link them from the HTML results"),
        PluginEntry("madnis_survey_grids", bool, True,
                    "start VEGAS pre-training from the G*/ftn26 grids of an earlier run (MadEvent's or MadNIS's)"),
        PluginEntry("madnis_write_grids", bool, True,
                    "write the VEGAS grids of surviving channels to G*/ftn26 and mark dropped channels"),
    )
}

#: Names that MG5 would otherwise mangle (``min``/``max`` in the name ⇒ float cut). Accepted as aliases.
ALIASES = {"madnis_training_steps": "madnis_n_steps", "madnis_steps": "madnis_n_steps"}


def _config_module():
    """``madnis_plugin.core.config`` without importing ``madnis_plugin.core`` (whose __init__ imports torch).

    MG5 imports every plugin for many commands (``output``, ``launch``); listing the entries must stay cheap.
    """
    import importlib.util  # noqa: PLC0415
    import sys  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    mod = sys.modules.get("madnis_plugin.core.config") or sys.modules.get("_madnis_config_light")
    if mod is not None:
        return mod
    path = Path(__file__).resolve().parent.parent / "core" / "config.py"
    spec = importlib.util.spec_from_file_location("_madnis_config_light", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["_madnis_config_light"] = mod  # dataclasses resolves annotations through sys.modules
    spec.loader.exec_module(mod)
    return mod


def _config_fields() -> dict[str, Any]:
    MadnisConfig = _config_module().MadnisConfig

    hints = typing.get_type_hints(MadnisConfig)
    return {f.name: (hints[f.name], f.default) for f in dataclasses.fields(MadnisConfig)}


def core_entry_names() -> dict[str, str]:
    """run-card name -> MadnisConfig field, for every field."""
    return {PREFIX + name: name for name in _config_fields()}


def all_entry_names() -> list[str]:
    return sorted(set(PLUGIN_ENTRIES) | set(core_entry_names()))


def entry_specs() -> list[tuple[str, type, Any, str]]:
    """(name, python type, default, help) of every entry, plugin entries first (for registering and docs)."""
    out = [(e.name, e.type, e.default, e.help) for e in PLUGIN_ENTRIES.values()]
    for name, (tp, default) in _config_fields().items():
        if typing.get_origin(tp) is Literal:
            choices = typing.get_args(tp)
            out.append((PREFIX + name, str, default, "one of " + ", ".join(map(str, choices))))
        else:
            out.append((PREFIX + name, tp, default, f"MadnisConfig.{name}"))
    return out


# ---------------------------------------------------------------------------------------------------- conversion
def _to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise RunCardError(f"run_card entry '{name}': expected True or False, got {value!r}")


def _to_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise RunCardError(f"run_card entry '{name}': expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise RunCardError(f"run_card entry '{name}': expected an integer, got {value!r}")
    if isinstance(value, str):
        t = value.strip().lower().replace("d", "e")
        try:
            f = float(t)
        except ValueError:
            raise RunCardError(f"run_card entry '{name}': expected an integer, got {value!r}") from None
        if math.isfinite(f) and f.is_integer():
            return int(f)
    raise RunCardError(f"run_card entry '{name}': expected an integer, got {value!r}")


def _to_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise RunCardError(f"run_card entry '{name}': expected a number, got {value!r}")
    try:
        f = float(value.strip().lower().replace("d", "e")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise RunCardError(f"run_card entry '{name}': expected a number, got {value!r}") from None
    if not math.isfinite(f):
        raise RunCardError(f"run_card entry '{name}': expected a finite number, got {value!r}")
    return f


def _convert(name: str, tp: Any, value: Any) -> Any:
    if typing.get_origin(tp) is Literal:
        choices = typing.get_args(tp)
        v = str(value).strip()
        if v not in choices:
            raise RunCardError(
                f"run_card entry '{name}': {value!r} is not one of {', '.join(map(repr, choices))}"
            )
        return v
    if tp is bool:
        return _to_bool(name, value)
    if tp is int:
        return _to_int(name, value)
    if tp is float:
        return _to_float(name, value)
    return str(value).strip()


# ---------------------------------------------------------------------------------------------------- parsing
@dataclass(frozen=True)
class MadnisCardOptions:
    """The validated ``madnis*`` entries of one run card.

    enabled: ``madnis = True``.
    config: the core configuration (a MadnisConfig) built from ``madnis_<field>`` entries.
    plugin: plugin entries (name without prefix -> value), defaults filled in.
    given: the run-card entries that were set explicitly (name -> raw value), for the log and the banner.
    """

    enabled: bool
    config: Any
    plugin: dict[str, Any]
    given: dict[str, Any]

    @property
    def checkpoint(self) -> str:
        """The checkpoint entry; "" means the default location (``auto``, ``default``, ``none`` and "" all do)."""
        v = str(self.plugin["checkpoint"]).strip()
        return "" if v.lower() in ("", "auto", "default", "none") else v

    @property
    def sde_strategy(self) -> int:
        return self.plugin["sde_strategy"]


def is_enabled(entries: Mapping[str, Any]) -> bool:
    """Whether ``madnis`` is set to a true value (an invalid value raises RunCardError)."""
    for key, value in entries.items():
        if str(key).lower() == ENABLE_KEY:
            return _to_bool(ENABLE_KEY, value)
    return False


def madnis_entries(entries: Mapping[str, Any]) -> dict[str, Any]:
    """The ``madnis`` / ``madnis_*`` entries of a mapping (keys lower-cased, aliases resolved)."""
    out = {}
    for key, value in entries.items():
        k = str(key).strip().lower()
        if k == ENABLE_KEY or k.startswith(PREFIX):
            out[ALIASES.get(k, k)] = value
    return out


def parse_entries(entries: Mapping[str, Any], *, defaults: Mapping[str, Any] | None = None) -> MadnisCardOptions:
    """Validate the ``madnis*`` entries of a run card (a RunCard object or any mapping) before any computation.

    ``defaults`` are core-config values used when the card does not set them (e.g. ``seed`` from MG5's seed,
    ``progress``). Unknown ``madnis_*`` names raise RunCardError with the closest valid name.
    """
    from madnis_plugin.core.config import ConfigError, from_dict  # noqa: PLC0415

    given = madnis_entries(entries)
    fields = _config_fields()
    core_names = core_entry_names()
    valid = all_entry_names()
    plugin = {e.name[len(PREFIX):] if e.name != ENABLE_KEY else "enabled": e.default for e in PLUGIN_ENTRIES.values()}
    core: dict[str, Any] = dict(defaults or {})
    for name, raw in given.items():
        if name in PLUGIN_ENTRIES:
            e = PLUGIN_ENTRIES[name]
            v = _convert(name, e.type, raw)
            if e.choices is not None and v not in e.choices:
                raise RunCardError(
                    f"run_card entry '{name}': {raw!r} is not one of {', '.join(map(str, e.choices))}"
                )
            if e.lo is not None and not (e.lo <= v <= e.hi):
                raise RunCardError(f"run_card entry '{name}': {raw!r} is outside the valid range [{e.lo}, {e.hi}]")
            plugin["enabled" if name == ENABLE_KEY else name[len(PREFIX):]] = v
        elif name in core_names:
            field = core_names[name]
            core[field] = _convert(name, fields[field][0], raw)
        else:
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise RunCardError(f"unknown run_card entry '{name}'{hint}; valid madnis entries: {', '.join(valid)}")
    try:
        config = from_dict(core)
    except ConfigError as exc:
        msg = str(exc)
        for field in core:
            msg = msg.replace(f"config key '{field}'", f"run_card entry '{PREFIX}{field}'")
        raise RunCardError(msg) from None
    return MadnisCardOptions(bool(plugin.pop("enabled")), config, plugin, given)


def check_mg5_settings(run_card: Mapping[str, Any], *, ninitial: int | None = None) -> None:
    """Reject MG5 settings the MadNIS launch flow does not support (before any computation)."""

    def get(key, default=None):
        try:
            return run_card[key]
        except (KeyError, TypeError):
            return default

    if _to_bool("gridpack", get("gridpack", False)):
        raise RunCardError("run_card entry 'madnis': MadNIS does not support gridpack = True; set one of them off")
    nev = get("nevents", 0)
    try:
        nev = int(nev)
    except (TypeError, ValueError):
        nev = 0
    if nev <= 0:
        raise RunCardError(f"run_card entry 'nevents': MadNIS needs nevents > 0, got {get('nevents')!r}")
    if ninitial is not None and ninitial != 2:
        raise RunCardError("run_card entry 'madnis': MadNIS supports 2 -> n scattering only (this is a decay)")


# ---------------------------------------------------------------------------------------------------- MG5 glue
def register_run_card_entries(run_card_class) -> bool:
    """Make MG5's ``RunCardLO`` know every madnis entry (typed, hidden, not written to Fortran includes).

    Wraps ``run_card_class.default_setup`` once; returns True if it patched. Cards read afterwards keep the types,
    and MG5 no longer writes ``madnis*`` variables into ``run_card.inc``.
    """
    if getattr(run_card_class, "_madnis_registered", False):
        return False
    original = run_card_class.default_setup

    def default_setup(self, *args, **kwargs):
        original(self, *args, **kwargs)
        for name, tp, default, help_text in entry_specs():
            if name in self:
                continue
            value = default if tp is not str else str(default)
            try:
                self.add_param(name, value, include=False, hidden=True, comment=help_text)
            except TypeError:  # an MG5 whose add_param does not take comment=
                self.add_param(name, value, include=False, hidden=True)

    default_setup.__wrapped__ = original
    run_card_class.default_setup = default_setup
    run_card_class._madnis_registered = True
    return True


_AUTODEF = re.compile(r"^\s+.*\s+MADNIS\w*(\([\d:]*\))?\s*!\s*added by autodef\s*$", re.I)


def repair_run_inc(text: str) -> str:
    """Remove ``madnis*`` variables that MG5 wrote into ``Source/run.inc`` as unknown run-card entries.

    When a run card with ``madnis*`` lines is read by an MG5 process that has not imported the plugin (e.g. a
    ``bin/madevent treatcards`` subprocess), MG5 declares them in run.inc ("added by autodef") and in a
    ``USER_CUSTOM_RUN`` COMMON block. A later read with the plugin (entries registered, not for Fortran) makes MG5
    drop the declarations but, because its FortranWriter re-indents the ``C START USER COMMON BLOCK`` marker, not
    the COMMON block, and Source no longer compiles (MG5 3.5.7 ``RunCard.write_autodef``). This removes both.
    """
    lines = text.split("\n")
    out = [ln for ln in lines if not _AUTODEF.match(ln)]
    start = next((i for i, ln in enumerate(out) if re.match(r"^[Cc]\s*START USER COMMON BLOCK", ln)), None)
    stop = next((i for i, ln in enumerate(out) if re.match(r"^[Cc]\s*STOP USER COMMON BLOCK", ln)), None)
    if start is not None and stop is not None and stop > start:
        body = " ".join(re.sub(r"^\s{5}\S", "", ln) if i else ln for i, ln in enumerate(out[start + 1:stop]))
        m = re.search(r"COMMON\s*/(\w+)/(.*)", body, re.I)
        if m:
            names = [n.strip() for n in m.group(2).split(",") if n.strip()]
            keep = [n for n in names if not n.lower().startswith("madnis")]
            if len(keep) != len(names):
                block = []
                if keep:
                    block = [out[start]]
                    cur = f"      COMMON/{m.group(1)}/" + keep[0]
                    for n in keep[1:]:
                        if len(cur) + len(n) + 1 > 70:
                            block.append(cur)
                            cur = "     $ ," + n
                        else:
                            cur += "," + n
                    block.append(cur)
                    block.append(out[stop])
                out = out[:start] + block + out[stop + 1:]
    return "\n".join(out)


def repair_process_dir(me_dir) -> bool:
    """Apply :func:`repair_run_inc` to ``me_dir/Source/run.inc``; True if the file changed."""
    from pathlib import Path  # noqa: PLC0415

    f = Path(me_dir) / "Source" / "run.inc"
    if not f.is_file():
        return False
    text = f.read_text()
    if "madnis" not in text.lower():
        return False
    new = repair_run_inc(text)
    if new == text:
        return False
    tmp = f.with_name(".run.inc.madnis.tmp")
    tmp.write_text(new)
    tmp.replace(f)
    return True


def run_card_snippet() -> str:
    """The lines to add to a run card to enable MadNIS with the most useful options (for docs and the CLI)."""
    d = _config_module().MadnisConfig()
    return "\n".join(
        [
            "#*********************************************************************",
            "# MadNIS (neural multi-channel importance sampling) replaces survey+refine",
            "#*********************************************************************",
            "  True  = madnis             ! use MadNIS",
            f"  {d.n_steps} = madnis_n_steps     ! training length (optimizer steps)",
            f"  {d.buffer_ratio}     = madnis_buffer_ratio ! steps per integrand call (buffered training)",
            f"  {d.uniform_fraction}   = madnis_uniform_fraction ! uniform share of the channel allocation",
            f"  {d.drop_cutoff} = madnis_drop_cutoff ! drop channels below this share of sigma",
            f"  {d.device}   = madnis_device      ! cpu or cuda[:N]",
            "  auto  = madnis_checkpoint  ! auto: Events/<run>/madnis_checkpoint.pt",
            "  1     = madnis_sde_strategy ! prior channel weights (1 or 2)",
        ]
    )
