"""Adapter: plain VEGAS (G. P. Lepage's ``vegas`` package) on the physical integrand f(x).

Choice: "vegas alone" means vegas's own adaptive (factorised) map on the toy's physical x space, without our
channel mappings or multi-channel weights — a multi-channel sum Σ_i α_i w_i is not something vegas can adapt
to directly. f(x) is ``toy.density`` (cuts applied), integrated over ``toy.x_bounds`` (a finite box holding all
but < 1e-12 of ∫f; for toys on R or R² this box is the only difference to the exact integral). Training:
``vegas.Integrator(x_bounds)`` run for ``nitn`` iterations with ``neval = train_calls / nitn`` (vegas defaults
otherwise: 1000 increments per axis, damping α = 0.5, adaptive stratification). Evaluation: the trained
``AdaptiveMap`` alone, frozen, sampled uniformly (``w = f(x) · jac``), so σ/I and ε describe a single importance
sampling density exactly like the other methods (vegas's stratified-sampling estimate from training is reported
in ``config`` for reference).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from bench_common import MethodResult, unweighting_efficiency

NAME = "vegas"


def available() -> tuple[bool, str]:
    try:
        import vegas  # noqa: F401
        from importlib.metadata import version

        return True, version("vegas")
    except Exception as exc:  # noqa: BLE001
        return False, f"vegas not importable: {exc}"


def run(toy, train_calls: int, eval_calls: int, seed: int = 0, nitn: int = 10) -> MethodResult:
    import vegas

    t_wall = time.perf_counter()
    res = MethodResult(method=NAME, toy=getattr(toy, "name", "?"), exact=toy.exact)
    calls = {"n": 0}

    @vegas.lbatchintegrand
    def f(x):
        x = np.atleast_2d(x)
        calls["n"] += x.shape[0]
        return toy.density(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))).numpy()

    np.random.seed(seed)
    integ = vegas.Integrator(toy.x_bounds)
    integ.ran_array_generator = np.random.default_rng(seed).random
    neval = max(train_calls // nitn, 100)
    t0 = time.perf_counter()
    n_it = 0
    result = None
    # iterate one at a time so the budget is respected exactly (vegas may use fewer than neval per iteration)
    while calls["n"] + neval <= train_calls or n_it == 0:
        result = integ(f, nitn=1, neval=neval)
        n_it += 1
        if n_it > 10 * nitn:
            break
    res.train_time_s = time.perf_counter() - t0
    res.n_train_steps = n_it
    res.train_step_time_s = res.train_time_s / n_it
    res.n_calls_training = calls["n"]
    res.config = dict(
        nitn=n_it, neval=neval, x_bounds=toy.x_bounds, ninc=int(integ.map.ninc[0]),
        training_estimate=f"{result.mean:.8g} +- {result.sdev:.2g}" if result is not None else None,
        evaluation="frozen AdaptiveMap, uniform sampling",
    )

    # frozen map, uniform y
    amap = integ.map
    rng = np.random.default_rng(seed + 1)
    y = rng.random((eval_calls, toy.n_dims))
    x = np.empty_like(y)
    jac = np.empty(eval_calls)
    amap.map(y, x, jac)
    c0 = calls["n"]
    fx = f(x)
    res.n_calls_integration = calls["n"] - c0
    w = torch.from_numpy(np.asarray(fx) * jac)
    res.integral = w.mean().item()
    res.error = (w.std() / np.sqrt(eval_calls)).item()
    res.rel_std = (w.std() / w.mean()).item() if res.integral != 0 else float("inf")
    res.unweighting_efficiency = unweighting_efficiency(w, seed=seed)
    res.wall_time_s = time.perf_counter() - t_wall
    return res.finalize()
