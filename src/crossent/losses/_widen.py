r"""Exact answers for NumPy float16/float32 logits off the fused path (issue 13).

The generic (Array API) path computes in the compute dtype: float32 for float16 and
float32 logits, with NumPy's naive sums along a strided class axis. A row's loss then
carries the rounding of :math:`z - m` times :math:`|z - m|` through ``exp`` (a confident
row's loss of :math:`e^{-40}` lost some 1000 float32 ulps at 32000 classes), far from
the fused kernels' correctly rounded float64 statistics. Two ways back, chosen per call
by the public function (``_batch.prepared_by``'s ``widen``) before its body runs:

* :func:`relayout` (the softmax cross-entropy of integer labels or of soft targets and
  their gradients, where only the layout keeps the call off its own path: arrays not
  C-contiguous, the classes not on the last axis, a non-native byte order): the call
  on a C-contiguous, classes-last copy of the logits (and targets) in their dtype,
  which the fused (or the small) path takes: the bits of that contiguous call, the
  gradient moved back to the caller's axis order.
* :func:`upcast` (every other call of focal, poly-1 or distillation on such logits,
  and the two above with soft-capping): the same call on a float64, C-contiguous,
  classes-last copy of the logits (targets or a teacher of their shape copied
  classes-last too, in their own dtype: they promote to float64 exactly, and their
  checks, such as a target row's sum, keep their dtype's tolerance), its result rounded
  to float32, the dtype the call returned before. Each per-row value is then the float64
  call's, correctly rounded, and the same bits for every layout of the same values.

* :func:`blocked` (focal, poly-1, distillation, and the softmax cross-entropy's calls
  that :func:`relayout` computes in float64): :func:`upcast` in blocks of rows where
  the float64 logits exceed :data:`BLOCK_BYTES`: each block's rows by the same float64
  call (per row, in nats, unscaled), the whole batch's reduction, unit and gradient
  scale applied after as the whole call applies them (the example weights from the
  labels, or from the soft targets and class weights, without the logits). The same
  bits as the whole float64 call, rows being independent, with a few blocks' worth of
  extra memory (and the float32 gradient itself) instead of the float64 copy and its
  temporaries. The labels and class weights are checked once, whole, each block's rows
  by the whole call's (row by row) checks, and the blocks called with
  ``validate=False``; an input that fails a check is the whole call's, which names the
  error in its own order.

:func:`relayout` and :func:`upcast` cost a copy of the logits (float64 for
:func:`upcast`, 2x their float32 size, and the generic path's temporaries in float64;
the other arrays' copies where their layout is not already classes-last and
C-contiguous). Arrays of other libraries are left as they are, but for the gradients of
integer labels and of soft targets (:func:`wide_float32`: float64 in their own library,
where it offers float64); NumPy bfloat16 (``ml_dtypes``) logits are not taken by the losses at all.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import Form, check_form, check_logits, check_out
from .._sides import prepare
from .._xp import float64_twin, namespace, row_sum, to_float32
from ..errors import CrossentError, InputError
from ._batch import Batch, batch_for, loss_options, prepare_labels, prepare_weight

__all__ = [
    "BLOCK_BYTES",
    "Widened",
    "blocked",
    "narrow_result",
    "relayout",
    "upcast",
    "wide_float32",
]

BLOCK_BYTES = 384 << 10
"""The float64 size of the logits of one block of rows of :func:`blocked` (at least one
row): what bounds the extra memory of a large call, with the block's temporaries.

384 KiB: a block and the generic path's float64 temporaries (a few times the block) stay
near a core's L2 cache (2 MiB on the Xeon measured), and a row of 32000 classes (256
KiB) is a block. Measured on 32000, 4096 and 1000 classes (CPU time, interleaved): 2 MiB
blocks took about twice as long as 256-512 KiB ones for every family, 1 MiB ones too
for distillation; 128 KiB to 512 KiB were within the noise of each other (one row of
32000 classes the fastest for distillation), the per-call overhead growing below."""


_LOW = frozenset(np.dtype(t).char for t in (np.float16, np.float32))
"""The logits dtypes computed in float32 (characters, as ``_softmax`` compares them)."""
_RESULT = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64).char

# Set while a float16/float32 caller's call runs widened to float64 (:func:`narrow_result`).
_NARROW_RESULT: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "crossent_narrow_result", default=False
)


def narrow_result() -> bool:
    """Whether the call running is a float16/float32 caller's, made here in float64
    (:class:`Widened`, :class:`_Blocks`): its result is rounded to float32 at the end, so
    work that only moves a float64 result's last units can be left out (issue 13: the
    forward distillation gradient's rows formed again, ``_distill._cancelling_rows``,
    held some five blocks more of a 256 x 32000 float32 call)."""
    return _NARROW_RESULT.get()


@contextlib.contextmanager
def _narrow() -> Iterator[None]:
    token = _NARROW_RESULT.set(True)
    try:
        yield
    finally:
        _NARROW_RESULT.reset(token)


@dataclass
class Widened:
    """A call to make instead (``args``, ``kwargs``) and how to finish its result."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    logits: np.ndarray  # the caller's
    out: Any = None  # the caller's ``out`` buffer, taken out of ``kwargs``
    axis: int | None = None  # the caller's class axis when the call moved it last
    caller: tuple[tuple[Any, ...], dict[str, Any]] | None = None  # the call as given

    def run(self, public: Callable[..., Any]) -> Any:
        """The caller's result: ``public`` called on :attr:`args`, :attr:`kwargs`, finished
        (a loss given ``out``, which only gradients take: the ``TypeError`` it is due).

        An :class:`~crossent.errors.InputError` of a call whose class axis was moved
        last names an index of the moved copy; the call is then made again in the
        caller's layout, on float64 logits (their values; no widening again), so that
        the error names the caller's index, as a float64 caller's would."""
        try:
            with _narrow():
                result = public(*self.args, **self.kwargs)
        except InputError:
            if self.caller is None:
                raise
            args, kwargs = self.caller
            public(np.asarray(args[0], dtype=np.float64), *args[1:], **kwargs)
            raise  # (the caller's layout raised nothing: the moved call's error)
        if self.out is not None and not self._gradient(result):
            raise TypeError(f"{public.__name__}() got an unexpected keyword argument 'out'")
        return self.finish(result)

    def _gradient(self, result: Any) -> bool:
        """Whether ``result`` is a gradient (an array of the logits' rank)."""
        return isinstance(result, np.ndarray) and result.ndim == self.logits.ndim

    def finish(self, result: Any) -> Any:
        """The caller's result from the widened call's: float32, in the caller's layout,
        written into ``out`` when one was given."""
        if self.axis is not None and self._gradient(result):  # the classes back in place
            result = np.moveaxis(result, -1, self.axis)
        result = to_float32(result)
        if self.out is None:
            return result
        check_out(self.out, self.logits, dtype=_RESULT)
        self.out[...] = result
        return self.out


def _low_precision(args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The call's positional arrays where they compute in float32, else None: NumPy
    logits of float16 or float32 (native or not), and every other positional argument a
    NumPy array that is not of a wider float (integer labels, float16/float32 targets
    or teacher); anything else (another library, float64) keeps today's path.

    Python lists, tuples and numbers and NumPy scalars after such logits are read first
    as the call itself reads them (``crossent._xp.namespace``: ``numpy.asarray``), so
    that labels given as ``[0, 2]`` are widened as ``np.array([0, 2])`` are (a hostile
    pass, issue 13: they were not, and such calls computed in float32, up to 2e-6
    relative off, 5e-3 for poly-1 at ``epsilon=-1``). One that NumPy cannot read is
    left as given, for the call to name."""
    if not args or type(args[0]) is not np.ndarray or args[0].dtype.char not in _LOW:
        return None
    read = (args[0], *(_as_numpy(other) for other in args[1:]))
    for other in read[1:]:
        if type(other) is not np.ndarray:
            return None
        kind = other.dtype.kind
        if kind not in "iub" and not (kind == "f" and other.dtype.itemsize <= 4):
            return None
    return read


def _as_numpy(arg: Any) -> Any:
    """``arg`` as ``crossent._xp.namespace`` reads it beside NumPy logits where it is a
    Python list, tuple or number or a NumPy scalar; anything else, or what cannot be
    read so, as given."""
    if isinstance(arg, np.generic):
        return np.asarray(arg)
    if not isinstance(arg, list | tuple | int | float):
        return arg
    try:
        return namespace(arg, names=("",))[1][0]
    except CrossentError:
        return arg


def _class_axis(logits: np.ndarray, kwargs: dict[str, Any]) -> int | None:
    """The call's class axis, normalised, or None when it names none (the call's own
    checks then name the problem)."""
    axis = kwargs.get("axis", -1)
    ndim = logits.ndim
    if type(axis) is not int or not -ndim <= axis < ndim:
        return None
    return axis % ndim


def _classes_last(array: np.ndarray, axis: int, dtype: Any = None) -> np.ndarray:
    """A C-contiguous copy of ``array`` with ``axis`` last, in ``dtype`` (None: its own,
    in native byte order)."""
    moved = np.moveaxis(array, axis, -1)
    return np.ascontiguousarray(moved, dtype=dtype or moved.dtype.newbyteorder("="))


def _native(array: np.ndarray) -> np.ndarray:
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def _widened(args: tuple[Any, ...], kwargs: dict[str, Any], dtype: Any) -> Widened | None:
    """The call on C-contiguous, classes-last copies of the logits (in ``dtype``; None:
    theirs) and of the other float arrays of their shape (targets, a teacher), with
    ``axis=-1``; where the axis names none or the shapes differ (an error the call
    names), the logits converted to ``dtype`` (None: no call)."""
    logits = args[0]
    rest = dict(kwargs)
    out = rest.pop("out", None)
    axis = _class_axis(logits, kwargs)
    floats = [a.dtype.kind == "f" for a in args[1:]]
    misfit = any(f and a.shape != logits.shape for f, a in zip(floats, args[1:], strict=True))
    if axis is None or misfit:
        if dtype is None:
            return None
        return Widened((logits.astype(dtype), *args[1:]), rest, logits, out)
    others = [
        _classes_last(a, axis) if f else _native(a) for f, a in zip(floats, args[1:], strict=True)
    ]
    caller = None if axis == logits.ndim - 1 else (args, dict(rest))  # (no ``out``)
    rest["axis"] = -1
    return Widened((_classes_last(logits, axis, dtype), *others), rest, logits, out, axis, caller)


def upcast(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Widened | None:
    """The call on float64, C-contiguous, classes-last logits, when they are NumPy
    float16/float32 (see the module docstring); None otherwise."""
    read = _low_precision(args)
    return None if read is None else _widened(read, kwargs, np.float64)


_Widen = Callable[[tuple[Any, ...], dict[str, Any]], "Widened | _Blocks | None"]
"""A public function's ``widen``: the call to make instead of ``(args, kwargs)``."""


def relayout(fused: Callable[[np.ndarray, Any, dict[str, Any]], bool], wide: _Widen) -> _Widen:
    """The ``widen`` of the softmax cross-entropy (of integer labels or of soft targets)
    and its gradient.

    ``fused(logits, axis, kwargs)``: whether the call would take its own (fused or
    kernel) path on C-contiguous, native logits with the classes last under these
    keywords (no soft-capping, the axis an int naming an axis, not empty). Then the call
    on such a copy of the logits' dtype (:func:`_widened`, the targets copied so too);
    else, for float16/float32 NumPy logits, ``wide`` (:func:`blocked`'s float64 call,
    in blocks of rows when large). A call whose arrays are already so (C-contiguous,
    native, the classes last) gives None: it goes on as it is.
    """

    def widen(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Widened | _Blocks | None:
        read = _low_precision(args)
        if read is None or len(read) != 2 or "fused" in kwargs:
            return None  # (a call that does not fit: the public function names it)
        args = read
        logits, other = args
        axis = kwargs.get("axis", -1)
        if not fused(logits, axis, kwargs):
            return wide(args, kwargs)
        native = logits.dtype.isnative and other.dtype.isnative
        last = axis % logits.ndim == logits.ndim - 1
        laid_out = logits.flags.c_contiguous and (
            other.dtype.kind != "f" or other.flags.c_contiguous
        )
        if native and last and laid_out:
            return None  # the call's own path
        return _widened(args, kwargs, None)

    return widen


class _FallbackError(Exception):
    """A blocked call that the whole-array call answers instead (it names any error)."""


@dataclass
class _Blocks:
    """A large call of :func:`blocked`: its arrays as given (``other`` in native byte
    order), its keywords but ``out``, and its class axis (normalised)."""

    logits: np.ndarray
    other: np.ndarray
    kwargs: dict[str, Any]
    out: Any
    axis: int
    labelled: bool
    weighs: bool = False  # soft targets: each row weighs sum_c w_c t_c (``weight``)

    def run(self, public: Callable[..., Any]) -> Any:
        """The blocked call's result; on any error (or a call that does not fit), the
        whole-array call's (:func:`upcast`), which then names the error in its own order."""
        try:
            with _narrow():
                return self._blocks(public)
        except Exception:  # (raised again, in its own order, by the whole call)
            pass
        kwargs = self.kwargs if self.out is None else {**self.kwargs, "out": self.out}
        whole = _widened((self.logits, self.other), kwargs, np.float64)
        assert whole is not None
        return whole.run(public)

    def _batch(self, public: Callable[..., Any], shape: tuple[int, ...]) -> Batch:
        """The whole batch's example weights and reduction (no logits: ``shape`` only)."""
        get = self.kwargs.get
        reduction = get("reduction", _default(public, "reduction"))
        options = loss_options(reduction=reduction, base=get("base"))  # (poly-1: no base)
        values = np.broadcast_to(np.zeros((), np.float64), shape)  # a shape, not a copy
        if not self.labelled:
            omega = self._target_weights(shape) if self.weighs else None
            return batch_for(
                values, len(shape) - 1, values.dtype, options, xp=np, example_weight=omega
            )
        labels = prepare_labels(
            self.other,
            logits=self.logits,
            values=values,
            dtype=values.dtype,
            weight=get("weight"),
            ignore_index=get("ignore_index"),
            validate=get("validate", True),
            xp=np,
        )
        return batch_for(
            values,
            len(shape) - 1,
            values.dtype,
            options,
            xp=np,
            example_weight=None if labels.unweighted else labels.row_weight,
            active=labels.active,
        )

    def _target_weights(self, shape: tuple[int, ...]) -> np.ndarray | None:
        r"""Soft targets' example weights :math:`\omega_i = \sum_c w_c t_{ic}` (keepdims,
        float64) under the class weights ``weight``, as the whole call forms them (per
        row, from the float64 targets, a block of rows at a time); None without class
        weights (every row weighs 1)."""
        get = self.kwargs.get
        if get("weight") is None:
            return None
        classes = shape[-1]
        weight = prepare_weight(
            get("weight"),
            xp=np,
            classes=classes,
            dtype=np.float64,
            validate=get("validate", True),
            like=self.logits,
        )
        targets = np.moveaxis(self.other, self.axis, -1)
        omega = np.empty((*shape[:-1], 1), np.float64)
        for index in _row_blocks(shape[:-1], _block_rows(classes)):
            omega[index] = row_sum(weight * targets[index].astype(np.float64), xp=np)
        return omega

    def _blocks(self, public: Callable[..., Any]) -> Any:
        """The call block by block (:func:`_row_blocks`); raises where it does not fit.

        The labels and class weights are checked once, whole, by :meth:`_batch`; each
        block's values by :meth:`_check` (the whole call's checks, row by row); the
        block itself is then called with ``validate=False``: a block that fails a check
        raises, and :meth:`run` makes the whole call, which names the error.
        """
        logits = np.moveaxis(self.logits, self.axis, -1)
        other = np.moveaxis(self.other, self.axis, -1) if not self.labelled else self.other
        shape, classes = logits.shape[:-1], logits.shape[-1]
        batch = self._batch(public, logits.shape)
        # Each block's per-row losses in nats, or its gradient unscaled: the reduction
        # and the unit are the whole batch's, applied below as the whole call does.
        kwargs = {**self.kwargs, "axis": -1, "reduction": "none", "validate": False}
        if "base" in kwargs:
            kwargs["base"] = None
        check = self._check()
        rows: np.ndarray | None = None  # the per-row losses (float64, batch shape)
        grad: np.ndarray | None = None  # the gradient (float32, classes last)
        scale: Any = None
        for index in _row_blocks(shape, _block_rows(classes)):
            block = np.ascontiguousarray(logits[index], dtype=np.float64)
            within = block.shape[:-1]
            flat = block.reshape(-1, classes)
            if self.labelled:
                given = np.reshape(other[index], (-1,))
            else:
                given = np.ascontiguousarray(other[index]).reshape(-1, classes)
            given = check(flat, given)
            result = public(flat, given, **kwargs)
            if result.ndim == 2:  # a gradient (zero on ignored rows)
                if grad is None:
                    grad, scale = self._gradient(logits.shape), batch.gradient_scale()
                if scale != 1.0:
                    result = np.multiply(result, scale, out=result)
                grad[index] = result.reshape(block.shape)
            else:
                if self.out is not None:
                    raise _FallbackError  # a loss takes no ``out``: the whole call says so
                if rows is None:
                    rows = np.empty(shape, np.float64)
                rows[index] = result.reshape(within)
        if grad is not None:
            return self.out if self.out is not None else np.moveaxis(grad, -1, self.axis)
        assert rows is not None
        return to_float32(batch.reduce(rows))

    def _check(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """``check(block, given)``: a block's values checked as the whole call checks
        them (unless ``validate`` is off), raising where it would; returns the block's
        labels as they are, or its targets or teacher in float64 (as the whole call
        converts them: the float64 call's values).

        The whole call's data checks are row by row (each row's logits, targets or
        teacher; the labels and class weights are :meth:`_batch`'s): a block of rows
        passes them exactly when its rows do in the whole call.
        """
        validate = bool(self.kwargs.get("validate", True))
        if self.labelled:
            if not validate:
                return lambda block, given: given
            return lambda block, given: _checked(block, "logits", given)
        form: Form = "probs"
        if self.weighs:  # soft targets
            names = ("logits", "targets")
        else:  # distillation
            names = ("student_logits", "teacher")
            form = check_form(self.kwargs.get("teacher_form", "logits"), name="teacher_form")

        def check(block: np.ndarray, given: np.ndarray) -> np.ndarray:
            if validate:
                check_logits(block, name=names[0], xp=np, axis=1)
            side = prepare(
                given, name=names[1], form=form, axis=1, xp=np, dtype=np.float64, validate=validate
            )
            values: np.ndarray = side.values
            return values

        return check

    def _gradient(self, shape: tuple[int, ...]) -> np.ndarray:
        """Where the gradient goes, classes last: the caller's ``out`` (checked first,
        as the whole call would) or a new float32 array."""
        if self.out is None:
            return np.empty(shape, _RESULT)
        check_out(self.out, self.logits, dtype=_RESULT)
        return np.moveaxis(self.out, self.axis, -1)


def _checked(block: np.ndarray, name: str, given: np.ndarray) -> np.ndarray:
    """``given``, once ``block`` passed the logits' check (:func:`check_logits`)."""
    check_logits(block, name=name, xp=np, axis=1)
    return given


def _block_rows(classes: int) -> int:
    """The rows of a block: :data:`BLOCK_BYTES` of float64 rows of ``classes``, at least one."""
    return max(1, BLOCK_BYTES // (8 * classes))


def _default(public: Callable[..., Any], keyword: str) -> Any:
    """The default of ``public``'s ``keyword``."""
    return inspect.signature(public).parameters[keyword].default


def _row_blocks(shape: tuple[int, ...], rows: int) -> Iterator[tuple[Any, ...]]:
    """Indices of an array of batch ``shape`` (and any trailing axes) that cover it in C
    order, each of at most ``rows`` rows (or one row): slices along the last batch axis
    whose trailing batch axes' rows fit, each row of the leading ones in turn."""
    inner, split = 1, len(shape)
    while split > 0 and inner * shape[split - 1] <= rows:
        inner *= shape[split - 1]
        split -= 1
    if split == 0:
        yield ()
        return
    step, length = max(1, rows // inner), shape[split - 1]
    for prefix in np.ndindex(*shape[: split - 1]):
        for start in range(0, length, step):
            yield (*prefix, slice(start, min(start + step, length)))


def blocked(
    *, labelled: bool, weighs: bool = False
) -> Callable[[tuple[Any, ...], dict[str, Any]], Widened | _Blocks | None]:
    r"""The ``widen`` of focal, poly-1 and the softmax cross-entropy with ``soft_cap``
    (``labelled``: integer labels of the batch shape), of distillation (a teacher of the
    logits' shape) and of the soft-target softmax cross-entropy (``weighs``: targets of
    the logits' shape, each row weighing :math:`\sum_c w_c t_c` under the class weights
    ``weight``): :func:`upcast`, in blocks of rows where the float64 logits exceed
    :data:`BLOCK_BYTES`.

    Each block (about :data:`BLOCK_BYTES` of float64 logits, at least one row) is the
    same call on a float64, C-contiguous, classes-last copy of its rows (and of the
    teacher's or targets'), per row and unscaled (``reduction='none'``, nats); the
    whole batch's reduction, unit and gradient scale (from its labels, or its targets
    and class weights, alone: :meth:`_Blocks._batch`) then finish as the whole call
    does. Rows are independent, so these are the whole float64 call's bits, with extra
    memory bounded by the block (and its temporaries) rather than by the logits.
    """

    def widen(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Widened | _Blocks | None:
        read = _low_precision(args)
        if read is None:
            return None
        args = read
        logits = args[0]
        axis = _class_axis(logits, kwargs)
        if len(args) != 2 or axis is None or logits.size * 8 <= BLOCK_BYTES:
            return upcast(args, kwargs)
        other = _native(args[1])
        if labelled:
            batch_shape = logits.shape[:axis] + logits.shape[axis + 1 :]
            fits = other.dtype.kind in "iu" and other.shape == batch_shape
        else:
            fits = other.dtype.kind == "f" and other.shape == logits.shape
        if not fits or logits.size == logits.shape[axis]:  # (one row: no blocks to make)
            return upcast(args, kwargs)
        rest = dict(kwargs)
        out = rest.pop("out", None)
        return _Blocks(logits, other, rest, out, axis, labelled, weighs)

    return widen


@dataclass
class _WideCall:
    """A call of another library's float32 arrays made on float64 logits (``args``,
    ``kwargs``), its result rounded once to ``dtype`` (:func:`wide_float32`)."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    xp: Any
    dtype: Any

    def run(self, public: Callable[..., Any]) -> Any:
        return self.xp.astype(public(*self.args, **self.kwargs), self.dtype)


def wide_float32(
    args: tuple[Any, ...], kwargs: dict[str, Any], *, labelled: bool = False
) -> _WideCall | None:
    r"""The ``widen`` of the softmax cross-entropy's gradients for arrays of other
    libraries: the call on float64 logits, the gradient rounded once to float32, where
    the logits (and soft targets) are float16/bfloat16/float32 arrays of one library
    other than NumPy whose device offers float64 (:func:`crossent._xp.float64_twin`);
    None otherwise (the call as it is: in float32 for JAX without ``jax_enable_x64``).
    ``labelled``: the second array holds integer class labels, passed as they are (the
    call checks them, and names any of another library, as it does unwidened).

    Why: an entry :math:`c\,p_c - w_c\tilde t_c` cancels where the softmax meets the
    target (or the smoothed one-hot of a label), and :math:`p` in float32 is only good
    to a few float32 ulps of itself (the rounding of :math:`z'` times
    :math:`|z' - \mathrm{LSE}|`), so such entries lost up to thousands of float32 ulps
    (soft-capping, temperature, z-loss, label smoothing; about 1e-6 to 1e-3 relative).
    In float64 each entry is within a float32 ulp, as the fused NumPy kernel's. The
    targets keep their dtype (they promote to float64 exactly, and their checks keep
    their dtype's tolerance); a weight promotes as given. Traced arrays (``jax.jit``
    with x64, ``torch.compile``) are cast as any other; autograd flows through both
    casts.
    """
    if len(args) != 2:
        return None
    twin = float64_twin(args[0]) if labelled else float64_twin(*args)
    if twin is None:
        return None
    xp, wide = twin
    return _WideCall((xp.astype(args[0], wide), args[1]), dict(kwargs), xp, xp.float32)
