"""Small CPU tensors through the NumPy path (issue 13, ``crossent._torch_host``).

The oracles: the same call on the NumPy arrays of the same values (the routed result
must be it, bit for bit, as a tensor), and the torch path itself, reached by turning
the route off (``MAX_ELEMENTS = -1``): the routed result has its type, dtype, shape
and device, its values within a few ulps (the NumPy path rounds float64 terms once,
the torch path computes in the compute dtype), and bad input raises its error
message. Tensors that require grad keep the torch path (gradients against finite
differences), as does code traced by ``torch.compile``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent
from crossent import _torch_host

torch = pytest.importorskip("torch")

DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}


def _case_arrays(
    dtype: torch.dtype, labels: torch.dtype
) -> dict[str, tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]:
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    p64 = torch.softmax(logits, -1)
    p = p64.to(dtype)
    p = (p.double() / p.double().sum(-1, keepdim=True)).to(dtype)  # normalised in dtype
    q = p.flip(0).contiguous()
    b = torch.rand(7, generator=gen, dtype=torch.float64).mul(0.9).add(0.05).to(dtype)
    z = logits.to(dtype)
    y = torch.tensor([0, 4, 2, 2, 1, 3], dtype=labels)
    t = (p64 > 0.2).to(dtype)
    w = torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0], dtype=dtype)
    c = crossent
    return {
        "entropy": (c.entropy, (p,), {}),
        "entropy_row": (c.entropy, (p[0].contiguous(),), {"base": 2}),
        "cross_entropy": (c.cross_entropy, (p, q), {}),
        "kl_divergence": (c.kl_divergence, (p, q), {}),
        "js_divergence": (c.js_divergence, (p, q), {}),
        "perplexity": (c.perplexity, (p,), {}),
        "decomposition": (c.cross_entropy_decomposition, (p, q), {}),
        "surprisal": (c.surprisal, (b,), {}),
        "binary_entropy": (c.binary_entropy, (b,), {}),
        "binary_cross_entropy": (c.binary_cross_entropy, (b, b.flip(0).contiguous()), {}),
        "binary_cross_entropy_grad": (c.binary_cross_entropy_grad, (b, b.flip(0).contiguous()), {}),
        "softmax_cross_entropy": (c.softmax_cross_entropy, (z, y), {}),
        "softmax_cross_entropy_none": (c.softmax_cross_entropy, (z, y), {"reduction": "none"}),
        "softmax_cross_entropy_parts": (c.softmax_cross_entropy, (z, y), {"reduction": "parts"}),
        "softmax_cross_entropy_weight": (c.softmax_cross_entropy, (z, y), {"weight": w}),
        "softmax_cross_entropy_grad": (c.softmax_cross_entropy_grad, (z, y), {}),
        "with_targets": (c.softmax_cross_entropy_with_targets, (z, p), {}),
        "with_targets_grad": (c.softmax_cross_entropy_with_targets_grad, (z, p), {}),
        "softmax_focal_loss": (c.softmax_focal_loss, (z, y), {}),
        "softmax_focal_loss_grad": (c.softmax_focal_loss_grad, (z, y), {}),
        "poly1": (c.poly1_cross_entropy, (z, y), {}),
        "poly1_grad": (c.poly1_cross_entropy_grad, (z, y), {}),
        "hinge": (c.multiclass_hinge_loss, (z, y), {}),
        "hinge_grad": (c.multiclass_hinge_loss_grad, (z, y), {}),
        "sigmoid": (c.sigmoid_cross_entropy, (z, t), {}),
        "sigmoid_grad": (c.sigmoid_cross_entropy_grad, (z, t), {}),
        "sigmoid_focal": (c.sigmoid_focal_loss, (z, t), {"reduction": "sum"}),
        "sigmoid_focal_grad": (c.sigmoid_focal_loss_grad, (z, t), {}),
        "distillation": (c.distillation_loss, (z, z.flip(0).contiguous()), {}),
        "distillation_grad": (c.distillation_loss_grad, (z, z.flip(0).contiguous()), {}),
    }


@pytest.fixture(autouse=True)
def _route_on(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The route is off by default (``_torch_host``'s docstring): these tests turn it on."""
    if request.node.name != "test_route_is_off_by_default":
        monkeypatch.setattr(_torch_host, "MAX_ELEMENTS", _torch_host.ROUTE_ON)


def test_route_is_off_by_default() -> None:
    """Guards the default (a mutant that turns the route on changes eager values)."""
    assert _torch_host.MAX_ELEMENTS < 0
    assert _torch_host.host_arguments((torch.ones(3),), {}) is None
    p = torch.softmax(torch.randn(4, 6, dtype=torch.float64), -1)
    assert type(crossent.entropy(p)) is torch.Tensor


NAMES = list(_case_arrays(torch.float64, torch.int64))


def _numpy(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    return x


def _fields(result: Any) -> tuple[Any, ...]:
    return tuple(result) if isinstance(result, tuple) else (result,)


def _torch_path(monkeypatch: pytest.MonkeyPatch, call: Callable[[], Any]) -> Any:
    with monkeypatch.context() as m:
        m.setattr(_torch_host, "MAX_ELEMENTS", -1)
        return call()


def _ulps(dtype: torch.dtype) -> float:
    return 8 * torch.finfo(dtype).eps


LABELLED = [n for n in NAMES if n.startswith(("softmax_cross", "poly", "hinge", "softmax_focal"))]


@pytest.mark.parametrize("validate", [True, False], ids=["validated", "unvalidated"])
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize(
    ("name", "labels"), [(n, "int64") for n in NAMES] + [(n, "int32") for n in LABELLED]
)
def test_routed_is_the_numpy_call_as_the_torch_path_gives_it(
    name: str, labels: str, dtype: str, validate: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    fn, args, kwargs = _case_arrays(DTYPES[dtype], getattr(torch, labels))[name]
    routed = fn(*args, **kwargs, validate=validate)
    before = _torch_path(monkeypatch, lambda: fn(*args, **kwargs, validate=validate))
    if dtype == "bfloat16":  # not routed (its float32 copy would be validated as float32)
        for got, old in zip(_fields(routed), _fields(before), strict=True):
            assert (got.dtype, got.shape) == (old.dtype, old.shape)
            torch.testing.assert_close(got, old, rtol=0, atol=0)
        return
    on_numpy = fn(
        *map(_numpy, args), **{k: _numpy(v) for k, v in kwargs.items()}, validate=validate
    )
    assert type(routed) is type(before)
    for got, old, want in zip(_fields(routed), _fields(before), _fields(on_numpy), strict=True):
        assert type(got) is type(old) is torch.Tensor
        assert (got.dtype, got.shape, got.device) == (old.dtype, old.shape, old.device)
        assert not got.requires_grad
        np.testing.assert_array_equal(
            got.float().numpy() if got.dtype == torch.bfloat16 else got.numpy(), want
        )
        scale = max(1.0, float(old.double().abs().max()))
        assert float((got.double() - old.double()).abs().max()) <= _ulps(old.dtype) * scale


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_grad_off_takes_the_route(mode: str) -> None:
    z = torch.randn(4, 6, dtype=torch.float32, requires_grad=True)
    y = torch.tensor([0, 5, 2, 1])
    with getattr(torch, mode)():
        got = crossent.softmax_cross_entropy(z, y, reduction="none")
    want = crossent.softmax_cross_entropy(z.detach().numpy(), y.numpy(), reduction="none")
    assert not got.requires_grad
    assert got.grad_fn is None
    np.testing.assert_array_equal(got.numpy(), want)


def test_out_is_written_in_place() -> None:
    z = torch.randn(4, 6, dtype=torch.float64)
    y = torch.tensor([0, 5, 2, 1])
    out = torch.full_like(z, np.nan)
    got = crossent.softmax_cross_entropy_grad(z, y, out=out)
    assert got is out
    np.testing.assert_array_equal(
        out.numpy(), crossent.softmax_cross_entropy_grad(z.numpy(), y.numpy())
    )


@pytest.mark.parametrize(
    "name",
    [
        "entropy",
        "kl_divergence",
        "binary_cross_entropy",
        "softmax_cross_entropy",
        "with_targets",
        "distillation",
    ],
)
def test_requires_grad_keeps_autograd(name: str) -> None:
    fn, args, kwargs = _case_arrays(torch.float64, torch.int64)[name]
    x = args[0].clone().requires_grad_(True)
    rest = args[1:]
    loss = fn(x, *rest, **kwargs)
    assert loss.grad_fn is not None
    (grad,) = torch.autograd.grad(loss.sum(), x)
    h = 1e-6
    numeric = torch.zeros_like(x)
    flat, out = x.detach().reshape(-1), numeric.reshape(-1)
    for i in range(flat.numel()):
        up, down = flat.clone(), flat.clone()
        up[i] += h
        down[i] -= h
        f = lambda v: float(fn(v.reshape(x.shape), *rest, **kwargs, validate=False).sum())  # noqa: E731
        out[i] = (f(up) - f(down)) / (2 * h)
    torch.testing.assert_close(grad, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`")
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")
def test_compiled_call_keeps_the_torch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    p = torch.softmax(
        torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1)), -1
    )
    q = p.flip(0).contiguous()
    seen: list[bool] = []
    real = _torch_host.host_arguments

    def spy(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        hosted = real(args, kwargs)
        seen.append(hosted is not None)
        return hosted

    monkeypatch.setattr(_torch_host, "host_arguments", spy)
    torch._dynamo.reset()
    compiled = torch.compile(lambda a, b: crossent.cross_entropy(a, b), backend="eager")
    got = compiled(p, q)
    before = _torch_path(monkeypatch, lambda: crossent.cross_entropy(p, q))
    assert seen
    assert not any(seen)
    torch.testing.assert_close(got, before, rtol=0, atol=0)


def _bad_cases() -> dict[str, tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]:
    p = torch.tensor([[0.5, 0.5], [0.3, 0.6]], dtype=torch.float32)
    nan = torch.tensor([[0.5, 0.5], [float("nan"), 1.0]], dtype=torch.float32)
    z = torch.zeros(3, 4, dtype=torch.float32)
    c = crossent
    return {
        "row_sum": (c.entropy, (p,), {}),
        "nan": (c.kl_divergence, (p[:1].expand(2, 2).contiguous(), nan), {}),
        "bad_probability": (
            c.binary_cross_entropy,
            (torch.tensor([0.5, 1.5]), torch.tensor([0.5, 0.5])),
            {},
        ),
        "label_range": (c.softmax_cross_entropy, (z, torch.tensor([0, 7, 1])), {}),
        "label_count": (c.softmax_cross_entropy_grad, (z, torch.tensor([0, 1])), {}),
        "negative_target": (
            c.softmax_cross_entropy_with_targets,
            (z, torch.full((3, 4), -0.25)),
            {},
        ),
        "bad_axis": (c.entropy, (p,), {"axis": 3}),
        "bad_reduction": (c.sigmoid_cross_entropy, (z, z), {"reduction": "avg"}),
        "unknown_keyword": (c.softmax_focal_loss, (z, torch.tensor([0, 1, 2])), {"gama": 2.0}),
    }


ERRORS = (crossent.InputError, crossent.InputTypeError, TypeError)


@pytest.mark.parametrize("name", list(_bad_cases()))
def test_errors_are_the_torch_paths(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fn, args, kwargs = _bad_cases()[name]
    with pytest.raises(ERRORS) as before:
        _torch_path(monkeypatch, lambda: fn(*args, **kwargs))
    with pytest.raises(ERRORS) as routed:
        fn(*args, **kwargs)
    assert type(routed.value) is type(before.value)
    assert str(routed.value) == str(before.value)


def test_route_refuses() -> None:
    t = torch.ones(3)
    host = _torch_host.host_arguments
    assert host((t,), {}) is not None
    assert host((torch.ones(3, requires_grad=True),), {}) is None
    assert host((torch.ones(3, dtype=torch.complex64),), {}) is None
    assert host((torch.ones(3, dtype=torch.bool),), {}) is None
    assert host((torch.ones(3).to_sparse(),), {}) is None
    assert host((torch.ones(3, device="meta"),), {}) is None
    assert host((torch.nn.Parameter(torch.ones(3), requires_grad=False),), {}) is None
    assert host((torch.ones(3).conj(),), {}) is not None  # a real tensor's conj() has no bit
    assert host((torch.ones(3, dtype=torch.complex64).conj(),), {}) is None
    assert host((t, np.ones(3)), {}) is None
    assert host((t, [1.0, 0.0, 0.0]), {}) is None
    assert host((t,), {"weight": np.ones(3)}) is None
    assert host((t,), {"base": 2, "p_form": "probs", "weight": None}) is not None
    assert host((torch.ones(_torch_host.ROUTE_ON + 1),), {}) is None
    assert host((np.ones(3),), {}) is None
