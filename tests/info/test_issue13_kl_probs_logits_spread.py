r"""Issue 13 follow-up: the float64 KL of probabilities against logits (either way round)
on the exact sums' route, where one entry's log-ratio :math:`r_i` is large.

The exact sums (``info/_fused_kernels._bregman64_sums``) took :math:`u_i e^{r_i}` as
``u * exp(r)``; :math:`r_i` rounded to a float errs by :math:`2^{-53}|r_i|`, which
``exp`` turns into a relative error of :math:`p_i`'s term: at :math:`r = 424` (a
probability of 2.7e-9 against a logit 443 below the top) 100 to 340 ulps of the KL
where the docs certify :math:`2^{-47}`. Now :math:`u_i e^{r_i}` comes from P's side
(the probability, or :math:`e^{x_i - m}`, times one :math:`e^s` a row), a few ulps.

Checked against mpmath at 60 digits: the reported row, another of the fuzz's, and
logits against probabilities, all within :data:`FEW_ULPS`. Each row fails on main
(97 to 340 ulps off).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import crossent

pytest.importorskip("numba")
mpmath = pytest.importorskip("mpmath")
mp = mpmath.mp

FEW_ULPS = 8 * 2.0**-53
"""Relative error allowed (the docs' certified bound is 2^-47, i.e. 64 ulps)."""


def _logs(row: list[float], form: str) -> list[Any]:
    """Each entry's logarithm at mpmath precision (``None`` for a zero probability)."""
    values = [mp.mpf(x) for x in row]
    if form == "probs":
        return [mp.log(v) if v > 0 else None for v in values]
    if form == "log_probs":
        return values
    top = max(values)
    ell = top + mp.log(mp.fsum(mp.exp(v - top) for v in values))
    return [v - ell for v in values]


def _kl(p: list[float], q: list[float], forms: tuple[str, str]) -> Any:
    with mp.workdps(60):
        log_p, log_q = _logs(p, forms[0]), _logs(q, forms[1])
        return mp.fsum(
            mp.exp(a) * (a - b) for a, b in zip(log_p, log_q, strict=True) if a is not None
        )


CASES = [
    # the tester's row: 1.1328836988261796e-06 for 1.1328836988262213e-06
    (
        [2.680575403634894e-09, 0.9999999973194246],
        [-209.85615637219382, 233.50813683424116],
        ("probs", "logits"),
    ),
    (
        [1.0061047467010347e-07, 0.9999998993895254],
        [-176.578962248439, 275.8982686720411],
        ("probs", "logits"),
    ),
    # logits against probabilities: 9.059120931390125e-07 for 9.059120931389822e-07
    ([-20.0, 0.0], [1e-200, 1.0], ("logits", "probs")),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_issue13_kl_probs_logits_large_log_ratio_exact(case: int) -> None:
    p, q, forms = CASES[case]
    got = crossent.kl_divergence(
        np.array(p, dtype=np.float64),
        np.array(q, dtype=np.float64),
        p_form=forms[0],
        q_form=forms[1],
    )
    want = _kl(p, q, forms)
    assert abs(mp.mpf(float(got)) - want) <= FEW_ULPS * abs(want), (float(got), float(want))
