"""Pins the public API: renaming or removing any of these is a breaking change."""

from __future__ import annotations

import inspect

import madnis_plugin.core as core
from madnis_plugin.integrands import protocol


def test_core_exports():
    assert set(core.__all__) == {
        "ConfigError", "IntegrandError", "IntegrationResult", "MadnisConfig", "Trainer", "TrainingHistory",
        "UnweightedEvents", "WeightedEvents", "from_dict", "generate", "integrate", "load_checkpoint",
        "load_config", "run", "save_checkpoint", "unweight", "unweighting_efficiency",
    }
    for name in core.__all__:
        assert hasattr(core, name), name


def test_signatures():
    assert list(inspect.signature(core.run).parameters) == ["integrand", "config", "checkpoint_path"]
    assert list(inspect.signature(core.integrate).parameters) == ["trainer", "n", "seed"]
    assert list(inspect.signature(core.Trainer).parameters) == ["integrand", "config"]
    fields = {f for f in protocol.IntegrandBatch.__dataclass_fields__}
    assert fields == {"weight", "alpha_prior", "features", "valid", "momenta", "status"}
    res_fields = set(core.IntegrationResult.__dataclass_fields__)
    assert {"integral", "error", "rel_std", "unweighting_efficiency", "n_calls_training", "n_calls_integration",
            "active_channels", "channel_integrals"} <= res_fields
