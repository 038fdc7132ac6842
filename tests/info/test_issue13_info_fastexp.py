"""Issue 13, speed of the exact float32 measures: the polynomial ``exp`` for float32 only.

The fused kernel (``info/_fused_kernels.py``) computes float32 inputs' terms in float64
and rounds once. Its ``exp`` was ``math.exp`` (a scalar libm call, not vectorised); for
float32 inputs it is now the shared :func:`crossent._intrinsics_numba.exp_nonpositive`
(relative error 5.2e-11) in vectorised row passes, and float32 batches with a strided
class axis run by C-contiguous block copies. Checked here:

* float64 inputs keep ``math.exp``: their results are bit for bit those of the same
  kernel run as plain Python (``NUMBA_DISABLE_JIT=1``: ``math.exp`` is libm's), and within
  a few float64 ulps of a long-double reference (the polynomial's 5e-11 would show);
* float32 results on hard rows (huge spreads, near-ties, ``-inf`` logits, entries
  between -745 and -708 below the maximum, a dominant logit, V = 2 and V = 256000, C and
  Fortran order) within 0.51 float32 ulps of a long-double reference: the docstrings'
  bound (the float64 value errs by about 1e-10 relative, then one rounding);
* NaN and ``+inf`` rows give what the float64 path gives.

Mutants caught (by hand): float64 routed to the polynomial (``_narrow_compiled`` returning
True: the bit-for-bit and long-double float64 tests), a wrong polynomial coefficient
(``EXP_COEFFICIENTS[3]`` = 0.1666: the float32 tests), the fast sums without the tie
count (``rest`` including the maximum's 1: the dominant-logit rows).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import crossent

pytest.importorskip("numba")

from crossent.info import _fused

LD = np.longdouble
pytestmark = pytest.mark.skipif(
    np.finfo(LD).eps >= np.finfo(np.float64).eps, reason="needs an extended long double"
)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(LD)
    m = np.max(np.where(np.isfinite(x), x, -np.inf), axis=-1, keepdims=True)
    s = x - m
    # log1p of the terms below the maximum plus its ties less 1 (S - 1 without
    # rounding 1 + tiny): the entropy of a dominant logit is that tiny
    ties = np.sum(s == 0, axis=-1, keepdims=True)
    rest = np.sum(np.where(s == 0, 0, np.exp(s)), axis=-1, keepdims=True)
    return s - np.log1p(rest + (ties - 1))


def _plogq(p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    return np.where(p > 0, p * np.where(p > 0, log_q, 0), 0)


def _references(a: np.ndarray, b: np.ndarray, form: str = "logits") -> dict[str, np.ndarray]:
    """Long-double H(P), H(P, Q), KL(P || Q), JS(P, Q) of two logit (or
    log-probability) batches."""
    if form == "logits":
        la, lb = _log_softmax(a), _log_softmax(b)
    else:
        la, lb = a.astype(LD), b.astype(LD)
    pa, pb = np.exp(la), np.exp(lb)
    mid = (pa + pb) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        lm = np.log(mid)
        return {
            "H": -_plogq(pa, la).sum(-1),
            "CE": -_plogq(pa, lb).sum(-1),
            "KL": (_plogq(pa, la) - _plogq(pa, lb)).sum(-1),
            "JS": ((_plogq(pa, la) - _plogq(pa, lm)) + (_plogq(pb, lb) - _plogq(pb, lm))).sum(-1)
            / 2,
        }


def _js_mpmath(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """JS(P, Q) of logit rows in 40-digit arithmetic (the long-double sum of its terms
    cancels where P and Q nearly agree)."""
    mpmath = pytest.importorskip("mpmath")
    mp = mpmath.mp

    def softmax(row: np.ndarray) -> list[Any]:
        x = [mp.mpf(float(v)) for v in row]
        top = max(x)
        e = [mp.exp(v - top) for v in x]
        total = mp.fsum(e)
        return [v / total for v in e]

    out = []
    with mpmath.workdps(40):
        for ra, rb in zip(a, b, strict=True):
            pa, pb = softmax(ra), softmax(rb)
            terms = []
            for p, q in zip(pa, pb, strict=True):
                m = (p + q) / 2
                terms += [p * mp.log(p / m) if p > 0 else 0, q * mp.log(q / m) if q > 0 else 0]
            out.append(LD(str(mp.fsum(terms) / 2)))
    return np.array(out, dtype=LD)


def _measures(a: np.ndarray, b: np.ndarray, form: str = "logits") -> dict[str, np.ndarray]:
    kw = {"validate": False}
    return {
        "H": crossent.entropy(a, p_form=form, **kw),
        "CE": crossent.cross_entropy(a, b, p_form=form, q_form=form, **kw),
        "KL": crossent.kl_divergence(a, b, p_form=form, q_form=form, **kw),
        "JS": crossent.js_divergence(a, b, p_form=form, q_form=form, **kw),
    }


def _hard_rows(classes: int, rng: np.random.Generator) -> np.ndarray:
    rows = [
        rng.standard_normal(classes) * 3,
        rng.standard_normal(classes) * 30,
        np.where(np.arange(classes) == 0, 0.0, -30.0),  # a dominant logit: H tiny
        np.where(np.arange(classes) % 2 == 0, 0.0, -1e4),  # huge spread
        np.linspace(-720.0, -700.0, classes) * (np.arange(classes) > 0),  # the -708 floor
        5.0 + np.arange(classes) * float(np.spacing(np.float32(5.0))),  # near-ties
        np.where(np.arange(classes) == 1, 1e30, rng.standard_normal(classes) * 1e29),
        np.zeros(classes),  # all ties
        # last: rolled by a row, Q's -inf entries meet the first row's moderate P
        # (a probability that underflows against a zero is a convention of its own)
        np.where(np.arange(classes) % 3 == 0, -np.inf, rng.standard_normal(classes)),
    ]
    return np.stack(rows).astype(np.float32)


def _ulps(got: np.ndarray, truth: np.ndarray) -> np.ndarray:
    got = np.asarray(got, np.float64)
    truth32 = np.abs(truth).astype(np.float32)
    unit = np.spacing(truth32).astype(np.float64)
    with np.errstate(invalid="ignore"):
        error = np.abs(got.astype(LD) - truth) / unit
    # an infinite truth (KL, CE against a -inf logit) must be matched exactly
    return np.where(np.isinf(truth), np.where(got == truth, 0, np.inf), error)


@pytest.mark.parametrize("classes", [2, 7, 1000])
@pytest.mark.parametrize("layout", ["C", "F"])
def test_issue13_fastexp_float32_hard_rows_within_half_an_ulp(classes, layout):
    rng = np.random.default_rng(classes)
    a = _hard_rows(classes, rng)
    b = np.roll(_hard_rows(classes, rng), 1, axis=0)
    if layout == "F":
        a, b = np.asfortranarray(a), np.asfortranarray(b)
    truth = _references(a, b)
    truth["JS"] = _js_mpmath(a, b)
    for name, got in _measures(a, b).items():
        assert got.dtype == np.float32
        worst = float(np.max(_ulps(got, truth[name])))
        assert worst <= 0.51, (name, worst, got, truth[name])
    # the cross-entropy of probabilities against logits (its own vectorised pass), with
    # exact zeros, against -inf logits too; a negative entry takes the compensated loop
    p = np.exp(_log_softmax(np.roll(a, 2, axis=0))).astype(np.float32)
    p[0, ::3] = 0.0  # where Q's first row has its -inf logits: 0 log 0 = 0
    p[1, 0] = 0.0
    p[2, 0] = -0.25  # validate=False: outside [0, 1]
    log_q = _log_softmax(b)
    with np.errstate(invalid="ignore"):
        terms = np.where(p == 0, 0, -(p.astype(LD) * log_q))
    truth_ce = terms.sum(-1)
    got = crossent.cross_entropy(p, b, q_form="logits", validate=False)
    assert float(np.max(_ulps(got, truth_ce))) <= 0.51, (got, truth_ce)


def test_issue13_fastexp_float32_log_probabilities_within_half_an_ulp():
    rng = np.random.default_rng(5)
    a = _log_softmax(_hard_rows(300, rng)).astype(np.float32)
    b = _log_softmax(np.roll(_hard_rows(300, rng), 2, axis=0)).astype(np.float32)
    truth = _references(a, b, "log_probs")
    for name, got in _measures(a, b, "log_probs").items():
        assert float(np.max(_ulps(got, truth[name]))) <= 0.51, name


def test_issue13_fastexp_float32_wide_rows():
    rng = np.random.default_rng(256000)
    a = (rng.standard_normal((2, 256000)) * 4).astype(np.float32)
    b = (rng.standard_normal((2, 256000)) * 4).astype(np.float32)
    truth = _references(a, b)
    for name, got in _measures(a, b).items():
        assert float(np.max(_ulps(got, truth[name]))) <= 0.51, name


def test_issue13_fastexp_float32_nan_and_infinite_rows_as_float64():
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((5, 9)) * 3).astype(np.float32)
    a[0, 4] = np.nan
    a[1, 2] = -np.nan  # a NaN of negative sign (below -inf in the integer keys)
    a[2, 1] = np.inf
    a[3] = -np.inf
    b = np.roll(a, 1, axis=1)
    wide = _measures(a.astype(np.float64), b.astype(np.float64))
    for name, got in _measures(a, b).items():
        expected = wide[name].astype(np.float32)
        assert np.array_equal(np.isnan(got), np.isnan(expected)), name
        finite = ~np.isnan(expected)
        assert np.array_equal(got[finite], expected[finite]), name


def _float64_inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(64)
    a = rng.standard_normal((12, 40)) * 10
    a[0, :5] = -np.inf
    a[1] = np.linspace(-740.0, 0.0, 40)
    b = rng.standard_normal((12, 40)) * 10
    return a, b


_PLAIN_PYTHON = """
import json, sys
import numpy as np
from crossent.info import _fused
a = np.array(json.loads(sys.argv[1]))
b = np.array(json.loads(sys.argv[2]))
out, _ = _fused.measure_rows(a, b, forms=("logits", "logits"), want=15, log_base=None)
print(json.dumps([float(v).hex() for v in out.ravel()]))
"""


def test_issue13_fastexp_float64_bit_for_bit_math_exp():
    """The compiled float64 kernel against itself run as Python (math.exp, libm's)."""
    a, b = _float64_inputs()
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    run = subprocess.run(
        [sys.executable, "-c", _PLAIN_PYTHON, json.dumps(a.tolist()), json.dumps(b.tolist())],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    expected = [float.fromhex(v) for v in json.loads(run.stdout)]
    out, _ = _fused.measure_rows(a, b, forms=("logits", "logits"), want=15, log_base=None)
    got = [float(v) for v in out.ravel()]
    assert [v.hex() for v in got] == [v.hex() for v in expected]


def test_issue13_fastexp_float64_within_float64_rounding():
    a, b = _float64_inputs()
    rng = np.random.default_rng(65)
    a = np.concatenate([a, rng.standard_normal((50, 40)) * 3])
    b = np.concatenate([b, rng.standard_normal((50, 40)) * 3])
    truth = _references(a, b)
    for name, got in _measures(a, b).items():
        assert got.dtype == np.float64
        scale = np.maximum(np.abs(truth[name]), LD(1e-300))
        worst = float(np.max(np.abs(got.astype(LD) - truth[name]) / scale))
        assert worst < 2e-13, (name, worst)  # the polynomial's 5e-11 would show
