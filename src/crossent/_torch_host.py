"""The host route: small plain CPU PyTorch tensors through the NumPy path.

Issue 13: a generic (Array-API) function called on small CPU tensors ran a hundred
small torch operations and Python helpers per call, 50 us to 2 ms of CPU where the
same values as NumPy arrays took 5 to 10 us (``benchmarks/bench_xp_torch_small.py``).
A CPU tensor that NumPy can read without a copy is computed on its NumPy view instead,
and the result given back with :func:`torch.from_numpy`, in the dtype, shape and
device the torch path gives: the NumPy path computes float16/bfloat16/float32 terms
in float64 and rounds once (the torch path in the compute dtype), so the values are
those of the NumPy call, within an ulp or two of the torch path's.

A call takes the route (:func:`host_arguments`) when its first argument is a plain
``torch.Tensor`` and every argument is either such a tensor or a Python scalar,
string or None, each tensor:

* on the CPU, strided, without the conjugate or negative bit;
* of dtype float16, float32, float64, int32 or int64 (not bfloat16: NumPy has none,
  and its float32 copy would be validated against float32's row-sum tolerance, not
  bfloat16's, so that a bfloat16 row the torch path takes would be refused);
* not requiring grad while grad mode is on (autograd records the torch path);
* not a ``torch.func`` transform's tensor (:func:`._xp.functorch_wrapped`), nor a
  subclass (fake, functional, ``nn.Parameter``), nor meta;
* of at most :data:`MAX_ELEMENTS` elements (the issue's small inputs; larger inputs
  keep the torch path and its results);

and no call is being traced by ``torch.compile`` (``torch.compiler.is_compiling``).
Anything the NumPy call raises sends the call back to the torch path, which raises
the error it always raised (same type and message) or gives its result.

**Off by default** (:data:`MAX_ELEMENTS` is -1): the route gives the NumPy call's
values, which differ from the torch path's in the last bits (a few ulps: on the
(8, 10) inputs measured for the branch up to 2 float32 ulps and 4
float64 ulps; the NumPy path rounds float64 terms once, the torch path does not),
so that an eager call would no longer equal the same call traced by ``torch.compile``
bit for bit (``tests/test_xp_numpy_errstate.py`` asserts it does). Whether to trade
that for the speed is the maintainers' call: ``MAX_ELEMENTS = 1 << 16`` turns it on.
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
    "torch_results",
]

MAX_ELEMENTS = -1
"""The most elements of a tensor that takes the host route; -1: the route is off
(module docstring), ``1 << 16`` (``ROUTE_ON``) the small inputs of issue 13."""

ROUTE_ON = 1 << 16
"""The value of :data:`MAX_ELEMENTS` that turns the route on (tests, benchmarks)."""

_SCALARS = (bool, int, float, str, type(None))
_DTYPES = ("float16", "float32", "float64", "int32", "int64")


def _view(t: Any, torch: Any) -> np.ndarray | None:
    """``t``'s values as a NumPy array (a view), or None where ``t`` is not for the
    route (see the module docstring)."""
    if t.requires_grad and torch.is_grad_enabled():
        return None  # (first: autograd's calls pay the least for the route)
    if (
        t.dtype not in _dtypes(torch)
        or t.device.type != "cpu"
        or t.layout is not torch.strided
        or t.numel() > MAX_ELEMENTS
        or t.is_conj()
        or t.is_neg()
    ):
        return None
    if t.requires_grad:
        t = t.detach()
    return None if functorch_wrapped(t) else t.numpy()


_DTYPE_SETS: list[frozenset[Any]] = []


def _dtypes(torch: Any) -> frozenset[Any]:
    """The torch dtypes of :data:`_DTYPES` (found once)."""
    if not _DTYPE_SETS:
        _DTYPE_SETS.append(frozenset(getattr(torch, name) for name in _DTYPES))
    return _DTYPE_SETS[0]


def host_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any], dict[int, Any]] | None:
    """The call's arguments with its tensors as NumPy views, and the tensors by the
    ``id`` of their views (for ``out=``); None where the call is not for the route."""
    if MAX_ELEMENTS < 0:
        return None
    torch = sys.modules.get("torch")
    if torch is None or not args or type(args[0]) is not torch.Tensor:
        return None
    if torch.compiler.is_compiling():
        return None
    tensors: dict[int, Any] = {}
    given = []
    for value in args:
        hosted = _host(value, torch, tensors)
        if hosted is None and value is not None:
            return None
        given.append(hosted)
    named = {}
    for key, value in kwargs.items():
        hosted = _host(value, torch, tensors)
        if hosted is None and value is not None:
            return None
        named[key] = hosted
    return tuple(given), named, tensors


def _host(value: Any, torch: Any, tensors: dict[int, Any]) -> Any:
    """``value`` for the NumPy call: a tensor's view (kept in ``tensors``), a Python
    scalar, string or None as it is; None for anything else (no route)."""
    if type(value) is torch.Tensor:
        view = _view(value, torch)
        if view is not None:
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
    call: Callable[..., Any],
) -> Callable[[tuple[Any, ...], dict[str, Any]], Any]:
    """``attempt(args, kwargs)``: ``call`` on the host route's arguments with its
    result as tensors, or None where the call is not for the route or the NumPy call
    raised (the caller then takes the torch path)."""

    def attempt(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        hosted = host_arguments(args, kwargs)
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


def call_on_host(function: Callable[..., Any], arguments: dict[str, Any], positional: int) -> Any:
    """``function``'s call of ``arguments`` (its ``locals()`` on entry: the parameters in
    order, the first ``positional`` of them positional) on the host route (:func:`on_host`),
    or None where it does not take the call. A measure asks it first when its first
    argument is not a NumPy array (a wrapper would cost its NumPy calls a frame)."""
    values = list(arguments.values())
    names = list(arguments)
    args = tuple(values[:positional])
    kwargs = dict(zip(names[positional:], values[positional:], strict=True))
    return on_host(function)(args, kwargs)
