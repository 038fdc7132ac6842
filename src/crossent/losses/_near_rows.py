r"""Distillation rows whose teacher and student nearly agree (issue 13 follow-up).

With :math:`p` the first distribution of the KL (the teacher for ``'forward'``) and
:math:`d_c = D_c/T` the log-ratio of the second to it up to a constant (:math:`D = z -
v` forward, :math:`v - z` reverse; :math:`z` the student's logits, :math:`v` the
teacher's logits or :math:`\log t`), the common path's terms :math:`p_c(\log p_c -
\log q_c)` are of the size of :math:`\log C`, their sum of :math:`\tfrac12
\operatorname{Var}_p(d)`: at :math:`T = 10^8` on logits of size 1 the KL is
:math:`10^{-17}`, its rounding error :math:`10^{-16}`, and :math:`T^2 D` any number
(negative too); at :math:`T = 10^{306}`, 0. Here, for any shift :math:`c` and
:math:`u = d - c` (exactly, :math:`\varphi(u) = e^u - 1 - u \ge 0`):

.. math:: D(p\,\|\,q) = \log \mathrm E_p[e^u] - \mathrm E_p[u]
          = \Phi + \psi(m + \Phi),\qquad m = \mathrm E_p[u],\quad
          \Phi = \mathrm E_p[\varphi(u)],\quad \psi(y) = \log(1 + y) - y

(:math:`\mathrm E_p` over the weights as rounded, :math:`\sum_c p_c` divided out: the
KL of such weights against :math:`p\,e^{d}` renormalised moves only by their relative
error). With :math:`c = \mathrm E_p[d]`, :math:`m` is a rounding residual that enters
only squared (:math:`\psi(y) = -y^2/2 + \dots`), and :math:`\Phi` a sum of
nonnegative terms: nothing cancels. Everything is formed in units of :math:`T`, from
:math:`U = D - TC`, so that no :math:`T^2` and no :math:`u^2` leaves the range:

.. math:: T^2 D = F - (M + F/T)^2\,\big(\tfrac12 - \tfrac y3 + \tfrac{y^2}4 - \dots\big),
          \qquad F = \mathrm E_p\big[U^2 h(U/T)\big],\ h(x) = \varphi(x)/x^2,\quad
          M = \mathrm E_p[U],\quad y = (M + F/T)/T

(:math:`h` by its series for :math:`|x| < 1/2`; for larger :math:`|x|`, or :math:`|y|
\ge 2^{-7}`, the direct forms times :math:`T^2` by ``times_temperature_squared``, and
:math:`p e^x` as :math:`e^{\log p + x}`). A class whose weight :math:`p_c` is 0 in
float64 (it underflows, or its gap passes the range) is left out of these sums, and
the second side's mass :math:`Q_B` on such classes enters as :math:`-\log(1 - Q_B)`
(:func:`_lost_mass`; its :math:`e^{\log p + x}` was :math:`\infty - \infty` or the
difference of two numbers past :math:`10^{292}`). The shift is taken twice (the mean,
then the mean of what is left), so that :math:`U` of a dominant class is not the
rounding of the first. The forward gradient :math:`T(q - p) = T p \odot
\operatorname{expm1}(u - \log\mathrm E_p[e^u])` is :math:`p \odot
a\,\frac{\operatorname{expm1}(a/T)}{a/T}` with :math:`a = W - T\log\mathrm
E_p[e^{W/T}]`, :math:`W` the log-ratio :math:`D` shifted at the top class of
:math:`p` and centred on the classes not moved far (:func:`_tempered_log_mean`;
where :math:`|a|/T \ge 1/2`, :math:`T(q - p)` itself: no cancellation there); the
reverse one is ``_far_gaps.reverse_distillation_gradient64``, which holds neither a gap nor
:math:`T` (in other namespaces, its twin :math:`-p \odot (U - M)`). Float64 NumPy
rows are formed by these formulas compiled (``_near_rows_numba``), where Numba is.

Every :math:`\log p` here is a pair :math:`h + l` (:func:`softmax_pair`: the gap
:math:`x_c - m` and the shift by :math:`\ell` by TwoSum, the quotient's remainder
:math:`(d - qT)/T` exact) and :math:`e^{h + l} = e^h(1 + l)`; where :math:`|x| \ge 1/2`,
:math:`x = U/T` and :math:`W/T` are pairs too. A rounded :math:`\log p_c` put
:math:`|\log p_c|\,2^{-53}` into :math:`p_c`: a class some 120 below the top, whose
mass is the whole KL, was 45 to 87 units of :math:`2^{-53}` off (issue 13, branch
nearrows2; ``benchmarks/check_near_rows_far_class.py``). That work is done where it is
used (issue 13, branch nearfast1: it had doubled the array formulas' time): the far
classes' pairs (:math:`|x| \ge 1/2`) at those classes only (:func:`_only_where`), the
pairs' last TwoSum, the second side's weights and the forward gradient's student only
where asked; NumPy skips each selection whose mask is all one way (:func:`_pick`,
:func:`_kept`), PyTorch CPU and eager JAX read whether a mask has an entry
(:func:`_any_entry`), GPU and traced arrays form every class. The bits are those of the
formulas formed everywhere (``tests/losses/test_issue13_near_rows_numpy_shortcuts.py``).

Which rows: those whose common-path KL (before :math:`T^2`) is below
:data:`KL_FLOOR`, for the loss, and for the gradient those whose spread is below
:data:`SPREAD_FLOOR` times the first distribution's largest entry, or whose KL is
below :data:`KL_FLOOR` (:func:`forward_rows_flagged`, both directions: forward
:math:`\max_c |s_c - t_c|` against :math:`\max_c t_c`, reverse :math:`\max_c
|s_c(\log s_c - \log t_c - D)|` against :math:`\max_c s_c`); each
:func:`formable` (finite logits and :math:`D`, or classes masked on both sides:
dropped from both distributions, exactly). Elsewhere the common path's error is at
most some :math:`2^{12}\varepsilon\log C` of its value (the
loss) or of the row's largest entry (the gradient), and its bits stay. The lean path's
compiled steps (``_small_targets_numba``) hand such a call back before writing; its
caller (``_small_distill``) then forms the call as the full path (``_distill``) does.
Other namespaces than NumPy form every row here in their own operations and pick the
flagged ones (one host read of whether there is one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import NamedTuple

import numpy as np

from .._double_double import split, two_sum
from .._xp import (
    Array,
    array_namespace,
    cannot_copy_to_host,
    device,
    is_tensor,
    numpy_errstate,
    settled,
)
from . import _cpu_kernels
from ._dominant_entry import dominant_from_others
from ._far_gaps import (
    reverse_distillation_gradient64,
    times_temperature_squared,
)

__all__ = [
    "CANCEL_SPREAD",
    "FUSED_SPREAD",
    "KL_FLOOR",
    "NEAR_CEILING",
    "NEAR_SPREAD",
    "SPREAD_FLOOR",
    "NearRows",
    "exact_forward_gradient",
    "formable",
    "forward_rows_flagged",
    "given_mass",
    "rows_to_form",
    "softmax_pair",
    "spread_and_top",
    "spread_is_small",
]

KL_FLOOR = 2.0**-20
r"""Below this common-path KL (nats, before :math:`T^2`) a row's loss and reverse
gradient are formed here: above it, the common path's absolute error (about
:math:`2\varepsilon\log C`) is at most :math:`2^{21}\varepsilon\log C` of the KL
(:math:`5\cdot 10^{-10}\log C`: below half a float32 ulp for any :math:`C`, and what
the common path has always given a float64 row there).  A floor of :math:`2^{-10}`
(:math:`2^{11}\varepsilon\log C`) sent rows of a student near its teacher at an
ordinary temperature here too, late in training say: a call of one such row of 10
took 100 us instead of 6 (64 x 100: 257 against 39 us), the NumPy formulas of this
module being many small operations.
``_small_targets_numba`` compiles it in: after changing it, touch that file."""

NEAR_CEILING = 2.0**-10
r"""Below this common-path KL (nats, before :math:`T^2`), and at or above
:data:`KL_FLOOR`, a row's loss is formed again over the centred log-ratio, one pass
more (``_centred_kl_numba``; in other namespaces than NumPy, here): there the common
path's absolute error, some :math:`2\varepsilon\log C`, is more than
:math:`2^{11}\varepsilon\log C` of the KL (issue 13, branch distillnear2: rows of
1e-5 were 1e4 to 1e6 ulps off). Compiled in as :data:`KL_FLOOR` (``_distill_numba``,
``_small_targets_numba``, ``_near_rows_numba``: touch them after changing it)."""

SPREAD_FLOOR = 2.0**-15
r"""Below this :math:`\max_c|s_c - t_c| / \max_c t_c` a row's forward gradient is
formed here (above it, the common path's error is at most some
:math:`2^{17}\varepsilon(1 + \log C)` of the row's largest entry: below half a
float32 ulp of it for any :math:`C`; :data:`KL_FLOOR` says why not :math:`2^{-5}`).
The reverse gradient's rows too, by the spread of :math:`s \odot (\log s - \log t -
D)` against :math:`\max_c s_c` (:func:`forward_rows_flagged`). ``_distill_numba``,
``_near_rows_numba`` and ``_small_targets_numba`` compile it in: after changing it,
touch them."""

NEAR_SPREAD = 2.0**-10
r"""No row whose KL is below :data:`KL_FLOOR` has a :math:`|s_c - t_c|` reaching this
(Pinsker: :math:`|s_c - t_c| \le \tfrac12\sum_k |s_k - t_k| \le \sqrt{D/2} <
2^{-10.5}`): the forward gradient's screen for such rows (:func:`forward_rows_flagged`).
``_small_targets_numba``'s screen (``tempered_difference64``) compiles it in: after
changing it, touch that file."""

CANCEL_SPREAD = 0.5
r"""Below this :math:`\max_c |s_c - t_c| / \max_c t_c` a float64 forward gradient row is
formed without the difference :math:`s - t` (``_distill_numba._exact_forward_row``: the
fused kernels' rows; NumPy's by :class:`NearRows`' compiled gradient, which takes that
formula; ``crossent.torch``'s generic path by its array twin :func:`exact_forward_gradient`,
``_distill.NearGradients``' ``cancelling`` rows, branch distfwd2): :math:`s - t` of the
softened rows errs by an ulp or two of :math:`\max_c t_c`,
some :math:`\max_c t_c / \max_c |s_c - t_c|` units of the row's largest entry (99 and
134 on rows of two classes of :math:`N(0, 1)` at :math:`T = 4` and 8; issue 13, branch
distfwd1). ``_distill_numba`` and ``_near_rows_numba`` compile it in: after changing
it, touch them."""

FUSED_SPREAD = math.inf
r"""Below this :math:`\max_c |s_c - t_c| / \max_c t_c` (and at or above
:data:`SPREAD_FLOOR`'s) a float64 forward row of ``crossent.torch``'s generic path takes
the fused kernels' gradient, not autograd's :math:`T(s - t)` of the softened rows
(``_distill.NearGradients``' ``cancelling`` rows; issue 13, branch distfwd3; branch
distfwd2 took those below :data:`CANCEL_SPREAD`'s): on the host the forward kernel's
(``_distill_numba.distillation_forward_gradient_kernel``: its one pass, and
:func:`_distill_numba._exact_forward_row`'s formula below :data:`CANCEL_SPREAD`: the
2-D op's bits), elsewhere :func:`exact_forward_gradient` where it holds. Every row: on
1995 random rows of 2 to 200 classes of a spread at or above :math:`\max_c t_c/2`
(mpmath, units of :math:`2^{-53}` of the row's largest entry) autograd's errs by up to
489 units from :math:`\max_c t_c/2` to :math:`\max_c t_c` and 142 past it, the one
pass by up to 8.1 and 4.7; on the rows of ``benchmarks/check_distill_forward_exact.py``
9.8 against 4.0. (The formula holds on part of the first band only, :math:`s_j \ge
t_j/2` at the teacher's top class :math:`j`, where it errs by up to 4.7 against the one
pass's 6.6; the kernels keep the one pass there, RESULTS.md.)"""

_H = tuple(1.0 / math.factorial(k) for k in range(17, 1, -1))
r""":math:`1/k!` for :math:`k = 17, \dots, 2`: :math:`h(x) = \sum_{k \ge 2} x^{k-2}/k!`
by Horner's rule, to an ulp for :math:`|x| < 1/2` (the first term left out is below
:math:`2^{-60}` of the sum)."""

_PSI = tuple((-1.0) ** k / (k + 2) for k in range(7, -1, -1))
r"""The bracket of :math:`\psi(y) = -y^2\sum_{k \ge 0} (-y)^k/(k + 2)`, :math:`k = 7,
\dots, 0`: to an ulp for :math:`|y| < 2^{-7}`."""

_SERIES_X = 0.5
_SERIES_Y = 2.0**-7
_EXPM1_RANGE = 709.0
r"""The largest :math:`x` whose :math:`\operatorname{expm1}(x)` is formed (finite in
float64); past it :math:`p\,e^x` as :math:`e^{\log p + x}`."""


def spread_is_small(difference: Array, teacher: Array, xp: ModuleType) -> Array:
    r"""Per row (classes last), whether :math:`\max_c |s_c - t_c|` (``difference``
    :math:`s - t`) is below :data:`SPREAD_FLOOR` times :math:`\max_c t_c` (``teacher``):
    the forward gradient's rows to form here (the reverse one's: ``difference``
    :math:`s \odot (\log s - \log t - D)`, ``teacher`` :math:`s`,
    :func:`forward_rows_flagged`). :math:`\max_c |d_c|` is taken as
    :math:`\max(\max_c d_c, -\min_c d_c)`, the same number with no array of
    :math:`|d|`; a NaN makes it False."""
    spread, top = spread_and_top(difference, teacher, xp)
    return spread < SPREAD_FLOOR * top


def spread_and_top(difference: Array, teacher: Array, xp: ModuleType) -> tuple[Array, Array]:
    r"""Per row (classes last), :math:`\max_c |d_c|` of ``difference`` and :math:`\max_c
    t_c` of ``teacher``: the numbers that :func:`spread_is_small` (:data:`SPREAD_FLOOR`)
    and the cancelling rows' rule (:data:`CANCEL_SPREAD`, ``_distill.NearGradients``)
    compare, formed once for both."""
    spread = xp.maximum(xp.max(difference, axis=-1), -xp.min(difference, axis=-1))
    return spread, xp.max(teacher, axis=-1)


def forward_rows_flagged(
    difference: Array, teacher: Array, row_kl: Callable[[], Array], xp: ModuleType
) -> Array:
    r"""Per row, whether to form its gradient here (both directions: the one rule):
    :func:`spread_is_small`, or a common-path KL (``row_kl()``, before :math:`T^2`)
    below :data:`KL_FLOOR`, as the fused kernels and ``crossent.torch``'s CPU op flag
    them (their kind 1 and their backward's flags). Forward: ``difference`` :math:`s -
    t`, ``teacher`` :math:`t`. Reverse: ``difference`` the common path's gradient
    before :math:`T`, :math:`s \odot (\log s - \log t - D(s\,\|\,t))` (:math:`s - t`
    to first order: its entries cancel as :math:`s - t` does), ``teacher`` :math:`s`,
    the KL's first distribution: student logits ``[0, log1p(-2.9e-5) + 1e-7,
    log(2.9e-5) - 70]`` beside teacher logits ``[0, log1p(-2.9e-5), log(2.9e-5)]``
    (:math:`D(s\,\|\,t) = 1.5\cdot 10^{-5}`, past the floor) were 4.7e6 units of
    :math:`2^{-53}` of the row's largest entry off on the NumPy paths, 7.4e5 on the
    fused kernels, flagged by their KL alone (issue 13, branch distillrev1). Between
    the two floors :math:`s - t` cancels too: student logits ``[1.932786603588886,
    1.0635557457740161, 1.2451703584515783]`` beside teacher logits
    ``[1.9327988036519401, 1.0635083775580856, 1.2452478489298584]`` (:math:`T = 1/2`,
    a spread of 1.01 floors) were 29 902 units of :math:`2^{-53}` of the row's largest
    entry off, the top entry as minus the others' sum (``_dominant_entry``) summing
    their errors, against 2.4 by the CPU op (issue 13, branch distillrule13). NumPy:
    ``row_kl`` is called only where a row's spread is below :data:`NEAR_SPREAD` (no
    row of a KL below the floor has a larger one: the common case costs nothing)."""
    spread = xp.maximum(xp.max(difference, axis=-1), -xp.min(difference, axis=-1))
    flagged = spread < SPREAD_FLOOR * xp.max(teacher, axis=-1)
    if xp is np and not np.any(spread < NEAR_SPREAD):
        return flagged
    return xp.logical_or(flagged, row_kl() < KL_FLOOR)


def rows_to_form(
    flagged: np.ndarray, student: np.ndarray, teacher: np.ndarray
) -> np.ndarray | None:
    """The rows of the mask ``flagged`` (batch shape) that the functions here can form:
    :func:`formable` (classes last; in float64, as they are formed); None for none.
    Where every row is flagged (the common case: one row, or a student near its
    teacher throughout), no copy of them (issue 13: a row of 10 spent 9 us here)."""
    if not flagged.any():
        return None
    if flagged.all():
        rows = np.asarray(formable(_wide(student), _wide(teacher), np))
        return rows if rows.any() else None
    rows = np.array(flagged)
    rows[rows] = formable(_wide(student[rows]), _wide(teacher[rows]), np)
    return rows if rows.any() else None


def _wide(x: np.ndarray) -> np.ndarray:
    """``x`` in float64 (no copy of float64): the rows' dtype here."""
    return np.asarray(x, dtype=np.float64)


def formable(student: Array, teacher: Array, xp: ModuleType) -> Array:
    r"""Per row (classes last), whether the functions here can form it: every class
    finite on both sides (a finite difference) or ``-inf`` on both (a masked class), one
    class finite. A class masked on both sides has :math:`p_c = q_c = 0`: the row's KL
    and gradient are those of the row without it, which the formulas give with its
    :math:`D_c` taken as 0 (:func:`_parts`; its weight :math:`p_c = 0` then multiplies
    finite numbers only, and its gradient is 0). A ``-inf`` on one side only is not a
    near row (:math:`D = \infty`, or a student's mass where the teacher has none)."""
    # NumPy's warnings off (``numpy_errstate``: array-api-strict too, issue 13: a masked
    # class's -inf - -inf warned there), for the values no branch takes
    with numpy_errstate(student, xp, all="ignore"):
        difference = student - teacher
        finite = xp.isfinite(difference)
        masked = xp.logical_and(student == -math.inf, teacher == -math.inf)
        every = xp.all(xp.logical_or(finite, masked), axis=-1)
        return xp.logical_and(every, xp.any(finite, axis=-1))


def _horner(x: Array, coefficients: tuple[float, ...], xp: ModuleType) -> Array:
    r""":math:`\sum_k a_k x^k` with ``coefficients`` from the highest power down (NumPy:
    in place from :math:`a_0 x + a_1`, the same operations; issue 13, branch
    nearfast1)."""
    if type(x) is np.ndarray:
        total = x * coefficients[0]
        total += coefficients[1]
        for a in coefficients[2:]:
            total *= x
            total += a
        return total
    total = xp.full_like(x, coefficients[0])
    for a in coefficients[1:]:
        total = total * x + a
    return total


# NumPy's steps of the array formulas (issue 13, branch nearfast1): each is the
# namespace's operation in the same bits, without the temporaries and the selections
# that near rows do not need (a ``where`` of every class whose mask is all one way,
# ``zeros_like``'s fill, ``sum``'s dispatch): on a row of 10 a NumPy call costs some
# 0.4 to 2 us, on 2000 x 1000 a ``where`` 9 ms against a product's 3.


def _zeros(x: Array, xp: ModuleType) -> Array:
    """``xp.zeros_like(x)`` (NumPy: ``np.zeros``, not filled)."""
    if type(x) is np.ndarray:
        return np.zeros(x.shape, dtype=x.dtype)
    return xp.zeros_like(x)


def _pick(mask: Array, a: Array, b: Array, xp: ModuleType) -> Array:
    """``xp.where(mask, a, b)`` (NumPy, ``a`` and ``b`` of ``mask``'s shape: ``a`` or
    ``b`` itself where ``mask`` is all one way; callers do not write into it)."""
    if type(mask) is np.ndarray and mask.shape == a.shape == b.shape:
        if mask.all():
            return a
        if not mask.any():
            return b
    return xp.where(mask, a, b)


def _kept(mask: Array, a: Array, xp: ModuleType) -> Array:
    """``xp.where(mask, a, 0)`` (NumPy, ``a`` of ``mask``'s shape: ``a`` itself where
    ``mask`` is all True; callers do not write into it)."""
    if type(a) is np.ndarray:
        if mask.shape == a.shape and mask.all():
            return a
        return np.where(mask, a, 0.0)
    return xp.where(mask, a, xp.zeros_like(a))


def _zeroed(mask: Array, a: Array, xp: ModuleType) -> Array:
    """``xp.where(mask, 0, a)`` (NumPy: ``a`` itself where ``mask`` has no entry; callers
    do not write into it)."""
    if type(a) is np.ndarray:
        return np.where(mask, 0.0, a) if mask.any() else a
    return xp.where(mask, xp.zeros_like(a), a)


def _row_sum(x: Array, xp: ModuleType) -> Array:
    """``xp.sum(x, axis=-1, keepdims=True)`` (NumPy: ``np.add.reduce``, the same sum
    without ``np.sum``'s dispatch)."""
    if type(x) is np.ndarray:
        return np.add.reduce(x, axis=-1, keepdims=True)
    return xp.sum(x, axis=-1, keepdims=True)


def _only_where(
    mask: Array, formed: Callable[[Callable[[Array], Array]], Array], like: Array
) -> Array:
    r"""``formed(pick)`` at the entries of ``mask``: ``formed`` takes its arrays (of
    ``mask``'s shape) as ``pick(a)`` and forms them elementwise; 0 (of ``like``'s dtype)
    where ``mask`` has no entry (:func:`_any_entry`: ``formed`` not called). NumPy:
    ``pick(a)`` is ``a[mask]``, the result 0 elsewhere: the same bits at ``mask`` for
    the formulas' far classes, rare on near rows (issue 13, branch nearfast1: the
    pairs' remainders and exponentials of every class were a third of the array
    formulas' time). Other namespaces: ``formed`` of the whole arrays, its values
    elsewhere too (the callers pick by ``mask``)."""
    if _any_entry(mask) is False:
        return _zeros(like, array_namespace(like) if type(like) is not np.ndarray else np)
    if type(mask) is not np.ndarray:
        return formed(lambda a: a)
    value = formed(lambda a: a[mask])
    out = np.zeros(mask.shape, dtype=value.dtype)
    out[mask] = value
    return out


def _any_entry(mask: Array) -> bool | None:
    """Whether ``mask`` has a True entry, where reading that on the host waits for no
    device and traces nothing: NumPy, a PyTorch CPU tensor (not under ``torch.compile``
    nor a ``torch.func`` transform), a JAX CPU array not traced; None elsewhere (a GPU's,
    a graph's: the formulas then form every class, as before, and read nothing; issue
    13, branch nearfast1)."""
    if type(mask) is np.ndarray:
        return bool(mask.any())
    if cannot_copy_to_host(mask):  # (JAX tracers, torch.func's tensors, fake tensors)
        return None
    if is_tensor(mask):
        import torch  # (loaded: a tensor)

        if mask.device.type != "cpu" or torch.compiler.is_compiling():
            return None
        return bool(mask.any())
    jax = "jax" in type(mask).__module__
    if jax and all(d.platform == "cpu" for d in mask.devices()):
        return bool(mask.any())
    return None


class _Parts(NamedTuple):
    """The shifted log-ratios of a block of rows (module docstring), keepdims."""

    pairs: Callable[[], tuple[Array, Array]]  # log softmax(first / T): hi, lo (_weights)
    p: Array  # the weights, normalised
    u: Array  # U = D - T c, c = E_p[D] / T (in two passes: a residual shift)
    m: Array  # M = E_p[U], a rounding residual


_SPLIT_RANGE = 2.0**900
r"""The largest :math:`|q|` and :math:`T` whose product :func:`_quotient` splits
(Veltkamp's splitting holds to :math:`2^{996}`); past it the low part is 0 (an
:math:`e^{q}` of such a :math:`q` is 0 or ``inf``)."""


def _quotient(d: Array, temperature: float, xp: ModuleType) -> tuple[Array, Array]:
    r""":math:`d/T` as the pair :math:`q + \mathrm{lo}`: :math:`q = \mathrm{fl}(d/T)` and
    :math:`\mathrm{lo} = (d - qT)/T`, the remainder :math:`(d - q_T) - e_T` of Dekker's
    exact product :math:`qT = q_T + e_T` (the array standard has no FMA; ``_near_rows_numba``
    takes it by one): within some :math:`2^{-104}|q|` of :math:`d/T`. The rounded
    :math:`q` alone put :math:`|q|\,2^{-53}` into :math:`e^q` (issue 13, branch
    nearrows2). lo is 0 where :math:`q` is not finite or past :data:`_SPLIT_RANGE`, and
    where :math:`T` is a power of two (:math:`q` exact), and on rows other than float64
    (a generic call's float32 work: the split is float64's)."""
    q = d / temperature
    exact = math.frexp(temperature)[0] == 0.5  # (a power of two: q exact)
    if exact or not temperature <= _SPLIT_RANGE or q.dtype != xp.float64:
        return q, _zeros(q, xp)  # (float32 rows: Veltkamp's split is float64's)
    # no masks before the last: T is a constant, so autograd's zero through the where
    # meets only sums and products by constants (no 0 * inf), where q is -inf or huge
    if type(q) is np.ndarray:  # (the steps below in place, split's without a barrier)
        return q, _kept(np.abs(q) <= _SPLIT_RANGE, _remainder64(d, q, temperature), xp)
    (product,) = settled(q * temperature)
    a_hi, a_lo = split(q)
    t_hi, t_lo = _split_float(temperature)
    error = ((a_hi * t_hi - product) + a_hi * t_lo + a_lo * t_hi) + a_lo * t_lo
    lo = ((d - product) - error) / temperature
    kept = xp.abs(q) <= _SPLIT_RANGE  # (False at inf and NaN)
    return q, _kept(kept, lo, xp)


def _remainder64(d: np.ndarray, q: np.ndarray, temperature: float) -> np.ndarray:
    r""":func:`_quotient`'s :math:`((d - q_T) - e_T)/T` of NumPy arrays, its operations in
    their order, in place (four arrays, not 16: issue 13, branch nearfast1)."""
    t_hi, t_lo = _split_float(temperature)
    product = q * temperature
    a_hi = q * _VELTKAMP  # c
    a_lo = a_hi - q  # c - q
    a_hi -= a_lo  # c - (c - q)
    np.subtract(q, a_hi, out=a_lo)
    error = a_hi * t_hi
    error -= product
    a_hi *= t_lo
    error += a_hi
    a_hi = np.multiply(a_lo, t_hi, out=a_hi)
    error += a_hi
    a_lo *= t_lo
    error += a_lo
    lo = d - product
    lo -= error
    lo /= temperature
    return lo


_VELTKAMP = 2.0**27 + 1.0
"""Veltkamp's constant for float64 (``_double_double.split``'s)."""


def _split_float(x: float) -> tuple[float, float]:
    """Veltkamp's splitting of one float (``_double_double.split``'s halves)."""
    c = _VELTKAMP * x
    hi = c - (c - x)
    return hi, x - hi


def _exp_pair(hi: Array, lo: Array, xp: ModuleType) -> Array:
    r""":math:`e^{\mathrm{hi} + \mathrm{lo}}` as :math:`e^{\mathrm{hi}}(1 + \mathrm{lo})`
    (:math:`|\mathrm{lo}|` some ulps of hi); :math:`e^{\mathrm{hi}}` where that is
    ``inf`` (no NaN of ``inf * 0``)."""
    e = xp.exp(hi)
    finite = xp.isfinite(e)
    if type(e) is np.ndarray and finite.all():
        return e + e * lo
    return xp.where(finite, e + xp.where(finite, e, xp.zeros_like(e)) * lo, e)


def _difference(a: Array, b: Array, xp: ModuleType) -> tuple[Array, Array]:
    r""":math:`a - b` as the pair :math:`d + \mathrm{lo}` (TwoSum), lo 0 where :math:`d`
    is not finite (``-inf`` classes: no NaN, for autograd too)."""
    if type(a) is np.ndarray and type(b) is np.ndarray:  # (two_sum's steps, no barrier)
        d = a - b
        b_virtual = d - a
        lo = a - (d - b_virtual)
        lo += -b - b_virtual
        return d, _kept(np.isfinite(d), lo, xp)
    d, lo = two_sum(a, -b)  # (sums only: autograd's zero through the where stays 0)
    return d, xp.where(xp.isfinite(d), lo, xp.zeros_like(lo))


def _exp_of_sum(a: Array, a_lo: Array, b: Array, b_lo: Array, xp: ModuleType) -> Array:
    r""":math:`e^{(a + a_\mathrm{lo}) + (b + b_\mathrm{lo})}` of two pairs (the sum's
    rounding by TwoSum, :func:`_exp_pair`): :math:`p\,e^x` as :math:`e^{\log p + x}`."""
    total, rest = _difference(a, -b, xp)
    return _exp_pair(total, rest + a_lo + b_lo, xp)


def softmax_pair(x: Array, temperature: float, xp: ModuleType) -> tuple[Array, Array, Array]:
    r""":math:`\log\operatorname{softmax}(x/T)` of rows (classes last, keepdims) as the
    pairs ``(hi, lo)``, and :math:`p = \operatorname{softmax}(x/T)` as :math:`e^{\sigma}(1
    + \mathrm{lo}_\sigma)/(1 + S)`, :math:`S` the sum past the top class (one exponential
    a class): ``(hi, lo, p)``, by ``tempered_log_softmax64``'s steps (a gap past the float64
    range in halves where :math:`T > 1`; :math:`\ell` as ``log1p`` of the sum past the
    first top class, of :math:`e^{\sigma}(1 + \mathrm{lo})`), each step's rounding kept
    in lo: the gap :math:`x_c - m` and :math:`\sigma_c - \ell` by TwoSum, the quotient
    by :func:`_quotient`. ``exp`` of a rounded :math:`\log p_c` erred by :math:`|\log
    p_c|\,2^{-53}` relative: rows ``[0, -300]`` beside ``[0, -290]`` at :math:`T = 2.4`
    (:math:`p_1 = e^{-121}`, :math:`T^2 D = 1.8\cdot 10^{-52}`) were 87 units of
    :math:`2^{-53}` off (issue 13, branch nearrows2). ``_near_rows_numba._log_softmax``
    is its twin. NumPy's row sums pairwise (``np.add.reduce``), as its (:func:`_lazy_weights`:
    the pairs formed only where asked)."""
    pairs, p = _lazy_weights(x, temperature, xp)
    return (*pairs(), p)


def _softmax_steps(
    x: Array, temperature: float, xp: ModuleType
) -> tuple[Array, Array, Array, Array, Array]:
    r""":func:`softmax_pair`'s steps: the pair :math:`\sigma + \mathrm{lo}` of
    :math:`(x_c - m)/T`, the mask of each row's first top class, the terms
    :math:`e^{\sigma}(1 + \mathrm{lo})` (0 at the top class) and their row sums
    :math:`S` (keepdims)."""
    ns = xp if xp is np else array_namespace(x)  # (not a caller's bare ``torch`` module)
    numpy = type(x) is np.ndarray
    with numpy_errstate(x, xp, all="ignore"):
        m = np.maximum.reduce(x, axis=-1, keepdims=True) if numpy else None
        if m is None:
            m = ns.max(x, axis=-1, keepdims=True)
        gap, gap_lo = _difference(x, m, xp)
        shifted, lo = _quotient(gap, temperature, xp)
        lo = lo + gap_lo / temperature
        if temperature > 1.0:
            past = xp.isinf(gap) & xp.isfinite(x) & xp.isfinite(m)
            if _any_entry(past) is not False:  # (a gap past the range: rare)
                zeros = xp.zeros_like(x)
                halves = (xp.where(past, x, zeros) * 0.5 - m * 0.5) / temperature
                shifted = xp.where(past, 2.0 * halves, shifted)
                lo = xp.where(past, zeros, lo)
        top = ns.argmax(x, axis=-1, keepdims=True)
        at_top = ns.arange(x.shape[-1], device=device(x)) == top
        e = xp.exp(shifted)  # (<= 1)
        if numpy:
            terms = e * lo
            terms += e
            terms[at_top] = 0.0
        else:
            terms = xp.where(at_top, xp.zeros_like(x), e + e * lo)
        others = _row_sum(terms, xp)
    return shifted, lo, at_top, terms, others


def _parts(
    first: Array, second: Array, temperature: float, xp: ModuleType, given: Array | None = None
) -> _Parts:
    r""":class:`_Parts` of rows: :math:`p = \operatorname{softmax}(\text{first}/T)`
    (:func:`_weights`) and :math:`D = \text{second} - \text{first}` (finite). The shift
    is :math:`\mathrm E_p[D]` and then the mean of what is left, so that :math:`U` of a
    dominant class is not the rounding error of :math:`\mathrm E_p[D]`."""
    pairs, p = _lazy_weights(first, temperature, xp, given)
    # U_c = 0 where p_c = 0 (a class masked on both sides, -inf - -inf, or a gap of
    # ``first`` past the range): each use weighs it by p_c or masks it, and a U_c of
    # 2e308 (then inf - inf in the shifts) made a NaN that autograd's zero through
    # those masks kept (issue 13: T = 1e-100, logits [1, 2] against [-1e308, 1e308])
    absent = p == 0.0
    with numpy_errstate(second, xp, all="ignore"):
        u = second - first
        u = _zeroed(xp.isnan(u) | absent, u, xp)
        for _ in range(2):
            u = u - _row_sum(p * u, xp)
    u = _zeroed(absent, u, xp)
    return _Parts(pairs, p, u, _row_sum(p * u, xp))


def _weights(
    first: Array, temperature: float, xp: ModuleType, given: Array | None = None
) -> tuple[Array, Array, Array]:
    r""":math:`\log p` (the pair ``hi``, ``lo``) and :math:`p = \operatorname{softmax}
    (\text{first}/T)` of rows (keepdims), by :func:`softmax_pair`: :func:`_parts`' and
    :func:`_tempered_log_mean`'s. Formed from ``first`` in every namespace (not from a
    caller's softened rows, whose :math:`\log p` is rounded), but where the caller's
    ``given`` :math:`\log p` is not float64 (a generic call's float32 work: its rows, lo
    0)."""
    pairs, p = _lazy_weights(first, temperature, xp, given)
    return (*pairs(), p)


def _lazy_weights(
    first: Array, temperature: float, xp: ModuleType, given: Array | None = None
) -> tuple[Callable[[], tuple[Array, Array]], Array]:
    r""":func:`_weights` as a function that forms the pairs :math:`\log p` (``hi``,
    ``lo``) and :math:`p`, in the same bits: a caller that needs :math:`\log p` only
    at classes moved far (:func:`_scaled_kl`; NumPy rows seldom have one) or not at
    all (the reverse gradient, :func:`_lost_mass`) skips the pairs' last TwoSum (issue
    13, branch nearfast1)."""
    if given is not None and given.dtype != xp.float64:  # (float32 work: the caller's)
        e = xp.exp(given)
        total = xp.sum(e, axis=-1, keepdims=True)
        return (lambda: (given - xp.log(total), xp.zeros_like(given))), e / total
    shifted, lo, at_top, terms, others = _softmax_steps(first, temperature, xp)
    with numpy_errstate(first, xp, all="ignore"):
        if type(terms) is np.ndarray:
            p = terms / (1.0 + others)
            np.copyto(p, 1.0 / (1.0 + others), where=at_top)
        else:
            p = xp.where(at_top, xp.ones_like(first), terms) / (1.0 + others)

    def pairs() -> tuple[Array, Array]:
        with numpy_errstate(first, xp, all="ignore"):
            hi, rest = _difference(shifted, xp.log1p(others), xp)
            return hi, lo + rest

    return pairs, p


def _tempered_log_mean(
    first: Array,
    second: Array,
    weights: tuple[Array, Array, Array],
    temperature: float,
    xp: ModuleType,
) -> tuple[Array, Array]:
    r""":math:`W` and :math:`\ell = T\log\mathrm E_p[e^{W/T}]` per row (keepdims), the
    forward gradient's :math:`a = W - \ell` (:meth:`NearRows._forward_gradient`),
    ``weights`` :math:`(\log p, p)` of :func:`_weights`: :math:`W = D - D_r - c`
    (:math:`D = \text{second} - \text{first}`, 0 where :math:`p_c = 0`; :math:`r` the
    first top class of :math:`p`; :math:`c` the :math:`p`-mean of :math:`D - D_r` over
    the classes where :math:`|D_c - D_r|/T < 1/2`, the top one among them), and

    .. math:: \ell = G + T\psi(G/T),\qquad G = \mathrm E_p\big[T\operatorname{expm1}(W/T)
              \big],\quad T\operatorname{expm1}(x) = W + W\,x\,h(x)\ (|x| < 1/2)

    (:math:`h`, :math:`\psi` and their switches as :func:`_scaled_kl`'s; elsewhere
    :math:`T\,p\operatorname{expm1}(x)`, or :math:`T(e^{\log p + x} - p)` past
    ``expm1``'s range, and :math:`T\log(1 + y)`). Each term of :math:`G` is one product
    (not :math:`\mathrm E_p[W]` and :math:`\mathrm E_p[W x h(x)]` apart, which cancel
    where a class is moved far: 70 against 69). The shift leaves out the classes moved
    far: :func:`_parts`' mean :math:`\mathrm E_p[D]` moves the bulk's :math:`U` by
    some :math:`70\,T\,p_j` where a class of weight :math:`p_j` is moved down by
    :math:`70T`, and :math:`U - M - T D` then cancels (issue 13, branch nearfwd1); here
    such a class enters :math:`\ell` by its :math:`T p_j\operatorname{expm1}(x_j)`,
    about :math:`-T p_j`, of the size of :math:`a`. The centring of the others (not the
    top class's :math:`D_r` alone) keeps :math:`G`'s terms, whose rounding :math:`\ell`
    and every :math:`a_c` share, as small as :func:`_parts`' (the top class's shift
    alone was up to 2.6 units of the row's largest entry worse on ordinary near rows).
    The rounding of :math:`c` is shared by :math:`W` and :math:`\ell` (:math:`G` is
    formed of the :math:`W` as rounded)."""
    log_p, lo, p = weights
    present = p > 0.0
    t = temperature
    with numpy_errstate(log_p, xp, all="ignore"):
        d = second - first
        d = _zeroed(xp.isnan(d) | xp.logical_not(present), d, xp)
        ns = xp if xp is np else array_namespace(d)
        top = ns.argmax(log_p, axis=-1, keepdims=True)
        if type(d) is np.ndarray:  # (the row's sum of d at its top class and zeros)
            w = d - (np.take_along_axis(d, top, axis=-1) + 0.0)
        else:
            at_top = ns.arange(d.shape[-1], device=device(d)) == top
            w = d - xp.sum(xp.where(at_top, d, xp.zeros_like(d)), axis=-1, keepdims=True)
        # the classes of |W/T| < 1/2 (the top one among them) centred at their mean
        inner = xp.logical_and(present, xp.abs(w / t) < _SERIES_X)
        weights = _kept(inner, p, xp)
        mean = _row_sum(weights * _kept(inner, w, xp), xp)
        w = w - mean / _row_sum(weights, xp)
        x = w / t
        near = xp.abs(x) < _SERIES_X
        h = _horner(_kept(near, x, xp), _H, xp)
        series = p * (w + w * (x * h))

        def far(pick: Callable[[Array], Array]) -> Array:
            # x as a pair: expm1(x + lo) = expm1(x) + e^x lo
            x_, p_ = pick(x), pick(p)
            x_lo = _quotient(pick(w), t, xp)[1]
            inside = x_ <= _EXPM1_RANGE
            m1 = xp.expm1(xp.where(inside, x_, xp.zeros_like(x_)))
            e = _exp_of_sum(pick(log_p), pick(lo), x_, x_lo, xp)
            return xp.where(inside, p_ * (m1 + (m1 + 1.0) * x_lo), e - p_) * t

        apart = _only_where(xp.logical_not(near), far, p)
        terms = _kept(present, _pick(near, series, apart, xp), xp)
        g = _row_sum(terms, xp)
        y = g / t
        small = xp.abs(y) < _SERIES_Y
        bracket = _horner(_kept(small, y, xp), _PSI, xp)
        ell = _pick(small, g - g * (y * bracket), xp.log1p(y) * t, xp)
    return w, ell


def _lost_mass(p: Array, second: Callable[[], Array], xp: ModuleType) -> Array | None:
    r""":math:`Q_B = \sum_{c \in B} q_c` (keepdims), :math:`B` the classes where the
    weights ``p`` are 0 in float64 (:math:`p_c` underflows, or a gap of the first side
    passes the range: teacher logits :math:`\pm 10^{308}`) and ``second()`` the second
    side's probabilities :math:`q` (:func:`_lazy_weights`; NumPy: called only where some
    :math:`p_c` is 0, issue 13, branch nearfast1); None where it is
    0 on every row of NumPy rows (nothing to add). :func:`_parts` drops :math:`B`, so
    :func:`_scaled_kl` is :math:`D(p\,\|\,q')`, :math:`q'` the second side renormalised on the other
    classes, and

    .. math:: D(p\,\|\,q) = D(p\,\|\,q') - \log(1 - Q_B)
              + \textstyle\sum_{c \in B} p_c \log(p_c/q_c),

    the first two :math:`\ge 0` (no cancellation), the last of weights below the
    smallest subnormal, left out (issue 13: teacher logits :math:`[-10^{308},
    10^{308}]` and a student's :math:`[0, 16]` at :math:`T = 1` had :math:`D = 0` and
    gradient 0 here, against :math:`1.125\cdot 10^{-7}` and :math:`\pm 1.125\cdot
    10^{-7}`). ``exp`` of ``-inf`` off :math:`B`: no NaN for autograd."""
    absent = p == 0.0
    if _any_entry(absent) is False:
        return None
    q = second()
    lost = _row_sum(_kept(absent, q, xp), xp)
    if xp is np and not lost.any():
        return None
    return lost


def _times_t(kl_terms: Array, temperature: float, power: int, xp: ModuleType) -> Array:
    """:math:`T^k x` (``power`` :math:`k` of 1 or 2), ``inf`` only where it overflows
    (NumPy; elsewhere :math:`(xT)T`)."""
    if power == 1:
        return kl_terms * temperature
    if xp is np:
        return times_temperature_squared(kl_terms, temperature)
    return (kl_terms * temperature) * temperature


def _scaled_kl(parts: _Parts, temperature: float, power: int, xp: ModuleType) -> Array:
    r""":math:`T^k D(p\,\|\,q)` per row (keepdims), :math:`k` = ``power`` (2: the loss;
    1: :math:`T D`, for the gradient), with :math:`F_k = \mathrm E_p[T^k\varphi(U/T)]`
    and :math:`T^k\psi(y) = -(T y)^2 T^{k-2} (\tfrac12 - \tfrac y3 + \dots)`."""
    t, p, u, m = temperature, parts.p, parts.u, parts.m
    with numpy_errstate(u, xp, all="ignore"):
        x = u / t
        near = xp.abs(x) < _SERIES_X
        # T^2 p phi(x) = (p U)(U h(x)); T p phi(x) = (p U)(x h(x))
        h = _horner(_kept(near, x, xp), _H, xp)
        series = (p * u) * ((u if power == 2 else x) * h)

        def direct(pick: Callable[[Array], Array]) -> Array:
            # p e^x as exp(log p + x) of the pairs (p > 0 here: the classes of p = 0
            # are _lost_mass's; x = U/T as a pair, _quotient)
            x_, p_ = pick(x), pick(p)
            x_lo = _quotient(pick(u), t, xp)[1]
            log_p, lo = parts.pairs()
            e = _exp_of_sum(pick(log_p), pick(lo), x_, x_lo, xp)
            # (inf only where the term is)
            return _times_t(e - p_ - (p_ * x_ + p_ * x_lo), t, power, xp)

        apart = _only_where(xp.logical_not(near), direct, p)
        terms = _kept(p > 0.0, _pick(near, series, apart, xp), xp)
        f = _row_sum(terms, xp)
        ty = m + (f / t if power == 2 else f)
        y = ty / t
        small = xp.abs(y) < _SERIES_Y
        bracket = ty * _horner(_kept(small, y, xp), _PSI, xp)
        psi = -ty * bracket if power == 2 else -y * bracket
        wide = _times_t(xp.log1p(y) - m / t, t, power, xp)
        kl = _pick(small, f + psi, wide, xp)
        # a KL is not negative: a residual below 0 (equal rows, M and F of rounding) is 0
        kl = _kept(kl > 0.0, kl, xp)
    return _pick(xp.isinf(f), f, kl, xp)


def _compiled_loss(rows: NearRows) -> Callable[..., np.ndarray] | None:
    """``_near_rows_numba.near_loss64`` where it forms ``rows``' loss (:func:`_compiled`),
    else None: the NumPy formulas here."""
    compiled = _compiled(rows)
    return None if compiled is None else compiled.near_loss64


def _compiled_gradient(rows: NearRows) -> Callable[..., np.ndarray] | None:
    """``_near_rows_numba.near_gradient64`` where it forms ``rows``' forward gradient
    (:func:`_compiled`), else None: the NumPy formulas here."""
    compiled = _compiled(rows)
    return None if compiled is None else compiled.near_gradient64


def _compiled_reverse_gradient(rows: NearRows) -> Callable[..., np.ndarray] | None:
    """``_near_rows_numba.near_reverse_rows64`` where it forms ``rows``' reverse gradient
    (:func:`_compiled`), else None: ``reverse_distillation_gradient64`` (NumPy)."""
    compiled = _compiled(rows)
    return None if compiled is None else compiled.near_reverse_rows64


def _compiled(rows: NearRows) -> ModuleType | None:
    """``_near_rows_numba`` (imported on first use) where it forms ``rows``: float64
    NumPy rows, no softened rows given, Numba importable; else None."""
    if rows.xp is not np or rows.log_s is not None or rows.log_t is not None:
        return None
    if not (_float64(rows.student) and _float64(rows.teacher)) or not _cpu_kernels.available():
        return None
    from . import _near_rows_numba

    return _near_rows_numba


def _float64(x: object) -> bool:
    """Whether ``x`` is a float64 NumPy array."""
    return isinstance(x, np.ndarray) and x.dtype == np.float64


@dataclass(frozen=True)
class NearRows:
    r"""Rows (rows x classes, float64 for NumPy) of the student's logits and the teacher's
    scores (logits, :math:`\log t` or log-probabilities) to form without the common
    path's cancellation (module docstring), at ``temperature``; in the namespace ``xp``.
    ``log_s``, ``log_t``: the softened student and teacher where the caller has them
    (other namespaces): such rows take the array formulas (the reverse gradient as
    :math:`-p \odot (U - M)`), the weights formed from the scores all the same
    (:func:`softmax_pair`: a caller's rounded :math:`\log p` erred by :math:`|\log
    p|\,2^{-53}`)."""

    student: Array
    teacher: Array
    temperature: float
    xp: ModuleType = np
    log_s: Array | None = None
    log_t: Array | None = None

    def loss(self, *, forward: bool) -> Array:
        """:math:`T^2 D` in nats, one value per row (:func:`_scaled_kl`); 0 for rows that
        are all equal to the teacher's (:meth:`_all_equal`). Float64 NumPy rows are
        formed by the same formula compiled (:func:`_compiled_loss`), where Numba is."""
        t = self.temperature
        compiled = _compiled_loss(self)
        if compiled is not None:  # (its +0 of equal rows without the formula)
            return compiled(self.student, self.teacher, t, forward=forward)
        if self._all_equal():
            return np.zeros(self.student.shape[:-1])
        xp = self.xp
        first, second = (self.teacher, self.student) if forward else (self.student, self.teacher)
        given = (self.log_t, self.log_s) if forward else (self.log_s, self.log_t)
        parts = _parts(first, second, t, xp, given[0])
        kl = _scaled_kl(parts, t, 2, xp)
        lost = _lost_mass(parts.p, lambda: _lazy_weights(second, t, xp, given[1])[1], xp)
        if lost is not None:  # -log(1 - Q_B) >= 0 beside D(p || q') >= 0: no cancellation
            with numpy_errstate(lost, xp, all="ignore"):
                kl = kl + _times_t(-xp.log1p(-lost), t, 2, xp)
        return kl[..., 0]

    def gradient(self, *, forward: bool) -> Array:
        """The gradient of :meth:`loss` in the student's logits (before the reduction's
        scale): :meth:`_forward_gradient`, or :meth:`_reverse_gradient`; 0 for rows that
        are all equal to the teacher's (:meth:`_all_equal`). Float64 NumPy rows are
        formed by the same formula compiled (:func:`_compiled_gradient`), where Numba
        is."""
        compiled = _compiled_gradient(self) if forward else _compiled_reverse_gradient(self)
        if compiled is not None:  # (its +0 of equal rows, the formula's too in reverse)
            return compiled(self.student, self.teacher, self.temperature)
        if self._all_equal():
            return np.zeros(self.student.shape)
        return self._forward_gradient() if forward else self._reverse_gradient()

    def _all_equal(self) -> bool:
        r"""Whether every row of NumPy logits is the teacher's, bit for bit (:math:`D = 0`
        and a gradient of 0, both directions): then the formulas here, which give
        :math:`+0` there (:math:`U = M = F = 0`), are not run (a row of 10 cost 100 us).
        Other namespaces form them (their reverse gradient is :math:`-0`)."""
        return self.xp is np and bool(np.equal(self.student, self.teacher).all())

    def _forward_gradient(self) -> Array:
        r""":math:`T(s - t)` as :math:`t \odot a\,\operatorname{expm1}(a/T)/(a/T)`, :math:`a =
        W - \ell` (:func:`_tempered_log_mean`: :math:`W` the log-ratio :math:`D` shifted,
        :math:`\ell = T\log\mathrm E_t[e^{W/T}]`): no difference of nearly equal probabilities, and
        :math:`T` only divides. Where :math:`|a|/T \ge 1/2` (:math:`s` and :math:`t`
        differ by a factor past 1.6) :math:`T(s - t)` itself. The entry of a top class
        :math:`r` of :math:`t_r > 1/2` is minus the sum of the others
        (``_dominant_entry``: the former :math:`a_r = U_r - M - T D` cancelled there,
        saturated rows up to some 300 units of :math:`2^{-53}` off; kept, the others'
        sum being no worse on the rows measured). The former :math:`a = U - M - T D`
        (:func:`_parts`' mean shift) cancelled at the bulk classes where a little mass
        is moved far: student logits ``[0, log1p(-m) + 1e-7 T, log(m) - 70 T]`` beside
        teacher logits ``[0, log1p(-m), log(m)]``, :math:`m = (2.9\cdot 10^{-5})^T`,
        :math:`T = 1/2` (:math:`a` of 7.3e-6 against :math:`U` and :math:`T D` of 5.1e-4)
        were 64 units of :math:`2^{-53}` of the row's largest entry off, now 2.7 (issue
        13, branch nearfwd1)."""
        xp, t = self.xp, self.temperature
        log_p, lo, p = _weights(self.teacher, t, xp, self.log_t)
        w, ell = _tempered_log_mean(self.teacher, self.student, (log_p, lo, p), t, xp)
        formed_student: list[tuple[Array, Array, Array]] = []

        def student() -> tuple[Array, Array, Array]:
            if not formed_student:  # (the student's pairs formed once, where used)
                formed_student.append(_weights(self.student, t, xp, self.log_s))
            return formed_student[0]

        lost = _lost_mass(p, lambda: student()[2], xp)
        with numpy_errstate(w, xp, all="ignore"):
            a = w - ell
            q = a / t
            near = xp.abs(q) < _SERIES_X
            small = _kept(near, q, xp)
            nonzero = small != 0.0
            if type(small) is np.ndarray and nonzero.all():
                ratio = np.expm1(small) / small
            else:
                ones = xp.ones_like(q)
                ratio = xp.where(nonzero, xp.expm1(small) / xp.where(nonzero, small, ones), ones)
            series = p * (a * ratio)  # T(s' - t), s' the student on the classes of t
            if lost is not None:  # T(s - t) = T(s' - t) - T Q_B s'
                log_s, s_lo, _ = student()
                moved = _exp_of_sum(log_s, s_lo, -xp.log1p(-lost), xp.zeros_like(lost), xp)
                series = series - (lost * t) * moved
            present = p > 0.0
            # s (as the compiled rows' far classes) where |a|/T >= 1/2 or t_c = 0 (NumPy:
            # there only, and not formed where no such class is, the common case)
            wanted = xp.logical_not(xp.logical_and(near, present))
            if _any_entry(wanted) is False:
                grad = series
            else:
                log_s, s_lo, _ = student()
                s = _only_where(wanted, lambda pick: _exp_pair(pick(log_s), pick(s_lo), xp), p)
                apart = _only_where(
                    xp.logical_not(near),
                    lambda pick: (pick(s) - _exp_pair(pick(log_p), pick(lo), xp)) * t,
                    p,
                )
                formed = xp.where(near, series, apart)
                # T s where t_c = 0 (+0 at a class masked on both sides; p * a there is
                # -0 for a < 0)
                grad = xp.where(present, formed, s * t)
        if xp is not np:  # (a caller's bare ``torch`` module has no namespace info)
            xp = array_namespace(grad)
        grad = dominant_from_others(grad, p, log_p, xp=xp)
        if grad.dtype != xp.float64:  # (float32 work: its bits)
            return grad
        exact, valid = exact_forward_gradient(self.student, self.teacher, t, xp)
        valid = xp.logical_and(valid, _centring_cancels(self.teacher, self.student, xp))
        return xp.where(valid, exact, grad)

    def _reverse_gradient(self) -> Array:
        r""":math:`T s \odot (\log s - \log t - D(s\,\|\,t)) = s \odot (d - \bar d)`,
        :math:`d = z - v`: ``_far_gaps.reverse_distillation_gradient64`` (NumPy), or
        :math:`-s \odot (U - M)` of :func:`_parts`; neither holds :math:`T`."""
        xp, t = self.xp, self.temperature
        if self.log_s is None:  # (s of the pairs, softmax_pair)
            s = _lazy_weights(self.student, t, np)[1]
            return reverse_distillation_gradient64(self.student, self.teacher, t, s=s)
        parts = _parts(self.student, self.teacher, t, xp, self.log_s)
        grad = -(parts.p * (parts.u - parts.m))
        # +0 at a class masked on both sides, as the forward gradient
        return _kept(parts.p > 0.0, grad, xp)


_FLOOR = -708.0  # (below: e^x is 0, as ``_distill_numba``'s)


def _centring_cancels(first: Array, second: Array, xp: ModuleType) -> Array:
    r"""Per row (keepdims), whether :math:`\max_c |D_c - D_r| < \max_c |D_c|/4`
    (:math:`D = \text{second} - \text{first}` over its finite classes, :math:`r` the
    first top class of ``first``): where :func:`_tempered_log_mean`'s :math:`W` of the
    rounded :math:`D` errs by more than four units, and :func:`exact_forward_gradient`
    forms the row (``_near_rows_numba._centring_cancels``, its twin; issue 13, branch
    distfwd1)."""
    ns = xp if xp is np else array_namespace(first)
    with numpy_errstate(first, xp, all="ignore"):
        d = second - first
        finite = xp.isfinite(d)
        d = xp.where(finite, d, xp.zeros_like(d))
        top = ns.argmax(first, axis=-1, keepdims=True)
        at_top = ns.arange(first.shape[-1], device=device(first)) == top
        dr = xp.sum(xp.where(at_top, d, xp.zeros_like(d)), axis=-1, keepdims=True)
        wide = xp.max(xp.where(finite, xp.abs(d - dr), xp.zeros_like(d)), axis=-1, keepdims=True)
        return wide < 0.25 * xp.max(xp.abs(d), axis=-1, keepdims=True)


def exact_forward_gradient(
    student: Array, teacher: Array, temperature: float, xp: ModuleType
) -> tuple[Array, Array]:
    r""":math:`T(s - t)` of float64 rows without the difference of nearly equal numbers,
    ``_distill_numba._exact_forward_row``'s formula in array operations (issue 13, branch
    distfwd1), and per row (keepdims) whether it holds. Centred at the teacher's first
    top class :math:`j` (:math:`\tau'_c = (v_c - v_j)/T`, :math:`\sigma'_c = (z_c -
    z_j)/T`, exact pairs), with :math:`E_c = \operatorname{expm1}(\tau'_c -
    \sigma'_c)`, :math:`P_c = e^{\sigma'_c} E_c` (:math:`-e^{\sigma'_c}` where
    :math:`\tau' - \sigma'` is below ``_FLOOR``; branch distfwd2: where :math:`\tau' -
    \sigma' > 1` it was :math:`e^{\tau'_c} - e^{\sigma'_c}`, as the compiled twin's
    third exponential), :math:`S = \sum_c e^{\sigma'_c}`, :math:`P =
    \sum_c P_c`, :math:`M = P/S`:

    .. math:: T(s_c - t_c) = T\,\frac{e^{\sigma'_c} M - P_c}{S + P}.

    Holds where :math:`S + P \ge 1` and :math:`S \le 2(S + P)` (:math:`s_j \ge
    t_j/2`: near rows are such), and :math:`T \le` :data:`_SPLIT_RANGE` (past it the
    quotients have no remainder here; the compiled twin's FMA has). The former :math:`a
    = W - \ell` of :math:`W` formed from a rounded :math:`z - v` was 449 units of
    :math:`2^{-53}` of the row's largest entry off on a row of two classes at :math:`T =
    2` (``_forward_gradient``'s compiled twin takes this formula too)."""
    ns = xp if xp is np else array_namespace(student)
    t = temperature
    with numpy_errstate(student, xp, all="ignore"):
        top = ns.argmax(teacher, axis=-1, keepdims=True)
        at_top = ns.arange(teacher.shape[-1], device=device(teacher)) == top
        zeros = xp.zeros_like(student)
        zj = xp.sum(xp.where(at_top, student, zeros), axis=-1, keepdims=True)
        vj = xp.sum(xp.where(at_top, teacher, zeros), axis=-1, keepdims=True)
        ds, ds_lo = _difference(student, zj, xp)
        qs, ls = _quotient(ds, t, xp)
        ls = ls + ds_lo / t
        dv, dv_lo = _difference(teacher, vj, xp)
        qt, lt = _quotient(dv, t, xp)
        lt = lt + dv_lo / t
        h, h_lo = _difference(qt, qs, xp)
        inside = h > _FLOOR  # (-1 below: the compiled twin's expm1 at _FLOOR)
        hh = xp.where(inside, h, zeros)
        lo = xp.where(inside, h_lo + (lt - ls), zeros)
        e1 = xp.expm1(hh)
        m1 = e1 + (e1 + 1.0) * lo
        live = qs > _FLOOR
        es = xp.where(
            live, _exp_pair(xp.where(live, qs, zeros), xp.where(live, ls, zeros), xp), zeros
        )
        seen = qt > _FLOOR
        et = xp.where(
            seen, _exp_pair(xp.where(seen, qt, zeros), xp.where(seen, lt, zeros), xp), zeros
        )
        p = xp.where(live, xp.where(inside, es * m1, -es), et)
        total = xp.sum(es, axis=-1, keepdims=True)
        w = xp.sum(p, axis=-1, keepdims=True)
        both = total + w
        valid = xp.logical_and(both >= 1.0, total <= 2.0 * both)
        if not t <= _SPLIT_RANGE:  # (no remainder of the quotients: _quotient)
            valid = xp.logical_and(valid, xp.zeros_like(valid))
        safe = xp.where(valid, both, xp.ones_like(both))
        mean = w / total
        grad = (es * mean - p) * (t / safe) + 0.0
    return grad, valid


def given_mass(log_t: Array, xp: ModuleType) -> tuple[Array, Array]:
    r"""The teacher's log-mass :math:`L = \log\sum_c t_c` per row (``log_t``: rows x
    :math:`C` classes, float64) and :math:`e^L`, for ``_distill._as_given`` and the lean
    path (``_small_distill``), in the same bits; :math:`L = 0` where :math:`|L| \le C\,2^{-52}`,
    the rounding of a row normalised in float64 (its :math:`C` entries and their sum:
    rows equal to the student's softmax stay 0, not :math:`-3.3\cdot 10^{-16}`)."""
    with numpy_errstate(log_t, xp, all="ignore"):
        ell = xp.log(xp.sum(xp.exp(log_t), axis=-1))
        ell = xp.where(xp.abs(ell) <= log_t.shape[-1] * 2.0**-52, xp.zeros_like(ell), ell)
        return xp.exp(ell), ell
