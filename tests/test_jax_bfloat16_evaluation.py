"""JAX bfloat16 predictions in the evaluation functions (issue 13, branch smallleft).

Main refused them: ``negative_log_likelihood(jnp.zeros((4, 3), jnp.bfloat16), ...,
form="logits")`` raised "`logits` must be a real floating array; got dtype bfloat16
(ml_dtypes) ... widen it first", as did ``report``, ``calibration_error`` and
``EvaluationState.update``, while a PyTorch bfloat16 tensor is taken and computed in
float32.  A JAX bfloat16 array is taken the same way now: widened to float32 (exact:
bfloat16 is the upper half of a float32) after its values are checked in bfloat16, with
bfloat16's tolerance.  The oracle is the same values given as float32 (NumPy), and for
probabilities rounded to bfloat16 the PyTorch bfloat16 tensor of the same values.

NumPy arrays of ``ml_dtypes``' bfloat16 stay refused (tests/test_issue13_hygiene.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

_RNG = np.random.default_rng(20261205)
_N, _K = 40, 5
_LABELS = (np.arange(_N) * 7 % _K).astype(np.int64)
# logits exactly representable in bfloat16, so the float32 copy is the same numbers
_LOGITS32 = np.asarray(
    jnp.asarray(3.0 * _RNG.standard_normal((_N, _K)), dtype=jnp.bfloat16).astype(jnp.float32)
)


def _log_probs32() -> np.ndarray:
    shifted = _LOGITS32.astype(np.float64) - _LOGITS32.max(axis=1, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    # rounded to bfloat16 and back: exact in both
    return np.asarray(jnp.asarray(out, dtype=jnp.bfloat16).astype(jnp.float32))


def _nll(values: Any, form: str) -> object:
    return crossent.negative_log_likelihood(values, jnp.asarray(_LABELS), form=form)


def _calibration(values: Any, form: str) -> object:
    return crossent.calibration_error(values, jnp.asarray(_LABELS), form=form).value


def _state(values: Any, form: str) -> object:
    state = crossent.EvaluationState(_K, keep=3)
    state.update(values[:17], jnp.asarray(_LABELS[:17]), form=form)
    state.update(values[17:], jnp.asarray(_LABELS[17:]), form=form)
    return repr(state.compute())


def _report(values: Any, form: str) -> object:
    report = crossent.report(values, jnp.asarray(_LABELS), form=form, resamples=20, seed=3)
    return repr(report.summary), report.surprisal.tolist()


_EVALUATIONS: dict[str, Callable[[Any, str], object]] = {
    "negative_log_likelihood": _nll,
    "calibration_error": _calibration,
    "EvaluationState.update": _state,
    "report": _report,
}


@pytest.mark.parametrize("form", ["logits", "log_probs"])
@pytest.mark.parametrize("evaluate", list(_EVALUATIONS.values()), ids=list(_EVALUATIONS))
def test_jax_bfloat16_gives_the_float32_answer(
    evaluate: Callable[[Any, str], object], form: str
) -> None:
    """Main: InputTypeError "got dtype bfloat16 (ml_dtypes)"; now the answer of the same
    values as a PyTorch bfloat16 tensor, and for logits of the same values in float32,
    bit for bit (the widening is exact; log-probabilities rounded to bfloat16 miss a
    sum of 1 by more than float32's tolerance, so float32 refuses those)."""
    torch = pytest.importorskip("torch")
    values32 = _LOGITS32 if form == "logits" else _log_probs32()
    bf16 = jnp.asarray(values32, dtype=jnp.bfloat16)
    assert np.array_equal(np.asarray(bf16.astype(jnp.float32)), values32)  # exact copy
    got = evaluate(bf16, form)
    assert got == evaluate(torch.from_numpy(values32.copy()).to(torch.bfloat16), form)
    if form == "logits":
        assert got == evaluate(values32, form)


def test_jax_bfloat16_binary_probability_gives_the_float32_answer() -> None:
    """A 1-D bfloat16 P(label = 1): main refused it; now as its float32 values."""
    p32 = np.asarray(jnp.asarray(_RNG.uniform(size=_N), dtype=jnp.bfloat16).astype(jnp.float32))
    labels = _LABELS % 2
    got = crossent.negative_log_likelihood(jnp.asarray(p32, dtype=jnp.bfloat16), labels)
    assert got == crossent.negative_log_likelihood(p32, labels)


def test_jax_bfloat16_probabilities_are_checked_with_bfloat16_tolerance() -> None:
    """Softmax probabilities rounded to bfloat16 miss a sum of 1 by ~1e-3, which float32's
    tolerance refuses; checked in their own dtype they are taken, as PyTorch's bfloat16
    tensor of the same values is (the oracle), and the answer is that of their float32
    values (main: refused as ml_dtypes)."""
    torch = pytest.importorskip("torch")
    probs32 = np.exp(_log_probs32().astype(np.float64))
    probs32 = np.asarray(jnp.asarray(probs32, dtype=jnp.bfloat16).astype(jnp.float32))
    assert np.max(np.abs(probs32.sum(axis=1) - 1.0)) > 1e-3  # float32's check refuses it
    with pytest.raises(crossent.InputError):
        crossent.calibration_error(probs32, _LABELS)
    bf16 = jnp.asarray(probs32, dtype=jnp.bfloat16)
    tensor = torch.from_numpy(probs32.copy()).to(torch.bfloat16)
    for evaluate in (_nll, _calibration, _state):
        got = evaluate(bf16, "probs")
        assert got == evaluate(tensor, "probs")
    got_report = crossent.report(bf16, _LABELS, resamples=20, seed=3)
    want_report = crossent.report(tensor, _LABELS, resamples=20, seed=3)
    assert repr(got_report.summary) == repr(want_report.summary)


def test_jax_bfloat16_probabilities_out_of_range_are_refused_by_value() -> None:
    """The values are still checked: a negative bfloat16 probability names its index."""
    probs = np.full((3, 2), 0.5, dtype=np.float32)
    probs[1] = (-0.25, 1.25)
    with pytest.raises(crossent.InputError, match=r"non-negative.*-0\.25 at index \(1, 0\)"):
        crossent.calibration_error(jnp.asarray(probs, dtype=jnp.bfloat16), np.array([0, 1, 0]))
