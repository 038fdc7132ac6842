"""The host route: small plain CPU PyTorch tensors through the NumPy path.

Issue 13: a generic (Array-API) function called on small CPU tensors ran a hundred
small torch operations and Python helpers per call, 50 us to 2 ms of CPU where the
same values as NumPy arrays took 5 to 10 us (``benchmarks/bench_xp_torch_small.py``).
A CPU tensor that NumPy can read is computed on its NumPy view instead (bfloat16 on a
float32 copy), and the result given back with :func:`torch.from_numpy`, in the type,
dtype, shape and device the torch path gives (float32 for float16/bfloat16 inputs, as
there).

A call takes the route (:func:`host_arguments`) when its first argument is a plain
``torch.Tensor`` and every argument is either such a tensor or a Python scalar,
string or None, at least one tensor floating, each tensor:

* on the CPU, strided (any strides: views, expanded, transposed), without the
  conjugate or negative bit;
* of dtype float16, bfloat16, float32, float64, int32 or int64 (not complex, bool or
  the small integers: the torch path's errors and promotions);
* not requiring grad while grad mode is on (autograd records the torch path);
* not a ``torch.func`` transform's tensor (``vmap``, ``grad``:
  :func:`._xp.functorch_wrapped`), nor a subclass (fake, functional,
  ``nn.Parameter``), nor meta;
* of at most :data:`MAX_ELEMENTS` elements;

and no call is being traced (``torch.compiler.is_compiling``, ``torch.jit.is_tracing``),
nor a forward-mode AD level open (``torch.autograd.forward_ad.dual_level``: NumPy would
drop its dual tensors' tangents).
Integer tensors alone (no floating one) keep the torch path: they compute in the
default float dtype, float64 in NumPy, ``torch.get_default_dtype()`` there. A
``bfloat16`` ``out=`` keeps it too (the copy is not the tensor's memory). Anything the
NumPy call raises sends the call back to the torch path, which raises the error it
always raised (same type and message) or gives its result (a bfloat16 row that float32's
tighter row-sum tolerance refuses).

**The contract is accuracy, not bits.** The NumPy path computes float16/bfloat16/float32
terms in float64 and rounds once, the torch path in the compute dtype, so their values
differ in the last bits; an eager call of a small CPU tensor no longer equals the same
call traced by ``torch.compile`` (which keeps the torch path) bit for bit, as PyTorch
itself does not promise of eager and compiled code. What both routes promise: the same
type, dtype, shape, device and errors, and values within a few ulps of the exact
(mpmath) value on hard inputs (``tests/pytorch/test_torch_host_route.py``: near one-hot
and near-equal rows, logits of 1e4, probabilities by 1e-7 of 0 and 1; the bounds there).

:data:`MAX_ELEMENTS` is ``1 << 14`` (``benchmarks/bench_torch_host_threshold.py``,
``benchmarks/RESULTS.md``): up to it every function measured costs less on the route
(the losses and divergences 3x to 100x less; ``entropy``, the torch path's cheapest,
0.9x at 16400 elements, and the torch path is as fast between 32800 and 65500), and
the NumPy path's loss kernels run on the calling thread (``losses._cpu_kernels.
SERIAL_ELEMENTS``; above it a parallel launch, whose cost swings with the machine's
load, and PyTorch's own operations go parallel from 32768 elements).
``crossent._torch_host.MAX_ELEMENTS = -1`` turns the route off.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ._xp import functorch_wrapped

__all__ = [
    "MAX_ELEMENTS",
    "ROUTE_ON",
    "call_on_host",
    "exported",
    "host_arguments",
    "on_host",
    "routable",
    "torch_results",
]

ROUTE_ON = 1 << 14
"""The default of :data:`MAX_ELEMENTS` (module docstring: below where the torch path
becomes as fast, and the NumPy path's kernels stay on the calling thread)."""

MAX_ELEMENTS = ROUTE_ON
"""The most elements of a tensor that takes the host route; -1 turns the route off
(``crossent._torch_host.MAX_ELEMENTS = -1``: every tensor through the torch path)."""

_SCALARS = (bool, int, float, str, type(None))
_DTYPES = ("float16", "bfloat16", "float32", "float64", "int32", "int64")


def _view(t: Any, torch: Any, limit: int) -> np.ndarray | None:
    """``t``'s values as a NumPy array (a view; a float32 copy of bfloat16, which NumPy
    has not), or None where ``t`` is not for the route (see the module docstring;
    ``limit``: the most elements, -1 for any number)."""
    if t.requires_grad and torch.is_grad_enabled():
        return None  # (first: autograd's calls pay the least for the route)
    if (
        t.dtype not in _dtypes(torch)
        or t.device.type != "cpu"
        or t.layout is not torch.strided
        or (limit >= 0 and t.numel() > limit)
        or t.is_conj()
        or t.is_neg()
    ):
        return None
    if t.requires_grad:
        t = t.detach()
    if functorch_wrapped(t):
        return None
    try:
        return t.float().numpy() if t.dtype is torch.bfloat16 else t.numpy()
    except (RuntimeError, TypeError):  # (named or otherwise unreadable tensors)
        return None


_DTYPE_SETS: list[frozenset[Any]] = []


def _dtypes(torch: Any) -> frozenset[Any]:
    """The torch dtypes of :data:`_DTYPES` (found once)."""
    if not _DTYPE_SETS:
        _DTYPE_SETS.append(frozenset(getattr(torch, name) for name in _DTYPES))
    return _DTYPE_SETS[0]


def host_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], *, any_size: bool = False
) -> tuple[tuple[Any, ...], dict[str, Any], dict[int, Any]] | None:
    """The call's arguments with its tensors as NumPy views, and the tensors by the
    ``id`` of their views (for ``out=``); None where the call is not for the route.
    ``any_size``: tensors of any number of elements take it (:func:`call_on_host`),
    unless :data:`MAX_ELEMENTS` turns the route off."""
    if MAX_ELEMENTS < 0:
        return None
    limit = -1 if any_size else MAX_ELEMENTS
    torch = sys.modules.get("torch")
    if torch is None or not args or type(args[0]) is not torch.Tensor:
        return None
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or _dual_level_open(torch):
        return None
    tensors: dict[int, Any] = {}
    given = []
    floating = False
    for value in args:
        hosted = _host(value, torch, tensors, limit)
        if hosted is None and value is not None:
            return None
        floating = floating or (type(hosted) is np.ndarray and hosted.dtype.kind == "f")
        given.append(hosted)
    named = {}
    for key, value in kwargs.items():
        hosted = _host(value, torch, tensors, limit)
        if hosted is None and value is not None:
            return None
        if key == "out" and id(hosted) not in tensors:
            return None  # (a bfloat16 out: its float32 copy is not the tensor's memory)
        floating = floating or (type(hosted) is np.ndarray and hosted.dtype.kind == "f")
        named[key] = hosted
    # Integer tensors alone compute in the default float dtype: NumPy's float64, the
    # torch path's ``torch.get_default_dtype()``: no route.
    return (tuple(given), named, tensors) if floating else None


def _dual_level_open(torch: Any) -> bool:
    """Whether a forward-mode AD level (``torch.autograd.forward_ad.dual_level``) is open.

    Its dual tensors are plain tensors that require no grad, and NumPy reads their
    primal values only: on the route their tangents were dropped (``unpack_dual(loss)
    .tangent`` None, ``torch.autograd.functional.jacobian(..., strategy="forward-mode")``
    zeros). ``unpack_dual(t).tangent`` would tell it per tensor but costs 1 us a tensor;
    the module's level (-1 where none is open, the value ``unpack_dual`` itself reads) is
    one attribute read, and within a level every call takes the torch path."""
    if not _FORWARD_AD:
        _FORWARD_AD.append(torch.autograd.forward_ad)
    # A PyTorch without the attribute (a later release may rename it) is taken as having
    # a level open: the torch path is slower there, never wrong.
    level: int = getattr(_FORWARD_AD[0], "_current_level", 0)
    return level >= 0


_FORWARD_AD: list[Any] = []  # torch.autograd.forward_ad (found once)


def _host(value: Any, torch: Any, tensors: dict[int, Any], limit: int) -> Any:
    """``value`` for the NumPy call: a tensor's view (kept in ``tensors``; ``limit`` as
    :func:`_view`'s), a Python scalar, string or None as it is; None for anything else
    (no route)."""
    if type(value) is torch.Tensor:
        view = _view(value, torch, limit)
        if view is not None and value.dtype is not torch.bfloat16:
            tensors[id(view)] = value
        return view
    return value if isinstance(value, _SCALARS) else None


def torch_results(result: Any, tensors: dict[int, Any], torch: Any) -> Any:
    """The NumPy call's ``result`` as the torch path gives it: arrays and NumPy scalars
    as CPU tensors of their dtype and shape (a scalar 0-d), a named tuple field by
    field, an ``out=`` array as the tensor given."""
    if isinstance(result, np.ndarray):
        given = tensors.get(id(result))
        if given is not None:
            return given
        if not result.flags.writeable:
            result = result.copy()
        return torch.from_numpy(result)
    if isinstance(result, np.generic):
        return torch.from_numpy(np.asarray(result))
    if isinstance(result, tuple):
        fields = (torch_results(r, tensors, torch) for r in result)
        return type(result)(*fields) if hasattr(result, "_fields") else tuple(fields)
    return result


def on_host(
    call: Callable[..., Any], *, any_size: bool = False
) -> Callable[[tuple[Any, ...], dict[str, Any]], Any]:
    """``attempt(args, kwargs)``: ``call`` on the host route's arguments with its
    result as tensors, or None where the call is not for the route or the NumPy call
    raised (the caller then takes the torch path). ``any_size`` as
    :func:`host_arguments`'."""

    def attempt(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        hosted = host_arguments(args, kwargs, any_size=any_size)
        if hosted is None:
            return None
        given, named, tensors = hosted
        try:
            result = call(*given, **named)
        except Exception:
            return None  # the torch path raises its own message
        return torch_results(result, tensors, sys.modules["torch"])

    return attempt


def exported(function: Callable[..., Any], fallback: Callable[..., Any]) -> Callable[..., Any]:
    """The function of ``function``'s name in its module (the public function with its
    outer wrappers, for a body that ``function`` wraps), else ``fallback``."""
    return getattr(sys.modules[function.__module__], function.__name__, fallback)


def routable(first: object) -> bool:
    """Whether a call whose first argument is ``first`` may take the host route: a torch
    tensor outside ``torch.compile`` (and ``torch.jit`` tracing).  The measures ask it
    before they form ``locals()`` for :func:`call_on_host`: Dynamo in torch 2.13 stops
    at ``locals()`` in a function with a closure cell not yet bound ("Read uninitialized
    cell": ``cross_entropy``, ``perplexity``, ``binary_cross_entropy`` under
    ``torch.compile(fullgraph=True)``), and torch 2.11's at any ``locals()``."""
    torch = sys.modules.get("torch")
    return (
        torch is not None
        and type(first) is torch.Tensor
        and not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
    )


def call_on_host(
    function: Callable[..., Any],
    arguments: dict[str, Any],
    positional: int,
    *,
    any_size: bool = False,
) -> Any:
    """``function``'s call of ``arguments`` (its ``locals()`` on entry: the parameters in
    order, the first ``positional`` of them positional) on the host route (:func:`on_host`),
    or None where it does not take the call. A measure asks it first when its first
    argument is not a NumPy array (a wrapper would cost its NumPy calls a frame).

    ``any_size``: tensors of any size take the route (where the torch path costs more
    at every size: ``js_divergence`` of mixed forms, whose exact pass there is dozens
    of double-double operations a class, the fused kernel's one loop)."""
    torch = sys.modules.get("torch")
    if torch is None or type(next(iter(arguments.values()))) is not torch.Tensor:
        return None  # (lists, scalars, other libraries' arrays: no copies of the call)
    values = list(arguments.values())
    names = list(arguments)
    args = tuple(values[:positional])
    kwargs = dict(zip(names[positional:], values[positional:], strict=True))
    return on_host(function, any_size=any_size)(args, kwargs)
