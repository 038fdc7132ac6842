"""Small CPU tensors through the NumPy path (issue 13, ``crossent._torch_host``).

The route is on by default for plain CPU tensors of at most ``MAX_ELEMENTS`` elements.
The oracles: the same call on the NumPy arrays of the same values (the routed result
must be it, bit for bit, as a tensor), the torch path itself, reached by turning the
route off (``MAX_ELEMENTS = -1``: the routed result has its type, dtype, shape and
device, and bad input raises its error message), and mpmath: on hard inputs both
routes are within a stated number of ulps of the exact value. Tensors that require
grad keep the torch path (gradients against finite differences), as do traced calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent
from crossent import _torch_host

torch = pytest.importorskip("torch")

#: The route stays on here (``tests/conftest.py`` turns it off for the other modules,
#: whose tensors test the torch path).
HOST_ROUTE = True

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
        "entropy_transposed": (c.entropy, (p.t(),), {"axis": 0}),
        "entropy_expanded": (c.entropy, (p[2].expand(3, 5),), {}),
        "kl_divergence_strided": (c.kl_divergence, (p[::2], q[1::2]), {}),
        "surprisal_0d": (c.surprisal, (b[3],), {}),
        "binary_cross_entropy_0d": (c.binary_cross_entropy, (b[1], b[2]), {}),
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


def test_route_is_on_for_small_plain_cpu_tensors() -> None:
    """The default (a mutant that turns the route off, or moves the threshold)."""
    assert _torch_host.MAX_ELEMENTS == _torch_host.ROUTE_ON == 1 << 14
    assert _torch_host.host_arguments((torch.ones(1 << 14),), {}) is not None
    assert _torch_host.host_arguments((torch.ones((1 << 14) + 1),), {}) is None
    z = torch.tensor([[0.1, 2.0, -1.0]], dtype=torch.float32)
    got = crossent.softmax_cross_entropy(z, torch.tensor([2]))
    want = crossent.softmax_cross_entropy(z.numpy(), np.array([2]))
    assert (type(got), got.dtype, got.shape) == (torch.Tensor, torch.float32, ())
    assert got.item() == float(want)


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


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize(
    ("name", "labels"), [(n, "int64") for n in NAMES] + [(n, "int32") for n in LABELLED[:2]]
)
def test_routed_is_the_numpy_call_as_the_torch_path_gives_it(
    name: str, labels: str, dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values: the NumPy call's (bfloat16: on its float32 copy); type, dtype, shape,
    device: the torch path's; within 8 ulps of the torch path's values."""
    fn, args, kwargs = _case_arrays(DTYPES[dtype], getattr(torch, labels))[name]
    routed = fn(*args, **kwargs)
    before = _torch_path(monkeypatch, lambda: fn(*args, **kwargs))
    try:
        on_numpy = fn(*map(_numpy, args), **{k: _numpy(v) for k, v in kwargs.items()})
    except crossent.InputError:  # a bfloat16 row float32's tighter tolerance refuses:
        assert dtype == "bfloat16"  # the torch path takes it, as before
        on_numpy = tuple(f.numpy() for f in _fields(before))
    assert type(routed) is type(before)
    for got, old, want in zip(_fields(routed), _fields(before), _fields(on_numpy), strict=True):
        assert type(got) is type(old) is torch.Tensor
        assert (got.dtype, got.shape, got.device) == (old.dtype, old.shape, old.device)
        assert not got.requires_grad
        np.testing.assert_array_equal(got.numpy(), want)
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
    ["kl_divergence", "binary_cross_entropy", "softmax_cross_entropy"],
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


@pytest.mark.parametrize("tracer", ["compiler.is_compiling", "jit.is_tracing"])
def test_traced_calls_keep_the_torch_path(tracer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ``torch.compile`` or ``torch.jit.trace`` (a ``.numpy()`` there would break
    the graph or bake the values in as constants). The compiled call itself:
    ``tests/test_xp_numpy_errstate.py`` (fullgraph through the torch path)."""
    module, name = tracer.split(".")
    t = torch.ones(3)
    assert _torch_host.host_arguments((t,), {}) is not None
    monkeypatch.setattr(getattr(torch, module), name, lambda: True)
    assert _torch_host.host_arguments((t,), {}) is None


def test_torch_func_transforms_keep_the_torch_path() -> None:
    """``vmap``'s batched tensors and ``grad``'s wrappers (NumPy cannot read them)."""
    seen: list[bool] = []

    def probe(x: torch.Tensor) -> torch.Tensor:
        seen.append(_torch_host.host_arguments((x,), {}) is None)
        return x.sum()

    torch.vmap(probe)(torch.ones(2, 3))
    torch.func.grad(probe)(torch.ones(3))
    assert seen == [True, True]


def test_integer_tensors_alone_keep_the_torch_paths_dtype() -> None:
    """Integer tensors alone compute in the default float dtype: float32 on the torch
    path, where NumPy's is float64 (a mutant that routes them changes the dtype)."""
    ones = torch.tensor([1, 0, 1])
    got = crossent.binary_cross_entropy(ones, ones)
    assert got.dtype == torch.get_default_dtype() == torch.float32
    assert _torch_host.host_arguments((ones, ones), {}) is None
    z = torch.tensor([[1, 2, 3]])
    assert crossent.softmax_cross_entropy(z, torch.tensor([0])).dtype == torch.float32


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
        "scalar_p": (c.entropy, (torch.tensor(0.5),), {}),
        "bfloat16_row_sum": (c.entropy, (p.to(torch.bfloat16),), {}),
        "float16_nan": (c.cross_entropy, (nan.half(), nan.half()), {}),
        "complex": (c.entropy, (torch.ones(2, dtype=torch.complex64) / 2,), {}),
        "float_labels": (c.softmax_cross_entropy, (z, torch.zeros(3)), {}),
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
    assert host((torch.ones(3, dtype=torch.int8),), {}) is None
    assert host((torch.ones(3, dtype=torch.bfloat16),), {}) is not None
    assert host((t,), {"out": torch.ones(3, dtype=torch.bfloat16)}) is None
    assert host((t,), {"out": torch.ones(3)}) is not None
    assert host((torch.ones(4, 6).t()[::2],), {}) is not None  # strided views: read as such

    class Sub(torch.Tensor):
        pass

    assert host((torch.ones(3).as_subclass(Sub),), {}) is None
    assert host((t, torch.ones(3).as_subclass(Sub)), {}) is None
    assert host((t, np.ones(3)), {}) is None
    assert host((t, [1.0, 0.0, 0.0]), {}) is None
    assert host((t,), {"weight": np.ones(3)}) is None
    assert host((t,), {"base": 2, "p_form": "probs", "weight": None}) is not None
    assert host((torch.ones(_torch_host.MAX_ELEMENTS + 1),), {}) is None
    assert host((np.ones(3),), {}) is None


def _hard(
    dtype: torch.dtype,
) -> dict[str, tuple[Callable[[], Any], Callable[..., Any], tuple[Any, ...]]]:
    """Hard inputs: near one-hot and near-uniform rows, near-equal distributions,
    logits of 1e4 (3e4 in float16 range) and 30 against 0, probabilities by 1e-7 of 0
    and 1; each with its exact value by mpmath."""
    rng = np.random.default_rng(3)
    rows = np.array(
        [
            [0, -5, -10, -20, -40, -80],
            [0, 0, 0, 0, 0, 1e-3],
            [20, 0, 0, 0, 0, 0],
            [-3, -2, -1, 0, 1, 2],
            [0, -1e-4, 1e-4, -2e-4, 2e-4, 0],
        ]
    )
    soft = np.exp(rows - rows.max(-1, keepdims=True))
    p = torch.tensor(soft / soft.sum(-1, keepdims=True), dtype=dtype)
    near = rows + 1e-3 * rng.normal(size=rows.shape)
    soft = np.exp(near - near.max(-1, keepdims=True))
    q = torch.tensor(soft / soft.sum(-1, keepdims=True), dtype=dtype)
    big = 3e4 if dtype == torch.float16 else 1e4
    z = torch.tensor(
        [[big, big - 1, big - 3, 0, -big, 5], [30, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 30],
         [1e-3, 0, 0, 0, 0, 0], [-50, -50.5, -49, -60, -45, -50]],
        dtype=dtype,
    )  # fmt: skip
    y = torch.tensor([1, 0, 0, 0, 3])
    b = torch.tensor([1e-7, 1 - 1e-7, 0.5, 1e-3, 0.999], dtype=dtype)
    d = torch.tensor([1e-6, 1 - 1e-6, 0.5000001, 2e-3, 0.9991], dtype=dtype)
    c = crossent
    return {
        "entropy": (lambda: c.entropy(p), lambda p: [-_kl([r], [[1] * 6])[0] for r in p], (p,)),
        "cross_entropy": (lambda: c.cross_entropy(p, q), _cross, (p, q)),
        "kl_divergence": (lambda: c.kl_divergence(p, q), _kl, (p, q)),
        "js_divergence": (lambda: c.js_divergence(p, q), _js, (p, q)),
        "softmax_cross_entropy": (
            lambda: c.softmax_cross_entropy(z, y, reduction="none"),
            lambda z, y: [_lse(r) - _mp(r[k]) for r, k in zip(z, y, strict=True)],
            (z, y),
        ),
        "softmax_cross_entropy_grad": (
            lambda: c.softmax_cross_entropy_grad(z, y, reduction="sum"),
            lambda z, y: [_softmax_grad(r, k) for r, k in zip(z, y, strict=True)],
            (z, y),
        ),
        "binary_cross_entropy": (
            lambda: c.binary_cross_entropy(b, d),
            lambda b, d: [_bce(a, e) for a, e in zip(b, d, strict=True)],
            (b, d),
        ),
    }


def _mp(v: Any) -> Any:
    return mpmath.mpf(v)  # (exact: a float's value, or an mpf as it is)


def _lse(r: list[float]) -> Any:
    return mpmath.log(mpmath.fsum(mpmath.exp(_mp(v)) for v in r))


def _softmax_grad(r: list[float], k: int) -> list[Any]:
    return [mpmath.exp(_mp(v) - _lse(r)) - (j == k) for j, v in enumerate(r)]


def _bce(a: float, e: float) -> Any:
    return _cross([[a, 1 - _mp(a)]], [[e, 1 - _mp(e)]])[
        0
    ]  # (0 log 0 = 0: 1 - 1e-7 is 1 in float16)


def _cross(p: list[list[float]], q: list[list[float]]) -> list[Any]:
    return [
        -mpmath.fsum(_mp(a) * mpmath.log(_mp(e)) for a, e in zip(r, s, strict=True) if a)
        for r, s in zip(p, q, strict=True)
    ]


def _kl(p: list[list[float]], q: list[list[float]]) -> list[Any]:
    return [
        mpmath.fsum(
            _mp(a) * (mpmath.log(_mp(a)) - mpmath.log(_mp(e)))
            for a, e in zip(r, s, strict=True)
            if a
        )
        for r, s in zip(p, q, strict=True)
    ]


def _js(p: list[list[float]], q: list[list[float]]) -> list[Any]:
    out = []
    for r, s in zip(p, q, strict=True):
        m = [(_mp(a) + _mp(e)) / 2 for a, e in zip(r, s, strict=True)]
        out.append((_kl([r], [m])[0] + _kl([s], [m])[0]) / 2)
    return out


#: The most ulps (of the result's dtype, at the exact value) either route may be from
#: the exact value on :func:`_hard`'s inputs. Measured (routed / torch path): float32
#: results (float16, bfloat16, float32 inputs) at most 0.64 / 1.69 (``js_divergence``),
#: float64 at most 2.0 / 1.0 (``js_divergence``), and 8.0 / 8.0 for float64
#: ``softmax_cross_entropy_grad``'s -4.7e-13 (``exp(-30)`` less 0 where the label's
#: probability rounds to 1).
ULPS = {torch.float32: 2.0, torch.float64: 4.0}
ULPS_GRAD64 = 10.0


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_both_routes_are_within_ulps_of_the_exact_value(
    dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The contract of the route (not bits: ``_torch_host``'s docstring): eager on the
    route and the torch path (as ``torch.compile`` runs it) both within :data:`ULPS`
    of mpmath's value, with the same dtype and shape."""
    for name, (call, exact, given) in _hard(DTYPES[dtype]).items():
        routed = call()
        before = _torch_path(monkeypatch, call)
        assert (routed.dtype, routed.shape) == (before.dtype, before.shape), name
        values = (t.double().tolist() if t.is_floating_point() else t.tolist() for t in given)
        with mpmath.workdps(50):
            want = np.array(exact(*values), dtype=float)
        finfo = torch.finfo(routed.dtype)
        ulp = finfo.eps * np.exp2(np.floor(np.log2(np.maximum(np.abs(want), finfo.tiny))))
        grad64 = name.endswith("_grad") and routed.dtype == torch.float64
        bound = ULPS_GRAD64 if grad64 else ULPS[routed.dtype]
        for route, got in (("routed", routed), ("torch path", before)):
            ulps = np.abs(got.double().numpy() - want) / ulp
            assert float(ulps.max()) <= bound, (name, route, float(ulps.max()))


def _dual_cases() -> dict[str, tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]:
    """One call of each routed entry point (``call_on_host`` of the measures and the
    pointwise functions, the losses' ``on_host``) and crossent.torch's focal losses,
    which reach the route through the generic losses."""
    import crossent.torch as ct

    cases = _case_arrays(torch.float64, torch.int64)
    names = ["entropy", "kl_divergence", "surprisal", "binary_cross_entropy"]
    names += ["softmax_cross_entropy", "with_targets", "sigmoid", "distillation"]
    chosen = {name: cases[name] for name in names}
    z, y = cases["softmax_cross_entropy"][1]
    t = cases["sigmoid"][1][1]
    chosen["torch_softmax_focal_loss"] = (ct.softmax_focal_loss, (z, y), {})
    chosen["torch_sigmoid_focal_loss"] = (ct.sigmoid_focal_loss, (z, t), {"reduction": "sum"})
    return chosen


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # (make_dual's import)
@pytest.mark.parametrize("name", list(_dual_cases()))
def test_forward_mode_dual_tensors_keep_their_tangents(name: str) -> None:
    """``torch.autograd.forward_ad``: a dual tensor requires no grad, so it took the
    route, and NumPy read its primal only: ``unpack_dual(loss).tangent`` was None (and
    ``torch.autograd.functional.jacobian(..., strategy="forward-mode")`` zeros). Within a
    dual level every call takes the torch path. Oracle: central differences along the
    tangent, in float64."""
    fn, args, kwargs = _dual_cases()[name]
    x, rest = args[0], args[1:]
    tangent = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=x.dtype)
    with torch.autograd.forward_ad.dual_level():
        out = fn(torch.autograd.forward_ad.make_dual(x, tangent), *rest, **kwargs)
        got = torch.autograd.forward_ad.unpack_dual(out).tangent
    h = 1e-6
    off_simplex = {} if name.startswith("torch_") else {"validate": False}
    up, down = (fn(x + s * h * tangent, *rest, **kwargs, **off_simplex) for s in (1, -1))
    assert got is not None
    torch.testing.assert_close(got, (up - down) / (2 * h), rtol=1e-5, atol=1e-7)
