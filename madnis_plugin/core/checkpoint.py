"""One checkpoint file holding everything needed to resume training or to generate later.

Written atomically (temporary file in the same directory, fsync, os.replace), so an interrupted write never
leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..integrands.protocol import Integrand
from .config import from_dict
from .trainer import Trainer

CHECKPOINT_VERSION = 1


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def trainer_state(trainer: Trainer) -> dict[str, Any]:
    """The complete state of a trainer as a dict of tensors and plain values."""
    return {
        "version": CHECKPOINT_VERSION,
        "config": trainer.config.to_dict(),
        "integrand": {
            "type": type(trainer.integrand).__name__,
            "n_dims": trainer.integrand.n_dims,
            "n_channels": trainer.integrand.n_channels,
            "n_features": trainer.integrand.n_features,
            "groups": [list(map(int, g)) for g in trainer.integrand.groups],
            "channel_names": list(getattr(trainer.integrand, "channel_names", [])),
        },
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "buffer": trainer.buffer.state_dict(),
        "stats": trainer.stats.state_dict(),
        "generator": trainer.generator.get_state(),
        "counters": {
            "step": trainer.step,
            "online_steps": trainer.online_steps,
            "pretrained": trainer.pretrained,
            "dropped_share": trainer.dropped_share,
            "calls": dict(trainer.calls),
            "invalid": dict(trainer.invalid),
            "skipped_steps": trainer.skipped_steps,
            "train_time_s": trainer.train_time_s,
        },
        "history": trainer.history.to_dict(),
        "target": getattr(trainer, "target", None),
    }


def save_checkpoint(trainer: Trainer, path: str | Path) -> Path:
    """Save the trainer atomically to ``path``; returns the path."""
    import io

    buf = io.BytesIO()
    torch.save(trainer_state(trainer), buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def read_target(path: str | Path) -> str | None:
    """The target string (e.g. ``toy:camel``) recorded in a checkpoint, or None."""
    state = torch.load(Path(path), map_location="cpu", weights_only=False)
    return state.get("target")


class CheckpointError(ValueError):
    """A checkpoint cannot be used with the given integrand or is damaged."""


def load_checkpoint(path: str | Path, integrand: Integrand, **config_overrides: Any) -> Trainer:
    """Rebuild a trainer from ``path`` for ``integrand``; resuming continues with the same numbers.

    ``config_overrides`` may change e.g. ``n_steps`` (train longer) or ``progress``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read: {exc}") from None
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} has version {state.get('version')}, expected {CHECKPOINT_VERSION}")
    meta = state["integrand"]
    for key in ("n_dims", "n_channels", "n_features"):
        if getattr(integrand, key) != meta[key]:
            raise CheckpointError(
                f"checkpoint {str(path)!r} was made for an integrand with {key}={meta[key]}, "
                f"this one has {getattr(integrand, key)}"
            )
    config = from_dict({**state["config"], **config_overrides})
    trainer = Trainer(integrand, config)
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.buffer.load_state_dict(state["buffer"])
    trainer.stats.load_state_dict(state["stats"])
    trainer.generator.set_state(state["generator"])
    c = state["counters"]
    trainer.step = int(c["step"])
    trainer.online_steps = int(c["online_steps"])
    trainer.pretrained = bool(c["pretrained"])
    trainer.dropped_share = float(c["dropped_share"])
    trainer.calls = dict(c["calls"])
    trainer.invalid = dict(c["invalid"])
    trainer.skipped_steps = int(c["skipped_steps"])
    trainer.train_time_s = float(c["train_time_s"])
    trainer.target = state.get("target")
    for k, v in state["history"].items():
        setattr(trainer.history, k, list(v))
    return trainer
