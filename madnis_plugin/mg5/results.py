"""What MG5 reads after a MadNIS run: per-G-directory ``results.dat`` (+ ``events.lhe``, see lhe.py), the
channel → G-directory map, a JSON summary and the MadNIS section of the HTML results page.

G-directory contract (mg5-internals §2, §4). ``get_Gdir`` lists ``P*/G<tag>`` for every ``symfact.dat`` line with
a positive multiplicity, and ``sum_html.collect_result`` reads ``G<tag>/results.dat`` of each of them (a missing
file is an error), so every listed G directory gets a ``results.dat``: the MadNIS estimate of the channels mapped
to it, or zeros for channels that were dropped or never mapped. The first line has MG5's 13 columns::

    axsec xerru xerrc nevents nw maxit nunwgt luminosity wgt xsec maxwgt th_maxwgt th_nunwgt

then one iteration line ``1 xsec xerr eff wmax axsec`` and ``<lo_statistics>`` with the time spent, exactly as
``sum_html.Combine_results.write_results_dat`` formats them.

Channel → G directory: the bridge reports for every channel the MG5 diagram it maps (``MAPCONFIG``, also the
``symfact.dat`` tag for ungrouped and grouped output alike). A channel goes to ``G<d>`` or ``G<d>.<bw code>`` (the
first positive-multiplicity tag with integer part d); a channel whose tag has a negative multiplicity −m is a
symmetric copy of diagram m and goes to m's G directory (MadEvent integrates copies inside that G directory);
a channel with no tag (removed by gensym) goes to the first G directory of its P-directory, so no cross section is
lost. Several channels in one G directory add up (σ sum, errors in quadrature).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np


# ---------------------------------------------------------------------------------------------------- symfact
def read_symfact(pdir: str | Path) -> list[tuple[str, int]]:
    """``(tag, multiplicity)`` lines of ``symfact.dat`` (``symfact_orig.dat`` if gensym has not run)."""
    pdir = Path(pdir)
    for name in ("symfact.dat", "symfact_orig.dat"):
        f = pdir / name
        if f.is_file():
            out = []
            for line in f.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    out.append((parts[0], int(float(parts[1]))))
            return out
    return []


def _diagram_of_tag(tag: str) -> int:
    return int(tag.split(".")[0])


def gdir_tags(symfact: Sequence[tuple[str, int]]) -> list[str]:
    """Tags of the G directories MG5 lists (positive multiplicity), in file order."""
    return [t for t, m in symfact if m > 0]


def tag_for_diagram(diagram: int, symfact: Sequence[tuple[str, int]]) -> str | None:
    """The G tag a channel mapping ``diagram`` belongs to (see module docstring); None if the P-dir has none."""
    positive = [t for t, m in symfact if m > 0]
    for t in positive:
        if _diagram_of_tag(t) == diagram:
            return t
    for t, m in symfact:
        if m < 0 and _diagram_of_tag(t) == diagram:
            for t2 in positive:
                if _diagram_of_tag(t2) == -m:
                    return t2
    return positive[0] if positive else None


@dataclass(frozen=True)
class ChannelMap:
    """Where every global MadNIS channel goes.

    pdirs: P-directory names, one per subprocess of the process.
    channel_pdir: subprocess index of each channel; channel_tag: G tag of each channel (None = nowhere).
    gdirs: every G directory MG5 will list, as (pdir name, tag).
    """

    pdirs: tuple[str, ...]
    channel_pdir: tuple[int, ...]
    channel_tag: tuple[str | None, ...]
    gdirs: tuple[tuple[str, str], ...]

    def channels_of(self, pdir: str, tag: str) -> list[int]:
        k = self.pdirs.index(pdir)
        return [c for c, (p, t) in enumerate(zip(self.channel_pdir, self.channel_tag)) if p == k and t == tag]

    def gdir_of(self, channel: int) -> tuple[str, str] | None:
        t = self.channel_tag[channel]
        return None if t is None else (self.pdirs[self.channel_pdir[channel]], t)


def build_channel_map(subprocesses: Sequence, me_dir: str | Path) -> ChannelMap:
    """From the process's ``info.subprocesses`` (name, path, channel_diagram) and each P-dir's ``symfact.dat``."""
    me_dir = Path(me_dir)
    pdirs, ch_p, ch_t, gdirs = [], [], [], []
    for k, sp in enumerate(subprocesses):
        pdir = Path(sp.path) if getattr(sp, "path", None) else me_dir / "SubProcesses" / sp.name
        sym = read_symfact(pdir)
        pdirs.append(pdir.name)
        for t in gdir_tags(sym):
            gdirs.append((pdir.name, t))
        for d in sp.channel_diagram:
            ch_p.append(k)
            ch_t.append(tag_for_diagram(int(d), sym))
    return ChannelMap(tuple(pdirs), tuple(ch_p), tuple(ch_t), tuple(gdirs))


# ---------------------------------------------------------------------------------------------------- results.dat
@dataclass
class GResult:
    """One G directory's line of results (MG5 column names)."""

    axsec: float = 0.0
    xerru: float = 0.0
    xerrc: float = 0.0
    nevents: int = 0
    nw: int = 0
    maxit: int = 1
    nunwgt: int = 0
    luminosity: float = 0.0
    wgt: float = 0.0
    xsec: float = 0.0
    maxwgt: float = 0.0
    th_maxwgt: float = 0.0
    th_nunwgt: int = 0
    eff: float = 0.0  # iteration line: ⟨w⟩/w_max of this G directory
    wmax: float = 0.0
    timing: float = 0.0


def _fstr(x: float) -> str:
    """MG5's results.dat number format (sum_html fstr): 0.12345E+03."""
    if not math.isfinite(x):
        x = 0.0
    data = "%E" % x
    mant, power = data.split("E")
    return "%.5fE%+03i" % (float(mant) / 10.0, int(power) + 1)


def format_results_dat(r: GResult) -> str:
    line = "%s %s %s %i %i %i %i %s %s %s %s %s %i\n" % (
        _fstr(r.axsec), _fstr(r.xerru), _fstr(r.xerrc), r.nevents, r.nw, r.maxit, r.nunwgt, _fstr(r.luminosity),
        _fstr(r.wgt), _fstr(r.xsec), _fstr(r.maxwgt), _fstr(r.th_maxwgt), r.th_nunwgt,
    )
    line += "%s %s %s %s %s %s\n" % (1, repr(float(r.xsec)), repr(float(r.xerru)), repr(float(r.eff)),
                                     repr(float(r.wmax)), repr(float(r.axsec)))
    line += "<lo_statistics>\n<cumulated_time> %s </cumulated_time>\n</lo_statistics>\n" % float(r.timing)
    return line


def parse_results_dat(text: str) -> GResult:
    """Read back the first line (tests and ``madnis_channels``)."""
    first = text.splitlines()[0].split()
    vals = [float(x) for x in first]
    r = GResult()
    (r.axsec, r.xerru, r.xerrc) = vals[0:3]
    r.nevents, r.nw, r.maxit, r.nunwgt = (int(v) for v in vals[3:7])
    r.luminosity, r.wgt, r.xsec = vals[7:10]
    if len(vals) > 10:
        r.maxwgt = vals[10]
    if len(vals) > 12:
        r.th_maxwgt, r.th_nunwgt = vals[11], int(vals[12])
    return r


def gresult_from_channels(integrals, errors, abs_integrals, n_points, n_written, threshold, eff, wmax,
                          timing: float = 0.0) -> GResult:
    """Combine the channels of one G directory (σ sum, errors in quadrature)."""
    xsec = float(np.sum(integrals))
    axsec = float(np.sum(abs_integrals))
    err = float(math.sqrt(np.sum(np.square(errors))))
    lum = n_written / axsec if axsec > 0 else 0.0
    return GResult(axsec=axsec, xerru=err, nevents=int(np.sum(n_points)), nw=int(n_written), nunwgt=int(n_written),
                   luminosity=lum, wgt=float(threshold), xsec=xsec, maxwgt=float(threshold),
                   th_maxwgt=float(threshold), th_nunwgt=int(n_written), eff=float(eff), wmax=float(wmax),
                   timing=float(timing))


# ---------------------------------------------------------------------------------------------------- summary
@dataclass
class RunSummary:
    """What a MadNIS run reports; saved as ``Events/<run>/madnis_results.json`` and shown in the HTML."""

    run_name: str
    cross: float
    error: float
    unit: str
    nevents_requested: int
    n_weighted: int
    n_handed_to_mg5: int
    unweighting_efficiency: float  # with the w_max used for the events (madnis_unweight_trunc)
    w_max: float
    overweight_fraction: float
    n_calls_training: int
    n_calls_integration: int
    n_steps: int
    train_time_s: float
    sample_time_s: float
    n_channels: int
    active_channels: list[int]
    dropped_channels: list[int]
    channel_names: list[str]
    channel_integrals: list[float]
    channel_errors: list[float]
    prior_channel_integrals: list[float] = field(default_factory=list)
    unweighting_efficiency_bootstrap: float = 0.0  # with the bootstrap median of the maximum weight
    auto_stop_history: list[dict] = field(default_factory=list)  # madnis_auto_stop checks (step, ε, calls)
    checkpoint: str = ""
    resumed_from: str = ""
    faked_event_fields: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    # matrix-element evaluations spent on the events handed to MG5 (flavour, colour, helicity, record, <mgrwt>):
    # one per event with the MG5 shim's mb_event_full, otherwise one per event and bridge function
    n_calls_events: int = 0
    config: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True, default=float)

    @classmethod
    def from_json(cls, text: str) -> "RunSummary":
        d = json.loads(text)
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def html_section(s: RunSummary, plot_links: Sequence[tuple[str, str]] = ()) -> str:
    """The MadNIS block appended to ``HTML/<run>/results.html``."""
    rows = []
    total = s.cross if s.cross else 1.0
    order = np.argsort(-np.abs(np.asarray(s.channel_integrals))) if s.channel_integrals else []
    for c in list(order)[:50]:
        c = int(c)
        state = "dropped" if c in s.dropped_channels else "active"
        rows.append(f"<tr><td>{s.channel_names[c]}</td><td align=right>{s.channel_integrals[c]:.4g}</td>"
                    f"<td align=right>{s.channel_errors[c]:.3g}</td><td align=right>"
                    f"{100 * s.channel_integrals[c] / total:.2f}%</td><td>{state}</td></tr>")
    more = f"<p>({len(order) - 50} more channels in madnis_results.json)</p>" if len(order) > 50 else ""
    imgs = "".join(f'<p><a href="{href}"><img src="{href}" alt="{title}" width=480></a><br>{title}</p>'
                   for title, href in plot_links)
    faked = ""
    if s.faked_event_fields:
        faked = ("<p><b>Event record:</b> not provided by the bridge, filled with fallbacks: "
                 + ", ".join(s.faked_event_fields) + ".</p>")
    return f"""
<h2><a name=madnis>MadNIS</a></h2>
<table border=1 cellpadding=3>
<tr><td>Cross section (refine phase, frozen model)</td><td>{s.cross:.6g} &plusmn; {s.error:.3g} {s.unit}</td></tr>
<tr><td>Unweighting efficiency &epsilon; = &lt;w&gt;/w<sub>max</sub></td><td>{s.unweighting_efficiency:.4f}
 (w<sub>max</sub> with the madnis_unweight_trunc overflow rule, as MadEvent; overweight fraction
 {s.overweight_fraction:.2e}); with w<sub>max</sub> = bootstrap median of maxima: {s.unweighting_efficiency_bootstrap:.4f}</td></tr>
<tr><td>Matrix-element calls</td><td>{s.n_calls_training} training + {s.n_calls_integration} refine + {s.n_calls_events} event details</td></tr>
<tr><td>Training</td><td>{s.n_steps} steps, {s.train_time_s:.1f} s; sampling {s.sample_time_s:.1f} s</td></tr>
<tr><td>Events</td><td>{s.n_weighted} weighted &rarr; {s.n_handed_to_mg5} to MG5's unweighting &rarr;
 {s.nevents_requested} requested</td></tr>
<tr><td>Channels</td><td>{len(s.active_channels)} active, {len(s.dropped_channels)} dropped of {s.n_channels}</td></tr>
<tr><td>Model</td><td>{s.checkpoint}</td></tr>
</table>
{faked}
<table border=1 cellpadding=3><tr><th>channel</th><th>&sigma;</th><th>error</th><th>share</th><th>state</th></tr>
{''.join(rows)}
</table>{more}
{imgs}
"""


_MARK_BEGIN = "<!-- madnis begin -->"
_MARK_END = "<!-- madnis end -->"


def insert_html_section(html: str, section: str) -> str:
    """Insert (or replace) the MadNIS section before ``</body>`` of MG5's results page."""
    html = re.sub(re.escape(_MARK_BEGIN) + ".*?" + re.escape(_MARK_END), "", html, flags=re.S)
    block = f"{_MARK_BEGIN}{section}{_MARK_END}"
    if "</body>" in html:
        i = html.rfind("</body>")
        return html[:i] + block + html[i:]
    return html + block
