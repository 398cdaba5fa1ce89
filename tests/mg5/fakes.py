"""Fakes for the MG5-layer tests: a process directory on disk and a process with the bridge's Process API.

FakeProcess mimics :class:`madnis_plugin.bridge.process.Process` for an ``output madevent`` directory with two
P-directories (``P1_qq_ll``: channels G1, G2 and a symmetric copy of G1 (diagram 3 → −1);
``P2_gg_ll``: G1, G2.2). Point (channel c, r ∈ [0,1]^2) → 2→2 kinematics at √ŝ = 50 + 100·r0 GeV,
cosθ = 2·r1 − 1; weight f_k(r) = σ_k · (1 + a_k cos(2π r0)) · (1 + b_k (2 r1 − 1)) (unit normalised), prior α
smooth and summing to 1 over the P-directory's channels. So Σ_c ∫ α_c w = σ_1 + σ_2 exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# the fakes return the bridge's own result types, so they cannot drift from what Process returns
from madnis_plugin.bridge.process import EventDetails, EventRecord, Evaluation

SIGMA = (600.0, 250.0)  # pb per P-directory


@dataclass(frozen=True)
class FakeSub:
    name: str
    path: str
    pdg: tuple
    masses: tuple
    n_dims: int
    n_external: int
    n_incoming: int
    n_channels: int
    channel_offset: int
    channel_diagram: tuple
    channel_group: tuple
    n_flavour_subprocesses: int = 1
    ebeam: tuple = (6500.0, 6500.0)
    lpp: tuple = (1, 1)


@dataclass(frozen=True)
class FakeInfo:
    kind: str
    path: str
    subprocesses: tuple
    sde_strategy: int = 1
    mg5_version: str = "3.5.7"

    @property
    def channel_subprocess(self):
        return tuple(k for k, sp in enumerate(self.subprocesses) for _ in range(sp.n_channels))

    @property
    def channel_diagram(self):
        return tuple(d for sp in self.subprocesses for d in sp.channel_diagram)


LESHOUCHE_P1 = """      DATA (IDUP(I,1,1),I=1,4)/2,-2,-11,11/
      DATA (MOTHUP(1,I),I=1, 4)/  0,  0,  1,  1/
      DATA (MOTHUP(2,I),I=1, 4)/  0,  0,  2,  2/
      DATA (ICOLUP(1,I,1,1),I=1, 4)/501,  0,  0,  0/
      DATA (ICOLUP(2,I,1,1),I=1, 4)/  0,501,  0,  0/
      DATA (IDUP(I,2,1),I=1,4)/4,-4,-11,11/
"""

PARAM_CARD = """BLOCK SMINPUTS #
      1 1.325070e+02 # aewm1
      2 1.166390e-05 # gf
      3 1.300000e-01 # as (Note that Parameter not used if you use a PDF set)
"""


def make_process_dir(root: Path) -> Path:
    """A minimal ``output madevent`` tree: SubProcesses/P*/symfact.dat (+ leshouche.inc), Cards, Events, HTML."""
    root = Path(root)
    p1 = root / "SubProcesses" / "P1_qq_ll"
    p2 = root / "SubProcesses" / "P2_gg_ll"
    for p in (p1, p2):
        p.mkdir(parents=True)
    (p1 / "symfact.dat").write_text("            1            1\n            2            1\n            3           -1\n")
    (p2 / "symfact.dat").write_text("            1            1\n2.2             1\n")
    (p1 / "leshouche.inc").write_text(LESHOUCHE_P1)
    (root / "SubProcesses" / "subproc.mg").write_text("P1_qq_ll\nP2_gg_ll\n")
    (root / "Cards").mkdir()
    (root / "Cards" / "param_card.dat").write_text(PARAM_CARD)
    (root / "Events").mkdir()
    (root / "HTML").mkdir()
    (root / "bin").mkdir()
    (root / "bin" / "madevent").write_text("#!/bin/sh\n")
    return root


class FakeProcess:
    unit = "pb"
    exact = None

    def __init__(self, me_dir: Path, n_dims: int = 2):
        me_dir = Path(me_dir)
        subs = (
            FakeSub("P1_qq_ll", str(me_dir / "SubProcesses" / "P1_qq_ll"), (2, -2, -11, 11), (0.0,) * 4, n_dims, 4, 2,
                    3, 0, (1, 2, 3), (0, 1, 0)),
            FakeSub("P2_gg_ll", str(me_dir / "SubProcesses" / "P2_gg_ll"), (21, 21, -11, 11), (0.0,) * 4, n_dims, 4, 2,
                    2, 3, (1, 2), (0, 1)),
        )
        self.info = FakeInfo("mg5-output", str(me_dir), subs)
        self.n_channels = 5
        self.n_dims = n_dims
        self.n_external = 4
        self.n_features = 3
        self.groups = [[0, 2], [1], [3], [4]]
        self.channel_names = ["P1_qq_ll/G1", "P1_qq_ll/G2", "P1_qq_ll/G3", "P2_gg_ll/G1", "P2_gg_ll/G2"]
        self.exact = SIGMA[0] + SIGMA[1]
        self.calls = 0
        self.closed = False

    # --- the fake physics
    @staticmethod
    def _f(k, r):
        a, b = (0.6, 0.3) if k == 0 else (-0.4, -0.5)
        return SIGMA[k] * (1 + a * np.cos(2 * math.pi * r[:, 0])) * (1 + b * (2 * r[:, 1] - 1))

    @staticmethod
    def _alpha(k, r):
        if k == 0:
            raw = np.stack([1 + r[:, 0], 1 + 3 * r[:, 1] ** 2, 0.5 + 0 * r[:, 0]], axis=1)
        else:
            raw = np.stack([2 - r[:, 0], 1 + r[:, 0]], axis=1)
        return raw / raw.sum(axis=1, keepdims=True)

    def evaluate(self, channels, r):
        ch = np.asarray(channels, np.int64)
        r = np.asarray(r, np.float64)
        n = ch.shape[0]
        self.calls += n
        weight = np.zeros(n)
        alpha = np.zeros((n, self.n_channels))
        status = np.zeros(n, np.int32)
        sqrt_s = 50.0 + 100.0 * r[:, 0]
        cos = 2 * r[:, 1] - 1
        sin = np.sqrt(np.maximum(1 - cos**2, 0))
        e = sqrt_s / 2
        mom = np.zeros((n, 4, 4))
        mom[:, 0] = np.stack([e, 0 * e, 0 * e, e], 1)
        mom[:, 1] = np.stack([e, 0 * e, 0 * e, -e], 1)
        mom[:, 2] = np.stack([e, e * sin, 0 * e, e * cos], 1)
        mom[:, 3] = np.stack([e, -e * sin, 0 * e, -e * cos], 1)
        for k, sp in enumerate(self.info.subprocesses):
            idx = np.flatnonzero((ch >= sp.channel_offset) & (ch < sp.channel_offset + sp.n_channels))
            if idx.size == 0:
                continue
            weight[idx] = self._f(k, r[idx])
            alpha[idx, sp.channel_offset : sp.channel_offset + sp.n_channels] = self._alpha(k, r[idx])
        cut = r[:, 1] > 0.995  # a sliver of cut points
        weight[cut] = 0.0
        status[cut] = 1
        return Evaluation(weight, mom, alpha, status, ch)

    def features(self, ev):
        p = ev.momenta
        sqrt_s = 2 * p[:, 0, 0]
        out = np.stack([np.log(sqrt_s / 13000.0), p[:, 2, 3] / np.maximum(p[:, 2, 0], 1e-9),
                        np.log(np.maximum(np.hypot(p[:, 2, 1], p[:, 2, 2]), 1e-9) / sqrt_s)], axis=1)
        return np.nan_to_num(out)

    def close(self):
        self.closed = True


class FakeProcessWithDetails(FakeProcess):
    """FakeProcess plus ``event_details``: P1 events are d~ d (mirrored, beam 1 = d~) with a Z line in the record,
    x1 = 0.01, x2 from √ŝ, SCALUP = √ŝ, αs = 0.118, helicities (+1, −1, −1, +1)."""

    def event_details(self, channels, r, record=True):
        ev = self.evaluate(channels, r)
        n = len(ev.weight)
        p = ev.momenta
        sqrt_s = 2 * p[:, 0, 0]
        x1 = np.full(n, 0.01)
        x2 = sqrt_s**2 / (13000.0**2 * x1)
        e1, e2 = x1 * 6500, x2 * 6500
        beta = (e1 - e2) / (e1 + e2)
        gam = 1 / np.sqrt(1 - beta**2)
        lab = p.copy()
        lab[..., 0] = gam[:, None] * (p[..., 0] + beta[:, None] * p[..., 3])
        lab[..., 3] = gam[:, None] * (p[..., 3] + beta[:, None] * p[..., 0])
        pdg = np.tile([-1, 1, -11, 11], (n, 1))
        col = np.tile([[0, 501], [501, 0], [0, 0], [0, 0]], (n, 1, 1))
        hel = np.tile([1, -1, -1, 1], (n, 1))
        rec = EventRecord(np.full(n, 5), np.tile([-1, 1, 23, -11, 11], (n, 1)), np.tile([-1, -1, 2, 1, 1], (n, 1)),
                         np.tile([[0, 0], [0, 0], [1, 2], [3, 3], [3, 3]], (n, 1, 1)),
                         np.tile([[0, 501], [501, 0], [0, 0], [0, 0], [0, 0]], (n, 1, 1)), np.zeros((n, 5, 5)),
                         np.tile([1, -1, 0, -1, 1], (n, 1)))
        rec.pup[:, [0, 1, 3, 4], :4] = lab
        rec.pup[:, 2, :4] = lab[:, 2] + lab[:, 3]
        rec.pup[:, 2, 4] = sqrt_s
        return EventDetails(ev.status, np.zeros(n, np.int64), np.ones(n, np.int32), np.ones(n, np.int32),
                           np.stack([x1, x2], 1), sqrt_s, np.full(n, 0.118), pdg, col, hel, lab,
                           np.asarray(channels), rec if record else None)
