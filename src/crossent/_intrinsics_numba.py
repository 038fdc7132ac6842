r"""Numba intrinsics shared by the kernel modules: reinterpreting the bits of a number.

``float64_to_bits(x)`` is the int64 whose bits are those of the float64 ``x``,
``bits_to_float64(k)`` the converse, and ``bits_to_float32(k)`` the float32 whose bits
are those of the int32 ``k``: one LLVM ``bitcast`` each, no arithmetic, so they compile
to nothing but a register move (NumPy's ``x.view(np.int64)`` on a scalar). The
kernels use them for the exponent tricks of their ``exp`` and ``log`` (building
:math:`2^k` from ``k + 1023`` shifted into the exponent field, splitting ``x`` into
exponent and mantissa) and for the order-preserving keys of float32 maxima.

``float32_to_bits(x)`` is the int32 of a float32's bits (the measures' integer-key row
maximum). ``unit_stride(row)`` retypes a 1-D array of any layout as C-contiguous, for a
caller that has checked its stride (no code: the same array structure), so that LLVM
vectorises loops over it with vector loads instead of gathers.

``exp_nonpositive(x)`` is :math:`e^x` for :math:`x \le 0` by a degree-7 polynomial
(relative error 5.2e-11, derived in ``losses/_cpu_kernels_numba.py``'s docstring), with
its coefficients ``EXP_COEFFICIENTS`` and scheme ``HORNER``: the losses' kernels and the
measures' float32 kernels (``info/_fused_kernels.py``) import it from here (no package
imports a sibling's private module).

``fma(x, y, z)`` is :math:`xy + z` rounded once (LLVM's ``llvm.fma.f64``: the FMA
instruction where the target has it, else libm's ``fma``, exact but slow): the error term
of an exact product or quotient remainder in the losses' double-word arithmetic
(``losses/_sigmoid_grad_numba.py``, ``losses/_near_rows_numba.py``).

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

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = [
    "EXP_COEFFICIENTS",
    "HORNER",
    "bits_to_float32",
    "bits_to_float64",
    "call_intrinsic",
    "exp_nonpositive",
    "float32_to_bits",
    "float64_to_bits",
    "fma",
    "halving",
    "numba_target_has",
    "prefer_wide_vectors",
    "splat",
    "unit_stride",
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
float32_to_bits = _bitcast(types.float32, types.int32, ir.IntType(32))
bits_to_float64 = _bitcast(types.int64, types.float64, ir.DoubleType())
bits_to_float32 = _bitcast(types.int32, types.float32, ir.FloatType())


@intrinsic
def unit_stride(typingctx: Any, array: Any) -> Any:
    """The 1-D array ``array`` (of any layout) typed as C-contiguous, for a caller that
    has checked that its stride is its item size: one array structure for both types,
    so nothing is computed, and LLVM then vectorises loops over it with plain vector
    loads (over an ``'A'`` array it gathers, with the stride unknown)."""
    contiguous = array.copy(layout="C")

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        context.nrt.incref(builder, signature.args[0], args[0])
        return args[0]

    return contiguous(array), codegen


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
    LLVM reorder it. ``combine``'s instructions are emitted without flags, and Numba's
    fast-math pass (``numba.core.fastmathpass``) gives every floating-point instruction
    without flags its function's ``fastmath`` set: the order holds in a function
    compiled without ``reassoc`` (or where ``combine`` sets its own flags), not in one
    compiled with it."""
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


@intrinsic
def fma(typingctx: Any, x: Any, y: Any, z: Any) -> Any:
    """:math:`xy + z` rounded once, float64 (``llvm.fma.f64``)."""
    signature = types.float64(types.float64, types.float64, types.float64)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return call_intrinsic(builder, "llvm.fma.f64", ir.DoubleType(), *args)

    return signature, codegen


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


# The losses' kernel flags less ``reassoc`` (``losses/_cpu_kernels_numba._FLAGS``).
_EXP_FLAGS = {"contract", "nsz", "arcp"}  # no nnan/ninf: NaN must propagate
# 1.5 * 2**52 + 1023: adding it to t rounds t to an integer k and leaves k + 1023
# (the biased exponent of 2^k) in the low bits of the sum.
_MAGIC = 6755399441056767.0


# The coefficients c0, c1, ..., c7 of the degree-7 minimax polynomial for e^r on
# |r| <= ln 2 / 2 (relative error 5.2e-11, see ``losses/_cpu_kernels_numba``'s module
# docstring), c0 = c1 = 1.
EXP_COEFFICIENTS = (
    1.0,
    1.0,
    0.5000000067643473,
    0.16666665869408973,
    0.04166629509026616,
    0.008333497009265464,
    0.0013944648835041446,
    0.00019790352356200552,
)


#: Whether :func:`exp_nonpositive` evaluates its polynomial by Horner's scheme (Numba's
#: target has AVX-512) or by Estrin's (AVX2 and others): a constant to Numba, so each
#: compiled kernel holds one scheme; Numba's cache keys its entries by the target's CPU
#: features too. Measured (4096 x 32000 float32 forward, two threads,
#: ``benchmarks/bench_forward_floor.py``, Horner's against Estrin's in the same rounds):
#: AVX-512, 0.0568 against 0.0605 s and 0.0542 against 0.0586 s (31 and 11 rounds);
#: AVX2 emulated (``benchmarks/emulate_avx2.sh``), 0.0812 against 0.0723 s and 0.0776
#: against 0.0698 s (15 and 11 rounds, the trees' order swapped): Horner's 11-12 %
#: slower there.
HORNER = numba_target_has("avx512f")


# The losses' and the measures' ``exp`` of a non-positive float64 (moved here from
# ``losses/_cpu_kernels_numba.py`` so that both import it, unchanged: the module
# docstring there derives its error, 5.2e-11 relative).
# Compiled on its own, without ``reassoc``, so that ``(t + M) - M`` rounds t to an
# integer instead of being folded to t; LLVM still inlines it into the loops, where
# each instruction keeps its own flags.
@numba.njit(fastmath=_EXP_FLAGS, inline="never")
def exp_nonpositive(x: float) -> float:
    # Below -708, e^x < 4e-308: the terms vanish against the max's 1. Written so
    # that a NaN passes through (the comparison is false), and still one vmaxpd.
    x = -708.0 if x < -708.0 else x
    shifted = x * 1.4426950408889634 + _MAGIC  # k + 1023 in the low bits
    k = shifted - _MAGIC
    # One constant (not Cody-Waite's two): fused or not, |r| errs by under 6e-14,
    # i.e. e^r by a relative 6e-14, far below the polynomial's 5.2e-11
    r = x - k * 0.6931471805599453
    # e^r by EXP_COEFFICIENTS: on AVX-512 (HORNER) in Horner's scheme, seven FMAs, the
    # fewest vector operations; elsewhere in Estrin's (r^2, r^4 and 1 + r besides: a
    # shorter dependency chain, faster with 256-bit vectors). See the losses' kernels.
    c = EXP_COEFFICIENTS
    if HORNER:
        q = c[6] + r * c[7]
        q = c[5] + r * q
        q = c[4] + r * q
        q = c[3] + r * q
        q = c[2] + r * q  # c2 + c3 r + ... + c7 r^5
        p = c[0] + r * (c[1] + r * q)
    else:
        r2 = r * r
        r4 = r2 * r2
        p01 = c[0] + r  # c1 = 1: an add, off the FMA pipes
        p23 = c[2] + r * c[3]
        p45 = c[4] + r * c[5]
        p67 = c[6] + r * c[7]
        p = (p01 + r2 * p23) + r4 * (p45 + r2 * p67)
    return p * bits_to_float64(float64_to_bits(shifted) << 52)
