"""No NumPy RuntimeWarning escapes a public call on hostile-but-valid NumPy inputs.

Extreme temperatures (1e-320, 1e300), logits at +-1e308 and -inf, subnormals, zeros in
probabilities and empty batches are all valid: an honest overflow (``1/T`` past
1.8e308) is an infinite number, not a warning for the caller to see. Each case runs
under ``warnings.simplefilter("error")``. On main ``softmax_cross_entropy_grad`` and
``softmax_cross_entropy_with_targets_grad`` at ``temperature=1e-320`` ("overflow
encountered in divide", losses/_terms.py) and ``compare_log_loss`` with a loss of 1e308
("overflow encountered in multiply", calibration/_bootstrap.py) warned.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

import crossent

LOGITS = np.array([[1e308, -1e308, 0.0], [-np.inf, 0.0, 1.0], [5e-324, 0.0, -5e-324]])
LABELS = np.array([0, 1, 2])
PROBS = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [5e-324, 1.0, 0.0]])
EMPTY = np.zeros((0, 3))
EMPTY_LABELS = np.zeros(0, dtype=np.int64)
BINARY_LOGITS = np.array([1e308, -1e308, -np.inf, np.inf, 5e-324, 0.0, -5e-324, 40.0, -800.0])
BINARY_TARGETS = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 1.0, 0.0, 1.0, 1.0])
BINARY_PROBS = np.array([0.0, 1.0, 5e-324, 1.0 - 1e-16, 0.5])
FAR = np.array([[1e-300, 5e-324, 1.7e308, -0.0, 1e308]])
PAST = np.array([[700.0, 1.7e308], [-1.7e308, 0.0], [1e16, -1.7e308]])  # losses 1.7e308, 0, 1.7e308
PAST_LABELS = np.array([0, 1, 1])


def _strict(a: Any) -> Any:
    return pytest.importorskip("array_api_strict").asarray(np.asarray(a))


def _past_range_cases() -> list[tuple[str, Callable[[], Any]]]:
    """hostilenumpy9: a smoothing sum, a weighted product (array-api-strict), a total, a
    Weston-Watkins row or a conversion to bits past the range, each of which warned."""
    c = crossent
    cases: list[tuple[str, Callable[[], Any]]] = []
    for name in ("softmax_cross_entropy", "softmax_cross_entropy_grad"):
        f = getattr(c, name)
        cases.append((f"{name}-smoothing-far", lambda f=f: f(FAR, [3], label_smoothing=0.3)))
    targets = [[0.1, 0.4, 0.0, 0.4, 0.1]]
    cases.append(
        (
            "with_targets-weight-strict",
            lambda: c.softmax_cross_entropy_with_targets(
                _strict([[0.0, -1.7e308, -np.inf, 700.0, 700.0]]),
                _strict(targets),
                weight=_strict([2.0, 2.7, 1.0, 1.0, 1.2]),
            ),
        )
    )
    for name in ("multiclass_hinge_loss", "poly1_cross_entropy", "softmax_focal_loss"):
        f = getattr(c, name)
        cases.append((f"{name}-mean-past-range", lambda f=f: f(PAST, PAST_LABELS)))
        cases.append((f"{name}-sum-past-range", lambda f=f: f(PAST, PAST_LABELS, reduction="sum")))
    cases.append(
        (
            "weston_watkins-row-past-range",
            lambda: c.multiclass_hinge_loss(
                [[1e16, 1e16, -1.7e308, -np.inf, 0.0], [1.7e308, 1e308, 0.0, 0.5, -0.0]],
                [2, 0],
                variant="weston_watkins",
                margin=1e300,
                reduction="none",
            ),
        )
    )
    cases.append(
        (
            "sigmoid-bits-past-range",
            lambda: c.sigmoid_cross_entropy(
                [[-1.7e308], [1.7e308], [5e-324]],
                [[0.5], [1.0], [0.5]],
                weight=np.array([[1.6], [1.0], [1.0]]),
                base=2.0,
                reduction="none",
            ),
        )
    )
    cases.append(
        (
            "softmax_focal-bits-past-range",
            lambda: c.softmax_focal_loss(
                [[-np.inf, 3.0, 5e-324, 3.0, 3.0], [1.7e308, 0.0, -1e16, 0.0, -np.inf]],
                [2, 3],
                base=2.0,
                reduction="none",
            ),
        )
    )
    return cases


def _cases() -> list[tuple[str, Callable[[], Any]]]:
    c = crossent
    cases: list[tuple[str, Callable[[], Any]]] = []
    for t in (1e-320, 1e300):
        for name in ("softmax_cross_entropy", "softmax_cross_entropy_grad"):
            f = getattr(c, name)
            cases.append((f"{name}-T{t!r}", lambda f=f, t=t: f(LOGITS, LABELS, temperature=t)))
        for name in (
            "softmax_cross_entropy_with_targets",
            "softmax_cross_entropy_with_targets_grad",
        ):
            f = getattr(c, name)
            cases.append((f"{name}-T{t!r}", lambda f=f, t=t: f(LOGITS, PROBS, temperature=t)))
        for name in ("distillation_loss", "distillation_loss_grad"):
            f = getattr(c, name)
            for d in ("forward", "reverse"):
                cases.append(
                    (
                        f"{name}-{d}-T{t!r}",
                        lambda f=f, t=t, d=d: f(LOGITS, LOGITS[::-1], temperature=t, direction=d),
                    )
                )
                cases.append(
                    (
                        f"{name}-{d}-probs-T{t!r}",
                        lambda f=f, t=t, d=d: f(
                            LOGITS, PROBS, temperature=t, direction=d, teacher_form="probs"
                        ),
                    )
                )
    labelled = ("poly1_cross_entropy", "softmax_focal_loss", "multiclass_hinge_loss")
    elementwise = ("sigmoid_cross_entropy", "sigmoid_focal_loss")
    batches = [(labelled, (LOGITS, LABELS), (EMPTY, EMPTY_LABELS))]
    batches.append((elementwise, (BINARY_LOGITS, BINARY_TARGETS), (np.zeros(0), np.zeros(0))))
    for losses, full, empty in batches:
        for name in (n + grad for n in losses for grad in ("", "_grad")):
            f = getattr(c, name)
            cases.append((name, lambda f=f, a=full: f(*a)))
            cases.append((f"{name}-empty", lambda f=f, a=empty: f(*a)))
    for name in ("sigmoid_cross_entropy", "sigmoid_cross_entropy_grad"):
        f = getattr(c, name)
        cases.append(
            (f"{name}-pos_weight", lambda f=f: f(BINARY_LOGITS, BINARY_TARGETS, pos_weight=1e300))
        )
    for name in ("sigmoid_focal_loss", "sigmoid_focal_loss_grad"):
        f = getattr(c, name)
        cases.append((f"{name}-gamma", lambda f=f: f(BINARY_LOGITS, BINARY_TARGETS, gamma=1e-320)))
    for name in ("surprisal", "binary_entropy"):
        f = getattr(c, name)
        cases.append((name, lambda f=f: f(BINARY_PROBS)))
    for name in ("binary_cross_entropy", "binary_cross_entropy_grad"):
        f = getattr(c, name)
        cases.append((name, lambda f=f: f(BINARY_PROBS, BINARY_PROBS[::-1])))
        cases.append((f"{name}-same", lambda f=f: f(BINARY_PROBS, BINARY_PROBS)))
    for name in ("entropy", "perplexity"):
        f = getattr(c, name)
        cases.append((name, lambda f=f: f(PROBS)))
        cases.append((f"{name}-logits", lambda f=f: f(LOGITS, p_form="logits")))
        cases.append((f"{name}-empty", lambda f=f: f(EMPTY)))
    for name in ("cross_entropy", "kl_divergence", "js_divergence", "cross_entropy_decomposition"):
        f = getattr(c, name)
        cases.append((name, lambda f=f: f(PROBS, PROBS[::-1])))
        cases.append(
            (
                f"{name}-logits",
                lambda f=f: f(LOGITS, LOGITS[::-1], p_form="logits", q_form="logits"),
            )
        )
        cases.append((f"{name}-empty", lambda f=f: f(EMPTY, EMPTY)))
    cases.append(("perplexity-pq", lambda: c.perplexity(PROBS, PROBS[::-1])))
    cases.extend(_past_range_cases())
    for name in (
        "accuracy",
        "brier_score",
        "negative_log_likelihood",
        "spherical_score",
        "calibration_error",
        "reliability_diagram",
        "smooth_calibration_error",
    ):
        f = getattr(c, name)
        cases.append((name, lambda f=f: f(PROBS, LABELS)))
        cases.append((f"{name}-logits", lambda f=f: f(LOGITS, LABELS, form="logits")))
    cases.append(
        (
            "recalibration_gap",
            lambda: c.recalibration_gap(np.tile(LOGITS, (4, 1)), np.tile(LABELS, 4), folds=2),
        )
    )
    cases.append(
        (
            "bootstrap_interval",
            lambda: c.bootstrap_interval("nll", LOGITS, LABELS, form="logits", resamples=20),
        )
    )
    cases.append(
        (
            "compare_log_loss",
            lambda: c.compare_log_loss(
                LOGITS, LOGITS[::-1], LABELS, form_a="logits", form_b="logits", resamples=20
            ),
        )
    )
    cases.append(("report", lambda: c.report(LOGITS, LABELS, form="logits")))
    return cases


CASES = _cases()


@pytest.mark.parametrize("call", [f for _, f in CASES], ids=[name for name, _ in CASES])
def test_no_runtime_warning_escapes(call: Callable[[], Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        call()


def test_the_silenced_overflow_is_still_infinite() -> None:
    # Silencing must not change the number: 1/T past 1.8e308 stays +-inf.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grad = crossent.softmax_cross_entropy_grad(
            np.array([[1.0, 0.0]]), np.array([1]), temperature=1e-320
        )
    assert np.isposinf(grad[0, 0])
    assert np.isneginf(grad[0, 1])


def _converter(namespace: str) -> Callable[[Any], Any]:
    """``asarray`` of NumPy, PyTorch (skipped without it) or array-api-strict."""
    if namespace == "numpy":
        return np.asarray
    if namespace == "torch":
        return pytest.importorskip("torch").asarray  # type: ignore[no-any-return]
    return _strict


@pytest.mark.parametrize("namespace", ["numpy", "array_api_strict", "torch"])
@pytest.mark.parametrize(
    "name", ["multiclass_hinge_loss", "poly1_cross_entropy", "softmax_focal_loss"]
)
def test_a_float64_mean_whose_total_is_past_the_range(name: str, namespace: str) -> None:
    """Losses 1.7e308, 0, 1.7e308: the total is past float64's range, the mean is not.
    On main the mean was ``inf`` (``softmax_cross_entropy`` gave the mean)."""
    convert = _converter(namespace)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = getattr(crossent, name)(convert(PAST), convert(PAST_LABELS))
    exact = float(Fraction(1.7e308) * 2 / 3)  # the quotient of the exact total, rounded once
    assert float(got) == exact
    assert float(crossent.softmax_cross_entropy(PAST, PAST_LABELS)) == exact


@pytest.mark.parametrize("namespace", ["numpy", "array_api_strict", "torch"])
def test_a_float64_mean_of_losses_each_near_the_top_of_the_range(namespace: str) -> None:
    r"""Three losses of :math:`1.5 \cdot 2^{1023}` (1.35e308; three times it is exact)
    (branch mutation8): the sum must be scaled by :math:`2^{-k}` with :math:`2^k` above
    the count (a scale of 1/2 overflowed it, and the mean was ``inf``)."""
    convert = _converter(namespace)
    top = 1.5 * 2.0**1023
    logits, labels = np.array([[0.0, top]] * 3), np.zeros(3, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = crossent.multiclass_hinge_loss(convert(logits), convert(labels))
    assert float(got) == top


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "sigmoid_cross_entropy"])
def test_a_weighted_loss_past_the_range_on_array_api_strict(name: str) -> None:
    """Weight 1.5 on a loss of 1.7e308 (branch mutation8): ``weighted_term``'s product is
    ``inf`` without NumPy's overflow warning on array-api-strict (NumPy underneath)."""
    weight = _strict(np.array([1.5, 1.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if name == "softmax_cross_entropy":
            logits, labels = np.array([[0.0, 1.7e308], [0.0, 1.0]]), np.array([0, 1])
        else:
            logits, labels = np.array([-1.7e308, 1.0]), np.array([1.0, 0.0])
        got = getattr(crossent, name)(
            _strict(logits), _strict(labels), weight=weight, reduction="none"
        )
    assert np.isposinf(np.asarray(got)[0])
