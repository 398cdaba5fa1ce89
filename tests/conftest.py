"""Shared test settings: one CPU thread (same seed, same machine → same numbers), the MG5 marker's skip."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("MG5_HOME"):
        return
    skip = pytest.mark.skip(reason="needs a real MG5_aMC 3.5.x: set MG5_HOME to its install directory")
    for item in items:
        if item.get_closest_marker("mg5") is not None:  # not `in keywords`: tests/mg5/ adds "mg5" too
            item.add_marker(skip)
