"""The `madnis-mg5` command line: integrate --json keys, --list, train → sample round trip, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from madnis_plugin.cli import main

FAST = ["--set", "n_steps=30", "--set", "batch_size=128", "--set", "vegas_samples=1000", "--set",
        "vegas_iterations=2", "--set", "n_integration=4000", "--set", "progress=false"]


def test_integrate_json_has_documented_keys(capsys):
    assert main(["integrate", "toy:camel_bw", "--json", "--seed", "3", *FAST]) == 0
    d = json.loads(capsys.readouterr().out)
    for key in ("integral", "error", "exact", "rel_std", "unweighting_efficiency", "n_calls_training",
                "n_calls_integration", "active_channels", "wall_time_s"):
        assert key in d, key
    assert d["exact"] == pytest.approx(1.0)
    assert abs(d["integral"] - d["exact"]) < 5 * d["error"]
    assert d["n_calls_integration"] >= 4000


def test_same_seed_same_numbers(capsys):
    main(["integrate", "toy:camel_bw", "--json", "--seed", "11", *FAST])
    a = json.loads(capsys.readouterr().out)
    main(["integrate", "toy:camel_bw", "--json", "--seed", "11", *FAST])
    b = json.loads(capsys.readouterr().out)
    assert a["integral"] == b["integral"] and a["error"] == b["error"]


def test_list_and_summary(capsys):
    assert main(["integrate", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("toy:camel", "toy:crossed_ring", "toy:camel_bw", "toy:resonances", "toy:many_channels"):
        assert name in out
    assert main(["integrate", "toy:camel_bw", *FAST]) == 0
    out = capsys.readouterr().out
    assert "integral" in out and "pull" in out and "unweighting" in out


def test_errors_name_the_problem(capsys):
    assert main(["integrate", "toy:nope", *FAST]) == 2
    assert "valid names" in capsys.readouterr().err
    assert main(["integrate", "toy:camel_bw", "--set", "n_stepz=3"]) == 2
    assert "n_steps" in capsys.readouterr().err


def test_train_then_sample(tmp_path, capsys):
    ck = tmp_path / "run.pt"
    assert main(["train", "toy:resonances", "--checkpoint", str(ck), *FAST]) == 0
    assert ck.exists()
    out = tmp_path / "ev.npz"
    assert main(["sample", "--checkpoint", str(ck), "-n", "3000", "--output", str(out)]) == 0
    ev = np.load(out)
    assert ev["weight"].shape == (3000,) and ev["r"].shape == (3000, 3)
    out2 = tmp_path / "uw.npz"
    assert main(["sample", "--checkpoint", str(ck), "-n", "3000", "--output", str(out2), "--unweighted"]) == 0
    uw = np.load(out2)
    assert 0 < uw["weight"].shape[0] < 3000
    # resume: asking for more steps continues from the checkpoint
    assert main(["train", "toy:resonances", "--checkpoint", str(ck), "--resume", "--steps", "40", *FAST[2:]]) == 0
    assert "resuming from step 30" in capsys.readouterr().err


def test_reference_process_through_bridge_and_core(capsys):
    """The Fortran reference process trained by the core: σ within 5σ of the exact value."""
    args = ["integrate", "reference", "--json", "--seed", "2", "--set", "n_steps=60", "--set", "batch_size=256",
            "--set", "vegas_samples=2000", "--set", "vegas_iterations=3", "--set", "n_integration=10000",
            "--set", "progress=false"]
    assert main(args) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["unit"] == "pb" and d["channel_names"] == ["photon", "Z"]
    assert abs(d["integral"] - d["exact"]) < 5 * d["error"]
    assert d["error"] / d["integral"] < 0.01


def test_recipe_precedence(tmp_path):
    from madnis_plugin.cli import _config, build_parser

    parser = build_parser()
    args = parser.parse_args(["integrate", "toy:crossed_ring"])
    assert _config(args, "toy:crossed_ring").flow_blocks == 6
    f = tmp_path / "c.toml"
    f.write_text("flow_blocks = 4\nn_steps = 10\n")
    args = parser.parse_args(["integrate", "toy:crossed_ring", "--config", str(f), "--set", "n_steps=20"])
    cfg = _config(args, "toy:crossed_ring")
    assert cfg.flow_blocks == 4 and cfg.n_steps == 20 and cfg.flow_bins == 16
    args = parser.parse_args(["integrate", "toy:crossed_ring", "--no-recipe"])
    assert _config(args, "toy:crossed_ring").flow_blocks == 0
