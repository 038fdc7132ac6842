r"""NumPy's own exp, log, log1p and expm1 loops, called from compiled code (issue 13).

The small calls of focal and poly-1 (``_small_label_numba``) must give NumPy's values of
np.exp, np.log, np.log1p and np.expm1 bit for bit. On a machine where NumPy runs its
own SIMD code for them (AVX-512, ARM) the C library's functions differ from NumPy's by
an ulp here and there, so the compiled code cannot use ``math.exp`` and friends; it can
call the very loop NumPy calls. A NumPy ufunc keeps, for each of its type signatures,
the inner loop it runs (``PyUFuncObject.functions``: after NumPy's start-up dispatch,
the variant for this CPU), a C function ``loop(char **args, npy_intp const
*dimensions, npy_intp const *steps, void *data)``; ``_small_loops.numpy_loops`` finds
the ones np.exp and its siblings use for float64 and checks them on probes.

:func:`apply` calls one of them on a C-contiguous array into another (fresh: never
overlapping the input, as np.exp(x) writes a fresh array), as NumPy calls it for a
contiguous array: one call over all entries, the unit steps of the dtype. Every entry's
value depends on that entry alone (the loops are elementwise; the hybrid relies on it
too), so the values are np.exp's of the same array. The address is an argument, not a
constant, so the functions here are cached by Numba like any other. With no loops (an
empty ``loops``) :func:`apply` uses the C library's functions instead (``math.exp``
and its siblings, compiled without fast-math or SVML): the route taken where those are
NumPy's (``_small_label_families.libm_is_numpys``), float64 only.

NumPy's floating-point error checks do not run here: the callers hand these loops only
values on which NumPy does not warn (the hybrid's own rule), and NumPy clears the
status flags before each of its own calls.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["EXP", "EXPM1", "LOG", "LOG1P", "apply", "loops_agree"]

EXP, LOG, LOG1P, EXPM1 = (np.int64(k) for k in range(4))
"""The functions, as ``loops`` holds their addresses. NumPy integers, not Python's: Numba
types a Python int constant that compiled code passes to :func:`apply` as a literal
(``Literal[int](0)``) and compiles ``apply`` once more for each value it meets; an
int64 argument has one version for all four (issue 13: compile time)."""


@intrinsic
def _call_loop(typingctx: Any, address: Any, x: Any, out: Any) -> Any:
    """Call the NumPy inner loop at ``address`` on the C-contiguous arrays ``x`` and
    ``out`` (of one dtype and size): ``args = {x, out}``, ``dimensions = {x.size}``,
    ``steps = {itemsize, itemsize}``, ``data = NULL``."""
    if not (
        isinstance(address, types.Integer)
        and isinstance(x, types.Array)
        and isinstance(out, types.Array)
        and x.layout == "C"
        and out.layout == "C"
        and x.dtype == out.dtype
    ):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        address_value, x_value, out_value = args
        x_array = context.make_array(signature.args[1])(context, builder, x_value)
        out_array = context.make_array(signature.args[2])(context, builder, out_value)
        byte_ptr = ir.IntType(8).as_pointer()
        intp = context.get_value_type(types.intp)
        pointers = cgutils.alloca_once(builder, byte_ptr, size=2)
        builder.store(builder.bitcast(x_array.data, byte_ptr), pointers)
        second = builder.gep(pointers, [ir.Constant(ir.IntType(32), 1)])
        builder.store(builder.bitcast(out_array.data, byte_ptr), second)
        dimensions = cgutils.alloca_once(builder, intp, size=1)
        builder.store(x_array.nitems, dimensions)
        size = context.get_abi_sizeof(context.get_data_type(signature.args[1].dtype))
        steps = cgutils.alloca_once(builder, intp, size=2)
        builder.store(ir.Constant(intp, size), steps)
        builder.store(ir.Constant(intp, size), builder.gep(steps, [ir.Constant(ir.IntType(32), 1)]))
        loop_type = ir.FunctionType(
            ir.VoidType(), [byte_ptr.as_pointer(), intp.as_pointer(), intp.as_pointer(), byte_ptr]
        )
        loop = builder.inttoptr(address_value, loop_type.as_pointer())
        builder.call(loop, [pointers, dimensions, steps, ir.Constant(byte_ptr, None)])
        return context.get_dummy_value()

    return types.void(address, x, out), codegen


@numba.njit(cache=True)
def apply(loops: np.ndarray, k: int, x: np.ndarray, out: np.ndarray) -> None:
    """Function ``k`` (:data:`EXP`, :data:`LOG`, :data:`LOG1P`, :data:`EXPM1`) of the
    C-contiguous float64 array ``x`` into ``out`` (C-contiguous, float64, its size, not
    overlapping it): by NumPy's loop (``loops``: the 4 addresses of
    ``_small_loops.numpy_loops``), or, where ``loops`` is empty, by the C library's
    function."""
    if loops.shape[0]:
        _call_loop(loops[k], x, out)
        return
    flat, into = x.reshape(-1), out.reshape(-1)
    if k == EXP:
        for i in range(flat.shape[0]):
            into[i] = math.exp(flat[i])
    elif k == LOG:
        for i in range(flat.shape[0]):
            into[i] = math.log(flat[i])
    elif k == LOG1P:
        for i in range(flat.shape[0]):
            into[i] = math.log1p(flat[i])
    else:
        for i in range(flat.shape[0]):
            into[i] = math.expm1(flat[i])


@numba.njit(cache=True)
def loops_agree(loops: np.ndarray, x: np.ndarray, want: np.ndarray) -> bool:
    """Whether :func:`apply` of function ``k`` on row ``k`` of the probes ``x`` (4 x m,
    float64) is ``want``'s row ``k`` (NumPy's) bit for bit, NaN nowhere."""
    out = np.empty_like(x)
    for k in range(4):
        apply(loops, k, x[k], out[k])
        for j in range(x.shape[1]):
            if out[k, j] != want[k, j]:
                return False
    return True
