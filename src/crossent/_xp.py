"""Array-namespace plumbing: the only module that imports ``array_api_compat``.

Public functions infer the namespace once at their boundary with :func:`namespace`
and pass ``xp`` on, keyword-only, to private helpers.  Python scalars and lists are
NumPy input.  The precision policy lives here too:

* integer and boolean input is computed in the namespace's default floating dtype;
* float16 and bfloat16 are computed in float32, and results are float32;
* reductions accumulate in float64 wherever the device offers it (NumPy, PyTorch,
  CuPy, array-api-strict, JAX with ``jax_enable_x64``), and otherwise in the compute
  dtype, so sums over 10^5 float32 terms keep float32 accuracy.
"""

from __future__ import annotations

import contextlib
import math
import sys
from types import ModuleType
from typing import Any, TypeGuard

import array_api_compat
import numpy as np

from ._hints import non_numeric
from .errors import InputError, InputTypeError

__all__ = [
    "Array",
    "accumulation_dtype",
    "array_namespace",
    "astype",
    "astype_narrowing",
    "cannot_copy_to_host",
    "check_dense",
    "compute_dtype",
    "compute_dtype_weak",
    "detached",
    "device",
    "finalize",
    "finite_row_max",
    "float64_twin",
    "foreign_dtype_note",
    "full_like",
    "functorch_wrapped",
    "host_float64",
    "index_array",
    "is_jax_tracer",
    "is_numpy",
    "is_strict",
    "is_tensor",
    "log_softmax",
    "log_sum_exp_shifted",
    "logsumexp",
    "minus_row_max",
    "namespace",
    "narrowed",
    "numpy_errstate",
    "numpy_namespace",
    "numpy_sum_dtype",
    "one_entry",
    "ones_like",
    "reduce_sum",
    "reshape",
    "row_max",
    "row_sum",
    "settled",
    "size",
    "take_along_last",
    "to_float32",
    "to_numpy",
    "where_zero",
    "zeros_like",
]

Array = Any
"""Any Array-API array; the standard has no static type to name."""

_compat_numpy: ModuleType | None = None
"""``array_api_compat.numpy`` once :func:`numpy_namespace` has imported it."""

compat_numpy: ModuleType  # bound by numpy_namespace (before that: the module's __getattr__)


def numpy_namespace() -> ModuleType:
    """array-api-compat's NumPy namespace, ``compat_numpy``, imported at the first call.

    Its import runs ``from numpy import *``, which imports every NumPy submodule that
    NumPy itself loads lazily (``f2py``, ``testing`` with ``unittest``, ``ma``,
    ``random``, ``polynomial``, ...): about as long as ``import numpy``, which
    ``import crossent`` and a ``crossent --help`` need not pay (issue 13).  After the
    first call the module is also the global ``compat_numpy`` of this module, so
    ``_xp.compat_numpy`` reads a plain attribute; before it, the module's
    ``__getattr__`` imports it.
    """
    global _compat_numpy, compat_numpy
    if _compat_numpy is None:
        import array_api_compat.numpy as module

        # (``global``, not ``globals()[...]``: Dynamo cannot trace ``globals()``, so the
        # first tensor call of a process under ``torch.compile(fullgraph=True)`` failed)
        compat_numpy = _compat_numpy = module
    return _compat_numpy


def __getattr__(name: str) -> ModuleType:
    """``compat_numpy`` before its first use (:func:`numpy_namespace`)."""
    if name == "compat_numpy":
        return numpy_namespace()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def namespace(*args: object, names: tuple[str, ...]) -> tuple[ModuleType, list[Array]]:
    """Return the array namespace of ``args`` and the arguments as arrays of it.

    Arrays fix the namespace and device; Python scalars, lists and NumPy scalars are
    converted into it.  With no array among the arguments the namespace is NumPy's.

    Raises
    ------
    InputTypeError
        Arguments from two different array libraries, an argument that cannot be
        read as a numeric array, or a NumPy masked array with masked entries.
    """
    if 0 < len(args) <= 2 and type(args[0]) is np.ndarray and type(args[-1]) is np.ndarray:
        # one or two NumPy arrays: the commonest call
        return _compat_numpy or numpy_namespace(), list(args)
    if all(type(a) is np.ndarray or type(a) in _HOST_TYPES for a in args):
        # The common case, without array-api-compat's dispatch (issue 13: per-call
        # overhead): NumPy arrays need no conversion, lists and numbers become NumPy's.
        return _compat_numpy or numpy_namespace(), [
            a if type(a) is np.ndarray else _host_array(a, name=n)
            for a, n in zip(args, names, strict=True)
        ]
    for a, n in zip(args, names, strict=True):
        check_dense(a, name=n)
    torch = sys.modules.get("torch")
    if torch is not None and all(type(a) is torch.Tensor for a in args):
        # Tensors only: array-api-compat's torch namespace without its dispatch, whose
        # ``lru_cache``d helpers Dynamo warns of when it traces them (ten UserWarnings
        # on each torch.compile of a measure; errors under ``-W error``)
        import array_api_compat.torch as torch_xp

        return torch_xp, [index_array(a, xp=torch_xp) for a in args]
    args = tuple(_unmasked(a, name=n) for a, n in zip(args, names, strict=True))
    arrays = [a for a in args if array_api_compat.is_array_api_obj(a)]
    numpy_xp = numpy_namespace()  # before array-api-compat may import it: the same module
    try:
        xp = array_api_compat.array_namespace(*arrays) if arrays else numpy_xp
    except TypeError as exc:
        kinds = ", ".join(f"`{n}`: {type(a).__name__}" for n, a in zip(names, args, strict=True))
        raise InputTypeError(
            f"arguments must come from one array library; got {kinds}. "
            "Convert them to one library first."
        ) from exc
    where = device(arrays[0]) if arrays else None
    converted = []
    for name, arg in zip(names, args, strict=True):
        if array_api_compat.is_array_api_obj(arg):
            converted.append(index_array(arg, xp=xp))
            continue
        as_numpy = _host_array(arg, name=name)
        converted.append(xp.asarray(as_numpy, device=where) if where is not None else as_numpy)
    return xp, converted


def _unmasked(arg: object, *, name: str) -> object:
    """``arg``, a NumPy masked array without masked entries as a plain array.

    Masked entries had no one meaning: NumPy's reductions in the checks skipped them
    while the terms read the values under the mask (a KL counted them, an entropy did
    not; issue 13, hostile tests). What a masked class means is the caller's choice.

    Raises
    ------
    InputTypeError
        ``arg`` has masked entries.
    """
    if not isinstance(arg, np.ma.MaskedArray):
        return arg
    if np.ma.getmask(arg) is not np.ma.nomask and bool(np.ma.getmask(arg).any()):
        raise InputTypeError(
            f"`{name}` is a masked array with masked entries, whose meaning crossent does "
            "not guess: fill them (x.filled(0)) or drop them (x.compressed()) first"
        )
    return np.asarray(arg.data)


_SPARSE_FIXES = {"scipy": "toarray()", "jax": "todense()"}
"""The densifying method of the sparse arrays of SciPy (``scipy.sparse``) and JAX
(``jax.experimental.sparse``), by top-level package."""


def array_namespace(x: Array) -> ModuleType:
    """``x``'s array-API namespace (``array_api_compat``'s, whose ``argmax`` takes
    ``keepdims``, where a caller's bare ``torch`` module does not)."""
    ns: ModuleType = array_api_compat.array_namespace(x)
    return ns


def is_tensor(x: object) -> TypeGuard[Any]:
    """Whether ``x`` is a PyTorch tensor: ``array_api_compat.is_torch_array`` without its
    ``lru_cache``d class test, which Dynamo warns of each time it traces it."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def check_dense(arg: object, *, name: str) -> None:
    """Refuse an array whose entries are not all stored: a sparse SciPy matrix or array,
    a sparse JAX array (BCOO, BCSR), a PyTorch tensor of a sparse layout, a nested or a
    quantized tensor.

    NumPy read the SciPy and JAX ones as a 0-d object array (reported as "must be real
    numbers ... index (0, 0) is BCOO(float32[], nse=1)"), and PyTorch's operators stopped
    with "Could not run 'aten::amin' with arguments from the 'SparseCPU' backend" or an
    internal error (issue 13, hostile tests).

    Raises
    ------
    InputTypeError
        ``arg`` is one of those, with the call that makes it dense.
    """
    if is_tensor(arg):
        import torch  # torch is imported already: arg is a tensor

        if arg.layout != torch.strided:
            fix, what = f"{name}.to_dense()", f"a sparse tensor (layout {arg.layout})"
        elif arg.is_nested:
            fix, what = "one tensor per row length, or a padded one", "a nested tensor"
        elif arg.is_quantized:
            fix, what = f"{name}.dequantize()", f"a quantized tensor ({arg.dtype})"
        else:
            return
        raise InputTypeError(
            f"`{name}` is {what}; crossent computes on dense arrays: pass {fix} instead"
        )
    module = type(arg).__module__
    package = module.partition(".")[0]
    if package in _SPARSE_FIXES and ".sparse" in module:
        raise InputTypeError(
            f"`{name}` is a sparse array ({type(arg).__name__}); crossent computes on "
            f"dense arrays: pass {name}.{_SPARSE_FIXES[package]} instead"
        )


_HOST_TYPES = (list, tuple, float, int)
"""Python containers and numbers, which are NumPy input (``bool`` takes the long way)."""


def _ragged(arg: object, at: tuple[int, ...] = ()) -> str:
    """Where a nested list or tuple is ragged: ' whose rows differ in length: row 1 has
    3 entries, row 0 has 2 entries' ('' when it is not)."""
    if not isinstance(arg, list | tuple) or not arg:
        return ""
    sizes = [len(row) if isinstance(row, list | tuple) else None for row in arg]
    for i, size in enumerate(sizes):
        if size != sizes[0]:
            says = [
                "a number" if n is None else f"{n} entr{'y' if n == 1 else 'ies'}"
                for n in (size, sizes[0])
            ]
            rows = [(*at, k) if at else k for k in (i, 0)]
            return (
                f" whose rows differ in length: row {rows[0]} has {says[0]}, "
                f"row {rows[1]} has {says[1]}"
            )
    for i, row in enumerate(arg):
        found = _ragged(row, (*at, i))
        if found:
            return found
    return ""


def _host_array(arg: object, *, name: str) -> np.ndarray:
    """``arg`` (a Python scalar or sequence, or a NumPy scalar) as a real NumPy array,
    read exactly as ``numpy.asarray`` reads it: booleans stay booleans, so that a list
    is taken as the NumPy array of it is (a hostile pass: booleans had become int8, so
    ``softmax_cross_entropy(logits, [True, False])`` took the list as the classes 1 and
    0, while the same labels as a NumPy, PyTorch or JAX bool array were refused, naming
    ``labels.astype(np.int64)``; crossent never guesses the input form).

    Raises
    ------
    InputError
        A missing value (pandas ``NA``/``NaT``/``None`` of an extension array, a Series
        or a DataFrame), named with its index: NumPy reads ``Int64`` with ``NA`` as
        float64 (then reported as float labels) and ``boolean``/``string`` as object.
    InputTypeError
        ``arg`` is not an array of real numbers, or is a sequence that NumPy cannot
        read (a list of PyTorch tensors that require grad: a hostile pass had
        PyTorch's ``RuntimeError`` escape).
    """
    _check_missing(arg, name=name)
    try:
        as_numpy = np.asarray(arg)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(
            f"`{name}` must be array-like; got {type(arg).__name__}{_ragged(arg)}"
        ) from exc
    except RuntimeError as exc:  # PyTorch's, for a list of tensors that require grad
        raise InputTypeError(
            f"`{name}` is a {type(arg).__name__} that NumPy could not read ({exc}); a list "
            f"is NumPy input: pass one tensor (torch.stack({name})) instead"
        ) from exc
    if as_numpy.dtype.kind not in "biuf":
        wanted = "integer class ids" if name == "labels" else "real numbers"
        raise InputTypeError(
            non_numeric(
                as_numpy, name=name, wanted=wanted, got=f"an array of dtype {as_numpy.dtype}"
            )
            if as_numpy.dtype.kind in "USO"
            else f"`{name}` must be real numbers; got an array of dtype {as_numpy.dtype}"
        )
    return as_numpy


def _check_missing(arg: object, *, name: str) -> None:
    """Raise :class:`InputError` naming the first missing value of a pandas object of an
    extension dtype (``Int64``, ``Float64``, ``boolean``, ``string``: their ``isna()``);
    nothing for anything else (pandas is not imported). NumPy-backed columns keep their
    NaN, which the value checks name (and ``validate=False`` lets through)."""
    if not type(arg).__module__.startswith("pandas") or not hasattr(arg, "isna"):
        return
    dtypes = [arg.dtype] if hasattr(arg, "dtype") else list(getattr(arg, "dtypes", []))
    if all(isinstance(d, np.dtype) for d in dtypes):
        return
    try:
        missing = np.asarray(arg.isna(), dtype=bool)
    except Exception:  # (an object whose isna() is not a mask: left to np.asarray)
        return
    if not missing.any():
        return
    index = tuple(int(i) for i in np.argwhere(missing)[0])
    at = index[0] if len(index) == 1 else index
    dtype = "/".join(sorted({str(d) for d in dtypes}))
    raise InputError(
        f"`{name}` has a missing value (NA) at index {at} (pandas dtype {dtype}); drop "
        "those entries or fill them (x.fillna(...)) and pass a NumPy dtype "
        "(x.to_numpy(dtype=...)) first"
    )


_TORCH_NAMESPACES = frozenset({"torch", "array_api_compat.torch"})
"""The names of the namespaces that ``array_api_compat.is_torch_namespace`` accepts."""

_NUMPY_NAMESPACES = frozenset({"numpy", "array_api_compat.numpy"})
"""The names of the namespaces that ``array_api_compat.is_numpy_namespace`` accepts."""


def index_array(x: Array, *, xp: ModuleType) -> Array:
    """``x``, with any integer dtype widened to one that every indexing operation accepts.

    PyTorch indexes (``take_along_dim``, ``gather``, ``index_select``) only with int64,
    and its uint16/uint32/uint64 tensors lack most operators (comparisons, ``max``): an
    integer tensor of any other dtype is converted to int64.  uint64 values of 2**63 and
    more, which no class id reaches, saturate at 2**63 - 1 so that range checks still see
    them as too large.  Other namespaces index with any integer dtype; their arrays and
    every non-integer array are returned unchanged.
    """
    if xp.__name__ not in _TORCH_NAMESPACES:  # (is_torch_namespace, without its lru_cache)
        return x
    import torch  # torch is imported already: x is a tensor

    if x.dtype in (torch.int64, torch.bool) or x.dtype.is_floating_point or x.dtype.is_complex:
        return x
    widened = x.to(torch.int64)
    if x.dtype == torch.uint64:
        widened = torch.where(widened < 0, torch.iinfo(torch.int64).max, widened)
    return widened


def is_numpy(xp: ModuleType) -> bool:
    """Whether ``xp`` is NumPy (plain or through array-api-compat)."""
    return xp is _compat_numpy or xp.__name__ in _NUMPY_NAMESPACES


def compute_dtype(*arrays: Array, xp: ModuleType, names: tuple[str, ...]) -> Any:
    """The floating dtype in which to compute on ``arrays``.

    The promoted floating dtype of the arguments, at least float32; the namespace's
    default floating dtype when every argument is integer or boolean.

    Raises
    ------
    InputTypeError
        A complex or non-numeric argument.
    """
    if xp is (_compat_numpy or numpy_namespace()):
        return _numpy_compute_dtype(arrays, names=names)
    floating = []
    for name, a in zip(names, arrays, strict=True):
        if xp.isdtype(a.dtype, "real floating"):
            floating.append(a.dtype)
        elif not xp.isdtype(a.dtype, ("integral", "bool")):
            raise InputTypeError(f"`{name}` must be real numbers; got dtype {a.dtype}")
    if not floating:
        info = xp.__array_namespace_info__()
        return info.default_dtypes(device=device(arrays[0]))["real floating"]
    promoted = floating[0]
    for dtype in floating[1:]:
        if dtype != promoted:  # (array-api-compat's torch.result_type of bfloat16: a
            promoted = xp.result_type(promoted, dtype)  # graph break under torch.compile)
    if xp.finfo(promoted).bits < 32:
        return xp.float32
    return promoted


def compute_dtype_weak(
    given: tuple[object, ...], arrays: tuple[Array, ...], *, xp: ModuleType, names: tuple[str, ...]
) -> Any:
    """:func:`compute_dtype` of one call's ``arrays`` (the arguments ``given``, made
    arrays), a Python float weak: where some arguments are Python floats and others
    are not, the others decide, as NumPy 2 (NEP 50), PyTorch and the Array API standard
    promote (``np.float32(2) * 1.0`` is float32). A Python float is float64 (NumPy,
    array-api-strict, JAX with x64) or the default float once made an array, so taken
    with the others it made a float32 call float64.

    One or two arguments (the binary measures, the sigmoid losses) are looked at
    without building lists, and NumPy's dtype is looked up directly (issue 13:
    per-call overhead)."""
    if len(given) == 2:
        first, second = type(given[0]) is float, type(given[1]) is float
        if first is not second:
            held = 1 if first else 0
            arrays, names = (arrays[held],), (names[held],)
    elif len(given) > 2:
        strong = [i for i, arg in enumerate(given) if type(arg) is not float]
        if 0 < len(strong) < len(given):
            arrays = tuple(arrays[i] for i in strong)
            names = tuple(names[i] for i in strong)
    if xp is (_compat_numpy or numpy_namespace()):
        return _numpy_compute_dtype(arrays, names=names)
    return compute_dtype(*arrays, xp=xp, names=names)


def _numpy_compute_dtype(arrays: tuple[Array, ...], *, names: tuple[str, ...]) -> Any:
    """:func:`compute_dtype` for NumPy arrays, from the dtype kinds (issue 13: overhead)."""
    dtypes = (arrays[0].dtype,) if len(arrays) == 1 else tuple([a.dtype for a in arrays])
    known = _NUMPY_COMPUTE_DTYPES.get(dtypes)
    if known is not None:
        return known
    floating = []
    for name, a in zip(names, arrays, strict=True):
        kind = a.dtype.kind
        if kind == "f":
            floating.append(a.dtype)
        elif kind not in "iub":
            note = foreign_dtype_note(name, a.dtype)
            if note is not None:
                raise InputTypeError(f"`{name}` has {note}")
            if kind in "USO":
                raise InputTypeError(
                    non_numeric(a, name=name, wanted="real numbers", got=f"dtype {a.dtype}")
                )
            raise InputTypeError(f"`{name}` must be real numbers; got dtype {a.dtype}")
    if not floating:
        _NUMPY_COMPUTE_DTYPES[dtypes] = np.dtype(np.float64)
        return np.dtype(np.float64)
    promoted = np.result_type(*floating)
    result = np.float32 if promoted.itemsize < 4 else promoted
    _NUMPY_COMPUTE_DTYPES[dtypes] = result
    return result


def foreign_dtype_note(name: str, dtype: Any) -> str | None:
    """What to say of a NumPy array whose dtype NumPy only stores: ``ml_dtypes``' bfloat16,
    float8 and int4 types (kind ``"V"``, no fields), which NumPy does not compute in;
    None for any other dtype.

    The rule, everywhere (losses, measures, evaluation): such arrays are refused with this
    note, since NumPy's own ufuncs would compute in that dtype or not at all; widened to
    float32 by the caller they are exact.  PyTorch bfloat16 tensors (and JAX bfloat16
    arrays, whose dtype is this one) are taken and computed in float32 (issue 13).
    """
    if not isinstance(dtype, np.dtype) or dtype.kind != "V" or dtype.fields is not None:
        return None
    return (
        f"dtype {dtype} (ml_dtypes), which NumPy cannot compute in; widen it first: "
        f"{name}.astype(numpy.float32)"
    )


_NUMPY_COMPUTE_DTYPES: dict[tuple[np.dtype, ...], Any] = {}
"""Results of :func:`_numpy_compute_dtype` by argument dtypes (a few dozen at most)."""


def accumulation_dtype(dtype: Any, *, xp: ModuleType, device: Any) -> Any:
    """float64 where the device supports it, else ``dtype``."""
    if xp is (_compat_numpy or numpy_namespace()):
        return np.float64
    supported = xp.__array_namespace_info__().dtypes(device=device, kind="real floating")
    return supported.get("float64", dtype)


def float64_twin(*arrays: Any) -> tuple[ModuleType, Any] | None:
    """The namespace of ``arrays`` and its float64 dtype, where they are arrays of one
    library other than NumPy, each of a real floating dtype of at most 32 bits (so
    computed in float32), on a device that offers float64 (PyTorch CPU/CUDA,
    array-api-strict, JAX with ``jax_enable_x64``, CuPy); else None (NumPy, a list,
    float64 already, mixed libraries, integers, JAX without x64, Apple's MPS).

    The float32 gradients of the generic path are computed in this dtype and rounded
    once (:func:`crossent.losses._widen.wide_float32`)."""
    if not arrays or any(
        type(a) is np.ndarray or not array_api_compat.is_array_api_obj(a) for a in arrays
    ):
        return None
    try:
        xp = array_api_compat.array_namespace(*arrays)
        if is_numpy(xp) or not all(
            xp.isdtype(a.dtype, "real floating") and xp.finfo(a.dtype).bits <= 32 for a in arrays
        ):
            return None
        wide = accumulation_dtype(None, xp=xp, device=device(arrays[0]))
    except (TypeError, ValueError, AttributeError):
        return None  # (the call itself names what is wrong)
    return None if wide is None else (xp, wide)


def numpy_sum_dtype(dtype: np.dtype) -> Any:
    """The dtype in which NumPy sums of ``dtype`` accumulate: float64, or a wider long
    double itself (in float64 its sums were rounded to float64 and could overflow: issue
    13, hostile tests)."""
    return np.float64 if dtype.itemsize <= 8 else dtype


def zeros_like(x: Array, *, xp: ModuleType) -> Array:
    """``xp.zeros_like(x)``; NumPy's own for a NumPy array (array-api-compat's wrapper of
    the ``*_like`` functions and ``astype`` costs microseconds a call; issue 13)."""
    return np.zeros_like(x) if type(x) is np.ndarray else xp.zeros_like(x)


def ones_like(x: Array, *, xp: ModuleType) -> Array:
    """``xp.ones_like(x)``, NumPy's own for a NumPy array."""
    return np.ones_like(x) if type(x) is np.ndarray else xp.ones_like(x)


def full_like(x: Array, value: float, *, xp: ModuleType) -> Array:
    """``xp.full_like(x, value)``, NumPy's own for a NumPy array."""
    return np.full_like(x, value) if type(x) is np.ndarray else xp.full_like(x, value)


def astype(x: Array, dtype: Any, *, xp: ModuleType) -> Array:
    """``xp.astype(x, dtype)`` (a copy), NumPy's own for a NumPy array."""
    return x.astype(dtype) if type(x) is np.ndarray else xp.astype(x, dtype)


def where_zero(mask: Array, x: Array, *, xp: ModuleType) -> Array:
    """``x`` where ``mask``, else 0 (``xp.where(mask, x, xp.zeros_like(x))``); for NumPy
    a scalar 0, without building the zeros (issue 13: per-call overhead)."""
    if type(x) is np.ndarray:
        return np.where(mask, x, 0)
    return xp.where(mask, x, xp.zeros_like(x))


def row_max(x: Array, *, xp: ModuleType) -> Array:
    """``xp.max(x, axis=-1, keepdims=True)``; for NumPy the ufunc's reduce, without
    ``np.max``'s Python dispatch."""
    if type(x) is np.ndarray:
        return np.maximum.reduce(x, axis=-1, keepdims=True)
    return xp.max(x, axis=-1, keepdims=True)


def row_sum(x: Array, *, xp: ModuleType) -> Array:
    """``xp.sum(x, axis=-1, keepdims=True)`` (in ``x``'s dtype); NumPy's ufunc directly."""
    if type(x) is np.ndarray:
        return np.add.reduce(x, axis=-1, keepdims=True)
    return xp.sum(x, axis=-1, keepdims=True)


def take_along_last(x: Array, index: Array, *, xp: ModuleType) -> Array:
    """``xp.take_along_axis(x, index, axis=-1)`` for ``index`` of shape ``(*batch, 1)``
    and ``x`` of shape ``(*batch, classes)``: one entry per row. For NumPy one fancy
    index over the rows (``np.take_along_axis`` builds index grids: 10 us a call)."""
    if type(x) is np.ndarray and x.shape[:-1] == index.shape[:-1] and index.shape[-1:] == (1,):
        if x.shape[0] == 1 and x.ndim == 2:
            # One row: one index array on the class axis (the same entries, and the same
            # IndexError for a label that is not a class; issue 13: per-call overhead).
            return x[:, index[0]]
        if x.ndim == 2:
            return x[np.arange(x.shape[0])[:, None], index]
        flat = index.reshape(-1)
        rows = x.reshape(-1, x.shape[-1])
        return rows[np.arange(flat.size), flat].reshape(index.shape)
    return xp.take_along_axis(x, index, axis=-1)


def one_entry(x: Array) -> Array:
    """``x``'s one entry as a NumPy scalar of its dtype when ``x`` is a NumPy array of one
    entry, else ``x``: as an operand of a row's arithmetic it gives the same values and
    shape, and broadcasts for less (issue 13: per-call overhead)."""
    return x.reshape(-1)[0] if type(x) is np.ndarray and x.size == 1 else x


def reshape(x: Array, shape: tuple[int, ...], *, xp: ModuleType) -> Array:
    """``xp.reshape(x, shape)``; the method for NumPy (``np.reshape`` dispatches in Python)."""
    return x.reshape(shape) if type(x) is np.ndarray else xp.reshape(x, shape)


def reduce_sum(terms: Array, *, xp: ModuleType, out_dtype: Any) -> Array:
    """Sum over the last axis, accumulating in float64 where available.

    NumPy and PyTorch sum pairwise along a contiguous axis, but not along every
    axis and not on every device; accumulating in float64 makes the float32 result
    correctly rounded for any practical number of terms, whatever the layout.
    NumPy long double terms are summed in long double (in float64 a sum beyond
    float64's range was +inf: issue 13, hostile tests).
    """
    if type(terms) is np.ndarray:
        # NumPy, without the namespace's dispatch (issue 13: per-call overhead).
        total = np.add.reduce(terms, axis=-1, dtype=numpy_sum_dtype(terms.dtype))
        return narrowed(total, out_dtype) if total.dtype != out_dtype else total
    acc = accumulation_dtype(out_dtype, xp=xp, device=device(terms))
    total = xp.sum(terms, axis=-1, dtype=acc)
    return total if total.dtype == out_dtype else astype_narrowing(total, out_dtype, xp=xp)


def _quiet_log1p(x: np.ndarray) -> np.ndarray:
    """``np.log1p`` where ``x`` may hold -1 (the sum of a row entirely ``-inf``): ``-inf``
    without NumPy's "divide by zero encountered in log1p", which under ``-W error`` was
    raised instead of the caller's own message (a hostile pass:
    ``entropy([-inf, -inf], p_form="log_probs")``)."""
    with np.errstate(divide="ignore"):
        return np.log1p(x)


def log_sum_exp_shifted(shifted: Array, *, xp: ModuleType) -> Array:
    r"""``log(sum(exp(shifted)))`` over the last axis (kept) for rows whose maximum is 0.

    .. math:: \ell = \operatorname{log1p}\Big(\sum_{c:\,\sigma_c < 0} e^{\sigma_c}
              + (n_0 - 1)\Big), \qquad n_0 = \#\{c : \sigma_c = 0\}

    The maximal terms are exactly 1 and are counted, not added, so that a row whose
    other terms sum to :math:`\delta < \epsilon` gets :math:`\ell = \delta`, not the
    :math:`\log(1 + \delta) = 0` of the plain formula (which loses the whole
    log-partition of a near-deterministic softmax). Rows entirely ``-inf`` give ``-inf``.
    """
    at_max = shifted == 0
    if type(shifted) is np.ndarray:
        # Fewer, in-place ufunc calls (issue 13: per-call overhead): exp(0) is exactly
        # 1, so subtracting the mask zeroes the maximal terms as the ``where`` below does.
        terms = np.exp(shifted)
        if shifted.ndim == 1 or shifted.size == shifted.shape[-1]:
            # One row: zero its maximal terms by the mask and count its ties without a
            # reduction (``rest + 0`` is ``rest``: a sum of terms >= +0.0 is never -0.0)
            terms[at_max] = 0.0
            rest = np.add.reduce(terms, -1, keepdims=True)
            ties = int(np.count_nonzero(at_max))  # a Python int keeps the dtype
            if ties == 0:  # entirely -inf (or NaN): log1p(-1) is -inf, without a warning
                return _quiet_log1p(rest - 1)
            return np.log1p(rest if ties == 1 else rest + (ties - 1))
        np.subtract(terms, at_max, out=terms)
        rest = np.add.reduce(terms, -1, keepdims=True)
        ties_per_row = np.add.reduce(at_max, -1, shifted.dtype, keepdims=True)
        if not ties_per_row.all():  # a row entirely -inf (or NaN), as above
            return _quiet_log1p(rest + (ties_per_row - 1))
        return np.log1p(rest + (ties_per_row - 1))
    # a 0-d zero: no array of zeros of the rows' size (issue 13 follow-up: one pass
    # over it of six; the same numbers)
    zero = xp.zeros((), dtype=shifted.dtype, device=device(shifted))
    terms = xp.where(at_max, zero, xp.exp(shifted))
    ties = astype(at_max, shifted.dtype, xp=xp)
    rest = xp.sum(terms, axis=-1, keepdims=True)
    ties = xp.sum(ties, axis=-1, keepdims=True)
    with numpy_errstate(rest, xp, divide="ignore"):  # log1p(-1), as above
        return xp.log1p(rest + (ties - 1))


def logsumexp(x: Array, *, xp: ModuleType) -> Array:
    r"""``log(sum(exp(x)))`` over the last axis, keeping it, computed stably.

    .. math:: \operatorname{LSE}(x) = m + \log \sum_i e^{x_i - m}, \quad m = \max_i x_i

    Shifting by the row maximum keeps every exponent <= 0, so nothing overflows and
    the largest term is exactly 1; :func:`log_sum_exp_shifted` keeps the digits of the
    others. Rows that are entirely ``-inf`` give ``-inf``.
    """
    m = finite_row_max(x, xp=xp)
    return log_sum_exp_shifted(minus_row_max(x, m, xp=xp), xp=xp) + m


def is_strict(xp: ModuleType | None) -> bool:
    """Whether ``xp`` is array-api-strict, which computes with NumPy and so warns as
    NumPy does; a test of the module's name, which ``torch.compile`` traces (it cannot
    trace ``np.errstate``, so the other namespaces never enter one:
    :func:`numpy_errstate`)."""
    return getattr(xp, "__name__", "").startswith("array_api_strict")


def numpy_errstate(
    value: object, xp: ModuleType | None, **settings: str
) -> contextlib.AbstractContextManager[Any]:
    """``np.errstate(**settings)`` where ``value`` is computed by NumPy, else a context
    that does nothing: the one test of where NumPy's floating-point warnings can arise
    in code that takes any namespace.

    NumPy computes ``value`` where it is a NumPy array or scalar (``np.ndarray``,
    ``np.generic``) and where ``xp`` is array-api-strict (:func:`is_strict`: NumPy
    underneath, whose warnings its arrays give). Other libraries do not warn, and under
    ``torch.compile(fullgraph=True)`` Dynamo cannot trace ``np.errstate`` (it traces
    this function: ``isinstance`` of a tuple, not of ``np.ndarray | np.generic``, and
    ``contextlib.nullcontext``). Pure-NumPy code keeps ``np.errstate`` itself.
    """
    if isinstance(value, (np.ndarray, np.generic)) or is_strict(xp):
        return np.errstate(**settings)  # type: ignore[arg-type]
    return contextlib.nullcontext()


def minus_row_max(x: Array, m: Array, *, xp: ModuleType | None = None) -> Array:
    r"""``x - m``, the scores shifted by their row maximum, each :math:`\le 0`.

    A difference beyond the float range (logits of :math:`\pm 10^{308}` in one row) is
    ``-inf`` on purpose: its ``exp`` is the 0 that the class's probability rounds to, so
    NumPy's overflow warning is silenced for this subtraction only (issue 13). So is its
    "invalid value" warning: ``-inf - -inf`` of a row that is entirely ``-inf`` (or
    ``inf - inf`` beside a ``+inf``) is the NaN that such a row, no distribution, gets
    where ``validate=False`` let it through (a hostile pass: the losses warned there).
    The same for array-api-strict arrays where ``xp`` says so (:func:`numpy_errstate`).
    """
    with numpy_errstate(x, xp, over="ignore", invalid="ignore"):
        return x - m


def finite_row_max(x: Array, *, xp: ModuleType) -> Array:
    """The maximum over the last axis (kept), 0 where it is not finite."""
    if type(x) is np.ndarray:
        m = np.maximum.reduce(x, -1, keepdims=True)
        if m.size == 1:
            return m if math.isfinite(m.item()) else np.where(np.isfinite(m), m, 0.0)
        # Whether every maximum is finite, from one number: a sum that overflows (or
        # meets inf - inf) only sends finite maxima the long way, which returns them
        # unchanged, so its warning is not for the caller (issue 13).
        with np.errstate(over="ignore", invalid="ignore"):
            total = np.add.reduce(m, None)
        if math.isfinite(total):
            return m
        return np.where(np.isfinite(m), m, 0.0)
    m = xp.max(x, axis=-1, keepdims=True)
    return xp.where(xp.isfinite(m), m, zeros_like(m, xp=xp))


_NO_OVERFLOW_SHIFT = 2.0**102
"""A row maximum below this cannot make ``x - max`` overflow in float32 or float64: with
``x >= -MAX`` the difference is at least ``-MAX - 2**102``, which rounds to ``-MAX`` (half
an ulp of float32's MAX is ``2**103``, of float64's ``2**970``)."""


def log_softmax(x: Array, *, xp: ModuleType) -> Array:
    """Log-probabilities from logits over the last axis: ``(x - m) - ell``.

    Subtracting the maximum first and the (small) log-partition second keeps
    ``log p`` of a near-certain class at ``-ell`` instead of rounding
    ``x - (m + ell)`` to 0.
    """
    if type(x) is np.ndarray and x.ndim == 1:
        # One row: its maximum and log-partition as NumPy scalars, which broadcast for
        # less than one-element arrays do (issue 13: per-call overhead); in place, as
        # ``shifted`` is our own temporary.
        m = np.maximum.reduce(x)
        if not math.isfinite(m):  # -inf - -inf, inf - inf: the row's NaN, quietly
            shifted = x - 0.0
            with np.errstate(invalid="ignore"):
                return np.subtract(shifted, log_sum_exp_shifted(shifted, xp=xp)[0], out=shifted)
        shifted = x - m if m < _NO_OVERFLOW_SHIFT else minus_row_max(x, m)
        return np.subtract(shifted, log_sum_exp_shifted(shifted, xp=xp)[0], out=shifted)
    m = finite_row_max(x, xp=xp)
    shifted = minus_row_max(x, m, xp=xp)
    if type(shifted) is np.ndarray:
        ell = log_sum_exp_shifted(shifted, xp=xp)
        # a row entirely -inf (or with a +inf) gives -inf - -inf (inf - inf): NaN, the
        # value of such a row where ``validate=False`` let it through, without NumPy's
        # warning (a hostile pass: the losses warned there, an error under -W error)
        with np.errstate(invalid="ignore"):
            return np.subtract(shifted, ell, out=shifted)
    ell = log_sum_exp_shifted(shifted, xp=xp)
    with numpy_errstate(shifted, xp, invalid="ignore"):  # array-api-strict (as above)
        return shifted - ell


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def narrowed(x: Any, dtype: Any) -> Any:
    """NumPy ``x`` (an array or a scalar) cast to ``dtype``, a value past its range
    ``+-inf`` without NumPy's "overflow encountered in cast" warning (a hostile pass:
    float32 logits of 3e38 have a true loss of 6e38, whose float64 value the float32
    result rounds to ``inf``; the warning was an error under ``-W error``). A 0-d
    value within float32's range is cast as it is (no ``np.errstate``: per-call
    overhead, issue 13)."""
    if x.ndim == 0 and -_FLOAT32_MAX <= x <= _FLOAT32_MAX:
        return x.astype(dtype)
    with numpy_errstate(x, None, over="ignore"):
        return x.astype(dtype)


def astype_narrowing(x: Array, dtype: Any, *, xp: ModuleType) -> Array:
    """``x`` cast to a narrower ``dtype`` of any namespace, a value past its range
    ``+-inf`` without NumPy's "overflow encountered in cast" warning: a NumPy array by
    :func:`narrowed`, array-api-strict's (NumPy underneath) under :func:`numpy_errstate`,
    any other as ``xp.astype`` casts it."""
    if type(x) is np.ndarray:
        return narrowed(x, dtype)
    with numpy_errstate(x, xp, over="ignore"):
        return astype(x, dtype, xp=xp)


def to_float32(result: Any) -> Any:
    """A NumPy float64 ``result`` computed for float16/float32 inputs, rounded once to
    float32 (issue 13: the losses and the measures compute such inputs in float64):
    an array, a NumPy or Python float, or a named tuple of them (``LossParts``, the
    cross-entropy decomposition) each so; float32 arrays and anything else (None) as
    they are."""
    if type(result) is np.float64:  # (the commonest first: a small call's mean or sum)
        return (
            np.float32(result)
            if -_FLOAT32_MAX <= result <= _FLOAT32_MAX
            else narrowed(result, np.float32)
        )
    if isinstance(result, tuple):
        return type(result)(*map(to_float32, result))
    if isinstance(result, np.ndarray):
        return result if result.dtype == np.float32 else narrowed(result, np.float32)
    if isinstance(result, (np.floating, float)):
        return narrowed(np.asarray(result), np.float32)[()]
    return result


def finalize(x: Array, *, xp: ModuleType, log_base: float | None) -> Array:
    """Convert nats to the requested unit and return a NumPy scalar for 0-d NumPy results.

    Adding 0.0 turns the ``-0.0`` of a sum such as ``-(1 * log 1)`` into ``+0.0``.
    A 0-d result of another library (a reduced loss) takes both as 0-d arrays of its
    dtype (the same values): PyTorch's ``torch.func.jvp``/``jacfwd`` gave ``x + 0.0`` of
    a 0-d float32 tensor a float64 tangent (issue 13 follow-up: a float64 Jacobian of a
    float32 ``distillation_loss``). The unit's divisor so only where it rounds as the
    Python float does (float32, float64; float16 divides by it in float32).
    """
    numpy = is_numpy(xp)
    if numpy or x.ndim:
        if log_base is not None:
            with numpy_errstate(x, xp, over="ignore"):  # (nats past the range in bits: inf)
                x = x / log_base
        x = x + 0.0
        return x[()] if numpy and x.ndim == 0 else x
    if log_base is not None:
        exact = x.dtype in (xp.float32, xp.float64)
        with numpy_errstate(x, xp, over="ignore"):
            x = x / (xp.asarray(log_base, dtype=x.dtype, device=device(x)) if exact else log_base)
    return x + xp.zeros_like(x)


def device(x: Array) -> Any:
    """The device of ``x`` (a tensor's ``device`` without array-api-compat's dispatch
    over the libraries, which a small torch call paid seven times: issue 13)."""
    if type(x) is np.ndarray:
        return "cpu"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return x.device
    return array_api_compat.device(x)


def size(x: Array) -> int:
    """Number of elements of ``x`` (``torch.Tensor.size`` is a method, not the standard's)."""
    if type(x) is np.ndarray:
        return x.size
    return int(array_api_compat.size(x))


def detached(x: Any, *, name: str) -> Any:
    """``x`` ready to be read on the host, in its own library and dtype.

    A PyTorch tensor is detached from the autograd graph (evaluating it needs no
    gradient); anything else is returned unchanged.

    Raises
    ------
    InputTypeError
        A meta tensor, which has a shape but no values.
    InputError
        A tensor on an accelerator (evaluation reads it on the host).
    """
    if type(x) is np.ndarray or not is_tensor(x):
        return x
    if x.device.type == "meta":
        raise InputTypeError(
            f"`{name}` is a meta tensor, which has a shape but no values to evaluate"
        )
    if x.device.type != "cpu":
        raise InputError(
            f"`{name}` is on device {x.device}, and evaluation reads it on the host; move it "
            "to the CPU first (x.cpu())"
        )
    return x.detach()


def host_float64(x: Any, *, name: str) -> np.ndarray | None:
    """A float64 NumPy copy of ``x`` in host memory, for a rare-row pass done in NumPy:
    a PyTorch tensor is detached and copied from its device first (:func:`to_numpy`
    reads only host arrays). ``None`` for an array that has no host copy
    (:func:`cannot_copy_to_host`: traced by JAX, wrapped by ``torch.func``, fake or
    meta): the caller keeps the values of its own namespace.

    Raises
    ------
    InputError
        ``x`` cannot be read on the host.
    """
    if cannot_copy_to_host(x):
        return None
    if is_tensor(x):
        x = x.detach().cpu()
    return np.array(to_numpy(x, name=name), dtype=np.float64)


_NUMPY_VALUES = (np.ndarray, np.generic)
"""NumPy arrays and scalars: host values, never traced (their MRO is not walked: the
per-call overhead of a small loss, whose reduced value is a NumPy scalar)."""

#: Tensor subclasses that trace PyTorch programs (``torch.export``, AOTAutograd, the
#: fake implementations of custom ops): shapes and dtypes, no values to copy.
_VALUELESS_TENSORS = frozenset({"FakeTensor", "FunctionalTensor"})


def cannot_copy_to_host(x: object) -> bool:
    """Whether ``x`` is an array whose values cannot be copied to the host, so that a
    rare-row pass in NumPy float64 (:func:`host_float64`, the far-row screens of the
    losses and measures) must leave it to its own library: an array traced by JAX
    (:func:`is_jax_tracer`: ``jax.jit``, ``jax.grad``, ``jax.vmap``), a tensor of a
    ``torch.func`` transform (:func:`functorch_wrapped`: ``grad``, ``vmap``, ``jacrev``),
    a fake or functional tensor (``torch.export``, AOTAutograd) or a meta tensor.

    Code traced by ``torch.compile`` (Dynamo) is not among them: a read of a tensor's
    values there breaks the graph, and the rest of the call runs on real tensors.
    False for NumPy arrays and scalars and anything that is not an array."""
    if isinstance(x, _NUMPY_VALUES):  # (first: a reduced loss is a NumPy scalar)
        return False
    if is_jax_tracer(x):
        return True
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(x, torch.Tensor):
        return False
    if x.device.type == "meta" or any(c.__name__ in _VALUELESS_TENSORS for c in type(x).__mro__):
        return True
    # (Dynamo: no functorch query traced; a read there breaks the graph, as said above)
    return not torch.compiler.is_compiling() and functorch_wrapped(x)


def functorch_wrapped(x: object) -> bool:
    """Whether ``x`` is a tensor of a ``torch.func`` transform: ``grad``'s (or ``jvp``'s)
    wrapper or ``vmap``'s batched tensor. Neither has a host copy: NumPy reads the
    wrapper's storage, which it has not.

    PyTorch has no public query for it: ``torch._C._functorch.is_functorch_wrapped_tensor``
    and ``is_batchedtensor`` are the functions ``torch.func`` itself asks (read-only
    queries, no dispatch-key change), and this is the one place of :mod:`crossent` that
    asks them of a tensor (``crossent.torch._arguments.examples`` unwraps by them)."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(x, torch.Tensor):
        return False
    functorch = getattr(torch._C, "_functorch", None)
    if functorch is None:  # pragma: no cover (PyTorch before torch.func)
        return False
    return bool(functorch.is_functorch_wrapped_tensor(x) or functorch.is_batchedtensor(x))


def settled(*arrays: Any) -> tuple[Any, ...]:
    """``arrays`` as they are, except that where one is traced by JAX they pass an
    ``optimization_barrier``: XLA fuses a product into each of its uses and LLVM
    contracts it there with an addition (an FMA), so that one value is two; an
    error-free transformation (TwoSum, Dekker's product) then is not (branch jaxexact1:
    ``jax.jit`` of the double-double exp was 1e-17 off, its eager twin 1e-33)."""
    if any(is_jax_tracer(a) for a in arrays):
        import jax  # (loaded: a tracer)

        return tuple(jax.lax.optimization_barrier(arrays))
    return arrays


def is_jax_tracer(x: object) -> bool:
    """Whether ``x`` is an array traced by JAX. Under ``jax.grad`` (outside ``jax.jit``)
    its ``bool`` has a value, so code that branches on its values runs, but NumPy cannot
    copy it to the host (:func:`host_float64`), nor may a pass that reads its values
    exactly (``nextafter``, which JAX cannot differentiate) run on it."""
    return not isinstance(x, _NUMPY_VALUES) and any(c.__name__ == "Tracer" for c in type(x).__mro__)


def to_numpy(x: Any, *, name: str) -> np.ndarray:
    """``x`` as a NumPy array, without a copy where the library allows.

    bfloat16 tensors and JAX arrays become float32 (exactly: NumPy has no bfloat16, and
    a JAX array would arrive as ``ml_dtypes``' bfloat16, which NumPy cannot compute in);
    arrays that ``numpy.asarray`` cannot read are tried through DLPack.  A NumPy array
    of ``ml_dtypes``' bfloat16 is returned as is (the callers refuse it).

    Raises
    ------
    InputError
        ``x`` cannot be read on the host, or is a pandas object with a missing value.
    InputTypeError
        ``x`` is an array traced by JAX.
    """
    if type(x) is np.ndarray:  # (the commonest call: nothing to detach or convert)
        return x
    _check_missing(x, name=name)
    x = detached(x, name=name)
    if is_tensor(x) and str(x.dtype) == "torch.bfloat16":
        import torch  # imported already: x is a tensor

        x = x.to(torch.float32)
    if isinstance(x, np.ndarray):
        return x
    try:
        host = np.asarray(x)
    except Exception as first:
        if is_jax_tracer(x):
            raise InputTypeError(
                f"`{name}` is an array traced by jax.jit, jax.vmap or jax.grad "
                f"({type(x).__name__}), which has no values to read on the host, and this "
                "function reads them there; call it outside the traced function (on "
                "concrete arrays)"
            ) from first
        try:
            return np.from_dlpack(x)
        except Exception as exc:
            raise InputError(
                f"`{name}` ({type(x).__name__}) could not be read as a host array; move it "
                "to the CPU first"
            ) from exc
    if host.dtype.kind == "V" and host.dtype.name == "bfloat16":  # a JAX bfloat16 array
        return host.astype(np.float32)  # exact: bfloat16 is float32's upper half
    return host
