r"""Issue 13 follow-up: the KL of probabilities against logits or log-probabilities (either
way round) on realistic rows is certified by the Bregman (ratio) pass, not the exact sums.

The loop's terms :math:`p_i(\log p_i - \log q_i)` err by about :math:`u(H + H(P, Q))`,
so its bound failed on nearly every realistic row (:math:`p = \mathrm{softmax}(z)`,
:math:`q = \mathrm{softmax}(z + s\,\mathrm{noise})`), which then took the exact sums
(8 to 15 times bd63441's time). ``_fused_kernels._kl_ratio_pass`` takes
:math:`r_i = \log(p_i/q_i)` from the ratio and sums :math:`p_i\psi(-r_i) \ge 0`, whose
error is second order in the sides' distance; its bound certifies such rows.

Proved here:

* realistic rows (:math:`s = 1, 0.3, 0.1`), every mixed pair, float64 and float32, are
  within 4 ulps of the output dtype of mpmath's KL of the same (promoted) inputs;
* on rows of 1000 entries with :math:`s = 1, 0.3` the pass certifies every row at
  :data:`_KL64_TOLERANCE` (so none goes on to the exact sums), and on every row it
  takes (random, spread, nearly equal, peaked, with zeros) its KL is within its own
  bound of mpmath's.

Mutants (each in ``src``, measured on this file): :math:`P` logits' normalisation
dropped (``kl = B + g - k`` for :math:`B/\tilde\Pi + \dots`): 2 fail (logits against
probs); the bound returning 0: 4 (the pass within its bound); the series never taken
(the direct form :math:`(q - p) + pr` everywhere): 6; log-probabilities by ``math.exp``
without :func:`_exp_dd`'s low part in the mass: 4. Not caught (the bound holds with
room to spare on these rows): the weights without :math:`2|r_i|`, and without the
zero entries' :math:`\eta q_i`.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent

mpmath = pytest.importorskip("mpmath")
pytest.importorskip("numba")

from crossent.info import _fused_kernels as kernels  # noqa: E402

from oracles import row_probabilities  # noqa: E402

PAIRS = [("probs", "logits"), ("probs", "log_probs"), ("logits", "probs"), ("log_probs", "probs")]
FORMS = {"probs": 0, "log_probs": 1, "logits": 2}


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def _sides(seed: int, shape: tuple[int, int], spread: float) -> tuple[dict, dict]:
    """Realistic rows: P = softmax(z), Q = softmax(z + spread * noise), in each form."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape)
    z2 = z + spread * rng.standard_normal(shape)
    p = {"probs": np.exp(_log_softmax(z)), "logits": z, "log_probs": _log_softmax(z)}
    q = {"probs": np.exp(_log_softmax(z2)), "logits": z2, "log_probs": _log_softmax(z2)}
    return p, q


def _reference(p_form: str, p_row: np.ndarray, q_form: str, q_row: np.ndarray) -> float:
    """mpmath's KL of the rows as given (150 bits), 0 log 0 = 0."""
    with mpmath.workprec(150):
        p = row_probabilities(p_row, p_form)
        q = row_probabilities(q_row, q_form)
        return float(mpmath.fsum(a * mpmath.log(a / b) for a, b in zip(p, q, strict=True) if a))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("p_form", "q_form"), PAIRS)
def test_realistic_rows_match_mpmath(p_form: str, q_form: str, dtype: type) -> None:
    for seed, spread in enumerate([1.0, 0.3, 0.1]):
        p, q = _sides(seed, (3, 40), spread)
        a, b = p[p_form].astype(dtype), q[q_form].astype(dtype)
        got = np.asarray(crossent.kl_divergence(a, b, p_form=p_form, q_form=q_form))
        ulp = np.finfo(got.dtype).eps
        for i in range(a.shape[0]):
            want = _reference(p_form, a[i], q_form, b[i])
            assert abs(got[i] - want) <= 4 * ulp * abs(want), (spread, i, got[i], want)


def _pass(p_form: str, a: np.ndarray, q_form: str, b: np.ndarray) -> tuple:
    """``_kl_ratio_pass`` on one row, with the shifts the kernel's row gives it."""
    shifts = [0.0, 0.0, 0.0, 0.0]
    for k, (form, row) in enumerate(((p_form, a), (q_form, b))):
        if form == "logits":
            top = float(row.max())
            shifts[2 * k] = top
            shifts[2 * k + 1] = float(np.log(np.exp(row - top).sum()))
    forms = (FORMS[p_form], FORMS[q_form])
    return kernels._kl_ratio_pass(a, b, (forms, (False, False)), tuple(shifts))


@pytest.mark.parametrize(("p_form", "q_form"), PAIRS)
def test_realistic_rows_certified(p_form: str, q_form: str) -> None:
    for seed, spread in enumerate([1.0, 0.3]):
        p, q = _sides(10 + seed, (2, 1000), spread)
        for i in range(2):
            kl, bound, ok, _ = _pass(p_form, p[p_form][i], q_form, q[q_form][i])
            assert ok, (spread, i)
            assert bound <= kernels._KL64_TOLERANCE * kl, (spread, kl, bound)


def _hard_rows() -> list[tuple[float, np.ndarray, np.ndarray]]:
    """(spread, z, z2) rows: random, spread, nearly equal, peaked, with -inf logits."""
    rng = np.random.default_rng(7)
    rows = []
    for spread, scale in [(3.0, 1.0), (1.0, 4.0), (1e-3, 1.0), (1e-6, 1.0), (0.5, 12.0)]:
        z = scale * rng.standard_normal(64)
        rows.append((spread, z, z + spread * rng.standard_normal(64)))
    z = rng.standard_normal(64)
    z[:5] = -np.inf
    rows.append((0.3, z, z + 0.3 * rng.standard_normal(64)))
    return rows


@pytest.mark.parametrize(("p_form", "q_form"), PAIRS)
def test_pass_within_its_bound(p_form: str, q_form: str) -> None:
    taken = 0
    for _, z, z2 in _hard_rows():
        lp, lq = _log_softmax(z[None])[0], _log_softmax(z2[None])[0]
        p = {"probs": np.exp(lp), "logits": z, "log_probs": lp}
        q = {"probs": np.exp(lq), "logits": z2, "log_probs": lq}
        a, b = p[p_form], q[q_form]
        kl, bound, ok, _ = _pass(p_form, a, q_form, b)
        if not ok:
            continue
        taken += 1
        want = _reference(p_form, a, q_form, b)
        assert abs(kl - want) <= bound, (kl, want, bound)
    assert taken >= 4
