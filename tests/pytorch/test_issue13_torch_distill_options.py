r"""Issue 13 follow-up: ``crossent.torch.distillation_loss`` takes the NumPy function's
``teacher_form`` ({'logits', 'probs', 'log_probs'}) and ``direction`` ({'forward',
'reverse'}).

Before, the torch function took teacher logits and the forward KL
:math:`D(t\,\|\,s)` only: a teacher's stored probabilities, or the reverse KL
:math:`D(s\,\|\,t)` (MiniLLM), could not be used from ``crossent.torch``. On main every
test here fails with ``TypeError: ... unexpected keyword argument 'teacher_form'`` (or
``'direction'``).

Oracles: the NumPy :func:`crossent.distillation_loss` and
:func:`crossent.distillation_loss_grad` on float64 copies of the same arrays (float64:
1e-12 relative; float32: :data:`ULPS32` float32 ulps of the row's scale against the
float64 truth), and PyTorch's own float64 idioms (``F.kl_div(..., log_target=True,
reduction="batchmean")`` forward, :math:`\sum_c s_c(\log s_c - \log t_c)` reverse).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = pytest.importorskip("torch.nn.functional")

import crossent  # noqa: E402
from crossent.errors import InputError  # noqa: E402
from crossent.torch import DistillationLoss, _distill_cpu, distillation_loss  # noqa: E402

FORMS = ("logits", "probs", "log_probs")
DIRECTIONS = ("forward", "reverse")
REDUCTIONS = ("mean", "sum", "none")
TEMPERATURES = (1.0, 2.5)
DTYPES = (torch.float64, torch.float32)
ULPS32 = 16
"""Float32 ulps (of the call's scale, below) allowed against the float64 truth."""


def _teacher(form: str, logits: np.ndarray) -> np.ndarray:
    """The teacher ``logits`` in ``form`` (float64)."""
    if form == "logits":
        return logits
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return np.exp(log_probs) if form == "probs" else log_probs


def _arrays(seed: int = 0, rows: int = 6, classes: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return 2.0 * rng.standard_normal((rows, classes)), 2.0 * rng.standard_normal((rows, classes))


def _truth(z: torch.Tensor, t: torch.Tensor, **options: Any) -> tuple[np.ndarray, np.ndarray]:
    """The NumPy loss and student gradient on float64 copies of ``z`` and ``t``
    (not validated: float32 probabilities widened are rows of float32 rounding)."""
    z64, t64 = (x.detach().double().numpy() for x in (z, t))
    loss = crossent.distillation_loss(z64, t64, validate=False, **options)
    grad = crossent.distillation_loss_grad(z64, t64, validate=False, **options)
    return np.asarray(loss, dtype=np.float64), np.asarray(grad, dtype=np.float64)


def _call(
    z64: np.ndarray, t64: np.ndarray, dtype: torch.dtype, **options: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The torch loss of ``z64`` and ``t64`` rounded to ``dtype``, and the student's
    gradient of its sum (loss.backward() with ones)."""
    z = torch.tensor(z64, dtype=dtype, requires_grad=True)
    t = torch.tensor(t64, dtype=dtype)
    loss = distillation_loss(z, t, **options)
    loss.backward(torch.ones_like(loss))
    assert z.grad is not None
    return loss.detach(), z.grad, z, t


def _close(ours: np.ndarray, truth: np.ndarray, dtype: torch.dtype, scale: float) -> None:
    """Within 1e-12 relative (float64) or :data:`ULPS32` float32 ulps of ``scale``."""
    ours = np.asarray(ours, dtype=np.float64)
    if dtype == torch.float64:
        np.testing.assert_allclose(ours, truth, rtol=1e-12, atol=1e-12 * scale)
    else:
        eps = float(np.finfo(np.float32).eps)
        np.testing.assert_allclose(ours, truth, rtol=0, atol=ULPS32 * eps * scale)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("teacher_form", FORMS)
def test_loss_and_student_gradient_equal_numpy(
    teacher_form: str, direction: str, reduction: str, temperature: float, dtype: torch.dtype
) -> None:
    z64, v64 = _arrays()
    options = dict(
        temperature=temperature, teacher_form=teacher_form, direction=direction, reduction=reduction
    )
    loss, grad, z, t = _call(z64, _teacher(teacher_form, v64), dtype, **options)
    assert loss.dtype == dtype
    truth, truth_grad = _truth(z, t, **options)
    scale = temperature**2 * (1.0 + np.log(z64.shape[1]))  # the size of a row's terms
    _close(loss.numpy(), truth, dtype, scale * (z64.shape[0] if reduction == "sum" else 1))
    _close(grad.numpy(), truth_grad, dtype, temperature)


def _idiom(z: torch.Tensor, log_t: torch.Tensor, temperature: float, direction: str) -> Any:
    """PyTorch's float64 idiom of the 'mean' distillation loss (``log_t``: the teacher's
    log-probabilities or logits, softened here)."""
    t = temperature
    log_s, log_tt = F.log_softmax(z / t, 1), F.log_softmax(log_t / t, 1)
    if direction == "forward":
        return t**2 * F.kl_div(log_s, log_tt, log_target=True, reduction="batchmean")
    return t**2 * (log_s.exp() * (log_s - log_tt)).sum(1).mean()


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("teacher_form", FORMS)
def test_equals_pytorch_idioms(teacher_form: str, direction: str, temperature: float) -> None:
    z64, v64 = _arrays(1)
    teacher = _teacher(teacher_form, v64)
    options = dict(temperature=temperature, teacher_form=teacher_form, direction=direction)
    loss, grad, _, _ = _call(z64, teacher, torch.float64, **options)
    z = torch.tensor(z64, requires_grad=True)
    scores = torch.tensor(np.log(teacher) if teacher_form == "probs" else teacher)
    idiom = _idiom(z, scores, temperature, direction)
    idiom.backward()
    assert z.grad is not None
    torch.testing.assert_close(loss, idiom.detach(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad, z.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_teacher_logits_gradient_equals_idiom(direction: str, temperature: float) -> None:
    """A teacher (logits) that requires a gradient gets autograd's, both directions."""
    z64, v64 = _arrays(2)
    z, v = torch.tensor(z64, requires_grad=True), torch.tensor(v64, requires_grad=True)
    distillation_loss(z, v, temperature=temperature, direction=direction).backward()
    zi, vi = torch.tensor(z64, requires_grad=True), torch.tensor(v64, requires_grad=True)
    _idiom(zi, vi, temperature, direction).backward()
    torch.testing.assert_close(z.grad, zi.grad, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(v.grad, vi.grad, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- hard rows


ZERO_TEACHER = np.array([[0.5, 0.5, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 1.0, 0.0]])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("teacher_form", ["probs", "log_probs"])
def test_zero_teacher_probability_forward_is_finite(
    teacher_form: str, temperature: float, dtype: torch.dtype
) -> None:
    r"""Forward: :math:`0\log 0 = 0`, so a teacher class of probability 0 adds nothing."""
    z64 = _arrays(3, 3, 4)[0]
    with np.errstate(divide="ignore"):
        teacher = ZERO_TEACHER if teacher_form == "probs" else np.log(ZERO_TEACHER)
    options = dict(temperature=temperature, teacher_form=teacher_form, reduction="none")
    loss, grad, z, t = _call(z64, teacher, dtype, **options)
    assert torch.isfinite(loss).all()
    assert torch.isfinite(grad).all()
    truth, truth_grad = _truth(z, t, **options)
    _close(loss.numpy(), truth, dtype, temperature**2 * 3.0)
    _close(grad.numpy(), truth_grad, dtype, temperature)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("teacher_form", ["probs", "log_probs"])
def test_zero_teacher_probability_reverse_is_inf_not_nan(
    teacher_form: str, dtype: torch.dtype
) -> None:
    r"""Reverse: the student's mass on a class the teacher gives probability 0 makes
    :math:`D(s\,\|\,t) = +\infty` (never NaN); the other rows as NumPy's."""
    z64 = _arrays(4, 3, 4)[0]
    with np.errstate(divide="ignore"):
        teacher = ZERO_TEACHER if teacher_form == "probs" else np.log(ZERO_TEACHER)
    for reduction in ("none", "mean", "sum"):
        options = dict(teacher_form=teacher_form, direction="reverse", reduction=reduction)
        z = torch.tensor(z64, dtype=dtype, requires_grad=True)
        loss = distillation_loss(z, torch.tensor(teacher, dtype=dtype), **options)
        assert not torch.isnan(loss).any()
        if reduction == "none":
            assert loss[0] == np.inf
            assert loss[2] == np.inf
            truth, _ = _truth(z, torch.tensor(teacher), **options)
            _close(loss[1:2].detach().numpy(), truth[1:2], dtype, 3.0)
            loss[1].backward()  # a finite row's gradient
            _, truth_grad = _truth(z[1:2], torch.tensor(teacher[1:2]), **options)
            assert z.grad is not None
            _close(z.grad[1:2].numpy(), truth_grad, dtype, 1.0)
            assert (z.grad[[0, 2]] == 0).all()
        else:
            assert loss == np.inf


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("teacher_form", FORMS)
def test_student_equal_to_teacher_gives_zero(
    teacher_form: str, direction: str, temperature: float, dtype: torch.dtype
) -> None:
    """Student and teacher the same distribution: loss 0 and gradient 0 (within ulps)."""
    z64 = _arrays(5)[0]
    teacher = _teacher(teacher_form, z64)
    options = dict(temperature=temperature, teacher_form=teacher_form, direction=direction)
    loss, grad, _, _ = _call(z64, teacher, dtype, **options)
    eps = float(torch.finfo(dtype).eps)
    assert abs(float(loss)) <= 4 * eps * temperature**2
    assert float(grad.abs().max()) <= 4 * eps * temperature


FAR_STUDENT = np.array([[0.0, 1e4, -1e4, 5.0], [1e4, 0.0, 1.0, -1e4], [1.0, 2.0, 3.0, 4.0]])
FAR_TEACHER = np.array([[1e4, 0.0, -1e4, 5.0], [1e4, 1e4 - 3.0, 2.0, 0.0], [1e4, -1e4, 0.0, 3.0]])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("teacher_form", FORMS)
def test_far_logits_equal_numpy(
    teacher_form: str, direction: str, temperature: float, dtype: torch.dtype
) -> None:
    r"""Gaps of :math:`\pm 10^4` (probabilities that underflow to 0): NumPy's numbers,
    ``+inf`` only where NumPy's is, never NaN."""
    teacher = _teacher(teacher_form, FAR_TEACHER)
    options = dict(
        temperature=temperature, teacher_form=teacher_form, direction=direction, reduction="none"
    )
    z = torch.tensor(FAR_STUDENT, dtype=dtype, requires_grad=True)
    t = torch.tensor(teacher, dtype=dtype)
    loss = distillation_loss(z, t, **options)
    truth, truth_grad = _truth(z, t, **options)
    assert not torch.isnan(loss).any()
    finite = np.isfinite(truth)
    assert (torch.isinf(loss).numpy() == ~finite).all()
    scale = temperature**2 * 1e4
    _close(loss.detach().numpy()[finite], truth[finite], dtype, scale)
    loss[torch.from_numpy(finite)].sum().backward()
    assert z.grad is not None
    # (reverse: T s(log s - log t - D), terms of 1e4 / T that cancel to some 800)
    _close(z.grad.numpy()[finite], truth_grad[finite], dtype, temperature * 1e4)


# -------------------------------------------------------------------------- bad inputs


def test_bad_teacher_form_names_the_argument() -> None:
    z, v = (torch.tensor(a) for a in _arrays())
    with pytest.raises(InputError, match="teacher_form"):
        distillation_loss(z, v, teacher_form="prob")
    with pytest.raises(InputError, match="teacher_form"):
        distillation_loss(z.float(), v.float(), teacher_form="prob")  # not the fused op's


def test_bad_direction_names_the_argument() -> None:
    z, v = (torch.tensor(a) for a in _arrays())
    with pytest.raises(InputError, match="direction"):
        distillation_loss(z, v, direction="backwards")
    with pytest.raises(InputError, match="direction"):
        distillation_loss(z.float(), v.float(), direction="backwards")


@pytest.mark.parametrize(
    "bad",
    [
        np.array([[0.5, 0.4, 0.2], [0.2, 0.3, 0.5]]),  # sums to 1.1
        np.array([[1.2, -0.2, 0.0], [0.2, 0.3, 0.5]]),  # outside [0, 1]
        np.array([[0.5, np.nan, 0.5], [0.2, 0.3, 0.5]]),
    ],
    ids=["sum", "range", "nan"],
)
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_bad_probabilities_raise_as_numpy(bad: np.ndarray, direction: str) -> None:
    z = np.zeros_like(bad)
    options = dict(teacher_form="probs", direction=direction)
    with pytest.raises(InputError) as numpy_error:
        crossent.distillation_loss(z, bad, axis=1, **options)
    with pytest.raises(InputError) as torch_error:
        distillation_loss(torch.tensor(z, requires_grad=True), torch.tensor(bad), **options)
    # the same words; the dtype as its namespace spells it (torch.float64)
    assert str(torch_error.value).replace("torch.", "") == str(numpy_error.value)


def test_module_holds_the_options() -> None:
    z64, v64 = _arrays(6)
    teacher = torch.tensor(_teacher("probs", v64))
    module = DistillationLoss(2.5, "sum", teacher_form="probs", direction="reverse")
    z = torch.tensor(z64)
    expected = distillation_loss(
        z, teacher, temperature=2.5, reduction="sum", teacher_form="probs", direction="reverse"
    )
    assert torch.equal(module(z, teacher), expected)
    assert (module.teacher_form, module.direction) == ("probs", "reverse")


# --------------------------------------------------------------------------- compile

COMPILED_ROWS = (
    ([0.5, -0.5, 1.0], [0.2, 0.3, 0.5]),  # ordinary
    ([0.0, 1e308, -1e308], [0.2, 0.3, 0.5]),  # a far student gap: formed on the host
    ([0.3, 0.301, 0.3], [1 / 3, 1 / 3, 1 / 3]),  # a near row (KL about 1e-7 at T = 1)
    ([1.0, 2.0, 3.0], [0.5, 0.5, 0.0]),  # reverse: truly +inf (the graph's own row)
)
COMPILED_CASES = [
    (form, direction)
    for form in FORMS
    for direction in DIRECTIONS
    if (form, direction) != ("logits", "forward")
]


def _compiled_inputs(form: str, teacher_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.tensor([r[0] for r in COMPILED_ROWS], dtype=torch.float64, requires_grad=True)
    with np.errstate(divide="ignore"):
        probs = np.array([r[1] for r in COMPILED_ROWS])
        teacher = probs if form == "probs" else np.log(probs)  # (logits: log p, -inf for 0)
    return z, torch.tensor(teacher).requires_grad_(teacher_grad)


def _compiled_losses(students: list[Any], teachers: list[Any]) -> list[Any]:
    return [
        distillation_loss(z, t, reduction="none", teacher_form=form, direction=direction)
        for (form, direction), z, t in zip(COMPILED_CASES, students, teachers, strict=True)
    ]


def _run_compiled(fn: Any) -> list[tuple[Any, ...]]:
    """Each case's rows, and the gradients of their sum but the infinite row's."""
    inputs = [_compiled_inputs(form, form == "logits") for form, _ in COMPILED_CASES]
    rows = fn([x[0] for x in inputs], [x[1] for x in inputs])
    finite = [torch.where(torch.isfinite(r), r, 0.0).sum() for r in rows]
    torch.autograd.backward(finite)
    return [(r.detach(), z.grad, t.grad) for r, (z, t) in zip(rows, inputs, strict=True)]


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")
@pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`")
def test_compiled_fullgraph_equals_eager() -> None:
    """Under ``torch.compile(fullgraph=True)`` every option but the default (ordinary,
    far, near and truly infinite rows; a teacher's gradient in its logits): eager's
    numbers and gradients (the far and near rows formed by the custom op with the
    options; mutants that drop them from ``_rows_formed`` or its backward fail)."""
    torch._dynamo.reset()
    compiled = _run_compiled(torch.compile(_compiled_losses, fullgraph=True, backend="aot_eager"))
    eager = _run_compiled(_compiled_losses)
    for (form, direction), got, want in zip(COMPILED_CASES, compiled, eager, strict=True):
        rows, grad, _teacher_grad = got
        assert torch.isfinite(rows[:3]).all(), (form, direction)
        assert rows[3].item() == (np.inf if direction == "reverse" else want[0][3].item())
        for name, g, w in zip(("rows", "student", "teacher"), got, want, strict=True):
            if w is None:
                assert g is None
                continue
            torch.testing.assert_close(
                g, w, rtol=1e-14, atol=1e-300, msg=f"{form} {direction} {name}"
            )
        z, t = _compiled_inputs(form, False)
        truth, truth_grad = _truth(z, t, teacher_form=form, direction=direction, reduction="none")
        np.testing.assert_allclose(rows.numpy(), truth, rtol=1e-12)
        finite = np.isfinite(truth)
        np.testing.assert_allclose(grad[finite].numpy(), truth_grad[finite], rtol=1e-12, atol=1e-15)


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")
@pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`")
def test_compiled_checks_and_infinite_rows_as_eager() -> None:
    """Compiled (``fullgraph=True``): probabilities that do not sum to 1 raise eager's
    error (the custom op validates the teacher in its form), and a truly infinite
    reverse row keeps eager's gradient (the graph's own row, not the host's NaN)."""

    def f(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return distillation_loss(z, t, reduction="sum", teacher_form="probs", direction="reverse")

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    z = torch.tensor([[1.0, 2.0, 3.0], [0.5, -0.5, 1.0]], dtype=torch.float64)
    bad = torch.tensor([[0.5, 0.4, 0.2], [0.2, 0.3, 0.5]], dtype=torch.float64)
    with pytest.raises(InputError) as eager_error:
        f(z, bad)
    with pytest.raises(InputError) as compiled_error:
        compiled(z, bad)
    assert str(compiled_error.value) == str(eager_error.value)
    t = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], dtype=torch.float64)
    grads = []
    for fn in (compiled, f):
        zz = z.clone().requires_grad_()
        loss = fn(zz, t)
        assert loss.item() == np.inf
        loss.backward()
        grads.append(zz.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-14, atol=0.0, equal_nan=True)


# ------------------------------------------------- rows formed again on the host (NumPy)

B = 1e308
GAPS = np.array([[0.0, B, -B], [1.0, 2.0, 3.0]])  # a gap of 2e308: past float64's range
TEACHER_PROBS = np.array([[0.2, 0.3, 0.5], [0.1, 0.6, 0.3]])


def _teacher_of(form: str, probs: np.ndarray) -> np.ndarray:
    return probs if form == "probs" else np.log(probs)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("teacher_form", FORMS)
def test_far_gaps_formed_again_with_the_options(
    teacher_form: str, direction: str, reduction: str
) -> None:
    """A student gap of 2e308: the generic rows are ``inf`` (forward) or lose the
    gradient; formed again by the NumPy function with the same options (a mutant that
    drops them from ``_HostRows`` gives the teacher-logits forward numbers)."""
    teacher = _teacher_of(teacher_form, TEACHER_PROBS)
    options = dict(teacher_form=teacher_form, direction=direction, reduction=reduction)
    loss, grad, z, t = _call(GAPS, teacher, torch.float64, **options)
    truth, truth_grad = _truth(z, t, **options)
    assert np.isfinite(truth).all()
    np.testing.assert_allclose(loss.numpy(), truth, rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), truth_grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("temperature", [1e160, 1e-160])
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("teacher_form", FORMS)
def test_far_temperature_formed_with_the_options(
    teacher_form: str, direction: str, temperature: float
) -> None:
    """:math:`T^2` past float64's range: every row by the NumPy function, its options."""
    z64 = np.array([[1e150, -2e150, 0.0], [3e-160, 0.0, -1e-160]])
    teacher = _teacher_of(teacher_form, TEACHER_PROBS)
    options = dict(temperature=temperature, teacher_form=teacher_form, direction=direction)
    loss, grad, z, t = _call(z64, teacher, torch.float64, **options)
    truth, truth_grad = _truth(z, t, **options)
    np.testing.assert_allclose(loss.numpy(), truth, rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), truth_grad, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("teacher_form", ["probs", "log_probs"])
def test_teacher_probabilities_requiring_a_gradient(teacher_form: str, direction: str) -> None:
    """A teacher of probabilities (or log-probabilities) that requires a gradient: the
    student's as NumPy's, the teacher's along the simplex as a central difference of
    the NumPy loss."""
    rng = np.random.default_rng(8)
    z64, probs = rng.standard_normal((4, 5)), rng.dirichlet(np.ones(5), size=4)
    teacher = _teacher_of(teacher_form, probs)
    options = dict(temperature=2.5, teacher_form=teacher_form, direction=direction)
    z, t = torch.tensor(z64, requires_grad=True), torch.tensor(teacher, requires_grad=True)
    distillation_loss(z, t, **options).backward()
    assert z.grad is not None
    assert t.grad is not None
    np.testing.assert_allclose(
        z.grad.numpy(), crossent.distillation_loss_grad(z64, teacher, **options), rtol=1e-12
    )
    d = rng.standard_normal(probs.shape)
    d -= d.mean(axis=1, keepdims=True)  # a direction that keeps each row's sum
    h = 1e-6

    def at(step: float) -> float:
        p = probs + step * d
        return float(crossent.distillation_loss(z64, _teacher_of(teacher_form, p), **options))

    if teacher_form == "probs":
        expected, slope = (at(h) - at(-h)) / (2 * h), float((t.grad.numpy() * d).sum())
    else:  # d log p = d p / p
        expected, slope = (at(h) - at(-h)) / (2 * h), float((t.grad.numpy() * d / probs).sum())
    assert slope == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------- the fused op of every option
#
# Issue 13 follow-up: on main only teacher logits with ``direction='forward'`` took the
# fused CPU op (``_distill_cpu``); the other options ran the generic formula, some 12
# times slower at 256 x 1000. Now every option does (``_distill_rows.Options``). The
# oracle is the NumPy function's generic path on float64 copies (its class axis first:
# ``_distill_fused`` takes the classes last only), within float64 rounding, and the
# rounding of the result to its dtype.

FUSED_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
HARD_TEMPERATURES = (1e-3, 0.3, 1.0, 2.5, 1e3)


def _generic(z: torch.Tensor, t: torch.Tensor, **options: Any) -> tuple[np.ndarray, np.ndarray]:
    """The NumPy generic path's per-row loss and the gradient of their sum (float64
    copies, classes on axis 0: never the fused kernels; not validated, as :func:`_truth`)."""
    z64, t64 = (np.ascontiguousarray(x.detach().double().numpy().T) for x in (z, t))
    kw = dict(axis=0, validate=False, **options)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        loss = np.asarray(crossent.distillation_loss(z64, t64, reduction="none", **kw))
        finite = np.isfinite(loss)  # (the gradient of the finite rows' sum)
        grad = np.zeros_like(z64)
        grad[:, finite] = crossent.distillation_loss_grad(
            z64[:, finite], t64[:, finite], reduction="sum", **kw
        )
    return loss.astype(np.float64), grad.T


def _hard_teacher(form: str, logits: np.ndarray) -> np.ndarray:
    """:func:`_teacher` of ``logits`` (float64), with ``-inf`` logits as probability 0."""
    with np.errstate(divide="ignore"):
        return _teacher(form, logits)


HARD_STUDENT = np.array(
    [
        [0.0, 1e3, -1e3, 5.0, 1.0, 0.5],  # gaps of 1e3: probabilities that underflow
        [3.0, 2.0, 1.0, 0.0, -1.0, -2.0],
        [1.0, 1.0 + 2**-20, 1.0, 1.0, 1.0, 1.0],  # near ties
        [-np.inf, 0.0, 1.0, 2.0, 3.0, -np.inf],  # masked where the teacher is too
        [40.0, -40.0, 0.0, 7.0, -7.0, 0.25],
    ]
)
HARD_TEACHER = np.array(
    [
        [1e3, 0.0, -1e3, 5.0, 2.0, -0.5],
        [-np.inf, 2.5, 1.0, -np.inf, 0.0, -2.0],  # teacher probabilities 0 (forward)
        [1.0, 1.0, 1.0 - 2**-20, 1.0, 1.0, 1.0],
        [-np.inf, 1.0, 0.0, 2.0, 2.5, -np.inf],
        [-40.0, 40.0, 0.0, 7.5, -6.0, 0.0],
    ]
)


def _fused_close(
    ours: np.ndarray, truth: np.ndarray, dtype: torch.dtype, scale: np.ndarray
) -> None:
    """Within 1e-12 of ``scale`` (per row, the terms' magnitude) for float64, else
    :data:`ULPS32` ulps of ``scale`` in the dtype the result is rounded to (float32 for
    float32, float16 and bfloat16 losses; the dtype's own for gradients)."""
    eps = 1e-12 if dtype == torch.float64 else ULPS32 * float(torch.finfo(dtype).eps)
    error = np.abs(np.asarray(ours, np.float64) - truth)
    np.testing.assert_array_less(error, eps * scale + 1e-300)


def _spy_fused(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The options of every call of the fused op (``_distill_cpu.distillation_cpu_rows``)."""
    seen: list[tuple[str, str]] = []
    op = _distill_cpu.distillation_cpu_rows

    def spy(*args: Any) -> Any:
        seen.append(tuple(args[4:6]) if len(args) > 4 else ("logits", "forward"))
        return op(*args)

    monkeypatch.setattr(_distill_cpu, "distillation_cpu_rows", spy)
    return seen


@pytest.mark.parametrize("dtype", FUSED_DTYPES, ids=str)
@pytest.mark.parametrize("temperature", HARD_TEMPERATURES)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("teacher_form", FORMS)
def test_fused_options_equal_the_generic_path_on_hard_rows(
    teacher_form: str,
    direction: str,
    temperature: float,
    dtype: torch.dtype,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r"""Every option goes through the fused op (fails on main: the generic path ran), its
    rows and gradient the generic path's: gaps of :math:`10^3`, near ties, teacher
    probabilities 0 (forward; reverse where the student's are 0 too), masked classes,
    :math:`T` from :math:`10^{-3}` to :math:`10^3`, float64 to bfloat16."""
    seen = _spy_fused(monkeypatch)
    rows = slice(None) if direction == "forward" else [0, 2, 3, 4]  # (row 1: D(s||t) = inf)
    student, teacher = HARD_STUDENT[rows], _hard_teacher(teacher_form, HARD_TEACHER[rows])
    if dtype in (torch.float16, torch.bfloat16):  # (their range: gaps of 40)
        student, teacher = np.clip(student, -40, 40), np.clip(teacher, -40, 40)
        teacher = _hard_teacher(teacher_form, np.clip(HARD_TEACHER[rows], -40, 40))
    z = torch.tensor(student, dtype=dtype, requires_grad=True)
    t = torch.tensor(teacher, dtype=dtype)
    options = dict(temperature=temperature, teacher_form=teacher_form, direction=direction)
    loss = distillation_loss(z, t, reduction="none", **options)
    truth, truth_grad = _generic(z, t, **options)
    finite = np.isfinite(truth)  # (reverse: a teacher probability that underflows to 0)
    loss[torch.from_numpy(finite)].sum().backward()
    assert seen == [(teacher_form, direction)]
    assert (torch.isfinite(loss).numpy() == finite).all()
    assert not torch.isnan(loss).any()
    with np.errstate(divide="ignore"):
        scores = np.log(teacher) if teacher_form == "probs" else teacher
    gaps = [np.ptp(x[np.isfinite(x)]) for x in (*student, *scores)]
    scale = temperature * (temperature + max(gaps))  # (T^2 D: T^2 times terms of gap / T)
    loss_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    _fused_close(loss.detach().numpy()[finite], truth[finite], loss_dtype, scale)
    assert z.grad is not None
    assert torch.isfinite(z.grad).all()
    error = z.grad.double().numpy()[finite]
    _fused_close(error, truth_grad[finite], dtype, scale / temperature)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("teacher_form", ["probs", "log_probs"])
def test_fused_teacher_at_t1_is_taken_as_it_is(teacher_form: str, direction: str) -> None:
    r"""At :math:`T = 1` the generic path takes a teacher of probabilities or
    log-probabilities as it is (its rows sum to 1 within the validation's tolerance, not
    renormalised): the fused op's kernels, which renormalise, give the generic numbers
    (``_distill_numba._given``; fails without it: float32 probabilities summing to
    :math:`1 + 3\cdot 10^{-6}`, a KL of some :math:`10^{-3}`, the renormalised loss off
    by thousands of float32 ulps)."""
    rng = np.random.default_rng(13)
    v = rng.standard_normal((8, 100))
    p = np.exp(v) / np.exp(v).sum(1, keepdims=True) * (1 + 3e-6)
    student = v + 0.05 * rng.standard_normal(v.shape)
    teacher = p if teacher_form == "probs" else np.log(p)
    z = torch.tensor(student, dtype=torch.float32, requires_grad=True)
    t = torch.tensor(teacher, dtype=torch.float32)
    options = dict(teacher_form=teacher_form, direction=direction)
    loss = distillation_loss(z, t, reduction="none", **options)
    loss.sum().backward()
    truth, truth_grad = _generic(z, t, **options)
    assert z.grad is not None
    np.testing.assert_allclose(loss.detach().numpy(), truth, rtol=4e-7, atol=0)
    np.testing.assert_allclose(z.grad.numpy(), truth_grad, rtol=0, atol=4e-7 * 0.05)


BAD_TEACHERS = {
    "sum": np.array([[0.5, 0.4, 0.2], [0.2, 0.3, 0.5]]),
    "range": np.array([[1.2, -0.2, 0.0], [0.2, 0.3, 0.5]]),
    "above-one": np.array([[0.2, 0.3, 0.5], [1.0 + 2e-14, 0.0, 0.0]]),
    "nan": np.array([[0.5, np.nan, 0.5], [0.2, 0.3, 0.5]]),
    "zeros": np.array([[0.2, 0.3, 0.5], [0.0, 0.0, 0.0]]),  # (probabilities only)
}


@pytest.mark.parametrize("temperature", [1.0, 2.0])
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("teacher_form", ["probs", "log_probs"])
@pytest.mark.parametrize("bad", list(BAD_TEACHERS))
def test_fused_op_validates_the_teacher_as_numpy(
    bad: str, teacher_form: str, direction: str, temperature: float
) -> None:
    """A teacher of probabilities or log-probabilities that fails validation raises the
    NumPy function's error from the fused op too, at :math:`T = 1` (where the kernels'
    log-sum-exp screens it) and elsewhere (fails if the op skips the check: a loss
    comes back)."""
    if teacher_form == "log_probs" and bad == "zeros":
        pytest.skip("NumPy's own check warns of log1p(-1) on a row of -inf first")
    with np.errstate(divide="ignore", invalid="ignore"):
        teacher = BAD_TEACHERS[bad] if teacher_form == "probs" else np.log(BAD_TEACHERS[bad])
    if teacher_form == "log_probs" and bad in ("range", "above-one"):
        teacher = np.log(BAD_TEACHERS["sum"]) + np.array([[0.0], [0.0]])  # (exp-sum 1.1)
    z = np.zeros_like(teacher)
    options = dict(teacher_form=teacher_form, direction=direction, temperature=temperature)
    with pytest.raises(InputError) as numpy_error:
        crossent.distillation_loss(z, teacher, axis=1, **options)
    with pytest.raises(InputError) as torch_error:
        distillation_loss(torch.tensor(z, requires_grad=True), torch.tensor(teacher), **options)
    assert str(torch_error.value).replace("torch.", "") == str(numpy_error.value)


@pytest.mark.parametrize("shape", ["rows", "rows x classes x 1"])
def test_far_rows_of_float32_probabilities_are_not_validated_again(shape: str) -> None:
    r"""A float32 teacher's probabilities pass float32's row-sum tolerance; a row whose
    student gap passes float32's range is formed again on a float64 copy, which must not
    be validated again at float64's tolerance (main: ``InputError`` "row 0 sums to
    0.99999995 (... > tolerance 1.15e-13 for float64)", fused op or generic path)."""
    student = np.array([[3e38, -3e38, 0.0], [0.5, 0.25, 0.0]])
    probs = torch.softmax(torch.tensor([[0.3, 1.1, -0.7], [0.2, 0.1, 0.0]]), 1)
    assert float(probs[0].double().sum()) != 1.0
    z = torch.tensor(student, dtype=torch.float32, requires_grad=True)
    t = probs if shape == "rows" else probs[..., None]
    x = z if shape == "rows" else z[..., None]
    options = dict(teacher_form="probs")
    loss = distillation_loss(x, t, reduction="none", **options)
    truth, _ = _generic(z, probs, **options)
    loss = loss.reshape(-1).detach().double().numpy()
    assert not np.isnan(loss).any()
    with np.errstate(over="ignore"):
        assert loss[0] == np.float32(truth[0])  # (4.0e38: inf in float32, both ways)
    np.testing.assert_allclose(loss[1], truth[1], rtol=0, atol=ULPS32 * 2**-23)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("teacher_form", FORMS)
def test_fused_second_derivative_equals_the_generic_graph(
    teacher_form: str, direction: str
) -> None:
    r"""A gradient penalty (``create_graph=True``) through the fused op of every option
    (``_distill_cpu._second_derivative_of_options``) equals the generic path's graph
    (the teacher requiring a gradient: never fused), float64."""
    z64, v64 = _arrays(21)
    teacher = torch.tensor(_teacher(teacher_form, v64))
    options = dict(temperature=1.5, teacher_form=teacher_form, direction=direction)
    results = []
    for generic in (False, True):
        z = torch.tensor(z64, requires_grad=True)
        t = teacher.clone().requires_grad_(generic)
        loss = distillation_loss(z, t, reduction="sum", **options)
        (grad,) = torch.autograd.grad(loss, z, create_graph=True)
        (grad * grad).sum().backward()
        results.append((grad.detach(), z.grad))
    (g, gg), (g0, gg0) = results
    torch.testing.assert_close(g, g0, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(gg, gg0, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.5])
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("teacher_form", ["probs", "log_probs"])
def test_fused_op_screens_a_valid_teacher_without_the_generic_check(
    teacher_form: str, direction: str, temperature: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A valid teacher passes the kernels' screen (their log-sum-exp of each row, at every
    temperature): the generic check (``_validate``, some passes over the teacher by
    torch operations, 25 times the kernels' time at 256 x 1000 on a loaded machine) does
    not run (fails where the kernels screen the tempered sums at T != 1)."""
    seen = _spy_fused(monkeypatch)
    checks: list[int] = []
    monkeypatch.setattr(_distill_cpu, "_validate", lambda *args: checks.append(1))
    z64, v64 = _arrays(8, 16, 300)
    z = torch.tensor(z64, dtype=torch.float32, requires_grad=True)
    t = torch.tensor(_teacher(teacher_form, v64), dtype=torch.float32)
    options = dict(temperature=temperature, teacher_form=teacher_form, direction=direction)
    distillation_loss(z, t, **options).backward()
    assert seen == [(teacher_form, direction)]
    assert checks == []
