"""Issue 13: the fused kernels' ``exp`` evaluates its polynomial by Horner's scheme on an
AVX-512 target and by Estrin's elsewhere (``_cpu_kernels_numba.HORNER``); both schemes
must give ``e^x`` within the polynomial's error, whichever one this machine compiles."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from crossent.losses import _cpu_kernels_numba as kernels  # noqa: E402

from numba_target import numba_target_has  # noqa: E402

_BOUND = 5.3e-11  # the module docstring's epsilon (polynomial, reduction, evaluation)


def _compiled(monkeypatch, horner):
    """The kernel's exp_nonpositive compiled again (its flags) with HORNER set: Numba
    reads the module's globals when it compiles, so this one holds the other scheme."""
    # HORNER is read from the module exp_nonpositive is defined in (the shared
    # crossent._intrinsics_numba, which the losses' kernels import it from).
    monkeypatch.setattr(sys.modules[kernels.exp_nonpositive.py_func.__module__], "HORNER", horner)
    flags = kernels._FLAGS - {"reassoc"}
    return numba.njit(fastmath=flags)(kernels.exp_nonpositive.py_func)


def test_the_scheme_follows_the_target():
    assert kernels.HORNER is numba_target_has("avx512f")


@pytest.mark.parametrize("horner", [True, False], ids=["horner", "estrin"])
def test_each_scheme_is_within_the_polynomial_error(monkeypatch, horner):
    exp = _compiled(monkeypatch, horner)
    rng = np.random.default_rng(13)
    xs = np.concatenate(
        [
            -rng.uniform(0.0, 708.0, 3000),
            -rng.uniform(0.0, 1.0, 2000),
            np.arange(-708.0, 0.5, 0.5),
            # halfway points of the reduction, where |r| is largest
            -(np.arange(1, 1000) + 0.5) * math.log(2.0),
        ]
    )
    worst = 0.0
    for x in xs:
        got = exp(float(x))
        worst = max(worst, abs(got / math.exp(x) - 1.0))
    assert worst <= _BOUND
    assert worst > 1e-11  # the polynomial's own error is reached: the points are hard


@pytest.mark.parametrize("horner", [True, False], ids=["horner", "estrin"])
def test_each_scheme_keeps_the_special_values(monkeypatch, horner):
    exp = _compiled(monkeypatch, horner)
    assert exp(0.0) == 1.0
    assert exp(-math.inf) < 4e-308
    assert math.isnan(exp(math.nan))
