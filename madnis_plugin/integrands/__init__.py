"""Integrands: the protocol and its implementations (toys, the reference process, MG5 processes).

Targets are named by strings on the command line: ``toy:NAME``, ``reference[:sde2]`` or ``mg5:PATH``.
"""

from __future__ import annotations

from .protocol import Integrand, IntegrandBatch, sanitize

__all__ = ["Integrand", "IntegrandBatch", "list_targets", "resolve_target", "sanitize"]


def list_targets() -> list[tuple[str, str]]:
    """(target, one-line description) for every built-in target."""
    from .toys import TOYS

    out = []
    for name, factory in sorted(TOYS.items()):
        doc = (factory.__doc__ or "").strip().splitlines()[0] if factory.__doc__ else ""
        out.append((f"toy:{name}", doc))
    out.append(("reference", "e+ e- -> gamma/Z -> mu+ mu- reference process in project Fortran, through the bridge"))
    out.append(("reference:sde2", "the reference process with SDE-strategy-2 prior channel weights"))
    out.append(("mg5:PATH", "an MG5 `output madevent` directory or one SubProcesses/P* directory"))
    return out


def resolve_target(target: str) -> Integrand:
    """Build the integrand named by ``target``; unknown names raise ValueError listing the valid ones."""
    if target.startswith("toy:"):
        from .toys import make_toy

        return make_toy(target[4:])
    if target == "reference" or target.startswith("reference:sde"):
        from .reference import ReferenceIntegrand

        sde = int(target[len("reference:sde"):]) if target.startswith("reference:sde") else 1
        return ReferenceIntegrand(sde_strategy=sde)
    if target.startswith("mg5:"):
        from .mg5 import load_integrand

        return load_integrand(target[4:])
    valid = ", ".join(name for name, _ in list_targets())
    raise ValueError(f"unknown target {target!r}; valid targets: {valid}")
