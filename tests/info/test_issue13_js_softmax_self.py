"""Jensen-Shannon divergence of a distribution against its own rounded forms (issue 13,
branch jsexact2): the rows of logits ``z``, of their rounded softmax ``p`` and of their
rounded log-softmax ``y`` differ only by rounding, so JS of any two of them is about
:math:`u^2` (1e-33 to 1e-35) and every digit comes from :math:`\\delta_i \\approx u`.

Found: logits against log-probabilities (either side) was 7e15 to 1e17 ulps off on
every path (the log-partition's rounding, a shift of every :math:`\\delta_i` as large
as :math:`\\delta_i`, was corrected only between two sides of logits); probabilities
against logits on the fused kernel up to 210 ulps (the log-ratios from a double-double
:math:`\\log p`, whose low part alone is :math:`u^2|\\log p|` off, and a plainly summed
mass). Oracle: mpmath at 80 digits (JS is about :math:`d^2`, :math:`d \\approx
10^{-16}`: 50 digits leave about 17) of the given values, the logits' exact softmax,
the log-probabilities' exact exponentials (not renormalised, as the library takes them).
"""

from __future__ import annotations

import functools
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent
import crossent.info._fused as fused

from oracles import row_probabilities

FORMS = ("probs", "log_probs", "logits")
PAIRS = [(a, b) for a in FORMS for b in FORMS if a != b]
ULPS = 8


@functools.cache
def _rows() -> dict[str, np.ndarray]:
    """Two rows of 500 logits N(0, 10), their rounded softmax and log-softmax."""
    rng = np.random.default_rng(2)
    z = rng.standard_normal((2, 500)) * 10
    shifted = z - z.max(axis=-1, keepdims=True)
    total = np.exp(shifted).sum(axis=-1, keepdims=True)
    return {"logits": z, "probs": np.exp(shifted) / total, "log_probs": shifted - np.log(total)}


@functools.cache
def _oracle(form_p: str, form_q: str) -> tuple[float, ...]:
    rows = _rows()
    out = []
    with mpmath.workdps(80):
        for r in range(2):
            p = row_probabilities(rows[form_p][r], form_p)
            q = row_probabilities(rows[form_q][r], form_q)
            total = mpmath.fsum(
                a * mpmath.log(2 * a / (a + b)) + b * mpmath.log(2 * b / (a + b))
                for a, b in zip(p, q, strict=True)
            )
            out.append(total / 2)
    return tuple(out)


def _ulps(got: object, want: object) -> list[float]:
    values = np.asarray(got, dtype=np.float64).reshape(-1)
    return [
        float(abs(mpmath.mpf(float(v)) - w) / (w * np.finfo(np.float64).eps))
        for v, w in zip(values, want, strict=True)
    ]


@pytest.mark.parametrize(("form_p", "form_q"), PAIRS)
@pytest.mark.parametrize("path", ["fused", "generic"])
def test_numpy_rows_of_one_distribution(
    form_p: str, form_q: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NumPy float64, on the fused kernel and on the generic path (Numba off)."""
    if path == "generic":
        monkeypatch.setattr(fused, "available", lambda: False)
    elif not fused.available():
        pytest.skip("needs Numba")
    rows = _rows()
    got = crossent.js_divergence(rows[form_p], rows[form_q], p_form=form_p, q_form=form_q)
    assert max(_ulps(got, _oracle(form_p, form_q))) <= ULPS


@pytest.mark.parametrize(("form_p", "form_q"), [("logits", "log_probs"), ("log_probs", "logits")])
def test_torch_float64_rows_of_one_distribution(
    form_p: str, form_q: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The torch path (the host route off): logits against log-probabilities."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(crossent._torch_host, "MAX_ELEMENTS", -1)
    rows = _rows()
    got = crossent.js_divergence(
        torch.tensor(rows[form_p]), torch.tensor(rows[form_q]), p_form=form_p, q_form=form_q
    )
    assert max(_ulps(got.numpy(), _oracle(form_p, form_q))) <= ULPS


def test_jax_float64_rows_of_one_distribution(jax_x64: Any) -> None:
    """JAX float64 under ``jax.jit`` (eager JAX runs the same operations, one compile
    each: 30 s of a loaded machine): logits against log-probabilities."""
    rows = _rows()

    def js(a: object, b: object) -> object:
        return crossent.js_divergence(a, b, p_form="logits", q_form="log_probs", validate=False)

    got = jax_x64.jit(js)(
        jax_x64.numpy.asarray(rows["logits"]), jax_x64.numpy.asarray(rows["log_probs"])
    )
    assert max(_ulps(np.asarray(got), _oracle("logits", "log_probs"))) <= ULPS


@pytest.mark.parametrize("path", ["fused", "generic"])
def test_a_zero_probability_against_minus_inf(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard (passes on main): the fused kernel's double-double pass took the low parts
    of :math:`-\\infty - m` (NaN) into a zero probability, and JS of equal rows was NaN."""
    if path == "generic":
        monkeypatch.setattr(fused, "available", lambda: False)
    got = crossent.js_divergence([0.0, 0.5, 0.5], [-np.inf, 0.0, 0.0], q_form="logits")
    assert got == 0.0
