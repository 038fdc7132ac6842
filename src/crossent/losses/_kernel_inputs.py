r"""What the fused softmax kernels take besides the logits, defined once for both twins.

The Numba kernels (``_cpu_kernels``) and their NumPy twins for the default install
(``_numpy_kernels``) share two contracts, for logits :math:`z` (N x V, C-contiguous;
float32, float16, or the uint16 bits of bfloat16) and valid labels :math:`y`:

* ``row_statistics(z, labels, options)`` returns per row :math:`m = \max_c z'_c`,
  :math:`\ell = \log\sum_c e^{z'_c - m}`, :math:`z'_y - m`, :math:`\sum_c w_c (z'_c - m)`
  (only when :attr:`StatisticsOptions.need_sum`; 0 otherwise) and whether the row is
  suspect (may hold a NaN or ``+inf``, or is all ``-inf``), with :math:`z' = z/T`;
  :class:`StatisticsOptions` holds :math:`1/T`, the flag and :math:`w`.
* ``write_gradient(z, labels, terms, *, out=None)`` writes

  .. math:: g_{ic} = a_i\, e^{z_{ic}/T - s_i} - b_i u_c - [c = y_i]\, t_i

  in :math:`z`'s storage format: each entry is computed in float64 (the label's with
  its target term, so that :math:`p_y - 1` is formed before any rounding; given
  :math:`\log p_y` per row, as :math:`a_i \operatorname{expm1}(\log p_y) + (a_i - t_i)`,
  exact to float64 however close :math:`p_y` is to 1), rounded
  once to float32, and for float16 and bfloat16 rounded from that float32 to nearest
  even; a NaN stays a NaN, an overflow becomes an infinity. :class:`GradientTerms`
  holds the coefficients (built by ``_softmax._fast_gradient``, which folds the
  options, the reduction, an upstream gradient and the temperature's chain rule into
  them); :func:`gradient_out` is the array written.

The arrays are converted once, here, to the C-contiguous float64 the kernels read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "HALF_LOG",
    "GradientTerms",
    "StatisticsOptions",
    "gradient_out",
    "statistics_options",
]

#: :math:`\log(1/2)`: the label's gradient entry is formed from ``expm1(log p_y)`` above it
#: (:math:`p_y > 1/2`, where :math:`c\,p_y - g` would cancel) and as :math:`c\,p_y - g`
#: below it (where :math:`c \operatorname{expm1} + (c - g)` would cancel instead, when
#: :math:`c` is large against :math:`g`: a z-loss on large logits)
HALF_LOG = -0.6931471805599453


def _float64(value: np.ndarray | None) -> np.ndarray | None:
    return None if value is None else np.ascontiguousarray(value, dtype=np.float64)


@dataclass(frozen=True)
class StatisticsOptions:
    r"""What ``row_statistics`` computes besides the maximum and the log-sum-exp.

    Attributes
    ----------
    inv_temperature : float
        :math:`1/T`: the statistics are those of :math:`z/T`.
    need_sum : bool
        Whether to compute :math:`\sum_c w_c (z'_c - m)` (label smoothing's term; a pass
        of its own over the row).
    weight : ndarray, shape (V,), or None
        :math:`w` in that sum (class weights; a class of weight 0 is left out, even at
        ``-inf``); None for all 1. Stored as C-contiguous float64.
    """

    inv_temperature: float = 1.0
    need_sum: bool = False
    weight: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "inv_temperature", float(self.inv_temperature))
        object.__setattr__(self, "need_sum", bool(self.need_sum))
        object.__setattr__(self, "weight", _float64(self.weight))


@dataclass(frozen=True)
class GradientTerms:
    r"""The coefficients of :math:`g_{ic} = a_i e^{z_{ic}/T - s_i} - b_i u_c - [c = y_i] t_i`.

    The arrays are stored as C-contiguous float64 (converted on construction).

    Attributes
    ----------
    shift : ndarray, shape (N,)
        :math:`s_i`, the log-sum-exp of the row of :math:`z/T`.
    inv_temperature : float
        :math:`1/T`.
    p_coef : ndarray, shape (N,)
        :math:`a_i`, the factor of the softmax probability.
    target_coef : ndarray, shape (N,)
        :math:`t_i`, subtracted at the label's entry.
    uniform : ndarray, shape (V,), or None
        :math:`u_c` (label smoothing's spread over the classes); None for 0.
    row_uniform : ndarray, shape (N,), or None
        :math:`b_i`; given exactly when ``uniform`` is.
    label_log_p : ndarray, shape (N,), or None
        :math:`\log p_{y_i} = (z'_{y_i} - m_i) - \ell_i` from the row statistics
        (exact where the label is the maximum, :math:`-\ell_i`): the label's entry is
        then :math:`a_i \operatorname{expm1}(\log p_{y_i}) + (a_i - t_i) - b_i u_{y_i}`,
        free of the rounding of :math:`s_i` (an ulp of :math:`m_i`, large against
        :math:`1 - p_y` at extreme confidence). None: :math:`a_i e^{z_{iy}/T - s_i} - t_i
        - b_i u_{y_i}`, as every other entry.
    label_offset : ndarray, shape (N,), or None
        :math:`a_i - t_i` in that label's entry, formed by the caller from
        :math:`a_i`'s parts (``_terms.label_offset``: a z-loss's part of :math:`a_i`
        kept to its own ulp, not an ulp of :math:`a_i`, issue 13); None: :math:`a_i -
        t_i` as given.
    temperature : float or None
        :math:`T` itself (None: taken as ``1 / inv_temperature``): with ``uniform``, the
        Numba kernel forms :math:`(z - \text{top})/T` as an exact pair.

    With ``uniform`` (label smoothing) the Numba kernel (``_cpu_kernels.write_gradient``)
    takes :math:`s_i` as the log-sum-exp to within a few float64 ulps and corrects it by
    a pass over the row, so that each entry is formed from the exact softmax (issue 13:
    :math:`a_i p_c - b_i u_c` cancels where :math:`p_c` meets the smoothing); it ignores
    ``label_log_p`` there.
    """

    shift: np.ndarray
    inv_temperature: float
    p_coef: np.ndarray
    target_coef: np.ndarray
    uniform: np.ndarray | None = None
    row_uniform: np.ndarray | None = None
    label_log_p: np.ndarray | None = None
    label_offset: np.ndarray | None = None
    temperature: float | None = None

    def __post_init__(self) -> None:
        if (self.uniform is None) != (self.row_uniform is None):
            raise ValueError("`uniform` and `row_uniform` must be given together")
        for name in (
            "shift",
            "p_coef",
            "target_coef",
            "uniform",
            "row_uniform",
            "label_log_p",
            "label_offset",
        ):
            object.__setattr__(self, name, _float64(getattr(self, name)))
        object.__setattr__(self, "inv_temperature", float(self.inv_temperature))
        if self.temperature is not None:
            object.__setattr__(self, "temperature", float(self.temperature))


def statistics_options(
    inv_temperature: float, need_sum: bool, weight: np.ndarray | None
) -> StatisticsOptions:
    """:class:`StatisticsOptions`, made once per ``(1/T, need_sum)`` without weights.

    (issue 13: the frozen dataclass's conversions are a microsecond of a small call.)
    """
    if weight is not None:
        return StatisticsOptions(inv_temperature, need_sum, weight)
    key = (inv_temperature, need_sum)
    try:
        return _UNWEIGHTED[key]
    except KeyError:
        made = StatisticsOptions(inv_temperature, need_sum)
    if len(_UNWEIGHTED) < 256:
        _UNWEIGHTED[key] = made
    return made


_UNWEIGHTED: dict[tuple[float, bool], StatisticsOptions] = {}


def gradient_out(z: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``out``, or a new array of ``z``'s shape and storage dtype for the gradient."""
    return np.empty(z.shape, dtype=z.dtype) if out is None else out
