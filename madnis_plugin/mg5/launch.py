"""The MadNIS launch flow: what replaces MadEvent's survey + refine when the run card says ``madnis = True``.

Two layers:

* :class:`MadnisRun` — MG5-independent: open the process (the bridge over every P-directory), train one MadNIS
  model over all channels of all P-directories together (VEGAS start, from MadEvent's survey grids when present),
  draw the refine-phase sample from the frozen model (integral, error, unweighting efficiency), partially unweight
  it and write what MG5 reads: ``G*/results.dat`` + ``G*/events.lhe`` for every G directory, the grids, the JSON
  summary, plots. Tested with a fake process (tests/mg5).
* :func:`run_madnis_survey` — the MG5 side, called by the patched ``MadEventCmd.do_survey`` (hooks.py): MG5's own
  preparation (``configure_directory``: cards, ``make`` in Source, seeds; ``gensym`` for the channel list and G
  directories), then :class:`MadnisRun`, then MG5's own HTML/results bookkeeping. ``refine`` becomes a no-op for
  that run, and MG5's unmodified ``combine_events`` (exactly ``nevents`` unweighted events with MG5's banner in
  ``Events/<run>/unweighted_events.lhe.gz``), ``store_events``, systematics/shower steps and HTML follow.

Ctrl-C during training writes the checkpoint (``Trainer.train``) and nothing else; event files are staged and
renamed together at the end (lhe.AtomicGroup), so an interrupted run leaves no half-written LHE.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import lhe as lhe_mod
from ..bridge.errors import InvalidInput
from .cards import MadnisCardOptions, RunCardError
from .results import (
    ChannelMap,
    RunSummary,
    build_channel_map,
    format_results_dat,
    gresult_from_channels,
    html_section,
    insert_html_section,
)

logger = logging.getLogger("madgraph.madnis")

CHECKPOINT_NAME = "madnis_checkpoint.pt"
SUMMARY_NAME = "madnis_results.json"
SAMPLE_SEED_OFFSET = 1_000_003


@dataclass
class LaunchSettings:
    """Everything a MadNIS run needs besides the process."""

    me_dir: Path
    run_name: str
    nevents: int
    options: MadnisCardOptions
    n_workers: int = 1
    aqed: float = -1.0
    aqcd: float = -1.0
    load_checkpoint: Path | None = None  # resume / reuse from here
    train: bool = True  # False: use the loaded model as is (madnis_generate)
    use_syst: bool = False  # run card use_syst: events carry MadEvent's <mgrwt> block (MG5's systematics reads it)

    @property
    def run_dir(self) -> Path:
        return Path(self.me_dir) / "Events" / self.run_name

    @property
    def html_dir(self) -> Path:
        return Path(self.me_dir) / "HTML" / self.run_name

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME


def resolve_checkpoint(me_dir: Path, entry: str) -> Path | None:
    """The file named by ``madnis_checkpoint`` (absolute or relative to the process dir); None for the default.

    Raises RunCardError if a file is named but does not exist (checked before any computation).
    """
    if not entry:
        return None
    p = Path(entry).expanduser()
    if not p.is_absolute():
        p = Path(me_dir) / p
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.is_file():
        raise RunCardError(f"run_card entry 'madnis_checkpoint': {entry!r} does not exist (looked for {p}); use auto "
                           "to train a new model")
    return p


def read_couplings(me_dir: Path) -> tuple[float, float]:
    """(α_EW, α_s) from ``Cards/param_card.dat`` (SMINPUTS 1 = 1/α, 3 = α_s(MZ)); −1 where absent."""
    f = Path(me_dir) / "Cards" / "param_card.dat"
    aqed = aqcd = -1.0
    if not f.is_file():
        return aqed, aqcd
    block = None
    for line in f.read_text(errors="replace").splitlines():
        s = line.split("#", 1)[0].strip()
        if not s:
            continue
        low = s.lower()
        if low.startswith("block"):
            parts = low.split()
            block = parts[1] if len(parts) > 1 else None
            continue
        if block == "sminputs":
            parts = s.split()
            try:
                if parts[0] == "1" and float(parts[1]) > 0:
                    aqed = 1.0 / float(parts[1])
                elif parts[0] == "3":
                    aqcd = float(parts[1])
            except (ValueError, IndexError):
                continue
    return aqed, aqcd


def default_process_factory(me_dir: Path, sde_strategy: int, n_workers: int):
    from madnis_plugin.bridge.process import load_process  # noqa: PLC0415

    return load_process(str(me_dir), sde_strategy=sde_strategy, n_workers=n_workers)


# ================================================================================================== MadnisRun
@dataclass
class SampleResult:
    """The refine-phase sample: per-event arrays (numpy) and per-channel estimates."""

    r: np.ndarray
    channels: np.ndarray
    weight: np.ndarray  # event weight in pb: ⟨weight⟩ estimates σ
    momenta: np.ndarray | None
    channel_integrals: np.ndarray
    channel_abs_integrals: np.ndarray
    channel_errors: np.ndarray
    channel_points: np.ndarray
    cross: float
    error: float
    w_max: float
    efficiency: float  # ⟨|w|⟩ / w_max with the w_max used for the events (madnis_unweight_trunc)
    efficiency_bootstrap: float  # ⟨|w|⟩ / bootstrap median of the maximum (MadNIS Reloaded's definition)
    overweight_fraction: float
    n_calls: int
    time_s: float


class MadnisRun:
    """One MadNIS run over an ``output madevent`` directory (see module docstring).

    Args:
        settings: :class:`LaunchSettings`.
        process_factory: ``(me_dir, sde_strategy, n_workers) -> Process`` (bridge by default; tests pass a fake).
        status: optional ``callback(text)`` for MG5's status line/HTML.
    """

    def __init__(self, settings: LaunchSettings, *, process_factory: Callable | None = None,
                 status: Callable[[str], None] | None = None):
        self.s = settings
        self.cfg = settings.options.config
        self.factory = process_factory or default_process_factory
        self.status = status or (lambda text: None)
        self.process = None
        self.integrand = None
        self.cmap: ChannelMap | None = None
        self.trainer = None
        self.sample_result: SampleResult | None = None
        self.summary: RunSummary | None = None
        self.resumed_from = ""
        self.auto_stop: AutoStop | None = None
        self.vegas_from_madevent = 0
        self.syst_ok: bool | None = None  # <mgrwt> written (True), unavailable (False), not asked (None)
        self.n_calls_events = 0  # matrix-element evaluations for the events' details (see _detail_passes)
        self.faked: list[str] = []

    # ------------------------------------------------------------------------------------------ process
    def open(self) -> None:
        from madnis_plugin.integrands.mg5 import ProcessIntegrand  # noqa: PLC0415

        self.status("MadNIS: building the bridge for every P-directory")
        t0 = time.perf_counter()
        self.process = self.factory(self.s.me_dir, self.s.options.sde_strategy, self.s.n_workers)
        self.integrand = ProcessIntegrand(self.process)
        self.cmap = build_channel_map(self.process.info.subprocesses, self.s.me_dir)
        if "madnis_vegas_samples" not in self.s.options.given:
            # VEGAS pre-training per iteration: 500 points per channel (at least 4000, at most the config's 20000),
            # about what MadEvent's survey spends per channel; a fixed 20000 dominated the calls of few-channel runs
            n_vegas = int(min(self.cfg.vegas_samples, max(4000, 500 * self.integrand.n_channels)))
            if n_vegas != self.cfg.vegas_samples:
                logger.info("MadNIS: VEGAS pre-training with %d points per iteration (%d channels; set "
                            "madnis_vegas_samples to change)", n_vegas, self.integrand.n_channels)
                self.cfg = self.cfg.replace(vegas_samples=n_vegas)
        unmapped = [c for c, t in enumerate(self.cmap.channel_tag) if t is None]
        if unmapped:
            logger.warning("MadNIS: %d channel(s) have no G directory (their P-directory has none): %s",
                           len(unmapped), ", ".join(self.integrand.channel_names[c] for c in unmapped[:10]))
        logger.info("MadNIS: %d channels in %d P-directories, %d G directories, %d flow groups, D = %d (%.1f s)",
                    self.integrand.n_channels, len(self.cmap.pdirs), len(self.cmap.gdirs),
                    len(self.integrand.groups), self.integrand.n_dims, time.perf_counter() - t0)

    def close(self) -> None:
        if self.process is not None:
            try:
                self.process.close()
            finally:
                self.process = None

    def _n_dims_of_channel(self, c: int) -> int:
        subs = self.process.info.subprocesses
        return int(subs[self.cmap.channel_pdir[c]].n_dims)

    # ------------------------------------------------------------------------------------------ training
    def _make_trainer(self):
        from madnis_plugin.core import Trainer, load_checkpoint  # noqa: PLC0415

        if self.s.load_checkpoint is not None:
            overrides = {"n_steps": self.cfg.n_steps, "progress": self.cfg.progress}
            trainer = load_checkpoint(self.s.load_checkpoint, self.integrand, **overrides)
            self.resumed_from = str(self.s.load_checkpoint)
            logger.info("MadNIS: model loaded from %s (step %d of %d)", self.s.load_checkpoint, trainer.step,
                        self.cfg.n_steps)
            if self.s.train and trainer.step < self.cfg.n_steps and trainer.config.seed != self.cfg.seed:
                # resuming an interrupted training: sample with the seed the run was started with, so the result
                # is the one the uninterrupted run would have given (MG5 hands every launch a new seed)
                logger.info("MadNIS: resuming an interrupted training; sampling seed %d from the checkpoint "
                            "(this launch's seed was %d)", trainer.config.seed, self.cfg.seed)
                self.cfg = self.cfg.replace(seed=trainer.config.seed)
        else:
            trainer = Trainer(self.integrand, self.cfg)
        trainer.target = str(self.s.me_dir)
        return trainer

    def _vegas_from_survey(self, trainer) -> None:
        """Start VEGAS pre-training from MadEvent's survey grids (G*/ftn26) when present."""
        if trainer.pretrained or not self.cfg.vegas_init or not self.s.options.plugin.get("survey_grids", True):
            return
        import torch  # noqa: PLC0415

        from .grids import initial_group_edges  # noqa: PLC0415

        try:
            edges, found = initial_group_edges(self.s.me_dir, self.cmap, self.integrand.groups,
                                               self._n_dims_of_channel, self.integrand.n_dims, self.cfg.vegas_bins)
        except ImportError:
            return
        if edges is None:
            return
        trainer.model.vegas.set_edges(torch.as_tensor(edges, dtype=torch.float64, device=trainer.device))
        self.vegas_from_madevent = found
        logger.info("MadNIS: VEGAS starts from MadEvent's survey grids for %d of %d groups", found,
                    len(self.integrand.groups))

    def train(self):
        """Pre-train (VEGAS) and train; the checkpoint is written to ``Events/<run>/madnis_checkpoint.pt``."""
        trainer = self._make_trainer()
        self.trainer = trainer
        self._vegas_from_survey(trainer)
        target = self.cfg.n_steps if self.s.train else trainer.step
        ckpt = self.s.checkpoint_path
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        if trainer.step >= target:
            if not trainer.pretrained:
                trainer.pretrain_vegas()
            logger.info("MadNIS: model already trained (%d steps); no further training", trainer.step)
            from madnis_plugin.core import save_checkpoint  # noqa: PLC0415

            if self.s.load_checkpoint is None or Path(self.s.load_checkpoint).resolve() != ckpt.resolve():
                save_checkpoint(trainer, ckpt)
            return trainer
        self.status("MadNIS: VEGAS pre-training")
        t0 = time.perf_counter()
        start = trainer.step
        report = _ProgressReporter("MadNIS training", target, start, self.status)
        every = max(50, target // 10)
        logger.info("MadNIS: training %d steps (batch %d, %d channels) on %s", target - start, trainer.batch_size,
                    trainer.n_channels, self.cfg.device)
        plug = self.s.options.plugin
        self.auto_stop = AutoStop(self.events_wanted, float(plug["unweight_trunc"])) if plug["auto_stop"] else None
        trainer.train(target, callback=report, checkpoint_path=str(ckpt), checkpoint_every=every,
                      should_stop=self.auto_stop)
        logger.info("MadNIS: training done in %s; %d of %d channels active; %d integrand calls",
                    _fmt_time(time.perf_counter() - t0), int(trainer.model.active.sum()), trainer.n_channels,
                    trainer.n_calls_training)
        return trainer

    # ------------------------------------------------------------------------------------------ sampling
    @property
    def events_wanted(self) -> float:
        """Events handed to MG5's final unweighting: ``madnis_event_factor`` × nevents."""
        return float(self.s.options.plugin["event_factor"]) * self.s.nevents

    def sample(self) -> SampleResult:
        """Refine phase: weighted events from the frozen model until ``event_factor × nevents`` survive the
        partial unweighting (at most ``sampling_rounds`` rounds; the first draws min(n_integration, 4 × that))."""
        import torch  # noqa: PLC0415

        from madnis_plugin.core import generate  # noqa: PLC0415
        from madnis_plugin.core.integrator import bootstrap_wmax, combine_channels, truncated_wmax  # noqa: PLC0415

        trainer = self.trainer
        cfg = self.cfg
        plug = self.s.options.plugin
        want = self.events_wanted
        gen = torch.Generator(device=trainer.device).manual_seed(cfg.seed + SAMPLE_SEED_OFFSET)
        boot = torch.Generator().manual_seed(cfg.seed + 17)
        calls0 = trainer.calls["integration"]
        t0 = time.perf_counter()
        parts: list = []
        # like MadEvent's refine, sample only what the requested events need: the first round assumes ε ≥ 1/4,
        # further rounds (sized from the measured ε) fill up; n_integration caps the first round
        n_round = int(min(cfg.n_integration, max(4.0 * want, 1000)))
        n_total = 0
        eff = w_max = eff_boot = 0.0
        trunc = float(plug["unweight_trunc"])
        for rnd in range(int(plug["sampling_rounds"])):
            self.status(f"MadNIS: sampling round {rnd + 1} ({n_round} points)")
            ev = generate(trainer, n_round, generator=gen)
            parts.append(ev)
            n_total += len(ev)
            v = self._per_point_values(parts)
            w_all = v["weight"]
            w_boot = bootstrap_wmax(torch.as_tensor(w_all), cfg.bootstrap_replicas, boot)
            # MadEvent's rule by default: the overflow above w_max carries ≤ trunc of σ (MG5's final unweighting
            # truncates the same way); trunc = 0: the bootstrap median of the maximum (MadNIS Reloaded's ε)
            w_max = truncated_wmax(torch.as_tensor(w_all), trunc) if trunc > 0 else w_boot
            mean_abs = float(np.abs(w_all).mean()) if w_all.size else 0.0
            eff = mean_abs / w_max if w_max > 0 else 0.0
            eff_boot = mean_abs / w_boot if w_boot > 0 else 0.0
            expected = n_total * eff
            logger.info("MadNIS: %d weighted events, efficiency %.4f -> about %d unweighted (need %d)", n_total,
                        eff, int(expected), int(math.ceil(want)))
            if expected >= want or eff <= 0:
                break
            # w_max grows with the sample (heavy tails), so aim 25 % higher than the current estimate; ε from a small
            # sample is unreliable with heavy tails (it can be far too low), so grow by at most 4× per round
            n_round = int(min(math.ceil((want / eff - n_total) * 1.25) + 1, 4 * n_total))
        v = self._per_point_values(parts)
        ch = v["channels"]
        counts = np.bincount(ch, minlength=trainer.n_channels)
        vals = torch.as_tensor(v["value"])
        cht = torch.as_tensor(ch)
        s1 = torch.zeros(trainer.n_channels, dtype=torch.float64).index_add_(0, cht, vals)
        s2 = torch.zeros(trainer.n_channels, dtype=torch.float64).index_add_(0, cht, vals * vals)
        sa = torch.zeros(trainer.n_channels, dtype=torch.float64).index_add_(0, cht, vals.abs())
        mean, err2 = combine_channels(s1, s2, torch.as_tensor(counts))
        absmean = torch.where(torch.as_tensor(counts) > 0, sa / torch.as_tensor(counts).clamp_min(1), 0.0 * sa)
        w = v["weight"]
        over = float(np.mean(np.abs(w) > w_max)) if w.size and w_max > 0 else 0.0
        res = SampleResult(
            r=v["r"], channels=ch, weight=w, momenta=v["momenta"],
            channel_integrals=mean.numpy(), channel_abs_integrals=absmean.numpy(),
            channel_errors=np.sqrt(err2.numpy()), channel_points=counts,
            cross=float(mean.sum()), error=float(math.sqrt(float(err2.sum()))), w_max=float(w_max),
            efficiency=float(eff), efficiency_bootstrap=float(eff_boot), overweight_fraction=over,
            n_calls=trainer.calls["integration"] - calls0,
            time_s=time.perf_counter() - t0,
        )
        self.sample_result = res
        logger.info("MadNIS: sigma = %.6g +- %.3g pb (refine phase, %d points), efficiency %.4f (w_max with %g "
                    "truncation; bootstrap-median w_max: %.4f)", res.cross, res.error, len(w), res.efficiency, trunc,
                    res.efficiency_bootstrap)
        return res

    @staticmethod
    def _per_point_values(parts) -> dict[str, Any]:
        """Pool rounds: v = α_c w / q (per point), event weight = v · N / N_c over all rounds."""
        r = np.concatenate([p.r.cpu().numpy() for p in parts])
        ch = np.concatenate([p.channels.cpu().numpy() for p in parts]).astype(np.int64)
        value_parts = []
        for p in parts:
            c = p.channels.cpu().numpy().astype(np.int64)
            cnt = np.bincount(c, minlength=int(c.max()) + 1 if c.size else 1)
            n = len(p)
            value_parts.append(p.weight.cpu().numpy() * cnt[c] / max(n, 1))
        value = np.concatenate(value_parts)
        counts = np.bincount(ch)
        weight = value * len(ch) / np.maximum(counts[ch], 1)
        mom = None
        if all(p.momenta is not None for p in parts):
            mom = np.concatenate([p.momenta.cpu().numpy() for p in parts])
        return {"r": r, "channels": ch, "value": value, "weight": weight, "momenta": mom}

    # ------------------------------------------------------------------------------------------ writing
    def _subprocess_event_info(self, k: int) -> lhe_mod.SubprocessEventInfo:
        sp = self.process.info.subprocesses[k]
        colour = None
        if sp.path:
            les = lhe_mod.read_leshouche(sp.path)
            pdg, flow = les.representative()
            if flow is not None and (pdg is None or tuple(pdg[: sp.n_external]) == tuple(sp.pdg[: sp.n_external])):
                colour = tuple(tuple(x) for x in flow[: sp.n_external])
        return lhe_mod.SubprocessEventInfo(
            idprup=lhe_mod.p_group_number(sp.name), n_external=sp.n_external, n_incoming=sp.n_incoming,
            pdg=tuple(sp.pdg), masses=tuple(sp.masses), ebeam=tuple(sp.ebeam), colour=colour,
        )

    def _details(self, channels: np.ndarray, r: np.ndarray, momenta: np.ndarray,
                 sub: lhe_mod.SubprocessEventInfo) -> lhe_mod.EventDetails:
        given = None
        fn = getattr(self.process, "event_details", None)
        if fn is not None:
            # the bridge (ABI 2): flavour, mirror, colour, helicities, x1/x2, SCALUP, AQCDUP, lab momenta and the
            # record with resonances, for exactly these (channel, r) points; with use_syst also MadEvent's <mgrwt>
            raw = None
            if self.s.use_syst and getattr(self.process, "has_syst_details", False) and self.syst_ok is not False:
                try:
                    raw = fn(channels, r, syst=True)
                    self.syst_ok = True
                except InvalidInput as exc:  # e.g. use_syst off in the compiled run_card.inc
                    logger.warning("MadNIS: no <mgrwt> information from the bridge (%s)", exc)
                    self.syst_ok = False
            if raw is None:
                raw = fn(channels, r)
            # counted like any other integrand call (MadEvent writes its events from the integration points)
            self.n_calls_events += len(channels) * self._detail_passes(syst=getattr(raw, "syst", None) is not None)
            given = lhe_mod.details_from_process(raw, sub.n_external, aqed=self.s.aqed)
        return lhe_mod.fallback_details(momenta, sub, aqed=self.s.aqed, aqcd=self.s.aqcd, given=given)

    def _handover_threshold(self, res: SampleResult) -> float:
        """Partial-unweighting threshold for the events handed to MG5: w_max, raised to Σ|w| / (event_factor ×
        nevents) when the sample holds more than that many unweighted events (then every handed event carries that
        weight), so MG5 gets about event_factor × nevents candidates, as from MadEvent's refine, and no event's
        details (one matrix-element pass each) are computed for MG5 to throw away. Unbiased for any threshold."""
        thr = float(res.w_max)
        total = float(np.abs(res.weight).sum())
        want = self.events_wanted
        if thr > 0 and want > 0 and total / thr > want:
            thr = total / want
        return thr

    def _detail_passes(self, syst: bool) -> int:
        """Matrix-element evaluations per event that :meth:`_details` costs (the process says; a process without
        ``event_detail_passes`` is taken to call one bridge function per part: details, record, systematics)."""
        passes = getattr(self.process, "event_detail_passes", None)
        if passes is not None:
            return int(passes(record=True, syst=syst))
        return 2 + int(syst)

    def write(self) -> RunSummary:
        """Write every G directory's results.dat and events.lhe (all or nothing), grids, summary, plots."""
        res = self.sample_result
        cmap = self.cmap
        me = Path(self.s.me_dir)
        rng = np.random.default_rng(self.cfg.seed + 23)
        n_ch = self.integrand.n_channels
        active = self.trainer.model.active.cpu().numpy().astype(bool)
        threshold = self._handover_threshold(res)
        kept_idx, kept_w = lhe_mod.partial_unweight(res.weight, threshold, rng)
        kept_gdir: dict[tuple[str, str], list[int]] = {}
        for j, i in enumerate(kept_idx):
            gd = cmap.gdir_of(int(res.channels[i]))
            if gd is not None:
                kept_gdir.setdefault(gd, []).append(j)
        n_gdirs = max(len(cmap.gdirs), 1)
        timing = (self.trainer.train_time_s + res.time_s) / n_gdirs
        faked: set[str] = set()
        self.status("MadNIS: writing events and results for MG5")
        group = lhe_mod.AtomicGroup()
        try:
            for pdir, tag in cmap.gdirs:
                gpath = me / "SubProcesses" / pdir / f"G{tag}"
                chans = cmap.channels_of(pdir, tag)
                sel = kept_gdir.get((pdir, tag), [])
                k = cmap.pdirs.index(pdir)
                events_text = ""
                if sel and res.momenta is not None:
                    sel = np.asarray(sel)
                    idx = kept_idx[sel]
                    sub = self._subprocess_event_info(k)
                    det = self._details(res.channels[idx], res.r[idx], res.momenta[idx], sub)
                    faked.update(det.faked)
                    events_text = lhe_mod.format_events(res.momenta[idx], kept_w[sel], sub, det)
                n_written = len(sel)
                ci = [c for c in chans if active[c]]
                gres = gresult_from_channels(
                    res.channel_integrals[ci], res.channel_errors[ci], res.channel_abs_integrals[ci],
                    res.channel_points[chans], n_written, threshold, res.efficiency, res.w_max, timing,
                )
                group.stage(gpath / "results.dat", format_results_dat(gres), compress=False)
                if events_text:
                    group.stage(gpath / "events.lhe", events_text, compress=False)
                elif (gpath / "events.lhe").exists():
                    (gpath / "events.lhe").unlink()
            group.commit()
        except BaseException:
            group.abort()
            raise
        self.faked = sorted(faked)
        if self.s.options.plugin["write_grids"]:
            try:
                from .grids import write_back_grids  # noqa: PLC0415

                counts = write_back_grids(me, cmap, self.integrand.groups,
                                          self.trainer.model.vegas.edges.detach().cpu().numpy(), active,
                                          self._n_dims_of_channel)
                logger.info("MadNIS: grids written for %d G directories, %d marked dropped", counts["written"],
                            counts["dropped"])
            except ImportError as exc:  # bridge gridfile missing
                logger.warning("MadNIS: grids not written (%s)", exc)
        dropped = [c for c in range(n_ch) if not active[c]]
        self.summary = RunSummary(
            run_name=self.s.run_name, cross=res.cross, error=res.error, unit="pb",
            nevents_requested=self.s.nevents, n_weighted=int(res.weight.shape[0]), n_handed_to_mg5=int(len(kept_idx)),
            unweighting_efficiency=res.efficiency, unweighting_efficiency_bootstrap=res.efficiency_bootstrap,
            w_max=res.w_max, overweight_fraction=res.overweight_fraction,
            n_calls_training=int(self.trainer.n_calls_training), n_calls_integration=int(res.n_calls),
            n_steps=int(self.trainer.step), train_time_s=float(self.trainer.train_time_s),
            sample_time_s=float(res.time_s), n_channels=n_ch, active_channels=[c for c in range(n_ch) if active[c]],
            dropped_channels=dropped, channel_names=list(self.integrand.channel_names),
            channel_integrals=[float(x) for x in res.channel_integrals],
            channel_errors=[float(x) for x in res.channel_errors],
            checkpoint=str(self.s.checkpoint_path), resumed_from=self.resumed_from,
            auto_stop_history=self.auto_stop.history if self.auto_stop is not None else [],
            faked_event_fields=self.faked, config=self.cfg.to_dict(), n_calls_events=int(self.n_calls_events),
        )
        if self.faked:
            logger.warning("MadNIS: event record fields filled with fallbacks (the bridge does not provide them): %s",
                           "; ".join(self.faked))
        return self.summary

    def write_report(self, *, plots: bool | None = None, diag_points: int = 4000) -> RunSummary:
        """Plots (PNG in HTML/<run>/), the JSON summary in Events/<run>/; returns the summary."""
        s = self.summary
        plots = self.s.options.plugin["plots"] if plots is None else plots
        if plots:
            try:
                from . import plots as plots_mod  # noqa: PLC0415

                s.plots, s.prior_channel_integrals = plots_mod.write_run_plots(
                    self.trainer, self.sample_result, self.s.html_dir, diag_points=diag_points, summary=s)
            except Exception as exc:  # noqa: BLE001 - plots must never break a run
                logger.warning("MadNIS: plots not written: %s", exc)
        lhe_mod.atomic_write_text(self.s.run_dir / SUMMARY_NAME, s.to_json())
        return s

    def run(self) -> RunSummary:
        """open → train → sample → write → report; the process is closed in any case."""
        try:
            self.open()
            self.train()
            self.sample()
            self.write()
            return self.write_report()
        finally:
            self.close()


class AutoStop:
    """Stop training once it no longer pays for itself in matrix-element calls (``madnis_auto_stop``).

    Every ``check_every`` steps (from ``min_steps`` on) the unweighting efficiency of the current model is estimated
    from the event weights of the last ``window`` online batches (w_max by the ``trunc`` overflow rule), giving the
    calls still needed to generate ``want`` events, G = want / ε. Training stops when, at two checks in a row, G fell
    by less than the training calls spent since the previous check: the next steps would cost more calls than they
    save.
    """

    def __init__(self, want: float, trunc: float, check_every: int = 50, min_steps: int = 100, window: int = 30):
        from collections import deque  # noqa: PLC0415

        self.want, self.trunc = float(want), float(trunc)
        self.check_every, self.min_steps = int(check_every), int(min_steps)
        self.batches: deque = deque(maxlen=int(window))
        self.seen_online = -1
        self.prev: tuple[float, int] | None = None  # (G, training calls) at the previous check
        self.strikes = 0
        self.history: list[dict[str, float]] = []

    def __call__(self, trainer) -> bool:
        import torch  # noqa: PLC0415

        from madnis_plugin.core.integrator import truncated_wmax  # noqa: PLC0415

        if trainer.online_steps != self.seen_online and trainer.last_event_weights is not None:
            self.seen_online = trainer.online_steps
            self.batches.append(trainer.last_event_weights)
        if trainer.step < self.min_steps or trainer.step % self.check_every or not self.batches:
            return False
        w = torch.cat(list(self.batches)).abs()
        w_max = truncated_wmax(w, self.trunc)
        eps = float(w.mean()) / w_max if w_max > 0 else 0.0
        calls = int(trainer.n_calls_training)
        g = self.want / eps if eps > 0 else math.inf
        self.history.append({"step": trainer.step, "eps": eps, "calls_to_generate": g, "training_calls": calls})
        if self.prev is not None:
            saved, spent = self.prev[0] - g, calls - self.prev[1]
            self.strikes = self.strikes + 1 if saved < spent else 0
        self.prev = (g, calls)
        if self.strikes >= 2:
            logger.info("MadNIS: training stopped at step %d: the last %d steps saved fewer generation calls than "
                        "they cost (estimated efficiency %.3f, %d calls for the events)", trainer.step,
                        self.check_every, eps, int(g))
            return True
        return False


class _ProgressReporter:
    """Log progress with ETA every 10 % (besides tqdm's bar) and feed MG5's status line."""

    def __init__(self, what: str, target: int, start: int, status: Callable[[str], None]):
        self.what, self.target, self.start, self.status = what, target, start, status
        self.t0 = time.perf_counter()
        self.next = start
        self.step = max(1, (target - start) // 10)

    def __call__(self, trainer) -> None:
        s = trainer.step
        if s < self.next and s < self.target:
            return
        self.next = s + self.step
        done = s - self.start
        el = time.perf_counter() - self.t0
        eta = el / done * (self.target - s) if done > 0 else float("nan")
        loss = trainer.history.loss[-1] if trainer.history.loss else float("nan")
        msg = (f"{self.what}: step {s}/{self.target}, loss {loss:.4g}, "
               f"{int(trainer.model.active.sum())} channels active, elapsed {_fmt_time(el)}, ETA {_fmt_time(eta)}")
        logger.info(msg)
        self.status(msg)


def _fmt_time(t: float) -> str:
    if not math.isfinite(t):
        return "?"
    t = int(round(t))
    h, rem = divmod(t, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


# ================================================================================================== MG5 side
def _module_of(cmd, mod=None):
    if mod is not None:
        return mod
    for klass in type(cmd).__mro__:
        m = sys.modules.get(klass.__module__)
        if m is not None and hasattr(m, "gen_ximprove") and hasattr(m, "banner_mod"):
            return m
    raise RuntimeError("cannot find MG5's madevent_interface module for this interface")


#: requests from the MadNIS shell commands for the next survey of a process directory (realpath -> dict with
#: 'checkpoint' (Path) and 'train' (bool)); consumed by the patched do_survey. Works from both shells.
PENDING: dict[str, dict] = {}


def request_next_survey(me_dir, **request) -> None:
    PENDING[os.path.realpath(str(me_dir))] = request


REQUEST_ENV = "MADNIS_REQUEST"


def take_request(me_dir) -> dict | None:
    """The pending request for ``me_dir``: from :func:`request_next_survey` (same process) or from the environment
    variable ``MADNIS_REQUEST`` (JSON ``{"checkpoint": path, "train": false}``, set by ``madnis-mg5 generate`` for a
    ``bin/madevent`` subprocess); either is consumed by the first survey."""
    req = PENDING.pop(os.path.realpath(str(me_dir)), None)
    if req is None and os.environ.get(REQUEST_ENV):
        import json  # noqa: PLC0415

        raw = os.environ.pop(REQUEST_ENV)
        try:
            req = json.loads(raw)
        except ValueError:
            raise RunCardError(f"environment variable {REQUEST_ENV} is not valid JSON: {raw!r}") from None
        if req.get("checkpoint"):
            req["checkpoint"] = Path(req["checkpoint"])
    return req


def card_options(cmd, mod=None, *, force_enable: bool = False) -> MadnisCardOptions | None:
    """Read ``Cards/run_card.dat`` afresh and return the validated options, or None when ``madnis`` is off."""
    from .cards import is_enabled, parse_entries  # noqa: PLC0415

    mod = _module_of(cmd, mod)
    card = mod.banner_mod.RunCard(os.path.join(cmd.me_dir, "Cards", "run_card.dat"), consistency=False)
    keys = [k for k in card.keys() if str(k).startswith("madnis")]
    user_set = getattr(card, "user_set", None)
    if user_set is not None:  # only what the card sets: the registered defaults must not override ours
        keys = [k for k in keys if k in user_set]
    entries = {k: card[k] for k in keys}
    if not force_enable and not is_enabled(entries):
        return None
    defaults: dict[str, Any] = {"progress": bool(sys.stderr.isatty())}
    opts = parse_entries(entries, defaults=defaults)
    return dataclasses.replace(opts, enabled=True) if force_enable else opts


def _n_workers(cmd, opts: MadnisCardOptions) -> int:
    n = int(opts.plugin.get("workers", 0))
    if n > 0:
        return n
    o = getattr(cmd, "options", {}) or {}
    if o.get("run_mode") == 2:
        nb = o.get("nb_core") or os.cpu_count() or 1
        return max(1, int(nb))
    return 1


def _prepare_directory(cmd, mod) -> dict[str, list[str]]:
    """MG5's survey preparation without the survey jobs: compile, helicity files, gensym (channel list)."""
    me = cmd.me_dir
    subproc = [ln.strip() for ln in open(os.path.join(me, "SubProcesses", "subproc.mg")) if ln.strip()]
    # helicity recycling needs MadEvent's own survey (madevent_forhel); use the plain matrix elements instead
    for p in subproc:
        pdir = os.path.join(me, "SubProcesses", p)
        for f in mod.misc.glob("matrix*_orig.f", pdir):
            mod.files.cp(f, f.replace("_orig", "_optim"))
            obj = "%s.o" % f[:-2]
            if os.path.exists(obj):
                mod.files.cp(obj, obj.replace("_orig", "_optim"))
        sel = os.path.join(pdir, "Hel", "selection")
        if os.path.exists(sel):
            os.remove(sel)
    creator = mod.gen_ximprove.gensym(cmd)
    job_list, zero = creator.launch(to_submit=False)
    if zero and len(zero) == len(subproc):
        raise mod.ZeroResult(open(os.path.join(me, "SubProcesses", subproc[0], "ajob.no_ps.log")).read())
    for pdir, tags in job_list.items():
        for t in tags:
            g = os.path.join(pdir, "G%s" % t)
            os.makedirs(g, exist_ok=True)
            for stale in ("events.lhe", "results.dat"):
                if os.path.exists(os.path.join(g, stale)):
                    os.remove(os.path.join(g, stale))
    if zero:
        cmd.get_Gdir()
        for P in zero:
            cmd.Gdirs[0][os.path.join(me, "SubProcesses", P)] = []
    return job_list


def run_madnis_survey(cmd, line: str, opts: MadnisCardOptions, mod=None, *, process_factory=None,
                      load_checkpoint: Path | None = None, train: bool = True) -> RunSummary:
    """The body of the patched ``do_survey`` when ``madnis = True`` (see module docstring)."""
    mod = _module_of(cmd, mod)
    args = cmd.split_arg(line)
    cmd.check_survey(args)
    from .cards import check_mg5_settings  # noqa: PLC0415

    check_mg5_settings(cmd.run_card, ninitial=getattr(cmd, "ninitial", 2))
    ckpt_in = load_checkpoint or resolve_checkpoint(Path(cmd.me_dir), opts.checkpoint)
    if os.path.exists(os.path.join(cmd.me_dir, "error")):
        os.remove(os.path.join(cmd.me_dir, "error"))
    cmd.configure_directory()
    cmd.random_orig = cmd.random
    logger.info("Using random number seed offset = %s", cmd.random)
    cmd.update_random()
    cmd.save_random()
    if "seed" not in {k[len("madnis_"):] for k in opts.given}:
        opts = dataclasses.replace(opts, config=opts.config.replace(seed=int(cmd.random)))
    cmd.update_status("MadNIS: preparing the process directory", level=None)
    logger.info("MadNIS replaces survey + refine (%s)", "saved model, no training" if not train else "madnis = True")
    _prepare_directory(cmd, mod)
    try:
        use_syst = bool(cmd.run_card["use_syst"])
    except (KeyError, TypeError):
        use_syst = False
    aqed, aqcd = read_couplings(Path(cmd.me_dir))
    settings = LaunchSettings(
        me_dir=Path(cmd.me_dir), run_name=cmd.run_name, nevents=int(cmd.run_card["nevents"]), options=opts,
        n_workers=_n_workers(cmd, opts), aqed=aqed, aqcd=aqcd, load_checkpoint=ckpt_in, train=train,
        use_syst=use_syst,
    )

    def status(text: str) -> None:
        try:
            cmd.update_status(text, level=None, update_results=False)
        except Exception:  # noqa: BLE001 - status display is best effort
            pass

    run = MadnisRun(settings, process_factory=process_factory, status=status)
    try:
        run.run()
    except KeyboardInterrupt:
        if settings.checkpoint_path.exists():
            rel = os.path.relpath(settings.checkpoint_path, cmd.me_dir)
            logger.warning("MadNIS interrupted: the model is saved in %s. To resume, set in the run card\n"
                           "    %s = madnis_checkpoint", settings.checkpoint_path, rel)
        raise
    summary = run.summary
    if use_syst and not run.syst_ok:
        # MG5's systematics step would stop on events without <mgrwt> (a process without the bridge's
        # mb_syst_details, or use_syst off when the bridge was compiled)
        logger.warning("MadNIS: the events carry no <mgrwt> block (systematics information); use_syst is switched "
                       "off for this run")
        cmd.run_card["use_syst"] = False
    cmd._madnis_done_run = cmd.run_name
    cross, error = cmd.make_make_all_html_results()
    cmd.results.add_detail("cross", cross)
    cmd.results.add_detail("error", error)
    add_html(settings, summary)
    cmd.exec_cmd("print_results %s" % cmd.run_name, errorhandling=False, printcmd=False, precmd=False,
                 postcmd=False)
    cmd.results.add_detail("run_statistics", {})
    cmd.update_status("End MadNIS", "parton", makehtml=False)
    if abs(cross - summary.cross) > 1e-4 * max(abs(cross), 1e-300):  # results.dat keeps 5 digits
        logger.warning("MadNIS: MG5 sums %.6g pb over the G directories, MadNIS estimated %.6g pb", cross,
                       summary.cross)
    return summary


#: refine_evt_by_job used by the classic refine from MadNIS grids when the run card leaves MG5's default (-1): MG5
#: splits a channel needing more than 1000 events into jobs G<tag>a0, G<tag>b0, ... that start from MadEvent's default
#: grid (refine.sh copies G<tag>/ftn26 into them only when keep_grid_for_refine), i.e. the hand-back would be unused
REFINE_EVT_BY_JOB = 1_000_000_000


def _zero_event_counts(text: str) -> str:
    """results.dat with nw, nunwgt, luminosity and th_nunwgt (columns 5, 7, 8, 13 of line 1) set to 0, rest kept."""
    lines = text.split("\n")
    cols = lines[0].split()
    for i in (4, 6, 12):
        if i < len(cols):
            cols[i] = "0"
    if len(cols) > 7:
        cols[7] = "0.00000E+00"
    lines[0] = " " + " ".join(cols)
    return "\n".join(lines)


def prepare_classic_refine(cmd, line: str, mod=None) -> dict:
    """``madnis_refine``: replaces the survey of a classic run by what an earlier MadNIS run left in the G directories.

    MadEvent's survey starts every channel from its default grid (``survey.sh`` deletes ftn25/ftn26) and gensym deletes
    results.dat; the refine reads ``G<tag>/results.dat`` (σ per channel, which channels need events) and, for a channel
    run as one job, ``G<tag>/ftn26`` (``refine.sh``: ftn26 -> ftn25, fixed grid). So the classic run that uses the MadNIS
    grids is: no survey, the MadNIS ``results.dat`` with the event counts set to zero (so that every channel with σ > 0
    is refined by MadEvent, not served by MadNIS's events, which are removed), G directories marked ``madnis_dropped``
    keep σ = 0 (never refined), ``refine_evt_by_job`` large unless the run card sets it (one job per channel, see
    :data:`REFINE_EVT_BY_JOB`), then MG5's own refine / combine_events / store_events. Returns counts.
    """
    from .grids import DROPPED_MARKER  # noqa: PLC0415
    from .results import parse_results_dat  # noqa: PLC0415

    mod = _module_of(cmd, mod)
    args = cmd.split_arg(line)
    cmd.check_survey(args)
    me = Path(cmd.me_dir)
    if (me / "error").exists():
        (me / "error").unlink()
    subproc = [ln.strip() for ln in open(me / "SubProcesses" / "subproc.mg") if ln.strip()]
    gdirs = [g for p in subproc for g in sorted((me / "SubProcesses" / p).glob("G*"))
             if re.fullmatch(r"G[0-9.]+", g.name) and g.is_dir()]
    missing = [str(g.relative_to(me)) for g in gdirs if not (g / "results.dat").is_file()]
    if not gdirs or missing:
        raise cmd.InvalidCmd("madnis_refine needs the G directories of an earlier MadNIS run (launch with madnis = True "
                             "and madnis_write_grids = True); no results.dat in "
                             + (", ".join(missing[:5]) if missing else "SubProcesses/P*/G*"))
    cmd.configure_directory()
    cmd.random_orig = cmd.random
    cmd.update_random()
    cmd.save_random()
    counts = {"refined": 0, "with_grid": 0, "dropped": 0}
    for g in gdirs:
        text = (g / "results.dat").read_text()
        if (g / DROPPED_MARKER).exists() or parse_results_dat(text).axsec == 0:
            counts["dropped"] += 1
            continue
        (g / "results.dat").write_text(_zero_event_counts(text))
        for stale in ("events.lhe", "ftn25"):
            if (g / stale).exists():
                (g / stale).unlink()
        counts["refined"] += 1
        counts["with_grid"] += int((g / "ftn26").is_file())
    for p in subproc:
        cmd.compile(["madevent"], cwd=str(me / "SubProcesses" / p))
    try:
        by_job = int(cmd.run_card["refine_evt_by_job"])
    except (KeyError, TypeError, ValueError):
        by_job = -1
    if by_job == -1:
        cmd.run_card["refine_evt_by_job"] = REFINE_EVT_BY_JOB
        by_job = REFINE_EVT_BY_JOB
    counts["refine_evt_by_job"] = by_job
    logger.info("MadNIS: classic refine from the MadNIS grids: %d channels (%d with a MadNIS grid G*/ftn26), %d dropped "
                "(sigma = 0, not refined); refine_evt_by_job = %d", counts["refined"], counts["with_grid"],
                counts["dropped"], by_job)
    cross, error = cmd.make_make_all_html_results()
    cmd.results.add_detail("cross", cross)
    cmd.results.add_detail("error", error)
    cmd.results.add_detail("run_statistics", {})
    return counts


def train_only(cmd, opts: MadnisCardOptions, mod=None, *, run_name: str | None = None,
               load_checkpoint: Path | None = None, n_steps: int | None = None, process_factory=None) -> Path:
    """``madnis_train``: prepare the directory, train (or resume) and save the model; no events, no results."""
    mod = _module_of(cmd, mod)
    if run_name:
        cmd.set_run_name(run_name, None, "parton", True)
    elif not getattr(cmd, "run_name", None):
        cmd.set_run_name(cmd.find_available_run_name(cmd.me_dir), None, "parton")
    ckpt_in = load_checkpoint or resolve_checkpoint(Path(cmd.me_dir), opts.checkpoint)
    from .cards import repair_process_dir  # noqa: PLC0415

    repair_process_dir(cmd.me_dir)
    cmd.configure_directory()
    if "seed" not in {k[len("madnis_"):] for k in opts.given}:
        opts = dataclasses.replace(opts, config=opts.config.replace(seed=int(cmd.random)))
    if n_steps is not None:
        opts = dataclasses.replace(opts, config=opts.config.replace(n_steps=int(n_steps)))
    _prepare_directory(cmd, mod)
    settings = LaunchSettings(me_dir=Path(cmd.me_dir), run_name=cmd.run_name, nevents=1, options=opts,
                              n_workers=_n_workers(cmd, opts), load_checkpoint=ckpt_in)
    run = MadnisRun(settings, process_factory=process_factory)
    try:
        run.open()
        run.train()
    finally:
        run.close()
    logger.info("MadNIS: model saved in %s", settings.checkpoint_path)
    return settings.checkpoint_path


def add_html(settings: LaunchSettings, summary: RunSummary) -> None:
    """Insert the MadNIS section (numbers, channel table, plots) into ``HTML/<run>/results.html``."""
    page = settings.html_dir / "results.html"
    links = [(Path(p).stem.replace("madnis_", "").replace("_", " "), Path(p).name) for p in summary.plots]
    section = html_section(summary, links)
    text = page.read_text(errors="replace") if page.is_file() else "<html><body></body></html>"
    lhe_mod.atomic_write_text(page, insert_html_section(text, section))


def default_run_dirs(me_dir: Path) -> list[str]:
    """Run names with a MadNIS checkpoint, newest last."""
    ev = Path(me_dir) / "Events"
    if not ev.is_dir():
        return []
    runs = [d for d in ev.iterdir() if (d / CHECKPOINT_NAME).is_file()]
    runs.sort(key=lambda d: (d / CHECKPOINT_NAME).stat().st_mtime)
    return [d.name for d in runs]


def natural_key(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


__all__ = [
    "LaunchSettings",
    "MadnisRun",
    "SampleResult",
    "add_html",
    "card_options",
    "read_couplings",
    "resolve_checkpoint",
    "prepare_classic_refine",
    "run_madnis_survey",
]
