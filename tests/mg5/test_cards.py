"""Run-card entries: names, types, validation before any computation, MG5 registration."""

from __future__ import annotations

import sys

import pytest

from madnis_plugin.mg5 import cards
from madnis_plugin.mg5.cards import RunCardError, parse_entries


def test_defaults_and_types():
    o = parse_entries({"madnis": "True", "madnis_n_steps": "500", "madnis_buffer_ratio": 5.0,
                       "madnis_uniform_fraction": "0.2", "madnis_drop_cutoff": "1d-3", "madnis_device": "cpu",
                       "madnis_checkpoint": "auto", "madnis_sde_strategy": "2", "other_entry": 3})
    assert o.enabled
    c = o.config
    assert (c.n_steps, c.buffer_ratio, c.uniform_fraction, c.drop_cutoff, c.device) == (500, 5, 0.2, 1e-3, "cpu")
    assert o.checkpoint == "" and o.sde_strategy == 2
    assert o.given["madnis_n_steps"] == "500"


def test_disabled_when_absent_or_false():
    assert not cards.is_enabled({"nevents": 10})
    assert not cards.is_enabled({"madnis": False})
    assert cards.is_enabled({"MADNIS": ".true."})
    assert not parse_entries({}).enabled


def test_mg5_mangled_min_name_is_accepted():
    # MG5 turns unknown names containing 'min' into float cuts: 3.0 must still be a valid integer
    o = parse_entries({"madnis_min_points_per_channel": 3.0})
    assert o.config.min_points_per_channel == 3


@pytest.mark.parametrize(
    "entries, words",
    [
        ({"madnis_n_step": "5"}, ["madnis_n_step", "did you mean 'madnis_n_steps'"]),
        ({"madnis_n_steps": "abc"}, ["madnis_n_steps", "integer"]),
        ({"madnis_n_steps": "2.5"}, ["madnis_n_steps", "integer"]),
        ({"madnis_drop_cutoff": "0.9"}, ["madnis_drop_cutoff", "range"]),
        ({"madnis_loss": "foo"}, ["madnis_loss", "'madnis', 'variance', 'kl'"]),
        ({"madnis_sde_strategy": 3}, ["madnis_sde_strategy", "1, 2"]),
        ({"madnis_device": "tpu"}, ["madnis_device", "cuda"]),
        ({"madnis": "maybe"}, ["madnis", "True or False"]),
        ({"madnis_uniform_fraction": "nan"}, ["madnis_uniform_fraction"]),
        ({"madnis_lr": "1e-3", "madnis_lr_final": "1e-2"}, ["madnis_lr_final"]),
    ],
)
def test_errors_name_the_entry(entries, words):
    with pytest.raises(RunCardError) as err:
        parse_entries(entries)
    for w in words:
        assert w in str(err.value)


def test_mg5_settings_checked():
    cards.check_mg5_settings({"nevents": 100, "gridpack": False}, ninitial=2)
    with pytest.raises(RunCardError, match="gridpack"):
        cards.check_mg5_settings({"nevents": 100, "gridpack": True})
    with pytest.raises(RunCardError, match="nevents"):
        cards.check_mg5_settings({"nevents": 0})
    with pytest.raises(RunCardError, match="2 -> n"):
        cards.check_mg5_settings({"nevents": 10}, ninitial=1)


def test_entry_specs_cover_config_and_no_torch_import():
    names = [n for n, *_ in cards.entry_specs()]
    assert "madnis" in names and "madnis_n_steps" in names and "madnis_checkpoint" in names
    assert len(names) == len(set(names))
    for n, tp, default, _ in cards.entry_specs():
        assert isinstance(default, tp) or (tp is float and isinstance(default, int)), n


def test_register_on_a_runcard_like_class():
    class FakeRunCard(dict):
        def default_setup(self):
            self.params = {}

        def add_param(self, name, value, include=True, hidden=False, comment=None):
            self[name] = value
            self.params[name] = (include, hidden)

    assert cards.register_run_card_entries(FakeRunCard)
    assert not cards.register_run_card_entries(FakeRunCard)  # once
    rc = FakeRunCard()
    rc.default_setup()
    assert rc["madnis"] is False and rc["madnis_n_steps"] == 2000
    assert rc.params["madnis_sde_strategy"] == (False, True)


def test_snippet_parses_back():
    entries = {}
    for line in cards.run_card_snippet().splitlines():
        s = line.split("!")[0].strip()
        if "=" in s and not s.startswith("#"):
            v, k = (x.strip() for x in s.split("=", 1))
            entries[k] = v
    o = parse_entries(entries)
    assert o.enabled and o.checkpoint == ""


def test_light_module_import_does_not_need_torch(tmp_path):
    import subprocess

    code = ("import sys; sys.path.insert(0, %r); from madnis_plugin.mg5 import cards, hooks, commands; "
            "cards.entry_specs(); assert 'torch' not in sys.modules, 'torch imported'") % str(
        __import__("pathlib").Path(cards.__file__).resolve().parents[2])
    subprocess.run([sys.executable, "-c", code], check=True)
