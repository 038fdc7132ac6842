"""KL of float32 rows without float64: nearly equal rows skip the quick value they are
sure to fail (issue 13, branch jaxkl5).

Branch jaxkl4 put ``_kl_mixed._narrow_quick`` before the screen and the exact words on
every row: nearly equal rows fail its bound, so they paid it on top of the old path
(0.55x-0.85x of stop 73's time). ``_kl_mixed._quick_fails`` flags, from one pass of
plain float32 operations, rows whose KL is provably too small for that bound; a batch
whose rows are all flagged goes straight to the screen and the exact words. These
tests pin that a flagged row never passes the quick value (so no row's value moves:
random, nearly equal, 1e-2 and 0.3 apart, sides whose masses are off by 1e-3), that
rows 1e-6 apart are flagged, and that such a batch does not run the quick value and
keeps its value within 2.5 ulps of mpmath. They run on NumPy float32 arrays (the same
code as under JAX, without a compile); they fail on main, which has no
``_quick_fails``.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from oracles import float32_form as _form
from oracles import row_probabilities

EPS32 = float(np.finfo(np.float32).eps)
PAIRS = (
    ("probs", "logits"),
    ("logits", "log_probs"),
    ("log_probs", "probs"),
    ("log_probs", "log_probs"),
)


def _scaled(a: np.ndarray, form: str, factor: float) -> np.ndarray:
    """P's mass times ``factor`` (a side of logits keeps mass 1)."""
    if form == "probs":
        return (a * np.float32(factor)).astype(np.float32)
    if form == "log_probs":
        return (a + np.float32(np.log(factor))).astype(np.float32)
    return a


@pytest.mark.parametrize(("fa", "fb"), PAIRS)
def test_flagged_rows_fail_the_quick_value(fa: str, fb: str) -> None:
    """No row that ``_quick_fails`` flags passes ``_narrow_quick`` (random rows, rows
    1e-7 to 0.3 apart, P's mass off by 1e-3 either way); rows 1e-6 apart are all
    flagged, random rows none."""
    from crossent.info._kl_mixed import _narrow_quick, _quick_fails

    rng = np.random.default_rng(76)
    z = rng.standard_normal((4, 16)) * 3
    flagged = {}
    for kind, noise in (("random", None), *((str(s), s) for s in (1e-7, 1e-6, 1e-2, 0.3))):
        other = np.roll(z, 1, axis=0) if noise is None else z + noise * rng.standard_normal(z.shape)
        for factor in (1.0, 1.001, 0.999):
            a, b = _scaled(_form(z, fa), fa, factor), _form(other, fb)
            flags = np.asarray(_quick_fails(a, fa, b, fb, xp=np))
            _, passed = _narrow_quick(a, fa, b, fb, xp=np)
            assert not (flags & np.asarray(passed)).any(), (kind, factor, flags, passed)
            flagged[kind, factor] = flags
    assert flagged["1e-06", 1.0].all()
    assert not flagged["random", 1.0].any()


def test_a_batch_of_nearly_equal_rows_skips_the_quick_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows 1e-6 apart (logits against log-probabilities): ``kl_narrow`` does not call
    ``_narrow_quick`` (it would fail every row) and each value is within 2.5 ulps of
    mpmath; a batch with one random row calls it."""
    from crossent.info import _kl_mixed

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("the quick value ran")

    fa, fb = "logits", "log_probs"
    rng = np.random.default_rng(77)
    z = rng.standard_normal((4, 16)) * 3
    a, b = _form(z, fa), _form(z + 1e-6 * rng.standard_normal(z.shape), fb)
    monkeypatch.setattr(_kl_mixed, "_narrow_quick", refused)
    got = np.asarray(_kl_mixed.kl_narrow(a, fa, b, fb, xp=np))
    with mpmath.workdps(30):
        for x, y, value in zip(a, b, got, strict=True):
            p = row_probabilities(x.astype(np.float64), fa)
            q = row_probabilities(y.astype(np.float64), fb)
            truth = mpmath.fsum(s * mpmath.log(s / t) for s, t in zip(p, q, strict=True) if s)
            assert abs(mpmath.mpf(float(value)) - truth) <= 2.5 * EPS32 * abs(truth)
    mixed = b.copy()
    mixed[1] = _form(np.roll(z, 1, axis=0), fb)[1]
    with pytest.raises(AssertionError, match="the quick value ran"):
        _kl_mixed.kl_narrow(a, fa, mixed, fb, xp=np)
