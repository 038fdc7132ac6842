"""The ``.. math::`` of public docstrings, evaluated with mpmath, against the code.

Each formula is written here as its docstring states it (every option in, one random
batch), at 50 digits; the function must agree to float64 rounding. A docstring whose
formula drifts from the code (a weight on the wrong term, a mean over the wrong count)
fails here. These passed when written: no formula was found wrong (docs review,
2026-12-05); they guard the docstrings from now on.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import crossent

MP = mpmath.mp.clone()
MP.dps = 50
N, C = 5, 4
REL = 1e-13


def _lse(row: list[mpmath.mpf]) -> mpmath.mpf:
    return MP.log(MP.fsum(MP.exp(v) for v in row))


def _softmax(row: list[mpmath.mpf]) -> list[mpmath.mpf]:
    lse = _lse(row)
    return [MP.exp(v - lse) for v in row]


@pytest.fixture
def batch() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "z": rng.normal(size=(N, C)) * 3,
        "v": rng.normal(size=(N, C)) * 2,
        "y": rng.integers(0, C, size=N),
        "w": rng.uniform(0.2, 3.0, size=C),
        "t": rng.uniform(size=(N, C)),
        "pw": rng.uniform(0.5, 3.0, size=C),
        "p": rng.dirichlet(np.ones(C), size=N),
    }


def _close(ours: object, reference: mpmath.mpf) -> None:
    assert float(ours) == pytest.approx(float(reference), rel=REL, abs=1e-300)  # type: ignore[arg-type]


def test_softmax_cross_entropy_formula(batch: dict[str, np.ndarray]) -> None:
    """L_i = w_y[(1-eps)(LSE - z'_y)] + eps/C sum_c w_c (LSE - z'_c) + lam w_y LSE^2,
    z' = s tanh(z/s)/T; the mean divides by sum_i w_{y_i}."""
    z, y, w = batch["z"], batch["y"], batch["w"]
    eps, lam, s, T = 0.15, 1e-2, 4.0, 1.7
    total = weights = MP.mpf(0)
    for i in range(N):
        zp = [s * MP.tanh(MP.mpf(v) / s) / T for v in z[i]]
        lse = _lse(zp)
        total += (
            w[y[i]] * (1 - MP.mpf(eps)) * (lse - zp[y[i]])
            + MP.mpf(eps) / C * MP.fsum(w[c] * (lse - zp[c]) for c in range(C))
            + lam * w[y[i]] * lse**2
        )
        weights += w[y[i]]
    ours = crossent.softmax_cross_entropy(
        z, y, weight=w, label_smoothing=eps, z_loss=lam, soft_cap=s, temperature=T
    )
    _close(ours, total / weights)


def test_sigmoid_cross_entropy_formula(batch: dict[str, np.ndarray]) -> None:
    """l = w[pi t log(1 + e^-x) + (1 - t) log(1 + e^x)]; the mean divides by the weights."""
    x, t, w, pw = batch["z"], batch["t"], batch["w"], batch["pw"]
    terms = [
        w[c]
        * (
            pw[c] * t[i, c] * MP.log1p(MP.exp(-MP.mpf(x[i, c])))
            + (1 - MP.mpf(t[i, c])) * MP.log1p(MP.exp(MP.mpf(x[i, c])))
        )
        for i in range(N)
        for c in range(C)
    ]
    _close(
        crossent.sigmoid_cross_entropy(x, t, weight=w, pos_weight=pw),
        MP.fsum(terms) / (N * w.sum()),
    )


def test_focal_and_poly1_formulas(batch: dict[str, np.ndarray]) -> None:
    z, y, w, x, t = batch["z"], batch["y"], batch["w"], batch["z"], batch["t"]
    gamma, alpha, eps = 1.5, 0.25, 2.0
    rows = [[MP.mpf(v) for v in z[i]] for i in range(N)]
    p_true = [_softmax(rows[i])[y[i]] for i in range(N)]
    # FL_i = -w_y (1 - p_y)^gamma log p_y
    focal = MP.fsum(w[y[i]] * (1 - p_true[i]) ** gamma * -MP.log(p_true[i]) for i in range(N))
    _close(crossent.softmax_focal_loss(z, y, gamma=gamma, weight=w, reduction="sum"), focal)
    # L_i = -log p_y + eps (1 - p_y)
    poly = MP.fsum(-MP.log(p_true[i]) + eps * (1 - p_true[i]) for i in range(N))
    _close(crossent.poly1_cross_entropy(z, y, epsilon=eps, reduction="sum"), poly)
    # FL = alpha_t (1 - p_t)^gamma BCE, 1 - p_t = t sigma(-x) + (1 - t) sigma(x)
    total = MP.mpf(0)
    for i in range(N):
        for c in range(C):
            xx, tt = MP.mpf(x[i, c]), MP.mpf(t[i, c])
            bce = tt * MP.log1p(MP.exp(-xx)) + (1 - tt) * MP.log1p(MP.exp(xx))
            one_minus_pt = tt / (1 + MP.exp(xx)) + (1 - tt) / (1 + MP.exp(-xx))
            total += (alpha * tt + (1 - alpha) * (1 - tt)) * one_minus_pt**gamma * bce
    ours = crossent.sigmoid_focal_loss(x, t, gamma=gamma, alpha=alpha, reduction="sum")
    _close(ours, total)


def test_hinge_formulas(batch: dict[str, np.ndarray]) -> None:
    """Crammer-Singer max(0, 1 + max_{c != y} z_c - z_y); Weston-Watkins the sum."""
    z, y = batch["z"], batch["y"]
    cs = sum(
        max(0.0, 1 + max(z[i, c] for c in range(C) if c != y[i]) - z[i, y[i]]) for i in range(N)
    )
    ww = sum(max(0.0, 1 + z[i, c] - z[i, y[i]]) for i in range(N) for c in range(C) if c != y[i])
    _close(crossent.multiclass_hinge_loss(z, y, reduction="sum"), MP.mpf(cs))
    ours = crossent.multiclass_hinge_loss(z, y, variant="weston_watkins", reduction="sum")
    _close(ours, MP.mpf(ww))


def test_distillation_formula(batch: dict[str, np.ndarray]) -> None:
    """T^2 D(softmax(v/T) || softmax(z/T)), mean over rows; reverse swaps the roles."""
    z, v, T = batch["z"], batch["v"], 2.5
    forward = reverse = MP.mpf(0)
    for i in range(N):
        teacher = _softmax([MP.mpf(a) / T for a in v[i]])
        student = _softmax([MP.mpf(a) / T for a in z[i]])
        forward += T**2 * MP.fsum(a * MP.log(a / b) for a, b in zip(teacher, student, strict=True))
        reverse += T**2 * MP.fsum(b * MP.log(b / a) for a, b in zip(teacher, student, strict=True))
    _close(crossent.distillation_loss(z, v, temperature=T), forward / N)
    _close(crossent.distillation_loss(z, v, temperature=T, direction="reverse"), reverse / N)


def test_scores_and_measures_formulas(batch: dict[str, np.ndarray]) -> None:
    p, y = batch["p"], batch["y"]
    brier = MP.fsum((MP.mpf(p[i, k]) - (k == y[i])) ** 2 for i in range(N) for k in range(C)) / N
    _close(crossent.brier_score(p, y), brier)
    _close(crossent.brier_score(p, y, scale="half"), brier / 2)
    norms = [MP.sqrt(MP.fsum(MP.mpf(v) ** 2 for v in p[i])) for i in range(N)]
    _close(crossent.spherical_score(p, y), MP.fsum(p[i, y[i]] / norms[i] for i in range(N)) / N)
    P, Q = p[0], p[1]
    M = [(MP.mpf(a) + b) / 2 for a, b in zip(P, Q, strict=True)]
    js = (
        MP.fsum(a * MP.log(a / m) for a, m in zip(P, M, strict=True))
        + MP.fsum(b * MP.log(b / m) for b, m in zip(Q, M, strict=True))
    ) / 2
    _close(crossent.js_divergence(P, Q), js)
    cross = -MP.fsum(a * MP.log(b) for a, b in zip(P, Q, strict=True))
    _close(crossent.perplexity(P, Q), MP.exp(cross))
    _close(crossent.cross_entropy(P, Q, base=2), cross / MP.log(2))
