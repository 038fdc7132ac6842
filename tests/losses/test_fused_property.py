"""Property: the fused CPU kernels give what the generic path gives, for any shape and option.

Random shapes, ``-inf`` entries (never a whole row), ignored rows, class weights with
zeros, and every option of the softmax cross-entropy that the kernels support
(``soft_cap`` turns them off). The generic path is the entry point with ``fused=False``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossent.losses._softmax import prepare_softmax_labels, softmax_gradient

pytest.importorskip("numba")

IGNORE = -100


@st.composite
def problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, dict]:
    rows = draw(st.integers(1, 6))
    classes = draw(st.integers(2, 40))
    entry = st.one_of(
        st.floats(-30.0, 30.0, width=32),
        st.just(-math.inf),
        st.floats(-1e4, 1e4, width=32),
    )
    flat = draw(st.lists(entry, min_size=rows * classes, max_size=rows * classes))
    logits = np.array(flat, dtype=np.float32).reshape(rows, classes)
    for i in range(rows):  # a row of -inf is invalid input: keep one finite entry
        if np.isneginf(logits[i]).all():
            logits[i, draw(st.integers(0, classes - 1))] = 0.0
    label = st.one_of(st.integers(0, classes - 1), st.just(IGNORE))
    labels = np.array(draw(st.lists(label, min_size=rows, max_size=rows)), dtype=np.int64)
    options: dict = {"ignore_index": IGNORE}
    if draw(st.booleans()):
        weight = st.one_of(st.just(0.0), st.floats(0.1, 3.0))
        options["weight"] = np.array(
            draw(st.lists(weight, min_size=classes, max_size=classes)), dtype=np.float32
        )
    options["label_smoothing"] = draw(st.sampled_from([0.0, 0.1, 1.0]))
    options["temperature"] = draw(st.sampled_from([1.0, 0.5, 2.5]))
    options["z_loss"] = draw(st.sampled_from([0.0, 1e-3]))
    options["base"] = draw(st.sampled_from([None, 2.0]))
    options["reduction"] = draw(st.sampled_from(["mean", "sum", "none"]))
    return logits, labels, options


def _close(fused: object, generic: object) -> None:
    np.testing.assert_allclose(
        np.asarray(fused, dtype=np.float64),
        np.asarray(generic, dtype=np.float64),
        rtol=2e-5,
        atol=2e-6,
    )


@given(problems())
def test_fused_kernels_agree_with_the_generic_path(case: tuple) -> None:
    logits, labels, options = case
    fused = prepare_softmax_labels(logits, labels, **options)
    generic = prepare_softmax_labels(logits, labels, fused=False, **options)
    assert fused.fast_logits is not None
    assert generic.fast_logits is None
    _close(fused.loss(), generic.loss())
    _close(fused.row_lse, generic.row_lse)
    grad = softmax_gradient(fused)
    assert np.isfinite(grad).all()
    _close(grad, softmax_gradient(generic))
