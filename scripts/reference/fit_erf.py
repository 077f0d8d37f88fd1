"""Fits the error-function approximation of crates/encoder/src/kernels.rs.

erf(x) ~= x * P(x^2) / Q(x^2) on [0, 4], P and Q of degree 5, Q(0) = 1:
a linearised least-squares fit on a dense grid, re-weighted (Loeb's
denominator weights, then Lawson's towards the minimax error) for the
absolute error of erf. Prints the max error in exact arithmetic and when
evaluated in float32 as the kernel does (Horner, one division), then the
coefficients as Rust f32 literals (shortest round-trip form).

    python3 scripts/reference/fit_erf.py          # needs numpy only
"""
import math

import numpy as np

CLAMP = 4.0
DEG = 5


def fit(iters=200):
    grid = np.concatenate(
        [
            CLAMP * (1 - np.cos(np.linspace(0, np.pi / 2, 6000))),
            CLAMP * np.sin(np.linspace(0, np.pi / 2, 6000)),
            np.linspace(0, CLAMP, 6000),
        ]
    )
    x = np.unique(grid)[1:]
    f = np.array([math.erf(v) for v in x])
    u = x * x / (CLAMP * CLAMP)  # scaled variable: better conditioned
    g = f / x
    w = np.ones_like(x)
    q_prev = np.ones_like(x)
    best = (math.inf, None, None)
    for it in range(iters):
        a = np.concatenate(
            [u[:, None] ** np.arange(DEG + 1), -(g[:, None] * u[:, None] ** np.arange(1, DEG + 1))],
            axis=1,
        )
        sw = np.sqrt(w) * x / np.abs(q_prev)
        coef, *_ = np.linalg.lstsq(a * sw[:, None], g * sw, rcond=None)
        p = coef[: DEG + 1]
        q = np.concatenate([[1.0], coef[DEG + 1 :]])
        qv = np.polyval(q[::-1], u)
        err = x * np.polyval(p[::-1], u) / qv - f
        worst = np.max(np.abs(err))
        if np.all(qv > 0) and worst < best[0]:
            best = (worst, p, q)
        q_prev = qv
        if it >= 10:
            w = w * np.abs(err) ** 0.5
            w = w / w.mean()
    worst, p, q = best
    s = CLAMP * CLAMP
    return worst, [c / s**i for i, c in enumerate(p)], [c / s**i for i, c in enumerate(q)]


def erf_f32(p, q, x):
    x = np.clip(x.astype(np.float32), -CLAMP, CLAMP)
    t = x * x
    pv = np.float32(p[-1])
    for c in p[-2::-1]:
        pv = pv * t + np.float32(c)
    qv = np.float32(q[-1])
    for c in q[-2::-1]:
        qv = qv * t + np.float32(c)
    return np.clip(x * pv / qv, -1, 1)


def main():
    worst, p, q = fit()
    xs = np.linspace(-CLAMP, CLAMP, 400001).astype(np.float32)
    ref = np.array([math.erf(float(v)) for v in xs])
    err32 = np.max(np.abs(erf_f32(p, q, xs).astype(np.float64) - ref))
    print(f"max |error|: {worst:.2e} exact, {err32:.2e} in f32")
    for name, cs in (("ERF_P", p), ("ERF_Q", q)):
        print(f"const {name}: [f32; {DEG + 1}] = [")
        for c in cs:
            print(f"    {np.format_float_scientific(np.float32(c), unique=True, trim='-')},")
        print("];")


if __name__ == "__main__":
    main()
