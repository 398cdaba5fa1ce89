"""Thin named recipes: configuration overrides that a target is run with by default.

A recipe only changes defaults; a TOML file or ``--set`` still overrides every key.
"""

from __future__ import annotations

from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    # MadNIS Tab. 2 (crossed ring) uses 6 coupling blocks; with 16 bins and lr 3e-3 → 1e-4 the seeded run
    # (`madnis-mg5 integrate --set n_integration=10000`) reaches a relative std per point of 0.080 after 4000 steps
    # (R = 3, 1.47M training calls): 0.080 % from 10^4 refine points (MadNIS Tab. 2: 0.14 %), ε = 0.52.
    "toy:crossed_ring": {"flow_blocks": 6, "flow_bins": 16, "lr": 3e-3, "n_steps": 4000, "batch_size": 1024,
                         "vegas_samples": 10000},
}


def recipe_for(target: str) -> dict[str, Any]:
    """The recipe overrides for ``target`` (empty when it has none)."""
    return dict(RECIPES.get(target, {}))
