"""Measures between distributions: entropy, cross-entropy, KL and JS divergence, perplexity.

Each public function prepares its inputs once (:func:`_prepare_one`,
:func:`_prepare_two`: options, array namespace, sides in the compute dtype with the
class axis last, their validation left pending) and then takes one of two paths:

* the fused path (``_fused.py``, with the optional Numba): NumPy float32/float64 sides
  go to one compiled call per array that screens the values for the pending
  validation and evaluates the measure(s) row by row; a suspect row runs the full
  validation, which raises its usual message;
* the generic path, for every other array and without Numba: validate, sum the
  elementwise kernels of ``_numerics.py`` over the class axis (by blocks of rows on
  NumPy, ``_blocks.py``) and convert the result to the requested unit.

Docstring sections the measures share are written once, in ``_docs.py``, and filled in
at the end of this module.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from .._checks import (
    ValuelessArrayError,
    check_base,
    check_eps,
    check_form,
    log_base_in,
    truth_of,
)
from .._double_double import (
    excess_of_pairs,
    excess_of_pairs32,
    exp_dd,
    exp_pair32,
    exp_rounded,
)
from .._far_row_gradients import gradient_term, wants_gradient
from .._numerics import (
    _two_sum,
    cross_terms,
    cross_terms_from_log,
    cross_terms_from_probs,
    entropy_terms,
    entropy_terms_from_log,
    far_gap_cross_entropy,
    far_gap_cross_entropy64,
    js_terms,
    js_terms_from_log_ratios,
    kl_terms,
    kl_terms_from_log,
    kl_terms_from_normalised_logs,
    kl_terms_nonnegative,
    kl_terms_nonnegative_dd,
    next_power_of_two,
)
from .._sides import PendingCheck, Side, prepare_one, prepare_pair
from .._torch_host import call_on_host, routable
from .._traced_far_rows import poisoned
from .._xp import (
    Array,
    accumulation_dtype,
    cannot_copy_to_host,
    device,
    finalize,
    finite_row_max,
    float64_twin,
    host_float64,
    is_jax_tracer,
    is_numpy,
    log_sum_exp_shifted,
    namespace,
    numpy_errstate,
    reduce_sum,
    to_float32,
    to_numpy,
)
from . import _fused, _perplexity_dd
from ._blocks import BLOCK_ELEMENTS as _BLOCK_ELEMENTS
from ._blocks import sum_over_classes
from ._docs import fill_shared_sections
from ._far_gap_gradients import far_gap_gradients64
from ._js_mixed import careful_rows, exact_where, js_mixed_exact
from ._kl_mixed import kl_mixed_parts, kl_narrow

__all__ = [
    "CrossEntropyDecomposition",
    "cross_entropy",
    "cross_entropy_decomposition",
    "entropy",
    "js_divergence",
    "kl_divergence",
    "perplexity",
]


class CrossEntropyDecomposition(NamedTuple):
    r"""H(P), H(P, Q) and D(P||Q) per row, from :func:`cross_entropy_decomposition`.

    Attributes
    ----------
    entropy : array
        :math:`H(P)`.
    cross_entropy : array
        :math:`H(P, Q)`.
    kl_divergence : array
        :math:`D(P \,\|\, Q)`, computed directly (not as a difference of the other two).
    """

    entropy: Any
    cross_entropy: Any
    kl_divergence: Any


# ----------------------------------------------------------------------------- plumbing


class _Prepared(NamedTuple):
    """A measure's inputs after the boundary: the namespace, the sides (class axis last,
    in the compute dtype), the compute dtype, ``log(base)`` (None: nats) and the sides'
    validations, pending: the fused kernel screens the values in its own pass, the
    generic path runs them first (:meth:`check`)."""

    xp: ModuleType
    sides: tuple[Side, ...]
    dtype: Any
    log_base: float | None
    pending: list[PendingCheck]

    def check(self) -> None:
        """Run the pending validations, in argument order (they raise on bad input)."""
        for pending in self.pending:
            pending.run()

    def total(self, terms: Callable[..., Array], *sides: Side) -> Array:
        """``terms(*sides)`` summed over the class axis, in nats."""
        return sum_over_classes(terms, *sides, xp=self.xp, out_dtype=self.dtype)

    def result(self, nats: Array) -> Array:
        """``nats`` in the requested unit, a NumPy scalar for a single NumPy row."""
        return finalize(nats, xp=self.xp, log_base=self.log_base)

    def measure(self, want: int, generic: Callable[[_Prepared], Array]) -> Array:
        """The measure ``want`` (one bit of ``_fused``) in the requested unit: from the
        fused kernel where it applies, else the generic path's ``generic(m)`` (nats) by
        :meth:`exact`."""
        fused = self.fused(want)
        if fused is None:
            return self.exact(lambda m: m.result(generic(m)))
        out, batch = fused
        return out[0, 0] if batch == () else out[0].reshape(batch)

    def exact(self, compute: Callable[[_Prepared], Any]) -> Any:
        """``compute(m)`` (the generic path, results in the requested unit), validated
        first; ``m`` is this call, or for :meth:`in_float32` sides its float64 twin
        (:meth:`widened`), whose results are rounded to float32 once, at the end."""
        self.check()
        if not self.in_float32():
            return compute(self)
        return to_float32(compute(self.widened()))

    def in_float32(self) -> bool:
        """Whether the sides are NumPy arrays computed in float32 (from float16 or
        float32 storage)."""
        return is_numpy(self.xp) and self.dtype == np.float32

    def widened(self) -> _Prepared:
        """This call on float64 copies of the sides (for :meth:`in_float32`): the
        generic path computes each term in the compute dtype, for float32 2 to 32 ulps
        off the float64 truth (along a strided class axis the most: issue 13); float64
        terms rounded once at the end are within about half an ulp. The validations
        pending on ``self`` must have run (none are carried over)."""
        sides = tuple(Side(np.asarray(s.values, np.float64), s.form, s.xp) for s in self.sides)
        return _Prepared(self.xp, sides, np.dtype(np.float64), self.log_base, [])

    def fused(self, want: int) -> tuple[np.ndarray, tuple[int, ...]] | None:
        """The measures ``want`` (bits of ``_fused``) of P and Q (P twice for one side)
        in the requested unit, from the fused kernel, which also screens the values for
        the pending validations (run in full only if a row is suspect): one row per
        measure (in the order of the bits) of the flattened batch, and the batch shape
        (``out[k, 0]`` is a NumPy scalar of the dtype, as :meth:`result` gives for one
        row). None where the kernel does not apply (see :func:`_fused_rows`), with the
        validations still pending."""
        rows = _fused_rows(self.sides, want=want)
        if rows is None:
            return None
        a, b, batch = rows
        pending = self.pending  # P's check, then Q's; Q of H(P) is not screened
        out, suspect = _fused.measure_rows(
            a,
            b,
            forms=(self.sides[0].form, self.sides[-1].form),
            want=want,
            log_base=self.log_base,
            tolerances=(
                pending[0].row_sum_tolerance() if pending else None,
                pending[1].row_sum_tolerance() if len(pending) > 1 else None,
            ),
        )
        if suspect:
            self.check()  # raises the validation's message (the screen may be stricter)
        return out, batch


def _fused_rows(
    sides: tuple[Side, ...], *, want: int
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]] | None:
    """The sides' values as 2-D ``(rows, classes)`` NumPy arrays for the fused kernel
    (broadcast against each other, without copies), with the batch shape; None where
    the kernel does not take them (``_fused.operands``, ``_fused.reshaped``) or when
    the entropy of P is wanted beside a measure whose batch shape P's is not.

    Float32 sides of every form take the kernel, which computes each term in float64
    and rounds once (issue 13: float32 logits took NumPy's float32 path, 2 to 4 ulps
    off the float64 truth when C-contiguous, 16 to 32 along a strided class axis,
    whose float32 sums are naive; the kernel costs up to 2x their time on large
    inputs, see ``_fused.py``)."""
    values = sides[0].values
    pair = _fused.operands(values, sides[-1].values)
    if pair is None or (want & _fused.ENTROPY and pair[0].shape != values.shape):
        return None
    a, b = pair
    if a.ndim == 1:
        return a[None], b[None], ()
    if a.ndim == 2:
        return a, b, a.shape[:1]
    a_rows, b_rows = (_fused.reshaped(x, (-1, x.shape[-1])) for x in pair)
    if a_rows is None or b_rows is None:
        return None
    return a_rows, b_rows, a.shape[:-1]


def _prepare_one(
    p: object, *, axis: int, base: float | None, p_form: str, validate: bool
) -> _Prepared:
    log_base = check_base(base)
    form = check_form(p_form, name="p_form")
    xp, (arr,) = namespace(p, names=("p",))
    pending: list[PendingCheck] = []
    side, dtype = prepare_one(
        arr, name="p", form=form, axis=axis, xp=xp, validate=validate, pending=pending
    )
    return _Prepared(xp, (side,), dtype, log_base_in(base, log_base, dtype), pending)


def _prepare_two(
    p: object,
    q: object,
    *,
    axis: int,
    base: float | None,
    p_form: str,
    q_form: str,
    validate: bool,
) -> _Prepared:
    log_base = check_base(base)
    forms = (check_form(p_form, name="p_form"), check_form(q_form, name="q_form"))
    xp, (p_arr, q_arr) = namespace(p, q, names=("p", "q"))
    pending: list[PendingCheck] = []
    side_p, side_q, dtype = prepare_pair(
        p_arr,
        q_arr,
        names=("p", "q"),
        forms=forms,
        axis=axis,
        xp=xp,
        validate=validate,
        pending=pending,
    )
    log_base = log_base_in(base, log_base, dtype)
    return _Prepared(xp, (side_p, side_q), dtype, log_base, pending)


def _entropy_terms(side: Side) -> Array:
    if side.form == "probs":
        return entropy_terms(side.values, xp=side.xp)
    return entropy_terms_from_log(side.log_probs(), xp=side.xp)


def _cross_entropy_terms(side_p: Side, side_q: Side) -> Array:
    if side_p.form == "probs" and side_q.form == "probs":
        return cross_terms_from_probs(side_p.values, side_q.values, xp=side_p.xp)
    if side_p.form == "probs":
        return cross_terms(side_p.probs(), side_q.log_probs(), xp=side_p.xp)
    return cross_terms_from_log(
        side_p.probs(), side_p.log_probs(), side_q.log_probs(), xp=side_p.xp
    )


def _kl_terms(side_p: Side, side_q: Side) -> Array:
    if side_p.form == "probs" and side_q.form == "probs":
        return kl_terms(side_p.values, side_q.values, xp=side_p.xp)
    if side_p.form == "logits" and side_q.form == "logits":  # both sum to 1: no cancellation
        return kl_terms_from_normalised_logs(side_p.log_probs(), side_q.log_probs(), xp=side_p.xp)
    exact_p = side_p.values if side_p.form == "probs" else None  # (subnormal ones kept)
    return kl_terms_from_log(side_p.log_probs(), side_q.log_probs(), xp=side_p.xp, p=exact_p)


# The generic KL of probabilities stands where its error bound is within this fraction
# of it (the fused kernel's ``_KL64_TOLERANCE``).
_KL_TOLERANCE = 2.0**-47


def _kl_nats(m: _Prepared) -> Array:
    r"""D(P||Q) in nats on the generic path. Of two sides of probabilities, the plain
    sum of :func:`kl_terms` where its error bound (each term :math:`4.5u`, the backend's
    pairwise sum :math:`(\lceil\log_2 n\rceil + 2)u`, of :math:`\sum_i|t_i|`) is within
    :data:`_KL_TOLERANCE` of it, else (nearly equal rows: the terms cancel, issue 13)
    the sum of :func:`kl_terms_nonnegative` plus the mass difference
    :math:`\sum_i (p_i - q_i)`, corrected to the exactly rounded sum of the mass
    difference and the terms, those of ratios near 1 as double-doubles
    (:func:`_mass_correction` with :func:`kl_terms_nonnegative_dd`: the two sums can
    cancel; the correction is a constant, so gradients are those of the plain sums).
    Arrays whose values cannot be read (meta tensors, JAX tracers) keep the plain sum."""
    side_p, side_q = m.sides
    if side_p.form == side_q.form == "logits":  # exact: the non-negative terms q phi(r)
        if _no_float64(m):  # (branch jaxf32: JAX float32 without x64)
            return m.total(_kl_terms_of_logits32, *m.sides)
        return m.total(_kl_terms, *m.sides)
    if side_p.form != "probs" or side_q.form != "probs":
        return _kl_mixed_nats(m)
    if _no_float64(m):  # (branch jaxkl1: JAX float32 without x64)
        return _kl_narrow_nats(m, m.total(_kl_terms, *m.sides))
    xp = m.xp
    if is_numpy(xp):  # by blocks (``_blocks.py``): the terms twice
        plain = m.total(_kl_terms, *m.sides)
        magnitude = m.total(lambda a, b: xp.abs(_kl_terms(a, b)), side_p, side_q)
    else:  # one expression: the terms once
        terms = _kl_terms(side_p, side_q)
        plain = reduce_sum(terms, xp=xp, out_dtype=m.dtype)
        magnitude = reduce_sum(xp.abs(terms), xp=xp, out_dtype=m.dtype)
    n = int(side_p.values.shape[-1])
    u = float(xp.finfo(m.dtype).eps) / 2
    error = (4.5 + math.ceil(math.log2(max(n, 2))) + 2) * u * magnitude + u * xp.abs(plain)
    careful = ~(error <= _KL_TOLERANCE * xp.abs(plain)) & xp.isfinite(plain)
    try:
        any_careful = bool(xp.any(careful))
    except (RuntimeError, TypeError, ValueError):  # values unknown (meta tensors, tracers)
        return plain
    if not any_careful or is_jax_tracer(plain):  # jax.grad: bool() reads; no exact pass
        return plain
    nonnegative = m.total(lambda a, b: kl_terms_nonnegative(a.values, b.values, xp=xp), *m.sides)
    mass = m.total(lambda a, b: a.values - b.values, *m.sides)
    computed = nonnegative + mass
    correction = _mass_correction(
        side_p.values, side_q.values, computed, careful, xp=xp, terms=True
    )
    return xp.where(careful, computed + correction, plain)


def _no_float64(m: _Prepared) -> bool:
    """Whether ``m``'s sides are float32 arrays of a library other than NumPy's on a
    device without float64 (JAX without x64, Apple's MPS): those that
    :func:`.._xp.float64_twin` does not widen."""
    xp = m.xp
    if is_numpy(xp) or xp.finfo(m.dtype).bits != 32:
        return False
    return float64_twin(*(s.values for s in m.sides)) is None


def _kl_terms_of_logits32(side_p: Side, side_q: Side) -> Array:
    r""":func:`_kl_terms` of two sides of float32 logits where the device has no float64
    (branch jaxf32): :math:`q_i\varphi(r_i)` from the corrected log-ratios of
    :func:`_log_ratios` (each :math:`x_i - m` an exact pair, their difference by TwoSum,
    the log-partitions' difference corrected), not from two rounded log-softmaxes, whose
    entries are each :math:`u|\log p_i|` off (JAX rows 1e-7 apart were 2.6e8 float32
    ulps off)."""
    r = _log_ratios(side_p, side_q, narrow=True)
    return kl_terms_from_normalised_logs(side_p.log_probs(), side_q.log_probs(), xp=side_p.xp, r=r)


# The generic path's plain KL of other forms stands where its error bound is within this
# fraction of it (:func:`_kl_mixed_nats`).
_KL_MIXED_TOLERANCE = 2.0**-40


def _kl_mixed_nats(m: _Prepared) -> Array:
    r"""D(P||Q) in nats on the generic path where the sides are not both probabilities
    nor both logits: the plain sum of :func:`_kl_terms` where its error bound is within
    :data:`_KL_MIXED_TOLERANCE` of it, else (nearly equal rows: the terms cancel,
    issue 13, branch kltiny2) the exactly rounded sum of
    :func:`._kl_mixed.kl_mixed_parts` (the Bregman terms and the masses' difference).

    The bound, from the plain sum alone (no other pass over the classes): each term
    :math:`t_i = p_i(\log p_i - \log q_i)` errs by the rounding of its logs
    (:math:`2u|\log p_i|`, :math:`2u|\log q_i|`, and each logits side's
    log-partition, as :func:`._js_mixed.careful_rows` takes it) and the sum by
    :math:`(\lceil\log_2 n\rceil + 4)u\sum_i|t_i|`; with :math:`\sum_i p_i|\log
    p_i| = H(P) \le \log n`, :math:`\sum_i p_i|\log q_i| = H(P) + D` and
    :math:`\sum_i |t_i| \le 2H(P) + D`, all is within that factor of :math:`2 + 4\log
    n + 2|D|` (valid sides; ``validate=False`` rows beyond it keep the plain sum, as
    before). Random rows stand (:math:`D` above about 0.2 for :math:`n = 1000`). Float64
    only (float32 NumPy arrays are widened before, :meth:`_Prepared.exact`; other
    float32 arrays and arrays whose values cannot be read, meta tensors and JAX
    tracers, keep the plain sum). The value is the exact sum, the gradient the plain
    sum's."""
    xp = m.xp
    plain = m.total(_kl_terms, *m.sides)
    if _no_float64(m):  # (branch jaxkl1: JAX float32 without x64)
        return _kl_narrow_nats(m, plain)
    if m.dtype != xp.float64:
        return plain
    side_p, side_q = m.sides
    n = max(int(side_p.values.shape[-1]), int(side_q.values.shape[-1]))
    u = float(xp.finfo(m.dtype).eps) / 2
    log_partition = (math.ceil(math.log2(n + 1)) + 6.0) * u + 3.0 * u * math.log(n + 1)
    side_error = sum(log_partition for s in m.sides if s.form == "logits")
    factor = (math.ceil(math.log2(max(n, 2))) + 4.0) * u + side_error
    with numpy_errstate(plain, xp, invalid="ignore"):
        size = xp.abs(plain)
        scale = (2.0 + 4.0 * math.log(n)) + 2.0 * size
        careful = ~(factor * scale <= _KL_MIXED_TOLERANCE * size) & xp.isfinite(plain)
    try:
        if is_jax_tracer(plain) or not truth_of(xp.any(careful)):
            return plain
    except ValuelessArrayError:
        return plain
    exact = _kl_mixed_exact(m, careful, plain)
    # the exact value, with the plain sum's gradient (plain - plain is 0 exactly; NaN
    # on the rows of an infinite plain sum, which keep it)
    with numpy_errstate(plain, xp, invalid="ignore"):
        zero = plain - _constant(plain, plain.dtype, xp=xp)
    return xp.where(careful, exact + zero, plain)


def _kl_narrow_nats(m: _Prepared, plain: Array) -> Array:
    r"""D(P||Q) in nats of float32 sides where the device has no float64 (JAX without
    x64, Apple's MPS), forms other than two sides of logits: ``_kl_mixed.kl_narrow``
    (float32 words: the Bregman terms and the masses' difference summed exactly) on
    every row, with the plain sum's gradient (branch jaxkl1: rows 1e-7 to 1e-3 apart
    were up to 2.25e15 float32 ulps off, ``benchmarks/check_jax_float32_ulps.py``);
    the masses' exact words only where a row fails its screen (branch jaxkl2; random
    rows keep the screen's value, within an ulp of the exact one), under JAX on the
    chunks of rows that hold failing rows (branch jaxkl3: one ``jax.lax.cond`` a
    chunk of :math:`\lceil R/8\rceil` rows, not one a call). Concrete JAX arrays take
    one ``jax.jit`` of it (eager JAX compiles each operation); rows whose value is not
    finite, and rows of more than :math:`2^{20} - 2` classes, keep the plain sum."""
    xp = m.xp
    side_p, side_q = m.sides
    classes = (int(side_p.values.shape[-1]), int(side_q.values.shape[-1]))
    if 0 in classes or max(classes) > 2**20 - 2:  # (the exact sums' limit)
        return plain
    call = _narrow_call(side_p.form, side_q.form, xp)
    values = (_perplexity_dd.constant(s.values, xp) for s in m.sides)
    exact = call(*values)
    exact = xp.reshape(exact, tuple(plain.shape))
    zero = plain - _perplexity_dd.constant(plain, xp)  # (0, with the plain sum's gradient)
    return xp.where(xp.isfinite(exact), exact + zero, plain)


@functools.cache
def _narrow_call(p_form: str, q_form: str, xp: ModuleType) -> Callable[[Array, Array], Array]:
    """:func:`._kl_mixed.kl_narrow` for the forms, ``jax.jit``'d for JAX (made once; a
    traced call inlines it)."""

    def call(a: Array, b: Array) -> Array:
        return kl_narrow(a, p_form, b, q_form, xp=xp)

    if "jax" not in getattr(xp, "__name__", ""):
        return call
    import jax  # (loaded: JAX arrays)

    return jax.jit(call)


def _kl_mixed_exact(m: _Prepared, careful: Array, plain: Array) -> Array:
    """:func:`._kl_mixed.kl_mixed_parts` of the ``careful`` rows (gathered), each
    row's parts summed exactly and rounded once (:func:`_mass_correction`); ``plain``
    for the other rows and where a part is not finite. NumPy takes the rows by blocks
    of about :data:`_KL_MIXED_BLOCK` elements, as do PyTorch CPU tensors
    (:func:`_kl_mixed_block`, :func:`_kl_mixed_rows`; the same bits)."""
    xp = m.xp
    side_p, side_q = m.sides
    batch = tuple(plain.shape)
    n = max(int(side_p.values.shape[-1]), int(side_q.values.shape[-1]))
    count = math.prod(batch)
    a, b = (
        xp.reshape(xp.broadcast_to(_constant(s.values, m.dtype, xp=xp), (*batch, n)), (count, n))
        for s in m.sides
    )
    flags = xp.reshape(careful, (count,))
    index = xp.nonzero(flags)[0]
    gathered = int(index.shape[0]) < count
    if gathered:
        a, b = xp.take(a, index, axis=0), xp.take(b, index, axis=0)
    forms = (side_p.form, side_q.form)
    rows = int(a.shape[0])
    block = _kl_mixed_block(a, xp=xp)
    step = max(1, block // max(n, 1)) if block else rows
    if step >= rows:
        total, finite = _kl_mixed_rows(a, b, forms, xp=xp)
    else:  # arrays in host memory: by blocks of rows, whose temporaries stay in cache
        pieces = [
            _kl_mixed_rows(a[start : start + step], b[start : start + step], forms, xp=xp)
            for start in range(0, rows, step)
        ]
        total = xp.concat([t for t, _ in pieces])
        finite = xp.concat([f for _, f in pieces])
    flat = xp.reshape(_constant(plain, plain.dtype, xp=xp), (count,))
    if gathered:
        place = xp.cumulative_sum(xp.astype(flags, index.dtype)) - 1
        place = xp.where(flags, place, xp.zeros_like(place))
        total, finite = xp.take(total, place, axis=0), xp.take(finite, place, axis=0)
    return xp.reshape(xp.where(flags & finite, total, flat), batch)


def _kl_mixed_block(x: Array, *, xp: ModuleType) -> int:
    """Elements a block of :func:`_kl_mixed_exact`'s rows: :data:`_KL_MIXED_BLOCK` for
    NumPy arrays and PyTorch CPU tensors, 0 (one block) for other arrays (GPUs and JIT
    compilers prefer whole arrays, ``_blocks.py``)."""
    if is_numpy(xp) or (type(x).__module__.startswith("torch") and str(device(x)) == "cpu"):
        return _KL_MIXED_BLOCK
    return 0


_KL_MIXED_BLOCK = 1 << 15
"""Elements a block of :func:`_kl_mixed_exact`'s rows (:func:`_kl_mixed_block`), so that
its double-double temporaries (some 30 alive at once) stay in the caches (branch
klexact3, 1000 x 1000 nearly equal log-probabilities, CPU ms, loaded: NumPy blocks of
2^13 201, 2^14 180, 2^15 173, 2^16 160 to 320, one block 570; float64 torch, one
thread, 2^15 276, 2^17 298, 2^19 397, one block 637; each block pays about 400
calls)."""


def _kl_mixed_rows(
    a: Array, b: Array, forms: tuple[str, str], *, xp: ModuleType
) -> tuple[Array, Array]:
    """For rows ``a``, ``b`` (2-D, float64): the exactly rounded sum of each row's
    :func:`._kl_mixed.kl_mixed_parts` and whether they are all finite (else 0)."""
    with numpy_errstate(a, xp, all="ignore"):
        plus, minus = kl_mixed_parts(a, forms[0], b, forms[1], xp=xp)
        finite = xp.all(xp.isfinite(plus), axis=-1) & xp.all(xp.isfinite(minus), axis=-1)
        if not bool(xp.all(finite)):
            plus, minus = (xp.where(finite[:, None], x, xp.zeros_like(x)) for x in (plus, minus))
        zero = xp.zeros(finite.shape, dtype=plus.dtype, device=device(plus))
        return _mass_correction(plus, minus, zero, finite, xp=xp), finite


def _mass_correction(
    p: Array, q: Array, mass: Array, rows: Array, *, xp: ModuleType, terms: bool = False
) -> Array:
    r"""For the ``rows`` (a mask of the batch shape): the exactly rounded
    :math:`\sum_i (p_i - q_i)` minus the computed ``mass``, 0 for the other rows; a
    constant (no gradient) of ``mass``'s dtype, on its device. With ``terms``, the sum
    also takes the float64 double-double terms of :func:`kl_terms_nonnegative_dd`
    (``mass`` then the computed KL): D rounded once (review follow-up: the terms of
    nearly equal rows cancel against the mass difference: 19 ulps off before).

    Arrays on a device without float64, and arrays in host memory with few such rows
    (:func:`_host_is_cheaper`), take ``math.fsum`` on the host
    (:func:`_exact_mass_difference`). Others take :class:`_MassExtraction` on the
    ``rows`` (gathered first where they are not all of them), in float64 in their own
    namespace: no per-row loop, no host copy (float32 values are exact in float64, so
    the result is fsum's float64 value rounded to ``mass``'s dtype, as on the host;
    NumPy long double values are rounded to float64 first, as for fsum). Rows not
    certified after :data:`_MASS_LEVELS` levels (a sum far below the row's largest
    difference) get more levels, after one synchronisation each; ``math.fsum`` takes
    only the rows no level can certify (a sum within the error bound of a midpoint
    between floats, values beyond :data:`_MASS_LIMIT`).
    """
    work = accumulation_dtype(mass.dtype, xp=xp, device=device(mass))
    if work != xp.float64:
        exact = _exact_mass_difference(p, q, mass, rows, terms=terms)
        return xp.asarray(exact, dtype=mass.dtype, device=device(mass))
    ns = np if is_numpy(xp) and _NUMPY_ARRAY_API else xp
    batch, n = tuple(mass.shape), max(int(p.shape[-1]), int(q.shape[-1]))
    count = math.prod(batch)
    index = None
    if not _host_is_cheaper(count, n, xp=xp, where=device(mass)):  # all rows: no count
        chosen = ns.reshape(ns.broadcast_to(rows, batch), (count,))
        index = ns.nonzero(chosen)[0]
    if index is None or _host_is_cheaper(int(index.shape[0]), n, xp=xp, where=device(mass)):
        exact = _exact_mass_difference(p, q, mass, rows, terms=terms)
        return xp.asarray(exact, dtype=mass.dtype, device=device(mass))
    p2, q2 = (
        ns.reshape(ns.broadcast_to(_constant(x, work, xp=ns), (*batch, n)), (count, n))
        for x in (p, q)
    )
    computed = ns.reshape(_constant(mass, work, xp=ns), (count,))
    gathered = int(index.shape[0]) < count
    if gathered:
        p2, q2, computed = (ns.take(x, index, axis=0) for x in (p2, q2, computed))
    with numpy_errstate(p2, ns, all="ignore"):  # NumPy: rows not taken may hold inf or NaN
        if terms:
            correction = _kl_correction(p2, q2, computed, xp=ns)
        else:
            correction = _certified_mass_difference(p2, q2, computed, xp=ns)
    if gathered:
        position = ns.cumulative_sum(ns.astype(chosen, index.dtype)) - 1
        at = ns.take(correction, ns.clip(position, 0, None), axis=0)
        correction = ns.where(chosen, at, ns.zeros_like(at))
    correction = ns.reshape(correction, batch)
    return correction if correction.dtype == mass.dtype else ns.astype(correction, mass.dtype)


_NUMPY_ARRAY_API = hasattr(np, "cumulative_sum")
"""Whether ``numpy`` itself has the standard's functions (2.1 and later), which
:func:`_mass_correction` then calls directly: array-api-compat's wrappers cost
microseconds a call, and copies (100 x 1000 rows: 1.3 ms directly, 4.0 ms wrapped)."""

_HOST_MASS_COST = {"numpy": 1000, "cpu": 3000}
"""The largest rows x (classes + 80) that ``math.fsum`` takes (:func:`_host_is_cheaper`),
for NumPy and for other arrays in host memory (PyTorch CPU tensors)."""


def _host_is_cheaper(rows: int, classes: int, *, xp: ModuleType, where: Any) -> bool:
    """Whether ``math.fsum`` on the host is cheaper than :class:`_MassExtraction` for
    ``rows`` of ``classes`` in host memory (never for other devices: a host copy and a
    synchronisation). fsum costs about 8 us a row and 0.1 us a class; the extraction
    about 90 us a call on NumPy (4 x 10 rows: 0.04 ms by fsum, 0.12 ms extracted; 16 x
    100: 0.22 and 0.14 ms) and 300 us in PyTorch (about 150 operations of 2 us; 1 x 10:
    0.31 and 0.47 ms a KL call), plus 0.02 us an element. Same bits either way."""
    if is_numpy(xp):
        return rows * (classes + 80) <= _HOST_MASS_COST["numpy"]
    return str(where) == "cpu" and rows * (classes + 80) <= _HOST_MASS_COST["cpu"]


def _kl_correction(p: Array, q: Array, computed: Array, *, xp: ModuleType) -> Array:
    r"""The KL of each row of ``p`` and ``q`` (2-D, float64) minus ``computed``, from
    :math:`D = \sum_i t_i + \sum_i (p_i - q_i)` with the terms as double-doubles
    (:func:`kl_terms_nonnegative_dd`) summed pairwise in double-double
    (:func:`_pairwise_dd_sum`: no cancellation, the terms are non-negative) and the mass
    difference as :math:`m + y + z`, :math:`m` its float sum and :math:`y + z` the
    extraction's double-double of :math:`\sum_i (p_i - q_i) - m` (exact where its bound
    is 0, as for rows of nearly equal floats; :math:`z = 0` for the rare rows certified
    by ``math.fsum`` alone). The parts, each a few ulps of :math:`D` times the
    cancellation, are added in float64: :math:`D` to about :math:`2^{-100}` of the
    larger sum, rounded once by the caller (``computed`` plus this)."""
    high, low = kl_terms_nonnegative_dd(p, q, xp=xp)
    terms_hi, terms_lo = _pairwise_dd_sum(high, low, xp=xp)
    mass = xp.sum(p - q, axis=-1)
    y, z = _certified_mass_difference(p, q, mass, xp=xp, residue=True)
    approximate, error = _two_sum(terms_hi, mass)
    return (approximate - computed) + ((error + terms_lo) + (y + z))


def _pairwise_dd_sum(high: Array, low: Array, *, xp: ModuleType) -> tuple[Array, Array]:
    """The double-double sum ``(hi, lo)`` over the last axis of the pairs ``high +
    low``: TwoSum of halves, ``ceil(log2 n)`` steps, the low parts added in float64."""
    while int(high.shape[-1]) > 1:
        if int(high.shape[-1]) % 2:
            pad = xp.zeros_like(high[..., :1])
            high, low = xp.concat([high, pad], axis=-1), xp.concat([low, pad], axis=-1)
        high, error = _two_sum(high[..., 0::2], high[..., 1::2])
        low = (low[..., 0::2] + low[..., 1::2]) + error
    return high[..., 0], low[..., 0]


def _certified_mass_difference(
    p: Array,
    q: Array,
    computed: Array,
    *,
    xp: ModuleType,
    residue: bool = False,
) -> Any:
    r"""The float64 :math:`\sum_i (p_i - q_i)` minus ``computed`` rounded to nearest,
    for each row of ``p`` and ``q`` (2-D, float64): :class:`_MassExtraction`, with more
    levels while a row that more levels can settle is not certified, and
    :func:`_exact_mass_difference` for the rows none can. With ``residue``, the pair
    ``(rounded, z)``: the sum within the bound of ``rounded + z`` (0 where fsum took it)."""
    extraction = _MassExtraction(p, q, computed, xp=xp)
    extraction.extract(_MASS_LEVELS)
    rounded, certified = extraction.rounded()
    while bool(xp.any(~certified)):
        more = ~certified & extraction.inside & ~extraction.settled
        if extraction.exhausted or not bool(xp.any(more)):
            exact = _exact_mass_difference(p, q, computed, ~certified)
            host = xp.asarray(exact, dtype=rounded.dtype, device=device(rounded))
            rounded = xp.where(certified, rounded, host)
            break
        extraction.extract(_MASS_LEVELS)
        rounded, certified = extraction.rounded()
    if residue:
        return rounded, xp.where(certified, extraction.residue, xp.zeros_like(rounded))
    return rounded


def _constant(x: Array, dtype: Any, *, xp: ModuleType) -> Array:
    """``x`` in ``dtype`` (exactly: ``dtype`` is at least as wide), without gradient (a
    PyTorch tensor detached from its graph)."""
    detach = getattr(x, "detach", None)
    if callable(detach):
        x = detach()
    return x if x.dtype == dtype else xp.astype(x, dtype)


# Constants of :class:`_MassExtraction` (float64).
_EPS = 2.0**-53  # the unit roundoff u
_ETA = 2.0**-1074  # the smallest subnormal
_TINY = 2.0**-1022  # the smallest normal
_MASS_LIMIT = 2.0**960  # largest row maximum taken: 2^53 and 2^M times it stay finite
_MASS_LEVELS = 3  # levels a round, 53 - M bits each (126 bits below 2^M max|x| for M = 11)
_MAX_SHIFT = 26  # M at most: up to 2^26 - 2 terms a row


class _MassExtraction:
    r"""The float64 sum :math:`T = \sum_i (p_i - q_i) - c` of every row (:math:`c` =
    ``computed``) rounded to nearest (ties to even: ``math.fsum``'s value), with a mask
    of the rows where that rounding is certified; all in ``xp``, without a host copy.

    1. Error-free transformation of each difference (TwoSum, Knuth):
       :math:`p_i - q_i = d_i + e_i` exactly, :math:`|e_i| \le u|d_i|`
       (:math:`u = 2^{-53}`), so :math:`T = \sum_j x_j` exactly over the
       :math:`N = 2n + 1` values :math:`x = (d, e, -c)`.
    2. Exact extraction (ExtractVector, Rump, Ogita and Oishi 2008, Lemma 3.3), one
       level at a time (:meth:`extract`): with :math:`2^M \ge N + 2` and
       :math:`\sigma_0 = 2^M \cdot 2^{\lceil\log_2 \max_j|x_j|\rceil}` (NextPowerTwo,
       their Algorithm 3.5, exact: :func:`._numerics.next_power_of_two`),
       :math:`\sigma_{k+1} = 2^M u\,\sigma_k`, level
       :math:`k` splits each :math:`x_j = t_j + x_j'` exactly by :math:`t_j = (\sigma_k
       + x_j) - \sigma_k`: as :math:`|x_j| \le 2^{-M}\sigma_k`, every :math:`t_j` is a
       multiple of :math:`u\sigma_k`, :math:`|x_j'| \le u\sigma_k = 2^{-M}\sigma_{k+1}`,
       and every partial sum of the :math:`t_j` is a multiple of :math:`u\sigma_k`
       below :math:`N 2^{-M}\sigma_k < \sigma_k`, hence a float: :math:`\tau_k =
       \sum_j t_j` is exact in any order (the backend's reduction). :math:`\sigma_k` is
       kept at :math:`2^{-1022}` or above, where the same holds on the subnormal grid
       (a level at :math:`2^{-1022}` takes every remaining :math:`x_j` whole). The
       :math:`e_j` join at level 1: :math:`|e_j| \le 2^{-M}u\sigma_0` rounds to 0 at
       level 0. After :math:`L` levels, :math:`T = \sum_k \tau_k + R` exactly, with
       :math:`R = \sum_j x_j^{(L)}` computed as :math:`\rho`,
       :math:`|R - \rho| \le \gamma_{N-1}\sum_j|x_j^{(L)}|`.
    3. :meth:`rounded`: :math:`(s, \epsilon_k)` = VecSum of :math:`(\tau_0, \ldots,
       \tau_{L-1}, \rho)` (TwoSum in a chain, exact: Ogita, Rump and Oishi 2005,
       Algorithm 4.3), :math:`r = \operatorname{fl}(\sum_k \epsilon_k)` (error at most
       :math:`\gamma_{L-1}\sum_k|\epsilon_k|`), :math:`(y, z)` = TwoSum(:math:`s, r`),
       :math:`y = \operatorname{fl}(s + r)`: :math:`|T - y - z| \le \delta \le b/2`,
       :math:`b` the two bounds with factors doubled, which also covers their own
       rounding (:func:`_sum_error_bound`).
    4. Certificate: :math:`y` is :math:`T` rounded to nearest where :math:`b = 0`
       (then :math:`T = s + r` exactly and :math:`y` is its rounding) or where
       :math:`b < \operatorname{fl}(g/2 - |z|)`, :math:`g` the gap from :math:`|y|` to
       the next float toward 0 (the smaller of its two gaps; :math:`|z| \le g/2`, and
       the subtraction is exact for :math:`|z| \ge g/4`, else within :math:`u` of a
       value :math:`\ge g/4`): then :math:`|T - y| \le |z| + b/2 < g/2`.

    After :math:`L` levels :math:`b \approx 4N^2u^2\sigma_{L-1}` (about
    :math:`2^{-155}\max_j|x_j|` for :math:`n = 1000`, :math:`L = 3`), and 0 where the
    residuals vanish or are subnormal (nearly equal rows: usually). A row stays
    uncertified where :math:`|T|` is below about :math:`2^{52}b` (more levels,
    :meth:`extract`, settle it), where :math:`T` lies within :math:`b` of a midpoint
    between floats, and (``inside`` false) beyond :data:`_MASS_LIMIT` or with
    :math:`N > 2^{26} - 2`. The work is :math:`O(Ln)` elementwise operations and
    :math:`L + 3` reductions over the classes, whatever the values. Round to nearest
    is assumed (IEEE 754 float64 with subnormals, as PyTorch and CuPy compute on CPU
    and GPU).

    References
    ----------
    S. M. Rump, T. Ogita, S. Oishi, "Accurate floating-point summation part I:
    faithful rounding", SIAM J. Sci. Comput. 31(1), 189-224 (2008),
    doi:10.1137/050645671. T. Ogita, S. M. Rump, S. Oishi, "Accurate sum and dot
    product", SIAM J. Sci. Comput. 26(6), 1955-1988 (2005), doi:10.1137/030601818.
    """

    def __init__(self, p: Array, q: Array, computed: Array, *, xp: ModuleType) -> None:
        self.xp = xp
        self.terms = 2 * max(int(p.shape[-1]), int(q.shape[-1])) + 1
        self.shift = max(2, math.ceil(math.log2(self.terms + 2)))
        d, self.low = _two_difference(p, q)
        self.values = d  # the x_j still to extract: d, then d and e side by side
        self.rest = -computed
        mu = xp.maximum(xp.max(xp.abs(d), axis=-1), xp.abs(self.rest))
        self.inside = (mu <= _MASS_LIMIT) & (self.shift <= _MAX_SHIFT)
        sigma = next_power_of_two(xp.where(self.inside, mu, 0.0), xp=xp)
        self.sigma = xp.clip(sigma * 2.0**self.shift, _TINY, None)
        self.taus: list[Array] = []

    @property
    def exhausted(self) -> bool:
        """Whether the last level ran at :math:`\\sigma = 2^{-1022}` for every row (from
        :math:`2^{961 + M}` down, :math:`53 - M` bits a level): no residual is left."""
        levels = math.ceil((961 + 1022 + self.shift) / (53 - self.shift)) + 1
        return len(self.taus) >= levels

    def extract(self, levels: int) -> None:
        """Run ``levels`` more extraction levels (step 2)."""
        xp = self.xp
        for _ in range(levels):
            if len(self.taus) == 1:
                self.values = xp.concat([self.values, self.low], axis=-1)
            column = xp.expand_dims(self.sigma, axis=-1)
            top_rest = (self.sigma + self.rest) - self.sigma
            top = (column + self.values) - column
            self.rest, self.values = self.rest - top_rest, self.values - top
            self.taus.append(top_rest + xp.sum(top, axis=-1))
            self.sigma = xp.clip(self.sigma * 2.0 ** (self.shift - 53), _TINY, None)

    def rounded(self) -> tuple[Array, Array]:
        """``(y, certified)`` after the levels so far (steps 3 and 4)."""
        xp = self.xp
        rho = self.rest + xp.sum(self.values, axis=-1)
        spread = xp.abs(self.rest) + xp.sum(xp.abs(self.values), axis=-1)
        total, errors = self.taus[0], []
        for value in (*self.taus[1:], rho):
            total, error = _two_sum(total, value)
            errors.append(error)
        # the errors' sum by TwoSums, whose own errors (``lost``) say whether it is exact
        # (branch klexact3: the rows of nearly equal log-probabilities tie at a midpoint
        # about one time in 14, on parts 2 bits finer than the KL's ulp; fsum took them)
        tail, tail_spread, lost = errors[0], xp.abs(errors[0]), xp.zeros_like(errors[0])
        for error in errors[1:]:
            tail, residual = _two_sum(tail, error)
            tail_spread, lost = tail_spread + xp.abs(error), lost + xp.abs(residual)
        rounded, residue = _two_sum(total, tail)
        self.residue = residue  # T - rounded, within the bound
        # nothing left to extract: more levels cannot certify the row (an exact tie:
        # math.fsum takes it, branch kltiny2: 11 of 300 nearly equal rows went on
        # through all 47 levels)
        self.settled = spread == 0
        bound = _sum_error_bound(spread, self.terms, xp=xp)
        tail_bound = _sum_error_bound(tail_spread, len(errors), xp=xp)
        bound = bound + xp.where(lost == 0, xp.zeros_like(tail_bound), tail_bound)
        magnitude = xp.abs(rounded)
        gap = magnitude - xp.nextafter(magnitude, xp.zeros_like(magnitude))
        room = gap * 0.5 - xp.abs(residue)
        return rounded, self.inside & ((bound == 0) | (bound < room))


def _sum_error_bound(spread: Array, count: int, *, xp: ModuleType) -> Array:
    r"""Twice an upper bound on the error of a float64 sum of ``count`` terms in any
    order, from ``spread``, the computed sum of their magnitudes:
    :math:`4\,\text{count}\,u \cdot \text{spread} + 2^{-1074}` (the recursive
    bound :math:`\gamma_{\text{count}-1}` times the true sum of magnitudes, which is at
    most :math:`(1 + \gamma_{\text{count}-1})` spread; the :math:`2^{-1074}` covers the
    product's underflow); 0 where spread is below :math:`2^{-1022}`: then every partial
    sum (of the magnitudes, and so of the terms) lies on the subnormal grid below
    :math:`2^{-1022}`, where additions are exact."""
    bound = (4 * count * _EPS) * spread + _ETA
    return xp.where(spread < _TINY, 0.0, bound)


def _two_difference(a: Array, b: Array) -> tuple[Array, Array]:
    """``(s, e)`` with ``s = fl(a - b)`` and ``a - b = s + e`` exactly: ``_numerics._two_sum``
    of ``a`` and ``-b``, with the negation carried through (it commutes with rounding)."""
    s = a - b
    minus_b_virtual = s - a
    a_virtual = s - minus_b_virtual
    return s, (a - a_virtual) - (b + minus_b_virtual)


def _exact_mass_difference(
    p: Array,
    q: Array,
    mass: Array,
    rows: Array,
    *,
    terms: bool = False,
) -> np.ndarray:
    r"""For the ``rows`` (a mask of the batch shape): the exactly rounded
    :math:`\sum_i (p_i - q_i)` minus the computed ``mass``, from ``math.fsum`` of the
    entries on the host; 0 for the other rows. With ``terms``, the sum also takes each
    row's double-double terms (:func:`kl_terms_nonnegative_dd`): the KL minus ``mass``."""
    computed = np.asarray(to_numpy(mass, name="mass"), np.float64)
    chosen = np.broadcast_to(np.asarray(to_numpy(rows, name="rows"), bool), computed.shape)
    p_np, q_np = (np.asarray(to_numpy(x, name=n), np.float64) for x, n in ((p, "p"), (q, "q")))
    shape = (*computed.shape, max(p_np.shape[-1], q_np.shape[-1]))
    p_np, q_np = np.broadcast_to(p_np, shape), np.broadcast_to(q_np, shape)
    exact = np.zeros(computed.shape)
    for index in np.argwhere(chosen):
        at = tuple(index)
        values = [*p_np[at], *(-q_np[at]), -computed[at]]
        if terms:
            with np.errstate(all="ignore"):
                for part in kl_terms_nonnegative_dd(p_np[at], q_np[at], xp=np):
                    values.extend(part.tolist())
        exact[at] = math.fsum(values)
    return exact


def _js_terms(side_p: Side, side_q: Side, *, corrected: bool = True) -> Array:
    if side_p.form == "probs" or side_q.form == "probs":
        return js_terms(side_p.probs(), side_q.probs(), xp=side_p.xp)
    delta = _log_ratios(side_p, side_q, corrected=corrected)
    return js_terms_from_log_ratios(delta, side_p.probs(), side_q.probs(), xp=side_p.xp)


def _js_logits_log_probs(m: _Prepared) -> Array:
    r""":func:`_js_nats` of logits against log-probabilities (either side): the sum from
    the uncorrected log-ratios, and where the log-partition's error :math:`\epsilon`
    may move it by more than :math:`2^{-49}` of itself (by about
    :math:`\epsilon^2/8`, and :math:`\epsilon` times the log-probabilities' excess
    :math:`\sum_i e^{y_i} - 1` to first order: nearly equal rows) the corrected one
    (:func:`_log_ratios`; branch jsexact2: JS of logits and their own rounded
    log-softmax was 7e15 ulps off; the correction on every row took random rows 4.4x).
    Arrays traced by JAX take it under ``jax.lax.cond``."""
    xp = m.xp
    plain = m.total(functools.partial(_js_terms, corrected=False), *m.sides)
    bits = xp.finfo(plain.dtype).bits
    if bits < 32:
        return plain
    # float32 where the device has no float64 (JAX without x64): the corrected sum from
    # float32 double-words, within 2^-28 of itself (branch jaxf32: rows 1e-7 apart
    # were 1.5e7 float32 ulps off)
    tolerance = 2.0**-49 if bits == 64 else 2.0**-28
    y = m.sides[0].values if m.sides[0].form == "log_probs" else m.sides[1].values
    n = int(y.shape[-1])
    u = float(xp.finfo(plain.dtype).eps) / 2
    # the log-partition's error bound (_js_mixed_nats's), doubled: c's own rounding
    epsilon = 2.0 * ((math.ceil(math.log2(n + 1)) + 6.0) * u + 3.0 * u * math.log(n + 1))
    with numpy_errstate(y, xp, all="ignore"):
        rough = xp.abs(xp.sum(xp.exp(y), axis=-1) - 1.0) + n * u
        careful = ~(epsilon * (epsilon / 4.0 + rough) <= tolerance * plain) & xp.isfinite(plain)

    def chosen() -> Array:
        return xp.where(careful, m.total(_js_terms, *m.sides), plain)

    if is_jax_tracer(plain):
        import jax  # (loaded: a tracer)

        return jax.lax.cond(xp.any(careful), chosen, lambda: plain)
    return chosen() if bool(xp.any(careful)) else plain


def _log_ratios(
    side_p: Side, side_q: Side, *, corrected: bool = True, narrow: bool = False
) -> Array:
    r""":math:`\delta_i = \log p_i - \log q_i` of two sides of logits or log-probabilities
    as :math:`(x_i - m_a) - (y_i - m_b) - c` with each :math:`x_i - m` exact as a pair
    (TwoSum; :math:`m` the row maximum of a logits side, 0 for log-probabilities) and
    :math:`c = \ell_a - \ell_b` the log-partitions' difference, so that nearly equal
    rows keep the digits of :math:`\delta` (``log_softmax`` rounds each entry to
    :math:`u|\log p_i|`). An error :math:`\epsilon` of :math:`c` moves JS only by
    about :math:`\epsilon^2/8` (to first order by :math:`\epsilon\sum_i (p_i - q_i)/2 =
    0`); between two sides of logits (exactly normalised), :math:`c` is corrected once
    by :math:`\operatorname{log1p}\sum_i q_i \operatorname{expm1}(\delta_i) \approx
    \epsilon` (:math:`p_i - q_i` where :math:`\delta_i = \pm\infty`; none on rows of
    NaN) (``_fused_kernels._js_of_logs`` takes the correction only where a bound asks)."""
    # -inf - -inf: NaN, not finite
    with numpy_errstate(side_p.values, side_p.xp, invalid="ignore", over="ignore"):
        return _log_ratios_of(side_p, side_q, corrected=corrected, narrow=narrow)


def _shifted(side: Side) -> tuple[Array, Array, Array]:
    """A side's ``x - m`` as an exact pair ``(high, low)`` and its log-partition ``ell``
    (``log_probs``: ``x`` itself, 0 and 0)."""
    xp, x = side.xp, side.values
    zero = xp.zeros((), dtype=x.dtype)
    if side.form != "logits":
        return x, zero, zero
    m = finite_row_max(x, xp=xp)
    high = x - m
    virtual = high - x
    low = (x - (high - virtual)) - (m + virtual)
    return high, low, log_sum_exp_shifted(high, xp=xp)


def _log_ratios_of(
    side_p: Side, side_q: Side, *, corrected: bool = True, narrow: bool = False
) -> Array:
    xp = side_p.xp
    high_p, low_p, ell_p = _shifted(side_p)
    high_q, low_q, ell_q = _shifted(side_q)
    c = ell_p - ell_q
    logits = side_p.form == "logits" or side_q.form == "logits"
    # (float32 logits against log-probabilities: only where there is no float64, JAX
    # without x64; elsewhere widened first)
    mixed = narrow or (side_p.form != side_q.form and not is_numpy(xp))
    d, low = _difference(high_p, high_q, low_p - low_q, logits=logits, xp=xp, narrow=mixed)
    delta = (d - c) + low
    if not corrected or not logits:  # (c = 0)
        return delta
    # beside a side of log-probabilities, its excess sum_i e^{y_i} - 1 (branch jsexact2:
    # JS of logits and their own rounded log-softmax was 7e15 ulps off, uncorrected)
    excess = _log_probs_excess(side_q if side_p.form == "logits" else side_p)
    if excess is None:  # (float32 of a library other than NumPy's: as before)
        return delta
    zero = xp.zeros((), dtype=delta.dtype)
    finite = xp.isfinite(delta)
    p, q = side_p.probs(), side_q.probs()
    # q (e^delta - 1) = p (1 - e^-delta): the form whose expm1 cannot overflow; where
    # delta is not finite (a zero probability), -q or p: p - q (a hostile pass: JS of
    # the logits [-inf, -5e-324, 5e-324] and [-745.1, -5e-324, 8.7e-19] left the row
    # uncorrected and was twice its 2.365e-38)
    safe = xp.where(finite, delta, zero)
    rising = safe > 0
    shares = xp.where(
        rising,
        -p * xp.expm1(-xp.where(rising, safe, zero)),
        q * xp.expm1(xp.where(rising, zero, safe)),
    )
    shares = xp.where(finite, shares, p - q)
    dtype = delta.dtype
    mass = xp.reshape(reduce_sum(shares, xp=xp, out_dtype=dtype), (*delta.shape[:-1], 1))
    # p e^-eta_p and q e^-eta_q computed (eta: a logits side's log-partition error, 0
    # for log-probabilities): mass = e^-eta_p (1 + excess_p) - e^-eta_q (1 + excess_q)
    # and the shift eta_q - eta_p is solved exactly beside log-probabilities (it moves
    # the sum by about the excess times itself); two sides of logits take log1p(mass)
    flipped = side_q.form == "logits" and side_p.form != "logits"
    mass = excess - mass if flipped else mass + excess  # (flipped: -log1p of it)
    usable = mass > -1.0  # (not NaN, of rows of NaN)
    correction = xp.where(usable, xp.log1p(xp.where(usable, mass, zero)), zero)
    if flipped:
        correction = -correction
    return (d - c) + (low - correction)


def _difference(
    high_p: Array,
    high_q: Array,
    low: Array,
    *,
    logits: bool,
    xp: ModuleType,
    narrow: bool = False,
) -> tuple[Array, Array]:
    r""":math:`h_p - h_q + \ell` (``low``: the sides' low parts) as ``(d, low)`` with
    :math:`d = \operatorname{fl}(h_p - h_q)` and its rounding error moved into ``low``
    (TwoSum), so that :math:`d - c` is exact by Sterbenz where the log-partitions'
    difference :math:`c` is near :math:`d` (nearly equal rows): the rounding of
    :math:`h_p - h_q` (up to :math:`u|h_p - h_q|`, about the log-partition's size) was
    as large as a log-ratio of 1e-12 (issue 13, branch jsgeneric1: JS of logits N(0, 1)
    1e-12 apart against log-probabilities was 7e-5 relative off, 1e-3 apart 110 ulps;
    the fused kernel's ``_log_ratio`` since jsmixed3). Arrays narrower than float64
    (float32 where the device has no float64: JAX without x64, Apple's MPS; others
    are widened first, :func:`_js_nats`) keep the rounded difference, as the fused
    kernel's float32 rows do (their entries widened to float64); so do two sides of
    log-probabilities (``low`` 0: the rounded :math:`x - y` is already the log-ratio's
    nearest float: ``logits`` False). ``narrow``: float32 arrays of logits against
    log-probabilities (only where the device has no float64: branch jaxf32) take the
    TwoSum too."""
    bits = xp.finfo(high_p.dtype).bits
    if not logits or (bits < 64 and not (narrow and bits == 32)):
        return high_p - high_q, low
    d, d_low = _two_difference(high_p, high_q)
    return d, low + d_low


def _log_probs_excess(side: Side) -> Array | float | None:
    r""":math:`\sum_i e^{y_i} - 1` of a side of log-probabilities (rows; 0 for logits),
    to about :math:`2^{-100}`: ``_double_double.exp_dd`` and its exact extraction sum
    (``_double_double.excess_of_pairs``), float64 only (None for float32 arrays of other
    libraries than NumPy's, which keep their uncorrected sum). Float32 arrays where the
    device has no float64 (JAX without x64; others are widened before) take
    ``_double_double.exp_pair32`` and ``excess_of_pairs32``: about :math:`2^{-47}`
    (branch jaxf32)."""
    if side.form == "logits":
        return 0.0
    xp, y = side.xp, side.values
    bits = xp.finfo(y.dtype).bits
    if bits == 32 and not is_numpy(xp):
        hi, lo = exp_pair32(y, xp=xp)
        return xp.expand_dims(excess_of_pairs32(hi, lo, xp=xp), axis=-1)
    if bits < 64:
        return None
    with numpy_errstate(y, xp, all="ignore"):
        hi, lo = exp_dd(y, xp=xp)
        return xp.expand_dims(excess_of_pairs(hi, lo, xp=xp), axis=-1)


def _far_gap_rows(m: _Prepared, result: Any, *, kl: bool) -> Any:
    r"""``result`` (:math:`H(P, Q)`, or :math:`D(P\,\|\,Q)` for ``kl``, in the unit)
    with its ``inf`` rows formed again where ``q`` is logits: a gap past the range made
    :math:`\log q_c` ``-inf`` where :math:`p_c \log q_c` is finite
    (:func:`._numerics.far_gap_cross_entropy64`; the KL is that minus :math:`H(P)`). One
    check of the result in the common case; the rows that are truly infinite stay so.

    NumPy float64 results only (NumPy's float32 is computed in float64 already, issue
    13); float32 and float64 arrays of other libraries (PyTorch, array-api-strict, ...)
    too, by :func:`_far_gap_rows_elsewhere`: a hostile pass found their
    ``cross_entropy([0.6, 0.4], [1.7e308, -1.7e308], q_form='logits')`` ``inf``
    against NumPy's 1.36e308."""
    side_q = m.sides[-1]
    if side_q.form != "logits":
        return result
    if not is_numpy(m.xp):
        return _far_gap_rows_elsewhere(m, result, kl=kl)
    if m.dtype != np.float64:
        return result
    if type(result) is np.float64:
        if not math.isinf(result):
            return result
    elif type(result) is not np.ndarray or not np.isinf(result).any():
        return result
    rows = np.array(result, dtype=np.float64)  # (a copy)
    far = np.isinf(rows)
    inputs = _far_inputs(m, rows, far, (m.sides[0].values, side_q.values))
    rows[far] = _in_unit(m, _far_gap_nats(m, rows, far, inputs, kl=kl))
    return rows[()] if rows.ndim == 0 else rows


def _far_gap_rows_elsewhere(m: _Prepared, result: Any, *, kl: bool) -> Any:
    """:func:`_far_gap_rows` for float32 and float64 arrays of libraries other than
    NumPy: one ``any(isinf)`` of the result (a synchronisation on an accelerator) in the
    common case; the ``inf`` rows formed again in NumPy float64 on host copies (rounded
    once to float32 for float32 sides: ``inf`` where the value passes its range), with
    their exact gradient under PyTorch's autograd (:func:`_far_gap_gradient`), the
    others kept as they are (with their gradient, through ``where``). Arrays without a
    host copy (:func:`cannot_copy_to_host`: traced by JAX, ``torch.func``'s) have those
    rows formed again in their own namespace (:func:`_far_gap_rows_traced`); the rows
    still not finite get a NaN gradient (:func:`.._traced_far_rows.poisoned`): the
    common path's is 0 there, not the truth."""
    xp = m.xp
    if m.dtype not in (xp.float32, xp.float64):
        return result
    if cannot_copy_to_host(result):  # (the common path's gradient is 0 there: NaN instead)
        result = _far_gap_rows_traced(m, result, kl=kl)
        return poisoned(result, [side.values for side in m.sides], -1)
    try:
        if not truth_of(xp.any(xp.isinf(result))):
            return result
    except ValuelessArrayError:
        return result
    rows = host_float64(result, name="result")
    values = (host_float64(m.sides[0].values, name="p"), host_float64(m.sides[-1].values, name="q"))
    if rows is None or values[0] is None or values[1] is None:
        return result
    far = np.isinf(rows)
    inputs = _far_inputs(m, rows, far, (values[0], values[1]))
    nats = _far_gap_nats(m, rows, far, inputs, kl=kl)
    rows[far] = _in_unit(m, nats)
    if m.dtype == xp.float32:
        with np.errstate(over="ignore"):
            rows = rows.astype(np.float32)
    again = xp.asarray(rows, dtype=result.dtype, device=device(result))
    formed = np.isfinite(nats)
    if formed.any() and any(wants_gradient(side.values) for side in m.sides):
        again = again + _far_gap_gradient(m, far, formed, inputs, nats, kl=kl)
    return xp.where(xp.isinf(result), again, result)


def _far_gap_rows_traced(m: _Prepared, result: Any, *, kl: bool) -> Any:
    r""":func:`_far_gap_rows` of arrays without a host copy (traced by ``jax.jit``,
    ``jax.grad``, ``torch.func``): every row formed again in their own namespace by
    :func:`._numerics.far_gap_cross_entropy` (issue 13: the jitted ``cross_entropy`` and
    ``kl_divergence`` of log-probabilities against logits from :math:`-10^{308}` to
    :math:`10^{308}`, ``base=2``, were ``inf`` where NumPy and eager JAX give
    1.6587e308: :math:`\log q_c = -2\cdot 10^{308}` overflows in ``log_softmax``, and
    the host pass that forms such rows again cannot read traced values), taken where
    ``result`` is ``inf``; the rows that are truly infinite stay so, with their NaN
    gradient (:func:`.._traced_far_rows.poisoned`). The rows taken get the formula's
    own gradient, :math:`(A q - p)` in the logits."""
    xp = m.xp
    side_p, side_q = Side(m.sides[0].values, m.sides[0].form, xp), m.sides[-1]
    if int(side_q.values.shape[-1]) == 0:
        return result
    far = xp.isinf(result)

    def again() -> Any:
        return _far_gap_rows_formed(m, result, far, side_p, side_q, kl=kl)

    # Only where a row is inf: forming every row again cost a jitted call 1.4x-1.7x
    # (2000 x 1000 logits, /tmp/jitce_ab.py at the merge of branch jaxexact1).
    if is_jax_tracer(result):  # (no value to branch on: lax.cond, both under vmap)
        import jax  # (loaded: a tracer)

        return jax.lax.cond(xp.any(far), again, lambda: result)
    try:
        if not truth_of(xp.any(far)):
            return result
    except ValuelessArrayError:  # (torch.func.vmap: every row formed again)
        pass
    return again()


def _far_gap_rows_formed(
    m: _Prepared, result: Any, far: Any, side_p: Side, side_q: Side, *, kl: bool
) -> Any:
    """:func:`_far_gap_rows_traced`'s rows formed again, taken where ``far``."""
    xp = m.xp
    p = side_p.probs()
    log_p = None if side_p.form == "probs" else side_p.log_probs()
    x = side_q.values
    support = side_p.values > 0 if side_p.form == "probs" else side_p.values > -math.inf
    # (safe operands in the rows not taken: their NaN would reach jax.grad's cotangent)
    x_safe = xp.where(far[..., None], x, xp.zeros_like(x))
    nats = far_gap_cross_entropy(p, x_safe, log_p, xp=xp)
    if kl:
        nats = nats - xp.sum(entropy_terms(p, xp=xp), axis=-1)
    infinite = xp.any(support & (x == -math.inf), axis=-1)
    nats = xp.where(infinite, xp.asarray(math.inf, dtype=nats.dtype), nats)
    value = nats if m.log_base is None else nats / m.log_base
    return xp.where(far & ~xp.isnan(value), value, result)


def _far_gap_gradient(
    m: _Prepared,
    far: np.ndarray,
    formed: np.ndarray,
    inputs: _FarInputs,
    nats: np.ndarray,
    *,
    kl: bool,
) -> Any:
    r"""Zeros of the batch shape whose gradient in each side (a PyTorch tensor that
    wants one, :func:`.._far_row_gradients.wants_gradient`) is that of the measure's rows
    ``far`` whose values ``nats`` (formed again from ``inputs``) are finite (``formed``,
    of those rows), by :func:`._far_gap_gradients.far_gap_gradients64` in the unit,
    carried by :func:`.._far_row_gradients.gradient_term`: the ``where`` that puts the
    rows back gives them none (a silent 0 in the logits where the truth is
    :math:`A q - p`). The other rows' gradients are the common path's."""
    xp = m.xp
    g_p, g_x = far_gap_gradients64(
        inputs.p, inputs.x, inputs.log_p, p_form=m.sides[0].form, kl=kl, value=nats
    )
    rows = np.array(far)  # (a copy; 0-d for one row)
    rows[far] = formed
    mask = xp.asarray(rows, device=device(m.sides[-1].values))
    extra: Any = 0.0
    for side, g in zip(m.sides, (g_p, g_x), strict=True):
        if not wants_gradient(side.values):
            continue
        full = np.zeros(far.shape + g.shape[-1:])
        with np.errstate(over="ignore"):  # (past the range in bits: inf, as it is)
            full[rows] = g[formed] if m.log_base is None else g[formed] / m.log_base
        extra = extra + gradient_term(side.values, full, mask, -1, xp=xp)
    return extra


class _FarInputs(NamedTuple):
    """The far rows' float64 inputs, broadcast, classes last: P's probabilities ``p``,
    the logarithms they came from (``log_p``, None for ``probs``), Q's logits ``x`` and
    P's support as given (``support``)."""

    p: np.ndarray
    log_p: np.ndarray | None
    x: np.ndarray
    support: np.ndarray


def _far_inputs(
    m: _Prepared, rows: np.ndarray, far: np.ndarray, values: tuple[np.ndarray, ...]
) -> _FarInputs:
    """The rows ``far`` of the sides' float64 NumPy ``values`` (:class:`_FarInputs`)."""
    side_p = Side(values[0], m.sides[0].form, np)
    # P's probabilities of every row, also those of NaN or all -inf logits, whose log-
    # softmax warns (CI: -W error); their rows' results are NaN or inf already
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.asarray(side_p.probs())
        # (exact where p is given as probabilities; else the logs p came from, so that
        # an underflowed p_c still weighs its gap, far_gap_cross_entropy64)
        log_p = None if side_p.form == "probs" else np.asarray(side_p.log_probs())
    # P's support as given: a finite logit or log-probability is a probability > 0 even
    # where its exp underflows to 0, and against a -inf logit of Q the row is truly
    # +inf ("p > 0 with q = 0"), which the underflowed p would hide (a hostile pass:
    # cross_entropy([0, -800], [0, -inf], p_form=q_form='logits') was 0.0, its float32
    # twin and perplexity inf)
    values_p = values[0]
    support = values_p > 0 if side_p.form == "probs" else values_p > -np.inf
    p, x, support = np.broadcast_arrays(p, values[1], support)
    p, x, support = p[far], x[far], support[far]
    if log_p is not None:
        log_p = np.broadcast_to(log_p, rows.shape + p.shape[-1:])[far]
    return _FarInputs(p, log_p, x, support)


def _far_gap_nats(
    m: _Prepared, rows: np.ndarray, far: np.ndarray, inputs: _FarInputs, *, kl: bool
) -> np.ndarray:
    """The rows ``far`` of ``rows`` (the result, float64 NumPy, in the unit) formed
    again from their :func:`_far_inputs` in nats (the unit's: :func:`_in_unit`); the
    rows whose value comes out NaN (a row of NaN or +inf logits, no far gap) keep theirs."""
    p, x = inputs.p, inputs.x
    nats = far_gap_cross_entropy64(p, x, inputs.log_p)
    nats[np.any(inputs.support & (x == -np.inf), axis=-1)] = np.inf
    if kl:
        nats = nats - np.add.reduce(entropy_terms(p, xp=np), axis=-1)
    # a row of NaN or +inf logits (no far gap) keeps its inf (CI: the KL of a row with a
    # +inf logit in P came back NaN, against inf for the same float32 row)
    return np.where(np.isnan(nats), rows[far], nats)


def _in_unit(m: _Prepared, nats: np.ndarray) -> np.ndarray:
    """Float64 ``nats`` in the requested unit."""
    with np.errstate(over="ignore"):  # bits past the range: inf, as the value is
        return nats if m.log_base is None else nats / m.log_base


def _nan_rows_again(m: _Prepared, result: Any, nats: Callable[[_Prepared], Array]) -> Any:
    r"""``result`` (NumPy, in the unit) with its NaN rows taken from the generic path
    (``nats``, by :meth:`_Prepared.exact`), which gives NaN there too where the input is
    NaN (``validate=False``). The fused kernel's KL was NaN where a gap of a side of
    logits passed the float64 range (in its exact sums, not traced further; a hostile
    pass: ``kl_divergence([1.7e308, 0, -1.7e308], [0, 0, 0], p_form=q_form='logits')``
    was NaN, validated, against :math:`\log 3`, which PyTorch's inputs got). One check
    of the result in the common case."""
    if not is_numpy(m.xp):
        return result
    if type(result) is np.float64 or type(result) is np.float32:
        if not math.isnan(result):
            return result
    elif type(result) is not np.ndarray or not np.isnan(result).any():
        return result
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        generic = np.asarray(m.exact(lambda w: w.result(nats(w))))
    rows = np.array(result)  # (a copy)
    nan = np.isnan(rows)
    rows[nan] = np.broadcast_to(generic, rows.shape)[nan]
    return rows[()] if rows.ndim == 0 else rows


def _entropy_nats(m: _Prepared) -> Array:
    return m.total(_entropy_terms, *m.sides)


def _cross_entropy_nats(m: _Prepared, *, eps: float | None = None) -> Array:
    side_p, side_q = m.sides
    if eps is not None:
        side_q = Side(m.xp.clip(side_q.values, eps, 1.0), "probs", m.xp)
    return m.total(_cross_entropy_terms, side_p, side_q)


# ------------------------------------------------------------------------------- public


def entropy(
    p: object,
    /,
    *,
    axis: int = -1,
    base: float | None = None,
    p_form: str = "probs",
    validate: bool = True,
) -> Array:
    r"""Shannon entropy of the distributions along ``axis``.

    .. math:: H(P) = -\sum_i p_i \log p_i, \qquad 0 \log 0 = 0

    Parameters
    ----------
    p : array_like, shape (*batch, classes) with the classes along ``axis``
        The distribution, in the form named by ``p_form``.
    axis : int, optional
        The class axis. Default -1.
    base : float, optional
        Logarithm base: None for nats (default), 2 for bits.
    p_form : {'probs', 'log_probs', 'logits'}, optional
        What ``p`` holds. Logits are normalised by a softmax; probabilities and
        log-probabilities must already be normalised. Never inferred from values.
    validate : bool, optional
        Check that entries are finite and in range and that rows sum to 1 within a
        dtype-aware tolerance. Default True.

    Returns
    -------
    array, shape (*batch)
        Same namespace and device as ``p``; float32 for float16/bfloat16 input.
        A NumPy scalar for a single NumPy distribution.

    Raises
    ------
    InputError
        NaN, infinite or negative entries, a row not summing to 1, a bad ``axis``,
        ``base`` or ``p_form``. The message names the row and the value.
    InputTypeError
        Complex or non-numeric input.

    See Also
    --------
    cross_entropy, kl_divergence, cross_entropy_decomposition
    scipy.stats.entropy : renormalises ``pk`` silently (documented there); crossent
        refuses rows that do not sum to 1 instead.

    Notes
    -----
    Entropy is the expected surprisal, :math:`H(P) = E_P[-\log p(X)]`; it is at
    most :math:`\log K` for ``K`` classes, with equality for the uniform
    distribution. Terms with :math:`p_i = 0` contribute exactly 0 (their gradient is
    finite, too: 0, a convention, where the one-sided derivative :math:`-\log p_i - 1`
    is :math:`+\infty`; docs: "Gradients at 0 and 1"). Sums accumulate in float64
    where the device supports it.

    References
    ----------
    .. [1] C. E. Shannon, "A Mathematical Theory of Communication", Bell System
       Technical Journal 27 (1948), doi:10.1002/j.1538-7305.1948.tb01338.x.
    .. [2] T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed.,
       Wiley (2006), ch. 2, doi:10.1002/047174882X.

    Examples
    --------
    >>> import crossent
    >>> print(crossent.entropy([0.5, 0.5], base=2))  # a fair coin: one bit
    1.0
    >>> print(round(float(crossent.entropy([0.9, 0.1], base=2)), 4))
    0.469
    >>> print(crossent.entropy([1.0, 0.0], base=2))  # 0 log 0 = 0, and +0.0, not -0.0
    0.0
    >>> import math
    >>> math.isclose(crossent.entropy([0.0, 0.0, 0.0], p_form="logits"), math.log(3))
    True
    """
    if type(p) is not np.ndarray and routable(p):  # (small CPU tensors: the host route)
        hosted = call_on_host(entropy, locals(), 1)
        if hosted is not None:
            return hosted
    m = _prepare_one(p, axis=axis, base=base, p_form=p_form, validate=validate)
    return m.measure(_fused.ENTROPY, _entropy_nats)


def cross_entropy(
    p: object,
    q: object,
    /,
    *,
    axis: int = -1,
    base: float | None = None,
    p_form: str = "probs",
    q_form: str = "probs",
    eps: float | None = None,
    validate: bool = True,
) -> Array:
    r"""Cross-entropy of ``q`` relative to ``p`` along ``axis``.

    .. math:: H(P, Q) = -\sum_i p_i \log q_i = H(P) + D(P \,\|\, Q)

    with :math:`0 \log q = 0` for any :math:`q`, and :math:`+\infty` when some
    :math:`p_i > 0` has :math:`q_i = 0`.

    Parameters
    ----------
    p : array_like, shape (*batch_p, classes)
        The true (or target) distribution P.
    q : array_like, shape (*batch_q, classes)
        The model distribution Q. Batch shapes broadcast; class counts must match.
    axis : int, optional
        The class axis of both inputs. Default -1.
    base : float, optional
        None for nats (default), 2 for bits.
    p_form, q_form : {'probs', 'log_probs', 'logits'}, optional
        What each input holds (default 'probs'). ``q_form='logits'`` gives the
        softmax cross-entropy with soft targets ``p``.
    eps : float, optional
        Opt-in compatibility with tutorial code that computes ``np.clip(q, eps, 1)``
        before the logarithm. **A distortion**: the result is no longer H(P, Q), and it
        is finite where the truth is :math:`+\infty`. Only with ``q_form='probs'``.
    validate : bool, optional
        Check both inputs (finite, in range, rows summing to 1). Default True.

    Returns
    -------
    array, shape broadcast(*batch_p, *batch_q)

    Raises
    ------
    InputError
        Invalid entries or normalisation (naming input, row and value), class counts
        that differ, batch shapes that do not broadcast, bad options.
    InputTypeError
        Inputs from two array libraries, or complex input.

    See Also
    --------
    entropy, kl_divergence, cross_entropy_decomposition, perplexity

    Notes
    -----
    With one-hot ``p`` this is the classification loss :math:`-\log q_y`. Terms
    with :math:`p_i = 0` are exactly 0 and have finite gradients even where
    :math:`q_i = 0`, where ``torch.xlogy`` and Optax give NaN. From logits the
    log-probabilities come from a max-shifted log-sum-exp, never ``log(softmax)``.

    References
    ----------
    .. [1] T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed.,
       Wiley (2006), sec. 2.3 and 5.4, doi:10.1002/047174882X.

    Examples
    --------
    The seeds' step-by-step example, and the identity H(P, Q) = H(P) + KL:

    >>> import math, crossent
    >>> print(round(float(crossent.cross_entropy([1, 0, 0], [0.7, 0.2, 0.1])), 4))
    0.3567
    >>> p, q = [0.7, 0.3], [0.5, 0.5]
    >>> math.isclose(crossent.cross_entropy(p, q),
    ...              crossent.entropy(p) + crossent.kl_divergence(p, q))
    True
    >>> print(crossent.cross_entropy([0.7, 0.3], [0.0, 1.0], base=2))  # exact, not 23.25
    inf
    >>> print(round(float(crossent.cross_entropy([0.7, 0.3], [0.0, 1.0], base=2, eps=1e-10)), 2))
    23.25
    """
    if type(p) is not np.ndarray and routable(p):  # (small CPU tensors: the host route)
        hosted = call_on_host(cross_entropy, locals(), 2)
        if hosted is not None:
            return hosted
    clip = check_eps(eps, q_form=q_form)
    m = _prepare_two(p, q, axis=axis, base=base, p_form=p_form, q_form=q_form, validate=validate)
    if clip is not None:  # the distortion has no fused twin
        return m.exact(lambda m: m.result(_cross_entropy_nats(m, eps=clip)))
    return _far_gap_rows(m, m.measure(_fused.CROSS_ENTROPY, _cross_entropy_nats), kl=False)


def kl_divergence(
    p: object,
    q: object,
    /,
    *,
    axis: int = -1,
    base: float | None = None,
    p_form: str = "probs",
    q_form: str = "probs",
    validate: bool = True,
) -> Array:
    r"""Kullback-Leibler divergence of ``q`` from ``p`` along ``axis``.

    .. math:: D(P \,\|\, Q) = \sum_i p_i \log \frac{p_i}{q_i} \;\ge\; 0

    with :math:`0 \log(0/q) = 0` and :math:`p \log(p/0) = +\infty` for :math:`p > 0`.
    The argument order follows the notation: ``kl_divergence(p, q)`` is D(P||Q).

    %(two_sided_sections)s

    See Also
    --------
    cross_entropy, js_divergence, cross_entropy_decomposition
    scipy.stats.entropy : ``entropy(pk, qk)`` is the same quantity after silently
        renormalising both inputs.
    torch.nn.functional.kl_div : takes ``(log q, p)``, the reverse of the notation, and
        its ``reduction='mean'`` averages over classes too, which is not the KL.

    Notes
    -----
    Both sides are taken as they are, not renormalised (probabilities sum to 1 within
    the validation's dtype-aware tolerance): ``crossent.distillation_loss`` at
    :math:`T = 1` takes a teacher of probabilities or log-probabilities the same way.

    From probabilities, each term keeps its relative accuracy: where
    :math:`q_i/2 \le p_i \le 2q_i` the logarithm is
    :math:`\operatorname{log1p}((p_i - q_i)/q_i)`, whose argument is exact up to one
    rounding (``log(p / q)`` would lose the digits of a ratio near 1, and
    ``log p - log q`` would cancel), so nearly equal distributions give a small
    positive divergence on every backend; ratios that overflow because :math:`q_i` is
    subnormal are recomputed exactly.  Nearly equal rows (whose terms cancel) are the
    sum of the non-negative terms :math:`p_i\log(p_i/q_i) - p_i + q_i` plus the exact
    mass difference :math:`\sum_i (p_i - q_i)`; the two can cancel against each other
    (ratios near :math:`1 \pm 10^{-8}` in float64), so the terms of ratios within
    :math:`2^{-6}` of 1 are formed in double-double and the whole sum is rounded once:
    within an ulp in NumPy's fused kernel, within 2 ulps on the generic path (other
    arrays, or NumPy without Numba; float64 terms and exact sums for those rows only,
    its gradient that of the plain sums).  From
    log-probabilities or logits, the difference
    of logs is used (exact when they are close); two sides of logits, which sum to 1 by
    construction, sum the non-negative terms :math:`q_i\varphi(\log p_i - \log q_i)`,
    :math:`\varphi(r) = 1 + (r - 1)e^r`, so their KL is never negative.  Other pairs
    of forms (a side of log-probabilities, or probabilities against logits) whose
    terms cancel (nearly equal rows) are, on the generic path too, those terms plus
    the masses' difference :math:`\sum_i (p_i - q_i)`, summed exactly: within an ulp
    or two for rows dominated by one class, and within about :math:`10^{-31}`
    absolute besides for spread rows (double-double exponentials; the fused kernel's
    triple-doubles reach :math:`2^{-150}`); float64 only, the gradient that of the
    plain sum.

    References
    ----------
    .. [1] S. Kullback and R. A. Leibler, "On Information and Sufficiency", Annals of
       Mathematical Statistics 22 (1951), doi:10.1214/aoms/1177729694.

    Examples
    --------
    >>> import crossent
    >>> print(crossent.kl_divergence([0.5, 0.5], [0.5, 0.5]))  # Gibbs: 0 iff P = Q
    0.0
    >>> d = crossent.kl_divergence([0.7, 0.3], [0.5, 0.5], base=2)
    >>> h = crossent.entropy([0.7, 0.3], base=2)
    >>> print(round(float(d + h), 6))  # = H(P, Q) = 1 bit for a uniform Q over 2 classes
    1.0
    """
    if type(p) is not np.ndarray and routable(p):  # (small CPU tensors: the host route)
        hosted = call_on_host(kl_divergence, locals(), 2)
        if hosted is not None:
            return hosted
    m = _prepare_two(p, q, axis=axis, base=base, p_form=p_form, q_form=q_form, validate=validate)
    kl = _nan_rows_again(m, m.measure(_fused.KL_DIVERGENCE, _kl_nats), _kl_nats)
    return _far_gap_rows(m, kl, kl=True)


def js_divergence(
    p: object,
    q: object,
    /,
    *,
    axis: int = -1,
    base: float | None = None,
    p_form: str = "probs",
    q_form: str = "probs",
    validate: bool = True,
) -> Array:
    r"""Jensen-Shannon divergence between ``p`` and ``q`` along ``axis``.

    .. math::
        \mathrm{JS}(P, Q) = \tfrac12 D(P \,\|\, M) + \tfrac12 D(Q \,\|\, M),
        \qquad M = \tfrac12 (P + Q)

    Symmetric, always finite, and between 0 and :math:`\log 2` (1 bit).

    %(two_sided_sections)s

    See Also
    --------
    kl_divergence
    scipy.spatial.distance.jensenshannon : returns the square root (a metric), and
        renormalises its inputs.

    Notes
    -----
    Each class contributes :math:`\tfrac{p+q}{4} g(d) \ge 0` with
    :math:`d = (p - q)/(p + q)`, evaluated without cancellation (see the kernel), so
    the result keeps its relative accuracy even when P and Q nearly agree.

    References
    ----------
    .. [1] J. Lin, "Divergence measures based on the Shannon entropy", IEEE
       Transactions on Information Theory 37(1) (1991), doi:10.1109/18.61115.

    Examples
    --------
    >>> import crossent
    >>> print(crossent.js_divergence([1, 0], [0, 1], base=2))  # disjoint supports: 1 bit
    1.0
    >>> a = crossent.js_divergence([0.7, 0.3], [0.2, 0.8])
    >>> b = crossent.js_divergence([0.2, 0.8], [0.7, 0.3])
    >>> bool(a == b)
    True
    """
    if type(p) is not np.ndarray and routable(p):  # (small CPU tensors: the host route)
        # mixed forms at any size (_js_nats); locals() before any other name is bound
        hosted = call_on_host(
            js_divergence, locals(), 2, any_size=(p_form == "probs") != (q_form == "probs")
        )
        if hosted is not None:
            return hosted
    m = _prepare_two(p, q, axis=axis, base=base, p_form=p_form, q_form=q_form, validate=validate)
    js = m.measure(_fused.JS_DIVERGENCE, _js_nats)
    return _at_most_log_2(m, js)


def _js_nats(m: _Prepared) -> Array:
    r"""JS(P, Q) in nats on the generic path: the sum of :func:`_js_terms`, except
    where one side is probabilities and the other logits or log-probabilities: there
    (:func:`._js_mixed.careful_rows`) the rows whose plain sum, from the other side's
    rounded probabilities, may be off by more than :math:`2^{-44}` of itself (nearly
    equal rows) take :func:`._js_mixed.js_mixed_exact` (issue 13: JAX float64 rows
    :math:`10^{-9}` apart were 4.0e-7 relative off; ``[0.5, 0.5]`` against the logits
    ``[9.7e-18, -6.5e-18]`` 0 for 8.154e-36). Float32 arrays of other libraries than
    NumPy's are computed so in float64 (where their device has it) and rounded once,
    and so are those of logits against log-probabilities (branch jsexact4: PyTorch
    float32 rows 1e-7 apart were 3.9e7 ulps off). Float32 JAX arrays without x64 (no
    float64) take the same exact passes in float32 double-words (branch jaxf32:
    ``_double_double.exp_pair32``, ``excess_of_pairs32``; rows 1e-7 apart were up to
    1.6e8 float32 ulps off, now 2.5 at most: ``benchmarks/check_jax_float32_ulps.py``);
    arrays traced by JAX branch by ``jax.lax.cond`` (under ``jax.vmap`` both sides are
    computed). CPU tensors that the host route takes (no grad, no ``torch.compile``)
    take it at any size for mixed forms (:func:`js_divergence`): the fused kernel's
    exact pass is one loop, this path's dozens of tensor operations (branch jsfast1,
    200 x 1000 float32 rows, ms of CPU: random 14.4 against 27.0, nearly equal 66.8
    against 132.9)."""
    side_p, side_q = m.sides
    logs = {side_p.form, side_q.form} == {"logits", "log_probs"}
    if not logs and (side_p.form == "probs") == (side_q.form == "probs"):
        return m.total(_js_terms, *m.sides)
    xp = m.xp
    twin = None if is_numpy(xp) else float64_twin(side_p.values, side_q.values)
    if twin is not None:
        wide = tuple(Side(xp.astype(s.values, twin[1]), s.form, xp) for s in m.sides)
        if logs:  # (branch jsexact4: in float32, rows 1e-7 apart were 3.9e7 ulps off)
            widened = _Prepared(xp, wide, twin[1], m.log_base, [])
            return xp.astype(_js_logits_log_probs(widened), m.dtype)
        return xp.astype(_js_mixed_nats(xp, wide[0], wide[1], 2.0**-32), m.dtype)
    if logs:
        return _js_logits_log_probs(m)
    if xp.finfo(m.dtype).bits < 64 and not is_numpy(xp):  # (no float64 on the device)
        if xp.finfo(m.dtype).bits < 32:
            return m.total(_js_terms, *m.sides)
        # float32 double-words (branch jaxf32: JAX without x64, rows 1e-7 apart 1.6e8
        # float32 ulps off): the plain sum within 2^-28 of itself stands
        return _js_mixed_nats(xp, side_p, side_q, 2.0**-28)
    return _js_mixed_nats(xp, side_p, side_q, 2.0**-44)


def _js_mixed_nats(xp: ModuleType, side_p: Side, side_q: Side, tolerance: float) -> Array:
    """:func:`_js_nats` of a side of probabilities and one of logits or
    log-probabilities, float64 (or NumPy's wider compute dtypes); the plain sum stands
    within ``tolerance`` of itself (:math:`2^{-32}` for float32 inputs, the fused
    kernel's)."""
    probs, other = (side_p, side_q) if side_p.form == "probs" else (side_q, side_p)
    with numpy_errstate(probs.values, xp, all="ignore"):
        p, q, log_q = probs.values, other.probs(), other.log_probs()
        plain = reduce_sum(js_terms(p, q, xp=xp), xp=xp, out_dtype=p.dtype)
        n = int(max(p.shape[-1], q.shape[-1]))
        u = float(xp.finfo(plain.dtype).eps) / 2
        # the log-partition's error (a pairwise sum, its log1p, the shift), for logits
        side_error = (
            0.0
            if other.form == "log_probs"
            else (math.ceil(math.log2(n + 1)) + 6.0) * u + 3.0 * u * math.log(n + 1)
        )
        careful = careful_rows(plain, p, q, log_q, side_error, xp=xp, tolerance=tolerance)

        if is_jax_tracer(plain):  # (no value to branch on: lax.cond, both under vmap)
            import jax  # (loaded: a tracer)

            def chosen() -> Array:
                exact = js_mixed_exact(p, other.values, other.form, xp=xp)
                return xp.where(careful, exact, plain)

            return jax.lax.cond(xp.any(careful), chosen, lambda: plain)
        try:
            if not truth_of(xp.any(careful)):
                return plain
        except ValuelessArrayError:
            return plain
        return exact_where(careful, plain, p, other.values, other.form, xp=xp)


_LOG_2 = np.float64(math.log(2))


@functools.lru_cache(maxsize=32)
def _log_2_cap(dtype: np.dtype, log_base: float | None) -> Any:
    """:func:`_at_most_log_2`'s cap for NumPy results of ``dtype`` (a scalar of it):
    log 2 in float64 or ``dtype`` if wider, over ``log_base``, rounded once. Cached: a
    small call's budget is about 10 us, and forming it took a few."""
    wide = np.result_type(dtype, np.float64)
    bound = np.log(wide.type(2))
    if log_base is not None:
        bound = bound / log_base
    return np.asarray(bound).astype(dtype)[()]


def _at_most_log_2(m: _Prepared, js: Any) -> Any:
    r"""``js`` (in the unit) with the values above :math:`\log 2` (1 bit) set to it.

    The docstring's bound, which the rounded terms of (nearly) disjoint rows crossed by
    an ulp (hostile18: 0.6931471805599454 for two logit rows whose only shared class
    has :math:`p \approx 10^{-19}`, whose exact JS is below :math:`\log 2`; 1.0000000000000002
    bits). The exact JS is at most :math:`\log 2`, which lies within a quarter ulp above
    its float64 value, so its correct rounding is at most that value: the cap moves no
    correctly rounded result. The cap is :math:`\log 2` in the result's precision
    (float64 at least), divided by the unit's :math:`\log b` as :func:`finalize`
    divides, rounded once to the result's dtype. NaN (NaN input, ``validate=False``)
    stays NaN. A base in (0, 1) (a negative :math:`\log b`) reverses the order: there
    the cap is a lower bound. A ``where``, not ``minimum``: autograd's ``minimum``
    splits the gradient of a tie (disjoint rows, exactly :math:`\log 2`) between its
    two arguments.
    """
    log_base = m.log_base
    if type(js) is np.float64 and log_base is None:  # (one row in nats: a small call)
        return _LOG_2 if js > _LOG_2 else js
    reversed_unit = log_base is not None and log_base < 0
    xp = m.xp
    if is_numpy(xp):
        cap = _log_2_cap(js.dtype, log_base)
        beyond = js < cap if reversed_unit else js > cap
        if js.ndim == 0:
            return cap if beyond else js
        if beyond.any():
            js = js.copy()
            js[beyond] = cap
        return js
    bound = math.log(2) if log_base is None else math.log(2) / float(log_base)
    cap = xp.asarray(bound, dtype=js.dtype, device=device(js))
    return xp.where(js < cap if reversed_unit else js > cap, cap, js)


def perplexity(
    p: object,
    q: object | None = None,
    /,
    *,
    axis: int = -1,
    p_form: str = "probs",
    q_form: str = "probs",
    validate: bool = True,
) -> Array:
    r"""Perplexity: the effective number of equally likely choices.

    .. math:: \mathrm{PP}(P) = b^{H_b(P)} = e^{H(P)}, \qquad
              \mathrm{PP}(P, Q) = e^{H(P, Q)}

    With only ``p``, the perplexity of the distribution itself; with ``q`` too, the
    perplexity of the model Q on data distributed as P. The value does not depend
    on the logarithm base, so there is no ``base`` argument.

    Parameters
    ----------
    p : array_like, shape (*batch_p, classes)
    q : array_like, shape (*batch_q, classes), optional
    axis, p_form, q_form, validate
        As in :func:`cross_entropy`.

    Returns
    -------
    array
        At least 1 (without ``q``, at most ``classes`` for rows that sum to 1
        exactly: a row of ``fl(1/V)`` entries that sums above 1 has a true
        perplexity slightly above ``V``, which is returned); ``+inf`` when H(P, Q)
        is. Float64 inputs of every form (probabilities, log-probabilities, logits)
        are within about an ulp of :math:`e^{H}` (half an ulp measured): the entropy
        is taken in double-double (``_perplexity_dd``), since ``exp`` of a float64
        :math:`H` near :math:`\log V` is several ulps off (up to 84 for 1000 logits).

    %(raises_as_cross_entropy)s

    See Also
    --------
    entropy, cross_entropy

    Notes
    -----
    For a language model, pass the per-token mean cross-entropy in nats to ``exp``
    instead: the perplexity of a corpus is the exponential of the mean, not the mean
    of per-token perplexities.

    References
    ----------
    .. [1] F. Jelinek, R. L. Mercer, L. R. Bahl and J. K. Baker, "Perplexity - a
       measure of the difficulty of speech recognition tasks", JASA 62(S1) (1977),
       doi:10.1121/1.2016299.

    Examples
    --------
    >>> import crossent
    >>> print(round(float(crossent.perplexity([0.25] * 4)), 12))  # uniform over 4: 4
    4.0
    >>> print(round(float(crossent.perplexity([1, 0, 0], [1/3, 1/3, 1/3])), 12))
    3.0
    """
    if type(p) is not np.ndarray and routable(p):  # (small CPU tensors: the host route)
        hosted = call_on_host(perplexity, locals(), 2)
        if hosted is not None:
            return hosted
    if q is None:
        m = _prepare_one(p, axis=axis, base=None, p_form=p_form, validate=validate)
        want, nats = _fused.ENTROPY, _entropy_nats
    else:
        m = _prepare_two(
            p, q, axis=axis, base=None, p_form=p_form, q_form=q_form, validate=validate
        )
        want, nats = _fused.CROSS_ENTROPY, _cross_entropy_nats
    if m.in_float32():  # the exp of the float64 nats, rounded once (issue 13)
        return m.exact(lambda wide: wide.result(_exp_of_nats(wide.measure(want, nats), np)))
    if _double_double_applies(m):  # float64 probabilities: H in double-double
        if is_numpy(m.xp):
            return _perplexity_numpy(m, want)
        measured = m.measure(want, nats)
        if q is not None:  # the far gaps of cross_entropy's (their inf rows formed again)
            measured = _far_gap_rows(m, measured, kl=False)
        forms = (m.sides[0].form, m.sides[-1].form)
        return m.result(_perplexity_dd.correct(measured, *_dd_operands(m), m.xp, forms))
    measured = m.measure(want, nats)
    if q is not None:  # the far gaps of cross_entropy's (their inf rows formed again)
        measured = _far_gap_rows(m, measured, kl=False)
    return m.result(_exp_of_nats(measured, m.xp))


def _double_double_applies(m: _Prepared) -> bool:
    """Whether :func:`perplexity` takes its double-double entropy: float64 sides of
    every form in a namespace that has ``frexp`` and ``ldexp``, or ``log2`` and
    ``floor`` (:func:`._perplexity_dd.supports`: array-api-strict)."""
    return m.dtype == m.xp.float64 and (is_numpy(m.xp) or _perplexity_dd.supports(m.xp))


def _dd_operands(m: _Prepared) -> tuple[Any, Any | None]:
    """P's values and Q's (None for one side), without their gradient."""
    values = [_perplexity_dd.constant(side.values, m.xp) for side in m.sides]
    return values[0], (values[1] if len(values) > 1 else None)


def _perplexity_numpy(m: _Prepared, want: int) -> Any:
    """:func:`perplexity` of NumPy float64 probabilities: by the fused kernel
    (``_fused.perplexity_rows``, which screens the rows as :meth:`_Prepared.fused`
    does: the validations run in full only where a row is suspect) where it takes the
    rows, else validated first and :func:`._perplexity_dd.dd_entropy` by blocks of
    rows."""
    forms = (m.sides[0].form, m.sides[-1].form)
    rows = _fused_rows(m.sides, want=want)
    if rows is not None:
        a, b, batch = rows
        pending = m.pending
        out, suspect = _fused.perplexity_rows(
            a,
            b,
            cross=len(m.sides) > 1,
            forms=(_perplexity_dd.FORMS[forms[0]], _perplexity_dd.FORMS[forms[1]]),
            tolerances=(
                pending[0].row_sum_tolerance() if pending else None,
                pending[1].row_sum_tolerance() if len(pending) > 1 else None,
            ),
        )
        if suspect:
            m.check()
        return out[0] if batch == () else out.reshape(batch)
    m.check()
    p, q = _dd_operands(m)
    if q is not None:
        p, q = np.broadcast_arrays(p, q)
    # (inf rows: +inf; -inf logits, an overflowed spread: no warning)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        return _perplexity_numpy_blocks(p, q, m, forms)


def _perplexity_numpy_blocks(
    p: np.ndarray, q: np.ndarray | None, m: _Prepared, forms: tuple[str, str]
) -> Any:
    """:func:`_perplexity_numpy` without the kernel, by blocks of rows."""
    xp = m.xp
    if p.ndim < 2 or p.size <= 2 * _BLOCK_ELEMENTS:
        parts = _perplexity_dd.dd_entropy(p, q, xp, forms)
        return m.result(exp_rounded(*parts, xp=xp))
    out = np.empty(p.shape[:-1])
    step = max(1, _BLOCK_ELEMENTS // max(math.prod(p.shape[1:]), 1))
    for start in range(0, p.shape[0], step):
        block = slice(start, start + step)
        parts = _perplexity_dd.dd_entropy(p[block], None if q is None else q[block], xp, forms)
        out[block] = exp_rounded(*parts, xp=xp)
    return out


def _exp_of_nats(nats: Any, xp: ModuleType) -> Any:
    """``exp(nats)``: +inf past the range (a cross-entropy above 709.78 nats in
    float64) without NumPy's overflow warning, which ``-W error`` raised instead of
    the answer (:func:`numpy_errstate`: other libraries do not warn). A NumPy float64
    scalar below :data:`_EXP_FINITE64` cannot overflow: its ``np.exp`` (the same call)
    without the context manager, a microsecond of a small call (issue 13)."""
    if type(nats) is np.float64 and nats < _EXP_FINITE64:
        return np.exp(nats)
    with numpy_errstate(nats, xp, over="ignore"):
        return xp.exp(nats)


_EXP_FINITE64 = 709.0
r"""Below this, ``exp`` is finite in float64 (its largest argument :math:`\ln(\text{max})
\approx 709.78`)."""


def cross_entropy_decomposition(
    p: object,
    q: object,
    /,
    *,
    axis: int = -1,
    base: float | None = None,
    p_form: str = "probs",
    q_form: str = "probs",
    validate: bool = True,
) -> CrossEntropyDecomposition:
    r"""H(P), H(P, Q) and D(P||Q) per row, each computed directly.

    .. math:: H(P, Q) = H(P) + D(P \,\|\, Q)

    The three are computed independently (none as a difference of the others), so
    the identity holds to rounding and can be checked on the result.

    Parameters
    ----------
    p, q, axis, base, p_form, q_form, validate
        As in :func:`cross_entropy`.

    Returns
    -------
    CrossEntropyDecomposition
        Named tuple ``(entropy, cross_entropy, kl_divergence)``; ``entropy`` has the
        batch shape of ``p``, the others the broadcast batch shape.

    %(raises_as_cross_entropy)s

    See Also
    --------
    entropy, cross_entropy, kl_divergence

    Examples
    --------
    >>> import crossent
    >>> d = crossent.cross_entropy_decomposition([0.7, 0.3], [0.5, 0.5], base=2)
    >>> print(round(float(d.entropy), 4), round(float(d.kl_divergence), 4), d.cross_entropy)
    0.8813 0.1187 1.0
    """
    if type(p) is not np.ndarray and routable(p):  # (small CPU tensors: the host route)
        hosted = call_on_host(cross_entropy_decomposition, locals(), 2)
        if hosted is not None:
            return hosted
    m = _prepare_two(p, q, axis=axis, base=base, p_form=p_form, q_form=q_form, validate=validate)
    fused = m.fused(_fused.ENTROPY | _fused.CROSS_ENTROPY | _fused.KL_DIVERGENCE)
    if fused is not None:
        out, batch = fused
        if batch == ():  # NumPy scalars, indexed one by one (cheaper than a view)
            parts = CrossEntropyDecomposition(out[0, 0], out[1, 0], out[2, 0])
        else:
            parts = CrossEntropyDecomposition(*out.reshape(3, *batch))
    else:
        parts = m.exact(
            lambda m: CrossEntropyDecomposition(
                entropy=m.result(m.total(_entropy_terms, m.sides[0])),
                cross_entropy=m.result(_cross_entropy_nats(m)),
                kl_divergence=m.result(_kl_nats(m)),
            )
        )
    cross = _far_gap_rows(m, parts.cross_entropy, kl=False)
    kl = _far_gap_rows(m, _nan_rows_again(m, parts.kl_divergence, _kl_nats), kl=True)
    if cross is parts.cross_entropy and kl is parts.kl_divergence:
        return parts  # (the common case: no NamedTuple._replace, half a microsecond)
    return CrossEntropyDecomposition(parts.entropy, cross, kl)


# ``%(key)s`` in the docstrings above: sections written once, in ``_docs.py``.
fill_shared_sections(kl_divergence, js_divergence, perplexity, cross_entropy_decomposition)
