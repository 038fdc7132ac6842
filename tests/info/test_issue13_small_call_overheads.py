"""Issue 13, "Small inputs" (branch smallcall3): the overheads cut from small calls change
no value, no type and no warning.

``perplexity`` takes ``np.exp`` of a NumPy float64 scalar below ``_EXP_FINITE64`` without
``np.errstate`` (it cannot overflow there); ``cross_entropy_decomposition`` returns the
fused kernel's named tuple itself where no row is formed again. Each is pinned against
the general formula (``np.exp`` of the cross-entropy under ``np.errstate``) on rows
either side of the fast path's bound and of float64's ``exp`` range. Guards of
existing behaviour (they pass on main, but for the bound's name): they kill the mutants
named in ``tests/MUTATION.md`` (the bound raised past 709.78, a Python float returned,
the far rows dropped).
"""

from __future__ import annotations

import warnings

import mpmath
import numpy as np
import pytest

import crossent
from crossent.info import _measures

# Cross-entropies of p = [1, 0] against logits [0, x]: about x nats, either side of the
# fast path's bound (709) and of the largest finite exp (709.78), and ordinary ones.
GAPS = [0.0, 1e-300, 0.5, 3.25, 100.0, 700.0, 708.99, 709.0, 709.5, 709.78, 709.79, 710.0, 1e4]


@pytest.mark.parametrize("gap", GAPS)
def test_issue13_perplexity_fast_exp_equals_the_general_formula(gap: float) -> None:
    p, q = np.array([1.0, 0.0]), np.array([0.0, gap])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning on either side of the range
        got = crossent.perplexity(p, q, q_form="logits")
        nats = crossent.cross_entropy(p, q, q_form="logits")
    with np.errstate(over="ignore"):
        rounded = np.exp(nats)
    assert type(got) is np.float64
    assert np.isinf(got) == (nats > np.log(np.finfo(np.float64).max))
    # the perplexity 1 + e^gap: within an ulp of it (since pplx2, a double-double H
    # for logits sides; np.exp of the rounded H was bit for bit before, 0.56 ulp off
    # at 3.25), and no further from it than np.exp of the rounded H
    with mpmath.workdps(60):
        truth = float(1 + mpmath.exp(mpmath.mpf(gap)))  # inf past float64's range
    if np.isinf(truth):
        assert np.isinf(got)
    else:
        assert abs(got - truth) <= np.spacing(truth)
        assert abs(got - truth) <= abs(rounded - truth)


def test_issue13_perplexity_of_one_row_is_the_rows_call_bit_for_bit() -> None:
    """One row (the small call) gives the bits of the same row in a batch, and stays
    within the rounding of ``exp`` of its entropy (the double-double entropy of branch
    ppl1 is the closer to the truth: tests/info/test_issue13_perplexity_exact.py)."""
    rng = np.random.default_rng(62)
    for _ in range(200):
        p = rng.dirichlet(np.full(int(rng.integers(2, 40)), float(rng.choice([0.01, 1.0, 50.0]))))
        got = crossent.perplexity(p)
        batched = crossent.perplexity(np.stack([p, p[::-1]]))[0]
        assert type(got) is np.float64
        assert got.tobytes() == batched.tobytes()
        assert got == pytest.approx(np.exp(crossent.entropy(p)), rel=2e-15)
    assert np.log(np.finfo(np.float64).max) > _measures._EXP_FINITE64


def test_issue13_decomposition_takes_the_far_rows_and_the_common_case_alike() -> None:
    p = np.array([0.6, 0.4])
    far = crossent.cross_entropy_decomposition(p, np.array([1.7e308, -1.7e308]), q_form="logits")
    assert type(far) is crossent.CrossEntropyDecomposition
    assert far.cross_entropy == crossent.cross_entropy(p, [1.7e308, -1.7e308], q_form="logits")
    assert np.isfinite(far.cross_entropy)
    assert np.isfinite(far.kl_divergence)
    near = crossent.cross_entropy_decomposition(p, np.array([0.5, 0.5]))
    assert type(near) is crossent.CrossEntropyDecomposition
    assert near.cross_entropy == crossent.cross_entropy(p, [0.5, 0.5])
    assert near.kl_divergence == crossent.kl_divergence(p, [0.5, 0.5])
