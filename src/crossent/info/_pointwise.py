"""Elementwise measures: surprisal, binary entropy and binary cross-entropy.

Here each entry is a probability on its own (of an event, or of the positive class of
a Bernoulli variable), so there is no class axis and no normalisation to check: each
entry must be finite and in [0, 1]. NumPy float32/float64 inputs take the fused
elementwise kernel of ``_fused.py`` where Numba is installed (:func:`_evaluate`),
everything else the generic kernels of ``_numerics.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from .._checks import check_base, check_eps, check_flag, check_probabilities, log_base_in
from .._numerics import (
    binary_cross_grad_terms,
    binary_cross_terms,
    binary_entropy_terms,
    surprisal_terms,
)
from .._torch_host import call_on_host, routable
from .._xp import Array, compute_dtype_weak, finalize, namespace, to_float32
from ..errors import InputError
from . import _fused

__all__ = ["binary_cross_entropy", "binary_cross_entropy_grad", "binary_entropy", "surprisal"]


def _probabilities(
    *args: object, names: tuple[str, ...], validate: bool
) -> tuple[ModuleType, list[Array], Any]:
    validate = check_flag(validate)
    xp, arrays = namespace(*args, names=names)
    shapes = [tuple(a.shape) for a in arrays]
    if len(set(shapes)) > 1:
        try:
            np.broadcast_shapes(*shapes)
        except ValueError:
            listed = " and ".join(f"`{n}` {s}" for n, s in zip(names, shapes, strict=True))
            raise InputError(f"shapes must broadcast; got {listed}") from None
    # A Python float is weak: it takes the other argument's computing dtype, so
    # ``binary_cross_entropy(x, 0.3)`` of a float32 ``x`` is float32, as with ``1`` (it
    # was float64; hostile pass arrayapi2).
    dtype = compute_dtype_weak(args, tuple(arrays), xp=xp, names=names)
    arrays = [xp.astype(a, dtype) if a.dtype != dtype else a for a in arrays]
    if validate:
        _check_all(tuple(arrays), names=names, xp=xp)
    return xp, arrays, dtype


def surprisal(p: object, /, *, base: float | None = None, validate: bool = True) -> Array:
    r"""Surprisal (self-information) of events of probability ``p``, elementwise.

    .. math:: I(p) = -\log p, \qquad I(0) = +\infty

    Parameters
    ----------
    p : array_like
        Probabilities of the events, in [0, 1], any shape.
    base : float, optional
        None for nats (default), 2 for bits.
    validate : bool, optional
        Check that entries are finite and in [0, 1]. Default True.

    Returns
    -------
    array, same shape as ``p``
        :math:`I(p)` of each event; a NumPy scalar for scalar input.

    Raises
    ------
    InputError
        NaN, infinite, negative or greater-than-one entries (index and value named),
        or a bad ``base``.

    See Also
    --------
    entropy : the expected surprisal.

    Notes
    -----
    Under autodiff (torch, JAX) the derivative is :math:`-1/p`: :math:`-\infty` at
    :math:`p = 0`, the one-sided derivative (docs: "Gradients at 0 and 1").

    References
    ----------
    .. [1] C. E. Shannon, "A Mathematical Theory of Communication", Bell System
       Technical Journal 27 (1948), doi:10.1002/j.1538-7305.1948.tb01338.x.

    Examples
    --------
    >>> import crossent
    >>> print(crossent.surprisal(0.125, base=2))  # 1 in 8: three bits
    3.0
    >>> print(crossent.surprisal([1.0, 0.5, 0.0], base=2))
    [ 0.  1. inf]
    """
    if type(p) is not np.ndarray and routable(p):  # (small CPU tensors: the host route)
        hosted = call_on_host(surprisal, locals(), 1)
        if hosted is not None:
            return hosted
    log_base = check_base(base)
    return _evaluate(
        _fused.SURPRISAL, surprisal_terms, p, base=base, log_base=log_base, validate=validate
    )


def binary_entropy(p: object, /, *, base: float | None = None, validate: bool = True) -> Array:
    r"""Entropy of Bernoulli variables with success probability ``p``, elementwise.

    .. math:: h(p) = -p \log p - (1 - p) \log (1 - p)

    Parameters
    ----------
    p : array_like
        Success probabilities of the Bernoulli variables, in [0, 1], any shape.
    base : float, optional
        None for nats (default), 2 for bits (a fair coin has 1 bit).
    validate : bool, optional
        Check that entries are finite and in [0, 1]. Default True.

    Returns
    -------
    array, same shape as ``p``
        :math:`h(p) \in [0, \log 2]` of each variable; a NumPy scalar for scalar input.

    Raises
    ------
    InputError
        Entries outside [0, 1], NaN or inf; a bad ``base``.

    See Also
    --------
    entropy : the same for ``[p, 1 - p]`` along a class axis.
    binary_cross_entropy

    Notes
    -----
    :math:`\log(1-p)` is evaluated as ``log1p(-p)``, exact for small ``p``. Under
    autodiff (torch, JAX) the derivative is :math:`h'(p) = \log((1-p)/p)`, the one-sided
    derivative at the ends: :math:`+\infty` at 0, :math:`-\infty` at 1 (docs:
    "Gradients at 0 and 1").

    Examples
    --------
    >>> import crossent
    >>> print(crossent.binary_entropy([0.5, 1.0, 0.0], base=2))
    [1. 0. 0.]
    """
    if type(p) is not np.ndarray and routable(p):  # (small CPU tensors: the host route)
        hosted = call_on_host(binary_entropy, locals(), 1)
        if hosted is not None:
            return hosted
    log_base = check_base(base)
    return _evaluate(
        _fused.BINARY_ENTROPY,
        binary_entropy_terms,
        p,
        base=base,
        log_base=log_base,
        validate=validate,
    )


def binary_cross_entropy(
    p: object,
    q: object,
    /,
    *,
    base: float | None = None,
    eps: float | None = None,
    validate: bool = True,
) -> Array:
    r"""Binary cross-entropy of predicted probabilities ``q`` for targets ``p``, elementwise.

    .. math:: \mathrm{BCE}(p, q) = -p \log q - (1 - p) \log (1 - q)

    ``p`` is the true probability of the positive outcome (the label ``y`` in
    {0, 1}, or a soft target in [0, 1]); ``q`` is the model's (``ŷ``).

    Parameters
    ----------
    p : array_like
        Targets in [0, 1].
    q : array_like
        Predicted probabilities in [0, 1]; broadcasts against ``p``.
    base : float, optional
        None for nats (default), 2 for bits.
    eps : float in (0, 0.5], optional
        Opt-in compatibility with tutorial code that clips ``q`` to
        ``[eps, 1 - eps]``. **A distortion**: the true value at ``q = 0`` or
        ``q = 1`` is ``+inf`` (or 0), not a large finite number.
    validate : bool, optional
        Check that both inputs are finite and in [0, 1]. Default True.

    Returns
    -------
    array, the broadcast shape of ``p`` and ``q``
        Unreduced: take the mean yourself.

    Raises
    ------
    InputError
        Entries outside [0, 1], NaN, inf, shapes that do not broadcast, bad options.

    See Also
    --------
    cross_entropy : the same for distributions along a class axis.
    torch.nn.functional.binary_cross_entropy : takes ``(input, target)``, the reverse
        order, and clamps the logarithm at -100.

    Notes
    -----
    :math:`\log(1-q)` is evaluated as ``log1p(-q)``, exact for small ``q``.
    ``0 \log 0 = 0``, so a confident correct prediction (``p = q = 1``) costs 0.
    Under autodiff (torch, JAX) the gradients at ``q = 0`` and ``q = 1`` are the
    one-sided derivatives: in ``q`` those of :func:`binary_cross_entropy_grad`, in ``p``
    :math:`\log((1 - q)/q)`, :math:`+\infty` at ``q = 0`` and :math:`-\infty` at
    ``q = 1`` (docs: "Gradients at 0 and 1").

    Examples
    --------
    The seeds' examples (nats):

    >>> import crossent
    >>> print(crossent.binary_cross_entropy(1, [0.95, 0.5, 0.05]).round(4))
    [0.0513 0.6931 2.9957]
    >>> print(crossent.binary_cross_entropy(1, 0.0))  # exact: no epsilon
    inf
    """
    if type(p) is not np.ndarray and routable(p):  # (small CPU tensors: the host route)
        hosted = call_on_host(binary_cross_entropy, locals(), 2)
        if hosted is not None:
            return hosted
    log_base = check_base(base)
    clip = check_eps(eps)
    if clip is not None and clip > 0.5:  # [eps, 1 - eps] empty: q was clipped to 1 - eps
        raise InputError(
            f"`eps` must be in (0, 0.5] or None for binary_cross_entropy: it clips `q` to "
            f"[eps, 1 - eps], which is empty for eps > 0.5; got {eps!r}"
        )
    if clip is not None:  # the distortion has no fused twin
        xp, arrays, _ = _probabilities(p, q, names=("p", "q"), validate=validate)

        def clipped(p_arr: Array, q_arr: Array) -> Array:
            q_arr = xp.clip(q_arr, clip, 1.0 - clip)
            return _in_unit(binary_cross_terms(p_arr, q_arr, xp=xp), base, log_base, xp=xp)

        return _exact(clipped, arrays)
    return _evaluate(
        _fused.BINARY_CROSS_ENTROPY,
        binary_cross_terms,
        p,
        q,
        base=base,
        log_base=log_base,
        validate=validate,
    )


def binary_cross_entropy_grad(
    p: object, q: object, /, *, base: float | None = None, validate: bool = True
) -> Array:
    r"""Gradient of :func:`binary_cross_entropy` with respect to the predictions ``q``.

    .. math:: \frac{\partial\,\mathrm{BCE}}{\partial q} = -\frac{p}{q} + \frac{1-p}{1-q}
              = \frac{q - p}{q\,(1 - q)}

    Each term is 0 where its weight (``p`` or ``1 - p``) is 0, so the gradient is finite
    wherever the loss is: at ``p = q = 0`` it is 1, at ``p = q = 1`` it is -1, and it is
    ``-inf`` (``+inf``) only where ``q = 0 < p`` (``q = 1 > p``), where the loss is infinite.

    Parameters
    ----------
    p, q, base, validate
        As in :func:`binary_cross_entropy`.

    Returns
    -------
    array, the broadcast shape of ``p`` and ``q``

    Raises
    ------
    InputError
        As in :func:`binary_cross_entropy`.

    See Also
    --------
    binary_cross_entropy, sigmoid_cross_entropy_grad : the gradient with respect to logits,
        :math:`\sigma(x) - p`, which is better conditioned.

    Examples
    --------
    >>> import crossent
    >>> print(crossent.binary_cross_entropy_grad(1.0, [0.5, 0.8]))
    [-2.   -1.25]
    >>> print(crossent.binary_cross_entropy_grad(0.0, 0.0))  # finite at p = q = 0
    1.0
    """
    if type(p) is not np.ndarray and routable(p):  # (small CPU tensors: the host route)
        hosted = call_on_host(binary_cross_entropy_grad, locals(), 2)
        if hosted is not None:
            return hosted
    log_base = check_base(base)
    return _evaluate(
        _fused.BINARY_CROSS_GRAD,
        binary_cross_grad_terms,
        p,
        q,
        base=base,
        log_base=log_base,
        validate=validate,
    )


def _evaluate(
    which: int,
    terms: Callable[..., Array],
    *args: object,
    base: float | None,
    log_base: float | None,
    validate: bool,
) -> Array:
    """``terms(*args)`` in the requested unit: from the fused kernel ``which`` where it
    applies (its screen standing in for the validation, which runs in full only when an
    entry is suspect, to raise its message), else from the generic ``terms``."""
    names = ("p", "q")[: len(args)]
    validate = check_flag(validate)
    xp, arrays, _ = _probabilities(*args, names=names, validate=False)
    flat = _fused_flat(arrays[0], arrays[-1])
    if flat is None:
        if validate:
            _check_all(tuple(arrays), names=names, xp=xp)
        return _exact(lambda *a: _in_unit(terms(*a, xp=xp), base, log_base, xp=xp), arrays)
    p_flat, q_flat, shape = flat
    values, suspect = _fused.pointwise(
        p_flat, q_flat, which=which, log_base=log_base, screen=validate
    )
    if suspect:
        _check_all(tuple(arrays), names=names, xp=xp)
    return values.reshape(shape) if shape else values[0]


def _in_unit(nats: Array, base: float | None, log_base: float | None, *, xp: ModuleType) -> Array:
    """``nats`` in the unit of ``base`` (``log_base`` its float64 log), a long double's
    divided by the base's long double log (:func:`log_base_in`)."""
    return finalize(nats, xp=xp, log_base=log_base_in(base, log_base, nats.dtype))


def _exact(compute: Callable[..., Array], arrays: list[Array]) -> Array:
    """``compute(*arrays)``; for NumPy arrays computed in float32, on float64 copies, the
    result rounded to float32 once (issue 13: the generic terms in float32 were up to
    thousands of ulps off the float64 truth for the gradient, whose quotients cancel)."""
    if type(arrays[0]) is np.ndarray and arrays[0].dtype == np.float32:
        return to_float32(compute(*(np.asarray(a, np.float64) for a in arrays)))
    return compute(*arrays)


def _check_all(arrays: tuple[Array, ...], *, names: tuple[str, ...], xp: ModuleType) -> None:
    for name, a in zip(names, arrays, strict=True):
        check_probabilities(a, name=name, xp=xp)


def _fused_flat(p: Array, q: Array) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]] | None:
    """``p`` and ``q`` broadcast and flattened to 1-D without a copy for the fused
    kernel, with their broadcast shape; None where it does not take them
    (``_fused.operands``, ``_fused.reshaped``)."""
    pair = _fused.operands(p, q)
    if pair is None:
        return None
    shape = pair[0].shape
    if len(shape) == 1:
        return pair[0], pair[1], shape
    p_flat, q_flat = (_fused.reshaped(x, (-1,)) for x in pair)
    return None if p_flat is None or q_flat is None else (p_flat, q_flat, shape)
