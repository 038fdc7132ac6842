"""Issue 13 follow-up: NumPy float64 losses whose rows came out ``inf`` although the true
loss is finite (a gap ``c - m`` or ``(c - m)/T`` past the float64 range, weighed by a
small ``v_c`` or divided by ``T > 1``; ``LSE**2`` of the z-loss; a ``'mean'`` whose sum
overflows). Oracle: the definitions in mpmath at 200 bits. Every case below is ``inf``
(or, for gradients, checked finite) on main before the fix (``_far_gaps``)."""

from __future__ import annotations

import math
import warnings

import mpmath
import numpy as np
import pytest

import crossent

#: The oracles' working precision, set where they run (``@mpmath.workprec(BITS)`` on the
#: helpers and on the tests that do mpmath arithmetic themselves): 200 bits. The largest
#: cancellation, ``LSE - z'_c`` of a gap of 2e308 beside a loss of 1e308, loses no bits.
BITS = 200


@mpmath.workprec(BITS)
def _lse(x: list[mpmath.mpf]) -> mpmath.mpf:
    top = max(x)
    return top + mpmath.log(mpmath.fsum(mpmath.exp(xc - top) for xc in x))


@mpmath.workprec(BITS)
def _softmax_row(z, v, omega, *, temperature=1.0, z_loss=0.0) -> mpmath.mpf:
    r""":math:`\sum_c v_c(\operatorname{LSE} - z'_c) + \lambda\omega\operatorname{LSE}^2`."""
    zt = [mpmath.mpf(float(zc)) / mpmath.mpf(temperature) for zc in z]
    lse = _lse(zt)
    loss = mpmath.fsum(
        mpmath.mpf(float(vc)) * (lse - zc) for vc, zc in zip(v, zt, strict=True) if vc
    )
    return loss + mpmath.mpf(z_loss) * mpmath.mpf(float(omega)) * lse * lse


@mpmath.workprec(BITS)
def _label_v(y: int, classes: int, weight, eps: float) -> tuple[list[mpmath.mpf], mpmath.mpf]:
    w = [mpmath.mpf(1)] * classes if weight is None else [mpmath.mpf(float(x)) for x in weight]
    eps_m = mpmath.mpf(eps)
    v = [eps_m / classes * wc for wc in w]
    v[y] += (1 - eps_m) * w[y]
    return v, w[y]


@mpmath.workprec(BITS)
def _close(ours: float, truth: mpmath.mpf) -> bool:
    return math.isfinite(ours) and abs(mpmath.mpf(ours) - truth) <= 1e-13 * abs(truth)


def _quiet(f, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the common path's overflow
        return f(*args, **kwargs)


LABEL_CASES = [
    # (logits row, label, keywords): each row's loss is inf on main, finite in truth
    ([1e308, -1e308, 0.0], 0, {"label_smoothing": 0.03}),  # eps/C * 2e308
    ([1e308, -1e308], 1, {"weight": np.array([1.0, 0.25])}),  # w_y < 1
    ([1e308, -1e308], 1, {"temperature": 4.0}),  # T > 1
    ([1.0, -1e308, 0.0], 0, {"temperature": 0.5, "label_smoothing": 0.1}),  # T < 1
    ([1e200, 0.0], 0, {"z_loss": 1e-100}),  # LSE**2 overflows
    ([1e200, -1e308], 1, {"temperature": 0.5, "z_loss": 1e-100, "weight": np.array([1.0, 1e-3])}),
    (
        [1e308, -1e308, 3.0],
        2,
        {"label_smoothing": 0.2, "weight": np.array([0.5, 0.1, 1.0]), "temperature": 3.0},
    ),
    # a -inf logit on a class of weight 0 is absent (not 0 * inf) in the far row too
    ([1e308, -1e308, -np.inf], 0, {"label_smoothing": 0.1, "weight": np.array([1.0, 0.5, 0.0])}),
]


@pytest.mark.parametrize(("row", "label", "keywords"), LABEL_CASES)
def test_label_rows_are_finite_and_exact(row, label, keywords) -> None:
    """Label smoothing, class weights < 1, T > 1 and < 1, the z-loss (inf on main)."""
    logits = np.array([row, [0.5, -0.25, 2.0][: len(row)]])
    labels = np.array([label, 0])
    got = _quiet(crossent.softmax_cross_entropy, logits, labels, reduction="none", **keywords)
    classes = len(row)
    eps = keywords.get("label_smoothing", 0.0)
    v, omega = _label_v(label, classes, keywords.get("weight"), eps)
    truth = _softmax_row(
        row,
        v,
        omega,
        temperature=keywords.get("temperature", 1.0),
        z_loss=keywords.get("z_loss", 0.0),
    )
    assert _close(float(got[0]), truth), (got[0], truth)
    # the finite row keeps the common path's bits
    common = _quiet(
        crossent.softmax_cross_entropy._common_path, logits, labels, reduction="none", **keywords
    )
    assert got[1] == common[1]
    assert math.isinf(common[0])  # the defect the fix removes
    total = _quiet(crossent.softmax_cross_entropy, logits, labels, reduction="sum", **keywords)
    assert total == got[0] + got[1]


@mpmath.workprec(BITS)
def test_probability_targets() -> None:
    """A small probability target weighs a gap past the float64 range (inf on main)."""
    logits = np.array([[1e308, -1e308, 0.0], [1.0, 2.0, 3.0]])
    targets = np.array([[0.99, 0.01, 0.0], [0.2, 0.3, 0.5]])
    got = _quiet(crossent.softmax_cross_entropy_with_targets, logits, targets, reduction="none")
    for i in range(2):
        truth = _softmax_row(logits[i], targets[i], 1.0)
        assert _close(float(got[i]), truth)
    weight = np.array([2.0, 0.5, 1.0])
    mean = _quiet(
        crossent.softmax_cross_entropy_with_targets,
        logits,
        targets,
        weight=weight,
        label_smoothing=0.1,
        temperature=0.5,
    )
    rows = []
    for i in range(2):
        t = [mpmath.mpf(float(x)) for x in targets[i]]
        v = [
            mpmath.mpf(float(w)) * (mpmath.mpf("0.9") * tc + mpmath.mpf("0.1") / 3)
            for w, tc in zip(weight, t, strict=True)
        ]
        rows.append(_softmax_row(logits[i], v, 1.0, temperature=0.5))
    omega = mpmath.fsum(
        mpmath.mpf(float(w)) * mpmath.mpf(float(x))
        for i in range(2)
        for w, x in zip(weight, targets[i], strict=True)
    )
    assert _close(float(mean), mpmath.fsum(rows) / omega)


@mpmath.workprec(BITS)
def test_mean_whose_sum_overflows() -> None:
    """Two rows of 1e308 have mean 1e308 (inf on main); 'sum' and 'parts' stay inf."""
    logits = np.array([[1e308, 0.0], [1e308, 0.0], [0.0, 0.0]])
    labels = np.array([1, 1, -100])
    mean = _quiet(crossent.softmax_cross_entropy, logits, labels, ignore_index=-100)
    assert mean == 1e308
    assert math.isinf(
        _quiet(crossent.softmax_cross_entropy, logits, labels, ignore_index=-100, reduction="sum")
    )
    parts = _quiet(
        crossent.softmax_cross_entropy, logits, labels, ignore_index=-100, reduction="parts"
    )
    assert math.isinf(parts.total)
    assert parts.normalizer == 2.0
    bits = _quiet(crossent.softmax_cross_entropy, logits[:2], labels[:2], base=2, reduction="none")
    assert _close(float(bits[0]), mpmath.mpf(1e308) / mpmath.log(2))


def test_true_inf_stays_inf() -> None:
    """A -inf logit at the label is an infinite loss, and stays one."""
    logits = np.array([[0.0, -np.inf], [1e308, -1e308]])
    got = _quiet(
        crossent.softmax_cross_entropy,
        logits,
        np.array([1, 1]),
        label_smoothing=0.1,
        reduction="none",
    )
    assert math.isinf(got[0])
    assert math.isinf(got[1])


DISTILL_CASES = [
    # (student row, teacher row, keywords)
    ([1e308, -1e308], [1 - 1e-10, 1e-10], {"temperature": 2.0, "teacher_form": "probs"}),
    ([1e308, 0.0], [0.5, 0.5], {"temperature": 0.5, "teacher_form": "probs"}),
    ([0.0, 0.0], [1e308, 0.0], {"temperature": 0.5, "direction": "reverse"}),
    ([1e308, -1e308], [3.0, -1.0], {"temperature": 2.0}),
]


@pytest.mark.parametrize(("student", "teacher", "keywords"), DISTILL_CASES)
@mpmath.workprec(BITS)
def test_distillation(student, teacher, keywords) -> None:
    """T^2 KL of softened distributions, T > 1 and T < 1, both directions (inf on main)."""
    temperature = keywords["temperature"]
    form = keywords.get("teacher_form", "logits")
    s = np.array([student, [0.1, 0.2]])
    t = np.array([teacher, [0.5, 0.5] if form == "probs" else [0.3, -0.3]])
    got = _quiet(crossent.distillation_loss, s, t, reduction="none", **keywords)
    temp = mpmath.mpf(temperature)

    def log_softmax(x):
        xt = [mpmath.mpf(float(c)) / temp for c in x]
        lse = _lse(xt)
        return [c - lse for c in xt]

    log_s = log_softmax(student)
    if form == "probs":
        log_t = log_softmax([float(mpmath.log(mpmath.mpf(float(c)))) for c in teacher])
    else:
        log_t = log_softmax(teacher)
    first, second = (
        (log_t, log_s) if keywords.get("direction", "forward") == "forward" else (log_s, log_t)
    )
    kl = mpmath.fsum(mpmath.exp(a) * (a - b) for a, b in zip(first, second, strict=True))
    assert _close(float(got[0]), temp * temp * kl), (got[0], temp * temp * kl)
    common = _quiet(crossent.distillation_loss._common_path, s, t, reduction="none", **keywords)
    assert math.isinf(common[0])
    assert got[1] == common[1]


def test_far_gradients_are_finite() -> None:
    """The gradients need no second pass: (A p - v)/T is bounded, p = 0 at a far gap."""
    logits = np.array([[1e308, -1e308, 0.0]])
    grad = crossent.softmax_cross_entropy_grad(logits, np.array([0]), label_smoothing=0.03)
    np.testing.assert_allclose(grad, [[0.02, -0.01, -0.01]], rtol=1e-15, atol=0)
    grad = crossent.distillation_loss_grad(logits[:, :2], np.array([[0.0, 0.0]]), temperature=2.0)
    np.testing.assert_allclose(grad, [[1.0, -1.0]], rtol=1e-15, atol=0)


def test_float32_mean_whose_sum_overflows() -> None:
    """Float32 rows of 3e38 have mean 3e38 (inf on main); the rows and sum stay as they are."""
    logits = np.array([[3e38, 0.0], [3e38, 0.0]], dtype=np.float32)
    labels = np.array([1, 1])
    mean = _quiet(crossent.softmax_cross_entropy, logits, labels)
    assert mean.dtype == np.float32
    assert mean == np.float32(3e38)
    assert math.isinf(_quiet(crossent.softmax_cross_entropy, logits, labels, reduction="sum"))
