"""float64 results in a ``base``: the nats divided by Python's ``math.log(base)``, bit for bit.

``_checks.log_base_in`` forms ``log(base)`` in the compute dtype only for long double
(``tests/test_issue13_longdouble_base.py``); float32 and float64 keep the Python float
``math.log(base)``, as its docstring says. NumPy's ``log`` is not glibc's: at
``b = 1.9174334189636766`` they differ by one ulp (0.6509875308213126 against
...127), so a divisor formed by NumPy for float64 (the mutant ``itemsize >= 8`` for
``itemsize > 8``, mutation pass of branch mutation5) changes the last bit of float64
results. The oracle is the function's own result in nats divided by ``math.log(b)``.
Guards behaviour (passes on main); kills that mutant.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent

BASE = 1.9174334189636766


def _data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(5), size=64)
    q = rng.dirichlet(np.ones(5), size=64)
    return {"p": p, "q": q, "x": rng.normal(scale=3.0, size=(64, 5))}


D = _data()

CALLS: dict[str, Callable[[Any], Any]] = {
    "entropy": lambda b: crossent.entropy(D["p"], base=b),
    "cross_entropy": lambda b: crossent.cross_entropy(D["p"], D["q"], base=b),
    "kl_divergence": lambda b: crossent.kl_divergence(D["p"], D["q"], base=b),
    "softmax_cross_entropy": lambda b: crossent.softmax_cross_entropy(
        D["x"], np.arange(64) % 5, reduction="none", base=b
    ),
}


def test_numpy_log_differs_from_math_log_at_the_base() -> None:
    """The premise: the two logs of :data:`BASE` are one ulp apart here (else the test
    below could not tell them apart)."""
    assert np.log(np.float64(BASE)) != math.log(BASE)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_float64_unit_is_nats_over_math_log(name: str) -> None:
    call = CALLS[name]
    got = np.asarray(call(BASE))
    nats = np.asarray(call(None))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, nats / math.log(BASE))
