r"""The generic path's exact KL pass of mixed forms, made cheaper (issue 13, branch
klexact3).

Branch kltiny2 summed the KL of nearly equal rows with a side of log-probabilities, or
probabilities against logits, exactly: Bregman terms plus the masses' difference, the
masses from double-double exponentials (``_js_mixed.exp_dd``, about 260 elementwise
operations an entry: 33x-47x the plain sum's time). ``_kl_mixed._exp_pairs`` takes a
table of :math:`2^{j/4096}` and a series of six terms whose pieces above
:math:`2^{-53}` are exact (about 100 operations), the series of :math:`\varphi` is cut
by the rows' largest :math:`|r|`, and NumPy takes the rows by blocks.

Branch exphome1 moved it to ``_double_double.exp_pairs``, the one array double-double
exponential (``exp_dd``, JS's and the log-probabilities' excess, is its ``(hi, lo)``);
added: the hard arguments (:func:`test_exp_pairs_hard_arguments`).

Checked here: ``exp_pairs`` against mpmath (:math:`e^{y + y_\ell}` within
:math:`2^{-103}` of itself, :math:`e^{y} - 1` near 0 within :math:`2^{-104}`
absolute, ``-inf``, NaN and the values below :math:`-800`), and the KL of nearly
equal rows of 64 classes in every pairing taken by ``_kl_mixed`` against mpmath
within 8 eps, by blocks of one and two rows, on NumPy and float64 PyTorch (rows
1e-9, 1e-6 and 1e-13 apart, and one far apart: the series' cut follows each block's
largest :math:`|r|`).
"""

from __future__ import annotations

import importlib
import itertools
import math
from typing import Any

import mpmath
import numpy as np
import pytest
from tests.oracles import row_probabilities

import crossent
from crossent.info import _fused

EPS = float(np.finfo(np.float64).eps)

PAIRINGS = [
    (a, b)
    for a, b in itertools.product(("probs", "log_probs", "logits"), repeat=2)
    if not (a == b and a in ("probs", "logits"))
]


def _exp_pairs() -> Any:
    return importlib.import_module("crossent._double_double").exp_pairs  # (branch exphome1)


def _arguments() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(13)
    y = np.concatenate(
        [
            -rng.exponential(4.0, 120),
            -rng.uniform(0.0, 660.0, 40),  # (above e^-669 the low part is normal)
            rng.uniform(-1e-4, 1e-4, 40),
            [0.0, -1e-30, 8.46e-5, -8.46e-5, -(2.0**-27), 2.0**-27 + 2.0**-60, -0.5],
        ]
    )
    y_lo = np.where(np.arange(y.size) % 2 == 0, 0.0, y * rng.uniform(-1.0, 1.0, y.size) * 2**-53)
    return y, y_lo


def test_exp_pairs_within_2_to_minus_103() -> None:
    y, y_lo = _arguments()
    got = _exp_pairs()(y, y_lo, xp=np)
    worst = worst_near = mpmath.mpf(0)
    with mpmath.workdps(60):
        for i in range(y.size):
            x = mpmath.mpf(float(y[i])) + mpmath.mpf(float(y_lo[i]))
            truth = mpmath.exp(x)
            value = mpmath.mpf(float(got.hi[i])) + mpmath.mpf(float(got.lo[i]))
            worst = max(worst, abs(value - truth) / truth)
            if bool(got.near[i]):
                near = mpmath.mpf(float(got.m_hi[i])) + mpmath.mpf(float(got.m_lo[i]))
                worst_near = max(worst_near, abs(near - (truth - 1)))
    assert worst <= mpmath.mpf(2) ** -103, float(mpmath.log(worst, 2))
    assert worst_near <= mpmath.mpf(2) ** -104, float(mpmath.log(worst_near, 2))
    assert int(np.sum(got.near)) >= 40  # (the entries within ln 2/8192 of 0)


def test_exp_pairs_outside_the_range() -> None:
    y = np.array([-np.inf, -800.0, -1e300, np.nan, 0.0])
    got = _exp_pairs()(y, np.zeros_like(y), xp=np)
    np.testing.assert_array_equal(got.hi[:3], 0.0)
    np.testing.assert_array_equal(got.lo[:3], 0.0)
    assert np.isnan(got.hi[3])
    assert (float(got.hi[4]), float(got.lo[4])) == (1.0, 0.0)
    np.testing.assert_array_equal(got.near, [False, False, False, False, True])


def _hard_arguments() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    normal = np.concatenate(
        [
            [-(2.0**-1074), -1e-300, 2.0**-40, -(2.0**-13.5), 1e-17, -1e-17],  # near 0
            -rng.uniform(690.0, 708.39, 12),  # |y| ~ 700, normal results
            rng.uniform(690.0, 709.7, 6),  # (and above 0, to the overflow)
            [-708.3964185322641, -708.39641853226, 709.78],
        ]
    )
    subnormal = np.concatenate([-rng.uniform(708.4, 745.13, 14), [-745.0, -744.44, -709.0, -740.0]])
    y = np.concatenate([normal, subnormal])
    scale = np.where(np.abs(y) > 0.0, np.abs(y), 1.0)
    y_lo = rng.uniform(-1.0, 1.0, y.size) * np.spacing(scale) / 2
    y_lo[::3] = 0.0
    return y, y_lo


def test_exp_pairs_hard_arguments() -> None:
    """Near 0 (with ``e^y - 1``), :math:`|y|` about 700 either side of 0, low parts,
    and results below the normal range (-745..-708: ``hi`` within an ulp of the
    subnormal truth, 2^-1074 absolute: rounded twice, as a pair and then by the
    scaling; between -708 and -669 the low part is subnormal, its rounding 2^-1075
    absolute); the array double-double ``exp_dd`` is its
    ``(hi, lo)``."""
    y, y_lo = _hard_arguments()
    module = importlib.import_module("crossent._double_double")
    got = _exp_pairs()(y, y_lo, xp=np)
    bare = _exp_pairs()(y, None, xp=np)
    hi, lo = module.exp_dd(y, xp=np)
    np.testing.assert_array_equal(hi, bare.hi)
    np.testing.assert_array_equal(lo, bare.lo)
    tiny = float(np.finfo(np.float64).smallest_normal)
    with mpmath.workdps(60):
        for i in range(y.size):
            for e, low in ((got, float(y_lo[i])), (bare, 0.0)):
                truth = mpmath.exp(mpmath.mpf(float(y[i])) + mpmath.mpf(low))
                value = mpmath.mpf(float(e.hi[i])) + mpmath.mpf(float(e.lo[i]))
                if truth >= tiny:  # (lo subnormal below e^-669: 2^-1075 absolute)
                    error = abs(value - truth) - mpmath.mpf(2) ** -1075
                    assert error <= truth * mpmath.mpf(2) ** -102, (y[i], low, float(error))
                else:  # a subnormal result: hi + lo rounded, then scaled: faithful
                    assert abs(mpmath.mpf(float(e.hi[i])) - truth) < mpmath.mpf(2) ** -1074
                    assert float(e.hi[i]) > 0.0, y[i]
                if bool(e.near[i]):
                    near = mpmath.mpf(float(e.m_hi[i])) + mpmath.mpf(float(e.m_lo[i]))
                    assert abs(near - (truth - 1)) <= mpmath.mpf(2) ** -104, y[i]
    assert int(np.sum(got.near)) == 5  # (2^-13.5 is past ln 2/8192)
    edge = _exp_pairs()(np.array([-np.inf, np.nan, -745.2, -799.0]), None, xp=np)
    np.testing.assert_array_equal(edge.hi[[0, 2, 3]], 0.0)
    np.testing.assert_array_equal(edge.lo[[0, 2, 3]], 0.0)
    assert np.isnan(edge.hi[1])
    assert np.isnan(edge.lo[1])


def _sides(p_form: str, q_form: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    z = rng.standard_normal((4, 64)) * 3.0
    apart = np.array([1e-9, 1e-6, 1e-13, 1.0])[:, None]
    other = z + rng.standard_normal(z.shape) * apart

    def form(x: np.ndarray, name: str) -> np.ndarray:
        log_p = x - x.max(axis=-1, keepdims=True)
        log_p = log_p - np.log(np.exp(log_p).sum(axis=-1, keepdims=True))
        return {"logits": x, "log_probs": log_p, "probs": np.exp(log_p)}[name]

    return form(z, p_form), form(other, q_form)


def _truth(a: np.ndarray, b: np.ndarray, forms: tuple[str, str]) -> list[Any]:
    out = []
    with mpmath.workdps(60):
        for row_a, row_b in zip(a, b, strict=True):
            p = row_probabilities(row_a.tolist(), forms[0])
            q = row_probabilities(row_b.tolist(), forms[1])
            terms = (x * (mpmath.log(x) - mpmath.log(y)) for x, y in zip(p, q, strict=True))
            out.append(mpmath.fsum(terms))
    return out


@pytest.mark.parametrize("forms", PAIRINGS, ids=["-".join(f) for f in PAIRINGS])
def test_nearly_equal_rows_by_blocks_within_8_eps(
    forms: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = _sides(*forms)
    truth = _truth(a, b, forms)
    measures = importlib.import_module("crossent.info._measures")
    monkeypatch.setattr(_fused, "available", lambda: False)
    for block in (64, 128):  # one row, two rows a block
        monkeypatch.setattr(measures, "_KL_MIXED_BLOCK", block, raising=False)
        got = crossent.kl_divergence(a, b, p_form=forms[0], q_form=forms[1])
        for row, (value, exact) in enumerate(zip(got.tolist(), truth, strict=True)):
            error = float(abs(mpmath.mpf(value) - exact) / abs(exact))
            assert error <= 8 * EPS, (forms, block, row, value, float(exact), error / EPS)


TORCH_PAIRINGS = [("log_probs", "log_probs"), ("probs", "logits"), ("logits", "log_probs")]


@pytest.mark.parametrize("forms", TORCH_PAIRINGS, ids=["-".join(f) for f in TORCH_PAIRINGS])
def test_torch_cpu_rows_by_blocks_within_8_eps(
    forms: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = pytest.importorskip("torch")
    a, b = _sides(*forms)
    truth = _truth(a, b, forms)
    measures = importlib.import_module("crossent.info._measures")
    monkeypatch.setattr(measures, "_KL_MIXED_BLOCK", 128, raising=False)  # two rows a block
    p = torch.tensor(a, requires_grad=True)  # (past the host route)
    got = crossent.kl_divergence(p, torch.tensor(b), p_form=forms[0], q_form=forms[1])
    for row, (value, exact) in enumerate(zip(got.tolist(), truth, strict=True)):
        error = float(abs(mpmath.mpf(value) - exact) / abs(exact))
        assert error <= 8 * EPS, (forms, row, value, float(exact), error / EPS)
    got.sum().backward()  # the plain sum's gradient
    assert p.grad is not None
    assert bool(torch.isfinite(p.grad).all())


def test_exact_ties_certified_without_fsum(monkeypatch: pytest.MonkeyPatch) -> None:
    """The masses of nearly equal rows of log-probabilities as double-doubles are about 2
    bits finer than the KL's ulp, so their exact difference lies on a midpoint between
    floats about one row in 14; ``_MassExtraction`` left those ties to ``math.fsum``
    (a Python loop over the row). The tail of its VecSum is now checked exact
    (TwoSums), and a tie with nothing left to extract is rounded to even at once:
    fsum's bits, fsum refused."""
    measures = importlib.import_module("crossent.info._measures")
    exp_dd = importlib.import_module("crossent._double_double").exp_dd
    rng = np.random.default_rng(0)
    z = rng.standard_normal((64, 1000)) * 3.0
    near = z + rng.standard_normal(z.shape) * 1e-9
    log_p, log_q = (x - np.log(np.exp(x).sum(axis=-1, keepdims=True)) for x in (z, near))
    # the masses of two sides of log-probabilities as double-doubles, summed exactly
    (p_hi, p_lo), (q_hi, q_lo) = exp_dd(log_p, xp=np), exp_dd(log_q, xp=np)
    plus = np.concatenate([p_hi, p_lo.sum(axis=-1, keepdims=True)], axis=-1)
    minus = np.concatenate([q_hi, q_lo.sum(axis=-1, keepdims=True)], axis=-1)
    rows = [(1.0, 2.0**-53), (1.0, 3 * 2.0**-53), (-1.0, -(2.0**-53)), (0.5, 2.0**-54)]
    ties = np.zeros((len(rows), plus.shape[-1]))
    ties[:, :2] = rows
    plus, minus = np.concatenate([plus, ties]), np.concatenate([minus, np.zeros_like(ties)])
    want = [math.fsum([*a, *(-b)]) for a, b in zip(plus, minus, strict=True)]

    def refuse(values: Any) -> float:
        raise AssertionError("math.fsum ran")

    monkeypatch.setattr(math, "fsum", refuse)
    got = measures._certified_mass_difference(plus, minus, np.zeros(len(want)), xp=np)
    np.testing.assert_array_equal(got, want)
    assert want[-4:] == [1.0, 1.0 + 2.0**-51, -1.0, 0.5]


def test_log_probs_rows_1e9_apart_within_an_ulp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sides of log-probabilities 1e-9 apart: the masses' difference as
    sum q expm1(r) (``_kl_mixed._log_probs_near``), its error 2^-104 of sum q|r|
    rather than of the masses. Rows of the benchmark's 300 x 1000 set where the masses'
    floor (about 2e-33) showed: KL 2.8e-20 was 286 eps off, the others 2.8 to 10.5."""
    monkeypatch.setattr(_fused, "available", lambda: False)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((300, 1000)) * 3.0
    near = z + rng.standard_normal(z.shape) * 1e-9
    rows = [183, 149, 228, 11]
    log_p, log_q = (
        x
        - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True))
        - x.max(-1, keepdims=True)
        for x in (z[rows], near[rows])
    )
    got = crossent.kl_divergence(log_p, log_q, p_form="log_probs", q_form="log_probs")
    with mpmath.workdps(60):
        for value, row_p, row_q in zip(got.tolist(), log_p, log_q, strict=True):
            terms = (
                mpmath.exp(mpmath.mpf(float(u))) * (mpmath.mpf(float(u)) - mpmath.mpf(float(w)))
                for u, w in zip(row_p, row_q, strict=True)
            )
            truth = mpmath.fsum(terms)
            assert abs(mpmath.mpf(value) - truth) <= abs(truth) * EPS, (value, float(truth))
