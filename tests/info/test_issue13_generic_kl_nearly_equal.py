r"""KL of nearly equal rows in mixed forms on the generic path (issue 13, branch kltiny2).

Found at stop 67 (branch kltiny1): on the generic path (NumPy without Numba, JAX,
array-api-strict, PyTorch past the host route) ``kl_divergence`` of nearly equal rows
lost the KL to cancellation in :math:`\sum_i p_i(\log p_i - \log q_i)` wherever one
side is log-probabilities, or probabilities face logits: logits ``[0, -10.8215004561]``
against log-probabilities ``[-1.99653395e-05, -10.8215227945]`` (KL
:math:`5.62\cdot 10^{-17}`) was 3.0e-4 relative off (the fused kernel 9.4e-17). Now
those rows are summed as Bregman terms plus the exact masses' difference
(``info/_kl_mixed.py``).

Each row is taken in every pairing of forms but probabilities or logits on both sides
(exact already): P as logits, their log-probabilities (``log1p`` of the partition) or
probabilities, Q as log-probabilities, the same values as logits, or their
probabilities; the oracle is mpmath's KL of the float values as given in their form
(probabilities or log-probabilities that do not sum to 1 exactly give a KL that may be
negative: the definition's sum, as the generic path and the fused kernel compute it),
at the row's gap over :math:`\ln 10` digits and 40 more
(``test_issue13_far_tail_kl.py``). A fourth row, far apart, keeps the plain sum (the
careful rows are gathered and put back). Within 8 eps on each path; the identity
:math:`H(P, Q) = H(P) + D(P\,\|\,Q)` is checked on the NumPy path where H(P) and
H(P, Q) are far larger than the KL. JAX float64 shares the code of array-api-strict
(checked by hand, within an ulp; eager JAX compiles each operation, seconds a call).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent
from crossent.info import _fused

FEW_ULPS = 8 * np.finfo(np.float64).eps

PAIRINGS = [
    (a, b)
    for a, b in itertools.product(("probs", "log_probs", "logits"), repeat=2)
    if not (a == b and a in ("probs", "logits"))
]


def _log_probs(z: np.ndarray) -> np.ndarray:
    """Float64 log-probabilities of logits, the log-partition by ``log1p``."""
    shifted = z - z.max(axis=-1, keepdims=True)
    rest = np.where(shifted < 0, np.exp(shifted), 0.0)
    return shifted - np.log1p(np.sum(rest, axis=-1, keepdims=True))


def _rows() -> tuple[np.ndarray, np.ndarray]:
    """P's logits and Q's log-probabilities: stop 67's row, gaps of 100 and 663 (KL
    about 1e-54 and 1e-298), and a row far apart (the plain sum)."""
    p = np.array([[0.0, -10.8215004561], [0.0, -100.0], [0.0, -663.0], [0.3, -1.2]])
    log_q = _log_probs(np.array([[0.0, -100.00001], [0.0, -663.00001], [1.0, 0.2]]))
    log_q = np.concatenate([[[-1.99653395e-05, -10.8215227945]], log_q])
    return p, log_q


def _sides() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    logits, log_q = _rows()
    log_p = _log_probs(logits)
    p_sides = {"logits": logits, "log_probs": log_p, "probs": np.exp(log_p)}
    return p_sides, {"log_probs": log_q, "logits": log_q, "probs": np.exp(log_q)}


def _logs(row: np.ndarray, form: str) -> list[Any]:
    x = [mpmath.mpf(float(v)) for v in row]
    if form == "log_probs":
        return x
    if form == "probs":
        return [mpmath.log(v) for v in x]
    top = max(x)
    ell = top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in x))
    return [v - ell for v in x]


def _truth(a: np.ndarray, b: np.ndarray, forms: tuple[str, str]) -> Any:
    gaps = [
        float(np.ptp(np.log(r) if f == "probs" else r)) for r, f in zip((a, b), forms, strict=True)
    ]
    with mpmath.workdps(40 + int(max(gaps) / np.log(10.0))):
        la, lb = _logs(a, forms[0]), _logs(b, forms[1])
        return mpmath.fsum(mpmath.exp(x) * (x - y) for x, y in zip(la, lb, strict=True))


TRUTH: dict[tuple[str, str], list[Any]] = {}


def _truths(forms: tuple[str, str]) -> list[Any]:
    if forms not in TRUTH:
        p_sides, q_sides = _sides()
        a, b = p_sides[forms[0]], q_sides[forms[1]]
        TRUTH[forms] = [_truth(a[i], b[i], forms) for i in range(a.shape[0])]
    return TRUTH[forms]


def _check(got: Any, forms: tuple[str, str], path: str) -> None:
    values = np.asarray(got, dtype=np.float64)
    for row, (value, truth) in enumerate(zip(values.tolist(), _truths(forms), strict=True)):
        error = float(abs(mpmath.mpf(value) - truth) / abs(truth))
        assert error <= FEW_ULPS, (forms, path, row, value, float(truth), error)


def _generic(call: Callable[[], Any]) -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_fused, "available", lambda: False)
        return call()


@pytest.mark.parametrize("forms", PAIRINGS, ids=["-".join(f) for f in PAIRINGS])
def test_numpy_generic_within_few_ulps(forms: tuple[str, str]) -> None:
    p_sides, q_sides = _sides()
    a, b = p_sides[forms[0]], q_sides[forms[1]]
    kw = {"p_form": forms[0], "q_form": forms[1]}
    _check(_generic(lambda: crossent.kl_divergence(a, b, **kw)), forms, "numpy")
    if forms == ("logits", "log_probs"):  # H(P, Q) = H(P) + KL, each far above the KL
        h = _generic(lambda: crossent.entropy(a, p_form="logits"))
        ce = _generic(lambda: crossent.cross_entropy(a, b, **kw))
        kl = _generic(lambda: crossent.kl_divergence(a, b, **kw))
        np.testing.assert_allclose(h + kl, ce, rtol=4 * np.finfo(np.float64).eps, atol=0)


@pytest.mark.parametrize("forms", PAIRINGS, ids=["-".join(f) for f in PAIRINGS])
def test_torch_float64_generic_within_few_ulps(forms: tuple[str, str]) -> None:
    torch = pytest.importorskip("torch")
    p_sides, q_sides = _sides()
    a = torch.tensor(p_sides[forms[0]], requires_grad=True)  # (past the host route)
    b = torch.tensor(q_sides[forms[1]])
    got = crossent.kl_divergence(a, b, p_form=forms[0], q_form=forms[1])
    _check(got.detach().numpy(), forms, "torch")
    got.sum().backward()  # the plain sum's gradient: finite
    assert a.grad is not None
    assert bool(torch.isfinite(a.grad).all())


def test_array_api_strict_within_few_ulps() -> None:
    xs = pytest.importorskip("array_api_strict")
    p_sides, q_sides = _sides()
    for forms in (("logits", "log_probs"), ("probs", "logits"), ("log_probs", "probs")):
        a, b = p_sides[forms[0]], q_sides[forms[1]]
        kw = {"p_form": forms[0], "q_form": forms[1]}
        _check(crossent.kl_divergence(xs.asarray(a), xs.asarray(b), **kw), forms, "strict")
