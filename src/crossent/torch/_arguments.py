"""The argument checks and the option bundle that every public function of crossent.torch shares.

:func:`call_options` checks a call's options once and freezes them in a
:class:`CallOptions`, whose numeric options the functional forms hand to the custom ops
packed in one list (:meth:`CallOptions.packed`), and which the vocab-parallel losses
pass through their ``autograd.Function`` whole. Each public function passes its options
by name, not as its ``locals()``, which Dynamo before torch 2.13 cannot trace
(``fullgraph=True`` failed there). The checks read Python values, shapes and dtypes
only, never tensor data, so they also run while ``torch.compile`` traces, with no graph
break and no device sync. The numeric options are checked by
:func:`crossent.torch._backend.options` (the losses package's checks), so
``cross_entropy``, ``linear_cross_entropy`` and the vocab-parallel losses
raise the same :class:`~crossent.errors.InputError` for the same bad value.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch.autograd import forward_ad

from .._checks import check_integer
from .._xp import check_dense, functorch_wrapped
from ..errors import InputError, InputTypeError
from . import _backend
from ._labels import check_ignore_index

__all__ = [
    "CallOptions",
    "autocast_like_linear",
    "autocast_off",
    "autocasting",
    "call_options",
    "callers_names",
    "check_chunk_size",
    "check_forward_mode_once",
    "check_no_tangent",
    "check_not_transformed",
    "check_on_device_of_input",
    "check_one_dtype",
    "check_reduction",
    "check_weight_not_differentiated",
    "example_stack",
    "examples",
    "first_order_only",
    "floating_tensor",
    "functorch_reverse_mode",
    "grad_recorded",
    "has_tangent",
    "named_as_called",
    "nested_forward_mode",
    "op_sizes",
    "tensor",
    "traced_within",
    "under_torch_func",
    "vmapped",
]

_REDUCTIONS = ("mean", "sum", "none")


@dataclass(frozen=True)
class CallOptions:
    """The checked options of one call of a softmax cross-entropy of class ids.

    Attributes
    ----------
    ignore_index : int or None
        The label whose rows count neither in the sum nor in the mean's denominator.
    reduction : {'mean', 'sum', 'none'}
    label_smoothing, z_loss, soft_cap, temperature : float (soft_cap float or None)
        As Python floats; :meth:`packed` gives them as the custom ops take them.
    """

    ignore_index: int | None
    reduction: str
    label_smoothing: float
    z_loss: float
    soft_cap: float | None
    temperature: float

    def packed(self) -> list[float]:
        """The numeric options as the custom ops' one ``float[]`` argument (``_backend.pack``)."""
        return _backend.pack(self)


def call_options(
    *,
    ignore_index: object,
    reduction: object,
    label_smoothing: float,
    z_loss: float,
    soft_cap: float | None,
    temperature: float,
    symbolic: bool = False,
) -> CallOptions:
    """Check a call's options (an :class:`InputError` names a bad one) and freeze them.

    ``symbolic``: while Dynamo traces, keep float options as given (symbolic ones
    stay symbolic: :func:`_traced_terms`), for a caller that passes them on as a
    tensor (``cross_entropy`` of class ids, ``_traced_options``); otherwise each float
    is read by its value (:func:`_by_value`: a guard on it, so a graph per value).
    """
    check_reduction(reduction)
    ignore = check_ignore_index(ignore_index)
    if symbolic and torch.compiler.is_dynamo_compiling():
        # Symbolic floats stay symbolic (range guards only): ``_traced_options``.
        traced = _traced_terms(label_smoothing, z_loss, temperature, soft_cap)
        if traced is not None:
            smoothing, z, t, cap = traced
            return CallOptions(ignore, str(reduction), smoothing, z, cap, t)
    terms = _backend.options(
        label_smoothing=_by_value(label_smoothing),
        z_loss=_by_value(z_loss),
        temperature=_by_value(temperature),
        soft_cap=_by_value(soft_cap),
    )
    return CallOptions(
        ignore_index=ignore,
        reduction=str(reduction),
        label_smoothing=terms.label_smoothing,
        z_loss=terms.z_loss,
        soft_cap=terms.soft_cap,
        temperature=terms.temperature,
    )


# name, low, high, low open (``crossent.losses._batch._check_options``' bounds)
_BOUNDS = (
    ("label_smoothing", 0.0, 1.0, False),
    ("z_loss", 0.0, math.inf, False),
    ("temperature", 0.0, math.inf, True),
    ("soft_cap", 0.0, math.inf, True),
)


def _traced_terms(
    label_smoothing: object, z_loss: object, temperature: object, soft_cap: object
) -> tuple[float, float, float, float | None] | None:
    """The four options as given, where each is a float (``soft_cap`` a float or None)
    within its bounds, checked by comparisons only (no guard on a value); else None,
    for :func:`crossent.torch._backend.options` to check (and name a bad one).

    For calls that Dynamo traces: a symbolic float stays symbolic here
    (``_traced_options``)."""
    values = (label_smoothing, z_loss, temperature, soft_cap)
    for value, (name, low, high, low_open) in zip(values, _BOUNDS, strict=True):
        if value is None and name == "soft_cap":
            continue
        if not traced_within(value, low, high, low_open):
            return None
    return label_smoothing, z_loss, temperature, soft_cap  # type: ignore[return-value]


def traced_within(value: object, low: float, high: float, low_open: bool = False) -> bool:
    """Whether ``value`` is a float (symbolic while Dynamo traces) in ``[low, high]``
    (``(low, high]`` where ``low_open``; ``high`` infinite: finite), checked by
    comparisons only (range guards, no guard on the value; NaN fails them)."""
    if type(value) is not float:
        return False
    above = low < value if low_open else low <= value  # False for NaN
    below = value <= high if high < math.inf else value < math.inf
    return bool(above and below)


def check_reduction(reduction: object, *, parts: bool = False) -> str:
    """``reduction`` if it is one of ``'mean'``, ``'sum'``, ``'none'`` (and ``'parts'``
    where ``parts``); else an InputError naming the allowed ones.

    Every public loss of crossent.torch checks it here, before any data is read (also
    while ``torch.compile`` traces). The NumPy API's ``'parts'`` (a ``LossParts``) is
    kept by ``distillation_loss`` only, whose tests and compiled form have it.
    """
    allowed = (*_REDUCTIONS, "parts") if parts else _REDUCTIONS
    if not isinstance(reduction, str) or reduction not in allowed:
        names = ", ".join(repr(name) for name in allowed)
        raise InputError(f"`reduction` must be one of {names}; got {reduction!r}")
    return reduction


def _by_value(option: Any) -> Any:
    """A float option by its value: a symbolic float under Dynamo becomes a constant.

    ``torch.compile(..., dynamic=True)`` makes the float attributes of a Module (the
    options of :class:`~crossent.torch.CrossEntropyLoss`) and float arguments symbolic;
    the option checks' ``math.isfinite`` cannot take a symbol (a graph break, an error
    under ``fullgraph=True``). ``float.hex`` reads the value (a guard), so each value
    compiles its own graph, as a constant does (as ``_far_distillation._traced``).
    So does an int there (``gamma=2``, ``label_smoothing=0``, ``temperature=2``, which
    ``dynamic=True`` makes a symbolic int: until issue 13's branch torchhostile8 an
    error under ``fullgraph=True``), read through its float (exact below
    :math:`2^{53}`; a larger one stays as given). Anything else is returned as is,
    for the checks to judge.
    """
    if isinstance(option, float):
        return float.fromhex(option.hex())
    if type(option) is int and torch.compiler.is_dynamo_compiling():
        value = float.fromhex(float(option).hex())
        if abs(value) < 2.0**53:
            return int(value)
    return option


def check_chunk_size(chunk_size: object) -> int | None:
    """``chunk_size`` (rows per block) as a positive Python int, or None for the default.

    A NumPy integer is read as its value, as ``ignore_index`` is; a bool, a float or
    anything else is an :class:`InputError` (``crossent._checks.check_integer``)."""
    if chunk_size is None:
        return None
    try:
        return check_integer(chunk_size, name="chunk_size", low=1)
    except InputError:
        raise InputError(
            f"`chunk_size` must be a positive integer or None; got {chunk_size!r}"
        ) from None


def tensor(x: object, *, name: str) -> torch.Tensor:
    """``x``, which must be a tensor (an :class:`InputTypeError` names ``name`` otherwise)."""
    if not isinstance(x, torch.Tensor):
        raise InputTypeError(f"`{name}` must be a torch.Tensor; got {type(x).__name__}")
    if x.layout != torch.strided or x.is_nested or x.is_quantized:
        check_dense(x, name=name)  # its InputTypeError (was PyTorch's RuntimeError)
    return x


def floating_tensor(x: object, *, name: str) -> torch.Tensor:
    """``x``, which must be a floating-point tensor."""
    t = tensor(x, name=name)
    if not t.is_floating_point():
        raise InputTypeError(f"`{name}` must be a floating-point tensor; got dtype {t.dtype}")
    return t


def check_weight_not_differentiated(
    weight: torch.Tensor | None, *, name: str = "weight", requires_grad: bool | None = None
) -> None:
    """Raise where the class weights of a class-id loss would need a gradient.

    The losses of class ids (``cross_entropy`` with class ids, ``linear_cross_entropy``
    and the vocab-parallel losses) differentiate with respect to the logits (and the
    classifier) only, as ``torch.nn.functional.cross_entropy``, which raises a
    ``RuntimeError`` there; a ``weight`` with ``requires_grad=True`` would otherwise get no
    gradient, or (``'mean'``) only that of the mean's denominator :math:`\\sum_i w_{y_i}`,
    silently wrong. Python attributes only (no data read): also while ``torch.compile``
    traces. Nothing is raised under ``torch.no_grad()`` or for a detached ``weight``.
    ``requires_grad``: whether it would need one, where that was read before (inside a
    custom op, whose inputs require none); None: read here.
    """
    if requires_grad is None:
        requires_grad = weight is not None and weight.requires_grad and torch.is_grad_enabled()
    if weight is not None and requires_grad:
        raise InputError(
            f"`{name}` requires grad; crossent does not differentiate the class weights of "
            f"class-id targets (nor does torch.nn.functional.cross_entropy): pass "
            f"`{name}.detach()` (probability targets of `cross_entropy` do differentiate them)"
        )


def has_tangent(*tensors: torch.Tensor | None) -> bool:
    """Whether forward-mode AD carries a tangent on one of ``tensors`` (None: absent).

    ``torch.autograd.forward_ad`` and ``torch.func.jvp``/``jacfwd`` at the current dual
    level. The custom ops (``_ops.py``) have no forward-mode formula, and PyTorch runs
    a custom op whose inputs require no grad without autograd: the output's tangent is
    silently dropped (a zero Jacobian). Eager calls only: ``torch.compile`` does not
    trace forward-mode AD.
    """
    if torch.compiler.is_compiling():
        return False
    return any(t is not None and forward_ad.unpack_dual(t).tangent is not None for t in tensors)


def functorch_reverse_mode() -> bool:
    """Whether a ``torch.func`` reverse-mode transform (``grad``, ``vjp``, ``jacrev``,
    also under ``vmap``) is active. Autograd of a custom op (``register_autograd``)
    cannot run under them ("an autograd.Function with functorch transforms ... must
    override the setup_context staticmethod"): where a plain path exists, callers take
    it. Eager calls only, as :func:`has_tangent`."""
    if torch.compiler.is_compiling():
        return False
    from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

    grad = torch._C._functorch.TransformType.Grad
    return any(i.key() == grad for i in retrieve_all_functorch_interpreters())


def op_sizes(shape: Sequence[int]) -> list[int]:
    """``shape`` as a custom op's ``int[]`` argument: plain ints under
    ``torch.jit.trace``, whose sizes of a traced tensor in an ``int[]`` of a custom op
    failed PyTorch's internal assert (``iter->isIntList()``, TraceTypeManual.cpp); the
    traced graph holds them as constants (they only name rows in errors). Else as they
    are (symbolic sizes stay symbolic under ``torch.compile``)."""
    if torch.jit.is_tracing():
        return [int(s) for s in shape]
    return list(shape)


def grad_recorded() -> bool:
    """Whether a call's gradient may be asked for, for the choices that differ with it
    (a gradient formed ahead in the forward, a path that differentiates a target):
    grad mode on, or inside ``torch.jit.trace``. A traced graph holds the choice as a
    constant and is run later in either mode; trace's own check re-traces under
    ``torch.no_grad()`` and needs the same graph, so while tracing the choice follows
    the inputs' ``requires_grad`` alone (a traced training step keeps its gradient
    ahead; run under ``no_grad``, that gradient is formed and dropped)."""
    return torch.is_grad_enabled() or torch.jit.is_tracing()


def under_torch_func() -> bool:
    """Whether a ``torch.func`` transform (``grad``, ``vjp``, ``jacrev``, ``vmap``,
    ``jvp``, ``jacfwd``, ``functional_call`` inside one) is active: one interpreter on
    functorch's stack (a C++ read, under a microsecond). The custom ops' autograd cannot
    run under the reverse-mode ones, so the functional forms take their
    ``autograd.Function`` twins there (``_ops.py``). Eager calls only, as
    :func:`has_tangent`."""
    if torch.compiler.is_compiling():
        return False
    return torch._C._functorch.peek_interpreter_stack() is not None


def nested_forward_mode() -> bool:
    """Whether two or more ``jvp`` levels of ``torch.func`` are active
    (``jacfwd(jacfwd(...))``, ``jvp`` of ``jvp``): under them an
    ``autograd.Function``'s forward-mode rule is not differentiated again (torch 2.13:
    the rule runs with forward AD off, so the outer level sees a constant, and its
    second derivative is silently 0; an ``autograd.Function`` of ``sin`` shows it).
    One read of functorch's interpreter stack: call it under ``torch.func`` only
    (:func:`under_torch_func`)."""
    from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

    jvp = torch._C._functorch.TransformType.Jvp
    return sum(i.key() == jvp for i in retrieve_all_functorch_interpreters()) > 1


def check_forward_mode_once(function: str, use: str) -> None:
    """Raise :class:`InputError` under nested forward mode of ``torch.func`` (two or
    more ``jvp`` levels: ``jacfwd(jacfwd(...))``, ``jvp`` of ``jvp``).

    The fused losses' forward-mode rules are ``autograd.Function.jvp`` methods, and
    PyTorch does not differentiate such a rule again under an outer ``jvp``: the
    second derivative came out silently 0 (torch 2.13; an ``autograd.Function`` of
    ``sin`` shows it too). ``use`` names what works (``hessian``, i.e.
    ``jacfwd(jacrev(...))``, or plain PyTorch). One read of functorch's interpreter
    stack: callers call it under ``torch.func`` only (:func:`under_torch_func`)."""
    if nested_forward_mode():
        raise InputError(
            f"crossent.torch.{function} does not run under nested forward mode "
            f"(jacfwd(jacfwd(...)), jvp of jvp): PyTorch does not differentiate its "
            f"forward-mode rule again (the second derivative would be silently 0); "
            f"use {use}"
        )


def examples(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``x`` without its ``torch.func`` wrappers (``grad``'s; ``vmap``'s, each level's
    examples on a new leading axis, outermost first) and whether one was ``vmap``'s.

    For data checks that read values (a Python ``bool`` of a batched tensor is an error
    under vmap): they read every example's, and a position's trailing indices are those
    of ``x`` itself. ``x`` as it is outside ``torch.func``."""
    functorch = torch._C._functorch
    batched = False
    while functorch_wrapped(x):
        dim = functorch.maybe_get_bdim(x) if functorch.is_batchedtensor(x) else None
        x = functorch.get_unwrapped(x)
        if dim is not None and dim >= 0:
            x, batched = x.movedim(dim, 0), True
    return x, batched


def check_not_transformed(function: str) -> None:
    """Raise :class:`InputError` under a ``torch.func`` transform for a loss that does
    not support them (the vocab-parallel losses: their collectives run once a call,
    which vmap cannot batch, and their ``autograd.Function`` has no functorch form)."""
    if under_torch_func():
        raise InputError(
            f"crossent.torch.{function} does not run under torch.func transforms (grad, "
            f"vmap, jacrev, jvp, functional_call inside one): its collectives cannot be "
            f"batched; use torch.autograd.grad, or {function} outside the transform"
        )


def vmapped(*tensors: object) -> bool:
    """Whether ``torch.func.vmap`` batches one of ``tensors`` (others: ignored).

    The generic losses' data checks read values, which a batched tensor does not give
    (PyTorch's "data-dependent control flow" error): the family's functions then check
    :func:`example_stack`'s examples and call the generic path with ``validate=False``."""
    if not under_torch_func():
        return False
    return any(isinstance(t, torch.Tensor) and examples(t)[1] for t in tensors)


def example_stack(
    *tensors: torch.Tensor | None,
) -> tuple[tuple[int, ...], list[torch.Tensor | None]]:
    """The examples of ``tensors`` (None: absent) under ``torch.func``, each of shape
    ``lead + shape``: ``lead`` the leading example axes (vmap's levels, outermost
    first: :func:`examples`), ``shape`` the tensor's own inside the transform (one
    that a level does not batch is broadcast along its axis). Detached, for checks
    that read values (the examples' values, not a copy)."""
    pairs = [None if t is None else (examples(t.detach())[0], t) for t in tensors]
    lead: tuple[int, ...] = ()
    for pair in pairs:
        if pair is not None and pair[0].ndim - pair[1].ndim > len(lead):
            lead = tuple(pair[0].shape[: pair[0].ndim - pair[1].ndim])
    out: list[torch.Tensor | None] = []
    for pair in pairs:
        if pair is None:
            out.append(None)
            continue
        u, t = pair
        missing = len(lead) - (u.ndim - t.ndim)
        out.append(u.reshape((1,) * missing + tuple(u.shape)).expand(*lead, *t.shape))
    return lead, out


def first_order_only(
    grads: tuple[torch.Tensor | None, ...],
    message: str,
    anchors: tuple[torch.Tensor | None, ...] = (),
) -> tuple[Any, ...]:
    """``grads`` (a ``create_graph`` backward's) whose own gradient raises ``message``.

    For a backward written by hand that has no second derivative: with ``create_graph``
    its gradients otherwise either hold no graph (a second derivative through them, a
    gradient penalty, is a silent 0) or a graph of tensors it changed in place (an
    error about an in-place modification that names no loss). As
    ``once_differentiable`` forms the error, but whatever requires a gradient.

    ``anchors`` are the loss's inputs (the saved ones): the error node takes them as
    inputs too, so that ``torch.autograd.grad(penalty, inputs)``, which runs only the
    nodes on a path to ``inputs``, reaches it (without them the node hung from new
    leaves, off every such path: that call gave 0, or the input gradient's part
    outside the loss, silently; only ``penalty.backward()`` raised). Callers add the
    backward's upstream gradient: ``torch.autograd.functional.jvp`` differentiates the
    gradient with respect to it, and found no path (a silent 0 tangent) where the
    gradients are not formed from it in the graph.
    """
    linked = [a for a in anchors if a is not None and a.requires_grad]
    error = torch._C._functions.DelayedError(message.encode(), len(grads) + len(linked))
    aliases = [None if g is None else g.detach().requires_grad_() for g in grads]
    # (None passes, as there)
    return tuple(error(*aliases, *linked))[: len(grads)]  # type: ignore[arg-type]


def check_no_tangent(function: str, **tensors: torch.Tensor | None) -> None:
    """Raise :class:`InputError` where forward-mode AD would pass through a fused op.

    Its tangent would be silently dropped (:func:`has_tangent`); ``F.cross_entropy``
    gives it. The message names the argument and points to reverse mode.
    """
    for name, t in tensors.items():
        if has_tangent(t):
            raise InputError(
                f"`{name}` carries a forward-mode AD tangent (torch.func.jvp, jacfwd, "
                f"torch.autograd.forward_ad); crossent's fused `{function}` has reverse-mode "
                f"derivatives only (its tangent would be silently 0): use reverse mode, "
                f"torch.autograd.grad or torch.autograd.functional.jacobian"
            )


def check_on_device_of_input(input: torch.Tensor, **tensors: torch.Tensor | None) -> None:
    """Raise :class:`InputError` unless the given tensors (None: absent) are on ``input``'s
    device, as PyTorch's losses and ``F.linear`` require (their ``RuntimeError``).

    Issue 13 (branch hostile17): a ``meta`` target, classifier or bias beside CPU input
    was silently accepted by ``cross_entropy`` and ``linear_cross_entropy``, which gave
    wrong numbers (0 for a ``meta`` target, ``3.9e15`` for a ``meta`` bias) or a meta
    loss of CPU logits.
    """
    for name, t in tensors.items():
        if t is not None and t.device != input.device:
            raise InputError(
                f"`{name}` must be on the device of `input` ({input.device}); got {t.device}"
            )


def check_one_dtype(**tensors: torch.Tensor | None) -> None:
    """Raise :class:`InputTypeError` unless the given tensors (None: absent) share one dtype.

    The rule of ``torch.nn.functional.linear`` for its input, weight and bias (it raises
    a ``RuntimeError`` on a bias of another dtype): no silent cast, which would round a
    float64 bias to float32 or compute a float32 problem in float64.
    """
    present = {name: t for name, t in tensors.items() if t is not None}
    if len({t.dtype for t in present.values()}) > 1:
        names = _listed([f"`{name}`" for name in present])
        dtypes = _listed([str(t.dtype) for t in present.values()])
        raise InputTypeError(f"{names} must have one dtype; got {dtypes}")


def autocast_like_linear(
    input: torch.Tensor, weight: torch.Tensor, bias: Any
) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """``input``, ``weight`` and ``bias`` as ``F.linear`` takes them under ``torch.autocast``.

    Inside an autocast region of their device, where their dtypes differ, the float32,
    float16 and bfloat16 ones are cast to the region's dtype (float64 ones are not), as
    autocast casts ``F.linear``'s (issue 13: ``linear_cross_entropy(h, head.weight, y)``
    with ``h`` the bfloat16 output of an autocast layer and a float32 head raised
    :class:`InputTypeError` where ``cross_entropy(head(h), y)`` runs). Of one dtype, or
    outside autocast, they are returned as given (:func:`check_one_dtype` judges them).
    """
    device = input.device.type
    tensors = [t for t in (input, weight, bias) if isinstance(t, torch.Tensor)]
    if len({t.dtype for t in tensors}) == 1 or not autocasting(device):
        return input, weight, bias
    low = torch.get_autocast_dtype(device)

    def cast(t: torch.Tensor) -> torch.Tensor:
        return t if t.dtype == torch.float64 or not t.is_floating_point() else t.to(low)

    return cast(input), cast(weight), cast(bias) if isinstance(bias, torch.Tensor) else bias


def autocasting(device_type: str) -> bool:
    """Whether a ``torch.autocast`` region of ``device_type`` is active (False for device
    types autocast does not know, such as ``meta``)."""
    return torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type)


def autocast_off(device_type: str) -> contextlib.AbstractContextManager[Any]:
    """A context without ``torch.autocast`` for ``device_type`` where it is active.

    Around the linear losses' custom ops and ``autograd.Function``: their implementations'
    float32 matrix products (the logits' blocks, ``dW += G^T h``) are one loss, not
    ``F.linear`` calls for autocast to take to bfloat16 (issue 13: inside a bfloat16
    region each block's logits, and the gradient ``G`` before its products, were rounded
    to bfloat16 in eager calls, while the compiled graph, which runs the op without the
    region, computed in float32: the same call gave two losses, 1e-4 apart).
    On the CPU only: on accelerators the op's products under autocast (their speed,
    eager against compiled) are unmeasured here (no GPU in issue 13's session).
    """
    if device_type == "cpu" and autocasting(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def _listed(words: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


_Function = TypeVar("_Function", bound=Callable[..., Any])
_NAMED = re.compile(r"`(\w+)`")


def callers_names(error: Exception, names: Mapping[str, str]) -> None:
    """Rename, in place, the arguments that ``error``'s message names in backticks
    (``names``: the losses package's name to the caller's, such as ``logits`` to
    ``input``); other words are left as they are."""
    if error.args and isinstance(error.args[0], str):
        message = _NAMED.sub(lambda m: f"`{names.get(m.group(1), m.group(1))}`", error.args[0])
        error.args = (message, *error.args[1:])


def named_as_called(**names: str) -> Callable[[_Function], _Function]:
    """A drop-in whose errors name the arguments as the caller passed them (issue 13,
    branch wrap1: ``binary_cross_entropy_with_logits(input, target)``' NaN logits were
    "`logits` contains NaN", the losses package's name): its
    :class:`~crossent.errors.InputError` and :class:`~crossent.errors.InputTypeError`
    get ``names`` (:func:`callers_names`). While Dynamo traces (``torch.compile``,
    ``torch.export``) the function is called as it is (no ``try`` is traced); its value
    checks then run at run time in custom ops, which name the arguments themselves (the
    eager drop-in's call, or :func:`callers_names`)."""

    def decorate(function: _Function) -> _Function:
        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            if torch.compiler.is_compiling():
                return function(*args, **kwargs)
            try:
                return function(*args, **kwargs)
            except (InputError, InputTypeError) as error:
                callers_names(error, names)
                raise

        return call  # type: ignore[return-value]

    return decorate
