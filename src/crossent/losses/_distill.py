r"""Knowledge distillation: KL between teacher and student at a temperature, and its gradient.

Hinton, Vinyals and Dean (2015) soften both distributions with a temperature
:math:`T` and multiply the KL by :math:`T^2`. The reason is the gradient: with
:math:`s = \operatorname{softmax}(z/T)` and :math:`t` the softened teacher,

.. math:: \frac{\partial}{\partial z}\,D(t \,\|\, s) = \frac{s - t}{T}
          \;\approx\; \frac{z - v}{C\,T^2} \qquad (T \to \infty)

for zero-mean logits :math:`z` (student) and :math:`v` (teacher) over :math:`C`
classes, since :math:`s - t \approx (z - v)/(CT)` there. Without the factor, raising
:math:`T` would shrink the distillation gradients like :math:`1/T^2` against the
hard-label loss; with it, :math:`T(s - t) \approx (z - v)/C` whatever :math:`T`.

``direction='forward'`` is :math:`D(t \| s)` (mean-seeking, the classic choice);
``'reverse'`` is :math:`D(s \| t)` (mode-seeking), whose gradient is
:math:`T\,s \odot (\log s - \log t - D(s \| t))`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from .._checks import ValuelessArrayError, truth_of
from .._numerics import kl_terms_from_log
from .._read_only import read_only
from .._sides import prepare_pair
from .._xp import (
    Array,
    cannot_copy_to_host,
    device,
    is_strict,
    namespace,
    numpy_errstate,
    reduce_sum,
)
from ..errors import InputError
from . import _cpu_kernels, _distill_fused, _small_distill, _widen
from ._batch import Batch, batch_for, prepared_by
from ._distill_options import distillation_options
from ._dominant_entry import dominant_from_others
from ._far_gaps import WIDE_TEMPERATURE as _WIDE_TEMPERATURE
from ._far_gaps import (
    FarGradient,
    distillation_far_rows,
    distillation_gradient64,
    far_rows_guard,
    host64,
    square_is_normal,
    times_temperature_squared,
)
from ._near_rows import CANCEL_SPREAD as _CANCEL
from ._near_rows import FUSED_SPREAD as _FUSED
from ._near_rows import KL_FLOOR as _KL_FLOOR
from ._near_rows import NEAR_CEILING as _NEAR_CEILING
from ._near_rows import SPREAD_FLOOR as _SPREAD_FLOOR
from ._near_rows import (
    NearRows,
    exact_forward_gradient,
    formable,
    forward_rows_flagged,
    given_mass,
    rows_to_form,
    spread_and_top,
)
from ._reduction import weighted_term
from ._terms import tempered_log_softmax
from ._widen import blocked

__all__ = [
    "NEAR_ROWS_LATER",
    "NearGradients",
    "NearRowsLater",
    "common_rows_and_near_flags",
    "common_rows_and_near_flags_of",
    "distillation_loss",
    "distillation_loss_grad",
    "distillation_options",
    "fused_forward_rows",
    "fused_reverse_rows",
    "gradient_rows_flagged",
    "prepare_distillation",
    "reverse_row_statistics",
]

_WIDEN = blocked(labelled=False)
"""Float16/float32 NumPy calls (issue 13): float64, large ones in blocks of rows (``_widen``)."""


@dataclass
class _Distillation:
    """One validated call: the batch (every row weighs 1) and both softened distributions."""

    batch: Batch
    temperature: float
    direction: str  # 'forward': D(teacher || student); 'reverse': D(student || teacher)
    log_s: Array  # log softmax(z / T), the student, classes last
    log_t: Array  # log softmax(log t / T), the teacher, classes last
    student: Array  # the student's logits z, classes last (for far rows)
    teacher_scores: Array  # the teacher's logits, log t or log-probabilities, classes last
    given: bool = False  # T = 1, teacher not logits: taken as it is (log_t = log t)
    _kl: Array | None = field(default=None, init=False, repr=False, compare=False)

    def row_kl(self) -> Array:
        """Per-row KL, teacher first for ``'forward'``, student first for ``'reverse'``;
        formed at the first call and kept (the loss's own, with the graph of a caller
        that records it): the flags read after it (the near rows' and the gradient's
        rules, ``crossent.torch``'s) take the same array, not a new one of the same
        bits (issue 13, branch distillonce2: a reverse call of ``crossent.torch``'s
        generic path whose teacher requires a gradient formed it four times)."""
        if self._kl is not None:
            return self._kl
        xp = self.batch.xp
        if self.direction == "forward":
            terms = kl_terms_from_log(self.log_t, self.log_s, xp=xp)
        else:
            terms = kl_terms_from_log(self.log_s, self.log_t, xp=xp)
        self._kl = reduce_sum(terms, xp=xp, out_dtype=self.batch.dtype)
        return self._kl


def prepare_distillation(
    student_logits: object,
    teacher: object,
    /,
    *,
    axis: int = -1,
    temperature: float = 1.0,
    teacher_form: str = "logits",
    direction: str = "forward",
    reduction: str = "mean",
    base: float | None = None,
    validate: bool = True,
) -> _Distillation:
    """Check one call of :func:`distillation_loss` (or its gradient); soften both sides."""
    t, form, direction, opts = distillation_options(
        temperature, teacher_form, direction, reduction, base
    )
    xp, (student, teacher_arr) = namespace(
        student_logits, teacher, names=("student_logits", "teacher")
    )
    s_side, t_side, dtype = prepare_pair(
        student,
        teacher_arr,
        names=("student_logits", "teacher"),
        forms=("logits", form),
        axis=axis,
        xp=xp,
        validate=validate,
    )
    if tuple(student.shape) != tuple(teacher_arr.shape):  # no broadcasting of the batch
        raise InputError(
            f"`student_logits` and `teacher` must have the same shape; got "
            f"{tuple(student.shape)} and {tuple(teacher_arr.shape)}"
        )
    # Soften: softmax(z / T) for the student; softmax(v / T) for teacher logits v (of the
    # logits themselves: log softmax(v) rounds away differences below an ulp of its
    # log-partition, which a small T brings back, issue 13: v = [1e-100, 0] at
    # T = 1e-100 gave t = [0.5, 0.5], not [0.731, 0.269]); softmax(log t / T) for
    # probabilities (renormalised t^(1/T)) and log-probabilities.
    log_s = tempered_log_softmax(s_side.values, t, xp=xp)
    scores = t_side.values if form == "logits" else t_side.log_probs()  # (no gap lost)
    log_t = tempered_log_softmax(scores, t, xp=xp) if t != 1.0 else t_side.log_probs()
    batch = batch_for(log_s, axis % student.ndim, dtype, opts, xp=xp)
    given = form != "logits" and t == 1.0
    return _Distillation(batch, t, direction, log_s, log_t, s_side.values, scores, given)


def _fused_loss(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A large call by the fused kernels (``_distill_fused``), or None."""
    return _distill_fused.loss(args, kwargs, _host_rows)


def _fused_gradient(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A large gradient call by the fused kernels (``_distill_fused``), or None."""
    return _distill_fused.gradient(args, kwargs, _host_gradient)


def _host_rows(
    z: np.ndarray, v: np.ndarray, temperature: float, options: _distill_fused.Options
) -> np.ndarray:
    """The full path's per-row losses (nats) of float64 rows ``z`` and the teacher ``v``
    (in ``options.teacher_form``), not validated: the rows that ``_distill_fused`` leaves
    to it."""
    d = _host_call(z, v, temperature, options)
    return np.asarray(inspect.unwrap(distillation_loss)(d), dtype=np.float64)


def _host_gradient(
    z: np.ndarray, v: np.ndarray, temperature: float, options: _distill_fused.Options
) -> np.ndarray:
    """The full path's per-row gradients (unscaled) of float64 rows, as :func:`_host_rows`."""
    d = _host_call(z, v, temperature, options)
    return np.asarray(inspect.unwrap(distillation_loss_grad)(d), dtype=np.float64)


def _host_call(
    z: np.ndarray, v: np.ndarray, temperature: float, options: _distill_fused.Options
) -> _Distillation:
    """The full path's prepared call of float64 rows ``z`` and ``v`` (the teacher in
    ``options.teacher_form``, ``options.direction``; per row in nats, not validated)."""
    return prepare_distillation(
        z,
        v,
        temperature=temperature,
        teacher_form=options.teacher_form,
        direction=options.direction,
        reduction="none",
        validate=False,
    )


@far_rows_guard(
    distillation_far_rows,
    FarGradient("distillation_loss_grad", "student_logits", ("teacher",), exact_when_traced=False),
)
@prepared_by(
    prepare_distillation,
    shortcut=_small_distill.distillation_loss,
    fused=_fused_loss,
    widen=_WIDEN,
)
def distillation_loss(d: _Distillation) -> Any:
    r"""Distillation loss: :math:`T^2` times the KL between softened teacher and student.

    .. math:: L_i = T^2\,D\big(\operatorname{softmax}(v_i/T) \,\big\|\,
              \operatorname{softmax}(z_i/T)\big) \quad \text{(forward)}

    Parameters
    ----------
    student_logits : array, shape (*batch, C)
        The student's logits :math:`z`.
    teacher : array, shape (*batch, C)
        The teacher, as logits :math:`v` (default), probabilities or log-probabilities
        (``teacher_form``); softened as :math:`\operatorname{softmax}(\log t / T)`
        for :math:`T \ne 1`. At :math:`T = 1` probabilities and log-probabilities are
        taken as they are, not renormalised, as ``crossent.kl_divergence`` takes them
        (their rows sum to 1 within the validation's tolerance; a row whose mass is
        :math:`1 + \delta` moves the loss by about :math:`\delta`).
    axis : int, optional
        The class axis.
    temperature : float > 0, optional
        :math:`T`; the :math:`T^2` factor keeps gradient magnitudes comparable across
        temperatures (module docstring).
    teacher_form : {'logits', 'probs', 'log_probs'}, optional
    direction : {'forward', 'reverse'}, optional
        ``'forward'``: :math:`D(\text{teacher} \| \text{student})`; ``'reverse'``:
        :math:`D(\text{student} \| \text{teacher})`.
    reduction : {'mean', 'sum', 'none', 'parts'}, optional
        ``'mean'`` averages over rows (PyTorch's ``kl_div(reduction='batchmean')``).
    base : float, optional
        None for nats, 2 for bits.
    validate : bool, optional
        Check logits, and the teacher as its form requires.

    Returns
    -------
    array or LossParts
        Per row for ``'none'``; ``'mean'`` divides by the number of rows.

    Raises
    ------
    InputError, InputTypeError
        Invalid inputs or options; shapes that differ.

    See Also
    --------
    distillation_loss_grad, crossent.kl_divergence

    Notes
    -----
    Where teacher and student nearly agree (a large :math:`T`: at :math:`T = 10^8` the KL
    of logits of size 1 is :math:`10^{-17}`, its terms of size :math:`\log C`), a row
    whose KL comes out below :math:`2^{-20}` is formed again as :math:`\log \mathrm
    E_p[e^u] - \mathrm E_p[u]` in a form with no cancellation (``_near_rows``), and
    :math:`T^2` never leaves the range where the loss does not. A row whose KL comes
    out from :math:`2^{-20}` up to :math:`2^{-10}` (a student within about
    :math:`10^{-2}` of its teacher a class, at an ordinary temperature) is formed
    again over the centred log-ratio, in one more pass over such rows only
    (``_centred_kl_numba``; ``NearRows`` in other namespaces than NumPy): the common
    formula's terms of the size of :math:`\log C` cancel there, and left such rows up
    to :math:`10^6` ulps off.

    Large NumPy calls (float32 or float64, any ``teacher_form`` and ``direction``, more
    than 16384 entries, C-contiguous with the classes last) form their rows by fused
    float64 kernels, two passes over each row and no array of the call's size
    (``_distill_fused``), within float64 rounding of the formula above; the rows those
    cannot form (near rows, ``-inf`` student logits beside a teacher probability above
    0, gaps past the range) are formed as above. At :math:`T = 1` a teacher of
    probabilities or log-probabilities is taken as it is, as above (not renormalised:
    its rows sum to 1 within the validation's tolerance), the near rows too (their
    formula's renormalised teacher corrected by its mass).

    The reverse loss is :math:`+\infty` where the teacher gives a class probability 0
    and the student does not (a logit above ``-inf``); its gradient there is NaN
    (:func:`distillation_loss_grad`'s Notes). A student logit of ``-inf`` in that
    class makes the term :math:`0 \log 0 = 0`.

    References
    ----------
    .. [1] G. Hinton, O. Vinyals and J. Dean, "Distilling the Knowledge in a Neural
       Network", NIPS Deep Learning Workshop 2014, arXiv:1503.02531.

    Examples
    --------
    >>> import crossent
    >>> student, teacher = [[1.0, 0.0, -1.0]], [[2.0, 0.5, 0.0]]
    >>> a = crossent.distillation_loss(student, teacher)  # T = 1: the KL itself
    >>> b = crossent.kl_divergence(teacher, student, p_form="logits", q_form="logits")
    >>> bool(abs(a - b[0]) < 1e-15)
    True
    """
    kl = d.row_kl()
    near = _near_rows(d, kl)
    rows = _times_temperature_squared(kl, d.temperature, xp=d.batch.xp)
    if near is not None:  # KL small against its terms: formed again, without them
        rows = np.array(rows)  # (a 0-d array of one row too)
        near_rows = NearRows(*_rows64(d, near), d.temperature)
        formed = near_rows.loss(forward=d.direction == "forward")
        if d.given:
            log_t = np.asarray(d.log_t[near], dtype=np.float64)
            formed = _as_given(formed, log_t, d.direction == "forward", np)
        rows[near] = formed
    if type(d.log_s) is np.ndarray:
        rows = _centred_rows(d, kl, rows)
    else:  # other namespaces: formed where it matters
        rows = _near_rows_of_namespace(d, kl < _NEAR_CEILING, rows, loss=True)
    return d.batch.reduce(rows)


def _centred_rows(d: _Distillation, kl: Array, rows: Array) -> Array:
    r"""``rows`` (:math:`T^2 D` of a NumPy call) with those whose KL is at least
    :data:`._near_rows.KL_FLOOR` and below ``_near_rows.NEAR_CEILING`` formed
    again over the centred log-ratio (``centred_kl_rows``; ``NearRows`` where Numba is
    not), where the common path's terms cancel: one minimum of the per-row KL on
    others (issue 13: rows of a KL of 1e-5 were 1e4 to 1e6 ulps off)."""
    values = np.asarray(kl)
    if not values.size or not np.fmin.reduce(values, axis=None) < _NEAR_CEILING:
        return rows
    band = rows_to_form(
        (values >= _KL_FLOOR) & (values < _NEAR_CEILING), d.student, d.teacher_scores
    )
    if band is None:
        return rows
    student, teacher = _rows64(d, band)
    forward = d.direction == "forward"
    try:
        from ._centred_kl_numba import centred_kl_rows
    except ImportError:  # pragma: no cover - Numba is optional
        formed = NearRows(student, teacher, d.temperature).loss(forward=forward)
    else:
        first, second = (teacher, student) if forward else (student, teacher)
        first, second = np.ascontiguousarray(first), np.ascontiguousarray(second)
        formed = times_temperature_squared(
            centred_kl_rows(first, second, d.temperature), d.temperature
        )
    if d.given:
        formed = _as_given(formed, np.asarray(d.log_t[band], dtype=np.float64), forward, np)
    rows = np.array(rows)  # (a 0-d array of one row too)
    rows[band] = formed
    return rows


def _as_given(kl: Array, log_t: Array, forward: bool, xp: ModuleType) -> Array:
    r"""The KL ``kl`` of near rows (``_near_rows``, which renormalises the teacher) as
    that of the teacher taken as it is (:math:`T = 1`, probabilities or
    log-probabilities: ``log_t`` its logarithms, rows x classes): with its mass
    :math:`e^L = \sum_c t_c` and :math:`t' = t e^{-L}`, :math:`D(t\,\|\,s) = e^L(D(t'\,\|\,s)
    + L)` forward and :math:`D(s\,\|\,t) = D(s\,\|\,t') - L` reverse, as
    ``kl_divergence`` gives them (issue 13: a float32 teacher summing to
    :math:`1 + 2.7\cdot 10^{-8}` gave 7e-16 for 2.7e-8)."""
    mass, ell = given_mass(log_t, xp)
    return mass * (kl + ell) if forward else kl - ell


def _times_temperature_squared(kl: Array, t: float, *, xp: ModuleType | None = None) -> Array:
    """:math:`T^2 D` per row; at :math:`T = 1` the KL itself, bit for bit (issue 13: one
    op saved). ``xp``: array-api-strict warns as NumPy does (NumPy underneath)."""
    if t == 1.0:
        return kl
    if not square_is_normal(t):
        return _times_square(kl, t, xp=xp)
    square = t * t
    with numpy_errstate(kl, xp, over="ignore"):  # a huge finite D times T^2: inf (no warning)
        return square * kl


def _times_square(kl: Array, temperature: float, *, xp: ModuleType | None = None) -> Array:
    r""":math:`T^2 D` where :math:`T^2` is past the normal range (:math:`T > 1.3\cdot
    10^{154}` or :math:`T < 1.5\cdot 10^{-154}`): ``inf`` or 0 only where the product
    is, never :math:`\infty\cdot 0`; ``(D T) T`` for other namespaces (each factor
    moves the product towards :math:`T^2 D`)."""
    if type(kl) is np.ndarray:
        return times_temperature_squared(kl, temperature)
    with numpy_errstate(kl, xp, over="ignore", under="ignore"):  # array-api-strict
        return (kl * temperature) * temperature


@prepared_by(
    prepare_distillation,
    twin=distillation_loss,
    shortcut=_small_distill.distillation_gradient,
    fused=_fused_gradient,
    widen=_WIDEN,
)
def distillation_loss_grad(d: _Distillation) -> Array:
    r"""Gradient of :func:`distillation_loss` with respect to ``student_logits``.

    .. math:: \text{forward: } T\,(s - t), \qquad
              \text{reverse: } T\,s \odot \big(\log s - \log t - D(s \,\|\, t)\big)

    with :math:`s, t` the softened student and teacher; scaled for the reduction.

    Returns
    -------
    array, the shape of ``student_logits``
        Rows sum to 0 (the softmax's gradient); the errors are those of
        :func:`distillation_loss`.

    Notes
    -----
    Rows where teacher and student nearly agree (:math:`\max_c |s_c - t_c|` below
    :math:`2^{-15}\max_c t_c`, forward, :math:`\max_c |s_c(\log s_c - \log t_c -
    D)|` below :math:`2^{-15}\max_c s_c`, reverse, or a KL below :math:`2^{-20}`, on
    every path: lean, full, fused, other namespaces, ``crossent.torch``'s CPU op) are
    formed without the difference of nearly equal numbers (``_near_rows``). Where a logit gap
    passes the float64 range (logits near :math:`\pm 10^{308}`), the
    reverse gradient is formed again as :math:`s \odot (d - \sum_c s_c d_c)` with
    :math:`d = z - v` (:math:`v` the teacher's logits or :math:`\log t`), which holds
    no gap: finite wherever the gradient is (``_far_gaps``). Large NumPy calls take
    fused float64 kernels as :func:`distillation_loss` does (the rows above excepted).

    A teacher probability of exactly 0 (a ``-inf`` logit or log-probability, or a
    probability 0) where the student's logit is above ``-inf`` makes the reverse
    :math:`D(s\,\|\,t)` :math:`+\infty` for every finite student logits near these:
    the loss has no derivative there. Such a row's reverse gradient is NaN in every
    class whose student logit is above ``-inf``, and 0 in a class whose logit is
    ``-inf`` (a masked class gets 0, as in every row), for every ``teacher_form``,
    temperature and dtype, and in ``crossent.torch``'s backward too (a row whose
    upstream is 0 gets 0 there). The formula above gives :math:`\infty - \infty`
    (NaN) where :math:`t_c = 0` and ``-inf`` elsewhere, as autograd of the plain
    formula does in PyTorch and JAX; the limit as the zero probabilities rise to
    :math:`\epsilon` is :math:`\pm\infty` with signs that depend on how several of
    them rise, so no infinity is given. A student logit of ``-inf`` in each such
    class instead makes the row finite (:math:`0 \log 0 = 0`), and so its gradient
    (the formula of the other classes; 0 in the masked ones). The forward direction's
    gradient :math:`T(s - t)` is finite beside any zero.

    Where the student's top probability :math:`s_r` is above 1/2, the reverse
    gradient's entry at :math:`r` is formed as :math:`-\sum_{c \ne r} g_c` (the
    entries sum to 0), not by the formula, whose :math:`\log s_r - \log t_r - D`
    cancels for a saturated student (``_dominant_entry``: logits ``[0, -34]`` against
    teacher probabilities ``[1e-70, 1]`` gave :math:`3.41\cdot 10^{-13}` for
    :math:`3.345\cdot 10^{-13}`, and gaps past 100 gave 0); on every path (lean,
    fused, ``crossent.torch``'s CPU op).

    The forward gradient's entry at :math:`r` is so formed where :math:`s_r` and
    :math:`t_r` are both above 1/2 (:math:`s_r - t_r` cancels there: logits
    :math:`[0, -300, -301]` beside teacher logits :math:`[0, -8, -8]` gave it 426
    units of :math:`2^{-53}` off), in the near rows' formulas too (``_near_rows``), and
    on ``crossent.torch``'s generic path (autograd's entry, both directions).

    Examples
    --------
    >>> import crossent
    >>> g = crossent.distillation_loss_grad([[0.0, 0.0]], [[0.25, 0.75]], teacher_form="probs")
    >>> print(g)
    [[ 0.25 -0.25]]
    """
    xp, t, log_s, log_t = d.batch.xp, d.temperature, d.log_s, d.log_t
    s = xp.exp(log_s)
    if d.direction == "forward":
        teacher = xp.exp(log_t)
        grad = s - teacher
        near = _near_gradient_rows(d, grad, teacher, d.row_kl)
        near = _cancelling_rows(d, grad, teacher, near)
        if type(log_s) is not np.ndarray:
            flagged = forward_rows_flagged(grad, teacher, d.row_kl, xp)
        grad = dominant_from_others(grad, s, log_s, xp=xp, teacher=teacher)  # (s_r - t_r)
        del s, teacher  # (issue 13: no third block of the call's size held past here)
        grad = grad if t == 1.0 else t * grad  # 1 * g is g, bit for bit
        far = _far_rows(d, None, 0.0)
    else:
        kl = d.row_kl()[..., None]
        diff = _log_ratio(log_s, log_t, xp)
        top = _largest(kl)
        far = _far_rows(d, kl, top)
        if far is None and top < _HUGE and t < _WIDE_TEMPERATURE and not is_strict(xp):
            grad = weighted_term(s, diff - kl, xp=xp)  # 0 where s = 0, even beside t = 0
            near, flagged = _near_reverse_rows(d, grad, s, kl)
            grad = t * grad
        else:  # the far rows' inf - inf (formed again below); diff - kl past the range;
            # array-api-strict's (NumPy underneath) inf - inf of an infinite D (NaN below)
            with numpy_errstate(s, xp, all="ignore"):  # beside s = 0 (a 0 then)
                grad = weighted_term(s, diff - kl, xp=xp)
                near, flagged = _near_reverse_rows(d, grad, s, kl)
                grad = t * grad
        grad = dominant_from_others(grad, s, log_s, xp=xp)  # (its d_r - D cancels)
        if type(log_s) is not np.ndarray:
            grad = _far_rows_of_namespace(d, kl, grad)
    if far is not None:
        grad[far] = distillation_gradient64(
            np.asarray(d.student[far], dtype=np.float64),
            np.asarray(d.teacher_scores[far], dtype=np.float64),
            t,
            forward=d.direction == "forward",
        )
    if near is not None:  # s - t, or log s - log t - D, small against its terms
        if far is not None:  # (a far row of a small spread: the far rows' formula)
            near &= ~far
        if near.any():
            near_rows = NearRows(*_rows64(d, near), t)
            grad[near] = near_rows.gradient(forward=d.direction == "forward")
    elif type(log_s) is not np.ndarray:
        grad = _near_rows_of_namespace(d, flagged, grad, loss=False)
    if d.direction == "reverse" and (type(log_s) is not np.ndarray or not math.isfinite(top)):
        grad = _without_derivative(d, grad)  # (NumPy: only where a row's D is not finite)
    return d.batch.finish_gradient(grad)


def _far_rows_of_namespace(d: _Distillation, kl: Array, grad: Array) -> Array:
    r""":func:`_far_rows`' first kind for arrays of other libraries (PyTorch, JAX,
    array-api-strict): the reverse gradient's rows whose :math:`D(s\,\|\,t)` is not
    finite but for a truly infinite one, formed again by
    :func:`._far_gaps.distillation_gradient64` in float64 on host copies and put back by
    ``where`` (a hostile pass: logits 1e210 apart at :math:`T = 10^{-100}` gave NaN on
    PyTorch and JAX, NumPy 0). One ``all(isfinite)`` of the per-row :math:`D` in the
    common case; traced arrays keep the common path's rows."""
    xp = d.batch.xp
    if cannot_copy_to_host(kl):  # (jax.grad, torch.func: no host copy; the common path's rows)
        return grad
    try:
        if truth_of(xp.all(xp.isfinite(kl))):
            return grad
    except ValuelessArrayError:
        return grad
    student = host64(d.student, name="student_logits")
    teacher = host64(d.teacher_scores, name="teacher")
    kl64 = host64(kl, name="kl")
    far = ~np.isfinite(kl64[..., 0])
    # t = 0 < s truly (a -inf teacher score): D is +inf, its gradient NaN (as _far_rows)
    far &= ~(np.isneginf(teacher) & (student > -math.inf)).any(axis=-1)
    if not far.any():
        return grad
    rows = np.zeros(grad.shape, dtype=np.float64)
    rows[far] = distillation_gradient64(student[far], teacher[far], d.temperature, forward=False)
    where = device(grad)
    with np.errstate(over="ignore"):  # (float32: inf where an entry passes its range)
        formed = rows.astype(np.float32) if grad.dtype == xp.float32 else rows
    return xp.where(
        xp.asarray(far[..., None], device=where),
        xp.asarray(formed, dtype=grad.dtype, device=where),
        grad,
    )


def _infinite_reverse_rows(d: _Distillation) -> Array:
    r"""The rows (batch shape, booleans) whose reverse :math:`D(s\,\|\,t)` is truly
    :math:`+\infty`: a teacher probability 0 (a ``-inf`` score: logit, log-probability
    or :math:`\log 0`) beside a student logit above ``-inf``."""
    xp = d.batch.xp
    zero = xp.logical_and(d.teacher_scores == -math.inf, d.student > -math.inf)
    return xp.any(zero, axis=-1)


def _without_derivative(d: _Distillation, grad: Array) -> Array:
    r"""The reverse gradient ``grad`` (classes last, before the reduction's scale) with
    each row of a truly infinite :math:`D(s\,\|\,t)` (:func:`_infinite_reverse_rows`)
    NaN where the student's logit is above ``-inf`` and 0 where it is ``-inf`` (a masked
    class gets 0, as in every row): ``distillation_loss_grad``'s Notes. The formula
    :math:`T s \odot (\log s - \log t - D)` gives ``inf - inf`` (NaN) where
    :math:`t_c = 0` and ``-inf`` elsewhere there (issue: a mix of both)."""
    xp = d.batch.xp
    infinite = _infinite_reverse_rows(d)
    if type(grad) is np.ndarray:
        if infinite.any():
            grad[infinite] = np.where(d.student[infinite] > -math.inf, math.nan, 0.0)
        return grad
    masked = d.student == -math.inf
    nan = xp.where(masked, xp.zeros_like(grad), xp.full_like(grad, math.nan))
    return xp.where(infinite[..., None], nan, grad)


def _near_rows_of_namespace(
    d: _Distillation, flagged: Array, values: Array, *, loss: bool
) -> Array:
    r"""``values`` (the rows' :math:`T^2 D`, or the gradient) of a call of another
    namespace than NumPy with the rows ``flagged`` (and formable: finite logits and
    difference) formed by ``_near_rows`` in its operations, on every row then picked
    (no boolean indexing); one host read where none is flagged (none in a traced
    call, ``jax.jit``: every row is formed there, then picked). The other rows enter
    ``_near_rows`` as zeros (:func:`_flagged_only`): their values there are dropped, and
    autograd's zero through ``where`` times a derivative that is not finite (an ``exp``
    that overflows on an ordinary row) would be NaN."""
    xp = d.batch.xp
    flagged = _formable(d, flagged)
    later = NEAR_ROWS_LATER.get()
    if loss and later is not None:  # the caller reads the flags with its own (one read)
        # the forward gradient's rows too: a small spread beside a KL past the ceiling
        # (the reverse one's are among the loss's: picked when they are formed)
        # (and, float64, the rows whose s - t cancels: the fused kernels' exact formula)
        # (reverse: the rows whose gradient the reverse kernel forms, branch distrev1)
        forward = NearGradients.of_loss(d, flagged, cancelling=True)

        def finish(
            rows_of: Callable[[Array, NearGradients], Array] | None = None, *, near: bool = True
        ) -> Any:
            rows = _formed(d, flagged, values) if near else values
            if rows_of is not None:
                rows = rows_of(rows, forward)
            return d.batch.reduce(rows)

        read = xp.logical_or(flagged, forward.flagged)
        cancelling = forward.cancelling
        later.append(NearRowsLater(read, finish, d, cancelling))
        return values
    if not _may_hold_one(flagged, xp):
        return values
    return _formed(d, flagged, values, loss=loss)


def _formable(d: _Distillation, flagged: Array) -> Array:
    """The rows ``flagged`` that ``_near_rows`` can form (``_near_rows.formable``: finite
    logits and difference, or classes masked on both sides; other namespaces than
    NumPy, which reads its own)."""
    xp = d.batch.xp
    return xp.logical_and(flagged, formable(d.student, d.teacher_scores, xp))


def common_rows_and_near_flags(
    student_logits: Array,
    teacher: Array,
    /,
    *,
    axis: int,
    temperature: float,
    teacher_form: str = "logits",
    direction: str = "forward",
) -> tuple[Array, Array]:
    r"""For a caller that reads no values (``crossent.torch`` under ``torch.compile``,
    which forms the rows again in a custom op at run time): the generic path's per-row
    :math:`T^2 D(t\,\|\,s)` (``'reverse'``: :math:`T^2 D(s\,\|\,t)`) of a teacher in
    ``teacher_form`` (batch shape, the work dtype, no row formed again, no validation of
    the values; the options are checked) and the rows :func:`distillation_loss` would
    form by ``_near_rows`` (booleans: a KL below :data:`._near_rows.KL_FLOOR`,
    formable). No host read and no NumPy call: traceable."""
    d = prepare_distillation(
        student_logits,
        teacher,
        axis=axis,
        temperature=temperature,
        teacher_form=teacher_form,
        direction=direction,
        reduction="none",
        validate=False,
    )
    return common_rows_and_near_flags_of(d)


def common_rows_and_near_flags_of(d: _Distillation) -> tuple[Array, Array]:
    """:func:`common_rows_and_near_flags` of a call ``d`` already prepared as it prepares
    one (``prepare_distillation`` of ``reduction='none'``, ``validate=False``): for a
    caller that reads more flags of the same softened sides (``crossent.torch`` under
    ``torch.compile``, its gradient rows: ``gradient_rows_flagged`` and the like), so
    that both sides are softened once (issue 13, branch distillonce2)."""
    kl = d.row_kl()
    return (
        _times_temperature_squared(kl, d.temperature, xp=d.batch.xp),
        _formable(d, kl < _NEAR_CEILING),
    )


def _formed(d: _Distillation, flagged: Array, values: Array, *, loss: bool = True) -> Array:
    """``values`` with the rows ``flagged`` formed by ``_near_rows`` (every row formed,
    then picked: :func:`_near_rows_of_namespace`)."""
    xp, t = d.batch.xp, d.temperature
    forward = d.direction == "forward"
    inputs = (d.student, d.teacher_scores, d.log_s, d.log_t)
    z, scores, log_s, log_t = (_flagged_only(x, flagged, xp) for x in inputs)
    near_rows = NearRows(z, scores, t, xp, log_s, log_t)
    if loss:
        formed = near_rows.loss(forward=forward)
        if d.given:
            formed = _as_given(formed, log_t, forward, xp)
        return xp.where(flagged, formed, values)
    near = near_rows.gradient(forward=forward)
    return xp.where(flagged[..., None], near, values)


@dataclass(frozen=True)
class NearRowsLater:
    """A loss's near rows left to its caller (:data:`NEAR_ROWS_LATER`): the rows
    ``flagged`` (batch shape, booleans; those whose loss is formed by ``_near_rows``
    and those whose gradient :class:`NearGradients` forms) and ``finish(rows_of=None)``,
    the call's result with them formed (what the call would have returned had one been flagged);
    ``rows_of(rows, gradients)``, where given, takes the per-row losses before the
    reduction with their :class:`NearGradients` and returns the rows to reduce
    (``crossent.torch``: the same values, the flagged rows' gradient by ``NearRows``).
    ``d``: the call's prepared sides (softened with the graph of a caller that records
    them), for a caller that reads flags of its own from them rather than soften both
    sides again (``crossent.torch``'s reverse teacher rows, branch distillonce2).
    ``cancelling``: forward, float64 work, the rows whose gradient
    :meth:`NearGradients.cancelling_in_student` forms (None: none asked); where no row is
    ``flagged``, ``finish(rows_of, near=False)`` gives ``rows_of`` the rows as they are
    (no ``_near_rows`` pass over every row)."""

    flagged: Array
    finish: Callable[..., Any]
    d: _Distillation
    cancelling: Array | None = None


@dataclass(frozen=True)
class NearGradients:
    r"""The gradients of the near rows ``flagged`` (batch shape) of one call's loss, by
    ``_near_rows.NearRows``' formulas (those of :func:`distillation_loss_grad`'s near
    rows) in the call's namespace: what a caller that records the loss (autograd) gives
    those rows in place of the derivative of the loss's formula (issue 13: student
    logits ``[0, log 3e-5, -30]`` beside teacher logits ``[0, log 1e-5, -30]``, 16.8
    units of :math:`2^{-53}` off at two classes). ``flagged``: the rows that
    :func:`distillation_loss_grad` forms by ``NearRows`` too, formable: forward, a small
    spread of :math:`s - t` (``_near_rows.spread_is_small``), the loss's near rows or
    not (a KL at or above ``_near_rows.NEAR_CEILING``, where the loss is the common
    path's: autograd's :math:`T(s - t)` of ``log_softmax`` cancels there, student logits
    ``[0, log1p(-2.9e-5) + 1e-7, log(2.9e-5) - 70]`` beside teacher logits ``[0,
    log1p(-2.9e-5), log(2.9e-5)]`` at :math:`T = 1` gave 61 901 and 44 265 units, issue
    13, branch distilltorch14); reverse, the loss's near rows of a KL below
    :data:`._near_rows.KL_FLOOR`. On the loss's other near rows (forward, a spread past
    the floor) the derivative of the loss's formula errs less than the gradient's
    (logits ``[0, log 3e-5, -30]`` beside ``[0, log 1e-5, -30]`` at :math:`T = 2`, 14.5
    units against 0.8). Rows not flagged are 0.

    ``cancelling`` (forward, float64 work, where asked: :meth:`of_loss`): the rows not
    flagged whose :math:`\max_c |s_c - t_c|` is below ``_near_rows.FUSED_SPREAD``
    :math:`\max_c t_c`, where autograd's :math:`T(s - t)` of the softened rows errs by
    some :math:`\max_c t_c / \max_c |s_c - t_c|` units of the row's largest entry
    (rows of two classes of :math:`N(0, 1)`, logits ``(N, 2, 1)``: 33 units at
    :math:`T = 8`; issue 13, branch distfwd2; rows of a spread from :math:`\max_c t_c/2`
    to :math:`\max_c t_c` up to 54, branch distfwd3); :meth:`cancelling_in_student`
    forms them as the fused kernels do. None: none asked. Reverse (float64 or float32
    work, where asked): every row of a finite KL, whose gradient the reverse kernel forms
    on the host (:meth:`cancelling_in_student`, :func:`fused_reverse_rows`; the caller
    leaves out its flagged rows in float64 work; issue 13, branch distrev1).
    ``statistics``: a reverse call's kernel statistics of its ``cancelling`` rows
    (:func:`reverse_row_statistics`, formed with the per-row losses by
    :meth:`reverse_losses`), which the backward's kernel then reads, not forms again;
    None: formed there (branch distrev2). ``host_rows``: those rows' student and teacher
    scores as the kernel read them (float64 NumPy arrays), not gathered again."""

    d: _Distillation
    flagged: Array
    cancelling: Array | None = None
    statistics: np.ndarray | None = None  # (reverse: the kernel's of the cancelling rows)
    host_rows: tuple[np.ndarray, np.ndarray] | None = None  # (and those rows, float64)

    @classmethod
    def of_loss(cls, d: _Distillation, near: Array, *, cancelling: bool = False) -> NearGradients:
        """Those of the loss's near rows ``near`` (batch shape) that the gradient's rule
        picks (class docstring); ``cancelling``: the cancelling rows too (forward,
        float64 work, not a teacher taken as it is; reverse, float64 or float32 work,
        the rows of a finite KL: the kernel checks its own), else None."""
        xp = d.batch.xp
        if d.direction == "forward":
            teacher = xp.exp(d.log_t)
            spread, top = spread_and_top(xp.exp(d.log_s) - teacher, teacher, xp)
            picked = _formable(d, spread < _SPREAD_FLOOR * top)
            if not cancelling or d.batch.dtype != xp.float64 or d.given:
                return cls(d, picked)
            rows = xp.logical_and(spread < _FUSED * top, xp.logical_not(picked))
            return cls(d, picked, rows)
        kl = d.row_kl()
        picked = xp.logical_and(near, kl < _KL_FLOOR)
        if not cancelling or d.batch.dtype not in (xp.float64, xp.float32):
            return cls(d, picked)
        return cls(d, picked, xp.isfinite(kl))  # (the kernel's own check: its rows)

    def cancelling_in_student(self, *, host: bool = False) -> tuple[Array, Array]:
        r""":math:`T(s - t)` of the :attr:`cancelling` rows (classes last, 0 elsewhere) by
        ``_near_rows.exact_forward_gradient`` (boolean indexing, as :meth:`_formed`), and
        the rows (batch shape) where it holds and they are formable; the others are the
        caller's (autograd's). ``host``: the rows can be read as NumPy arrays (CPU
        tensors outside a recorded graph): formed by the fused forward kernel
        (``_distill_numba.distillation_forward_gradient_kernel``, :math:`r = T`) where
        Numba is, the 2-D op's bits: its one pass, and below
        ``_near_rows.CANCEL_SPREAD`` :math:`\max_c t_c` its compiled formula, whose FMA
        remainders the array twin's quotients have not (within 6.4 units at :math:`T =
        3`, the compiled 4.2), on every row it forms (those whose statistics are finite
        and spread is at or above the floor by its own pass); the generic path's close
        rows 18.3 ms against 37.9 by the twin (16 x 1000 x 16, RESULTS.md, branch
        distfwd2). Elsewhere the twin forms the rows where it can hold alone, :math:`s_j
        \ge t_j/2` at the teacher's first top class :math:`j` (by ``log_s`` and
        ``log_t``, a margin past :math:`\log 2`; its own rule decides): since branch
        distfwd3 every row at or above the floor is asked, and on rows of independent
        logits it seldom holds (``create_graph``, 16 x 1000 x 16 float64: 39 ms against
        main's 13.9 forming it on every row)."""
        d, xp, rows = self.d, self.d.batch.xp, self.cancelling
        if rows is None:
            raise RuntimeError("crossent: no cancelling rows asked")  # pragma: no cover
        host = host and _cpu_kernels.available()
        if d.direction != "forward":
            return self._reverse_in_student(rows, host)
        if not host:
            rows = xp.logical_and(rows, _twin_may_hold(d.log_s, d.log_t, xp))
        if host:
            return self._kernel_rows(fused_forward_rows, rows)
        z, v = d.student[rows], d.teacher_scores[rows]
        grad, holds = exact_forward_gradient(z, v, d.temperature, xp)
        holds = xp.logical_and(holds[..., 0], formable(z, v, xp))
        out = xp.zeros(d.student.shape, dtype=grad.dtype, device=device(grad))
        out[rows] = xp.where(holds[..., None], grad, xp.zeros_like(grad))
        taken = xp.zeros(rows.shape, dtype=xp.bool, device=device(grad))
        taken[rows] = holds
        return out, taken

    def _reverse_in_student(self, rows: Array, host: bool) -> tuple[Array, Array]:
        r""":meth:`cancelling_in_student` of a reverse call: :math:`T s \odot (\log s -
        \log t - D)` of the :attr:`cancelling` rows by the reverse kernel
        (:func:`fused_reverse_rows`, the 2-D op's float64 bits; of :attr:`statistics`
        where the forward formed them) where ``host``; elsewhere none taken
        (autograd's)."""
        d, xp = self.d, self.d.batch.xp
        if not host:
            zeros = xp.zeros(d.student.shape, dtype=d.student.dtype, device=device(d.student))
            return zeros, xp.zeros_like(rows)
        stats = self.statistics

        def kernel(z: np.ndarray, v: np.ndarray, temperature: float) -> Any:
            return fused_reverse_rows(z, v, temperature, stats)

        return self._kernel_rows(kernel, rows, self.host_rows)

    def reverse_losses(self, rows: Array) -> tuple[Array, Array, NearGradients]:
        r"""A reverse call's per-row losses :math:`T^2 D(s\,\|\,t)` of its
        :attr:`cancelling` rows by the fused kernels on the host (the 2-D op's:
        ``_distill_rows.reverse_statistics``, its :math:`D` of the student's exact
        log-ratios, then ``row_kinds``' :math:`T^2 D`), ``rows`` (batch shape,
        booleans: those it forms, where the statistics are finite and :math:`D` is at
        or above ``_near_rows.KL_FLOOR``, the others the caller's), and these gradients
        with the statistics kept (:attr:`statistics`: the backward's kernel reads
        them). The values (float64, batch shape; 0 on the rows not formed) where the
        generic formula :math:`\sum_c s_c(\log s_c - \log t_c)` of the softened rows
        sums terms of the size of :math:`|\tau_r|` (4.98 units of :math:`2^{-53}`
        relative at :math:`T = 2` on rows of 32 logits of :math:`N(0, 60^2)`; issue 13,
        branch distrev2). CPU arrays (NumPy's, CPU tensors) where Numba is; :math:`T^2`
        of the normal range (the caller checks both)."""
        from . import _distill_rows

        d, xp, among = self.d, self.d.batch.xp, self.cancelling
        if among is None:
            raise RuntimeError("crossent: no cancelling rows asked")  # pragma: no cover
        z64, v64 = self._rows_on_host(among)
        stats = reverse_row_statistics(z64, v64, float(d.temperature), d.given)
        loss, kind = _distill_rows.row_kinds(stats, float(d.temperature))
        taken = kind == 0
        loss[~taken] = 0.0
        values = xp.zeros(rows.shape, dtype=xp.float64, device=device(rows))
        values[among] = xp.asarray(loss, device=device(rows))
        formed = xp.zeros(rows.shape, dtype=xp.bool, device=device(rows))
        formed[among] = xp.asarray(taken, device=device(rows))
        kept = NearGradients(d, self.flagged, among, stats, (z64, v64))
        return values, xp.logical_and(formed, rows), kept

    def _rows_on_host(self, rows: Array) -> tuple[np.ndarray, np.ndarray]:
        """The student's logits and the teacher's scores of ``rows`` as float64 NumPy
        arrays (rows x classes, C-contiguous)."""
        d = self.d
        z, v = d.student[rows], d.teacher_scores[rows]
        z64 = np.ascontiguousarray(np.asarray(z), dtype=np.float64)
        v64 = np.ascontiguousarray(np.asarray(v), dtype=np.float64)
        return z64, v64

    def _kernel_rows(
        self, kernel: Any, rows: Array, host: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[Array, Array]:
        """The student's gradient of ``rows`` by a fused float64 kernel on the host
        (:func:`fused_forward_rows` or :func:`fused_reverse_rows`): the rows' student and
        teacher scores in float64 (``host`` where gathered already), the kernel's
        gradient rows and the rows it formed scattered back into zeros of the student's
        shape."""
        d, xp = self.d, self.d.batch.xp
        z64, v64 = self._rows_on_host(rows) if host is None else host
        z = d.student
        formed, kept = kernel(z64, v64, float(d.temperature))
        out = xp.zeros(d.student.shape, dtype=xp.float64, device=device(z))
        out[rows] = xp.asarray(formed, device=device(z))
        taken = xp.zeros(rows.shape, dtype=xp.bool, device=device(z))
        taken[rows] = xp.asarray(kept, device=device(z))
        return out, taken

    @property
    def student(self) -> Array:
        """The student's logits, classes last (the gradients' shape)."""
        return self.d.student

    @property
    def teacher(self) -> Array:
        """The teacher's scores, classes last."""
        return self.d.teacher_scores

    def in_student(self) -> Array:
        """The gradient of :math:`T^2 D` in the student's logits (classes last)."""
        return self._formed(self.d.student, self.d.teacher_scores, self.d.log_s, self.d.log_t)

    def in_teacher(self) -> Array:
        r"""The gradient of :math:`T^2 D` in the teacher's logits (classes last; a
        teacher of logits only): the other direction's student gradient, the roles
        swapped (:math:`D(t\,\|\,s)` is the reverse loss of a student :math:`t`)."""
        d = self.d
        return self._formed(d.teacher_scores, d.student, d.log_t, d.log_s, swapped=True)

    def _formed(
        self,
        first: Array,
        second: Array,
        log_first: Array,
        log_second: Array,
        swapped: bool = False,
    ) -> Array:
        """The flagged rows (boolean indexing: the backward of a call whose forward read
        that one is flagged, ``crossent.torch``; not every row formed then picked)
        formed by ``NearRows``, 0 elsewhere."""
        d, xp, flagged = self.d, self.d.batch.xp, self.flagged
        z, scores, log_s, log_t = (x[flagged] for x in (first, second, log_first, log_second))
        forward = (d.direction == "forward") != swapped
        near = NearRows(z, scores, d.temperature, xp, log_s, log_t).gradient(forward=forward)
        out = xp.zeros(first.shape, dtype=near.dtype, device=device(near))
        out[flagged] = near
        return out


NEAR_ROWS_LATER: ContextVar[list[NearRowsLater] | None] = ContextVar(
    "NEAR_ROWS_LATER", default=None
)
"""Set to a list by a caller that reads the near-row flags of a loss of another namespace
than NumPy together with its own (``crossent.torch``: one host read, not two): the loss
then returns its rows as they are and appends a :class:`NearRowsLater` in place of its
read (:func:`_near_rows_of_namespace`)."""


def _may_hold_one(flagged: Array, xp: ModuleType) -> bool:
    """Whether a row is ``flagged``; True where the values cannot be read (an array
    traced by ``jax.jit``, batched by ``torch.func.vmap`` or on PyTorch's ``meta``
    device, which ``validate=False`` lets through: its rows are all formed then picked,
    no read)."""
    try:
        return truth_of(xp.any(flagged))
    except ValuelessArrayError:
        return True


def _flagged_only(x: Array, flagged: Array, xp: ModuleType) -> Array:
    """``x`` (classes last) on the rows ``flagged``, 0 elsewhere (finite everywhere there)."""
    return xp.where(flagged[..., None], x, xp.zeros_like(x))


def _near_rows(d: _Distillation, kl: Array) -> np.ndarray | None:
    r"""The rows of a NumPy call whose KL (before :math:`T^2`) is below
    :data:`._near_rows.KL_FLOOR` (negative ones too), where the common path's terms
    cancel (``_near_rows``), or None: the common case costs one minimum of the per-row
    KL (of one row, a NumPy scalar: its number)."""
    if type(d.log_s) is not np.ndarray:
        return None
    if type(kl) is not np.ndarray:
        low = float(kl)
    elif kl.size == 1:
        low = kl.item()
    else:
        low = np.fmin.reduce(kl, axis=None) if kl.size else math.inf
    if not low < _KL_FLOOR:
        return None
    return rows_to_form(np.asarray(kl) < _KL_FLOOR, d.student, d.teacher_scores)


def _log_ratio(log_s: Array, log_t: Array, xp: ModuleType) -> Array:
    r""":math:`\log s - \log t`, :math:`+\infty` where :math:`t = 0` (the reverse
    gradient's :math:`d`)."""
    finite = log_t > -float("inf")
    return xp.where(
        finite,
        log_s - xp.where(finite, log_t, xp.zeros_like(log_t)),
        xp.full_like(log_s, float("inf")),
    )


def gradient_rows_flagged(d: _Distillation, among: Array | None = None) -> Array:
    r"""Per row of the prepared call ``d`` (batch shape, booleans), whether
    :func:`distillation_loss_grad` forms its gradient by ``_near_rows.NearRows``: the one
    rule of both directions (``_near_rows.forward_rows_flagged``; forward :math:`s - t`
    against :math:`t`, reverse :math:`s \odot (\log s - \log t - D)` against :math:`s`,
    or a KL below ``_near_rows.KL_FLOOR``), formable. No host read for other namespaces
    than NumPy (traceable): for a caller that picks the rows itself (``crossent.torch``),
    beside :func:`common_rows_and_near_flags`. Far rows (``_far_gaps``) are not taken
    out. ``among``: rows the caller knows formable (its own flags: ``formable`` not
    read again, branch distillonce2), the flags among them."""
    xp = d.batch.xp
    s = xp.exp(d.log_s)
    if d.direction == "forward":
        teacher = xp.exp(d.log_t)
        flagged = forward_rows_flagged(s - teacher, teacher, d.row_kl, xp)
    else:
        kl = d.row_kl()[..., None]
        with numpy_errstate(s, xp, all="ignore"):  # (an infinite D: NaN, not flagged)
            excess = weighted_term(s, _log_ratio(d.log_s, d.log_t, xp) - kl, xp=xp)
            flagged = forward_rows_flagged(excess, s, lambda: kl[..., 0], xp)
    return _formable(d, flagged) if among is None else xp.logical_and(among, flagged)


def _near_reverse_rows(
    d: _Distillation, excess: Array, s: Array, kl: Array
) -> tuple[np.ndarray | None, Array]:
    r"""The reverse gradient's near rows (``_near_rows.forward_rows_flagged``, the one
    rule of both directions): of the ``excess`` :math:`s \odot (\log s - \log t - D)`
    (the gradient before :math:`T`; :math:`s - t` to first order), those of a spread
    below ``_near_rows.SPREAD_FLOOR`` times :math:`\max_c s_c`, or of a KL (``kl``,
    keepdims) below ``_near_rows.KL_FLOOR`` (issue 13, branch distillrev1: student logits
    ``[0, log1p(-2.9e-5) + 1e-7, log(2.9e-5) - 70]`` beside teacher logits ``[0,
    log1p(-2.9e-5), log(2.9e-5)]``, :math:`D(s\,\|\,t) = 1.5\cdot 10^{-5}`, were
    4.7e6 units of :math:`2^{-53}` of the row's largest entry off). NumPy: the rows
    to form (:func:`_near_gradient_rows`), or None, and None; other namespaces: None
    and the flags (formed then picked)."""

    def row_kl() -> Array:
        return kl[..., 0]

    if type(excess) is np.ndarray:
        return _near_gradient_rows(d, excess, s, row_kl), None
    return None, forward_rows_flagged(excess, s, row_kl, d.batch.xp)


def _near_gradient_rows(
    d: _Distillation, difference: Array, first: Array, row_kl: Callable[[], Array]
) -> np.ndarray | None:
    r"""The rows of a NumPy gradient whose spread :math:`\max_c |g_c|` (of the
    ``difference`` :math:`g`: forward :math:`s - t`; reverse :math:`s \odot (\log s -
    \log t - D)`, before :math:`T`) is below :data:`._near_rows.SPREAD_FLOOR` times
    :math:`\max_c p_c` (``first``, the KL's first distribution: :math:`t` forward,
    :math:`s` reverse), or whose KL (``row_kl()``) is below
    :data:`._near_rows.KL_FLOOR` (``_near_rows.forward_rows_flagged``), formable; or
    None: three row maxima on the common path."""
    if type(difference) is not np.ndarray or not difference.size:
        return None
    flagged = np.asarray(forward_rows_flagged(difference, first, row_kl, np))
    if not flagged.any():
        return None
    return rows_to_form(flagged, d.student, d.teacher_scores)


def _twin_may_hold(log_s: Array, log_t: Array, xp: ModuleType) -> Array:
    r"""Per row (batch shape), whether :math:`\log s_j \ge \log t_j - \log 2 - 10^{-4}`
    at the teacher's first top class :math:`j`: a superset of the rows where
    ``_near_rows.exact_forward_gradient`` holds (:math:`s_j \ge t_j/2`), by the softened
    rows (``NearGradients.cancelling_in_student``)."""
    top = xp.argmax(log_t, axis=-1, keepdims=True)
    at_top = xp.arange(log_t.shape[-1], device=device(log_t)) == top
    gap = xp.where(at_top, log_s - log_t, xp.zeros_like(log_s))
    return xp.sum(gap, axis=-1) >= -0.6932


def fused_forward_rows(
    z: np.ndarray, v: np.ndarray, temperature: float
) -> tuple[np.ndarray, np.ndarray]:
    r""":math:`T(s - t)` of float64 rows ``z`` beside teacher logits ``v`` (rows x
    classes, C-contiguous) by the fused forward kernel
    (``_distill_numba.distillation_forward_gradient_kernel``, :math:`r = T`: the 2-D
    op's bits), and the rows it forms; 0 on the others: those whose statistics are not
    finite (a NaN, ``+inf``, a student's ``-inf`` beside :math:`t_c > 0`: ``formable``'s
    rows and more) or whose spread is below ``_near_rows.SPREAD_FLOOR``'s by its own pass
    (the caller's). Issue 13, branch distfwd3; Numba must be there
    (``_cpu_kernels.available``)."""
    from . import _distill_numba

    n = z.shape[0]
    formed = np.zeros_like(z)
    z, v = read_only(z), read_only(v)  # the 2-D op's specialisation: one compilation
    stats, small = np.empty((n, 5)), np.zeros(n, dtype=np.bool_)
    kernel = _distill_numba.distillation_forward_gradient_kernel
    kernel(z, v, temperature, stats, np.full(n, temperature), formed, small, False, 0)
    kept = np.isfinite(stats[:, 0]) & ~small
    formed[~kept] = 0.0
    return formed, kept


def reverse_row_statistics(
    z: np.ndarray, v: np.ndarray, temperature: float, given: bool = False
) -> np.ndarray:
    r"""The reverse kernels' statistics :math:`(D(s\,\|\,t), m_z, \ell_s, m_v,
    \ell_t, L)` of float64 rows ``z`` beside teacher scores ``v`` (rows x classes,
    C-contiguous; ``_distill_rows.reverse_statistics``, one thread: the 2-D op's bits);
    ``given``: a teacher taken as it is (its :math:`D` less :math:`L`). Numba must be
    there (``_cpu_kernels.available``)."""
    from . import _distill_numba, _distill_rows

    stats = np.empty((z.shape[0], 6))
    z, v = read_only(z), read_only(v)  # the 2-D op's specialisation: one compilation
    forward = _distill_numba.distillation_forward_kernel
    _distill_rows.reverse_statistics(forward, z, v, temperature, stats, given)
    return stats


def fused_reverse_rows(
    z: np.ndarray, v: np.ndarray, temperature: float, stats: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    r""":math:`T s \odot (\log s - \log t - D(s\,\|\,t))` of float64 rows ``z`` beside
    teacher scores ``v`` (logits or :math:`\log t`; rows x classes, C-contiguous) by
    the reverse kernel (``_distill_numba.distillation_reverse_backward_kernel``,
    :math:`r = T`: the 2-D op's bits, its factor :math:`\delta' - \mathrm E_s[\delta']`
    formed from exact pairs), and the rows it forms: those whose statistics are finite
    (0 on the others, the caller's). The gradient does not depend on how the teacher
    is normalised (:math:`\log t + c` moves :math:`D` by :math:`-c`), so a teacher
    taken as it is (:math:`T = 1`) has the same rows. ``stats``: the rows'
    :func:`reverse_row_statistics` where formed already (their :math:`D` of either
    normalisation: the kernel reads :math:`m_z, \ell_s` and whether :math:`D` is
    finite). Issue 13, branch distrev1; Numba must be there (``_cpu_kernels.available``)."""
    from . import _distill_numba

    n = z.shape[0]
    formed = np.zeros_like(z)
    small = np.zeros(n, dtype=np.bool_)
    z, v = read_only(z), read_only(v)  # the 2-D op's specialisation: one compilation
    if stats is None:
        stats = reverse_row_statistics(z, v, temperature)
    kernel = _distill_numba.distillation_reverse_backward_kernel
    kernel(z, v, stats, temperature, np.full(n, temperature), formed, small)
    kept = np.isfinite(stats[:, 0])
    formed[~kept] = 0.0
    return formed, kept


def _cancelling_rows(
    d: _Distillation, difference: Array, teacher: Array, near: np.ndarray | None
) -> np.ndarray | None:
    r"""The NumPy forward gradient's rows to form by ``NearRows`` (compiled:
    ``_distill_numba._exact_forward_row``): ``near`` (:func:`_near_gradient_rows`) and
    those of :math:`\max_c |s_c - t_c|` (``difference``) below
    ``_near_rows.CANCEL_SPREAD`` :math:`\max_c t_c`, where :math:`s - t` of the softened
    rows errs by some :math:`\max_c t_c / \max_c |s_c - t_c|` units of the row's
    largest entry (134 on rows of two classes of :math:`N(0, 1)` at :math:`T = 8`; issue
    13, branch distfwd1), formable; float64 rows where Numba is (the lean path's
    ``_near_rows_numba.cancelling_rows64``, by the same comparisons) of a float64
    caller (a float16 or float32 caller's rows, formed in float64 and rounded to
    float32, are not: ``_widen.narrow_result``), not a teacher
    taken as it is (``given``: :math:`T = 1`, probabilities or log-probabilities, whose
    rows may sum to :math:`1 + \delta`)."""
    if type(difference) is not np.ndarray or difference.dtype != np.float64 or d.given:
        return near  # (given: t_c as it is, not the softmax NearRows forms)
    if _widen.narrow_result():  # (a float32 result: its rounding hides those units)
        return near
    if not difference.size or not _cpu_kernels.available():
        return near
    spread, top = spread_and_top(difference, teacher, np)
    rows = spread < _CANCEL * top
    if not rows.any():
        return near
    if near is not None:
        rows |= near
    return rows_to_form(rows, d.student, d.teacher_scores)


def _rows64(d: _Distillation, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The student's logits and the teacher's scores of ``rows`` in float64 (rows x
    classes)."""
    return (
        np.asarray(d.student[rows], dtype=np.float64),
        np.asarray(d.teacher_scores[rows], dtype=np.float64),
    )


def _largest(kl: Array) -> float:
    """The largest per-row KL of a NumPy reverse gradient (NaN if one is; 0 for others):
    one row's number, or one maximum (as ``_far_gaps.overflowed``)."""
    if type(kl) is not np.ndarray or not kl.size:
        return 0.0
    return float(kl.item() if kl.size == 1 else np.maximum.reduce(kl, axis=None))


_HUGE = 2.0**960
r"""From this :math:`D` on, :math:`\log s_c - \log t_c - D` can pass the float64 range
where :math:`s_c = 0` (:math:`|\log s_c - \log t_c| < 1.8\cdot 10^{308}`, whose ulp is
:math:`2^{971}`): the gradient is right (0 there), its overflow warning hidden."""


def _far_rows(d: _Distillation, kl: Array | None, top: float) -> np.ndarray | None:
    r"""The rows of a NumPy gradient to form again (:func:`._far_gaps.distillation_gradient64`,
    which holds no gap), or None: the common case costs :func:`_largest` of the reverse
    direction's per-row KL (``top``) and one comparison of :math:`T`.

    * Reverse, rows whose :math:`D(s\,\|\,t)` is not finite: :math:`T s\odot(\log s -
      \log t - D)` reads a teacher gap past the float64 range as :math:`t = 0` (an
      infinite :math:`D`, the gradient ``-inf``/NaN where it is finite), and cannot form
      a finite gradient beside an infinite :math:`D`.
    * :math:`T \ge 2^{1000}`, rows with a zero probability on either side: a gap
      :math:`x_c - m` past the float64 range is ``-inf`` there, yet
      :math:`(x_c - m)/T` is in range and its :math:`e^{\sigma}` not 0.

    Not the reverse rows where :math:`t_c = 0` (a ``-inf`` teacher score) and
    :math:`\log s_c > -\infty`: their :math:`D` is truly infinite (their gradient NaN,
    :func:`_without_derivative`).
    """
    if type(d.log_s) is not np.ndarray:
        return None
    far = None
    if kl is not None and not math.isfinite(top):
        far = ~np.isfinite(kl[..., 0])
    if d.temperature >= _WIDE_TEMPERATURE:
        lost = np.isneginf(d.log_s).any(axis=-1) | np.isneginf(d.log_t).any(axis=-1)
        far = lost if far is None else far | lost
    if far is not None and kl is not None:
        # t = 0 < s truly (a -inf teacher score): D is +inf, its gradient NaN (below)
        far &= ~(np.isneginf(d.teacher_scores) & (d.log_s > -math.inf)).any(axis=-1)
    return None if far is None or not far.any() else far
