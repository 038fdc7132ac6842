r"""The contract of the fused softmax gradient kernels, in one place.

Both fused gradient kernels, Numba's (``_cpu_kernels.write_gradient``) and its NumPy
twin for the default install (``_numpy_kernels.write_gradient``), write for logits
:math:`z` (N x V, C-contiguous) and labels :math:`y`

.. math:: g_{ic} = a_i\, e^{z_{ic}/T - s_i} - b_i u_c - [c = y_i]\, t_i

in :math:`z`'s storage format (float32, float16, or the uint16 bits of bfloat16):
each entry is computed in float64 (the label's with its target term, so that
:math:`p_y - 1` is formed before any rounding), rounded once to float32, and for
float16 and bfloat16 rounded from that float32 to nearest even; a NaN stays a NaN, an
overflow becomes an infinity. :class:`GradientTerms` holds the per-row and per-class
coefficients (built by ``_softmax._fast_gradient``, which folds the options, the
reduction, an upstream gradient and the temperature's chain rule into them), in the
dtypes the kernels read; :func:`gradient_out` is the array they write.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GradientTerms", "gradient_out"]


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
    """

    shift: np.ndarray
    inv_temperature: float
    p_coef: np.ndarray
    target_coef: np.ndarray
    uniform: np.ndarray | None = None
    row_uniform: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.uniform is None) != (self.row_uniform is None):
            raise ValueError("`uniform` and `row_uniform` must be given together")
        for name in ("shift", "p_coef", "target_coef", "uniform", "row_uniform"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, np.ascontiguousarray(value, dtype=np.float64))
        object.__setattr__(self, "inv_temperature", float(self.inv_temperature))


def gradient_out(z: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``out``, or a new array of ``z``'s shape and storage dtype for the gradient."""
    return np.empty(z.shape, dtype=z.dtype) if out is None else out
