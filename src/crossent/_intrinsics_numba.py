"""Numba intrinsics shared by the kernel modules: reinterpreting the bits of a number.

``float64_to_bits(x)`` is the int64 whose bits are those of the float64 ``x``,
``bits_to_float64(k)`` the converse, and ``bits_to_float32(k)`` the float32 whose bits
are those of the int32 ``k``: one LLVM ``bitcast`` each, no arithmetic, so they compile
to nothing but a register move (NumPy's ``x.view(np.int64)`` on a scalar). The
kernels use them for the exponent tricks of their ``exp`` and ``log`` (building
:math:`2^k` from ``k + 1023`` shifted into the exponent field, splitting ``x`` into
exponent and mantissa) and for the order-preserving keys of float32 maxima.

Importing this module imports Numba (and llvmlite): only the ``*_numba.py`` kernel
modules import it, themselves imported on first use, so that ``import crossent`` does
not import Numba.

Numba's on-disk cache and this module
-------------------------------------
A kernel compiled with ``cache=True`` is cached with these intrinsics compiled into
it. Numba checks a cache entry against the source file of the cached function only (its
modification time and size, in the index), not against the modules that function
imports: after editing this module, every kernel that uses it keeps loading its old
machine code from the cache. A developer who edits this file must clear the caches
(the ``__pycache__/*.nbi`` and ``*.nbc`` files under ``src/crossent``, or the
directory ``NUMBA_CACHE_DIR`` names), or touch each ``*_numba.py`` module that imports
it. An installed release is unaffected: its files do not change after installation.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["bits_to_float32", "bits_to_float64", "float64_to_bits"]


def _bitcast(source: types.Type, target: types.Type, llvm_target: ir.Type) -> Any:
    """An intrinsic reinterpreting the bits of a ``source`` value as ``target``."""

    @intrinsic
    def cast(typingctx: Any, value: Any) -> Any:
        return target(source), lambda context, builder, signature, args: builder.bitcast(
            args[0], llvm_target
        )

    return cast


float64_to_bits = _bitcast(types.float64, types.int64, ir.IntType(64))
bits_to_float64 = _bitcast(types.int64, types.float64, ir.DoubleType())
bits_to_float32 = _bitcast(types.int32, types.float32, ir.FloatType())
