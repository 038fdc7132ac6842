"""Issue 13 follow-up (labelsafe): a label outside ``[0, classes)`` is always an
``InputError`` naming ``labels``, the row in the whole data and the value, on every path,
with ``validate=True`` and with ``validate=False``.

``validate=False`` skips the value checks (NaN, ranges, row sums); it never let a label
through on purpose, but on main the paths differed: with ``validate=False`` a label -1
was read as the last class (a silent wrong number: the losses' generic and compiled
paths, the calibration kernels' ``[-classes, classes)``), and a label ``>= classes``
gave NumPy's bare ``IndexError`` (or the calibration kernels' ``IndexError``), with or
without the row.  Here every public entry point that takes class labels is called on
each of its paths, forced by shape and backend:

* losses (the softmax family, focal, poly-1, hinge, each loss and gradient): the small
  compiled call (3 rows), the fused Numba kernel above ``SERIAL_ELEMENTS`` (2**14
  entries), and the NumPy twins that read blocks of rows (Numba off); float32 and
  float64;
* calibration (scores, calibration error, smooth error, reliability diagram,
  ``EvaluationState.update``, bootstrap, paired comparison, recalibrators, the report):
  stored probabilities (the fused row kernels, Numba and NumPy twins) and logits (the
  generic path), in blocks of 60 rows (``_BLOCK_ELEMENTS`` patched), a bad label in the
  last row and in a row past the first block (named in the whole data, ``first_row``
  added for ``update``);
* ``crossent.torch`` (no ``validate``: always checked) for completeness.

Labels -1, ``classes`` and 2**40 (int64).  ``ignore_index`` rows stay allowed with
``validate=False`` (same bits as with ``validate=True``).

On main these fail: every ``validate=False`` case (the -1 cases return a number, the
others raise ``IndexError``).  Mutants caught: the range check dropped in
``check_labels`` for ``validate=False`` (``check_range`` ignored), an off-by-one ``<=
classes`` in its fast path, the fused softmax path falling back to the generic path
on a flagged label, ``Predictions.check_labels`` without ``row_offset`` (``update``'s
row 355 instead of 1355), the calibration kernels' labels held to ``[-classes,
classes)`` (the -1 cases pass unnoticed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.calibration import _inputs, _row_kernels
from crossent.errors import InputError
from crossent.losses import _cpu_kernels

CLASSES = 10
BAD = (-1, CLASSES, 2**40)
FUSED_ROWS = _cpu_kernels.SERIAL_ELEMENTS // CLASSES + 8  # just above the serial cut


def _message(row: int, value: int, name: str = "labels") -> str:
    noun = "integers" if name == "labels" else "class ids"
    return (
        rf"`{name}` must be {noun} in \[0, {CLASSES}\)( or ignore_index=-?\d+)?; got values "
        rf"in \[-?\d+, -?\d+\] \(row {row} has {value}\)"
    )


def _expect(call: Callable[[np.ndarray], Any], labels: np.ndarray, row: int) -> None:
    """``call(labels)`` with each bad value at ``row`` raises the labels' InputError."""
    for value in BAD:
        bad = labels.copy()
        bad[row] = value
        with pytest.raises(InputError, match=_message(row, value)):
            call(bad)


def _logits(rows: int, dtype: Any) -> np.ndarray:
    return np.random.default_rng(rows).standard_normal((rows, CLASSES)).astype(dtype)


def _labels(rows: int) -> np.ndarray:
    return np.arange(rows, dtype=np.int64) % CLASSES


# ----------------------------------------------------------------------------- losses

LOSSES = [
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "softmax_focal_loss",
    "softmax_focal_loss_grad",
    "poly1_cross_entropy",
    "poly1_cross_entropy_grad",
    "multiclass_hinge_loss",
    "multiclass_hinge_loss_grad",
]


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("path", "rows"), [("small", 3), ("fused", FUSED_ROWS), ("numpy-blocks", FUSED_ROWS)]
)
@pytest.mark.parametrize("name", LOSSES)
def test_issue13_loss_labels_out_of_range(
    name: str, path: str, rows: int, dtype: Any, validate: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path == "numpy-blocks":
        monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    elif rows > 3:
        pytest.importorskip("numba")
    function = getattr(crossent, name)
    logits, labels = _logits(rows, dtype), _labels(rows)
    for reduction in ("mean", "none"):

        def call(y: np.ndarray, reduction: str = reduction) -> Any:
            return function(logits, y, reduction=reduction, validate=validate)

        _expect(call, labels, rows - 1)  # the last row
        if rows > 3:
            _expect(call, labels, rows // 2 + 1)  # past the kernel's first blocks


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize("rows", [3, FUSED_ROWS])
def test_issue13_ignore_index_rows_stay_allowed(rows: int, validate: bool) -> None:
    logits, labels = _logits(rows, np.float32), _labels(rows)
    labels[::5] = -100
    for name in ("softmax_cross_entropy", "softmax_cross_entropy_grad", "softmax_focal_loss"):
        function = getattr(crossent, name)
        got = function(logits, labels, ignore_index=-100, validate=validate)
        want = function(logits, labels, ignore_index=-100)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        bad = labels.copy()
        bad[-1] = -1  # not the ignored value: still an error, which names both
        with pytest.raises(InputError, match=r"or ignore_index=-100; .*\(row \d+ has -1\)"):
            function(logits, bad, ignore_index=-100, validate=validate)
    with pytest.raises(InputError, match=r"\(row 0 has -100\)"):
        crossent.softmax_cross_entropy(logits, labels, validate=validate)  # no ignore_index


# ------------------------------------------------------------------------ calibration

ROWS = 400
BLOCK_ROWS = 60  # _BLOCK_ELEMENTS 600 over 10 classes: 7 blocks (even: 8)


def _probs(rows: int, dtype: Any) -> np.ndarray:
    p = np.random.default_rng(rows).dirichlet(np.ones(CLASSES), size=rows)
    return p.astype(dtype)


def _score(name: str, **options: Any) -> Callable[..., Any]:
    return lambda x, y, **kw: getattr(crossent, name)(x, y, **options, **kw)


def _update(x: np.ndarray, y: np.ndarray, **kw: Any) -> Any:
    return crossent.EvaluationState(CLASSES).update(x, y, first_row=1000, **kw)


def _update_classwise(x: np.ndarray, y: np.ndarray, **kw: Any) -> Any:
    state = crossent.EvaluationState(CLASSES, scope="class-wise")
    return state.update(x, y, first_row=1000, **kw)


CALIBRATION: dict[str, Callable[..., Any]] = {
    "accuracy": _score("accuracy"),
    "accuracy-none": _score("accuracy", reduction="none"),
    "brier_score": _score("brier_score"),
    "negative_log_likelihood": _score("negative_log_likelihood"),
    "negative_log_likelihood-none": _score("negative_log_likelihood", reduction="none"),
    "spherical_score": _score("spherical_score"),
    "calibration_error": _score("calibration_error"),
    "calibration_error-classwise": _score("calibration_error", scope="class-wise"),
    "calibration_error-quantile": _score("calibration_error", binning="quantile"),
    "smooth_calibration_error": _score("smooth_calibration_error"),
    "reliability_diagram": _score("reliability_diagram"),
    "bootstrap_interval": lambda x, y, **kw: crossent.bootstrap_interval(
        "nll", x, y, resamples=3, **kw
    ),
    "compare_log_loss": lambda x, y, form, validate: crossent.compare_log_loss(
        x, x, y, form_a=form, form_b=form, resamples=3, validate=validate
    ),
    "update": _update,
    "update-classwise": _update_classwise,
}
FIRST_ROW = {"update": 1000, "update-classwise": 1000}


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("form", ["probs", "probs-numpy", "logits"])
@pytest.mark.parametrize("name", list(CALIBRATION))
def test_issue13_calibration_labels_out_of_range(
    name: str, form: str, dtype: Any, validate: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_inputs, "_BLOCK_ELEMENTS", BLOCK_ROWS * CLASSES)
    if form == "probs-numpy":
        monkeypatch.setattr(_row_kernels, "available", lambda: False)
    elif form == "probs":
        pytest.importorskip("numba")
    kind = "logits" if form == "logits" else "probs"
    values = _logits(ROWS, dtype) if kind == "logits" else _probs(ROWS, dtype)
    labels, offset, function = _labels(ROWS), FIRST_ROW.get(name, 0), CALIBRATION[name]
    for row in (ROWS - 1, 355):  # the last row; a row of the sixth block
        for value in BAD:
            bad = labels.copy()
            bad[row] = value
            with pytest.raises(InputError, match=_message(row + offset, value)):
                function(values, bad, form=kind, validate=validate)


RECALIBRATORS = {
    "TemperatureScaling": lambda: crossent.TemperatureScaling(folds=2),
    "VectorScaling": crossent.VectorScaling,
    "HistogramBinning": crossent.HistogramBinning,
}


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize("name", [*RECALIBRATORS, "recalibration_gap"])
def test_issue13_recalibration_labels_out_of_range(name: str, validate: bool) -> None:
    rows = 40
    logits, labels = _logits(rows, np.float64), _labels(rows)
    if name == "HistogramBinning":  # fitted on probabilities
        logits = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    form = "probs" if name == "HistogramBinning" else "logits"

    def call(y: np.ndarray) -> Any:
        if name == "recalibration_gap":
            return crossent.recalibration_gap(logits, y, folds=2, validate=validate)
        return RECALIBRATORS[name]().fit(logits, y, form=form, validate=validate)

    _expect(call, labels, rows - 1)
    _expect(call, labels, 17)


def test_issue13_report_labels_out_of_range() -> None:
    probs, labels = _probs(64, np.float64), _labels(64)
    _expect(lambda y: crossent.report(probs, y, resamples=3), labels, 63)


# ------------------------------------------------------------------------------ torch


@pytest.mark.parametrize("rows", [3, FUSED_ROWS])
def test_issue13_torch_targets_out_of_range(rows: int) -> None:
    torch = pytest.importorskip("torch")
    from crossent import torch as ctorch

    logits = torch.from_numpy(_logits(rows, np.float32))
    hidden = torch.from_numpy(_logits(rows, np.float32)[:, :8].copy())
    weight = torch.from_numpy(_logits(CLASSES, np.float32)[:, :8].copy())
    labels = _labels(rows)
    for value in BAD:
        bad = labels.copy()
        bad[-1] = value
        target = torch.from_numpy(bad)
        message = _message(rows - 1, value, name="target")
        with pytest.raises(InputError, match=message):
            ctorch.cross_entropy(logits, target)
        with pytest.raises(InputError, match=message):
            ctorch.cross_entropy(logits.requires_grad_(), target, reduction="none")
        with pytest.raises(InputError, match=message):
            ctorch.linear_cross_entropy(hidden, weight, target, ignore_index=None)


def test_issue13_meta_labels_pass_unchecked_with_validate_false() -> None:
    """Labels without values (a meta tensor) cannot be checked: with ``validate=False``
    the call keeps its shapes, as before (the range check must not refuse them)."""
    torch = pytest.importorskip("torch")
    meta = torch.zeros((2, 3), device="meta")
    labels = torch.zeros(2, dtype=torch.int64, device="meta")
    for name in ("softmax_cross_entropy", "softmax_cross_entropy_grad", "softmax_focal_loss"):
        result = getattr(crossent, name)(meta, labels, reduction="none", validate=False)
        assert result.device.type == "meta"
