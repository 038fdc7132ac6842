r"""The fused distillation kernels over blocks of rows: what the NumPy and the torch paths share.

``_distill_numba``'s kernels form, per row of student logits :math:`z` and teacher
logits :math:`v` (rows x classes, float64), the statistics :math:`(D, m_z, \ell_s,
m_v, \ell_t)` of :math:`D(t\,\|\,s)` at a temperature :math:`T` (the forward kernel),
and from them :math:`r_i(s - t)` with each row's spread flag (the backward kernel).
Two callers run them: ``crossent.torch``'s CPU op (``torch._distill_cpu``) and the NumPy
:func:`crossent.distillation_loss` and its gradient (``_distill_fused``). Both hand the
kernels a block of rows at a time by the caller's ``wide(start, stop)`` (:data:`Wide`):
float32 and float64 rows as they are (:data:`KERNEL_DTYPES`: the kernels widen each
entry as they read it, and the backward writes a float32 gradient itself, each entry
rounded once; one compilation of each kernel per dtype), others widened to float64
into per-thread blocks of :data:`BLOCK_BYTES` (:class:`Blocks`), the blocks shared by
threads (:func:`over_blocks`: the kernels release the GIL), and both hand the rows the
kernels do not form to NumPy's exact functions (:func:`row_kinds`):

* kind 2, a row whose :math:`T^2 D` is not finite (a NaN, ``+inf`` or a row of
  ``-inf`` in its logits, the caller's validation then names it; a student ``-inf``
  beside a teacher probability above 0, even one below the kernels' :math:`e^{-708}`
  floor, valid, :math:`D = \infty`; a student logit more than :math:`2^{900}T` below
  its maximum, where a term the floor drops may count; a gap
  past the float64 range; a :math:`T^2 D` that overflows); other ``-inf`` logits (a
  masked vocabulary) the kernels form;
* kind 1, a row whose :math:`D` is below ``_near_rows.KL_FLOOR``, where the common
  formula's terms cancel (``_near_rows`` forms it);
* and in the backward, a row whose spread :math:`\max_c |s_c - t_c|` (reverse, a
  float32 gradient: :math:`\max_c |s_c(\log s_c - \log t_c - D)|`) is small
  (:func:`backward_rows`' flags), where :math:`s - t` cancels (the reverse kernel's
  float64 gradient is exact: it forms every row it is handed, near rows too; branch
  distgrad1).

Nothing here imports Numba or torch: :func:`kernels` imports ``_distill_numba`` on
first use.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._parallel import run_in_parts
from .._read_only import read_only
from ._near_rows import KL_FLOOR as _KL_FLOOR

__all__ = [
    "BLOCK_BYTES",
    "FORWARD_LOGITS",
    "KERNEL_DTYPES",
    "Blocks",
    "Gradient",
    "Options",
    "Wide",
    "backward_rows",
    "forward_statistics",
    "gradient_kernel",
    "kernels",
    "log_of_probs",
    "over_blocks",
    "reverse_kernel",
    "reverse_statistics",
    "row_blocks",
    "row_kinds",
    "teacher_passes",
]

BLOCK_BYTES = 4 * 2**20
"""Float64 bytes of one block of rows widened for the kernels (per side; one row at least)."""

KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
"""The dtypes of rows the kernels read as they are (one compilation of each kernel per
dtype); the callers widen others to float64 (float16, bfloat16)."""

Wide = Callable[[int, int], tuple[np.ndarray, np.ndarray]]
"""``wide(start, stop)``: the student's and the teacher's rows ``start:stop`` as
C-contiguous, aligned arrays of one of :data:`KERNEL_DTYPES` (rows x classes), as
the kernels take them: writable or not, each is handed to the kernels as a read-only
view (:func:`crossent._read_only.read_only`; Numba compiles read-only arrays apart, so
the NumPy path's memory maps and the torch path's tensors share one compilation)."""


@functools.cache
def kernels() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The forward and backward kernels (imports Numba, once)."""
    from . import _distill_numba

    return _distill_numba.distillation_forward_kernel, _distill_numba.distillation_backward_kernel


@functools.cache
def reverse_kernel() -> Callable[..., Any]:
    """The reverse direction's backward kernel (imports Numba, once)."""
    from . import _distill_numba

    return _distill_numba.distillation_reverse_backward_kernel


@dataclass(frozen=True)
class Options:
    r"""How the kernels read a call (``teacher_form`` and ``direction`` of
    :func:`crossent.distillation_loss`), beside its :math:`T`.

    * The teacher reaches the kernels as logits :math:`v`: its logits, its
      log-probabilities as they are, or the log of its probabilities (the callers'
      ``wide``, :func:`log_of_probs`): the softened teacher
      :math:`\operatorname{softmax}(\log t / T)` is the logits kernel's
      :math:`\operatorname{softmax}(v / T)` of them.
    * At :math:`T = 1` a teacher of probabilities or log-probabilities is taken as it is
      (the full path's ``log_t``, not renormalised; its rows sum to 1 within the
      validation's tolerance): :math:`t_c = e^{v_c}`, :attr:`given` (the kernel's
      ``_given``: :math:`D = e^L(D_k + L)` of the renormalised :math:`D_k`, and
      :math:`\ell_t = -m_v`).
    * ``'reverse'``: :math:`D(s\,\|\,t)` is the forward kernel's :math:`D(t'\,\|\,s')`
      with the roles swapped (:func:`forward_statistics`), its gradient
      :math:`T s \odot (\log s - \log t - D)` the reverse kernel's
      (:func:`backward_rows`).
    """

    teacher_form: str = "logits"
    direction: str = "forward"

    def given(self, temperature: float) -> bool:
        """Whether the teacher is taken as it is (its form not logits, :math:`T = 1`)."""
        return self.teacher_form != "logits" and temperature == 1.0

    @property
    def reverse(self) -> bool:
        """Whether the direction is ``'reverse'``."""
        return self.direction == "reverse"


FORWARD_LOGITS = Options()
"""Teacher logits, ``direction='forward'``: the kernels' own call."""


def log_of_probs(probs: np.ndarray, block: np.ndarray) -> np.ndarray:
    r""":math:`\log p` of probabilities ``probs`` (rows x classes, any float dtype) into
    the float64 ``block`` of their shape, each formed in float64 (``-inf`` for 0, NaN
    for a negative or NaN entry: the validation's screen, :func:`teacher_passes`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(probs, out=block, dtype=np.float64)


def teacher_passes(stats: np.ndarray, teacher_form: str, tolerance: float) -> bool:
    r"""Whether every row surely passes the validation of a teacher of probabilities or
    log-probabilities (``_checks.check_distribution``, ``check_log_distribution``) by
    the kernels' statistics (``stats[:, 5]``, the teacher's log-sum-exp :math:`L` at
    :math:`T = 1`, :func:`forward_statistics`, and :math:`m_v`): :math:`|e^L - 1|`
    within half the row-sum ``tolerance`` (the check's own sum, in the storage dtype or
    float32, is within far less of :math:`e^L`; NaN for a
    NaN, ``+inf`` or negative entry, or a row of zeros, fails), and, for probabilities,
    :math:`\max_c p_c = e^{m_v} \le 1`. False sends the call to the full validation,
    which names the error or passes."""
    with np.errstate(invalid="ignore"):
        if not bool((np.abs(np.expm1(stats[:, 5])) <= 0.5 * tolerance).all()):
            return False
        return teacher_form != "probs" or bool((stats[:, 3] <= 0.0).all())


@functools.cache
def gradient_kernel() -> Callable[..., Any]:
    """The forward kernel that writes the backward kernel's gradient rows too (imports
    Numba, once)."""
    from . import _distill_numba

    return _distill_numba.distillation_forward_gradient_kernel


Gradient = tuple[np.ndarray, Callable[[int, int], np.ndarray], np.ndarray]
"""``(scale, target, spread_small)``: :func:`backward_rows`' ``scale`` and ``target``
(``target`` of the rows' own dtype, one of :data:`KERNEL_DTYPES`) and its flags, an
array of rows booleans that the kernel fills."""


def row_blocks(rows: int, classes: int) -> list[tuple[int, int]]:
    """Blocks ``(start, stop)`` of at most :data:`BLOCK_BYTES` float64 rows (one row at least)."""
    size = max(1, BLOCK_BYTES // (8 * max(classes, 1)))
    return [(start, min(start + size, rows)) for start in range(0, rows, size)]


def over_blocks(
    rows: int, classes: int, work: Callable[[int, int], None], most: int | None = None
) -> None:
    """``work(start, stop)`` on each block of :func:`row_blocks`, on up to ``most``
    threads (None: ``crossent._parallel``'s count) where there are two blocks or more.

    The threads (the caller's and the process's pool, ``_parallel.run_in_parts``) take
    the blocks in turn from one queue, so that a thread slowed by other work takes
    fewer. An exception in a block stops the others from taking new ones and goes on.
    """
    blocks = row_blocks(rows, classes)
    threads = min(len(blocks), most or len(blocks))
    if threads <= 1:
        for start, stop in blocks:
            work(start, stop)
        return
    queue = iter(blocks)
    lock = threading.Lock()
    failed: list[bool] = []

    def drain(_first: int, _stop: int) -> None:
        while not failed:
            with lock:
                block = next(queue, None)
            if block is None:
                return
            try:
                work(*block)
            except BaseException:
                failed.append(True)
                raise

    run_in_parts(drain, threads)


class Blocks:
    """Float64 blocks of rows (rows x ``classes``, C-contiguous) of one call, each thread's
    own, kept from block to block: a new array of :data:`BLOCK_BYTES` for each block
    cost 5 ms where its copy took 0.3 (two threads, 2-core AMD EPYC KVM guest: the
    pages of each new array faulted in, and unmapped again beside the other thread)."""

    def __init__(self, classes: int) -> None:
        self._classes = classes
        self._local = threading.local()

    def get(self, slot: int, rows: int) -> np.ndarray:
        """This thread's block ``slot`` (0, 1, ...) of ``rows`` rows (its values: the
        last use's)."""
        held: dict[int, np.ndarray] | None = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = {}
        block = held.get(slot)
        if block is None or block.shape[0] < rows:  # (the first block: the largest)
            block = held[slot] = np.empty((rows, self._classes), dtype=np.float64)
        return block[:rows]


def forward_statistics(
    rows: int,
    classes: int,
    temperature: float,
    wide: Wide,
    most: int | None = None,
    gradient: Gradient | None = None,
    options: Options = FORWARD_LOGITS,
) -> np.ndarray:
    r"""Each row's :math:`(D, m_z, \ell_s, m_v, \ell_t, L)` (float64, rows x 6; :math:`L`
    the teacher's log-sum-exp at :math:`T = 1`, for the validation: :math:`m_v + \ell_t`
    before :attr:`Options.given`'s :math:`\ell_t = -m_v` at :math:`T = 1`, at other
    temperatures the kernel's sum of :math:`e^{v_c - m_v}` for a teacher of
    probabilities or log-probabilities, one exponential more a logit; no number for
    logits) by the forward kernel, over the blocks ``wide`` gives
    (:func:`over_blocks`); :math:`D` is NaN on a row that holds a NaN or an infinity,
    :math:`D(s\,\|\,t)` for ``options.reverse`` (:class:`Options`). With ``gradient``
    (:data:`Gradient`, forward only), the kernel also writes :func:`backward_rows`'
    gradient and flags, the same bits, from each row's exponentials
    (:func:`gradient_kernel`: two a logit in all, not four)."""
    stats = np.empty((rows, 6), dtype=np.float64)
    forward, _ = kernels()
    given = options.given(temperature)
    # the teacher's log-sum-exp (at T = 1 the kernel's own m_v + ell_t): v's, or for the
    # reverse direction z's of the swapped call
    lse = 0 if options.teacher_form == "logits" or temperature == 1.0 else 1

    def work(start: int, stop: int) -> None:
        z, v = map(read_only, wide(start, stop))
        at = slice(start, stop)
        if options.reverse:
            reverse_statistics(forward, z, v, temperature, stats[at], given, lse)
        elif gradient is None:
            forward(z, v, temperature, stats[at], given, lse)
        else:
            scale, target, small = gradient
            kernel = gradient_kernel()
            into = target(start, stop)
            kernel(z, v, temperature, stats[at], scale[at], into, small[at], given, lse)

    over_blocks(rows, classes, work, most)
    return stats


def reverse_statistics(
    forward: Callable[..., Any],
    z: np.ndarray,
    v: np.ndarray,
    temperature: float,
    out: np.ndarray,
    given: bool,
    lse: int = 0,
) -> None:
    r""":math:`(D(s\,\|\,t), m_z, \ell_s, m_v, \ell_t, L)` of rows ``z`` and ``v`` into
    ``out``: the forward kernel of the roles swapped (its :math:`D(t'\,\|\,s')` of
    :math:`t' = s`, :math:`s' = t`, its rows' floors and flags those of the swapped
    sides: a teacher ``-inf`` beside a student logit above ``-inf`` makes
    :math:`D = \infty`, the truth), its columns put back; ``given`` (:class:`Options`):
    :math:`D = D_k - L` of :math:`\log t_c = v_c` (the renormalised teacher's
    :math:`\log t'_c = v_c - L`), :math:`\ell_t = -m_v`. The kernel forms this
    :math:`D` from the student's log-ratios centred at its first top class
    (``_distill_numba._reverse_kl``, branch distrev1)."""
    swapped = np.empty((out.shape[0], 6), dtype=np.float64)
    # (2: the lse of its z, our v; + 4: its D of the roles swapped by the student's
    # exact log-ratios, _distill_numba._reverse_kl)
    forward(v, z, temperature, swapped, False, (2 if lse else 0) + 4)
    out[:, 0] = swapped[:, 0]
    out[:, 1:3] = swapped[:, 3:5]
    out[:, 3:5] = swapped[:, 1:3]
    out[:, 5] = swapped[:, 5] if lse else out[:, 3] + out[:, 4]
    if given:
        out[:, 0] -= out[:, 5]
        out[:, 4] = -out[:, 3]


def row_kinds(stats: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Per row, :math:`T^2 D` (float64; ``inf`` where it overflows, no warning) and
    its kind (int8): 0, the kernel's row; 1, a near row (:math:`D` below
    ``_near_rows.KL_FLOOR``); 2, a row whose :math:`T^2 D` is not finite."""
    kl = stats[:, 0]
    with np.errstate(over="ignore", invalid="ignore"):
        loss = kl * (temperature * temperature)
        kind = np.where(np.isfinite(loss), kl < _KL_FLOOR, 2).astype(np.int8)
    return loss, kind


def backward_rows(
    classes: int,
    stats: np.ndarray,
    temperature: float,
    scale: np.ndarray,
    wide: Wide,
    target: Callable[[int, int], np.ndarray],
    store: Callable[[int, int, np.ndarray], None] | None = None,
    most: int | None = None,
    options: Options = FORWARD_LOGITS,
) -> np.ndarray:
    r""":math:`r_i(s_i - t_i)` by the backward kernel, ``scale`` :math:`r` (float64, one
    per row), into ``target(start, stop)`` (a C-contiguous block of the rows, rows x
    classes, float64 or the rows' dtype: each entry formed in float64 and rounded once
    to it; ``store(start, stop, block)`` then, where given, puts it where the
    caller wants it); returns the rows whose spread is small (booleans), which the
    caller forms again. Rows whose :math:`D` is not finite are written as 0 (the
    caller's too). ``classes``: the rows' length. ``options.reverse``: :math:`r_i s_i
    \odot (\log s_i - \log t_i - D_i)` by the reverse kernel, of
    :func:`forward_statistics`' reverse statistics: into a float64 target no row
    flagged (the kernel's factor is exact, near rows' too: ``_distill_numba``'s
    docstring), into a float32 one the flags of its spread :math:`\max_c |s_c(\log s_c
    - \log t_c - D)|` against :math:`\max_c s_c` (``_near_rows.forward_rows_flagged``'
    rule; the rows of a KL below ``_near_rows.KL_FLOOR``, kind 1, are the caller's to
    add)."""
    rows = stats.shape[0]
    spread_small = np.zeros(rows, dtype=np.bool_)
    _, backward = kernels()

    def work(start: int, stop: int) -> None:
        z, v = map(read_only, wide(start, stop))
        block = target(start, stop)
        at = slice(start, stop)
        if options.reverse:
            reverse_kernel()(z, v, stats[at], temperature, scale[at], block, spread_small[at])
        else:
            backward(z, v, stats[at], temperature, scale[at], block, spread_small[at])
        if store is not None:
            store(start, stop, block)

    over_blocks(rows, classes, work, most)
    return spread_small
