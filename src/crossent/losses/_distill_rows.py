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
* and in the backward, a row whose spread :math:`\max_c |s_c - t_c|` is small
  (:func:`backward_rows`' flags), where :math:`s - t` cancels.

Nothing here imports Numba or torch: :func:`kernels` imports ``_distill_numba`` on
first use.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from .._parallel import run_in_parts
from .._read_only import read_only
from ._near_rows import KL_FLOOR as _KL_FLOOR

__all__ = [
    "BLOCK_BYTES",
    "KERNEL_DTYPES",
    "Blocks",
    "Gradient",
    "Wide",
    "backward_rows",
    "forward_statistics",
    "gradient_kernel",
    "kernels",
    "over_blocks",
    "row_blocks",
    "row_kinds",
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
) -> np.ndarray:
    r"""Each row's :math:`(D, m_z, \ell_s, m_v, \ell_t)` (float64, rows x 5) by the
    forward kernel, over the blocks ``wide`` gives (:func:`over_blocks`); :math:`D` is
    NaN on a row that holds a NaN or an infinity. With ``gradient`` (:data:`Gradient`),
    the kernel also writes :func:`backward_rows`' gradient and flags, the same bits, from
    each row's exponentials (:func:`gradient_kernel`: two a logit in all, not four)."""
    stats = np.empty((rows, 5), dtype=np.float64)
    forward, _ = kernels()

    def work(start: int, stop: int) -> None:
        z, v = map(read_only, wide(start, stop))
        if gradient is None:
            forward(z, v, temperature, stats[start:stop])
            return
        scale, target, small = gradient
        at = slice(start, stop)
        gradient_kernel()(z, v, temperature, stats[at], scale[at], target(start, stop), small[at])

    over_blocks(rows, classes, work, most)
    return stats


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
) -> np.ndarray:
    r""":math:`r_i(s_i - t_i)` by the backward kernel, ``scale`` :math:`r` (float64, one
    per row), into ``target(start, stop)`` (a C-contiguous block of the rows, rows x
    classes, float64 or the rows' dtype: each entry formed in float64 and rounded once
    to it; ``store(start, stop, block)`` then, where given, puts it where the
    caller wants it); returns the rows whose spread is small (booleans), which the
    caller forms again. Rows whose :math:`D` is not finite are written as 0 (the
    caller's too). ``classes``: the rows' length."""
    rows = stats.shape[0]
    spread_small = np.zeros(rows, dtype=np.bool_)
    _, backward = kernels()

    def work(start: int, stop: int) -> None:
        z, v = map(read_only, wide(start, stop))
        block = target(start, stop)
        at = slice(start, stop)
        backward(z, v, stats[at], temperature, scale[at], block, spread_small[at])
        if store is not None:
            store(start, stop, block)

    over_blocks(rows, classes, work, most)
    return spread_small
