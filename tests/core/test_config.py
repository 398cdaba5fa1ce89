"""Configuration: defaults, TOML, overrides, run-card entries; bad input rejected naming the key."""

from __future__ import annotations

import pytest

from madnis_plugin.core.config import (
    ConfigError,
    MadnisConfig,
    from_dict,
    from_run_card,
    load_config,
    parse_overrides,
)


def test_defaults_are_valid_and_frozen():
    cfg = MadnisConfig()
    assert cfg.loss == "madnis" and cfg.uniform_fraction == 0.1 and cfg.drop_cutoff == 1e-3
    with pytest.raises(Exception):
        cfg.lr = 1.0  # type: ignore[misc]
    assert cfg.replace(lr=5e-4).lr == 5e-4


def test_unknown_key_named_with_suggestion():
    with pytest.raises(ConfigError, match=r"unknown config key 'n_step'.*did you mean 'n_steps'"):
        from_dict({"n_step": 10})


@pytest.mark.parametrize(
    "key,value,pattern",
    [
        ("loss", "foo", r"'loss'.*'madnis', 'variance', 'kl'"),
        ("lr", -1.0, r"'lr'.*outside the valid range"),
        ("uniform_fraction", 1.5, r"'uniform_fraction'.*outside"),
        ("n_steps", "ten", r"'n_steps'.*expected an integer"),
        ("train_channel_weights", "maybe", r"'train_channel_weights'.*true or false"),
        ("device", "tpu", r"'device'.*'cpu', 'cuda'"),
        ("lr_schedule", "linear", r"'lr_schedule'.*'inverse', 'cosine', 'constant'"),
        ("flow_min_bin", 0.2, r"'flow_min_bin'.*outside the valid range"),
        ("buffer_start_batches", -1, r"'buffer_start_batches'.*outside the valid range"),
    ],
)
def test_bad_values_rejected(key, value, pattern):
    with pytest.raises(ConfigError, match=pattern):
        from_dict({key: value})


def test_flow_min_bin_must_fit_the_bins():
    with pytest.raises(ConfigError, match=r"'flow_min_bin'.*flow_bins = 200 must stay below 1"):
        from_dict({"flow_min_bin": 0.005, "flow_bins": 200})


def test_toml_and_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[madnis]\nn_steps = 123\nloss = "variance"\nlr = 2e-3\n')
    cfg = load_config(f, parse_overrides(["n_steps=7", "train-channel-weights=false"]))
    assert cfg.n_steps == 7 and cfg.loss == "variance" and cfg.lr == 2e-3 and cfg.train_channel_weights is False
    bad = tmp_path / "bad.toml"
    bad.write_text("n_steps = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["n_steps"])


def test_run_card_entries():
    cfg = from_run_card({"madnis_n_steps": "500", "madnis_buffer_ratio": "5", "nevents": "10000",
                         "madnis_drop_cutoff": "1d-3"})
    assert cfg.n_steps == 500 and cfg.buffer_ratio == 5 and cfg.drop_cutoff == 1e-3
    with pytest.raises(ConfigError, match="unknown config key 'bufer_ratio'"):
        from_run_card({"madnis_bufer_ratio": "3"})
