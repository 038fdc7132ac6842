r"""Rows whose loss came out ``inf`` although the true loss is finite (issue 13 follow-up).

A softmax loss row is :math:`A\ell - B + \lambda\omega\operatorname{LSE}^2` with
:math:`B = \sum_c v_c\sigma_c`, :math:`v = w\odot\tilde t` and the gaps
:math:`\sigma_c = (c_c - m)/T` (``_terms.py``). A gap overflows float64 where
:math:`|c_c - m|` passes 1.8e308 (logits of :math:`\pm 10^{308}`), or
:math:`(c_c - m)/T` does for :math:`T < 1`; yet :math:`v_c\sigma_c` is finite where
:math:`v_c` is small (label smoothing's :math:`\varepsilon/C`, a small probability
target, a class weight below 1) or :math:`T > 1`. Likewise :math:`\operatorname{LSE}^2`
overflows past 1.3e154 where a small :math:`\lambda` makes the z-loss finite, and a
``'mean'`` of rows near 1e308 overflows its sum, not its value.

The kernels keep their operations. A public loss checks its result once (one
``math.isinf`` of a NumPy scalar, or the maximum of a ``'none'`` array); where it is
``inf`` the call is made again with ``reduction='none'``, and only the ``inf`` rows are
formed again here, in float64, each gap scaled by a power of two before it is formed:

.. math:: B = 2^{j-e}\sum_c v_c\,\frac{c_c 2^{-j} - m 2^{-j}}{f},\qquad
          T = f\,2^e\ (\tfrac12 \le f < 1),\quad 2^j \ge 4C\max(1, \max_c v_c)

Each scaled gap is at most :math:`2\cdot\text{max}\cdot 2^{-j}`, its quotient by
:math:`f` and product with :math:`v_c` at most :math:`\text{max}/C`, so the sum is
finite; the scaling by :math:`2^{j-e}` is exact (``np.ldexp``) and ``inf`` only where
:math:`B` truly overflows. The roundings are those of :math:`\sum_c v_c\sigma_c`.

Gradients need no second pass where the loss is finite: the softmax losses' gradient is
:math:`((A + 2\lambda\omega\operatorname{LSE})\,p - v)/T`, with :math:`p = 0` at a far
gap (its :math:`e^{\sigma}` is 0 in truth too) and :math:`\operatorname{LSE}` finite
wherever a normal :math:`\lambda\omega` leaves :math:`\lambda\omega\operatorname{LSE}^2`
finite; forward distillation's is :math:`T(s - t)`. Not so reverse distillation's
:math:`T s\odot(\log s - \log t - D)` where a teacher gap overflows: ``log t = -inf``
is read as :math:`t = 0`, :math:`D` is ``inf``, and the gradient ``-inf``/NaN where it
is finite. ``_distill`` forms such rows again (those whose :math:`D` is not finite, one
maximum of the per-row :math:`D` on the common path) by
:func:`reverse_distillation_gradient64`, :math:`s\odot(d - \bar d)` with :math:`d = z -
x`, which holds no gap; and, for :math:`T \ge 2^{1000}` (:data:`WIDE_TEMPERATURE`),
the rows where a gap past the range is back in range once divided by :math:`T`.
Distillation's :math:`T^2 D` is formed by powers of two where :math:`T^2` leaves the
normal range (:func:`times_temperature_squared`): ``inf`` only where the loss is.

Rows of other libraries' losses (PyTorch, JAX, array-api-strict) are formed again on
float64 host copies (:func:`_again_elsewhere`) and put back by ``where``; under PyTorch's
autograd each carries its exact gradient in the logits, that of the loss's ``*_grad``
twin (:func:`_attach_gradient`), NaN in the arguments whose gradient is not formed.
JAX's transformations trace their arrays, and ``torch.func``'s wrap their tensors, which
have no host copy (:func:`._xp.cannot_copy_to_host`): the pass does not run there, and
the common path's value (``inf``) stands, with its gradient where that is exact (the
softmax losses), NaN where it is not (distillation: :func:`_poisoned_far_rows`).

These helpers are NumPy float64 and hold no autograd: ``crossent.torch``'s far rows
(``_launch._weighted_gap_sum``, the same formula with torch operations) need gradients
through the gap sum; its non-differentiable forward blocks could call
:func:`gap_sum_parts` on ``tensor.numpy()`` views.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import sys
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import ValuelessArrayError, truth_of
from .._far_row_gradients import gradient_term, unformed, wants_gradient
from .._torch_host import on_host
from .._traced_far_rows import poisoned
from .._xp import cannot_copy_to_host, device, host_float64, namespace, reduce_sum
from ._batch import FrontDoor
from ._reduction import LossParts, _safe_divide

__all__ = [
    "CALLER_FORMS_FAR_ROWS",
    "WIDE_TEMPERATURE",
    "FarGradient",
    "distillation_far_rows",
    "distillation_gradient64",
    "far_rows_guard",
    "gap_sum_parts",
    "guarded_like",
    "host64",
    "label_far_rows",
    "overflowed",
    "reverse_distillation_gradient64",
    "scaled_square_term",
    "softmax_far_rows",
    "square_is_normal",
    "target_far_rows",
    "tempered_log_softmax64",
    "times_lse64",
    "times_temperature_squared",
]

#: Set (True) by a caller that screens the loss for far rows itself and forms them again
#: (``crossent.torch``'s distillation): the guard's screen of other libraries' results
#: (:func:`_overflowed_elsewhere`) is then skipped, one host read (a synchronisation on an
#: accelerator) fewer per call.
CALLER_FORMS_FAR_ROWS: ContextVar[bool] = ContextVar("CALLER_FORMS_FAR_ROWS", default=False)

_FarRows = Callable[[dict[str, Any], np.ndarray], np.ndarray]
"""``(arguments, far)``: the far rows' losses in nats, float64, for the rows ``far``
(a boolean mask of the batch shape) of a call whose bound ``arguments`` are given."""


def gap_sum_parts(
    c: np.ndarray, m: np.ndarray, v: np.ndarray, temperature: float
) -> tuple[np.ndarray, int]:
    r"""``(S, k)`` with :math:`B = \sum_c v_c (c_c - m)/T = S\,2^k` per row (keepdims).

    ``c``: float64 logits (rows x classes); ``m``: their row maxima (keepdims); ``v``:
    nonnegative weights of the shape of ``c``. :math:`S` is finite wherever every
    :math:`c_c, m` is (module docstring); a class with :math:`v_c = 0` is absent (not
    :math:`0\cdot\infty`), a ``-inf`` logit with :math:`v_c > 0` gives :math:`S = -\infty`.
    """
    top = float(np.max(v)) if v.size else 0.0
    bits = 2 + math.ceil(math.log2(max(1, c.shape[-1]) * max(1.0, top)))
    frac, exponent = math.frexp(temperature)
    with np.errstate(over="ignore", invalid="ignore"):
        gaps = (np.ldexp(c, -bits) - np.ldexp(m, -bits)) / frac
        terms = v * np.where(v != 0, gaps, 0.0)
    return np.add.reduce(terms, axis=-1, keepdims=True), bits - exponent


def _lse_parts(top: np.ndarray, ell: np.ndarray, temperature: float) -> tuple[np.ndarray, Any]:
    r"""``(S, E)`` with :math:`\operatorname{LSE} = m/T + \ell = S\,2^{E}`:

    .. math:: S = \frac{f_m}{f_T}\,2^{e_m - e_T - E} + \ell\,2^{-E},\quad
              E = \max(e_m - e_T, 0)

    with :math:`m = f_m 2^{e_m}`, :math:`T = f_T 2^{e_T}` (``np.frexp``). Where
    :math:`E = 0`, :math:`S` is :math:`m/T + \ell` as the common path forms it (the
    powers of two are exact), and :math:`|S| < 2 + \ell` elsewhere, at any :math:`T`
    (a subnormal one too)."""
    f_m, e_m = np.frexp(top)
    f_t, e_t = math.frexp(temperature)
    shift = np.maximum(e_m - e_t, 0)
    with np.errstate(invalid="ignore"):  # (a row maximum of -inf or NaN: its LSE as is)
        return np.ldexp(f_m / f_t, e_m - e_t - shift) + np.ldexp(ell, -shift), shift


def scaled_square_term(
    z_loss: float, omega: np.ndarray, top: np.ndarray, ell: np.ndarray, temperature: float
) -> np.ndarray:
    r""":math:`\lambda\omega\operatorname{LSE}^2` with :math:`\operatorname{LSE} = m/T +
    \ell`, neither :math:`m/T` nor the square nor :math:`\lambda\omega` formed where they
    would leave the normal range:

    .. math:: \lambda\omega\operatorname{LSE}^2 = (f_\lambda\,\omega\,S^2)\,
              2^{e_\lambda + 2E},\qquad \lambda = f_\lambda 2^{e_\lambda}

    (:func:`_lse_parts`' :math:`S, E`): :math:`S^2` cannot overflow, and the powers of
    two are applied exactly (``inf`` only where the term is). Not :math:`(\lambda\omega)
    S^2` (before): a subnormal :math:`\lambda`, which a tiny :math:`T` calls for
    (``[1e300, -1e300]`` at :math:`T = 10^{-14}`, :math:`\lambda = 5\cdot 10^{-324}`:
    4.94e304), rounded :math:`\lambda S^2` to a multiple of :math:`\lambda` (4.39e304).
    """
    s, shift = _lse_parts(top, ell, temperature)
    f_l, e_l = math.frexp(z_loss)
    with np.errstate(over="ignore"):
        return np.ldexp((f_l * omega) * (s * s), e_l + 2 * shift)


def times_lse64(z_loss: float, top: np.ndarray, ell: np.ndarray, temperature: float) -> np.ndarray:
    r""":math:`\lambda\operatorname{LSE} = (f_\lambda S)\,2^{e_\lambda + E}` of float64
    row maxima ``top`` and :math:`\ell` (:func:`_lse_parts`), the softmax gradient's
    z-loss part where :math:`\operatorname{LSE}` overflows (``_softmax._scaled_lse``):
    ``inf`` only where the product does, at any :math:`T`."""
    s, shift = _lse_parts(top, ell, temperature)
    f_l, e_l = math.frexp(z_loss)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ldexp(f_l * s, e_l + shift)


def tempered_log_softmax64(
    x: np.ndarray, temperature: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""``(m, ell, log_p)`` of float64 rows ``x``: :math:`m = \max_c x_c`,
    :math:`\ell = \log\sum_c e^{(x_c - m)/T}` and :math:`\log\operatorname{softmax}(x/T)`
    (keepdims).

    A gap :math:`x_c - m` past the float64 range is formed in halves where :math:`T > 1`,
    :math:`\sigma_c = 2\,\frac{x_c/2 - m/2}{T}` (exact scalings: the bits of
    :math:`(x_c - m)/T` wherever that is finite); ``-inf`` only where :math:`\sigma_c`
    truly overflows, its :math:`e^{\sigma}` then 0 as it truly is. :math:`\ell` is
    ``log1p`` of the sum past one top class (:math:`e^0 = 1`), not the log of a sum near
    1: its relative error stays an ulp's where the other classes are far below the top
    (a :math:`T^2 D` of :math:`T = 10^{306}` multiplies it by :math:`10^{612}`)."""
    m = np.max(x, axis=-1, keepdims=True)
    with np.errstate(over="ignore", invalid="ignore"):
        gaps = x - m
        shifted = gaps / temperature
        if temperature > 1.0:
            past = np.isinf(gaps) & np.isfinite(x) & np.isfinite(m)
            if past.any():
                halves = (np.ldexp(x, -1) - np.ldexp(m, -1)) / temperature
                shifted = np.where(past, 2.0 * halves, shifted)
    terms = np.exp(shifted)
    np.put_along_axis(terms, np.argmax(x, axis=-1)[..., None], 0.0, axis=-1)
    ell = np.log1p(np.add.reduce(terms, axis=-1, keepdims=True))
    return m, ell, shifted - ell


WIDE_TEMPERATURE = 2.0**1000
r"""From this :math:`T` on, a gap :math:`x_c - m` past the float64 range (``-inf``) can
be a tempered gap :math:`(x_c - m)/T` whose :math:`e^{\sigma}` is not 0 (below it,
:math:`e^{-1.8\cdot 10^{308}/T} \le e^{-10^7}`, 0 even times :math:`T` or a gap)."""


def distillation_gradient64(
    z: np.ndarray, x: np.ndarray, temperature: float, *, forward: bool
) -> np.ndarray:
    r"""The gradient of distillation's :math:`T^2 D` in the student's float64 logits ``z``
    (rows x classes), ``x`` the teacher's logits, :math:`\log t` or log-probabilities:
    :math:`T(s - t)` (forward) of :func:`tempered_log_softmax64`'s :math:`s` and
    :math:`t`, or :func:`reverse_distillation_gradient64`."""
    if not forward:
        return reverse_distillation_gradient64(z, x, temperature)
    s = np.exp(tempered_log_softmax64(z, temperature)[2])
    t = np.exp(tempered_log_softmax64(x, temperature)[2])
    with np.errstate(over="ignore"):
        return temperature * (s - t)


def reverse_distillation_gradient64(
    z: np.ndarray, x: np.ndarray, temperature: float, *, s: np.ndarray | None = None
) -> np.ndarray:
    r"""The gradient of :math:`T^2 D(s\,\|\,t)` in the student's float64 logits ``z``
    (rows x classes), with ``x`` the teacher's logits or log-probabilities, in the form
    that holds no gap (the :math:`\ell`, the shifts and :math:`T` cancel):

    .. math:: T\,s_j\big(\log s_j - \log t_j - D(s\,\|\,t)\big)
              = s_j\,(d_j - \bar d),\qquad d = z - x,\quad
              \bar d = \sum_c s_c d_c,\qquad s = \operatorname{softmax}(z/T)

    formed as :math:`s_j\big(D_j - \sum_c s_c D_c\big)` with :math:`D = d - d_r`,
    :math:`r` the student's top class (no cancellation at :math:`r`). Rows with an entry
    past :math:`2^{1018}` are scaled by :math:`2^{-4}` first (exact), so that
    :math:`|d|, |D|` and :math:`|D_j - \bar D|` stay finite; a product is ``inf`` only
    where the gradient overflows. :math:`s_j = 0` gives 0; ``x = -inf`` (:math:`t = 0`)
    where :math:`s > 0` gives the common path's ``-inf``/NaN of an infinite loss. ``s``:
    the softened student where the caller has it (``_near_rows``' of pairs), else
    ``exp`` of :func:`tempered_log_softmax64`.
    """
    if s is None:
        s = np.exp(tempered_log_softmax64(z, temperature)[2])
    present = s != 0
    with np.errstate(over="ignore", invalid="ignore"):
        wide = np.maximum(np.max(np.abs(z), axis=-1), np.max(np.abs(x), axis=-1))
        bits = np.where(wide >= 2.0**1018, _GRADIENT_BITS, 0)[:, None]
        d = np.ldexp(z, -bits) - np.ldexp(x, -bits)
        top = np.argmax(s, axis=-1)[:, None]
        gaps = d - np.take_along_axis(d, top, axis=-1)
        mean = np.add.reduce(np.where(present, s * gaps, 0.0), axis=-1, keepdims=True)
        grad = np.ldexp(s * (gaps - mean), bits)
    return np.where(present, grad, 0.0)


_GRADIENT_BITS = 4
r"""The scaling of :func:`reverse_distillation_gradient64`'s wide rows: :math:`|d| \le
2\cdot 1.8\cdot 10^{308}\cdot 2^{-4}`, and :math:`|D_j - \bar D| \le 4|d| < 1.8\cdot
10^{308}`."""


def square_is_normal(temperature: float) -> bool:
    """Whether :math:`T^2` is a normal float64 (neither overflows nor leaves the normal
    range below): where it is not, :math:`T^2 D` is formed by
    :func:`times_temperature_squared`."""
    return sys.float_info.min <= temperature * temperature < math.inf


def times_temperature_squared(x: np.ndarray, temperature: float, *, shift: int = 0) -> np.ndarray:
    r""":math:`T^2 x\,2^{k}` (``shift`` :math:`k`) without forming :math:`T^2`:
    :math:`(f^2 x)\,2^{2e + k}` with :math:`T = f\,2^e` (``math.frexp``), the bits of
    ``(T * T) * x`` (for :math:`k = 0`) wherever neither product leaves the normal
    range; ``inf`` only where the product overflows, 0 (not NaN) where :math:`x = 0`."""
    frac, exponent = math.frexp(temperature)
    with np.errstate(over="ignore"):
        return np.ldexp(x * (frac * frac), 2 * exponent + shift)


def softmax_far_rows(
    c: np.ndarray,
    v: np.ndarray,
    a: np.ndarray,
    omega: np.ndarray,
    *,
    temperature: float,
    z_loss: float,
) -> np.ndarray:
    r"""Per-row losses :math:`A\ell - B + \lambda\omega\operatorname{LSE}^2` of float64 rows
    of (capped) logits ``c`` and target weights ``v`` (:math:`A`, :math:`\omega`
    keepdims), :math:`B` by :func:`gap_sum_parts` and the z-loss by
    :func:`scaled_square_term`: ``inf`` only where the loss overflows."""
    m, ell, _ = tempered_log_softmax64(c, temperature)
    s, k = gap_sum_parts(c, m, v, temperature)
    with np.errstate(over="ignore"):
        loss = a * ell - np.ldexp(s, k)
        if z_loss:
            loss = loss + scaled_square_term(z_loss, omega, m, ell, temperature)
    return loss[..., 0]


# ---------------------------------------------------------------- the public functions


def overflowed(result: object) -> bool:
    r"""Whether a NumPy loss holds an ``inf``: one check of one number (a float64 or
    float32 scalar, the total of :class:`LossParts`, the maximum of a float64 ``'none'``
    array). Float32 rows are not formed again: their gaps are formed in float64, where
    :math:`v_c\sigma_c` past the float64 range is past theirs too for any :math:`v_c`
    they can hold, so their ``inf`` is the true loss rounded; but their ``'mean'`` can
    overflow its float32 sum (:func:`_reduce`)."""
    if type(result) is np.float64 or type(result) is np.float32:
        return math.isinf(result)
    if type(result) is np.ndarray and result.dtype.char == "d" and result.size:
        # One row: its number (a NumPy reduction costs a microsecond on a small call);
        # more: fmax, so that a NaN row does not hide an inf one.
        top = result.item() if result.size == 1 else np.fmax.reduce(result, axis=None)
        return math.isinf(top)
    if type(result) is LossParts:
        return overflowed(result.total)
    return False


@dataclass(frozen=True)
class FarGradient:
    """How the far rows of a loss get their gradient under autograd (:func:`_attach_gradient`).

    ``function``: the name of the loss's gradient twin in :mod:`crossent.losses` (NumPy
    float64 on host copies, ``reduction='none'``: each row's gradient in its logits);
    ``logits``: the argument it differentiates; ``others``: the differentiable arguments
    whose gradient is not formed (NaN in the far rows, never a silent 0);
    ``exact_when_traced``: whether the common path's own gradient is exact in a far row,
    for arrays without a host copy (traced by JAX, ``torch.func``'s): where it is not,
    those rows' gradient is NaN (:func:`.._traced_far_rows.poisoned`).
    """

    function: str
    logits: str
    others: tuple[str, ...] = ()
    exact_when_traced: bool = True


def _traced(result: object) -> bool:
    """Whether a loss (rows, a scalar, :class:`LossParts`) has no host copy
    (:func:`._xp.cannot_copy_to_host`: traced by JAX, a tensor of ``torch.func``)."""
    return cannot_copy_to_host(result.total if type(result) is LossParts else result)


def _poisoned_far_rows(
    result: Any,
    signature: inspect.Signature,
    gradient: FarGradient,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """A traced ``result`` whose rows that are not finite have a NaN gradient in the
    logits and ``gradient.others`` (:func:`.._traced_far_rows.poisoned`)."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = bound.arguments
    inputs = [arguments.get(n) for n in (gradient.logits, *gradient.others)]
    if type(result) is LossParts:
        total = poisoned(result.total, inputs, arguments["axis"])
        return LossParts(total=total, normalizer=result.normalizer)
    return poisoned(result, inputs, arguments["axis"])


def far_rows_guard(
    far_rows: _FarRows, gradient: FarGradient
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make a public loss form its ``inf`` rows again by ``far_rows`` (module docstring),
    with their gradient by ``gradient`` where another library's autograd asks for one.

    The common path runs as it is; a result that :func:`overflowed` sends the call to
    :func:`_again`, which the common path's finite rows pass through bit for bit.
    ``public`` is a function of :func:`._batch.prepared_by`.
    """
    recipe = _Recipe(far_rows, gradient)

    def decorate(public: Callable[..., Any]) -> Callable[..., Any]:
        checked = _checked(public, inspect.signature(public), recipe)
        door = getattr(checked, "_front_door", None)
        functools.update_wrapper(checked, public)  # (copies public's ``_front_door``)
        if door is not None:
            checked._front_door = door  # type: ignore[attr-defined]
        # ``__wrapped__`` stays the body, as ``_batch.prepared_by`` makes it (the tests
        # reach the full path through it); the common path without the check is
        # ``_common_path``, and :func:`guarded_like` checks another path of it.
        checked.__wrapped__ = public.__wrapped__  # type: ignore[attr-defined]
        checked._common_path = public  # type: ignore[attr-defined]
        checked._far_rows = far_rows  # type: ignore[attr-defined]
        checked._far_recipe = recipe  # type: ignore[attr-defined]
        return checked

    return decorate


def guarded_like(public: Any, path: Callable[..., Any]) -> Callable[..., Any]:
    """``path`` (a function of ``public``'s arguments: its full path, in the tests) with
    the far-row check of the guarded ``public``."""
    return _checked(path, inspect.signature(public), public._far_recipe)


@dataclass(frozen=True)
class _Recipe:
    """A guarded loss's far rows and their gradient (:func:`far_rows_guard`)."""

    far_rows: _FarRows
    gradient: FarGradient


def _checked(
    path: Callable[..., Any], signature: inspect.Signature, recipe: _Recipe
) -> Callable[..., Any]:
    """``path`` with one :func:`overflowed` check of its result (:func:`far_rows_guard`).

    Where ``path`` has a front door (``_batch.FrontDoor``: a lean path), the check calls
    its shortcut and the rest of it itself (one call fewer), and has a front door of
    its own: that shortcut, ``settle`` (the check of a result) and the check of the rest.
    """

    def settle(result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if overflowed(result):
            return _again(path, signature, recipe.far_rows, args, kwargs)
        if type(result) in _NUMPY_RESULTS or CALLER_FORMS_FAR_ROWS.get():
            return result  # (NumPy's: checked by overflowed, nothing more to ask)
        if not recipe.gradient.exact_when_traced and _traced(result):
            return _poisoned_far_rows(result, signature, recipe.gradient, args, kwargs)
        if _overflowed_elsewhere(result):
            return _again_elsewhere(path, signature, recipe, args, kwargs)
        return result

    door: FrontDoor | None = getattr(path, "_front_door", None)
    if door is None:

        def checked(*args: Any, **kwargs: Any) -> Any:
            if args and type(args[0]) is not np.ndarray:
                # small CPU tensors: the NumPy call of it all, this check included (when on)
                hosted = on_host(checked)(args, kwargs)
                if hosted is not None:
                    return hosted
            return settle(path(*args, **kwargs), args, kwargs)

        return checked

    shortcut, past = door.shortcut, door.past

    def checked_door(*args: Any, **kwargs: Any) -> Any:
        if args and type(args[0]) is not np.ndarray:
            hosted = on_host(checked_door)(args, kwargs)  # (as ``checked``)
            if hosted is not None:
                return hosted
        result = shortcut(args, kwargs)  # ``path(*args, **kwargs)``, one call fewer
        if result is None:
            result = past(*args, **kwargs)
        return settle(result, args, kwargs)

    def checked_past(*args: Any, **kwargs: Any) -> Any:
        if args and type(args[0]) is not np.ndarray:
            hosted = on_host(checked_door)(args, kwargs)
            if hosted is not None:
                return hosted
        return settle(past(*args, **kwargs), args, kwargs)

    checked_door._front_door = FrontDoor(shortcut, settle, checked_past)  # type: ignore[attr-defined]
    return checked_door


_NUMPY_RESULTS = (np.ndarray, np.float64, np.float32)
"""The result types :func:`overflowed` checks in full: the rest of ``checked``'s
questions (traced, another library's ``inf``) are about other libraries (issue 13: they
cost about a microsecond of a small call's reduced loss)."""


def _again(
    public: Callable[..., Any],
    signature: inspect.Signature,
    far_rows: _FarRows,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """The call once more: its rows by the common path, the ``inf`` ones of float64 rows
    by ``far_rows`` (in the unit of ``base``), reduced by :func:`_reduce`."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    reduction = arguments["reduction"]
    rows = np.array(public(*args, **{**kwargs, "reduction": "none"}))  # (a copy)
    far = np.isinf(rows)
    # A float32 'mean' of a row past float32's range by itself (issue 13, branch
    # torchrow1: logits [3e38, -3e38], label 1, beside five rows [0, 0] gave inf for
    # 1e38): its rows in float64, the mean rounded to float32 at the end.
    wide = rows.dtype == np.float32 and reduction == "mean"
    low = rows.dtype.type
    if wide:
        rows = rows.astype(np.float64)
    if rows.dtype == np.float64 and far.any():
        again = far_rows(arguments, far)
        base = arguments.get("base")
        with np.errstate(over="ignore"):  # (a loss past the range in this base: inf)
            rows[far] = again if base is None else again / math.log(base)
    if reduction == "none":
        return rows if rows.ndim else rows[()]  # one row: a NumPy scalar, as given
    total = _reduce(
        rows.reshape(-1),
        reduction,
        lambda: public(*args, **{**kwargs, "reduction": "parts"}).normalizer,
    )
    if not wide:
        return total
    with np.errstate(over="ignore"):  # (a mean past float32's range: inf, no warning)
        return low(total)


def _overflowed_elsewhere(result: object) -> bool:
    """Whether a float32 or float64 loss of another library than NumPy (PyTorch, JAX,
    array-api-strict) holds an ``inf`` or a NaN (float32 computed in float32: a
    :math:`T^2` that underflows to 0 times an ``inf`` :math:`D`, a :math:`T` past its
    range; a hostile pass: ``distillation_loss`` of float32 tensors at :math:`T =
    10^{-30}` was NaN, NumPy's float32 3e8): one ``all(isfinite)`` (a synchronisation on an
    accelerator, as the measures' far-gap check); False for NumPy's own results (checked
    by :func:`overflowed`) and for arrays without values (traced by ``jax.jit``, meta
    tensors), which keep the common path's value."""
    if type(result) is LossParts:
        result = result.total
    if isinstance(result, np.ndarray | np.generic | float) or not hasattr(result, "dtype"):
        return False
    if cannot_copy_to_host(result):  # (jax.grad, torch.func.vmap/grad: the common path's
        return False  # value, :func:`_poisoned_far_rows`)
    xp = namespace(result, names=("loss",))[0]
    if result.dtype not in (xp.float32, xp.float64):
        return False
    try:
        return not truth_of(xp.all(xp.isfinite(result)))
    except ValuelessArrayError:
        return False


def _again_elsewhere(
    public: Callable[..., Any],
    signature: inspect.Signature,
    recipe: _Recipe,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """:func:`_again` for arrays of other libraries: the rows by the common path (with
    their autograd graph), the ``inf`` and NaN ones formed again by ``far_rows`` in
    float64 on host copies of the arguments (:func:`._xp.host_float64`; rounded once to
    float32 for float32 rows; a row NaN in float64 too kept as it was) and put back by
    ``where``, with their exact gradient where autograd asks for one
    (:func:`_attach_gradient`). Reduced in the rows' library, a ``'mean'`` by powers of
    two as :func:`_reduce` (its sum cannot overflow where the mean does not)."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    reduction = arguments["reduction"]
    rows = public(*args, **{**kwargs, "reduction": "none"})
    xp = namespace(rows, names=("loss",))[0]
    host = host64(rows, name="loss")
    far = np.asarray(~np.isfinite(host))  # (an array also for one row's 0-d loss)
    if far.any():
        again = recipe.far_rows(arguments, far)
        base = arguments.get("base")
        again = again if base is None else again / math.log(base)
        # NaN in float64 too (a NaN logit, a row of +inf ones), or a NaN row that comes
        # out infinite (a row of -inf logits, no softmax: NaN as on NumPy): as it was
        accept = np.where(np.isnan(host[far]), np.isfinite(again), ~np.isnan(again))
        far[far] = accept
        host[far] = again[accept]
        with np.errstate(over="ignore"):  # (float32: inf where the row passes its range)
            formed = host.astype(np.float32) if rows.dtype == xp.float32 else host
        where = device(rows)
        if far.any() and _gradient_asked(arguments, recipe.gradient):
            rows = _harmless_far_rows(public, signature, args, kwargs, rows, host, far, xp=xp)
        rows = xp.where(
            xp.asarray(far, device=where),
            xp.asarray(formed, dtype=rows.dtype, device=where),
            rows,
        )
        if far.any():
            rows = _attach_gradient(rows, far, arguments, recipe.gradient, xp=xp)
    if reduction == "none":
        return rows
    flat = xp.reshape(rows, (-1,))
    if reduction == "mean":
        normalizer = public(*args, **{**kwargs, "reduction": "parts"}).normalizer
        bits = 1 + math.ceil(math.log2(max(host.size, 1)))
        total = reduce_sum(flat * 2.0**-bits, xp=xp, out_dtype=rows.dtype)
        return _safe_divide(total, normalizer, xp=xp) * 2.0**bits
    total = reduce_sum(flat, xp=xp, out_dtype=rows.dtype)
    if reduction == "parts":
        normalizer = public(*args, **{**kwargs, "reduction": "parts"}).normalizer
        return LossParts(total=total, normalizer=normalizer)
    return total


#: The differentiable arguments with the rows' layout (classes at ``axis``), and the
#: value of their far rows in :func:`_harmless_far_rows`: logits 0, probabilities
#: :math:`1/C`, log-probabilities :math:`-\log C` (a uniform row, valid where checked).
_ROW_ARGUMENTS = ("logits", "targets", "student_logits", "teacher")


def _harmless_value(name: str, arguments: dict[str, Any], classes: int) -> float:
    """The value of a far row's entries of the argument ``name`` (:data:`_ROW_ARGUMENTS`)
    in :func:`_harmless_far_rows`."""
    form = arguments.get("teacher_form", "logits") if name == "teacher" else None
    if name == "targets" or form == "probs":
        return 1.0 / classes
    if form == "log_probs":
        return -math.log(classes)
    return 0.0


def _gradient_asked(arguments: dict[str, Any], gradient: FarGradient) -> bool:
    """Whether an argument whose gradient the far rows carry (the logits, or one of
    ``gradient.others``) wants a gradient (:func:`.._far_row_gradients.wants_gradient`)."""
    names = (gradient.logits, *gradient.others)
    return any(wants_gradient(arguments.get(n)) for n in names)


def _harmless_far_rows(
    public: Callable[..., Any],
    signature: inspect.Signature,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    rows: Any,
    host: np.ndarray,
    far: np.ndarray,
    *,
    xp: Any,
) -> Any:
    r"""``rows`` (``reduction='none'``) by the common path once more, with the far rows of
    the arguments of the rows' layout (:data:`_ROW_ARGUMENTS`) replaced by harmless
    values (:func:`_harmless_value`) before it: the "double ``where``".

    The far rows are put back by ``where``, whose backward gives the common path an
    upstream gradient of 0 there; but the common path's own backward multiplies that 0
    by its partials, ``inf`` in a far row (:math:`\partial L/\partial t_c =
    \operatorname{LSE} - z_c/T` of a gap past the range, :math:`\partial L/\partial w`),
    so a targets', teacher's or class weights' gradient was NaN in a far row (and in
    every class weight) where only other rows were backed (``loss[1].backward()``): 0
    is right. ``where(far, harmless, x)`` has finite partials there, and its backward
    gives ``x`` exactly 0 in the far rows. The other rows are formed by the same
    operations on the same values: their values (checked bit for bit against the first
    pass's; the first pass's ``rows`` are kept where they differ) and gradients are
    those of the first pass. Run only where a gradient is asked (:func:`_gradient_asked`).
    """
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = bound.arguments
    axis = arguments["axis"]
    where = device(rows)
    shape = tuple(arguments["logits" if "logits" in arguments else "student_logits"].shape)
    replaced = False
    for name in _ROW_ARGUMENTS:
        x = arguments.get(name)
        if not isinstance(x, type(rows)) or tuple(x.shape) != shape or "float" not in str(x.dtype):
            continue  # (labels, a broadcast or absent argument: as given)
        mask = np.broadcast_to(np.expand_dims(far, axis), shape).copy()
        fill = xp.asarray(
            _harmless_value(name, arguments, shape[axis]), dtype=x.dtype, device=where
        )
        arguments[name] = xp.where(xp.asarray(mask, device=where), fill, x)
        replaced = True
    if not replaced:
        return rows
    arguments["reduction"] = "none"
    again = public(*bound.args, **bound.kwargs)
    if tuple(again.shape) != tuple(rows.shape):  # pragma: no cover (a guard)
        return rows
    kept = ~far  # (bits: a NaN row of both passes is kept too)
    same = host64(again, name="loss").view(np.uint64)[kept] == host.view(np.uint64)[kept]
    return again if same.all() else rows


def _attach_gradient(
    rows: Any, far: np.ndarray, arguments: dict[str, Any], gradient: FarGradient, *, xp: Any
) -> Any:
    r"""``rows`` (a PyTorch tensor of the batch shape) whose formed rows ``far`` carry
    their exact gradient in the logits (a constant from ``where`` before) by
    :func:`.._far_row_gradients.gradient_term`, :math:`g_i` the row's gradient by the
    loss's ``*_grad`` twin on float64 host copies. The differentiable arguments in
    ``gradient.others`` (targets, a teacher, class weights: not formed) get NaN where a
    far row's upstream gradient is not 0 (:func:`.._far_row_gradients.unformed`), not a
    silent 0. Nothing is done where no argument wants a gradient
    (:func:`.._far_row_gradients.wants_gradient`).
    """
    logits = arguments[gradient.logits]
    others = [n for n in gradient.others if wants_gradient(arguments.get(n))]
    if not (wants_gradient(logits) or others):
        return rows
    axis = arguments["axis"]
    mask = xp.asarray(far, device=device(rows))
    extra = xp.zeros_like(rows)
    if wants_gradient(logits):
        g = _host_gradient(arguments, gradient)
        g = np.where(np.expand_dims(far, axis), g, 0.0)  # (x's layout: classes at axis)
        extra = extra + gradient_term(logits, g, mask, axis, xp=xp)
    for name in others:
        extra = extra + unformed()(arguments[name], mask, None, axis)
    return xp.where(mask, rows + extra, rows)


def _host_gradient(arguments: dict[str, Any], gradient: FarGradient) -> np.ndarray:
    """Each row's gradient in the logits by the loss's NumPy ``*_grad`` twin
    (``reduction='none'``), on float64 host copies of the float arguments (the others,
    labels, as integers), in the logits' layout."""
    # (the public functions, defined after this module loads)
    function = getattr(importlib.import_module(__package__), gradient.function)
    accepted = inspect.signature(function).parameters
    given: dict[str, Any] = {}
    for name, value in arguments.items():
        if name not in accepted or name == "out":
            continue
        given[name] = _host_copy(value, name=name)
    given["reduction"] = "none"
    if "validate" in accepted:
        # checked by the caller in their own dtype: a float32 teacher re-checked in float64
        # would fail float64's tolerance on a row that sums to 1 in float32
        given["validate"] = False
    positional = [given.pop(n) for n, p in accepted.items() if p.kind is p.POSITIONAL_ONLY]
    with np.errstate(all="ignore"):
        return np.asarray(function(*positional, **given), dtype=np.float64)


def _host_copy(value: object, *, name: str) -> object:
    """A NumPy copy of an array argument (float64 for floating point), other values as
    they are."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if not hasattr(value, "dtype"):
        return value
    host = host64(value, name=name)
    kind = str(value.dtype)
    if "int" in kind or "bool" in kind:
        return host.astype(np.int64)
    return host


def _reduce(flat: np.ndarray, reduction: str, normalizer: Callable[[], Any]) -> Any:
    r"""``'sum'``, ``'parts'`` or ``'mean'`` of the rows ``flat``, in their dtype.

    Float32 rows are summed in float64, which they cannot overflow. A float64 ``'mean'``
    is :math:`2^k\,(\sum_i L_i 2^{-k})/\sum_i\omega_i` with :math:`2^k \ge 2N`: its
    sum cannot overflow where the mean does not (the scalings are exact but for rows
    below :math:`2^{k-1022}`, far below the ulp of a sum that would overflow).
    """
    dtype = flat.dtype.type
    if reduction == "mean":
        weight = normalizer()
        if not weight > 0:
            return weight * 0.0
        if dtype is not np.float64:
            return dtype(np.add.reduce(flat, dtype=np.float64) / float(weight))
        bits = 1 + math.ceil(math.log2(max(flat.size, 1)))
        with np.errstate(over="ignore"):
            return np.float64(np.ldexp(np.add.reduce(np.ldexp(flat, -bits)) / weight, bits))
    with np.errstate(over="ignore"):
        total = dtype(np.add.reduce(flat, dtype=np.float64) + 0.0)
    if reduction == "parts":
        return LossParts(total=total, normalizer=normalizer())
    return total


# ------------------------------------------------------------------ the families' rows


def _rows_of(array: object, axis: int, far: np.ndarray) -> np.ndarray:
    """The rows ``far`` of ``array`` (classes along ``axis``) in float64, classes last."""
    values = host64(array, name="logits")  # (any library's: a rare pass)
    return np.moveaxis(values, axis, -1)[far]


def host64(x: object, *, name: str) -> np.ndarray:
    """:func:`._xp.host_float64` of an argument that has a host copy (the far-row passes
    run only on arrays with values: :func:`._xp.cannot_copy_to_host`)."""
    values = host_float64(x, name=name)
    assert values is not None
    return values


def _class_weights(weight: object, classes: int) -> np.ndarray:
    """The class weights in float64 (ones without them)."""
    return np.ones(classes) if weight is None else host64(weight, name="weight")


def _capped(c: np.ndarray, soft_cap: float | None) -> np.ndarray:
    r""":math:`s\tanh(c/s)` (the logits as they are without soft-capping)."""
    return c if soft_cap is None else soft_cap * np.tanh(c / soft_cap)


def label_far_rows(arguments: dict[str, Any], far: np.ndarray) -> np.ndarray:
    r"""The far rows of :func:`softmax_cross_entropy` (nats): :math:`v = (1-\varepsilon)
    w_y e_y + \tfrac{\varepsilon}{C} w`, :math:`A = (1-\varepsilon) w_y +
    \tfrac{\varepsilon}{C}\sum_c w_c`, :math:`\omega = w_y` (an ignored row is 0, never
    far)."""
    c = _capped(_rows_of(arguments["logits"], arguments["axis"], far), arguments["soft_cap"])
    classes = c.shape[-1]
    y = host64(arguments["labels"], name="labels")[far].astype(np.intp)  # (exact ids)
    w = _class_weights(arguments["weight"], classes)
    eps = float(arguments["label_smoothing"])
    keep, spread = 1.0 - eps, eps / classes
    w_y = w[y][:, None]
    v = np.broadcast_to(spread * w, c.shape).copy()
    np.put_along_axis(v, y[:, None], np.take_along_axis(v, y[:, None], -1) + keep * w_y, -1)
    a = keep * w_y + spread * np.add.reduce(w) if eps else w_y
    return softmax_far_rows(
        c, v, a, w_y, temperature=float(arguments["temperature"]), z_loss=float(arguments["z_loss"])
    )


def target_far_rows(arguments: dict[str, Any], far: np.ndarray) -> np.ndarray:
    r"""The far rows of :func:`softmax_cross_entropy_with_targets` (nats): :math:`v =
    w\odot\tilde t`, :math:`A = \sum_c v_c`, :math:`\omega = \sum_c w_c t_c`."""
    axis = arguments["axis"]
    c = _capped(_rows_of(arguments["logits"], axis, far), arguments["soft_cap"])
    t = _rows_of(arguments["targets"], axis, far)
    w = _class_weights(arguments["weight"], c.shape[-1])
    eps = float(arguments["label_smoothing"])
    v = w * ((1.0 - eps) * t + eps / c.shape[-1] if eps else t)
    a = np.add.reduce(v, axis=-1, keepdims=True)
    omega = np.add.reduce(w * t, axis=-1, keepdims=True)
    return softmax_far_rows(
        c,
        v,
        a,
        omega,
        temperature=float(arguments["temperature"]),
        z_loss=float(arguments["z_loss"]),
    )


def distillation_far_rows(arguments: dict[str, Any], far: np.ndarray) -> np.ndarray:
    r"""The far rows of :func:`distillation_loss` (nats): with :math:`p` the first
    distribution of the KL and :math:`x` the second's logits (the student's; the
    teacher's logits, :math:`\log t` or its log-probabilities),

    .. math:: T^2 D(p\,\|\,q) = T^2 (N - B),\qquad N = \sum_{c:\,p_c>0} p_c\log p_c
              + \ell_q\sum_c p_c,\qquad B = \sum_c p_c\,(x_c - m)/T = S\,2^k

    (:func:`gap_sum_parts`), formed as :math:`(N 2^{-k} - S)\,2^k` where :math:`k > 0`
    (no ``inf - inf`` where :math:`B` passes the range) and times :math:`T^2` by
    :func:`times_temperature_squared` (no ``inf * 0``); ``inf`` where :math:`p_c > 0`
    (a finite :math:`\log p_c`, even where :math:`p_c` underflows) beside :math:`q_c =
    0`, as the common path's ``kl_terms_from_log``."""
    axis, temperature = arguments["axis"], float(arguments["temperature"])
    student = _rows_of(arguments["student_logits"], axis, far)
    teacher = _rows_of(arguments["teacher"], axis, far)
    if arguments["teacher_form"] == "probs":
        with np.errstate(divide="ignore"):
            teacher = np.log(teacher)
    if arguments["direction"] == "forward":
        weights, second = teacher, student
    else:
        weights, second = student, teacher
    log_p = tempered_log_softmax64(weights, temperature)[2]
    p = np.exp(log_p)
    m, ell, _ = tempered_log_softmax64(second, temperature)
    own = np.add.reduce(p * np.where(p > 0, log_p, 0.0), axis=-1, keepdims=True)
    near = own + ell * np.add.reduce(p, axis=-1, keepdims=True)
    s, k = gap_sum_parts(second, m, p, temperature)
    if k > 0:
        loss = times_temperature_squared(np.ldexp(near, -k) - s, temperature, shift=k)
    else:
        loss = times_temperature_squared(near - np.ldexp(s, k), temperature)
    infinite = ((log_p > -np.inf) & np.isneginf(second)).any(axis=-1)
    return np.where(infinite, np.inf, loss[..., 0])
