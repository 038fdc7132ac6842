r"""Fused CPU kernels for softmax cross-entropy of float32, float16 and bfloat16 logits (Numba).

Design
------
PyTorch's eager ``cross_entropy`` materialises ``log_softmax`` (an N x V write and
read) before gathering; at N = 4096, V = 32000 that traffic dominates. These kernels
read each row of logits once into cache and never allocate an N x V temporary:

* :func:`row_statistics` returns, per row, :math:`m = \max_c z'_c`,
  :math:`\ell = \log\sum_c e^{z'_c - m}` (as ``log1p`` of the non-maximal terms plus
  the ties, like ``_xp.log_sum_exp_shifted``), :math:`z'_y - m` and
  :math:`\sum_c w_c (z'_c - m)` (for label smoothing), with :math:`z' = z/T`. The
  loss and every option are then computed by the same per-row functions as the
  generic path (``_terms.py``), so both paths share their meaning.
* :func:`write_gradient` writes :math:`c_i\,p_{ic} - r_i u_c - \delta_{c y_i} g_i` in
  one pass, where the per-row coefficients fold in the options, the reduction (and an
  upstream gradient) and the temperature's chain rule (``_softmax._fast_gradient``).

Validation costs no pass of its own: a row is *suspect* when its maximum or its
exp-sum is not finite, which happens exactly when it holds a NaN (``exp`` propagates
NaN, and ``x - max`` is NaN for a NaN ``x`` whatever the maximum) or ``+inf``, or
when every entry is ``-inf``. Only then does the caller run the full (slower) check
to name the offending entry. A ``-inf`` logit beside finite ones is valid and does
not make the row suspect.

The kernels themselves, and the derivation of their accuracy, are in
:mod:`._cpu_kernels_numba`, which imports Numba at its top. Importing this module does
not import Numba; :func:`available` looks for it, and the first call of a kernel
imports that module (whose kernels compile on their first call, or load from Numba's
on-disk cache).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from .._read_only import read_only
from ._kernel_inputs import GradientTerms, StatisticsOptions, gradient_out

__all__ = [
    "SERIAL_ELEMENTS",
    "available",
    "row_statistics",
    "target_example_weights",
    "target_row_losses",
    "write_gradient",
    "write_target_gradient",
]


@functools.cache
def available() -> bool:
    """Whether Numba can be imported (the kernels compile on first use)."""
    return importlib.util.find_spec("numba") is not None


@functools.cache
def _kernels() -> dict[str, Callable[..., Any]]:
    """The compiled kernels by name (imports Numba, once)."""
    from . import _cpu_kernels_numba as kernels
    from . import _target_loss_numba as target_loss

    return {
        "row_statistics": kernels.row_statistics_kernel,
        "gradient": kernels.gradient_kernel,
        "row_statistics_serial": kernels.row_statistics_kernel_serial,
        "gradient_serial": kernels.gradient_kernel_serial,
        "smoothed_gradient": kernels.smoothed_gradient_kernel,
        "smoothed_gradient_serial": kernels.smoothed_gradient_kernel_serial,
        "target_gradient": kernels.target_gradient_kernel,
        "target_gradient_serial": kernels.target_gradient_kernel_serial,
        "target_loss": target_loss.target_loss_kernel,
        "target_loss_serial": target_loss.target_loss_kernel_serial,
        "example_weight": target_loss.example_weight_kernel,
        "example_weight_serial": target_loss.example_weight_kernel_serial,
    }


_EMPTY = read_only(np.zeros(0))

#: Rows per parallel work item of the statistics kernel: its first row's maximum is a
#: pass of its own, the others' are fused into the previous row's exp-sum. Part of the
#: kernel's results: a block's last row is summed by ``exp_sum``, whose vectorised order
#: differs from the fused loop's (``ell`` moves by up to 3e-15 between blocks of 32 and
#: of 64 rows), so another size changes the kernel's bits (issue 13).
_ROWS_PER_BLOCK = 32

#: Up to this many logits the kernels run on the calling thread: a parallel launch
#: costs about 9 us (AMD EPYC, measured), the time of some 2**14 exponentials.
SERIAL_ELEMENTS = 1 << 14


def _variant(name: str, serial: bool) -> Callable[..., Any]:
    """The kernel ``name``, or its serial twin."""
    return _kernels()[name + "_serial" if serial else name]


def _stored(z: np.ndarray) -> np.ndarray:
    """What the kernels read or write: float32 as is, float16 as its int16 bits, bf16 bits
    (uint16).  Every array a kernel only reads is handed read-only
    (:func:`crossent._read_only.read_only`): a read-only caller's array (a memory map)
    otherwise compiled the kernels again (5 s of CPU time, float32)."""
    return z.view(np.int16) if z.dtype.char == _FLOAT16 else z


_FLOAT16 = np.dtype(np.float16).char
_FLOAT32 = np.dtype(np.float32).char
_INT64 = np.dtype(np.int64).char


def _int64(labels: np.ndarray) -> np.ndarray:
    """``labels`` as the C-contiguous int64 the kernels read (no copy when they are)."""
    if type(labels) is np.ndarray and labels.dtype.char == _INT64 and labels.flags.c_contiguous:
        return read_only(labels)
    return read_only(np.ascontiguousarray(labels, dtype=np.int64))


def row_statistics(
    z: np.ndarray, labels: np.ndarray, options: StatisticsOptions
) -> tuple[np.ndarray, ...]:
    """Per row of ``z`` (N x V, C-contiguous): m, ell, z'_y - m, sum w (z' - m), suspect.

    The contract of ``_kernel_inputs``. ``z`` is float32, float16, or uint16 holding
    the bits of bfloat16 values (a torch bf16 tensor viewed as 16-bit integers; NumPy
    has no bfloat16): the kernel decodes each value to float32 as it reads it (bf16:
    the bits shifted left by 16; float16: the hardware conversion), with no upcast
    copy. ``labels`` should be class ids (ignored rows mapped to 0 by the caller); a
    row whose label is not one is flagged suspect (and its ``z'_y - m`` read at class
    0): the kernel never reads outside a row. Small inputs (a single block of rows, or
    up to :data:`SERIAL_ELEMENTS` logits) run on the calling thread.
    """
    n = z.shape[0]
    outs = [*np.empty((4, n)), np.empty(n, dtype=np.bool_)]  # one allocation (issue 13)
    stored = read_only(_stored(z))
    # A single block of rows gains nothing from threads.
    _variant("row_statistics", n <= _ROWS_PER_BLOCK or z.size <= SERIAL_ELEMENTS)(
        stored,
        stored.view(np.int32) if z.dtype.char == _FLOAT32 else stored,
        _int64(labels),
        _optional(options.weight),
        options.inv_temperature,
        options.need_sum,
        _ROWS_PER_BLOCK,
        *outs,
    )
    return tuple(outs)


def write_gradient(
    z: np.ndarray, labels: np.ndarray, terms: GradientTerms, *, out: np.ndarray | None = None
) -> np.ndarray:
    """The gradient of ``_kernel_inputs``'s contract for ``z`` and ``labels``, by Numba.

    Into ``out`` when given (C-contiguous, of ``z``'s shape and dtype), else a new array.
    A row whose label is not a class id is left without its label's target term (the
    kernel never writes outside a row). Up to :data:`SERIAL_ELEMENTS` logits run on the
    calling thread.

    With a smoothing term (``terms.uniform``) the kernel is ``smoothed_gradient_kernel``:
    :math:`s_i` corrected to the exact log-sum-exp by a pass over the row and every
    :math:`p` exact to float64 before the entry's one rounding, so an entry where
    :math:`a_i p_c` meets :math:`b_i u_c` (label smoothing's stationary point) is within
    an ulp (issue 13; ``tests/losses/test_float32_generic_grad_cancellation.py``).
    """
    out = gradient_out(z, out)
    serial = z.size <= SERIAL_ELEMENTS
    if terms.uniform is not None:  # label smoothing: every entry from the exact softmax
        temperature = terms.temperature or 1.0 / terms.inv_temperature
        _variant("smoothed_gradient", serial)(
            read_only(_stored(z)),
            _int64(labels),
            read_only(terms.shift),
            terms.inv_temperature,
            temperature,
            read_only(terms.p_coef),
            read_only(terms.target_coef),
            read_only(terms.uniform),
            _optional(terms.row_uniform),
            _optional(terms.label_offset),
            _stored(out),
        )
        return out
    _variant("gradient", serial)(
        read_only(_stored(z)),
        _int64(labels),
        read_only(terms.shift),
        terms.inv_temperature,
        read_only(terms.p_coef),
        read_only(terms.target_coef),
        _optional(terms.uniform),
        _optional(terms.row_uniform),
        _optional(terms.label_log_p),
        _optional(terms.label_offset),
        _stored(out),
    )
    return out


def write_target_gradient(
    z: np.ndarray,
    targets: np.ndarray,
    *,
    m: np.ndarray,
    ell: np.ndarray,
    temperature: float,
    row_scale: np.ndarray,
    keep: float,
    spread: float,
    z_coef: float,
    weight: np.ndarray | None,
) -> np.ndarray:
    r"""The probability targets' gradient
    :math:`g_{ic} = c_i\,p_{ic} - r_i w_c (\text{keep}\, t_{ic} + \text{spread})`,
    :math:`c_i = r_i (A_i + z_\text{coef}\,\omega_i\,\mathrm{LSE}_i)`, of float32 ``z``
    and ``targets`` (N x V, C-contiguous), each entry formed in float64 and rounded once
    to float32 (issue 13). :math:`A_i = \text{keep} \sum_c w_c t_{ic} + \text{spread}
    \sum_c w_c` and :math:`\omega_i = \sum_c w_c t_{ic}` (1 without weights) are summed
    by the kernel, row by row (no float64 copy of the targets); :math:`p` to within about
    an ulp of float64: ``m`` and ``ell`` (the statistics' maximum and :math:`\ell` of
    :math:`z/T`, float64, shape (N,)), the latter corrected by a pass over each row.
    ``row_scale`` (:math:`r_i`): float64, shape (N,); ``weight``: the class weights
    (float64) or None.
    """
    out = np.empty(z.shape, dtype=np.float32)
    # ell on a 2**-24 grid: the kernel's exp reduction stays exact (its first pass over
    # the row finds the rest, log1p of a sum within 2**-24 of 1)
    shift = np.rint(ell * _GRID) / _GRID
    z = read_only(z)
    _variant("target_gradient", z.size <= SERIAL_ELEMENTS)(
        z,
        z.view(np.int32),
        read_only(targets),
        read_only(m),
        read_only(shift),
        1.0 / temperature,
        temperature,
        read_only(row_scale),
        keep,
        spread,
        float(z.shape[-1]) if weight is None else float(np.add.reduce(weight)),
        z_coef,
        _optional(weight),
        out,
    )
    return out


_GRID = float(1 << 24)


def _optional(x: np.ndarray | None) -> np.ndarray:
    """An optional input as the kernels read it: read-only, :data:`_EMPTY` for None."""
    return _EMPTY if x is None else read_only(x)


def target_row_losses(
    z: np.ndarray,
    targets: np.ndarray,
    *,
    m: np.ndarray,
    ell: np.ndarray,
    inv_temperature: float,
    keep: float,
    spread: float,
    weight: np.ndarray | None,
    z_loss: float,
) -> tuple[np.ndarray, np.ndarray]:
    r"""The probability targets' fused loss (issue 13; the kernel and its accuracy:
    :mod:`._target_loss_numba`): per row of float32 ``z`` and ``targets`` (N x V,
    C-contiguous), :math:`L_i = A_i\ell_i - B_i + \lambda\,\omega_i\,(m_i + \ell_i)^2`
    and the example weight :math:`\omega_i` (1 without class weights), both float64 of
    shape (N,), in one pass over the logits and targets after :func:`row_statistics`,
    with no N x V temporary.

    ``m`` and ``ell``: the row statistics of :math:`z/T` (float64, shape (N,));
    ``keep`` and ``spread``: ``_terms.smoothing_coefficients``; ``weight``: the class
    weights as C-contiguous float64, or None; ``z_loss``: :math:`\lambda`.
    """
    loss, omega = np.empty((2, z.shape[0]))  # one allocation
    _variant("target_loss", z.size <= SERIAL_ELEMENTS)(
        read_only(z),
        read_only(targets),
        read_only(m),
        read_only(ell),
        inv_temperature,
        keep,
        spread,
        _optional(weight),
        z_loss,
        loss,
        omega,
    )
    return loss, omega


def target_example_weights(targets: np.ndarray, weight: np.ndarray) -> np.ndarray:
    r"""The example weights :math:`\omega_i = \sum_c w_c t_{ic}` of float32 probability
    ``targets`` (N x V, C-contiguous) under the class weights ``weight`` (C-contiguous
    float64, shape (V,)), float64 of shape (N,): one pass over the targets, each entry
    widened as it is read, no N x V temporary (``w * t`` in float32 was one; issue 13).
    The loss kernel (:func:`target_row_losses`) forms the same sums beside its own.
    """
    omega = np.empty(targets.shape[0])
    _variant("example_weight", targets.size <= SERIAL_ELEMENTS)(
        read_only(targets), read_only(weight), omega
    )
    return omega
