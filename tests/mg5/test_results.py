"""results.dat format, channel → G-directory mapping, HTML section."""

from __future__ import annotations


import pytest

from madnis_plugin.mg5 import results as R

SYM_NOGROUP = [("1", 2), ("2.2", 2), ("3.2", 2), ("4", -1), ("5", -2), ("6", -3), ("8", 2), ("9", 2),
               ("10.2", 2), ("11", -8), ("14", 2), ("15.2", 2), ("16", -14)]


def test_tag_for_diagram_rules():
    assert R.tag_for_diagram(1, SYM_NOGROUP) == "1"
    assert R.tag_for_diagram(2, SYM_NOGROUP) == "2.2"  # BW-split tag
    assert R.tag_for_diagram(4, SYM_NOGROUP) == "1"  # symmetric copy of 1
    assert R.tag_for_diagram(5, SYM_NOGROUP) == "2.2"
    assert R.tag_for_diagram(11, SYM_NOGROUP) == "8"
    assert R.tag_for_diagram(7, SYM_NOGROUP) == "1"  # removed by gensym: first G directory
    assert R.tag_for_diagram(3, []) is None
    assert R.gdir_tags(SYM_NOGROUP)[:3] == ["1", "2.2", "3.2"]


def test_channel_map_from_fake_dir(proc_dir):
    from fakes import FakeProcess

    cmap = R.build_channel_map(FakeProcess(proc_dir).info.subprocesses, proc_dir)
    assert cmap.pdirs == ("P1_qq_ll", "P2_gg_ll")
    assert cmap.channel_tag == ("1", "2", "1", "1", "2.2")
    assert cmap.gdirs == (("P1_qq_ll", "1"), ("P1_qq_ll", "2"), ("P2_gg_ll", "1"), ("P2_gg_ll", "2.2"))
    assert cmap.channels_of("P1_qq_ll", "1") == [0, 2]
    assert cmap.gdir_of(4) == ("P2_gg_ll", "2.2")


def test_results_dat_round_trip_and_mg5_format():
    g = R.gresult_from_channels([100.0, 23.5], [1.0, 2.0], [100.0, 23.5], [400, 100], 37, 3.25, 0.41, 3.25, 1.5)
    text = R.format_results_dat(g)
    first = text.splitlines()[0].split()
    assert len(first) == 13 and first[0] == "0.12350E+03"
    back = R.parse_results_dat(text)
    assert back.xsec == pytest.approx(123.5) and back.xerru == pytest.approx(5**0.5, rel=1e-4)
    assert (back.nevents, back.nunwgt, back.nw) == (500, 37, 37)
    assert back.luminosity == pytest.approx(37 / 123.5, rel=1e-3)
    assert "<cumulated_time> 1.5 </cumulated_time>" in text
    zero = R.format_results_dat(R.GResult())
    assert R.parse_results_dat(zero).xsec == 0.0


def test_html_insert_replaces_previous_section():
    s = R.RunSummary("run_01", 10.0, 0.1, "pb", 100, 1000, 120, 0.3, 2.0, 0.001, 5000, 1000, 50, 1.0, 0.5, 2,
                     [0, 1], [], ["G1", "G2"], [7.0, 3.0], [0.05, 0.05])
    html = "<html><body><p>MG5</p></body></html>"
    once = R.insert_html_section(html, R.html_section(s, [("loss", "madnis_loss.png")]))
    twice = R.insert_html_section(once, R.html_section(s))
    assert once.count("<!-- madnis begin -->") == 1 and twice.count("<!-- madnis begin -->") == 1
    assert "madnis_loss.png" in once and "madnis_loss.png" not in twice
    assert twice.index("madnis begin") < twice.index("</body>")
    assert R.RunSummary.from_json(s.to_json()) == s
