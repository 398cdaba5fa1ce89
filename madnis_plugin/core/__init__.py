"""Pure-PyTorch MadNIS core: flows, VEGAS initialisation, channel weights, losses, buffered and stratified
training, channel dropping, refine-phase integration and unweighting. Knows nothing of MG5.

Thin recipe::

    from madnis_plugin.core import MadnisConfig, run
    result = run(integrand, MadnisConfig(n_steps=1000))
"""

from __future__ import annotations

import time

from .checkpoint import load_checkpoint, save_checkpoint
from .config import ConfigError, MadnisConfig, from_dict, load_config
from .integrator import generate, integrate, unweight, unweighting_efficiency
from .result import IntegrationResult, TrainingHistory, UnweightedEvents, WeightedEvents
from .trainer import IntegrandError, Trainer

__all__ = [
    "ConfigError",
    "IntegrandError",
    "IntegrationResult",
    "MadnisConfig",
    "Trainer",
    "TrainingHistory",
    "UnweightedEvents",
    "WeightedEvents",
    "from_dict",
    "generate",
    "integrate",
    "load_checkpoint",
    "load_config",
    "run",
    "save_checkpoint",
    "unweight",
    "unweighting_efficiency",
]


def run(integrand, config: MadnisConfig | None = None, *, checkpoint_path: str | None = None) -> IntegrationResult:
    """Pre-train (VEGAS), train, and integrate on the frozen model. Returns the refine-phase result."""
    import dataclasses

    config = config or MadnisConfig()
    t0 = time.perf_counter()
    trainer = Trainer(integrand, config)
    trainer.train(checkpoint_path=checkpoint_path)
    result = integrate(trainer)
    return dataclasses.replace(result, wall_time_s=time.perf_counter() - t0)
