r"""Fused row kernels of the measures for NumPy float32 and float64 inputs (Numba).

Design
------
The generic path (``_measures.py`` over ``_numerics.py``) evaluates a measure as a chain
of array operations: from logits, the row maximum, the shift, ``exp``, the exp-sum, the
log-partition, the log-softmax, then the terms and their sum, a dozen NumPy calls. Each
call costs about a microsecond whatever the size, so a row of 10 took 20 to 30 us
(issue 13, "Small inputs"), and on large inputs each call is a pass over the data.

:func:`measure_rows` computes one or several measures of each row in one compiled
call: per row, the log-partition of each side given as logits (the same formula as
``_xp.log_sum_exp_shifted``: the maximal terms counted, not added), then one pass over
the classes that accumulates, in float64 with Neumaier's compensation, the requested
sums among H(P), H(P, Q), D(P||Q) and JS(P, Q), and writes each result divided by
``log(base)`` and rounded once to the compute dtype. It is the path of every NumPy
float64 and float32 input (float16 computes as float32), whatever the size (rows run
in parallel above :data:`PARALLEL_ELEMENTS` elements), so a row's
result does not depend on the batch it comes in; other arrays, batches that flatten
only by a copy and the ``eps=`` compatibility clip take the generic path, which stays
the reference and is what runs without the optional ``fast`` extra.

Cost on large inputs: for float64 the kernel's ``exp`` and ``log`` are scalar libm
calls (Numba vectorises neither without SVML), where NumPy's ufuncs are vectorised.
Measured on 20000 x 1000 rows (AMD EPYC, AVX2, a loaded 2-core machine, so +-30 %), the
kernel takes 0.5 to 0.9 times the generic path's time for KL, JS, the decomposition and
the binary cross-entropy of probabilities (it saves passes and temporaries), 0.9 times
for the entropy and cross-entropy of float64 logits (one ``exp`` per entry), 1.0 to 1.4
times for the entropy of probabilities. Float32 logits and log-probabilities (issue 13:
NumPy's float32 path was 2 to 32 ulps off the float64 truth) take the polynomial ``exp``
of the losses (:func:`crossent._intrinsics_numba.exp_nonpositive`, relative error
5.2e-11, far below float32's rounding) in vectorised row passes (an integer-key maximum,
then the exp-sum), and float32 batches whose class axis is strided run by C-contiguous
block copies (:data:`BLOCK_ELEMENTS`); float64 keeps ``math.exp``, bit for bit. The
error bound is derived in ``_fused_kernels._log_partition``.

The KL of float32 logits and log-probabilities (alone or in the decomposition) skips the
compensated loop too (issue 13: 175 ms against the entropy's 23 ms on 20000 x 1000):
for two logit sides, one vectorised pass sums the non-negative terms
:math:`q_i \varphi(r_i)`, :math:`\varphi(r) = 1 + (r - 1)e^r`, equal to the KL since both
sides are normalised, so nothing cancels however close P and Q are, and the
log-partitions' error is a shift of every :math:`r_i`, of second order in the sum; a
second pass corrects that shift where the KL is tiny. Other forms (log-probabilities
need not be normalised) sum :math:`p_i(\log p_i - \log q_i)` in one vectorised pass
with the bound :math:`(\delta_e + \gamma_{n-1})\sum_i |t_i|` of its error
(:math:`\delta_e` = 5.2e-11, the polynomial ``exp``'s, which the terms' cancellation
on nearly equal rows does not shrink: issue 13, branch klf32), which stands where it is
at most :math:`2^{-32}` of the sum.
Derivations in ``_fused_kernels._bregman_sums`` and ``_fused_kernels._divergence_sums``.
That bound includes, where one side is logits, its log-partition's error (first order
there); the rows it flags (two log-probability sides too, which took the compensated
loop with the same polynomial ``exp``, up to 22 float32 ulps off: these first take the
same sums with an ``exp`` within 8 float64 ulps, vectorised, within :math:`2^{-32}`
where :math:`|D| \ge 1.2\cdot 10^{-5} \sum_i |t_i|`, its H and CE for the
decomposition (``_fused_kernels._log_probs_sums``; rows of two entries take it alone,
``_log_probs_pair``: branch klf32b), then the float64 pass
``_fused_kernels._kl64_pass``, ``math.exp`` and its bound, within :math:`2^{-32}`,
then their defining sum in double-double, ``_fused_kernels._kl_log_probs_dd``)
take exact Bregman sums instead (``_fused_kernels._kl_exact``:
``math.exp``, exact differences, compensated sums, the common shift removed, masses of
log-probabilities in double-double where needed), a few float64 ulps from the truth
on nearly equal rows, at about twice the compensated loop's time (issue 13).
The float64 KL of logits and log-probabilities (any pair of the two, alone or in the
decomposition) takes one pass first (``_fused_kernels._kl64_pass``: two ``exp`` calls
an entry at most, exact differences, compensated sums, no log-partition rounded to a
float) with a rigorous bound on its error; it stands where that bound is at most
:math:`2^{-47}` of the KL (random rows), and the exact sums run for the others
(nearly equal rows, a tiny KL, where its terms cancel; two log-probability sides took
the compensated loop, 1e8 ulps off there). The decomposition's entropy and
cross-entropy come from the same pass's sums (:math:`\log S - \sum_i e_i w_i/S`, two
non-negative parts: a few ulps), so it no longer takes the log-partitions' passes and
the loop (five ``exp`` calls an entry, 1.7 times the KL's time; issue 13).
The exact sums sum the masses of log-probability (and probability) sides in
double-double where the KL is below about 4, and in triple-double (``_exp_td``, with
the Bregman sum in double-double where it cancels against them) where it is below about
:math:`2^{-40}` of them; two log-probability sides there take their
defining sum in triple-double: 4 ulps down to a KL of 1e-40 (about :math:`2^{-150}`
absolute besides for the other pairs). The KL of probabilities against logits or
log-probabilities (either way round) keeps the compensated loop where the loop's error
bound (``_fused_kernels._loop_kl_bound``; the float64 logits' log-partition then by a
compensated sum, Fast2Sum from 1, branch-free) is within :math:`2^{-47}` of it
(:math:`2^{-32}` in float32), and takes the exact sums otherwise (their logarithms of
probabilities in double-double): nearly equal rows were up to 1e25 ulps off (issue 13).
The exact sums' and the ratio pass's double-double ``exp`` and ``log`` and the Bregman
sums' series are taken a row at a time, in loops LLVM vectorises
(``_fused_kernels._exp_dd_row``, ``_log_dd_row``, ``_bregman_series_row``: 7, 9 and 2.5
ns an entry, where entry by entry their dependent steps took 52, 62 and about 16), with
the same results bit for bit: the mixed forms' KL took 2 to 3.5 times less CPU time on
nearly equal rows (issue 13).
The loop (for the KL alone a function of its own, ``_kl_loop_one_probs``) sums one or
two cheap quantities an entry from which ``_loop_kl_bound_cheap`` bounds that bound;
the precise one's sums take a second pass only where the cheap one fails and the
precise one may stand (the three sums an entry had cost random rows 10 to 25 %).

Each term follows the generic path's convention and formula, branch for branch (the
docstrings of ``_numerics.py`` derive them), so the two paths agree to rounding, which
``tests/info/test_issue13_fused_measures.py`` checks on hard rows:

* both sides probabilities: ``entr``, ``-xlogy``, ``rel_entr`` with the ``log1p`` of
  the exact difference for ratios in [1/2, 2] (and logs for a ratio that overflows),
  and the Jensen-Shannon term :math:`\tfrac{p+q}{4} g(d)`;
* otherwise each entry becomes a log-probability (``(x - m) - \ell`` from logits,
  ``log x`` from probabilities) and a probability (its ``exp``, or ``x``): entropy
  :math:`-p\log p` with 0 at :math:`\log p = -\infty`; cross-entropy :math:`-p\log q`,
  0 where :math:`p = 0`, :math:`+\infty` where only :math:`q = 0`; KL
  :math:`p(\log p - \log q)` with the same conventions.

Each term is computed in float64, and float32 results rounded once; the generic path
does the same for NumPy float32 sides on float64 copies (``_measures._Prepared.widened``).
:func:`pointwise` is the elementwise twin of the kernels of
``_pointwise.py`` (surprisal, binary entropy and cross-entropy and its gradient), with
the same screening of the entries (NaN, outside [0, 1]).

Importing this module does not import Numba; :func:`available` checks for it once. The
compiled kernels are in ``_fused_kernels.py``, imported on first use; each compiles
once per dtype (one signature for every layout and option) and is cached on disk
across processes (see that module for why everything compiled there is at module level).
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

import numpy as np

from .._parallel import run_in_parts

__all__ = [
    "BINARY_CROSS_ENTROPY",
    "BINARY_CROSS_GRAD",
    "BINARY_ENTROPY",
    "BLOCK_ELEMENTS",
    "CROSS_ENTROPY",
    "ENTROPY",
    "FORM_CODES",
    "JS_DIVERGENCE",
    "KL_DIVERGENCE",
    "PARALLEL_ELEMENTS",
    "SURPRISAL",
    "available",
    "measure_rows",
    "operands",
    "perplexity_rows",
    "pointwise",
    "reshaped",
]

ENTROPY, CROSS_ENTROPY, KL_DIVERGENCE, JS_DIVERGENCE = 1, 2, 4, 8
"""Bits of ``want``: which sums :func:`measure_rows` computes."""

SURPRISAL, BINARY_ENTROPY, BINARY_CROSS_ENTROPY, BINARY_CROSS_GRAD = 0, 1, 2, 3
"""``which`` of :func:`pointwise`."""

FORM_CODES = {"probs": 0, "log_probs": 1, "logits": 2}
"""The forms of a side as the kernel's integer codes."""

PARALLEL_ELEMENTS = 1 << 17
"""Above this many elements the rows run in parallel (below, a thread launch costs
more than it saves)."""


@functools.cache
def available() -> bool:
    """Whether Numba can be imported (the optional ``fast`` extra)."""
    return importlib.util.find_spec("numba") is not None


_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def operands(a: object, b: object) -> tuple[np.ndarray, np.ndarray] | None:
    """``a`` and ``b`` broadcast against each other (views), if the kernels take them:
    Numba is installed and both are NumPy float32 or float64 arrays of one dtype; else
    None (the generic path runs)."""
    if not (
        type(a) is np.ndarray
        and type(b) is np.ndarray
        and a.dtype == b.dtype
        and a.dtype in _DTYPES
        and available()
    ):
        return None
    if a.shape != b.shape:
        shape = np.broadcast_shapes(a.shape, b.shape)
        a, b = np.broadcast_to(a, shape), np.broadcast_to(b, shape)
    return a, b


def reshaped(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``x.reshape(shape)`` if that is a view, else None (a copy as large as the input
    would undo the kernels' memory saving; the generic path works by blocks)."""
    view = x.reshape(shape)
    return view if x.size <= 1 or np.may_share_memory(view, x) else None


def measure_rows(
    a: np.ndarray,
    b: np.ndarray,
    *,
    forms: tuple[str, str],
    want: int,
    log_base: float | None,
    tolerances: tuple[float | None, float | None] = (None, None),
) -> tuple[np.ndarray, bool]:
    """The measures ``want`` of the rows of ``a`` (P) and ``b`` (Q), one row of the
    result per bit set in ``want``, in the order of the bits, and whether a row may
    fail its validation.

    ``a`` and ``b``: 2-D arrays of one shape ``(rows, classes)`` and one dtype, float32
    or float64. Each result is in nats divided by ``log_base``, in the inputs' dtype.
    ``tolerances``: the row-sum tolerance of each side to screen it with (None: not
    screened); a suspect row (see the kernel's ``suspect``) makes the flag True, and
    the caller then validates in full, which raises the validation's own message.
    """
    out = np.empty((want.bit_count(), a.shape[0]), dtype=a.dtype)
    kernel = _kernel("rows", a.dtype, a.size > PARALLEL_ELEMENTS)
    tol_a, tol_b = tolerances
    options = (
        FORM_CODES[forms[0]],
        FORM_CODES[forms[1]],
        want,
        1.0 if log_base is None else log_base,
        -1.0 if tol_a is None else tol_a,
        -1.0 if tol_b is None else tol_b,
    )
    step = _block_rows(a, b)
    if step is None:
        return out, kernel(a, b, *options, out) > 0
    # Serial kernels (a launch of Numba's threads costs more than a block's work),
    # over contiguous parts of the rows on the shared pool's threads, at most as many
    # as Numba has (the kernel and NumPy's copies release the GIL).
    kernel = _kernel("rows", a.dtype, False)

    def part(first: int, last: int) -> int:
        suspects = 0
        block = np.empty((out.shape[0], step), dtype=a.dtype)
        for start in range(first, last, step):
            stop = min(start + step, last)
            result = (
                block if stop - start == step else np.empty((len(block), stop - start), a.dtype)
            )
            a_part = np.ascontiguousarray(a[start:stop])
            b_part = a_part if b is a else np.ascontiguousarray(b[start:stop])
            suspects += kernel(a_part, b_part, *options, result)
            out[:, start:stop] = result
        return suspects

    most = _threads() if a.size > PARALLEL_ELEMENTS else 1
    return out, sum(run_in_parts(part, a.shape[0], most)) > 0


@functools.cache
def _threads() -> int:
    """Numba's thread count (its ``NUMBA_NUM_THREADS``): the most parts of the blocked
    path, which stands in for the parallel kernel (the pool's threads are
    ``_parallel.workers``, Numba's default count; a lower ``NUMBA_NUM_THREADS`` limits
    every Numba kernel of the measures)."""
    import numba

    return max(1, int(numba.config.NUMBA_NUM_THREADS))


BLOCK_ELEMENTS = 1 << 18
"""Rows per block of :func:`measure_rows` on float32 inputs with a strided class axis:
this many elements (1 MiB a side)."""


def _block_rows(a: np.ndarray, b: np.ndarray) -> int | None:
    """Rows per C-contiguous block copy where a float32 side's class axis is strided
    (a Fortran-ordered batch, a transposed view) and there are several rows; else None
    (the kernel reads the arrays as they are).

    The float32 kernel's row passes (maximum, exp-sum) are vectorised over a
    unit-stride row and gather otherwise, one cache line per entry: block copies
    (NumPy's transposing copy, 2 ns an entry) cost less than the strided passes (9 ns
    an entry measured on 20000 x 1000). Each row's result is the same either way (the
    kernel's arithmetic per row does not depend on the layout). Float64 inputs are
    left as they are."""
    rows, classes = a.shape
    if rows < 2 or classes < 2 or a.dtype != np.float32:  # (one row: no dtype compared)
        return None
    size = a.dtype.itemsize
    if all(x.strides[1] in (0, size) for x in (a, b)):
        return None
    return max(1, BLOCK_ELEMENTS // classes)


def pointwise(
    p: np.ndarray, q: np.ndarray, *, which: int, log_base: float | None, screen: bool
) -> tuple[np.ndarray, bool]:
    """The elementwise measure ``which`` (:data:`SURPRISAL`, ...; ``q`` unused by the
    first two) of 1-D ``p``, ``q`` of one shape and dtype, divided by ``log_base``, and
    (with ``screen``) whether an entry may fail validation (NaN, or outside [0, 1])."""
    out = np.empty(p.shape, dtype=p.dtype)
    scale = 1.0 if log_base is None else float(log_base)
    suspects = _kernel("pointwise", p.dtype, False)(p, q, which, scale, screen, out)
    return out, suspects > 0


def perplexity_rows(
    a: np.ndarray,
    b: np.ndarray,
    *,
    cross: bool,
    forms: tuple[int, int] = (0, 0),
    tolerances: tuple[float | None, float | None] = (None, None),
) -> tuple[np.ndarray, bool]:
    """The perplexity of each float64 row of ``a`` (2-D, ``(rows, classes)``), against
    the rows of ``b`` (the same shape) if ``cross``, the sides in the ``forms``
    (``_perplexity_dd.FORMS``' codes), from the entropy in double-double
    (``_perplexity_dd``), and whether a row may fail its
    validation (``tolerances`` as in :func:`measure_rows`); rows on the shared pool's
    threads above :data:`PARALLEL_ELEMENTS` elements."""
    out = np.empty(a.shape[0])
    kernel = _perplexity_kernel()
    tol_a, tol_b = (-1.0 if tol is None else tol for tol in tolerances)

    def part(first: int, stop: int) -> int:
        return int(kernel(a, b, cross, *forms, tol_a, tol_b, first, stop, out))

    most = _threads() if a.size > PARALLEL_ELEMENTS else 1
    return out, sum(run_in_parts(part, a.shape[0], most)) > 0


@functools.cache
def _perplexity_kernel() -> Any:
    """``_perplexity_kernels.perplexity_rows``, imported (and Numba with it) on first
    use."""
    from . import _perplexity_kernels

    return _perplexity_kernels.perplexity_rows


@functools.cache
def _kernel(kind: str, dtype: np.dtype, parallel: bool, /) -> Any:
    """The compiled kernel ``kind`` ("rows" or "pointwise") for ``dtype``, built (or
    loaded from Numba's cache) on first use; Numba is imported here, not before.
    (Positional arguments: the cache's lookup costs half that of a keyword's.)"""
    from . import _fused_kernels

    if kind == "rows":
        return _fused_kernels.rows(dtype, parallel=parallel)
    return _fused_kernels.pointwise(dtype)
