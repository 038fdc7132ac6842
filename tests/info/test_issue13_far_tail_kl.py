r"""KL of logits whose tail sits about 300 nats below the maximum (issue 13, kltiny1).

A report said that ``kl_divergence`` of rows such as :math:`p = \operatorname{softmax}
(0, -300, -300.5)`, :math:`q = \operatorname{softmax}(0, -300.2, -300)` was about
:math:`10^{15}` times off on every path. It is not: their KL is
:math:`5.6081797\cdot 10^{-132}`, of order :math:`e^{-300}`, and crossent gives it
within a few ulps on NumPy's fused kernel, NumPy's generic path and float64 PyTorch.
The oracle was wrong: mpmath at 50 digits rounds :math:`1 + e^{-300}` to 1, so it
drops the log-partitions (of order :math:`e^{-300}`, the size of the KL itself) and
gives :math:`-5.3163\cdot 10^{-132}` for that row, as ``torch.nn.functional.kl_div``
(``log_target=True``) and ``scipy.special.rel_entr`` on float64 log-softmaxes do
(whose :math:`\log p_1` rounds to 0). The oracle here works with the row's gap over
:math:`\ln 10` digits and 40 more (a tail of :math:`e^{-300}` needs 131).

Guards of existing behaviour (0 of 10 fail on main). Mutants (a copy of ``src``,
measured): the generic pair of logits summed as :math:`p(\log p - \log q)` instead of
:math:`q\varphi(r)`: 1 fails (V = 2, 10 eps); that and ``_xp.log_sum_exp_shifted``'s
one-row ``np.log1p(rest)`` as ``np.log(1 + rest)`` (the log of a rounded sum): 5 fail
(every row of logits on the generic path, relative error 0.09 to 9.7); the ``log1p``
mutant alone: none (the :math:`q\varphi(r)` terms do not feel the log-partitions at
this size).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent
from crossent.info import _fused

FEW_ULPS = 8 * np.finfo(np.float64).eps


def _rows() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(20261207)
    wide_p = -300.0 + rng.uniform(-1.0, 1.0, 1000)
    wide_q = -300.0 + rng.uniform(-1.0, 1.0, 1000)
    wide_p[0] = wide_q[0] = 0.0
    return [
        ("V3", np.array([0.0, -300.0, -300.5]), np.array([0.0, -300.2, -300.0])),
        ("V2", np.array([0.0, -300.0]), np.array([0.0, -300.2])),
        ("V3_shifted", np.array([2.5, -297.5, -298.0]), np.array([-1.25, -301.45, -301.25])),
        ("V3_700", np.array([0.0, -700.0, -700.5]), np.array([0.0, -700.2, -700.0])),
        ("V1000", wide_p + 2.5, wide_q - 1.25),
    ]


ROWS = _rows()


def _log_probs(z: np.ndarray) -> np.ndarray:
    r"""Float64 log-probabilities of logits whose maximum is the first, with the
    log-partition by ``log1p`` (``z - logaddexp.reduce(z)`` rounds :math:`\log p_1` of
    a shifted row to 0: log-probabilities that do not sum to 1, whose KL is negative)."""
    shifted = z - z[0]
    return shifted - np.log1p(np.sum(np.exp(shifted[1:])))


def _log_softmax(z: np.ndarray) -> list[Any]:
    x = [mpmath.mpf(float(v)) for v in z]
    top = max(x)
    ell = top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in x))
    return [v - ell for v in x]


def _digits(*rows: np.ndarray) -> int:
    """Enough digits for the row's tail: its gap over ``ln 10``, and 40 to spare."""
    return 40 + int(max(float(np.ptp(r)) for r in rows) / np.log(10.0))


def _truth(a: np.ndarray, b: np.ndarray, form: str) -> Any:
    with mpmath.workdps(_digits(a, b)):
        if form == "logits":
            la, lb = _log_softmax(a), _log_softmax(b)
        else:
            la, lb = [mpmath.mpf(float(v)) for v in a], [mpmath.mpf(float(v)) for v in b]
        return mpmath.fsum(mpmath.exp(x) * (x - y) for x, y in zip(la, lb, strict=True))


def _generic(call: Callable[[], Any]) -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_fused, "available", lambda: False)
        return call()


def _paths(a: np.ndarray, b: np.ndarray, form: str) -> dict[str, Callable[[], Any]]:
    kw = {"p_form": form, "q_form": form}
    paths: dict[str, Callable[[], Any]] = {
        "generic": lambda: _generic(lambda: crossent.kl_divergence(a, b, **kw)),
    }
    if _fused.available():
        paths["fused"] = lambda: crossent.kl_divergence(a, b, **kw)
    try:
        import torch
    except ImportError:  # (the optional extra)
        return paths
    paths["torch"] = lambda: crossent.kl_divergence(torch.tensor(a), torch.tensor(b), **kw)
    return paths


@pytest.mark.parametrize("form", ["logits", "log_probs"])
@pytest.mark.parametrize(("name", "p", "q"), ROWS, ids=[r[0] for r in ROWS])
def test_far_tail_kl_within_few_ulps(name: str, p: np.ndarray, q: np.ndarray, form: str) -> None:
    if form == "log_probs":  # the same rows as float64 log-probabilities (the given ones)
        p, q = _log_probs(p), _log_probs(q)
    truth = _truth(p, q, form)
    assert truth > 0
    for path, call in _paths(p, q, form).items():
        got = float(call())
        error = float(abs(mpmath.mpf(got) - truth) / truth)
        assert error <= FEW_ULPS, (name, form, path, got, float(truth), error)
