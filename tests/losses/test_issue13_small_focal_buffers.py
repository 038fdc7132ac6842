"""Issue 13, "Small inputs": the shared buffers of the small focal and poly-1 calls.

To save NumPy calls, ``_small_label_families`` reuses buffers: the gradient's one np.exp
runs on :math:`[\\sigma - \\ell \\mid \\gamma\\log(1 - p_y)]` (N x (C + 1)), so its first C
columns are :math:`p` and its last the modulation :math:`(1 - p_y)^\\gamma`; the loss puts
the modulation's argument of exp in the last column of :math:`\\sigma`'s rows; and
``label_rows64`` writes :math:`\\log p_y` over :math:`\\ell`. Here the arrays the compiled
bodies receive are compared, bit for bit, with an independent NumPy oracle of the full
path's formulas (``softmax_rows``, ``log_prob_of_labels``, ``_focal._modulation``), so a
column taken from the wrong place, or a value read after it was overwritten, fails.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import crossent
from crossent.losses import _small_label_numba
from losses.small_label_paths import hybrid_only

_ROWS = {  # logits (labels 0 and 2): far from 0 (p_y < 1/2) and near it
    "far": (np.array([[0.0, 1.0, 2.0, -1.0], [0.5, -2.0, 1.5, 3.0]]), False),
    "near": (np.array([[3.0, 0.0, -1.0, 0.5], [0.5, -2.0, 4.5, 3.0]]), True),
}
_LABELS = np.array([0, 2])


def _oracle(z: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(p, log p_y, modulation)`` as the full path forms them, in plain NumPy: the
    shifted rows, the exp of every entry with 1 taken off at the maximum (one per row
    here), log1p of the row sums, :math:`\\min(\\sigma_y - \\ell, 0)`, then
    ``_log1mexp``'s formulas (Maechler 2012) times gamma, exp."""
    shifted = z - z.max(axis=-1, keepdims=True)
    terms = np.exp(shifted)
    terms[shifted == 0.0] -= 1.0
    ell = np.log1p(terms.sum(axis=-1) + 0.0)
    log_p_y = np.minimum(shifted[np.arange(len(z)), _LABELS] - ell, 0.0)
    p = np.exp(shifted - ell[:, None])
    far = np.log1p(-np.exp(log_p_y))
    near = np.log(-np.expm1(log_p_y))
    log1mexp = np.where(log_p_y > -np.log(2.0), near, far)
    return p, log_p_y, np.exp(gamma * log1mexp)


def _received(monkeypatch: pytest.MonkeyPatch, name: str) -> list[tuple[Any, ...]]:
    """The arguments each call of ``_small_label_numba.name`` receives (copies)."""
    seen: list[tuple[Any, ...]] = []
    real = getattr(_small_label_numba._CALLS, name)
    hybrid_only(monkeypatch)  # (these buffers are the hybrid's)

    def spy(*args: Any) -> Any:
        seen.append(tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args))
        return real(*args)

    monkeypatch.setattr(_small_label_numba._CALLS, name, spy)
    return seen


def _same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert got.tobytes() == want.tobytes(), (got, want)


@pytest.mark.parametrize("row", sorted(_ROWS))
@pytest.mark.parametrize("gamma", [2.0, 0.5])
def test_issue13_small_focal_gradient_stacked_exp_holds_p_then_modulation(
    monkeypatch: pytest.MonkeyPatch, row: str, gamma: float
) -> None:
    z, _ = _ROWS[row]
    seen = _received(monkeypatch, "focal_gradient64")
    crossent.softmax_focal_loss_grad(z, _LABELS, gamma=gamma)
    assert len(seen) == 1, "the small call did not answer"
    e, _, log_p_y, p_y = seen[0][:4]
    p, want_log_p_y, modulation = _oracle(z, gamma)
    classes = z.shape[1]
    _same_bits(e[:, :classes], p)
    _same_bits(e[:, classes], modulation)
    _same_bits(log_p_y, want_log_p_y)
    _same_bits(p_y, np.exp(want_log_p_y))


@pytest.mark.parametrize("row", sorted(_ROWS))
def test_issue13_small_focal_loss_modulation_sits_in_the_last_column(
    monkeypatch: pytest.MonkeyPatch, row: str
) -> None:
    z, near = _ROWS[row]
    seen = _received(monkeypatch, "focal_loss64")
    crossent.softmax_focal_loss(z, _LABELS, gamma=2.0, reduction="none")
    assert len(seen) == 1, "the small call did not answer"
    log_p_y, modulation = seen[0][:2]
    _, want_log_p_y, want_modulation = _oracle(z, 2.0)
    _same_bits(log_p_y, want_log_p_y)
    _same_bits(modulation[:, -1], want_modulation)
    # the other columns are exp(sigma), sigma <= 0: no warning, no value used
    assert (modulation[:, :-1] <= 1.0).all()
    assert near == bool((want_log_p_y > -np.log(2.0)).any())


@pytest.mark.parametrize("gradient", [False, True])
def test_issue13_small_label_rows64_writes_log_p_y_over_ell_safely(gradient: bool) -> None:
    """``label_rows64`` with ``log_p_y`` the very array ``ell`` gives what it gives with
    two arrays (each ell_i is read, for sigma - ell too, before log p_y_i is written)."""
    rng = np.random.default_rng(5)
    n, classes = 6, 5
    shifted = -np.abs(rng.standard_normal((n, classes)))
    rows = rng.standard_normal((4, n))
    ell = np.abs(rng.standard_normal(n)) * 3.0
    out = np.empty((n, classes + 1)) if gradient else np.empty((0, 0))
    apart = np.empty(n)
    near = _small_label_numba.label_rows64(shifted, rows, ell.copy(), apart, out)
    want_out = out.copy()
    out_alias = np.empty_like(out)
    alias = ell.copy()
    near_alias = _small_label_numba.label_rows64(shifted, rows, alias, alias, out_alias)
    assert near_alias == near
    _same_bits(alias, apart)
    if gradient:
        _same_bits(out_alias, want_out)
        _same_bits(out_alias[:, :classes], shifted - ell[:, None])
        _same_bits(out_alias[:, classes], apart)


def test_issue13_small_scaled_log1mexp64_writes_only_the_last_column() -> None:
    log_p_y = np.array([-3.0, -0.1, 0.0])
    with np.errstate(divide="ignore"):  # (at 0: -inf, which the function does not read)
        far, near = np.log1p(-np.exp(log_p_y)), np.log(-np.expm1(log_p_y))
    out = np.full((3, 4), 7.0)
    _small_label_numba.scaled_log1mexp64(log_p_y, far, near, 2.0, out)
    _same_bits(out[:, :3], np.full((3, 3), 7.0))
    _same_bits(out[:, 3], np.array([2.0 * far[0], 2.0 * near[1], -np.inf]))
