"""Issue 13 follow-ups of the hostile review (input hygiene): each test pins a defect and
fails on main at 47e5a2f, as its docstring says.

* ``bins=10**12`` ended in ``MemoryError``: bins are now at most ``MAX_BINS`` (2**20);
* logits of +-1e308 made NumPy warn (overflow in ``x - max`` and in the test sum of
  ``finite_row_max``) where ``-inf`` is the intended, handled result;
* ml_dtypes bfloat16 probabilities were taken with ``renormalize=True`` (divided in
  bfloat16), while refused without it;
* the measures and losses called a bfloat16 array "not real numbers";
* ``validate="no"`` / ``None`` / ``1`` were read by their truth value.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

import crossent

import oracles

MAX_BINS = 2**20  # the documented maximum (crossent.calibration._binning.MAX_BINS)

_PROBS = np.array([[0.25, 0.75], [0.5, 0.5], [0.875, 0.125]])
_LABELS = np.array([1, 0, 0])
_LOGITS = np.log(_PROBS)


# ----------------------------------------------------------------------------- bins


@pytest.mark.parametrize("bins", [MAX_BINS + 1, 10**12, np.int64(2**40)])
@pytest.mark.parametrize(
    "call",
    [
        lambda b: crossent.calibration_error(_PROBS, _LABELS, bins=b),
        lambda b: crossent.reliability_diagram(_PROBS, _LABELS, bins=b),
        lambda b: crossent.EvaluationState(2, bins=b),
        lambda b: crossent.HistogramBinning(bins=b).fit(_PROBS, _LABELS),
        lambda b: crossent.report(_PROBS, _LABELS, bins=b, resamples=5),
    ],
    ids=["calibration_error", "reliability_diagram", "state", "histogram", "report"],
)
def test_too_many_bins_are_refused_by_name(call: Callable[[object], object], bins: int) -> None:
    """Main: ``MemoryError`` (7.28 TiB asked for 10**12 bins), or 2**20 + 1 taken."""
    with pytest.raises(crossent.InputError, match=rf"`bins` must be at most {MAX_BINS} .*got"):
        call(bins)


def test_the_largest_bin_count_is_taken_and_exact() -> None:
    """At 2**20 bins every example has its own bin, so the L1 ECE is the mean of
    ``|confidence - hit|`` (an independent float64 formula)."""
    expected = np.mean(np.abs(_PROBS.max(axis=1) - (_PROBS.argmax(axis=1) == _LABELS)))
    got = crossent.calibration_error(_PROBS, _LABELS, bins=MAX_BINS).value
    assert got == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize(
    ("call", "fix"),
    [
        (
            lambda: crossent.EvaluationState(17, bins=MAX_BINS, scope="class-wise"),
            "use fewer `bins`",
        ),
        (
            lambda: crossent.EvaluationState(4097, scope="class-wise", binning="quantile"),
            "use binning='uniform' with fewer bins",
        ),
        (
            lambda: crossent.calibration_error(
                np.full((2, 17), 1 / 17), [0, 1], scope="class-wise", bins=MAX_BINS
            ),
            "use fewer `bins`",
        ),
    ],
    ids=["state-uniform", "state-quantile", "calibration_error"],
)
def test_class_wise_bins_are_capped_in_all(call: Callable[[], object], fix: str) -> None:
    """Main: taken, 17 x 2**20 bins (428 MB) and 4097 classes of 4098 fine cells
    (403 MB); 1000 classes of 2**20 bins (the CLI's ``--scope class-wise --bins
    1048576``) asked for 24 GiB and ended in ``MemoryError``."""
    with pytest.raises(crossent.InputError, match=r"more than 16777216 \(2\*\*24\)") as raised:
        call()
    assert fix in str(raised.value)


def test_class_wise_bins_below_the_cap_are_taken() -> None:
    """Two classes of 2**20 bins: taken, and each example has its own bin, so each
    class's L1 error is the mean of ``|p_k - [label = k]|``, averaged over classes."""
    probs = np.array([[0.5, 0.5], [0.25, 0.75], [0.875, 0.125]])
    labels = np.array([0, 1, 1])
    got = crossent.calibration_error(probs, labels, scope="class-wise", bins=MAX_BINS).value
    expected = np.mean(np.abs(probs - np.eye(2)[labels]))
    assert got == pytest.approx(expected, rel=1e-14)


# ------------------------------------------------------------------ runtime warnings


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_overflowing_logits_give_exact_values_without_warnings() -> None:
    """Main: ``RuntimeWarning: overflow encountered in subtract`` (``x - max`` of logits
    1e308 apart) and ``... in reduce`` (the sum of two row maxima of 1e308).

    References by hand: a row [1e308, 0] has log-partition 1e308 (the other term
    e^-1e308 vanishes), so the NLLs are 0 and 1e308, mean 5e307; the NLL of
    [1e308, -1e308] at label 1 is 2e308, beyond float64, so +inf; a softmax that is
    one-hot to within e^-1e308 has entropy 0.
    """
    twin_rows = np.array([[1e308, 0.0], [1e308, 0.0]])
    nll = crossent.negative_log_likelihood(twin_rows, np.array([0, 1]), form="logits")
    assert nll == 5e307
    wide = np.array([[1e308, -1e308]])
    assert crossent.negative_log_likelihood(wide, np.array([1]), form="logits") == math.inf
    logits = np.array([[1e308, -1e308, 0.0], [1e308, -1e308, 0.0]])
    np.testing.assert_array_equal(crossent.entropy(logits, p_form="logits"), [0.0, 0.0])
    assert crossent.entropy(logits[0], p_form="logits") == 0.0
    # confidences 1 (a miss) and sigmoid(1) (a hit), in two of the 15 bins
    ece = crossent.calibration_error(
        np.array([[1e308, -1e308], [0.0, 1.0]]), np.array([1, 1]), form="logits"
    )
    assert ece.value == pytest.approx((1.0 + (1.0 - 1.0 / (1.0 + math.exp(-1.0)))) / 2, 1e-15)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_report_of_overflowing_logits_warns_nothing() -> None:
    """Main: overflow warnings from the log-softmax, the temperature moments and the
    report's recalibrated curve (the older test of this input filtered them out)."""
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(12, 2))
    labels = (np.arange(12) % 2).astype(np.int64)
    logits[0], labels[0] = (1e308, -1e308), 1
    payload = crossent.report(logits, labels, form="logits", resamples=5).to_dict()
    # the first row's 2e308 is past float64's range, the mean over 12 rows is not
    want = oracles.mean_surprisal_of_logits(logits, labels)
    assert payload["nll_nats"] == pytest.approx(want, rel=1e-15)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_surprisals_summing_past_the_range_warn_nothing() -> None:
    """Main: "overflow encountered in reduce" from the block sums of surprisals
    (``_summaries.totals_of``) and the temperature moments' NLL sum.

    Four binary rows of log-odds +-1.7e308 on the wrong side have surprisal 1.7e308
    each: the mean over 12 rows is 5.67e307, a sum past float64's range (+inf until
    issue 13's branch hostile16; now the finite mean: ``4 * 1.7e308 / 12`` overflowed
    to +inf too, so the bound held only for an infinite NLL)."""
    logits = np.random.default_rng(4).normal(size=12)
    labels = (np.arange(12) % 2).astype(np.int64)
    logits[:4], labels[:4] = (1.7e308, -1.7e308, 1.7e308, -1.7e308), (0, 1, 0, 1)
    nll = crossent.negative_log_likelihood(logits, labels, form="logits")
    assert nll == pytest.approx(1.7e308 / 12 * 4, rel=1e-9)  # and the ordinary rows' share
    payload = crossent.report(logits, labels, form="logits", resamples=5).to_dict()
    assert float(payload["nll_nats"]) == pytest.approx(nll, rel=1e-12)


_WIDE = np.array([[1e308, -1e308, 0.0], [0.0, 1.0, 2.0]])
_WIDE_LABELS = np.array([0, 2])


def _vector_scaling_fits() -> bool:
    scores = np.random.default_rng(5).normal(size=(12, 3))
    scores[0] = (1e308, -1e308, 0.0)
    fitted = crossent.VectorScaling().fit(scores, np.arange(12) % 3)
    return bool(np.all(np.isfinite(fitted.scale_)))


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize(
    ("call", "expected"),
    [
        # the generic path (classes along axis 0); by hand, [1e308, -1e308, 0] at label 0
        # has log-partition 1e308 and NLL 0; the other row's NLL is LSE(0, 1, 2) - 2
        (
            lambda: crossent.softmax_cross_entropy(_WIDE.T.copy(), _WIDE_LABELS, axis=0),
            (np.log(1.0 + np.exp(-1.0) + np.exp(-2.0))) / 2,
        ),
        (lambda: crossent.multiclass_hinge_loss(_WIDE, _WIDE_LABELS), 0.0),  # no violation
        # (1 - p_t)^2 of a saturated right logit: 0
        (
            lambda: crossent.sigmoid_focal_loss(
                np.array([[1e308, -1e308]]), np.array([[1.0, 0.0]]), gamma=2.0
            ),
            0.0,
        ),
        (_vector_scaling_fits, True),
    ],
    ids=["softmax_rows", "hinge_margins", "focal_factor", "vector_scaling"],
)
def test_losses_and_recalibrators_of_overflowing_logits_warn_nothing(
    call: Callable[[], object], expected: object
) -> None:
    """Main: overflow in ``_terms.softmax_rows``' shift, in the hinge margins and in the
    focal exponent; "invalid value encountered in multiply" in VectorScaling's objective
    (``-inf * 0`` of the one-hot sum: a NaN objective)."""
    assert call() == pytest.approx(expected, rel=1e-15)


# ------------------------------------------------------------------------- bfloat16


def _bfloat16() -> object:
    return pytest.importorskip("ml_dtypes").bfloat16


@pytest.mark.parametrize(
    "call",
    [
        lambda x: crossent.calibration_error(x, _LABELS, renormalize=True),
        lambda x: crossent.negative_log_likelihood(x, _LABELS, renormalize=True),
        lambda x: crossent.brier_score(x, _LABELS, renormalize=True),
        lambda x: crossent.smooth_calibration_error(x, _LABELS, renormalize=True),
        lambda x: crossent.report(x, _LABELS, renormalize=True, resamples=5),
    ],
    ids=["ece", "nll", "brier", "smooth", "report"],
)
def test_bfloat16_is_refused_with_renormalize_too(call: Callable[[np.ndarray], object]) -> None:
    """Main: taken (divided by its row sums in bfloat16) where ``renormalize=False``
    refused it."""
    values = _PROBS.astype(_bfloat16())  # type: ignore[call-overload]
    with pytest.raises(crossent.InputTypeError, match=r"got dtype bfloat16 \(ml_dtypes\)"):
        call(values)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda x: crossent.entropy(x), "p"),
        (lambda x: crossent.kl_divergence(_PROBS, x), "q"),
        (lambda x: crossent.cross_entropy(x, _PROBS), "p"),
        (lambda x: crossent.surprisal(x), "p"),
        (lambda x: crossent.softmax_cross_entropy(x, _LABELS), "logits"),
        (lambda x: crossent.distillation_loss(x, x), "student_logits"),
    ],
    ids=["entropy", "kl", "cross_entropy", "surprisal", "softmax_ce", "distillation"],
)
def test_bfloat16_is_named_as_such_by_the_measures_and_losses(
    call: Callable[[np.ndarray], object], name: str
) -> None:
    """Main: "`p` must be real numbers; got dtype bfloat16" (bfloat16 values are real
    numbers: NumPy just cannot compute in them). The rule is the losses' and the
    evaluation's: refused, with the fix."""
    values = _PROBS.astype(_bfloat16())  # type: ignore[call-overload]
    with pytest.raises(crossent.InputTypeError) as raised:
        call(values)
    message = str(raised.value)
    assert message.startswith(f"`{name}` has dtype bfloat16 (ml_dtypes)")
    assert f"{name}.astype(numpy.float32)" in message
    assert "real numbers" not in message


def test_widened_bfloat16_gives_the_float32_answer() -> None:
    """The fix the message gives works: the widened array is exact (bfloat16 is a
    truncated float32), so its entropy is that of the same float32 values."""
    widened = _PROBS.astype(_bfloat16()).astype(np.float32)  # type: ignore[call-overload]
    np.testing.assert_array_equal(crossent.entropy(widened), crossent.entropy(widened.copy()))
    reference = -np.sum(widened.astype(np.float64) * np.log(widened.astype(np.float64)), axis=1)
    np.testing.assert_allclose(crossent.entropy(widened), reference, rtol=1e-6)


# ------------------------------------------------------------------------- validate


def _state_ece(validate: object) -> float:
    state = crossent.EvaluationState(2)
    state.update(_PROBS, _LABELS, validate=validate)  # type: ignore[arg-type]
    return state.compute().calibration.value


_VALIDATED: dict[str, Callable[[object], object]] = {
    "accuracy": lambda v: crossent.accuracy(_PROBS, _LABELS, validate=v),
    "calibration_error": lambda v: crossent.calibration_error(_PROBS, _LABELS, validate=v),
    "state.update": lambda v: _state_ece(v),
    "temperature.fit": lambda v: (
        crossent.TemperatureScaling(guard=False).fit(_LOGITS, _LABELS, validate=v).temperature_
    ),
    "entropy": lambda v: crossent.entropy(_PROBS, validate=v),
    "kl_divergence": lambda v: crossent.kl_divergence(_PROBS, _PROBS, validate=v),
    "surprisal": lambda v: crossent.surprisal(_PROBS[:, 0], validate=v),
    "binary_cross_entropy": lambda v: crossent.binary_cross_entropy(
        _PROBS[:, 0], _PROBS[:, 1], validate=v
    ),
    "softmax_cross_entropy": lambda v: crossent.softmax_cross_entropy(_LOGITS, _LABELS, validate=v),
    "softmax_cross_entropy_with_targets": lambda v: crossent.softmax_cross_entropy_with_targets(
        _LOGITS, _PROBS, validate=v
    ),
    "softmax_focal_loss": lambda v: crossent.softmax_focal_loss(_LOGITS, _LABELS, validate=v),
    "sigmoid_cross_entropy": lambda v: crossent.sigmoid_cross_entropy(_LOGITS, _PROBS, validate=v),
    "distillation_loss": lambda v: crossent.distillation_loss(_LOGITS, _LOGITS, validate=v),
}


@pytest.mark.parametrize("value", ["no", None, 1, 0, np.array([True])])
@pytest.mark.parametrize("name", sorted(_VALIDATED))
def test_validate_must_be_a_bool(name: str, value: object) -> None:
    """Main: taken by its truth value ("no" and 1 validating, None and 0 not), or a
    Numba ``TypeError`` ("No matching definition") in the pointwise measures."""
    with pytest.raises(crossent.InputTypeError, match=r"^`validate` must be True or False; got"):
        _VALIDATED[name](value)


@pytest.mark.parametrize("name", sorted(_VALIDATED))
def test_numpy_bools_are_taken_as_bools(name: str) -> None:
    """``numpy.bool_`` (what a NumPy comparison gives) is a bool, and is read as one."""
    call = _VALIDATED[name]
    expected, got, unchecked = call(True), call(np.bool_(True)), call(np.bool_(False))
    assert type(got) is type(expected)
    assert repr(got) == repr(expected)
    assert repr(unchecked) == repr(expected)  # valid input: the same value either way
