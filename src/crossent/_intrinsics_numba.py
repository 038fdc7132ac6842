"""Numba intrinsics shared by the kernel modules: reinterpreting the bits of a number.

``float64_to_bits(x)`` is the int64 whose bits are those of the float64 ``x``,
``bits_to_float64(k)`` the converse, and ``bits_to_float32(k)`` the float32 whose bits
are those of the int32 ``k``: one LLVM ``bitcast`` each, no arithmetic, so they compile
to nothing but a register move (NumPy's ``x.view(np.int64)`` on a scalar). The
kernels use them for the exponent tricks of their ``exp`` and ``log`` (building
:math:`2^k` from ``k + 1023`` shifted into the exponent field, splitting ``x`` into
exponent and mantissa) and for the order-preserving keys of float32 maxima.

``splat``, ``halving`` and ``call_intrinsic`` are not intrinsics but the helpers of the
kernels' explicit vector code (llvmlite IR builders): a broadcast, a fixed tree over a
vector's lanes, and a call of an LLVM intrinsic (the forward's loop and the update's
row tiles).

``prefer_wide_vectors()``, called in a kernel's body, marks the LLVM function being
compiled with ``"prefer-vector-width"="512"``. LLVM's tuning for Intel's AVX-512 cores
(Skylake-X to Emerald Rapids) prefers 256-bit vectors by default, so Numba's loops use
``ymm`` registers there even though ``zmm`` doubles the lanes; the attribute is the
per-function form of clang's ``-mprefer-vector-width=512`` and changes nothing on a CPU
without AVX-512 (no vector is wider than the hardware's). It touches only the function
it is called in (and what LLVM inlines into it), never Numba's global target machine,
so a user's own Numba code keeps its settings.

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
``python3 tasks.py test`` runs the tests on a cache folder keyed by a hash of every
source file (``tasks.numba_cache``), so that it never loads a stale kernel.
"""

from __future__ import annotations

import platform
from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = [
    "bits_to_float32",
    "bits_to_float64",
    "call_intrinsic",
    "float64_to_bits",
    "halving",
    "numba_target_has",
    "prefer_wide_vectors",
    "splat",
]


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


_WIDE_VECTORS = '"prefer-vector-width"="512"'


@intrinsic
def prefer_wide_vectors(typingctx: Any) -> Any:
    """Let LLVM vectorise the calling function with 512-bit vectors where the CPU has them.

    Adds the string attribute ``"prefer-vector-width"="512"`` to the function being
    lowered. llvmlite's attribute set checks names against LLVM's enum attributes only,
    so the string attribute is added with ``set.add`` (the set prints its members as
    written into the IR, which LLVM's parser reads).
    """

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        set.add(builder.function.attributes, _WIDE_VECTORS)
        return context.get_dummy_value()

    return types.none(), codegen


# Code generation helpers of the kernels' explicit vector code (llvmlite IR builders).

_LANE_INDEX = ir.IntType(32)


def splat(builder: ir.IRBuilder, value: Any, lanes: int) -> Any:
    """A vector of ``lanes`` copies of the LLVM value ``value`` (an insertion and a
    broadcasting shuffle, which LLVM lowers to one broadcast)."""
    vector = ir.VectorType(value.type, lanes)
    one = builder.insert_element(
        ir.Constant(vector, ir.Undefined), value, ir.Constant(_LANE_INDEX, 0)
    )
    zeros = ir.Constant(ir.VectorType(_LANE_INDEX, lanes), [0] * lanes)
    return builder.shuffle_vector(one, ir.Constant(vector, ir.Undefined), zeros)


def halving(builder: ir.IRBuilder, vector: Any, combine: Any) -> Any:
    """``combine(low, high)`` over the lanes of ``vector`` by halves: lane j with lane
    j + h for h = lanes/2, ..., 2, 1, then lane 0. A fixed tree: the same order at any
    vector width, as long as no instruction of it carries a fast-math flag that lets
    LLVM reorder it."""
    lanes = vector.type.count
    while lanes > 1:
        lanes //= 2
        low, high = (
            builder.shuffle_vector(
                vector,
                vector,
                ir.Constant(ir.VectorType(_LANE_INDEX, lanes), list(range(a, a + lanes))),
            )
            for a in (0, lanes)
        )
        vector = combine(low, high)
    return builder.extract_element(vector, ir.Constant(_LANE_INDEX, 0))


def call_intrinsic(builder: ir.IRBuilder, name: str, returned: Any, *args: Any) -> Any:
    """A call of the LLVM intrinsic ``name`` returning ``returned`` (declared in the
    module on first use, with the arguments' types)."""
    function = ir.FunctionType(returned, [a.type for a in args])
    return builder.call(cgutils.get_or_insert_function(builder.module, function, name), args)


def numba_target_has(feature: str) -> bool:
    """Whether the code Numba emits may use the x86 ``feature`` (e.g. ``"avx512f"``).

    Numba's target, not always the host: ``NUMBA_CPU_FEATURES``
    (``numba.config.CPU_FEATURES``, LLVM's feature string given in full) overrides the
    host's features, as ``benchmarks/emulate_avx2.sh`` does to emulate an AVX2-only
    machine on an AVX-512 one. False on other architectures.
    """
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        return False
    import numba
    from llvmlite import binding

    override = numba.config.CPU_FEATURES
    if override:
        return f"+{feature}" in override.split(",")
    return bool(binding.get_host_cpu_features().get(feature, False))
