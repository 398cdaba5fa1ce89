"""The MG5 bridge against a real MG5_aMC 3.5.x (marked ``mg5``; skipped with a reason when ``MG5_HOME`` is unset).

Process directories are generated and launched once with fast settings (nevents 1000, fixed iseed) and cached in
``$MADNIS_MG5_TEST_CACHE`` (default ``<tmp>/madnis_mg5_test_cache/<MG5 version>``); a cached directory is reused
while its generation script is unchanged. Every random number is seeded, so each comparison below gives the same
numbers on every run; thresholds are 4 combined standard deviations (the values seen are quoted in the asserts).

What is checked:
  * per channel, the integral of alpha[channel] * weight over flat r matches MadEvent's G-directory result, and the
    sum over channels matches MadEvent's total (p p > e+ e-, grouped u d~ > w+ w+ w-);
  * symmetric copies (channel groups) add up to the G directory that folds them in;
  * determinism: the same (channel, r) gives bit-identical outputs whatever the batch order or worker process;
  * outputs: alpha rows sum to 1, momentum conservation, on-shell masses, status codes;
  * the frozen channel (MB_ERR_CHANNEL), an intercepted Fortran STOP (MB_ERR_STOP), the build cache and a
    compile failure that reports the compiler output.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from madnis_plugin.bridge import mg5build
from madnis_plugin.bridge.build import file_lock
from madnis_plugin.bridge.process import load_process

pytestmark = pytest.mark.mg5

REPO = Path(__file__).resolve().parents[2]

PROCESSES = {
    "ppee": "generate p p > e+ e-",
    "www_group": "generate u d~ > w+ w+ w-",
}
LAUNCH_SETTINGS = ["set nevents 1000", "set iseed 31", "set use_syst False"]


# ------------------------------------------------------------------------------------------------ process dirs
def _mg5_home() -> Path:
    return Path(os.environ["MG5_HOME"]).expanduser().resolve()


def _cache_root() -> Path:
    env = os.environ.get("MADNIS_MG5_TEST_CACHE")
    if env:
        root = Path(env)
    else:
        version = (_mg5_home() / "VERSION").read_text().split("version =")[-1].split()[0].strip()
        root = Path(tempfile.gettempdir()) / "madnis_mg5_test_cache" / version
    root.mkdir(parents=True, exist_ok=True)
    return root


def _run_mg5(script: str, cwd: Path) -> None:
    f = cwd / f"mg5_script_{os.getpid()}.txt"
    f.write_text(script)
    proc = subprocess.run(
        [sys.executable, str(_mg5_home() / "bin" / "mg5_aMC"), str(f)], cwd=cwd, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL, timeout=3600,
    )
    f.unlink()
    if proc.returncode != 0 or "Error" in proc.stdout.split("Type \"launch\"")[0][-3000:]:
        raise RuntimeError(f"MG5 failed:\n{proc.stdout[-5000:]}")


def generated_process(name: str) -> Path:
    """The launched process directory for PROCESSES[name] (generated once, then cached)."""
    root = _cache_root()
    me = root / name
    script = "\n".join(
        ["set auto_update 0 --no_save", "set automatic_html_opening False --no_save", PROCESSES[name],
         f"output madevent {me} -nojpeg", f"launch {me}", "0", *LAUNCH_SETTINGS, "0"]
    ) + "\n"
    tag = hashlib.sha256(script.encode()).hexdigest()
    done = root / f"{name}.done"
    with file_lock(root / f"{name}.lock"):
        if not (done.is_file() and done.read_text() == tag and me.is_dir()):
            if me.exists():
                shutil.rmtree(me)
            done.unlink(missing_ok=True)
            _run_mg5(script, root)
            if not list((me / "SubProcesses").glob("P*/G*/results.dat")):
                raise RuntimeError(f"MG5 launch of {name} left no G*/results.dat")
            done.write_text(tag)
    return me


def p_dir_of(me: Path) -> Path:
    (p,) = [p for p in (me / "SubProcesses").glob("P*") if (p / "configs.inc").is_file()]
    return p


def madevent_channels(p: Path) -> dict[int, tuple[float, float]]:
    """{diagram of the G tag: (xsec, error)} summed over B.W. sub-tags (G2.1, G2.2, ...)."""
    out: dict[int, list[float]] = {}
    for g in p.glob("G*"):
        first = (g / "results.dat").read_text().split("\n")[0].split()
        diag = int(g.name[1:].split(".")[0])
        x, e = float(first[9]), float(first[1])
        acc = out.setdefault(diag, [0.0, 0.0])
        acc[0] += x
        acc[1] += e * e
    return {d: (v[0], float(np.sqrt(v[1]))) for d, v in out.items()}


@pytest.fixture(scope="module")
def ppee() -> Path:
    return p_dir_of(generated_process("ppee"))


@pytest.fixture(scope="module")
def www() -> Path:
    return p_dir_of(generated_process("www_group"))


def channel_integrals(proc, n: int, seed: int):
    """[(I_c, err_c)] for every channel: mean of alpha[c]*weight over n flat points per channel."""
    rng = np.random.default_rng(seed)
    res = []
    for c in range(proc.n_channels):
        r = rng.random((n, proc.n_dims))
        ev = proc.evaluate(np.full(n, c), r)
        f = ev.channel_weight()
        res.append((float(f.mean()), float(f.std() / np.sqrt(n))))
    return res


def compare_with_madevent(proc, p: Path, res):
    """Group sums (a group = a config and its symmetric copies, folded into one G dir by MadEvent) vs G dirs."""
    info = proc.info.subprocesses[0]
    me = madevent_channels(p)
    pulls = {}
    for g in sorted(set(info.channel_group)):
        members = [c for c in range(proc.n_channels) if info.channel_group[c] == g]
        parent = info.channel_diagram[members[0]]
        b = sum(res[c][0] for c in members)
        be = float(np.sqrt(sum(res[c][1] ** 2 for c in members)))
        m, me_err = me.get(parent, (0.0, 0.0))
        pulls[parent] = ((b - m) / np.hypot(be, me_err) if np.hypot(be, me_err) > 0 else 0.0, b, be, m, me_err)
    tot = sum(x for x, _ in res)
    tot_err = float(np.sqrt(sum(e * e for _, e in res)))
    mt = sum(v[0] for v in me.values())
    mt_err = float(np.sqrt(sum(v[1] ** 2 for v in me.values())))
    return pulls, ((tot - mt) / np.hypot(tot_err, mt_err), tot, tot_err, mt, mt_err)


# ------------------------------------------------------------------------------------------------ physics
def test_ppee_channels_match_madevent(ppee):
    with load_process(ppee, n_workers=2) as proc:
        assert proc.n_dims == 4 and proc.n_channels == 2
        res = channel_integrals(proc, 200_000, seed=11)
        pulls, total = compare_with_madevent(proc, ppee, res)
    for diag, (pull, *vals) in pulls.items():
        assert abs(pull) < 4, f"G{diag}: bridge {vals[0]:.5g}±{vals[1]:.2g} vs MadEvent {vals[2]:.5g}±{vals[3]:.2g}"
    assert abs(total[0]) < 4, f"total: bridge {total[1]:.5g}±{total[2]:.2g} vs MadEvent {total[3]:.5g}±{total[4]:.2g}"


def test_www_grouped_channels_and_symmetry_groups(www):
    with load_process(www, n_workers=2) as proc:
        info = proc.info.subprocesses[0]
        assert proc.n_dims == 7 and proc.n_channels == 16
        # symfact_orig.dat: 4,5,6 copy 1,2,3; 10,11,12 copy 7,8,9; 15,16 copy 13,14 -> 8 groups of two
        groups = {}
        for c, g in enumerate(info.channel_group):
            groups.setdefault(g, []).append(info.channel_diagram[c])
        assert sorted(map(sorted, groups.values())) == [[1, 4], [2, 5], [3, 6], [7, 10], [8, 11], [9, 12],
                                                          [13, 15], [14, 16]]
        res = channel_integrals(proc, 30_000, seed=12)
        pulls, total = compare_with_madevent(proc, www, res)
    for diag, (pull, *vals) in pulls.items():
        assert abs(pull) < 4, f"G{diag}: bridge {vals[0]:.5g}±{vals[1]:.2g} vs MadEvent {vals[2]:.5g}±{vals[3]:.2g}"
    assert abs(total[0]) < 4, f"total: bridge {total[1]:.5g}±{total[2]:.2g} vs MadEvent {total[3]:.5g}±{total[4]:.2g}"
    # a config and its copy integrate to the same value (identical W+ W+)
    for members in groups.values():
        (a, ea), (b, eb) = (res[info.channel_diagram.index(d)] for d in members)
        assert abs(a - b) < 4 * np.hypot(ea, eb)


def test_sde2_alpha_changes_channels_not_total(ppee):
    n = 100_000
    r = np.random.default_rng(13).random((n, 4))
    with load_process(ppee, n_workers=2) as p1, load_process(ppee, sde_strategy=2, n_workers=2) as p2:
        r1 = channel_integrals(p1, n, seed=13)
        r2 = channel_integrals(p2, n, seed=13)
        e1 = p1.evaluate(np.zeros(n, np.int64), r)
        e2 = p2.evaluate(np.zeros(n, np.int64), r)
        ev = p2.evaluate(np.full(1000, 1), np.random.default_rng(3).random((1000, 4)))
    t1, s1 = sum(x for x, _ in r1), np.sqrt(sum(e * e for _, e in r1))
    t2, s2 = sum(x for x, _ in r2), np.sqrt(sum(e * e for _, e in r2))
    assert abs(t1 - t2) < 4 * np.hypot(s1, s2), (t1, s1, t2, s2)
    # same points, same weights (alpha does not enter the weight); the photon channel's share differs
    np.testing.assert_array_equal(e1.weight, e2.weight)
    d = e1.channel_weight() - e2.channel_weight()
    assert abs(d.mean()) > 5 * d.std() / np.sqrt(n), (d.mean(), d.std() / np.sqrt(n))
    # strategy 2 near the Z pole: the Z channel's weight dominates (3.5.7's own formula would give ~1/2)
    ok = ev.status == 0
    mhat = 2 * ev.momenta[ok, 0, 0]
    near = np.abs(mhat - 91.19) < 2.0
    assert near.sum() > 10 and np.all(ev.alpha[ok][near, 1] > 0.95)


# ------------------------------------------------------------------------------------------------ determinism, outputs
def _evaluate_all(proc, ch, r):
    ev = proc.evaluate(np.full(r.shape[0], ch), r)
    return ev.weight, ev.alpha, ev.momenta, ev.status


def test_deterministic_across_batches_and_processes(ppee):
    r = np.random.default_rng(5).random((3000, 4))
    r[:5] = [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.5] * 4, [0.0, 1.0, 0.0, 1.0], [1e-300, 0.5, 0.5, 0.5]
    with load_process(ppee, n_workers=1) as proc:
        a = _evaluate_all(proc, 1, r)
        perm = np.random.default_rng(6).permutation(r.shape[0])
        b = [np.empty_like(x) for x in a]
        for chunk in np.array_split(perm, 7):
            out = _evaluate_all(proc, 1, r[chunk])
            for dst, src in zip(b, out):
                dst[chunk] = src
    with load_process(ppee, n_workers=1) as proc2:
        c = _evaluate_all(proc2, 1, r)
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)


def test_output_conventions(ppee):
    r = np.random.default_rng(8).random((4000, 4))
    with load_process(ppee, n_workers=2) as proc:
        for ch in range(2):
            ev = proc.evaluate(np.full(r.shape[0], ch), r)
            assert set(np.unique(ev.status)) <= {0, 1}
            assert np.all(ev.weight[ev.status != 0] == 0) and np.all(ev.weight >= 0)
            assert (ev.status == 0).mean() > 0.1
            np.testing.assert_allclose(ev.alpha.sum(1), 1.0, rtol=1e-12)
            assert np.all(ev.alpha >= 0)
            ok = ev.status == 0
            p = ev.momenta[ok]
            np.testing.assert_allclose(p[:, 0] + p[:, 1], p[:, 2] + p[:, 3], atol=1e-8 * p[:, 0, 0].max())
            m2 = p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(-1)
            assert np.all(np.abs(m2) < 1e-6 * p[..., 0] ** 2 + 1e-9)
            np.testing.assert_allclose(p[:, 0, 1:3], 0.0, atol=1e-12)  # beams along z in the partonic c.m.
            np.testing.assert_allclose(p[:, 0, 3], -p[:, 1, 3])


def test_grouped_sum_mode_agrees_and_is_deterministic(ppee, monkeypatch):
    monkeypatch.setenv("MADNIS_MG5_GROUPED", "sum")
    r = np.random.default_rng(21).random((100_000, 4))
    with load_process(ppee, n_workers=2) as ps:
        ws = ps.evaluate(np.zeros(len(r), np.int64), r).channel_weight()
        ws2 = ps.evaluate(np.zeros(200, np.int64), r[:200]).channel_weight()
    monkeypatch.delenv("MADNIS_MG5_GROUPED")
    with load_process(ppee, n_workers=2) as pm:
        wm = pm.evaluate(np.zeros(len(r), np.int64), r).channel_weight()
    np.testing.assert_array_equal(ws[:200], ws2)
    err = np.hypot(ws.std(), wm.std()) / np.sqrt(len(r))
    assert abs(ws.mean() - wm.mean()) < 4 * err
    assert ws.std() <= wm.std() * 1.001  # summing the choices cannot add variance


# ------------------------------------------------------------------------------------------------ ABI behaviour
_DIRECT = textwrap.dedent(
    """
    import sys, json, numpy as np
    sys.path.insert(0, {repo!r})
    from madnis_plugin.bridge.library import Library
    from madnis_plugin.bridge import errors
    lib = Library({so!r}); info = lib.init({p!r})
    out = {{}}
    r = np.full((3, info.n_dims), 0.4)
    ev = lib.evaluate(np.zeros(3, np.int64), r); out['first'] = ev.status.tolist()
    for ch in (1, 0):
        try:
            lib.evaluate(np.full(3, ch), r); out[str(ch)] = 'ok'
        except errors.BridgeError as exc:
            out[str(ch)] = type(exc).__name__ + ': ' + str(exc)
    print('RESULT', json.dumps(out))
    """
)


def _direct(p: Path, env_extra=None) -> dict:
    import json

    so = mg5build.build_library(p)
    env = dict(os.environ, **(env_extra or {}))
    proc = subprocess.run([sys.executable, "-c", _DIRECT.format(repo=str(REPO), so=str(so), p=str(p))],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=600)
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert line, proc.stdout[-3000:]
    return json.loads(line[0][7:])


def test_frozen_channel_is_enforced(ppee):
    out = _direct(ppee)
    assert out["0"] == "ok"
    assert out["1"].startswith("ChannelOutOfRange") and "frozen to channel 0" in out["1"]


def test_fortran_stop_is_intercepted(ppee):
    script = textwrap.dedent(
        f"""
        import sys, numpy as np
        sys.path.insert(0, {str(REPO)!r})
        from madnis_plugin.bridge.library import Library
        from madnis_plugin.bridge import errors
        lib = Library({str(mg5build.build_library(ppee))!r}); info = lib.init({str(ppee)!r})
        for k in range(2):
            try:
                lib.evaluate(np.zeros(2, np.int64), np.full((2, info.n_dims), 0.3))
                print('NOERROR')
            except errors.FortranStop as exc:
                print('STOP', exc)
        print('ALIVE')
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=dict(os.environ, MADNIS_MG5_TEST_HOOKS="stop"), timeout=600)
    lines = proc.stdout.splitlines()
    assert "ALIVE" in lines, proc.stdout[-3000:]
    stops = [l for l in lines if l.startswith("STOP")]
    assert len(stops) == 2 and "madnis_bridge test hook" in stops[0], proc.stdout[-3000:]


def test_build_cache_rebuild_and_compile_error(ppee, tmp_path):
    lib = mg5build.build_library(ppee)
    stamp = lib.parent / "build_stamp.json"
    t0 = lib.stat().st_mtime_ns, stamp.stat().st_mtime_ns
    assert mg5build.build_library(ppee) == lib
    assert (lib.stat().st_mtime_ns, stamp.stat().st_mtime_ns) == t0  # cached, nothing rebuilt
    # a private copy: editing a source rebuilds; broken Fortran raises with the compiler's message
    me_copy = tmp_path / "ppee"
    shutil.copytree(ppee.parent.parent, me_copy, symlinks=True,
                    ignore=shutil.ignore_patterns("madnis_bridge", "Events", "HTML", "*.tar.gz"))
    pc = me_copy / "SubProcesses" / ppee.name
    lib_c = mg5build.build_library(pc)
    m0 = lib_c.stat().st_mtime_ns
    target = (pc / "setscales.f").resolve()
    target.write_text(target.read_text() + "c     a comment changes the fingerprint\n")
    assert mg5build.build_library(pc).stat().st_mtime_ns != m0
    target.write_text(target.read_text() + "      this is not fortran\n")
    with pytest.raises(mg5build.MG5BuildError) as exc:
        mg5build.build_library(pc)
    assert "setscales.f" in str(exc.value) and "Error" in str(exc.value)
    (me_copy / "MGMEVersion.txt").write_text("3.6.0\n")
    with pytest.raises(mg5build.MG5VersionError, match="3.6.0"):
        mg5build.build_library(pc)
