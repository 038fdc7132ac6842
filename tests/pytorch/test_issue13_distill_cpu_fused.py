r"""Issue 13 follow-up: ``crossent.torch.distillation_loss`` of CPU tensors by the fused op.

CPU calls (2-D, one floating dtype, a teacher that requires no gradient, ``'mean'``,
``'sum'`` or ``'none'``) go through ``crossent::distillation_cpu_rows``
(``crossent.torch._distill_cpu``: float64 Numba kernels, the near, far and invalid rows
by the NumPy functions) instead of autograd through the generic formula.

Oracles: mpmath at 50 digits of :math:`T^2 D(t\,\|\,s)` and :math:`T(s - t)` from the
inputs as stored (a few hard rows); the NumPy float64 :func:`crossent.distillation_loss`
and :func:`crossent.distillation_loss_grad` of the stored inputs (exact on near and far
rows: their own tests); ``gradcheck``/``gradgradcheck`` in float64 (finite differences);
the generic path (the fused op turned off) for the errors and the dtypes. Hard rows:
student equal to the teacher, nearly equal (:math:`10^{-7}`), a gap of :math:`10^4`, a
teacher probability 0 (a ``-inf`` logit), :math:`T = 0.5, 1, 4`, :math:`C = 2` and
:math:`C = 3000`; and ``torch.compile(fullgraph=True)`` (one node, eager's bits).

On main (c15a133) the file fails to import (``_distill_cpu`` does not exist); with the
fused op turned off (``applies`` False: main's generic path) six tests fail: the
structural one, mpmath's hard rows, the narrow dtypes (float32 work: not the float64
values rounded once), the near/far/ordinary rows in one call. Mutants caught: the
KL without :math:`\ell_s - \ell_t`; near rows not formed, or formed into the wrong
rows (loss and gradient); small-spread rows not formed; the gradient without
:math:`T`; no validation; the second derivative without :math:`s(s\cdot W)`; the
row sums without TwoSum; an ``exp`` floor of -20; near flags not passed to the host
gradients. Not caught: the 0 log 0 guard dropped (its NaN goes to the NumPy function,
which gives the same row), bfloat16 gradients rounded from float64 directly (once, not
through float32: within the same ulp bound).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mpmath = pytest.importorskip("mpmath")

import crossent  # noqa: E402
from crossent.errors import InputError  # noqa: E402
from crossent.torch import _distill_cpu, distillation_loss  # noqa: E402

TEMPERATURES = (0.5, 1.0, 4.0)
REDUCTIONS = ("mean", "sum", "none")


def _hard_rows(classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Student and teacher logits (8 x ``classes``, float64): ordinary rows, equal ones,
    nearly equal ones, a gap of 1e4, a teacher probability 0 (``-inf``)."""
    rng = np.random.default_rng(seed)
    z = 3.0 * rng.standard_normal((8, classes))
    v = 3.0 * rng.standard_normal((8, classes))
    v[2] = z[2]  # equal: D = 0
    v[3] = z[3] + 1e-7 * rng.standard_normal(classes)  # near: the terms cancel
    z[4, 0] = 1e4  # a gap of 1e4: s_0 = 1, t_0 tiny
    v[5, -1] = -np.inf  # teacher probability 0 (0 log 0)
    v[6] = z[6] + 0.5  # a shift: D = 0 (softmax is shift-invariant)
    return z, v


def _call(z: torch.Tensor, v: torch.Tensor, temperature: float, reduction: str) -> tuple:
    """The loss and the gradient in ``z`` (of the loss times row weights for 'none')."""
    z = z.detach().clone().requires_grad_()
    loss = distillation_loss(z, v, temperature, reduction)
    weights = torch.ones((), dtype=torch.float64)
    if reduction == "none":
        weights = torch.linspace(0.5, 1.5, loss.numel(), dtype=torch.float64)
    (grad,) = torch.autograd.grad((loss.double() * weights).sum(), z)
    return loss.detach(), grad, weights.numpy()


def _numpy_oracle(z: np.ndarray, v: np.ndarray, temperature: float, reduction: str) -> tuple:
    """The NumPy float64 loss and gradient of the stored inputs (per row, then reduced)."""
    rows = crossent.distillation_loss(z, v, temperature=temperature, reduction="none")
    grad = crossent.distillation_loss_grad(z, v, temperature=temperature, reduction="none")
    if reduction == "none":
        return rows, grad
    scale = 1.0 / len(rows) if reduction == "mean" else 1.0
    return np.sum(rows) * scale, grad * scale


def test_cpu_calls_take_the_fused_op() -> None:
    z = torch.randn(4, 5, requires_grad=True)
    v = torch.randn(4, 5)
    assert _distill_cpu.applies(z, v, 2.0, "mean")
    node, names = distillation_loss(z, v, 2.0).grad_fn, []
    while node is not None:
        names.append(type(node).__name__)
        node = node.next_functions[0][0] if node.next_functions else None
    assert any("distillation_cpu_rows" in name for name in names), names
    # the generic path keeps the other calls
    assert not _distill_cpu.applies(z, v.requires_grad_(), 2.0, "mean")
    assert not _distill_cpu.applies(z, v.detach().double(), 2.0, "mean")
    assert not _distill_cpu.applies(z[None], v.detach()[None], 2.0, "mean")
    assert not _distill_cpu.applies(z, v.detach(), 1e300, "mean")  # T^2 past float32


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("classes", [2, 3000])
def test_float64_against_numpy(temperature: float, classes: int) -> None:
    z, v = _hard_rows(classes, seed=classes)
    for reduction in REDUCTIONS:
        loss, grad, weights = _call(torch.tensor(z), torch.tensor(v), temperature, reduction)
        want_loss, want_grad = _numpy_oracle(z, v, temperature, reduction)
        np.testing.assert_allclose(loss.numpy(), want_loss, rtol=1e-12, atol=0)
        want = want_grad * (weights[:, None] if reduction == "none" else weights)
        # 1e-15 of the largest entry (the T(s - t) of ordinary rows: a few ulps of s, t)
        atol = 1e-15 * temperature * np.abs(want).max()
        np.testing.assert_allclose(grad.numpy(), want, rtol=1e-12, atol=atol)


@mpmath.workdps(50)
def test_hard_rows_against_mpmath() -> None:
    """Rows whose KL is 0, 1e-15 relative and ordinary; C = 2, 3 and T = 0.5, 4 (the
    gradients of near rows within 1e-14: ``_near_rows``' own bound); and a row whose KL
    (1.3e-5) is not small but whose :math:`s - t` is (2e-5 at most, beside a
    :math:`t_0` of 1: the backward kernel's small spread, formed by NumPy: its entries
    are 5e-12 off in the kernel)."""
    rows = [
        ([0.3, -1.2, 2.0], [0.3, -1.2, 2.0], 4.0),
        ([0.3, -1.2, 2.0], [0.3 + 2e-8, -1.2, 2.0 - 1e-8], 4.0),
        ([1.0, -2.0], [-0.5, 0.25], 0.5),
        ([1e4, 0.0, -3.0], [0.0, 1.0, -np.inf], 1.0),
        ([0.0, float(np.log(3e-5)), -30.0], [0.0, float(np.log(1e-5)), -30.0], 1.0),
    ]
    for zr, vr, temperature in rows:
        z, v = torch.tensor([zr], dtype=torch.float64), torch.tensor([vr], dtype=torch.float64)
        loss, grad, _ = _call(z, v, temperature, "sum")
        big_t = mpmath.mpf(temperature)
        s = _softmax_mp([mpmath.mpf(x) / big_t for x in zr])
        t = _softmax_mp([mpmath.mpf(x) / big_t if np.isfinite(x) else -mpmath.inf for x in vr])
        kl = mpmath.fsum(
            tc * (mpmath.log(tc) - mpmath.log(sc)) for tc, sc in zip(t, s, strict=True) if tc
        )
        want = float(big_t**2 * kl)
        assert abs(float(loss) - want) <= 4e-16 * abs(want) + 1e-300, (zr, vr, float(loss), want)
        for got, sc, tc in zip(grad[0].tolist(), s, t, strict=True):
            assert abs(got - float(big_t * (sc - tc))) <= 1e-14 * max(abs(got), 1e-300) + 1e-30


def _softmax_mp(x: list) -> list:
    top = max(x)
    e = [mpmath.exp(a - top) for a in x]
    total = mpmath.fsum(e)
    return [a / total for a in e]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_narrow_dtypes_round_the_float64_values_once(dtype: torch.dtype) -> None:
    """float32 results and gradients of the stored inputs: the NumPy float64 values
    rounded to float32 (one ulp: the loss's reduction), the gradient in ``dtype``
    (float16/bfloat16: within one of its ulps, by float32); the dtypes the generic path
    returns."""
    z64, v64 = _hard_rows(300, seed=1)
    z, v = torch.tensor(z64).to(dtype), torch.tensor(v64).to(dtype)
    zs, vs = z.double().numpy(), v.double().numpy()  # the stored values
    for temperature in TEMPERATURES:
        loss, grad, weights = _call(z, v, temperature, "none")
        want_loss, want_grad = _numpy_oracle(zs, vs, temperature, "none")
        assert loss.dtype == torch.float32
        assert grad.dtype == dtype
        np.testing.assert_array_equal(loss.numpy(), want_loss.astype(np.float32))
        want = torch.tensor(want_grad * weights[:, None])
        ulp = torch.finfo(dtype).eps * want.abs() + torch.finfo(dtype).tiny
        assert ((grad.double() - want).abs() <= ulp).all()
    with torch.no_grad():
        monkey = _generic(z, v, 2.0, "mean")
    assert distillation_loss(z, v, 2.0).dtype == monkey.dtype


def _generic(*args: object) -> torch.Tensor:
    """The generic path's result of the same call."""
    from crossent.torch import _far_distillation

    return _far_distillation.distillation_rows_checked(*args)


def test_near_far_and_ordinary_rows_in_one_call_keep_their_places() -> None:
    """Rows formed by the NumPy function (near, a -inf teacher score beside a -inf
    student one, past float32's range at T = 1e-30) between kernel rows: each row's loss
    and gradient its own (NumPy, one row at a time)."""
    rng = np.random.default_rng(5)
    z = rng.standard_normal((7, 6)).astype(np.float32)
    v = rng.standard_normal((7, 6)).astype(np.float32)
    v[1] = z[1]
    z[3, 2] = v[3, 2] = -np.inf
    v[5] = z[5] + np.float32(1e-6)
    temperature = 1e-3
    z[4] = [0.0, 3e38, -3e38, 1.0, 2.0, 0.5]  # gaps past float32 at T = 1e-3
    loss, grad, weights = _call(torch.tensor(z), torch.tensor(v), temperature, "none")
    for i in range(len(z)):
        zs, vs = z[i : i + 1].astype(np.float64), v[i : i + 1].astype(np.float64)
        want_loss, want_grad = _numpy_oracle(zs, vs, temperature, "none")
        assert loss[i].item() == np.float32(want_loss[0]), i
        want = (want_grad[0] * weights[i]).astype(np.float32)
        np.testing.assert_allclose(grad[i].numpy(), want, rtol=2**-23, atol=0, err_msg=str(i))


@pytest.mark.parametrize(
    ("position", "value"), [((1, 2), float("nan")), ((2, 0), float("inf")), ((0, None), -np.inf)]
)
@pytest.mark.parametrize("side", ["student", "teacher"])
def test_invalid_logits_raise_the_generic_paths_error(
    position: tuple, value: float, side: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    z, v = torch.randn(3, 4), torch.randn(3, 4)
    bad = z if side == "student" else v
    bad[position[0] if position[1] is None else position] = value
    messages = []
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(_distill_cpu, "applies", lambda *_: False)
        with pytest.raises(InputError) as error:
            distillation_loss(z, v, 2.0)
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert ("student" in messages[0]) == (side == "student")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_and_second_derivative(reduction: str) -> None:
    generator = torch.Generator().manual_seed(3)
    z = torch.randn(3, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    v = torch.randn(3, 4, dtype=torch.float64, generator=generator)
    v[1] = z[1].detach() + 1e-9  # a near row (formed by NumPy) among the others

    def loss(x: torch.Tensor) -> torch.Tensor:
        return distillation_loss(x, v, 1.5, reduction)

    assert torch.autograd.gradcheck(loss, (z,))
    assert torch.autograd.gradgradcheck(loss, (z,))


def test_invalid_options_and_shapes_keep_their_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    z, v = torch.randn(2, 3), torch.randn(2, 3)
    calls = [(z, v, -1.0), (z, v, 1.0, "batchmeans"), (z, v[:, :2]), (z, v[:1]), (z, v, "2")]
    messages: list[list[str]] = [[], []]
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(_distill_cpu, "applies", lambda *_: False)
        for call in calls:
            with pytest.raises(InputError) as error:
                distillation_loss(*call)
            messages[fused].append(str(error.value))
    assert messages[0] == messages[1]


@pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`")
def test_compiled_fullgraph_holds_the_fused_op() -> None:
    """``torch.compile(fullgraph=True)`` traces the op as one node (its fake kernel), with
    eager's numbers and gradient."""
    targets: list[str] = []

    def backend(graph: torch.fx.GraphModule, _: object) -> object:
        targets.extend(str(node.target) for node in graph.graph.nodes)
        return graph.forward

    def loss_fn(z: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return distillation_loss(z, v, 2.0, "mean")

    z, v = _hard_rows(5, seed=2)
    zt, vt = torch.tensor(z, dtype=torch.float32), torch.tensor(v, dtype=torch.float32)
    results = [
        _call_fn(fn, zt, vt)
        for fn in (torch.compile(loss_fn, fullgraph=True, backend=backend), loss_fn)
    ]
    assert any("distillation_cpu_rows" in target for target in targets), targets
    for got, want in zip(*results, strict=True):
        assert torch.equal(got, want)


def _call_fn(fn: object, z: torch.Tensor, v: torch.Tensor) -> tuple:
    leaf = z.clone().requires_grad_()
    loss = fn(leaf, v)  # type: ignore[operator]
    (grad,) = torch.autograd.grad(loss, leaf)
    return loss.detach(), grad
