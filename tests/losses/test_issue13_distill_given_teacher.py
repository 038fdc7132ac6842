r"""Issue 13 follow-up: ``distillation_loss`` at :math:`T = 1` takes a teacher of
probabilities or log-probabilities as it is, as its docstring says and as
``kl_divergence`` does, on the near rows too.

Rows whose KL is below ``_near_rows.KL_FLOOR`` are formed again by ``_near_rows``,
whose formula renormalises the teacher: a float32 teacher summing to
:math:`1 + 2.2\cdot 10^{-8}` (within the validation's tolerance) against the student
:math:`\log t` gave 1.8e-16, where the teacher as given has a KL of 2.2e-8
(``kl_divergence``'s). Now those rows are corrected by the teacher's mass
(``_distill._as_given``), on the lean path too (``near_kl_loss64``'s ``given``).

Oracle: mpmath at 50 digits, the teacher's float32 values as given, the student's
log-softmax; both directions, both forms. 4 of 4 fail on main.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import crossent

mpmath = pytest.importorskip("mpmath")
mp = mpmath.mp

TEACHER = np.array([[0.35834295, 0.15177704, 0.02305095, 0.00929814, 0.4575309]], dtype=np.float32)
"""Float32 probabilities summing (in float64) to about 1 - 2.7e-8 ... 1 + 2.2e-8."""


def _oracle(student: np.ndarray, log_t: list[Any], forward: bool) -> Any:
    with mp.workdps(50):
        z = [mp.mpf(float(x)) for x in student[0]]
        ell = mp.log(mp.fsum(mp.exp(x) for x in z))
        log_s = [x - ell for x in z]
        if forward:
            return mp.fsum(mp.exp(a) * (a - b) for a, b in zip(log_t, log_s, strict=True))
        return mp.fsum(mp.exp(b) * (b - a) for a, b in zip(log_t, log_s, strict=True))


@pytest.mark.parametrize("form", ["probs", "log_probs"])
@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_issue13_distillation_takes_the_teacher_as_given_on_near_rows(
    form: str, direction: str
) -> None:
    teacher = TEACHER if form == "probs" else np.log(TEACHER)
    log_t = [mp.log(mp.mpf(float(x))) if form == "probs" else mp.mpf(float(x)) for x in teacher[0]]
    assert abs(mp.log(mp.fsum(mp.exp(x) for x in log_t))) > 5e-9  # not normalised
    student = np.log(TEACHER.astype(np.float64)).astype(np.float32)
    got = crossent.distillation_loss(
        student, teacher, teacher_form=form, direction=direction, reduction="none"
    )
    want = _oracle(student, log_t, direction == "forward")
    assert abs(float(got[0]) - float(want)) <= 1e-6 * abs(float(want)) + 1e-15, (got, want)
    if direction == "forward":
        kl = crossent.kl_divergence(teacher, student, p_form=form, q_form="logits")
    else:
        kl = crossent.kl_divergence(student, teacher, p_form="logits", q_form=form)
    assert abs(float(got[0]) - float(kl[0])) <= 1e-6 * abs(float(want)) + 1e-15
