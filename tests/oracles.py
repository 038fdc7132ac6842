"""Independent references: the measures at 50 significant digits with mpmath.

Each float input is converted to an mpf exactly, so these are the true values of the
measures of the given floating-point numbers (not of their decimal intent). Each
reference sets its own precision where it runs (``@mpmath.workdps(DIGITS)``), never
mpmath's global one at import (``tests/conftest.py``'s ``MPMATH_DEFAULT_PREC``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import mpmath
import numpy as np
from mpmath import libmp

#: The measures' working precision: 50 digits. Their worst cancellation is the KL's of
#: nearly equal rows (terms of 1e-16 relative summing to 1e-32): 34 digits kept.
DIGITS = 50
INF = mpmath.inf


def _mp(values: Sequence[float]) -> list[mpmath.mpf]:
    return [mpmath.mpf(float(v)) for v in values]


def mean_softmax_surprisal(rows: list[list[float]], labels: list[int]) -> float:
    """The mean of ``log sum_j exp z_j - z_y`` over rows of logits
    ``z`` and their labels ``y``, in 200-bit mpmath, rounded once to float."""
    with mpmath.workprec(200):
        total = mpmath.mpf(0)
        for row, label in zip(rows, labels, strict=True):
            z = [mpmath.mpf(v) for v in row]
            top = max(z)
            total += top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in z)) - z[label]
        return float(total / len(rows))


def float32_form(z: np.ndarray, form: str) -> np.ndarray:
    """Rows of logits ``z`` as ``form`` in float32: the logits themselves, or their
    log-softmax or softmax formed in ``z``'s precision and rounded once to float32 (the
    inputs of the JAX float32 KL tests; their exact probabilities:
    :func:`row_probabilities` of the rounded rows)."""
    if form == "logits":
        return z.astype(np.float32)
    shifted = z - z.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return (log_p if form == "log_probs" else np.exp(log_p)).astype(np.float32)


def row_probabilities(x: Sequence[float], form: str) -> list[mpmath.mpf]:
    """The exact probabilities of one row given as ``form`` (``'probs'``,
    ``'log_probs'`` or ``'logits'``: the softmax), as mpfs at the caller's precision
    (not :data:`DIGITS`: the tests that use it choose theirs)."""
    values = _mp(x)
    if form == "probs":
        return values
    if form == "log_probs":
        return [mpmath.exp(v) for v in values]
    top = max(values)
    weights = [mpmath.exp(v - top) for v in values]
    total = mpmath.fsum(weights)
    return [w / total for w in weights]


@mpmath.workdps(DIGITS)
def entropy(p: Sequence[float]) -> float:
    return float(-mpmath.fsum(x * mpmath.log(x) for x in _mp(p) if x > 0))


@mpmath.workdps(DIGITS)
def cross_entropy(p: Sequence[float], q: Sequence[float]) -> float:
    total = mpmath.mpf(0)
    for x, y in zip(_mp(p), _mp(q), strict=True):
        if x == 0:
            continue
        if y == 0:
            return float("inf")
        total -= x * mpmath.log(y)
    return float(total)


@mpmath.workdps(DIGITS)
def kl_divergence(p: Sequence[float], q: Sequence[float]) -> float:
    total = mpmath.mpf(0)
    for x, y in zip(_mp(p), _mp(q), strict=True):
        if x == 0:
            continue
        if y == 0:
            return float("inf")
        total += x * mpmath.log(x / y)
    return float(total)


@mpmath.workdps(DIGITS)
def js_divergence(p: Sequence[float], q: Sequence[float]) -> float:
    total = mpmath.mpf(0)
    for x, y in zip(_mp(p), _mp(q), strict=True):
        m = (x + y) / 2
        if x > 0:
            total += x * mpmath.log(x / m) / 2
        if y > 0:
            total += y * mpmath.log(y / m) / 2
    return float(total)


@mpmath.workdps(DIGITS)
def binary_cross_entropy(p: float, q: float) -> float:
    # 1 - q is formed exactly at any precision: mpmath.log1p(-q), not log(1 - q), since
    # 1 - 5e-207 is 1 at 50 digits.
    x, y = mpmath.mpf(float(p)), mpmath.mpf(float(q))
    total = mpmath.mpf(0)
    if x > 0:
        if y == 0:
            return float("inf")
        total -= x * mpmath.log(y)
    if x < 1:
        if y == 1:
            return float("inf")
        total -= (1 - x) * mpmath.log1p(-y)
    return float(total)


@mpmath.workdps(DIGITS)
def softmax(logits: Sequence[float]) -> list[float]:
    z = _mp(logits)
    m = max(z)
    e = [mpmath.exp(v - m) for v in z]
    s = mpmath.fsum(e)
    return [float(v / s) for v in e]


@mpmath.workdps(DIGITS)
def _log_softmax_mp(logits: Sequence[float]) -> list[mpmath.mpf]:
    z = _mp(logits)
    lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in z))
    return [v - lse for v in z]


@mpmath.workdps(DIGITS)
def entropy_of_logits(logits: Sequence[float]) -> float:
    """H(softmax(z)) without rounding the probabilities to floats on the way."""
    log_p = _log_softmax_mp(logits)
    return float(-mpmath.fsum(mpmath.exp(lp) * lp for lp in log_p))


def sigmoid_focal_gradient(x: float, t: float, gamma: float, alpha: float | None) -> mpmath.mpf:
    r""":math:`\partial\,\mathrm{FL}/\partial x` of the sigmoid focal loss at float ``x``
    and target ``t`` (200 bits): :math:`q^\gamma(\gamma(1-2t)\sigma(x)\sigma(-x)\,
    \ell/q + \sigma(x) - t)`, :math:`q = t\sigma(-x) + (1-t)\sigma(x)`, :math:`\ell`
    the cross-entropy, times :math:`\alpha_t` where ``alpha`` is given
    (:func:`sigmoid_focal_gradient_and_scale`'s first value)."""
    return sigmoid_focal_gradient_and_scale(x, t, gamma, alpha)[0]


def sigmoid_focal_gradient_and_scale(
    x: float, t: float, gamma: float, alpha: float | None
) -> tuple[mpmath.mpf, mpmath.mpf]:
    r""":func:`sigmoid_focal_gradient` and the size of its terms, :math:`\alpha_t
    q^\gamma(\sigma(x) + t)` (200 bits; :math:`\alpha_t = 1` where ``alpha`` is None):
    the scale of a float64 evaluation's error where the terms cancel near the root."""
    with mpmath.workprec(200):
        xm, tm, g = mpmath.mpf(x), mpmath.mpf(t), mpmath.mpf(gamma)
        s, s_neg = 1 / (1 + mpmath.exp(-xm)), 1 / (1 + mpmath.exp(xm))
        q = tm * s_neg + (1 - tm) * s
        bce = -(tm * mpmath.log(s) + (1 - tm) * mpmath.log(s_neg))
        value = q**g * (g * (1 - 2 * tm) * s * s_neg / q * bce + s - tm)
        scale = q**g * (s + tm)
        if alpha is not None:
            value *= alpha * tm + (1 - alpha) * (1 - tm)
            scale *= alpha * tm + (1 - alpha) * (1 - tm)
        return value, scale


@mpmath.workdps(DIGITS)
def mean_surprisal_of_logits(logits: np.ndarray, labels: np.ndarray) -> float:
    """The mean over rows of ``-log softmax(z)_y`` in mpmath, rounded once: finite where
    the mean is, even where a row's own surprisal (``2e308`` for logits ``+-1e308``) is
    past float64's range."""
    rows = [-_log_softmax_mp(row)[int(y)] for row, y in zip(logits.tolist(), labels, strict=True)]
    return float(mpmath.fsum(rows) / len(rows))


@mpmath.workdps(DIGITS)
def cross_entropy_with_logits(p: Sequence[float], logits: Sequence[float]) -> float:
    """H(P, softmax(z)) in mpmath throughout."""
    log_q = _log_softmax_mp(logits)
    return float(-mpmath.fsum(x * lq for x, lq in zip(_mp(p), log_q, strict=True) if x > 0))


def label_gap_rows(
    classes: int, gaps: Sequence[int], offsets: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Rows (float64) and labels of every (gap, offset): the label ``gap`` above the row's
    other logits, the largest of them at ``offset`` and the rest up to 8 below, on a grid
    of 2^-20 (every ``z_c - z_y`` exact in float64: a float64 input's exponent is
    otherwise off by an ulp of it, tens of ulps of ``e^(z_c - z_y)``)."""
    rng = np.random.default_rng(classes)
    rows, labels = [], []
    for gap in gaps:
        for offset in offsets:
            row = offset - rng.uniform(0.0, 8.0, classes)
            row[rng.integers(classes)] = offset
            label = int(rng.integers(classes))
            row[label] = offset + gap
            rows.append(np.round(row * 2.0**20) / 2.0**20)
            labels.append(label)
    return np.asarray(rows), np.asarray(labels, dtype=np.int64)


def label_p_minus_one(
    z: np.ndarray, labels: np.ndarray, temperature: float, *, digits: int
) -> tuple[mpmath.mpf, ...]:
    r""":math:`p_y - 1 = -r/(1 + r)`, :math:`r = \sum_{c \ne y} e^{(z_c - z_y)/T}`, per row
    of ``z`` (its values as stored, each converted exactly), at ``digits`` significant
    digits (no cancellation: a sum of positive terms and a quotient; the caller's
    arithmetic on the results takes its own precision, the same ``digits`` as a rule).
    Each distinct value's exponential is formed once and weighted by its count (exact: a
    count is an integer; stored in 16 bits, a row of a thousand has a few dozen distinct
    values); on :func:`label_gap_rows`' grid by :func:`_grid_exp`'s tables, else by
    mpmath's exp."""
    with mpmath.workdps(digits):
        t = mpmath.mpf(temperature)
        out = []
        for row, label in zip(np.asarray(z, dtype=np.float64), labels, strict=True):
            top = float(row[label])
            values, counts = np.unique(np.delete(row, label), return_counts=True)
            rest = mpmath.fsum(
                int(n) * _term(float(x), top, t, temperature)
                for x, n in zip(values, counts, strict=True)
            )
            out.append(-rest / (1 + rest))
        return tuple(out)


#: The grid of :func:`label_gap_rows`: 2^-20 (stored in any format, its values stay on it
#: but for a few near 0, which take mpmath's exp).
_GRID = 2.0**20
_EXP_TABLES: dict[tuple[float, int], tuple[mpmath.mpf, list[dict[int, mpmath.mpf]]]] = {}


def _term(x: float, top: float, t: mpmath.mpf, temperature: float) -> mpmath.mpf:
    """:math:`e^{(x - top)/T}`: by the grid's tables where ``top - x`` is k 2^-20 with an
    integer k >= 0 (``top - x`` is exact in float64 there), else by mpmath's exp."""
    k = (top - x) * _GRID
    if k >= 0 and k.is_integer():
        return _grid_exp(int(k), temperature)
    return mpmath.exp((mpmath.mpf(x) - top) / t)


def _grid_exp(k: int, temperature: float) -> mpmath.mpf:
    r""":math:`e^{-k\delta}`, :math:`\delta = 2^{-20}/T`, as the product of three table
    entries (k's 9-bit digits: :math:`e^{-a 2^{18}\delta} e^{-b 2^9\delta} e^{-c\delta}`),
    each formed once per temperature and precision. :math:`\delta`, the entries and their
    product are formed with 20 bits more than the working precision, and the product
    rounded to it: within about half an ulp of it (mpmath's exp of the rounded quotient
    ``(x - top)/T``, as formed before, errs by up to :math:`k\delta` ulps)."""
    prec = mpmath.mp.prec
    wide = prec + 20
    if (temperature, prec) not in _EXP_TABLES:
        with mpmath.workprec(wide):
            delta = mpmath.mpf(2) ** -20 / mpmath.mpf(temperature)
        _EXP_TABLES[temperature, prec] = (delta, [{}, {}, {}])
    delta, tables = _EXP_TABLES[temperature, prec]
    entries = []
    for table, digit, shift in zip(
        tables, (k >> 18, (k >> 9) & 511, k & 511), (18, 9, 0), strict=True
    ):
        if digit not in table:
            with mpmath.workprec(wide):
                table[digit] = mpmath.exp(-(digit << shift) * delta)._mpf_
        entries.append(table[digit])
    # raw products (mpmath.libmp): the first two at the wide precision, the last rounded
    product = libmp.mpf_mul(entries[0], entries[1], wide, libmp.round_nearest)
    return mpmath.mp.make_mpf(libmp.mpf_mul(product, entries[2], prec, libmp.round_nearest))


def distillation_forward_gradient(
    student: np.ndarray, teacher: np.ndarray, temperature: float, *, digits: int = 60
) -> list[list[mpmath.mpf]]:
    r"""The forward distillation loss's gradient in the student's logits, per row:
    :math:`T\,(s - t)` with :math:`s, t` the softmaxes of ``student / T`` and
    ``teacher / T`` (``-inf`` entries 0), at ``digits`` digits (60: the entries cancel
    to about 1e-20 of the row's largest)."""
    out = []
    with mpmath.workdps(digits):
        t = mpmath.mpf(temperature)
        for z, v in zip(student.tolist(), teacher.tolist(), strict=True):
            ls, lt = tempered_log_softmax(z, t), tempered_log_softmax(v, t)
            out.append([t * (mpmath.exp(a) - mpmath.exp(b)) for a, b in zip(ls, lt, strict=True)])
    return out


def distillation_reverse(
    student: np.ndarray, teacher: np.ndarray, temperature: float, *, digits: int = 60
) -> tuple[list[mpmath.mpf], list[list[mpmath.mpf]]]:
    r"""The reverse distillation loss :math:`T^2 D(s\,\|\,t)` per row and its gradient
    in the student's logits, :math:`T s \odot (\log s - \log t - D)`, with :math:`s, t`
    the softmaxes of ``student / T`` and ``teacher / T`` (a class of :math:`s_c = 0`:
    no term, its entry 0), at ``digits`` digits (a saturated row's top entry cancels by
    some :math:`\max_c (z_r - z_c)/(T \ln 10)` digits)."""
    losses, gradients = [], []
    with mpmath.workdps(digits):
        t = mpmath.mpf(temperature)
        for z, v in zip(student.tolist(), teacher.tolist(), strict=True):
            ls, lt = tempered_log_softmax(z, t), tempered_log_softmax(v, t)
            s = [mpmath.exp(x) for x in ls]
            d = mpmath.fsum(a * (b - c) for a, b, c in zip(s, ls, lt, strict=True) if a != 0)
            losses.append(t * t * d)
            gradients.append(
                [0 if a == 0 else t * a * (b - c - d) for a, b, c in zip(s, ls, lt, strict=True)]
            )
    return losses, gradients


def tempered_log_softmax(row: Sequence[float], t: mpmath.mpf) -> list[mpmath.mpf]:
    r""":math:`\log\operatorname{softmax}(z / T)` of one row at mpmath's working precision
    (``-inf`` entries stay ``-inf``)."""
    x = [mpmath.mpf(a) / t if a != -math.inf else mpmath.mpf("-inf") for a in row]
    m = max(x)
    ell = mpmath.log(mpmath.fsum(mpmath.exp(a - m) for a in x))
    return [a - m - ell for a in x]


def worst_units_of_row_max(got: np.ndarray, want: Sequence[Sequence[mpmath.mpf]]) -> float:
    """The largest error of ``got`` against ``want``, in units of :math:`2^{-53}` times the
    largest magnitude of the entry's row in ``want``."""
    worst = 0.0
    for g, w in zip(got.tolist(), want, strict=True):
        unit = max(abs(x) for x in w) * mpmath.mpf(2) ** -53
        worst = max(
            worst, max(float(abs(mpmath.mpf(a) - b) / unit) for a, b in zip(g, w, strict=True))
        )
    return worst
