r"""Where NumPy's float64 exp, log, log1p and expm1 loops are (issue 13).

:func:`numpy_loops` gives the addresses of the inner loops NumPy runs for np.exp,
np.log, np.log1p and np.expm1 of a float64 array, which compiled code
calls (``_small_loops_numba.apply``) to give NumPy's values bit for bit in one compiled
call. It reads them from the ufunc objects' public C structure (``PyUFuncObject`` of
NumPy's ``ufuncobject.h``: ``nin``, ``nout``, ``nargs``, ``identity``, then the
pointers ``functions`` and ``data``, ``ntypes``, ``name`` and ``types``), where NumPy's
start-up dispatch has put the variant for this CPU, and takes the first loop of the
signature (``'d->d'``), the one NumPy's type resolution picks. (Only float64: the small
calls of float32 logits compute on float64 copies, issue 13.)

Nothing is trusted that is not checked: CPython's object header, the ufunc's ``nin``,
``nout``, ``nargs`` and ``ntypes`` against their Python attributes before any pointer
is followed, its name and type codes against ``__name__`` and ``types``, no loop data
(the call passes NULL), and at last the loops' values against NumPy's on 4 x 4096
probes over the ranges the losses give them. Anything else (another Python,
another layout, a disagreement) gives None: the callers keep their other routes.
"""

from __future__ import annotations

import ctypes
import functools
import sys

import numpy as np

__all__ = ["numpy_loops", "numpys_on_probes"]

_UFUNCS = (np.exp, np.log, np.log1p, np.expm1)
"""In the order of ``_small_loops_numba``'s ``EXP``, ``LOG``, ``LOG1P``, ``EXPM1``."""


def _loop(ufunc: np.ufunc, signature: str) -> int | None:
    """The address of ``ufunc``'s first loop of ``signature`` (``'d->d'``), or None
    where the structure is not the one described in the module docstring."""
    head = object.__basicsize__  # PyObject_HEAD
    base = id(ufunc)
    fields = (ctypes.c_int * 4).from_address(base + head)
    if list(fields)[:3] != [ufunc.nin, ufunc.nout, ufunc.nargs] or ufunc.nargs != 2:
        return None
    pointer = ctypes.sizeof(ctypes.c_void_p)
    at = base + head + 4 * ctypes.sizeof(ctypes.c_int)
    functions = ctypes.c_void_p.from_address(at).value
    data = ctypes.c_void_p.from_address(at + pointer).value
    ntypes = ctypes.c_int.from_address(at + 2 * pointer).value
    if ntypes != ufunc.ntypes or not functions:
        return None
    name = ctypes.c_void_p.from_address(at + 3 * pointer).value
    codes = ctypes.c_void_p.from_address(at + 4 * pointer).value
    if not name or not codes or ctypes.string_at(name) != ufunc.__name__.encode():
        return None
    want = bytes(np.dtype(c).num for t in ufunc.types for c in t.replace("->", ""))
    if ctypes.string_at(codes, 2 * ntypes) != want:
        return None
    index = ufunc.types.index(signature)
    if data and ctypes.c_void_p.from_address(data + index * pointer).value:
        return None
    return ctypes.c_void_p.from_address(functions + index * pointer).value


@functools.cache
def numpy_loops() -> np.ndarray | None:
    """The addresses (int64) of NumPy's float64 loops of np.exp, np.log, np.log1p and
    np.expm1, checked as the module docstring says; None where they cannot be found or
    disagree with NumPy on a probe."""
    if sys.implementation.name != "cpython":
        return None
    try:
        found = [_loop(f, "d->d") for f in _UFUNCS]
    except (ValueError, TypeError, OverflowError):
        return None
    if any(address is None for address in found):
        return None
    loops = np.array(found, dtype=np.int64)
    from . import _small_loops_numba

    if not _small_loops_numba.loops_agree(loops, *numpys_on_probes(np.float64)):
        return None
    return loops


def numpys_on_probes(dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """4 x 4096 probes of ``dtype`` over the ranges the losses give np.exp, np.log,
    np.log1p and np.expm1 (one row each, in that order), and NumPy's values of them."""
    rng = np.random.default_rng(13)
    probes: np.ndarray = np.stack(
        [
            np.concatenate([rng.uniform(-745.0, 0.0, 2048), -rng.exponential(1e-3, 2048)]),
            np.concatenate([rng.uniform(1e-300, 1.0, 2048), rng.uniform(1.0, 1e6, 2048)]),
            np.concatenate([rng.uniform(-1.0, 0.0, 2048), rng.exponential(1.0, 2048)]),
            np.concatenate([rng.uniform(-1.0, 0.0, 2048), -rng.exponential(1e-4, 2048)]),
        ]
    ).astype(dtype)
    probes[1] = np.maximum(probes[1], np.finfo(dtype).tiny)  # (no log of 0 in float32)
    want = np.stack(
        [np.exp(probes[0]), np.log(probes[1]), np.log1p(probes[2]), np.expm1(probes[3])]
    )
    return probes, want
