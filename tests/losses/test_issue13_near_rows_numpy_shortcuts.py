"""NumPy's shortcuts in ``_near_rows``' array formulas keep the generic formulas' bits
(issue 13, branch nearfast1).

On NumPy rows the array formulas form the far classes' pair work (:math:`|U/T| \\ge 1/2`)
on those classes only, gathered, skip it where no class has one, skip the second side's
weights where no weight is 0 and the student's where the forward gradient needs none,
and drop every ``where`` whose mask is all one way. array-api-strict runs the same
formulas without any of that (its arrays are not ``np.ndarray``) on NumPy's arithmetic:
both must give the same bits, on rows that take each branch (no far class; a few; masked
classes; a teacher whose weights underflow to 0), at T a power of two and not, both
directions. But the loss of a row with a far class or a lost mass where T is not a
power of two: NumPy scales such terms by :math:`T^2` as ``times_temperature_squared``,
the others by :math:`(xT)T`, by design (1 ulp apart here, on main too). A guard: it passes on main,
which had no shortcuts.
"""

from __future__ import annotations

import numpy as np
import pytest

from crossent.losses._far_gaps import tempered_log_softmax64
from crossent.losses._near_rows import NearRows

xs = pytest.importorskip("array_api_strict")


def _rows(temperature: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(13)
    v = 3.0 * temperature * rng.standard_normal((6, 7))
    z = v + 1e-7 * temperature * rng.standard_normal(v.shape)
    z[1, 2] -= 40.0 * temperature  # a class moved far down
    z[2, 3] += 3.0 * temperature  # and one up
    z[3, [1, 4]] = v[3, [1, 4]] = -np.inf  # masked on both sides
    v[4] = [-1e308, 1e308, 0.0, 1.0, 2.0, 3.0, 4.0]  # teacher weights of 0
    z[4] = [0.0, 16.0, 0.0, 1.0, 2.0, 3.0, 4.0]
    return z, v


def _bits(x: object) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).view(np.int64)


@pytest.mark.parametrize("temperature", [0.5, 2.32])
@pytest.mark.parametrize("forward", [True, False])
@pytest.mark.parametrize("rows", ["all", "near only"])
def test_issue13_near_rows_numpy_shortcuts_keep_the_generic_bits(temperature, forward, rows):
    z, v = _rows(temperature)
    if rows == "near only":  # (no far class, no weight of 0: every shortcut taken)
        z, v = z[[0, 5]], v[[0, 5]]
    log_s, log_t = (tempered_log_softmax64(x, temperature)[2] for x in (z, v))
    numpy_rows = NearRows(z, v, temperature, np, log_s, log_t)
    strict = [xs.asarray(x) for x in (z, v, log_s, log_t)]
    strict_rows = NearRows(strict[0], strict[1], temperature, xs, strict[2], strict[3])
    with np.errstate(all="ignore"):
        for method in ("loss", "gradient"):
            got = getattr(numpy_rows, method)(forward=forward)
            want = np.asarray(getattr(strict_rows, method)(forward=forward))
            if method == "loss" and rows == "all" and temperature != 0.5:
                got, want = got[[0, 3, 5]], want[[0, 3, 5]]  # (T^2 apart: docstring)
            np.testing.assert_array_equal(_bits(got), _bits(want), err_msg=method)
