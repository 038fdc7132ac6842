"""A hostile pass over the Array-API promise (array-api-strict, JAX, PyTorch through the
top-level API): each test is named after the bug it pins and fails on the code before
its fix."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import crossent

_WEIGHTED = {
    "softmax_cross_entropy": lambda x, y, t, w: crossent.softmax_cross_entropy(
        x, y, weight=w, label_smoothing=0.1
    ),
    "softmax_cross_entropy_grad": lambda x, y, t, w: crossent.softmax_cross_entropy_grad(
        x, y, weight=w
    ),
    "softmax_cross_entropy_with_targets": lambda x, y, t, w: (
        crossent.softmax_cross_entropy_with_targets(x, t, weight=w)
    ),
    "sigmoid_cross_entropy": lambda x, y, t, w: crossent.sigmoid_cross_entropy(
        x, (t > 0.25).to(x.dtype), weight=w, pos_weight=w
    ),
    "sigmoid_focal_loss_grad": lambda x, y, t, w: crossent.sigmoid_focal_loss_grad(
        x, (t > 0.25).to(x.dtype), weight=w
    ),
    "softmax_focal_loss": lambda x, y, t, w: crossent.softmax_focal_loss(x, y, weight=w),
    "poly1_cross_entropy_grad": lambda x, y, t, w: crossent.poly1_cross_entropy_grad(
        x, y, weight=w
    ),
}


@pytest.mark.parametrize("scale", [1.0, 1e40])
@pytest.mark.parametrize("name", list(_WEIGHTED))
def test_weights_that_require_grad_are_read_without_autograd_warning(
    name: str, scale: float
) -> None:
    """Learnable class weights (a tensor with ``requires_grad=True``) were read on the
    host with ``float(tensor)`` to decide on a power-of-two rescaling: PyTorch warns
    "Converting a tensor with requires_grad=True to a scalar" on every weighted call
    (an error under ``-W error``). The weights' values, not their graph, are read; the
    loss still carries the gradient to the weights."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(6, 4)) * 2).requires_grad_(True)
    y = torch.from_numpy(rng.integers(0, 4, size=6))
    t = torch.from_numpy(rng.dirichlet(np.ones(4), size=6))
    w = (torch.arange(1.0, 5.0, dtype=torch.float64) * scale).requires_grad_(True)
    always = torch.is_warn_always_enabled()
    torch.set_warn_always(True)  # the warning is TORCH_WARN_ONCE: seen once per process
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = _WEIGHTED[name](x, y, t, w)
    finally:
        torch.set_warn_always(always)
    expected = _WEIGHTED[name](x.detach(), y, t, w.detach())
    np.testing.assert_allclose(got.detach().numpy(), expected.numpy(), rtol=1e-15, atol=0)
    if not name.endswith("_grad"):
        got.sum().backward()
        assert w.grad is not None
        assert bool(torch.all(torch.isfinite(w.grad)))


def _narrow_probs(torch: object, dtype_name: str, *, seed: int = 0) -> tuple[object, object]:
    """Probabilities rounded to float16 or bfloat16 (rows then sum to 1 within that
    dtype's tolerance, not float32's) and their labels, as CPU tensors."""
    import torch as t

    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(200, 4)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return (
        t.from_numpy(probs).to(getattr(t, dtype_name)),
        t.from_numpy(rng.integers(0, 4, size=200)),
    )


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
def test_report_takes_the_low_precision_probs_the_evaluation_functions_take(
    dtype_name: str,
) -> None:
    """``report`` widened float16/bfloat16 tensors to float32 before the value check, so
    the check used float32's tolerance: probabilities rounded to float16 or bfloat16,
    which ``negative_log_likelihood`` and ``calibration_error`` accept, were refused
    ("row 0 sums to 0.99981689453125 ... tolerance 6.17e-05 for float32"). The tensor's
    own dtype sets the tolerance, as in ``EvaluationState.update``."""
    torch = pytest.importorskip("torch")
    probs, labels = _narrow_probs(torch, dtype_name)
    with pytest.raises(crossent.InputError, match="sum to 1"):  # the bug's trigger holds
        crossent.negative_log_likelihood(probs.float(), labels)
    got = crossent.report(probs, labels, resamples=20)
    expected_nll = crossent.negative_log_likelihood(probs, labels)
    oracle = -np.mean(np.log(probs.double().numpy()[np.arange(200), labels.numpy()]))
    assert got.to_dict()["nll_nats"] == pytest.approx(expected_nll, rel=1e-12)
    assert got.to_dict()["nll_nats"] == pytest.approx(oracle, rel=1e-6)
    ece = crossent.calibration_error(probs, labels).value
    assert got.to_dict()["ece"]["value"] == pytest.approx(ece, rel=1e-12)


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
def test_report_still_refuses_low_precision_rows_that_do_not_sum_to_one(dtype_name: str) -> None:
    torch = pytest.importorskip("torch")
    probs, labels = _narrow_probs(torch, dtype_name)
    probs[7, 0] += 0.25
    with pytest.raises(crossent.InputError, match="row 7"):
        crossent.report(probs, labels, resamples=20)


def test_report_refuses_a_meta_tensor_with_the_projects_error() -> None:
    """``report`` on a meta tensor raised PyTorch's raw ``NotImplementedError`` ("Cannot
    copy out of meta tensor") where every evaluation function raises
    :class:`InputTypeError` naming the argument."""
    torch = pytest.importorskip("torch")
    probs = torch.full((5, 3), 1 / 3, device="meta")
    labels = torch.zeros(5, dtype=torch.int64)
    with pytest.raises(crossent.InputTypeError, match="`predictions` is a meta tensor"):
        crossent.report(probs, labels)
    with pytest.raises(crossent.InputTypeError, match="`labels` is a meta tensor"):
        crossent.report(torch.full((5, 3), 1 / 3), labels.to("meta"))


@pytest.mark.parametrize(
    "loss",
    [
        crossent.softmax_cross_entropy,
        crossent.softmax_cross_entropy_grad,
        crossent.softmax_focal_loss_grad,
        crossent.poly1_cross_entropy,
    ],
)
def test_float16_numpy_weights_raise_no_overflow_warning(loss: object) -> None:
    """The power-of-two guard compared the largest float16 weight with ``2**32``, which
    NumPy cast to float16 (``inf``) with "RuntimeWarning: overflow encountered in cast"
    on every call with float16 weights (an error under ``-W error``). The weights, exact
    in float32, give what their float32 copy gives."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 3)).astype(np.float32)
    labels = rng.integers(0, 3, size=5)
    weight = np.array([0.5, 1.0, 3.0], dtype=np.float16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = loss(logits, labels, weight=weight)  # type: ignore[operator]
    expected = loss(logits, labels, weight=weight.astype(np.float32))  # type: ignore[operator]
    np.testing.assert_array_equal(got, expected)


def _recalibrator_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(60, 3)) * 2
    labels = rng.integers(0, 3, size=60)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return logits, labels, probs


_RECALIBRATORS = {
    "TemperatureScaling": lambda lg, y, p: (crossent.TemperatureScaling(), lg, y),
    "VectorScaling": lambda lg, y, p: (crossent.VectorScaling(), lg, y),
    "PlattScaling": lambda lg, y, p: (crossent.PlattScaling(), lg[:, :2], y % 2),
    "HistogramBinning": lambda lg, y, p: (crossent.HistogramBinning(bins=4), p, y),
}


@pytest.mark.parametrize("name", list(_RECALIBRATORS))
def test_recalibrators_transform_documents_and_returns_numpy_float64(
    name: str, backend: object
) -> None:
    """The README promised that every array "comes back as the same kind of array", and
    exempted only the evaluation functions; the recalibrators' ``transform`` returns a
    NumPy float64 array for a tensor or JAX array too, which nothing said (three of the
    four ``transform`` methods had no docstring). It is documented now, and pinned: the
    NumPy path's values, bit for bit, on every backend."""
    doc = getattr(crossent, name).transform.__doc__ or ""
    assert "NumPy float64" in doc
    logits, labels, probs = _recalibrator_data()
    calibrator, x, y = _RECALIBRATORS[name](logits, labels, probs)
    expected = calibrator.fit(x, y).transform(x)
    got = calibrator.fit(backend.asarray(x), backend.asarray(y)).transform(backend.asarray(x))  # type: ignore[attr-defined]
    assert type(got) is np.ndarray
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("teacher_form", ["logits", "probs", "log_probs"])
def test_distillation_on_meta_tensors_gives_meta_results(direction: str, teacher_form: str) -> None:
    """With ``validate=False`` every other loss maps meta tensors to meta results (shape
    inference); distillation's near-row check read a flag's value and raised PyTorch's
    "Tensor.item() cannot be called on meta tensors" (fa36995)."""
    torch = pytest.importorskip("torch")
    student = torch.empty(4, 5, device="meta")
    teacher = torch.empty(4, 5, device="meta")
    options = {"temperature": 2.0, "direction": direction, "teacher_form": teacher_form}
    loss = crossent.distillation_loss(student, teacher, validate=False, **options)
    grad = crossent.distillation_loss_grad(student, teacher, validate=False, **options)
    assert (loss.device.type, tuple(loss.shape)) == ("meta", ())
    assert (grad.device.type, tuple(grad.shape)) == ("meta", (4, 5))
