r"""The generic KL of nearly equal rows in mixed forms without normalising a logits side
(issue 13, branch klexact4).

Branch klexact3's exact pass (``info/_kl_mixed.py``) took the ratios
:math:`r_i = \log p_i - \log q_i` exactly: a logits side normalised by a double-double
exponential of every entry and an exact sum, so two log-domain sides cost two
exponentials an entry (``_double_double.exp_pairs``, about 100 operations each): 7x-12x
the plain sum. ``_kl_mixed._ratio_parts`` takes the normalised KL from ratios free of a
common shift, :math:`D_n = \hat B/(\hat K + \hat M) - \psi(\mu)`, and the masses
apart, :math:`\Pi D_n + \Pi\log(\Pi/K)`: logits against log-probabilities need the
double-double exponential of the log-probabilities only (for their mass), and no side
is normalised.

Checked here: every pairing taken by ``_kl_mixed`` on rows 1e-13 to 1e-2 apart, 2 and
300 classes, spread and dominated, one row a call (the pass reads each block's largest
ratio), against mpmath at 60 digits within 4 eps (the masses' floor of a side of
log-probabilities, about :math:`2^{-104}` of its mass, is the definition's own: the
bound adds :math:`2^{-107}` absolute where a side is log-probabilities, main's as
well); that the new pass took them, and one exponential an entry where one side is
logits (two before: this test fails on main); rows it leaves to the old pass (-inf,
a weight below :math:`e^{-700}`, rows 0.3 apart); float64 PyTorch and
array-api-strict one row each (JAX x64, the same code, by hand).
"""

from __future__ import annotations

import itertools
from typing import Any

import mpmath
import numpy as np
import pytest
from tests.oracles import row_probabilities

import crossent
from crossent.info import _fused
from crossent.info import _kl_mixed as kl_mixed

EPS = float(np.finfo(np.float64).eps)

PAIRINGS = [
    (a, b)
    for a, b in itertools.product(("probs", "log_probs", "logits"), repeat=2)
    if not (a == b and a in ("probs", "logits")) and (a, b) != ("log_probs", "log_probs")
]


def _form(x: np.ndarray, name: str) -> np.ndarray:
    log_p = x - x.max(axis=-1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(axis=-1, keepdims=True))
    return {"logits": x, "log_probs": log_p, "probs": np.exp(log_p)}[name]


def _rows(classes: int, seed: int, scale: float, apart: list[float]) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((len(apart), classes)) * scale
    return z, z + rng.standard_normal(z.shape) * np.array(apart)[:, None]


def _truth(row_a: np.ndarray, row_b: np.ndarray, forms: tuple[str, str]) -> Any:
    with mpmath.workdps(60):
        p = row_probabilities(row_a.tolist(), forms[0])
        q = row_probabilities(row_b.tolist(), forms[1])
        pairs = zip(p, q, strict=True)
        return mpmath.fsum(x * (mpmath.log(x) - mpmath.log(y)) for x, y in pairs if x > 0)


def _floor(forms: tuple[str, str]) -> float:
    """The masses' floor: :math:`2^{-107}` absolute where a side is log-probabilities
    (its mass from double-double exponentials, :math:`2^{-104}` of each entry)."""
    return 2.0**-107 if "log_probs" in forms else 0.0


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each call of ``_ratio_parts`` took its rows (NumPy without Numba)."""
    monkeypatch.setattr(_fused, "available", lambda: False)
    calls: list[bool] = []
    original = kl_mixed._ratio_parts

    def spy(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(kl_mixed, "_ratio_parts", spy)
    return calls


CASES = [
    (2, 11, 1.0, [1e-13, 1e-9, 1e-5, 1e-2]),  # two classes, spread
    (2, 12, 30.0, [1e-11, 1e-7]),  # two classes, one dominant
    (300, 13, 3.0, [1e-12, 1e-9, 1e-3]),
]


@pytest.mark.parametrize("forms", PAIRINGS, ids=["-".join(f) for f in PAIRINGS])
def test_nearly_equal_rows_within_4_eps(forms: tuple[str, str], taken: list[bool]) -> None:
    for classes, seed, scale, apart in CASES:
        z, other = _rows(classes, seed, scale, apart)
        a, b = _form(z, forms[0]), _form(other, forms[1])
        for i in range(len(apart)):
            got = crossent.kl_divergence(
                a[i : i + 1], b[i : i + 1], p_form=forms[0], q_form=forms[1]
            )
            exact = _truth(a[i], b[i], forms)
            error = float(abs(mpmath.mpf(float(got[0])) - exact))
            bound = 4 * EPS * float(abs(exact)) + _floor(forms)
            assert error <= bound, (forms, classes, apart[i], float(exact), error / bound)
    assert taken
    assert all(taken), taken


@pytest.mark.parametrize("forms", [("logits", "log_probs"), ("log_probs", "logits")])
def test_one_exponential_an_entry_where_one_side_is_logits(
    forms: tuple[str, str], taken: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Logits against log-probabilities: ``exp_pairs`` of the log-probabilities alone
    (their mass); main took it of both sides (the logits side to normalise it)."""
    sizes: list[int] = []
    original = kl_mixed.exp_pairs

    def count(y: Any, *args: Any, **kwargs: Any) -> Any:
        sizes.append(int(y.size))
        return original(y, *args, **kwargs)

    monkeypatch.setattr(kl_mixed, "exp_pairs", count)
    z, other = _rows(50, 14, 3.0, [1e-9, 1e-9])
    a, b = _form(z, forms[0]), _form(other, forms[1])
    crossent.kl_divergence(a, b, p_form=forms[0], q_form=forms[1])
    assert sum(sizes) == a.size, sizes


def test_rows_left_to_the_old_pass(taken: list[bool]) -> None:
    """A -inf entry, a weight below e^-700 and rows 0.3 apart leave the new pass (None)
    and keep the old one's value (mpmath within 4 eps)."""
    forms = ("logits", "log_probs")
    z = np.array([[0.0, -3.0, -np.inf], [0.0, -720.0, -1.0], [0.3, -1.2, 0.5]])
    other = z + np.array([[1e-10, -1e-10, 0.0], [2e-10, 1e-10, -1e-10], [0.3, -0.3, 0.1]])
    a, b = _form(z, forms[0]), _form(other, forms[1])
    for i in range(3):
        got = crossent.kl_divergence(a[i : i + 1], b[i : i + 1], p_form=forms[0], q_form=forms[1])
        exact = _truth(a[i], b[i], forms)
        error = float(abs(mpmath.mpf(float(got[0])) - exact))
        assert error <= 4 * EPS * float(abs(exact)) + _floor(forms), i
    assert taken[:2] == [False, False], taken  # (the far row keeps the plain sum)


def test_torch_float64_row(taken: list[bool], monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(crossent._torch_host, "MAX_ELEMENTS", -1)  # (past the host route)
    forms = ("probs", "logits")
    z, other = _rows(40, 15, 3.0, [1e-10])
    a, b = _form(z, forms[0]), _form(other, forms[1])
    got = crossent.kl_divergence(
        torch.tensor(a, requires_grad=True), torch.tensor(b), p_form=forms[0], q_form=forms[1]
    )
    exact = _truth(a[0], b[0], forms)
    assert float(abs(mpmath.mpf(float(got.detach()[0])) - exact)) <= 4 * EPS * float(abs(exact))
    assert taken == [True], taken


def test_array_api_strict_row(taken: list[bool]) -> None:
    """The array API standard's operations only (JAX x64 runs the same code: checked by
    hand, eager JAX compiling each operation takes about 20 s)."""
    strict = pytest.importorskip("array_api_strict")
    forms = ("logits", "log_probs")
    z, other = _rows(2, 16, 1.0, [1e-11])
    a, b = _form(z, forms[0]), _form(other, forms[1])
    got = crossent.kl_divergence(
        strict.asarray(a), strict.asarray(b), p_form=forms[0], q_form=forms[1]
    )
    exact = _truth(a[0], b[0], forms)
    error = float(abs(mpmath.mpf(float(got[0])) - exact))
    assert error <= 4 * EPS * float(abs(exact)) + _floor(forms)
    assert taken == [True], taken
