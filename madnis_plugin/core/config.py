"""One frozen, typed configuration for a MadNIS run.

Defaults follow MadNIS Reloaded Tab. 2, scaled for a 2-core CPU (the paper trains 88k batches on a GPU; the
default here is 2,000). Values come from a TOML file (a ``[madnis]`` table or top-level keys), from ``madnis_*``
entries of an MG5 run card and from CLI overrides ``key=value``; unknown keys and bad values are rejected before
any computation, naming the key and the valid choices.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import sys
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    """A configuration key is unknown or its value is invalid; the message names the key."""


LossName = Literal["madnis", "variance", "kl"]
ScheduleName = Literal["inverse", "cosine", "constant"]
AllocationName = Literal["sigma", "rms"]
StandardiseName = Literal["std", "upscale", "none"]


@dataclass(frozen=True)
class MadnisConfig:
    """Every knob of a MadNIS run. Frozen: derive variants with :meth:`replace`."""

    # --- reproducibility and placement
    seed: int = 1234
    device: str = "cpu"
    progress: bool = True
    n_threads: int = 1  # torch CPU threads; small training batches run fastest on one (0 = torch's default)

    # --- training (Tab. 2: Adam, lr 1e-3 → 1e-4 inverse decay)
    n_steps: int = 2000
    batch_size: int = 0  # 0 = automatic: min(200 · C^0.8, 10000), at least 256
    lr: float = 1e-3
    lr_final: float = 1e-4
    lr_schedule: ScheduleName = "inverse"
    loss: LossName = "madnis"
    grad_clip: float = 10.0

    # --- flows (Tab. 2: RQ splines, 2⌈log2 D⌉ blocks, subnet 32 × 3)
    flow_bins: int = 10
    flow_hidden: int = 32
    flow_layers: int = 3
    flow_blocks: int = 0  # 0 = 2⌈log2 D⌉
    flow_min_bin: float = 1e-6  # lower bound of every spline bin width, height and knot derivative

    # --- channel-weight network (Tab. 2: 64 × 3); False freezes α to MG5's prior
    train_channel_weights: bool = True
    cwnet_hidden: int = 64
    cwnet_layers: int = 3
    # CWnet input scaling from the pre-training points: "std" = (f − mean)/std; "upscale" = (f − mean)/min(std, 1):
    # features narrower than unit scale are stretched (resonances in [0, 1]: the narrow peaks become resolvable),
    # wider ones are not compressed (crossed ring: std 5.7 from the line's tails would squeeze the ring/line
    # crossing, width 0.05, below what the CWnet resolves); "none" = as given (madnis 1.0)
    cwnet_standardise: StandardiseName = "upscale"

    # --- VEGAS pre-training (Tab. 2: 7 iterations, 64 bins, 20k samples, damping 0.7)
    vegas_init: bool = True
    vegas_iterations: int = 7
    vegas_bins: int = 64
    vegas_samples: int = 20000
    vegas_damping: float = 0.7

    # --- buffered training: each online step is followed by (buffer_ratio − 1) buffered steps (paper R = 3, 5)
    buffer_ratio: int = 3
    buffer_batches: int = 50  # capacity in online batches (paper: 1000)
    buffer_top_m: int = 75  # channel weights kept per buffered point (sampling channel always kept)
    # buffered steps start once the buffer holds this many online batches (0 = only when it is full); starting
    # early (as madnis 1.0 does) gives more gradient steps per integrand call where learning is fastest
    buffer_start_batches: int = 1

    # --- stratified training and channel dropping
    stratified: bool = True
    pool_group_sigma: bool = True  # allocate evenly inside a channel group (symmetric channels), N_g ∝ √(K Σ σ_j²)
    uniform_fraction: float = 0.1
    uniform_warmup_steps: int = 100  # uniform allocation first (paper: 1000 batches)
    stats_window: int = 100  # running means of σ_i, I_i over the last this-many online batches (paper: 1000)
    drop_cutoff: float = 1e-3  # 0 disables dropping
    drop_every: int = 200  # steps between dropping decisions

    # --- integration (refine phase) and unweighting
    n_integration: int = 100_000
    # channel allocation of generate() (weighted events for unweighting); the integral's refine phase stays N_i ∝ σ_i.
    # "rms": N_i ∝ √(σ_i² + I_i²) gives every channel the same RMS event weight, so no well-trained channel (small
    # σ_i/I_i, few points under N_i ∝ σ_i) carries large event weights N/N_i · α f/q; ε rises, the variance barely
    # moves (it is flat around its optimum). "sigma": as the integral.
    event_allocation: AllocationName = "rms"
    integration_batch: int = 20_000
    bootstrap_replicas: int = 100
    min_points_per_channel: int = 2

    def __post_init__(self) -> None:
        _validate(self)

    # ------------------------------------------------------------------ construction
    def replace(self, **changes: Any) -> "MadnisConfig":
        """A copy with ``changes`` applied (validated)."""
        return from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resolved_batch_size(self, n_channels: int) -> int:
        """The batch size actually used for ``n_channels`` channels."""
        if self.batch_size > 0:
            return self.batch_size
        return int(min(max(200.0 * n_channels**0.8, 256.0), 10000.0))

    def resolved_flow_blocks(self, n_dims: int) -> int:
        if self.flow_blocks > 0:
            return self.flow_blocks
        return max(2, 2 * math.ceil(math.log2(n_dims)))


_RANGES: dict[str, tuple[float, float]] = {
    "n_steps": (0, math.inf),
    "batch_size": (0, 10_000_000),
    "lr": (0.0, 1.0),
    "lr_final": (0.0, 1.0),
    "grad_clip": (0.0, math.inf),
    "flow_bins": (2, 1024),
    "flow_hidden": (1, 4096),
    "flow_layers": (1, 32),
    "flow_blocks": (0, 256),
    "cwnet_hidden": (1, 4096),
    "cwnet_layers": (1, 32),
    "vegas_iterations": (0, 1000),
    "vegas_bins": (2, 4096),
    "vegas_samples": (1, 100_000_000),
    "vegas_damping": (0.0, 2.0),
    "buffer_ratio": (1, 1000),
    "buffer_batches": (1, 100_000),
    "buffer_top_m": (1, 100_000),
    "buffer_start_batches": (0, 100_000),
    "flow_min_bin": (0.0, 0.01),
    "uniform_fraction": (0.0, 1.0),
    "uniform_warmup_steps": (0, math.inf),
    "stats_window": (1, 1_000_000),
    "drop_cutoff": (0.0, 0.5),
    "drop_every": (1, math.inf),
    "n_integration": (1, math.inf),
    "integration_batch": (1, 100_000_000),
    "bootstrap_replicas": (1, 100_000),
    "min_points_per_channel": (1, 1_000_000),
    "seed": (0, 2**63 - 1),
    "n_threads": (0, 4096),
}


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(MadnisConfig)
    return {f.name: hints[f.name] for f in fields(MadnisConfig)}


def _validate(cfg: MadnisConfig) -> None:
    for name, tp in _field_types().items():
        value = getattr(cfg, name)
        if typing.get_origin(tp) is Literal:
            choices = typing.get_args(tp)
            if value not in choices:
                raise ConfigError(f"config key '{name}': {value!r} is not one of {', '.join(map(repr, choices))}")
            continue
        if tp is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"config key '{name}': expected true or false, got {value!r}")
        elif tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"config key '{name}': expected an integer, got {value!r}")
        elif tp is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"config key '{name}': expected a finite number, got {value!r}")
        elif tp is str and not isinstance(value, str):
            raise ConfigError(f"config key '{name}': expected a string, got {value!r}")
        if name in _RANGES:
            lo, hi = _RANGES[name]
            if not lo <= value <= hi:
                raise ConfigError(f"config key '{name}': {value!r} is outside the valid range [{lo}, {hi}]")
    if cfg.flow_min_bin * cfg.flow_bins >= 1.0:
        raise ConfigError(f"config key 'flow_min_bin': {cfg.flow_min_bin} × flow_bins = {cfg.flow_bins} must stay below 1")
    if cfg.lr_final > cfg.lr:
        raise ConfigError(f"config key 'lr_final': {cfg.lr_final} must not exceed lr = {cfg.lr}")
    if not (cfg.device == "cpu" or cfg.device.startswith("cuda")):
        raise ConfigError(f"config key 'device': {cfg.device!r} is not one of 'cpu', 'cuda', 'cuda:N'")


def _coerce(name: str, tp: Any, value: Any) -> Any:
    """Convert a string (CLI / run card) or TOML value to the field's type; errors name the key."""
    if not isinstance(value, str):
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    text = value.strip()
    try:
        if tp is bool:
            low = text.lower()
            if low in ("true", "t", "1", "yes", "on", ".true."):
                return True
            if low in ("false", "f", "0", "no", "off", ".false."):
                return False
            raise ValueError
        if tp is int:
            return int(float(text)) if "e" in text.lower() else int(text)
        if tp is float:
            return float(text.replace("d", "e").replace("D", "e"))
    except ValueError:
        kind = {bool: "true or false", int: "an integer", float: "a number"}[tp]
        raise ConfigError(f"config key '{name}': expected {kind}, got {value!r}") from None
    return text


def from_dict(values: Mapping[str, Any]) -> MadnisConfig:
    """Build a config from a mapping; unknown keys are rejected with the closest valid key suggested."""
    types = _field_types()
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if key not in types:
            close = difflib.get_close_matches(key, list(types), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown config key '{key}'{hint}; valid keys: {', '.join(sorted(types))}")
        clean[key] = _coerce(key, types[key], value)
    return MadnisConfig(**clean)


def parse_overrides(items: list[str]) -> dict[str, str]:
    """Parse CLI ``key=value`` overrides."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        out[key.strip().replace("-", "_")] = value
    return out


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None, *,
                base: Mapping[str, Any] | None = None) -> MadnisConfig:
    """Read a TOML file (keys at top level or under ``[madnis]``) and apply ``overrides``.

    Precedence: ``base`` (e.g. a recipe) < the file < ``overrides``.
    """
    values: dict[str, Any] = dict(base or {})
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
        values.update(data.get("madnis", data))
    values.update(overrides or {})
    return from_dict(values)


def from_run_card(entries: Mapping[str, Any]) -> MadnisConfig:
    """Build a config from MG5 run-card entries ``madnis_<key>`` (other entries are ignored)."""
    values = {k[len("madnis_") :]: v for k, v in entries.items() if k.startswith("madnis_")}
    return from_dict(values)

