"""Evaluation reads CPU arrays of any library (through numpy.asarray) and gives NumPy's numbers."""

from __future__ import annotations

import numpy as np
import pytest

import crossent

from tolerances import FLOAT32_KERNEL


@pytest.mark.parametrize("library", ["torch", "jax.numpy", "array_api_strict"])
def test_other_libraries_arrays_give_the_numpy_results(library: str) -> None:
    module = pytest.importorskip(library)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 5)) * 2
    labels = rng.integers(0, 5, size=300)
    if library == "torch":
        as_library = module.from_numpy
    elif library == "jax.numpy":
        as_library = module.asarray
    else:
        as_library = module.asarray
    # JAX without x64 computes in float32: a float32 result of float64-exact terms
    dtype = np.float32 if library == "jax.numpy" else np.float64
    expected = crossent.calibration_error(logits, labels, form="logits")
    got = crossent.calibration_error(as_library(logits), as_library(labels), form="logits")
    assert got.value == pytest.approx(expected.value, **FLOAT32_KERNEL.rel_abs(dtype))
    nll = crossent.negative_log_likelihood(as_library(logits), as_library(labels), form="logits")
    assert nll == pytest.approx(
        crossent.negative_log_likelihood(logits, labels, form="logits"),
        **FLOAT32_KERNEL.rel_abs(dtype),
    )
