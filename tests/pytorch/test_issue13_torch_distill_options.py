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
from crossent.torch import DistillationLoss, distillation_loss  # noqa: E402

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
