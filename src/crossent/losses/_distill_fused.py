r"""Large NumPy distillation calls by the fused kernels (issue 13 follow-up).

The full path of :func:`crossent.distillation_loss` (``_distill``) forms both softened
distributions and the KL's terms as arrays of the call's size, in float64 (float32
logits widened a block of rows at a time, ``_widen.blocked``): some ten passes over
memory and a dozen exponentials and logarithms an entry. Here, for a call that
:func:`fused_call` takes, the kernels of ``_distill_numba`` (float64 arithmetic, on
float32 or float64 rows as they are: ``_distill_rows.KERNEL_DTYPES``) form each row's
:math:`(D, m_z, \ell_s, m_v, \ell_t)` in two passes over the row (the forward
kernel), and the gradient :math:`T(s - t)` times the reduction's scale from them (the
backward kernel, after the forward one), a block of rows at a time on the process's
threads (``_distill_rows``, the dispatch ``crossent.torch``'s CPU op shares). The
rows that the kernels do not form (``_distill_rows.row_kinds``, and the backward's
small spreads) are formed by the full path itself, on float64 copies of those rows
only (``host``: ``_distill``'s bodies, ``reduction='none'`` in nats), exact there:

* a row whose :math:`T^2 D` is not finite: a student ``-inf`` beside a teacher
  probability above 0 (valid: the full path's ``inf``), a gap past the float64 range
  (its ``inf``, which the far-row guard around the public function then forms again
  as for the full path), an invalid row (a NaN,
  ``+inf`` or a row of ``-inf``: the call then returns None, so that the full path
  runs and names the error, in its order; with ``validate=False`` the full path's
  row);
* a row whose :math:`D` is below ``_near_rows.KL_FLOOR`` (formed by ``_near_rows``; the
  reverse float64 gradient of such a row is the kernel's, within a few units: branch
  distgrad1);
* in the gradient but the reverse float64 one, a row whose :math:`\max_c|s_c - t_c|` is
  below ``_near_rows.SPREAD_FLOOR`` times :math:`\max_c t_c` (reverse: :math:`\max_c|s_c(\log
  s_c - \log t_c - D)|` against :math:`\max_c s_c`), formed by ``_near_rows``.

The reduction, unit and gradient scale are the full path's (``_batch.Batch`` of the
call's shape: every row weighs 1), in float64, and a float32 call's result is rounded
once to float32, as the full path computes and rounds it. The results are the full
path's within float64 rounding (a few ulps of each row's :math:`T^2 D`; of each
gradient entry against its row's largest, where an entry of a teacher probability
below :math:`e^{-708}` is 0 here, a subnormal there).

A call is taken (:func:`fused_call`) when Numba is installed and: two NumPy arrays
(``np.ndarray`` itself) of one float32 or float64 dtype in native byte order, of one
shape, two axes or more, C-contiguous, with two classes or more on the last axis and
at least :data:`FUSED_ELEMENTS` entries; any ``teacher_form`` and ``direction``
(``_distill_rows.Options``: the teacher's log-probabilities, or the log of its
probabilities formed in float64 a block of rows at a time, as its logits; the reverse
direction by the forward kernel of the roles swapped and the reverse backward kernel,
its near rows those of a small :math:`D` as the full path's; at :math:`T = 1` such a
teacher taken as it is, as the full path takes it; with ``validate``, such a teacher
screened by the kernels' log-sum-exp of its rows, and the full path run where a row
fails, to name the error), any
``reduction`` and ``base``, a ``temperature`` whose
square is a normal float64 and below ``_far_gaps.WIDE_TEMPERATURE``, ``validate`` a
bool. Anything else (an invalid option too: the full path names it) returns None and
the full path runs as before. Below :data:`FUSED_ELEMENTS` the lean path of small
calls (``_small_distill``) runs, as fast or faster.

Measured (``benchmarks/bench_distill_numpy.py --against`` acdb998's tree ``--rounds 3
--repeats 2``, float32, :math:`T = 2`, ``'mean'``, 2-core AMD EPYC Zen 4, quiet, load
1.1-1.6, wall, best (median)): 4096 x 32000 loss 0.154 s (0.195) against 1.97 (2.14),
gradient 0.34 (0.90) against 2.23 (3.37); 512 x 32000 loss 0.021 against 0.226,
gradient 0.044 against 0.236. With 10 % of the teacher's classes at ``-inf`` in every
row (``--masked 0.1 --shapes 1024x32000``): loss 0.041 against 0.54, gradient 0.085
against 0.55. Peak resident set beyond the inputs (``--peaks``, a fresh process): Numba
and the kernels, once a process, 109 MiB; then the loss 16 MiB (two threads' blocks)
against 2, the gradient about 500 MiB, its result. Crossover (thread CPU time
of one call, the lean path's limit lowered to time the full path below it): the lean
path is as fast up to some 4000 (loss) and 16000 (gradient) entries; from 16385
entries, where the full path runs, the fused kernels are 1.4 to 4 times faster (2 to
32000 classes) but for the gradient of a single row of 32000 classes (0.8 to 1.2).
The first fused call of a process loads Numba and the kernels from Numba's cache
(0.55 s; compiling them, where the cache is empty, 2-3 s a dtype).

Rows with ``-inf`` logits (a masked vocabulary) the kernels form (``_distill_numba``:
a teacher's ``-inf`` is no term), but a student's ``-inf`` beside a teacher
probability above 0 (the full path's row, ``inf``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _xp
from .._checks import row_sum_tolerance
from .._xp import to_float32
from . import _cpu_kernels, _distill_rows
from ._batch import Batch, LossOptions, batch_for
from ._distill_options import KEYWORDS as _OPTION_DEFAULTS
from ._distill_options import distillation_options
from ._far_gaps import WIDE_TEMPERATURE as _WIDE_TEMPERATURE
from ._far_gaps import square_is_normal
from ._near_rows import KL_FLOOR as _KL_FLOOR

__all__ = ["FUSED_ELEMENTS", "FusedCall", "Host", "Options", "fused_call", "gradient", "loss"]

FUSED_ELEMENTS = (1 << 14) + 1
"""The fewest entries (of the student's logits) of a call the fused kernels take: one
more than the lean path's :data:`._cpu_kernels.SERIAL_ELEMENTS` (module docstring)."""

Options = _distill_rows.Options

Host = Callable[[np.ndarray, np.ndarray, float, Options], np.ndarray]
"""``host(z, v, temperature, options)``: the full path's per-row losses (nats,
float64, one per row) or gradient (unscaled, float64, rows x classes) of float64
student logits ``z`` and teacher ``v`` (rows x classes, in ``options.teacher_form``,
``options.direction``), without validation."""

_KEYWORDS = frozenset(_OPTION_DEFAULTS)
_FLOAT64 = np.dtype(np.float64)


@dataclass(frozen=True)
class FusedCall:
    """A call :func:`fused_call` takes: its student logits and teacher as rows x
    classes (views), the student's shape, and its checked options."""

    z: np.ndarray
    v: np.ndarray
    shape: tuple[int, ...]
    temperature: float
    options: LossOptions
    validate: bool

    blocks: _distill_rows.Blocks
    variant: Options = _distill_rows.FORWARD_LOGITS

    def wide(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``start:stop`` of both sides as the kernels take them
        (``_distill_rows.Wide``): views where the arrays are aligned, else float64 copies
        in the thread's blocks (read-only arrays too: ``_distill_rows`` hands the kernels
        read-only views of either, one compilation whatever the caller's flags); a
        teacher of probabilities as its logarithms, formed in float64 into the thread's
        block (``_distill_rows.log_of_probs``)."""
        z, v = self.z[start:stop], self.v[start:stop]
        if self.variant.teacher_form == "probs":
            v = _distill_rows.log_of_probs(v, self.blocks.get(1, stop - start))
        elif not self.direct:
            v = _copied(v, self.blocks.get(1, stop - start))
        return (z if self.direct else _copied(z, self.blocks.get(0, stop - start))), v

    @property
    def direct(self) -> bool:
        """Whether the kernels read both sides as they are (:meth:`wide`; float32 or
        float64, one dtype: :func:`fused_call`), and write the gradient into its result."""
        return all(
            x.dtype in _distill_rows.KERNEL_DTYPES and x.flags.aligned for x in (self.z, self.v)
        )

    def batch(self) -> Batch:
        """The call's reduction, unit and scale (every row weighs 1), in float64."""
        values = np.broadcast_to(np.zeros((), _FLOAT64), self.shape)  # a shape, not a copy
        return batch_for(values, len(self.shape) - 1, _FLOAT64, self.options, xp=np)

    def rows64(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both sides' ``rows`` (indices) in float64, for ``host``."""
        return self.z[rows].astype(_FLOAT64), self.v[rows].astype(_FLOAT64)

    def teacher_fails(self, stats: np.ndarray) -> bool:
        """Whether the full path should validate a teacher of probabilities or
        log-probabilities (``validate``; False for logits): a row that the kernels'
        statistics do not surely pass (``_distill_rows.teacher_passes``: the teacher's
        log-sum-exp of each row, the kernels' own)."""
        form = self.variant.teacher_form
        if not self.validate or form == "logits":
            return False
        tolerance = row_sum_tolerance(self.v.dtype, self.shape[-1], xp=_xp.compat_numpy)
        return not _distill_rows.teacher_passes(stats, form, tolerance)

    def invalid(self, rows: np.ndarray) -> bool:
        """Whether one of ``rows`` (indices) fails ``_checks.check_logits`` on either
        side (a NaN, ``+inf``, or a row of ``-inf``): its row maximum is not finite."""
        if not self.validate:
            return False
        tops = (np.maximum.reduce(x[rows], axis=1) for x in (self.z, self.v))
        return not all(np.isfinite(top).all() for top in tops)

    def result(self, value: Any) -> Any:
        """The caller's result from the float64 one: as it is for float64 logits, else
        rounded once to float32."""
        return value if self.z.dtype == _FLOAT64 else to_float32(value)


def _copied(x: np.ndarray, block: np.ndarray) -> np.ndarray:
    """``x`` copied into ``block`` (float64, its shape)."""
    np.copyto(block, x)
    return block


def fused_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> FusedCall | None:
    """The call ``distillation_loss(*args, **kwargs)`` (or its gradient) as the fused
    kernels take it, or None (the module docstring says which calls)."""
    if len(args) != 2:
        return None
    z, v = args
    if type(z) is not np.ndarray or type(v) is not np.ndarray or z.size < FUSED_ELEMENTS:
        return None
    shape = z.shape
    if (
        z.dtype not in _distill_rows.KERNEL_DTYPES
        or v.dtype != z.dtype
        or v.shape != shape
        or len(shape) < 2
    ):
        return None
    if shape[-1] < 2:  # (one class: every row's D is 0, a near row the full path forms)
        return None
    if not (z.flags.c_contiguous and v.flags.c_contiguous) or not _KEYWORDS.issuperset(kwargs):
        return None
    get = kwargs.get
    axis, validate = get("axis", -1), get("validate", True)
    if type(axis) is not int or axis not in (-1, len(shape) - 1) or type(validate) is not bool:
        return None
    form, direction = get("teacher_form", "logits"), get("direction", "forward")
    if type(form) is not str or form not in _FORMS or type(direction) is not str:
        return None
    if direction not in _DIRECTIONS or not _cpu_kernels.available():
        return None
    try:
        options = distillation_options(
            get("temperature", 1.0), form, direction, get("reduction", "mean"), get("base")
        )
    except Exception:  # (the full path names it)
        return None
    t = options[0]
    if not square_is_normal(t) or t >= _WIDE_TEMPERATURE:
        return None
    classes = shape[-1]
    rows = z.reshape(-1, classes), v.reshape(-1, classes)
    blocks = _distill_rows.Blocks(classes)
    variant = Options(form, direction)
    return FusedCall(*rows, shape, t, options[3], validate, blocks, variant)


_FORMS = ("logits", "probs", "log_probs")
_DIRECTIONS = ("forward", "reverse")


def _forward(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[FusedCall, np.ndarray] | None:
    """The call (:func:`fused_call`) and its rows' statistics by the forward kernel
    (``_distill_rows.forward_statistics``), or None (a teacher of probabilities or
    log-probabilities that the statistics do not surely pass: the full path validates)."""
    call = fused_call(args, kwargs)
    if call is None:
        return None
    rows, classes = call.z.shape
    stats = _distill_rows.forward_statistics(
        rows, classes, call.temperature, call.wide, options=call.variant
    )
    return None if call.teacher_fails(stats) else (call, stats)


def loss(args: tuple[Any, ...], kwargs: dict[str, Any], host: Host) -> Any:
    """``distillation_loss(*args, **kwargs)`` by the fused kernels, or None (the call
    is not one :func:`fused_call` takes, or it holds an invalid row: the full path
    names it)."""
    found = _forward(args, kwargs)
    if found is None:
        return None
    call, stats = found
    t = call.temperature
    values, kind = _distill_rows.row_kinds(stats, t)
    flagged = np.flatnonzero(kind)
    if flagged.size:
        if call.invalid(np.flatnonzero(kind == 2)):
            return None
        values[flagged] = host(*call.rows64(flagged), t, call.variant)
    return call.result(call.batch().reduce(values.reshape(call.shape[:-1])))


def gradient(args: tuple[Any, ...], kwargs: dict[str, Any], host: Host) -> Any:
    """``distillation_loss_grad(*args, **kwargs)`` by the fused kernels, or None (as
    :func:`loss`)."""
    found = _forward(args, kwargs)
    if found is None:
        return None
    call, stats = found
    t = call.temperature
    finite = np.isfinite(stats[:, 0])
    if not finite.all() and call.invalid(np.flatnonzero(~finite)):
        return None
    scale = call.batch().gradient_scale()
    rows, classes = call.z.shape
    grad = np.empty((rows, classes), dtype=call.z.dtype)
    direct = call.direct  # (the gradient in the rows' dtype, each entry rounded once)

    def target(start: int, stop: int) -> np.ndarray:
        return grad[start:stop] if direct else call.blocks.get(2, stop - start)

    def store(start: int, stop: int, block: np.ndarray) -> None:
        grad[start:stop] = block  # (rounded once to float32)

    r = np.full(rows, t * scale, dtype=_FLOAT64)
    variant = call.variant
    small = _distill_rows.backward_rows(
        classes, stats, t, r, call.wide, target, None if direct else store, options=variant
    )
    # the full path's near rows (``_near_rows.forward_rows_flagged``, both directions):
    # a small spread (the kernel's flags) or a KL below the floor (kind 1; forward rows
    # of 1.01 spread floors were 36 700 units of 2^-53 of their largest entry off)
    if not variant.reverse or grad.dtype != _FLOAT64:  # (the reverse kernel's float64
        small |= stats[:, 0] < _KL_FLOOR  # gradient: near rows within a few units)
    again = np.flatnonzero(~finite | small)
    if again.size:
        grad[again] = host(*call.rows64(again), t, variant) * scale
    return grad.reshape(call.shape)
