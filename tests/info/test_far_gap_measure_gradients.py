"""Autograd through the measures' far-gap rows on PyTorch (farmeasures).

A row of ``cross_entropy``, ``kl_divergence``, ``perplexity`` or
``cross_entropy_decomposition`` with ``q_form='logits'`` whose gap passes the float64
range (``[1.7e308, -1.7e308]``) is formed again on a float64 host copy and put back by
``where``: on main its gradient was a silent 0 in both sides
(``cross_entropy([0.6, 0.4], [1.7e308, -1.7e308], q_form='logits')``: 0 in the logits
against :math:`\\operatorname{softmax}(x) - p = [0.4, -0.4]`). Now each such row carries
its exact gradient. Oracle: central finite differences of the definitions in mpmath at
500 digits (:math:`h = 10^{-40}`: the logits near 1e308 keep 300+ digits past the
step), in every form of P and in both sides. The other rows' gradients keep the common
path's bits (-0.0 included), and a far row whose upstream gradient is 0 gets 0.
"""

from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
import pytest

import crossent

torch = pytest.importorskip("torch")

DPS = 500
H = mpmath.mpf("1e-40")

#: (P's probabilities, Q's logits): the reproducer, three classes, a row whose
#: cross-entropy is 5 nats (its perplexity e^5) and one whose is 1.8e296.
ROWS = {
    "reproducer": ([0.6, 0.4], [1.7e308, -1.7e308]),
    "three": ([0.5, 0.25, 0.25], [1e308, -1e308, 0.5]),
    "five_nats": ([1.0, 2.5e-308], [1e308, -1e308]),
    "small_far_mass": ([1.0 - 2.0**-40, 2.0**-40], [1e308, -1e308]),
}
MEASURES = ("cross_entropy", "kl_divergence", "decomposition_ce", "decomposition_kl")


def _side_p(probs: list[float], form: str) -> list[float]:
    """P as given in ``form`` (the logs of the probabilities are also logits of P)."""
    return probs if form == "probs" else [math.log(v) for v in probs]


def _log_softmax(row):
    top = max(row)
    lse = top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in row))
    return [v - lse for v in row]


def _definition(measure: str, given, x, form: str):
    """The measure (nats) in mpmath of P as given in ``form`` and Q's logits ``x``."""
    if form == "probs":
        p = list(given)
        log_p = [mpmath.log(v) for v in p]
    else:
        log_p = list(given) if form == "log_probs" else _log_softmax(given)
        p = [mpmath.exp(v) for v in log_p]
    log_q = _log_softmax(x)
    cross = -mpmath.fsum(a * b for a, b in zip(p, log_q, strict=True))
    if measure in ("cross_entropy", "decomposition_ce"):
        return cross
    return cross + mpmath.fsum(a * b for a, b in zip(p, log_p, strict=True))


def _oracle(measure: str, given: list[float], x: list[float], form: str):
    """``(d/dp, d/dx)`` of the definition by central differences, rounded to float64
    (``inf`` past the range)."""
    with mpmath.workdps(DPS):
        gv, xv = [mpmath.mpf(v) for v in given], [mpmath.mpf(v) for v in x]

        def args_of(which: int) -> list:
            return gv if which == 0 else xv

        def partial(which: int, j: int) -> float:
            def at(step):
                args = [list(gv), list(xv)]
                args[which][j] += step
                return _definition(measure, args[0], args[1], form)

            step = H * min(1, abs(args_of(which)[j])) if args_of(which)[j] else H
            d = (at(step) - at(-step)) / (2 * step)
            return (
                float(d)
                if abs(d) < mpmath.mpf(np.finfo(np.float64).max)
                else math.copysign(math.inf, float(mpmath.sign(d)))
            )

        return (
            np.array([partial(0, j) for j in range(len(gv))]),
            np.array([partial(1, j) for j in range(len(xv))]),
        )


@functools.cache
def _row_oracle(measure: str, row: str, form: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_oracle` of ``ROWS[row]`` in ``form``, once per process for the measures of
    one definition (``cross_entropy`` and ``decomposition_ce``, ``kl_divergence`` and
    ``decomposition_kl``: :func:`_definition`) and both bases (the caller divides by
    :math:`\\log b`). CI time: 500-digit differences, a quarter of them before."""
    definition = "cross_entropy" if measure in ("cross_entropy", "decomposition_ce") else "kl"
    probs, x = ROWS[row]
    wants = _oracle(definition, _side_p(probs, form), x, form)
    for want in wants:
        want.flags.writeable = False
    return wants


def _value(measure: str, p, x, **kw):
    if measure.startswith("decomposition"):
        parts = crossent.cross_entropy_decomposition(p, x, q_form="logits", **kw)
        return parts.cross_entropy if measure.endswith("ce") else parts.kl_divergence
    return getattr(crossent, measure)(p, x, q_form="logits", **kw)


def _grads(measure: str, given, x, form: str, *, base=None, upstream=None):
    p_t = torch.tensor(given, dtype=torch.float64, requires_grad=True)
    x_t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    kw = {} if base is None else {"base": base}
    value = _value(measure, p_t, x_t, p_form=form, **kw)
    weight = (
        torch.ones_like(value) if upstream is None else torch.tensor(upstream, dtype=torch.float64)
    )
    (value * weight).sum().backward()
    return value.detach().numpy(), p_t.grad.numpy(), x_t.grad.numpy()


@pytest.mark.parametrize("base", [None, 2.0], ids=["nats", "bits"])
@pytest.mark.parametrize("form", ["probs", "log_probs", "logits"])
@pytest.mark.parametrize("row", sorted(ROWS))
@pytest.mark.parametrize("measure", MEASURES)
def test_far_row_gradients_match_mpmath(measure: str, row: str, form: str, base) -> None:
    """Both sides' gradients of a far row are those of the definition (0 on main)."""
    probs, x = ROWS[row]
    given = _side_p(probs, form)
    value, g_p, g_x = _grads(measure, given, x, form, base=base)
    assert np.isfinite(value) or (row, base) == ("reproducer", 2.0)  # (1.96e308 bits)
    want_p, want_x = _row_oracle(measure, row, form)
    with np.errstate(over="ignore"):  # (1.36e308 nats: past the range in bits)
        want_p, want_x = (
            want / (1.0 if base is None else math.log(base)) for want in (want_p, want_x)
        )
    np.testing.assert_allclose(g_x, want_x, rtol=1e-12, atol=0)
    np.testing.assert_allclose(g_p, want_p, rtol=1e-12, atol=0)


def test_the_reproducer() -> None:
    """The issue's reproducer: ``[0.4, -0.4]`` in the logits (0 on main), and in P
    :math:`-\\log q = [0, 3.4\\cdot 10^{308}]`, past the range: ``inf``."""
    _, g_p, g_x = _grads("cross_entropy", [0.6, 0.4], [1.7e308, -1.7e308], "probs")
    assert g_x.tolist() == [0.4, -0.4]
    assert g_p.tolist() == [0.0, math.inf]


@pytest.mark.parametrize("form", ["probs", "log_probs", "logits"])
def test_perplexity_of_a_far_row(form: str) -> None:
    """:math:`\\partial e^{H} = e^{H}\\,\\partial H` of a far row of 5 nats (0 on main)."""
    probs, x = ROWS["five_nats"]
    given = _side_p(probs, form)
    value, g_p, g_x = _grads("perplexity", given, x, form)
    want_p, want_x = _oracle("cross_entropy", given, x, form)
    np.testing.assert_allclose(value, math.exp(5.0), rtol=1e-12)
    np.testing.assert_allclose(g_x, want_x * float(value), rtol=1e-12, atol=0)
    np.testing.assert_allclose(g_p, want_p * float(value), rtol=1e-12, atol=0)


NEAR_X = [[0.0, -math.inf, 1.0], [0.3, 0.1, -2.0], [5.0, 5.0, 5.0]]
NEAR_P = [[0.6, 0.0, 0.4], [0.0, 0.5, 0.5], [1.0, 0.0, 0.0]]


@pytest.mark.parametrize("upstream", [(1.0, -1.0, 2.0), (-1.0, 1.0, -3.0)], ids=["pos", "neg"])
@pytest.mark.parametrize("form", ["probs", "log_probs", "logits"])
@pytest.mark.parametrize("measure", MEASURES)
def test_other_rows_keep_their_bits(measure: str, form: str, upstream) -> None:
    """Beside a far row, the other rows' gradients are those they have alone, bit for
    bit (-0.0 included), and the far row's are its own. (Mutant-guarded where it passes
    on main: a zero of the carried gradient as +0.0, not -0.0, turned a -0.0 of the
    common path into +0.0 in ``cross_entropy``'s P; the far row's half fails on main.)"""
    near_p = [_side_p(row, form) if form == "probs" else _logs(row) for row in NEAR_P]
    far_p = _side_p([0.6, 0.3, 0.1], form)
    far_x = [1.7e308, -1.7e308, 0.0]
    _, alone_p, alone_x = _grads(measure, near_p, NEAR_X, form, upstream=list(upstream))
    _, both_p, both_x = _grads(
        measure, [*near_p, far_p], [*NEAR_X, far_x], form, upstream=[*upstream, 1.0]
    )
    assert both_p[:3].view(np.int64).tolist() == alone_p.view(np.int64).tolist()
    assert both_x[:3].view(np.int64).tolist() == alone_x.view(np.int64).tolist()
    _, far_alone_p, far_alone_x = _grads(measure, [far_p], [far_x], form)
    assert both_x[3].tolist() == far_alone_x[0].tolist() != [0.0, 0.0, 0.0]
    np.testing.assert_array_equal(both_p[3], far_alone_p[0])


def _logs(row: list[float]) -> list[float]:
    return [math.log(v) if v > 0 else -math.inf for v in row]


@pytest.mark.parametrize("form", ["probs", "log_probs", "logits"])
@pytest.mark.parametrize("measure", MEASURES)
def test_far_row_of_zero_upstream_gets_zero(measure: str, form: str) -> None:
    """A far row whose upstream gradient is 0 gets 0 in both sides (no ``0 * inf``:
    P's ``probs`` gradient is ``inf`` there), and the same row backed gets its own
    (0 on main: fails there)."""
    far_p = _side_p([0.6, 0.4], form)
    near_p = _side_p([0.5, 0.5], form)
    x = [[1.7e308, -1.7e308], [0.3, 0.1]]
    _, g_p, g_x = _grads(measure, [far_p, near_p], x, form, upstream=[0.0, 1.0])
    assert g_p[0].tolist() == [0.0, 0.0]
    assert g_x[0].tolist() == [0.0, 0.0]
    _, g_p, g_x = _grads(measure, [far_p, near_p], x, form, upstream=[1.0, 0.0])
    assert g_x[0].tolist() == [0.4, -0.4]
    assert not np.any(np.isnan(g_p[0]))


def test_float32_broadcast_and_axis() -> None:
    """Float32 tensors, P broadcast against two rows of Q, classes along axis 0: the
    far row's gradient is that of the float64 one rounded (0 on main)."""
    big = float(np.finfo(np.float32).max) * 0.9
    x = torch.tensor([[big, 0.3], [-big, 0.1]], dtype=torch.float32, requires_grad=True)
    p = torch.tensor([[0.6], [0.4]], dtype=torch.float32, requires_grad=True)
    value = crossent.cross_entropy(p, x, q_form="logits", axis=0)
    value.sum().backward()
    x64 = x.detach().double().requires_grad_(True)
    near = crossent.cross_entropy(
        p.detach().double(), x64[:, 1:], q_form="logits", axis=0, validate=False
    )
    near.sum().backward()
    assert x.grad[:, 0].tolist() == pytest.approx([0.4, -0.4], rel=1e-7)
    assert x.grad[:, 1].tolist() == pytest.approx(x64.grad[:, 1].tolist(), rel=1e-6)
    # P's: -log q of the far row (0 and 2*big*0.9... past float32's range: inf) plus
    # the other row's
    assert p.grad[1, 0].item() == math.inf
