"""Hostile pass (apileft3): what the host reads say about pandas missing values and JAX
tracers.

* pandas ``Int64`` labels with ``NA`` (``pd.array([0, 1, None], dtype="Int64")``) were
  reported as "got dtype float64" (NumPy reads the ``NA`` as NaN), ``boolean`` and
  ``string`` ones with ``NA`` as "dtype object": the message now names the missing value
  and its index. NumPy-backed pandas columns keep their NaN (named by the value checks,
  let through by ``validate=False``).
* ``negative_log_likelihood`` under ``jax.jit`` said "could not be read as a host
  array; move it to the CPU first", wrong advice for a tracer: it now says the array is
  traced and has no values to read on the host.

Every test below fails on main (4d024a0).
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent.errors import InputError, InputTypeError

pd = pytest.importorskip("pandas")

PROBS = np.full((3, 2), 0.5)

MISSING_LABELS = [
    ("Int64", [0, 1, None], 2),
    ("Int64", [None, 1, 0], 0),
    ("boolean", [True, None, False], 1),
    ("Float64", [0.0, None, 1.0], 1),
    ("string", ["0", None, "1"], 1),
]


@pytest.mark.parametrize(("dtype", "values", "at"), MISSING_LABELS)
@pytest.mark.parametrize("wrap", ["array", "series"])
def test_missing_labels_are_named_with_their_index(dtype, values, at, wrap) -> None:
    labels = pd.array(values, dtype=dtype)
    if wrap == "series":
        labels = pd.Series(labels)
    pattern = rf"`labels` has a missing value \(NA\) at index {at} \(pandas dtype {dtype}\)"
    with pytest.raises(InputError, match=pattern):
        crossent.negative_log_likelihood(PROBS, labels)
    with pytest.raises(InputError, match=pattern):
        crossent.softmax_cross_entropy(np.zeros((3, 2)), labels)


def test_missing_probability_in_a_data_frame_is_named() -> None:
    frame = pd.DataFrame({"a": pd.array([0.5, None], dtype="Float64"), "b": [0.5, 0.5]})
    with pytest.raises(InputError, match=r"`p` has a missing value \(NA\) at index \(1, 0\)"):
        crossent.entropy(frame)


def test_extension_arrays_without_missing_values_still_work() -> None:
    labels = pd.array([0, 1, 1], dtype="Int64")
    got = crossent.negative_log_likelihood(PROBS, labels)
    assert got == pytest.approx(np.log(2.0), rel=1e-15)
    assert crossent.entropy(pd.array([0.5, 0.5], dtype="Float64")) == pytest.approx(np.log(2))
    # a NumPy-backed column keeps its NaN (validate=False lets it through, as before)
    assert np.isnan(crossent.entropy(pd.Series([0.5, np.nan]), validate=False))


def test_traced_labels_say_so_not_move_to_cpu() -> None:
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    scores = jnp.array([[0.5, 0.5]])
    labels = jnp.array([0])
    for validate in (True, False):

        def nll(p, y, validate=validate):
            return crossent.negative_log_likelihood(p, y, validate=validate)

        with pytest.raises(InputTypeError, match=r"traced by jax\.jit") as info:
            jax.jit(nll)(scores, labels)
        assert "move it to the CPU" not in str(info.value)
        assert "no values to read on the host" in str(info.value)
    # outside the trace the same call works
    assert float(crossent.negative_log_likelihood(scores, labels)) == pytest.approx(np.log(2))
