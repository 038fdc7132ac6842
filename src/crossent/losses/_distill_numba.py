# mypy: allow-untyped-defs
# (Numba kernels: their arguments are typed by Numba at the call, not by annotations.)
r"""The fused distillation rows of teacher logits (issue 13 follow-up), by Numba.

Imported on first use only (``crossent.torch._distill_cpu``): importing it imports
Numba. Two kernels over rows x classes float32 or float64 student logits :math:`z` and
teacher logits :math:`v` (C-contiguous, one dtype), each entry widened to float64 as it
is read, no N x V temporary, threads over rows; and a third that does the work of both
(:func:`distillation_forward_gradient_kernel`, below).

:func:`distillation_forward_kernel`, per row: the maxima :math:`m_z, m_v` (one pass,
by blocks, :func:`_block_maxima`), then in one pass :math:`\sigma_c = (z_c - m_z)/T`,
:math:`\tau_c = (v_c - m_v)/T` (the generic path's ``tempered_log_softmax``: shift,
then divide; here the quotient as a pair, below),

.. math::

    S_s = \sum_c e^{\sigma_c},\qquad S_t = \sum_c e^{\tau_c},\qquad
    W = \sum_c e^{\tau_c}(\tau_c - \sigma_c),

each by a compensated sum (Knuth's TwoSum: within about an ulp of float64 whatever
:math:`C`), and the KL

.. math::

    D(t\,\|\,s) = \sum_c t_c(\log t_c - \log s_c) = W/S_t + \ell_s - \ell_t,
    \qquad \ell = \operatorname{log1p}(S - 1),

the same sum as the generic path's terms (:math:`t_c = e^{\tau_c}/S_t`,
:math:`\log t_c - \log s_c = \tau_c - \sigma_c - \ell_t + \ell_s`, :math:`\sum_c t_c =
1`), with the same error: a few float64 ulps of :math:`\ell_s, \ell_t, W/S_t`
(:math:`S - 1`: the sums leave out the first maximum's term, 1 exactly, as the
generic path's ``log1p`` of the other terms: a sum with it would lose the digits of a
small :math:`\ell`, which the difference :math:`\ell_s - \ell_t` needs). A term
with :math:`e^{\tau_c} = 0` is absent (0 log 0 = 0), even beside :math:`\sigma_c =
-\infty`; :math:`e^{\tau_c} > 0` beside :math:`e^{\sigma_c} = 0` makes the row's KL
``inf``. A term the floor below drops (:math:`\tau_c < -708`) is not always
negligible: beside :math:`\sigma_c = -\infty` it is :math:`+\infty` (:math:`t_c > 0`,
:math:`s_c = 0`), beside :math:`\sigma_c < -2^{900}` it can reach the digits of
:math:`D`. A row with a student ``-inf`` beside a teacher logit above ``-inf``
(:func:`_block_maxima`'s flag), or a finite :math:`\sigma_c < -2^{900}` (logits past
:math:`10^{270}`: the row goes whatever the teacher there), gets ``D = inf``, and the
caller forms it again (issue 13 review: such rows were finite, or
off in the ninth digit, here). Rows that hold a NaN or ``+inf``, or only ``-inf``, come
out NaN (never a number): the caller validates then. Each row's :math:`(D, m_z,
\ell_s, m_v, \ell_t)` is written to ``out`` (float64).

:func:`distillation_backward_kernel`, per row, from those statistics:
:math:`g_c = (s_c - t_c)\,r` with :math:`s_c = e^{\sigma_c} e^{-\ell_s}`, :math:`t_c =
e^{\tau_c} e^{-\ell_t}` (the gradient :math:`T(s - t)` of :math:`T^2 D` in :math:`z`,
times the row's upstream: :math:`r = uT`), formed in float64 and rounded once to
``out``'s dtype; and whether :math:`\max_c |s_c - t_c| < 2^{-15}\max_c t_c`
(``_near_rows.SPREAD_FLOOR``: the rows where the difference cancels, which the caller
forms again as the NumPy gradient does).
:func:`distillation_forward_gradient_kernel` writes the forward kernel's statistics
and, for a given :math:`r` per row, the backward kernel's gradient and flags, the same
bits (one function of the exponentials, :func:`_terms`, and of the difference,
:func:`_difference`, for both), from each row's :math:`e^{\sigma_c}` and
:math:`e^{\tau_c}` kept from the sums (float64 buffers of the row's length): two
exponentials a logit for the forward and the backward together, not four.

The options of :func:`crossent.distillation_loss` (``_distill_rows.Options``): a
teacher of log-probabilities or probabilities reaches the kernels as logits (its
log-probabilities, :math:`\log p`); at :math:`T = 1`, where the full path takes such a
teacher as it is (:math:`t_c = e^{v_c}`, rows that sum to :math:`e^L \approx 1`), the
forward kernel's ``given`` writes :math:`D = e^L(D_k + L)` of its renormalised
:math:`D_k` and :math:`\ell_t = -m_v` (:func:`_given`), and each row's :math:`L = m_v +
\ell_t` in a sixth column where ``out`` has one (the validation's screen). The reverse
:math:`D(s\,\|\,t)` is the forward kernel's of the roles swapped (``lse`` plus
``_REVERSE``: its :math:`D` formed as below, branch distrev1);
:func:`distillation_reverse_backward_kernel` forms its gradient :math:`r\,s_c(\log s_c -
\log t_c - D)`: a float64 gradient of every row it is handed (its spread flags all
False), below; a float32 one (``out``'s dtype, a constant of the compilation) by the
one pass before (:func:`_plain_reverse_rows`: the factor :math:`\sigma_c - \tau_c +
\ell_t - \ell_s - D`, its float64 error far below float32's unit, the same bits), and
whether its spread :math:`\max_c |g_c|/r` is below :math:`2^{-15}\max_c s_c` (the rows
the caller forms again: the forward flags' rule, ``_near_rows.forward_rows_flagged``).

The reverse :math:`D(s\,\|\,t)` (issue 13, branch distrev1). The swapped call's
:math:`W/S + \ell_t - \ell_s` summed terms :math:`e^{\sigma_c}(\sigma_c - \tau_c)` of
rounded :math:`z_c - m_z`, :math:`v_c - m_v`, so the bulk of :math:`D` on a peaked
row, the teacher's gap :math:`g = (m_v - v_r)/T` at the student's first top class
:math:`r`, was rounded three or four times (the difference, :math:`W`'s sum,
:math:`/S`, :math:`+(\ell_t - \ell_s)`): 2.8 and 3.5 units of :math:`2^{-53}` relative
at :math:`T = 1, 2` on the 64 rows of 32 classes of :math:`N(0, 60^2)` below. Now, in
the same pass (:func:`_reverse_forward_block`, the same exponentials, so the same
:math:`\ell`'s), the terms are :math:`e^{\sigma_c}\delta'_c` of the gradient's
:math:`\delta'_c = \sigma_c - (v_c - v_r)/T` (exact differences, :func:`_log_ratio`),
:math:`\mu = \sum_c e^{\sigma_c}\delta'_c / S`, and :func:`_reverse_kl` forms
:math:`D = g + \mu + (\ell_t - \ell_s)` with :math:`g` a pair of the exact
:math:`m_v - v_r`, its high part added last: 1.6 and 1.3 units there. Rows whose
:math:`D` is in the near band take ``centred_kl`` as before (its shift
:math:`-(g + \mu)`). Where :math:`\mu \le -g/2` (the student's mass away from :math:`r`:
:math:`g` and :math:`\mu` cancel) the same pass's sum centred at :math:`m_v` (the terms
before, summed beside) gives :math:`D`: on 700 random rows (2 to 200 classes, T = 1/2 to
4) the :math:`v_r` centring alone was 8.0 units off at :math:`T = 1` where main is 4.6,
now 4.6 (RESULTS.md). Cost: the reverse statistics 0.82x-0.83x (256 x 32000 float64,
``bench_distill_kernels.py --reverse``: 20.8 against 17.1 ms); the forward direction's
loop is untouched.

The reverse float64 gradient (issue 13, branch distgrad1). The factor :math:`\log s_c - \log t_c
- D = \delta_c - E_s[\delta]`, :math:`\delta_c = \sigma_c - \tau_c` (the
:math:`\ell`'s cancel, and :math:`\sum_c s_c = 1`), does not depend on the reference
of :math:`\delta`: the kernel takes :math:`\delta'_c = \sigma_c - (v_c - v_r)/T`,
centred at the student's first top class :math:`r` (:math:`\sigma_r = 0`,
:math:`\delta'_r = 0`), with :math:`z_c - m_z` and :math:`v_c - v_r` exact pairs
(TwoSum; float32 rows' differences are exact in float64 but where an entry is below
:math:`2^{-29}` of the other) and their quotients pairs, so :math:`\delta'_c` is
within an ulp of itself. A first pass forms :math:`e^{\sigma_c}` and :math:`p_c =
e^{\sigma_c}\delta'_c` (kept: two float64 buffers of the row's length) and their
compensated sums :math:`S` and :math:`P`, the mean :math:`\mu = P/S`; the second the
entries :math:`(p_c - e^{\sigma_c}\mu)\,r/S`. Before, the factor was
:math:`\sigma_c - \tau_c + (\ell_t - \ell_s - D)` with :math:`D` and :math:`z - m`,
:math:`v - m_v` rounded at the size of :math:`|\tau_r|` (100 or more on rows of
logits from :math:`N(0, 60^2)`) where the factor is small, and the rows of a small
spread went to the caller's generic formula: 80, 32 and 130 units of :math:`2^{-53}` of
the row's largest entry off mpmath at :math:`T = 1, 2, 1/2` on 64 such rows of 32
classes (``benchmarks/check_distill_reverse_compiled.py``), 60 on rows of two classes of
:math:`N(0, 1)`. Error: :math:`s_c|\delta'_c|
\le s_c|g_c|/(rs_c) + s_c|\mu| \le 2\max_k|g_k|/r` (:math:`s_r|\mu| = |g_r|/r`, and
:math:`s_r` is the largest :math:`s`), so the roundings of :math:`p_c`, of
:math:`e^{\sigma_c}\mu` and of the difference are each within an ulp of the row's
largest entry; :math:`\mu` is within a few ulps of :math:`\sum_c s_c|\delta'_c|`; the
exponentials and :math:`1/S` add some 2 ulps of each entry. Measured: within 4.5 units
(mpmath, 500 digits) on those rows at :math:`T = 1/2, 1, 2, 4`, rows of two and 1000
classes, near ties and masked classes, near rows (:math:`D` below
``_near_rows.KL_FLOOR``) too, which the callers now leave to the kernel
(``tests/pytorch/test_issue13_distill_reverse_exact.py``). Cost: the kernel alone
1.6-1.9x the one pass (256 x 32000 float64, ``bench_distill_kernels.py --reverse``:
17.0 against 9.1 ms a call, the buffers' traffic and the second pass); the forward
kernels and the float32 gradient are unchanged.

The reverse float64 gradient's roundings (issue 13, branch distrev2). At :math:`T = 2`
the gradient above was 4.46 units of :math:`2^{-53}` of the row's largest entry off
mpmath on ``check_distill_reverse_compiled.py``'s rows (3.32 at :math:`T = 1`, 2.84 at
:math:`T = 1/2`); by an emulation of the kernel in which each rounding could be made
exact in turn, the extra units were :math:`S`'s: the top class's term, 1 exactly, sat in
one lane of the blocks' vectorised sum (``reassoc``), and each small term added in that
lane rounded at 1's ulp, an error of :math:`S` that every entry carries (through
:math:`r/S` and the mean); more terms count at a larger :math:`T` (a flatter row). Now
:math:`S = 1 + \sum_{c \ne r} e^{\sigma_c}` (the others' sums, by TwoSum onto 1);
:math:`\delta'_c` is rounded once (:math:`q_s - q_t` by TwoSum, its error joined to the
low parts: :func:`_reverse_terms_block`); and a dominant row's top entry is minus the
others' sum all but exactly (:func:`_exact_sum_without`: each entry split on the grid of
a power of two above :math:`2n\max|x|`, whose parts sum exactly in any order;
:func:`_dominant_reverse_row`), where a plain vectorised sum rounded its partial sums.
Measured: 2.22, 2.68 and 2.84 units at :math:`T = 1, 2, 1/2` there. Rows of 200 classes
of :math:`N(0, 1)` to :math:`N(0, 60^2)` stay up to 4-6 units (the sums :math:`S` and
:math:`P` of many terms, rounded in each lane; main's the same or worse, RESULTS.md).
Cost: some 5-10 % of this kernel (256 x 32000 float64, loaded machine; RESULTS.md).

The forward float64 gradient where :math:`s - t` cancels (issue 13, branch distfwd1).
The one pass's :math:`e^{\sigma_c} e^{-\ell_s} - e^{\tau_c} e^{-\ell_t}` errs by an ulp
or two of :math:`\max_c t_c`: some :math:`\max_c t_c / \max_c |s_c - t_c|` units of the
row's largest entry (99 and 139 on rows of two classes of :math:`N(0, 1)` at :math:`T =
4` and 8; 12 to 245 on rows of 32000 classes whose teacher is the student plus
:math:`N(0, 0.3^2)` or :math:`N(0, 0.03^2)` noise). A row whose spread :math:`\max_c
|s_c - t_c|` is below ``_near_rows.CANCEL_SPREAD`` (1/2) times :math:`\max_c t_c` (and
at or above ``SPREAD_FLOOR``'s, the caller's rows) is formed again, when ``out`` is
float64 (a float32 gradient keeps its bits), by :func:`_exact_forward_row`: centred at
the teacher's first top class :math:`j`, :math:`\sigma'_c = (z_c - z_j)/T`,
:math:`\tau'_c = (v_c - m_v)/T` as exact pairs, :math:`E_c = \operatorname{expm1}
(\tau'_c - \sigma'_c)` (``_cpu_kernels_numba.expm1_of_pair``, exp_of_pair's reduction; within 2
ulps), :math:`P_c = e^{\sigma'_c} E_c`, :math:`S = \sum_c e^{\sigma'_c}`, :math:`P =
\sum_c P_c` (compensated), :math:`M = P/S`, and :math:`s_c - t_c = (e^{\sigma'_c} M -
P_c)/(S + P)`: :math:`M` and :math:`E_c` are small where the rows agree, and their
errors with them. Measured: within 4 units on rows of 2 to 8 classes at :math:`T = 1/2`
to 8 and 1.7-3.1 on the rows of 32000 above. Cost: two more passes over such rows
(``bench_distill_kernels.py --close 0.3``, 256 x 32000: the backward kernel 35 against
12.4 ms); ordinary rows (independent logits) none (a comparison).

Branch distfwd2 (issue 13) made those rows cheaper, their bits unchanged but where
:math:`\tau'_c - \sigma'_c > 1`. The terms pass (:func:`_exact_terms_block`) forms two
exponentials an entry, picked without a branch (:math:`P_c = e^{\sigma'_c}
\operatorname{expm1}(\delta'_c)` there too, where it took :math:`e^{\tau'_c} -
e^{\sigma'_c}`, a third; the loop vectorised all three). And the backward kernel forms
a row that follows a re-formed one by :func:`_exact_forward_row` first, without the one
pass, where the formula holds (:func:`_formula_holds`: :math:`s_j \ge t_j/2` from the
row's statistics) and its own spread is inside the rule's bounds by a margin
(:func:`_sure`): there the one pass's spread, a few ulps of :math:`\max_c t_c` away,
would re-form the row too, so the result is the same bits; elsewhere the one pass
follows as before (a row of independent logits after a re-formed one pays both). Each
row's rule is the one pass's as before, and the forward kernel's gradient (which has
its exponentials kept) is unchanged. ``bench_distill_kernels.py --close 0.3``: the
backward kernel 23-25 ms against 35-36 (RESULTS.md, branch distfwd2).
``crossent.torch``'s generic path takes its float64 rows' gradient from
:func:`distillation_forward_gradient_kernel` (``_distill.fused_forward_rows``; branch
distfwd3: before, ``exact_forward_rows``, the formula alone on the rows of a spread
below ``CANCEL_SPREAD``'s).

Rows that hold a NaN or ``+inf``, or only ``-inf`` on either side, come out with a
NaN :math:`D, \ell_s, \ell_t` (the maxima pass finds them: below): the caller
validates them. A ``-inf`` logit beside others is valid (a masked class): its
:math:`e^{\sigma_c}` or :math:`e^{\tau_c}` is 0 (a teacher's: no term, its gradient
entry :math:`s_c`, 0 where the student's is ``-inf`` too; a student's beside
:math:`t_c > 0`: :math:`W = D = \infty`, the row the caller forms again). On the
others every :math:`\sigma_c, \tau_c` is finite or ``-inf``, and :math:`\le 0`.

Error analysis
--------------
Each exponential is ``_cpu_kernels_numba.exp_of_pair``'s (within 1.4 units of
:math:`2^{-53}`, relative, of :math:`e^{q + \mathrm{lo} - h}`, as
``test_issue13_smoothed_exp_bounds.py`` checks; the softmax kernels' 5e-11 polynomial
would show in :math:`s - t`), 0 below :math:`-708` (where :math:`e^x` has no float32 digit and a
float64 one only past the subnormal range: a teacher's :math:`t_c` of
:math:`10^{-308}` is 0 there, as in float32 logits' work). Its argument has no
division (:func:`_quotient`, as ``_cpu_kernels_numba.target_exp``): with :math:`d = z -
m` (exact for float32 logits), :math:`q = \mathrm{fl}(d \cdot \mathrm{fl}(1/T))` and
:math:`\mathrm{lo} = \mathrm{fl}((d - qT) \cdot \mathrm{fl}(1/T))`, the remainder
:math:`d - qT` exact by an FMA, so :math:`q + \mathrm{lo}` is within about
:math:`2^{-104}|q|` of :math:`d/T` (:math:`\mathrm{lo} = 0` exactly where :math:`T`
is a power of two: the loops leave it out there, :math:`T = 1` and 2 among them). The
rounded quotient used before (one ``vdivpd``) erred by half an ulp of :math:`\sigma`,
an error of :math:`|\sigma| 2^{-53}` relative in :math:`e^\sigma`: 30 ulps at
:math:`\sigma = -60`. The backward's :math:`s_c = e^{\sigma_c} e^{-\ell_s}` is the
product of two exponentials (each within 0.7 ulp; :math:`e^{-\ell_s}` once a row),
rounded: about two ulps of :math:`s_c` beside :math:`\ell_s`'s own error, and no
:math:`|\sigma - \ell| 2^{-53}` term (the rounded :math:`\sigma - \ell` of the kernel
before the pair). The forward's :math:`\tau - \sigma` is
:math:`(q_t - q_s) + (\mathrm{lo}_t - \mathrm{lo}_s)`.

The loop over a block of :data:`BLOCK` classes has no reduction, so LLVM vectorises
its exponentials; each block's terms are then summed with ``reassoc`` (vectorised, an
error bound of :math:`2^{-53}` times the block's lanes) and the block sums added to
the row's by TwoSum: the row's sums within a few float64 ulps of their terms'
magnitudes whatever :math:`C`. Against an extended-precision (x87 ``longdouble``)
oracle on hard rows (spreads to :math:`8\cdot 10^4`, near ties one ulp apart, all
but one class at the maximum, gaps of :math:`5\cdot10^3`, :math:`T = 0.5, 1, 2, 7`,
:math:`C = 2` to 65536; ``tests/losses/test_issue13_distill_kernel_accuracy.py``):
:math:`|\Delta\ell| \le 7.8 \cdot 2^{-53}`, :math:`|\Delta D| \le 11 \cdot
2^{-53}(1 + \sum_c t_c|\tau_c - \sigma_c|)`, :math:`|\Delta g_c| \le 7.3 \cdot
2^{-53}(s_c + t_c)` (7.0 by :math:`e^{\sigma - \ell}` in one exponential, before the
product) on float32-valued logits (plus :math:`2^{-53}(s_c|\sigma_c| +
t_c|\tau_c|)` on float64 ones, the rounding of :math:`z - m`); the kernels before
these changes: the same :math:`\ell` and :math:`D` (the same sums), a gradient up to
911 ulps off.

Speed
-----
Both kernels are bound by their vector arithmetic (some 100 ``zmm`` operations per
8 classes: two exponentials, a quotient pair each, the rest), not by memory. (The
exponentials were degree-13 Taylor polynomials when this was measured; since branch
smoothperf ``exp_of_pair`` is ``EXP_POLY``'s degree 11.)
What they lost before, and what replaced it (measured on the Zen 4 below):

* every read of a logit was a ``vgatherqpd``: the blocks indexed the row by ``start +
  j``, a signed index that Numba wraps when negative, so LLVM could not prove unit
  stride; now each block is a slice of the row indexed from 0 (plain vector loads);
* two ``vdivpd`` per entry (the quotients): now the pair above (two multiplications and
  an FMA each, on the FMA pipes, pipelined);
* the maxima pass: a scalar loop (first places and a NaN check by a serial sum, no
  ``reassoc``); now :func:`_block_maxima`, integer maxima of order-preserving keys of
  the float64 bits (``vpmaxsq``, vectorised without ``nnan``) per block, the least key
  too: a key at or above :math:`+\infty`'s, or at or below :math:`-\infty`'s, is a NaN
  or an infinity (the row's check); the first places by a scan of the first block whose
  maximum is the row's;
* the backward's second pass over its buffers for :math:`\max_c|s_c - t_c|` and
  :math:`\max_c t_c`: now the first an integer maximum of the bits of :math:`|g|` in the
  loop (nonnegative: their order is the bits'), the second :math:`e^{-\ell_t}` (the
  teacher maximum's :math:`t`), one exponential per row.

Tried and dropped: the next row's block maxima inside the forward's loop (its read
overlapping the arithmetic, as the softmax kernels do): 10-15 % slower, the loop is
arithmetic-bound and the keys' operations share its pipes.

The forward that writes the gradient too (:func:`distillation_forward_gradient_kernel`,
the torch op's eager training call): 90-98 ms against 75 + 69-73 for the forward and
backward kernels (1024 x 32000 float32, T = 2, one thread, thread CPU time, load 3.3):
the backward's two exponentials a logit become two products of kept ones.

Measured (``benchmarks/bench_distill_kernels.py --against`` main's tree, 256 x 32000
float64 logits of N(0, 9), one thread, thread CPU time, min of 5 calls x 4
interleaved rounds, 2 cores shared with other work, load average 1.8-1.9), in ns per
entry, against main's: forward 2.23 (T = 1), 2.21 (T = 2), 2.52 (T = 7) against
4.22, 4.32, 4.17; backward 1.69, 1.70, 1.92 against 5.63, 5.71, 5.70. End to end
(``bench_torch_distill_compile.py --versus-plain --compiled-plain --shapes
4096x32000``, float32, T = 2, forward and backward, wall, best of 3 x 3 rounds, load
average 2.0-2.2): the op 0.81 s against main's 1.31, PyTorch's ``kl_div`` idiom 2.2-2.3,
the idiom under ``torch.compile`` 0.60. Of the op's time the kernels were less
than half: the caller's float64 copies of the float32 rows (``_distill_cpu._wide``,
twice each way) and its float64 gradient blocks rounded and copied into the float32
gradient took as much CPU time as both kernels (one thread, 1024 x 32000, cProfile).
The kernels now read float32 rows as they are and write the float32 gradient
(``_distill_rows.KERNEL_DTYPES``: one compilation more of each, some 3 s fresh on the
Zen 4 below): the op's forward and backward at 1024 x 32000 in 0.25 s against 0.40
(``bench_distill_kernels.py --end-to-end --against``, wall, best of 3 x 3 rounds, load
2.9-3.6).
"""

from __future__ import annotations

import numba
import numpy as np

from .._intrinsics_numba import bits_to_float64, float64_to_bits, prefer_wide_vectors
from ._centred_kl_numba import block_sums as _sums  # (the block's three sums)
from ._centred_kl_numba import centred_kl
from ._centred_kl_numba import power_of_two as _power_of_two
from ._cpu_kernels_numba import exp_of_pair, expm1_of_pair, two_sum
from ._dominant_entry import DOMINANT as _DOMINANT
from ._near_rows import CANCEL_SPREAD as _CANCEL
from ._near_rows import KL_FLOOR as _KL_FLOOR
from ._near_rows import NEAR_CEILING as _NEAR_CEILING
from ._near_rows import SPREAD_FLOOR as _SPREAD_FLOOR

__all__ = [
    "BLOCK",
    "distillation_backward_kernel",
    "distillation_forward_gradient_kernel",
    "distillation_forward_kernel",
    "distillation_reverse_backward_kernel",
]

BLOCK = 512
"""Classes per block of the kernels' inner loops (their float64 buffers: 12 KiB a row)."""

_FLOOR = -708.0  # below: e^x is 0 here (module docstring)
_FAR = 2.0**900  # a student sigma below -_FAR: the row formed again (t_c sigma_c may count)
_LOOP = {"contract"}  # the blocks' loops: no reassoc (exp_of_pair's reduction is exact)
_SUMS = {"contract", "reassoc", "nsz"}  # the blocks' sums (finite terms)
_LOWEST = -0x7FFFFFFFFFFFFFFF  # keys (_key) below every float64's but a negative NaN's
_HIGHEST = 0x7FFFFFFFFFFFFFFF
_REVERSE = 4  # (lse + _REVERSE: _forward_rows of the roles swapped forms D(s || t))
_INF_KEY = 0x7FF0000000000000  # the key of +inf
_NEG_INF_KEY = -_INF_KEY - 1  # the key of -inf (a negative NaN's: below it)


@numba.njit(fastmath=_LOOP, inline="always")
def _quotient(d, inv_t, temperature):
    # d/T as the pair q + lo: q = d (1/T) rounded, lo = the remainder (d - q T)/T (an
    # FMA: exact), so q + lo is within about 2**-104 |q| of d/T with no division
    q = d * inv_t
    return q, (d - q * temperature) * inv_t


@numba.njit(fastmath=_LOOP, inline="always")
def _quotients(dz, dv, inv_t, temperature, exact):
    # _quotient of dz and of dv; lo = 0 where T is a power of two (exact): a branch in
    # the blocks' loops, which LLVM unswitches (two loops, the test once per block)
    if exact:
        return dz * inv_t, 0.0, dv * inv_t, 0.0
    qs, ls = _quotient(dz, inv_t, temperature)
    qt, lt = _quotient(dv, inv_t, temperature)
    return qs, ls, qt, lt


@numba.njit(fastmath=_LOOP, inline="never")
def _block_maxima(zb, vb):
    # the keys (_key) of the maxima of a block of z and of v, their least keys (z's
    # -inf left out), and whether a z of -inf meets a v above -inf (integer maxima and
    # minima: vectorised, where a float maximum is not without nnan)
    kz = kv = _LOWEST
    lz = lv = _HIGHEST
    lost = False
    for c in range(zb.shape[0]):
        a = _key(float64_to_bits(zb[c]))
        b = _key(float64_to_bits(vb[c]))
        kz = max(kz, a)
        kv = max(kv, b)
        masked = a == _NEG_INF_KEY
        lz = min(lz, _HIGHEST if masked else a)
        lv = min(lv, b)
        lost |= masked & (b != _NEG_INF_KEY)
    return kz, kv, lz, lv, lost


@numba.njit(inline="always")
def _key(bits):
    # the order-preserving key of a float64's bits (its own inverse): negative numbers'
    # magnitude bits flipped
    return bits ^ ((bits >> 63) & 0x7FFFFFFFFFFFFFFF)


@numba.njit(inline="never")
def _block_maxima_of_row(zr, vr, maxima):
    # maxima[:, b]: _block_maxima of block b of zr and vr
    classes = zr.shape[0]
    for b in range(maxima.shape[1]):
        at = slice(b * BLOCK, min(classes, (b + 1) * BLOCK))
        kz, kv, lz, lv, lost = _block_maxima(zr[at], vr[at])
        maxima[0, b], maxima[1, b], maxima[2, b], maxima[3, b], maxima[4, b] = kz, kv, lz, lv, lost


@numba.njit(inline="never")
def _first(row, keys, key):
    # the first place of the row's maximum in row, from its blocks' maximal keys and the
    # row's
    top = bits_to_float64(_key(key))
    for b in range(keys.shape[0]):
        if keys[b] == key:
            for c in range(b * BLOCK, min(row.shape[0], (b + 1) * BLOCK)):
                if row[c] == top:
                    return c
    return row.shape[0]


@numba.njit(fastmath=_LOOP, inline="never")
def _forward_block(zb, vb, scalars, es, et, ew):
    # the block's terms e^sigma, e^tau and e^tau (tau - sigma) (0 where e^tau is; the
    # row is finite)
    exact = _power_of_two(scalars[3])
    for j in range(zb.shape[0]):
        qs, ls, qt, lt, es[j], e = _terms(zb[j], vb[j], scalars, exact)
        et[j] = e
        # e = 0: no term (0 log 0 = 0), even beside sigma = -inf (where tau - sigma and
        # lo are not numbers); e > 0 beside sigma = -inf: inf or NaN (the row's: inf)
        ew[j] = e * ((qt - qs) + (lt - ls)) if e > 0.0 else 0.0


@numba.njit(inline="always")
def _terms(zj, vj, scalars, exact):
    # sigma and tau as pairs, e^sigma and e^tau (0 below the floor): _forward_block's and
    # _backward_block's (the same bits)
    mz, mv, inv_t, temperature = scalars
    qs, ls, qt, lt = _quotients(zj - mz, vj - mv, inv_t, temperature, exact)
    es = exp_of_pair(qs, ls, 0.0) if qs > _FLOOR else 0.0
    et = exp_of_pair(qt, lt, 0.0) if qt > _FLOOR else 0.0
    return qs, ls, qt, lt, es, et


@numba.njit(inline="always")
def _difference(es, et, a, b):
    # s - t = e^sigma a - e^tau b, a = e^-ell_s, b = e^-ell_t: _gradient_block's and
    # _backward_block's (the same bits)
    return es * a - et * b


@numba.njit(fastmath=_LOOP, inline="never")
def _gradient_block(es, et, a, b, r, ob):
    # the entries (s - t) r of a row from its e^sigma and e^tau, and its max |s - t|
    spread = 0
    for j in range(ob.shape[0]):
        g = _difference(es[j], et[j], a, b)
        ob[j] = g * r
        spread = max(spread, float64_to_bits(abs(g)))  # (an integer maximum: vectorised)
    return bits_to_float64(spread)


@numba.njit(fastmath=_LOOP, inline="never")
def _backward_block(zb, vb, ob, scalars, a, b, r):
    # the block's entries (s - t) r, and its max |s - t| (_gradient_block's, from z and v)
    exact = _power_of_two(scalars[3])
    spread = 0
    for j in range(zb.shape[0]):
        _, _, _, _, es, et = _terms(zb[j], vb[j], scalars, exact)
        g = _difference(es, et, a, b)
        ob[j] = g * r
        spread = max(spread, float64_to_bits(abs(g)))
    return bits_to_float64(spread)


@numba.njit(inline="always")
def _normalisers(ell_s, ell_t):
    # e^-ell_s and e^-ell_t: s_c = e^sigma_c e^-ell_s (the second: max_c t_c too)
    return exp_of_pair(-ell_s, 0.0, 0.0), exp_of_pair(-ell_t, 0.0, 0.0)


@numba.njit(inline="never")
def _forward_rows(z, v, temperature, out, scale, grad, spread_small, given, lse):
    # Per row: (D, m_z, ell_s, m_v, ell_t), float64 (module docstring), and where out has
    # a sixth column the teacher's log-sum-exp L = m_v + ell_t (T = 1; else, for lse 1 or
    # 2, that of v or z at T = 1: _exp_block, one exponential more a logit, the
    # validation's screen); given (T = 1, a teacher of log-probabilities taken as they
    # are: _given): D and ell_t of t_c = e^v_c. Where grad
    # has rows, the gradient rows (s - t) scale[i] too, from the row's e^sigma and e^tau
    # kept (the backward kernel's bits), and the spread flags
    prefer_wide_vectors()
    reverse = lse >= _REVERSE  # (the roles swapped: D(s || t) by _reverse_kl)
    lse = lse % _REVERSE
    rows, classes = z.shape
    keep = grad.shape[0] > 0
    scalars = (0.0, 0.0, 1.0 / temperature, temperature)
    # e^sigma and e^tau: one block for every row, or the whole row where kept
    terms = np.empty((2, classes if keep else BLOCK))
    ew = np.empty(BLOCK)
    ev = np.empty(BLOCK)  # (reverse: the terms centred at m_v, _reverse_kl)
    ex = np.empty(BLOCK)  # (lse: e^(x - m) of a block)
    near = np.empty((3, BLOCK))  # (centred_kl's blocks)
    # the blocks of the row: the maxima of z's keys and v's, their least keys, lost terms
    own = np.empty((5, (classes + BLOCK - 1) // BLOCK), dtype=np.int64)
    wide = z.itemsize == 8 and grad.itemsize == 8  # (float64: _reformed rows)
    for i in range(rows):
        if keep:  # (rows not formed here: 0, the caller's)
            spread_small[i] = False
        if not classes:  # (S = 1: D = 0)
            out[i, 0], out[i, 1], out[i, 2], out[i, 3], out[i, 4] = 0.0, -np.inf, 0.0, -np.inf, 0.0
            continue
        zr, vr = z[i], v[i]
        _block_maxima_of_row(zr, vr, own)
        kz, kv, low_z = own[0].max(), own[1].max(), own[2].min()
        lowest = min(low_z, own[3].min())
        mz = bits_to_float64(_key(kz))
        mv = bits_to_float64(_key(kv))
        out[i, 1] = mz
        out[i, 3] = mv
        # NaN, +inf, a row of -inf (keys' order); a -inf logit is valid (e^x = 0)
        if max(kz, kv) >= _INF_KEY or min(kz, kv, lowest + 1) <= _NEG_INF_KEY:
            out[i, 0] = np.nan
            out[i, 2] = np.nan
            out[i, 4] = np.nan
            if out.shape[1] > 5:
                out[i, 5] = np.nan
            if keep:
                grad[i, :] = 0.0
            continue
        jz = _first(zr, own[0], kz)
        jv = _first(vr, own[1], kv)
        scalars = (mz, mv, scalars[2], temperature)
        centre = np.float64(zr[jv])  # (reverse: the teacher's v_r, float64 differences)
        # S - 1, without the maximum's term (1 exactly): ell = log1p(S - 1) keeps the
        # digits of a small ell, which the KL's difference ell_s - ell_t needs
        ss, ss_lo, st, st_lo, w, w_lo = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
        w_m, w_m_lo = 0.0, 0.0
        whole = 0.0  # (lse: sum_c e^(x_c - m) of the side it names)
        for b in range(own.shape[1]):
            start = b * BLOCK
            n = min(BLOCK, classes - start)
            at = slice(start, start + n)
            kept = slice(start, start + n) if keep else slice(0, n)
            es, et = terms[0, kept], terms[1, kept]
            if reverse:
                _reverse_forward_block(zr[at], vr[at], scalars, centre, es, et, ew, ev)
                w_m, w_m_lo = two_sum(w_m, w_m_lo, _sum_of(ev, n))
            else:
                _forward_block(zr[at], vr[at], scalars, es, et, ew)
            if start <= jz < start + n:
                es[jz - start] = 0.0
            if start <= jv < start + n:
                et[jv - start] = 0.0
            a, c, d = _sums(es, et, ew, n)
            if lse == 1:  # (two calls: z and v may be of two dtypes)
                whole += _exp_block(vr[at], mv, ex)
            elif lse == 2:
                whole += _exp_block(zr[at], mz, ex)
            ss, ss_lo = two_sum(ss, ss_lo, a)
            st, st_lo = two_sum(st, st_lo, c)
            w, w_lo = two_sum(w, w_lo, d)
        t_rest = st + st_lo
        ell_s = np.log1p(ss + ss_lo)
        ell_t = np.log1p(t_rest)
        # W = inf, or NaN (TwoSum's low part of inf; lo of sigma = -inf): only where a
        # student's -inf meets t > 0 (the terms are finite or inf otherwise): D = inf
        w = w + w_lo
        w = w if w == w else np.inf
        # the terms the floor drops (e^tau = 0 above): a student's -inf beside a teacher's
        # tau > -inf (t_c > 0 below the floor: D = inf, as the full path has it), or a
        # sigma below -2**900 (t_c (tau_c - sigma_c) a digit of D where t_c > 0): the row
        # formed again (issue 13 review: both were dropped); one comparison on others
        if own[4].max() or bits_to_float64(_key(low_z)) <= mz - _FAR * temperature:
            w = np.inf
        if reverse:
            total = 1.0 + t_rest
            kl, shift = _reverse_kl(w, w_m + w_m_lo, total, ell_s - ell_t, mz, centre, temperature)
        else:
            kl = w / (1.0 + t_rest) + (ell_s - ell_t)
            shift = -w / (1.0 + t_rest)
        if _KL_FLOOR <= kl < _NEAR_CEILING:  # (near rows: the sum cancels; one more pass)
            kl = centred_kl(vr, zr, mv, mz, temperature, shift, near)
        out[i, 0] = kl
        out[i, 2] = ell_s
        out[i, 4] = ell_t
        if out.shape[1] > 5:
            out[i, 5] = mv + ell_t if not lse else (mv if lse == 1 else mz) + np.log(whole)
        if given:
            out[i, 0], out[i, 4] = _given(out[i, 0], mv, ell_t)
            ell_t = out[i, 4]
        if not keep:
            continue
        if not np.isfinite(out[i, 0]):
            grad[i, :] = 0.0
            continue
        terms[0, jz] = 1.0  # (e^0: the maxima's terms, left out of the sums)
        terms[1, jv] = 1.0
        a, b = _normalisers(ell_s, ell_t)
        spread = _gradient_block(terms[0], terms[1], a, b, scale[i], grad[i])
        spread_small[i] = spread < _SPREAD_FLOOR * b
        if _reformed(spread, b, temperature, mv, ell_t, wide):  # (s - t cancels)
            _exact_forward_row(zr, vr, mv, temperature, scale[i], grad[i], terms)
        elif a > _DOMINANT and b > _DOMINANT and jz == jv:  # (s_r - t_r cancels)
            grad[i, jz] = -_others(terms[0], terms[1], a, b, scale[i], jz, ew)


@numba.njit(fastmath=_LOOP, inline="never")
def _reverse_forward_block(zb, vb, scalars, centre, es, et, ew, ev):
    # _forward_block's terms of the swapped call (zb: the teacher's logits, vb: the
    # student's; the reverse D(s || t)): e^sigma and e^tau as there (the same bits of
    # the ells), and in ew the student's e^sigma'_c delta'_c, delta'_c = (z_c - m_z)/T -
    # (v_c - v_r)/T of the student's logits z and the teacher's v centred at the
    # student's first top class r (centre: v_r, float64), from exact differences
    # (distillation_reverse_backward_kernel's _log_ratio): 0 where e^sigma' is; in ev,
    # _forward_block's terms (centred at m_v: _reverse_kl's other choice)
    exact = _power_of_two(scalars[3])
    _, mv, inv_t, temperature = scalars
    wide = zb.itemsize == 8 or vb.itemsize == 8  # (float32 rows: exact differences)
    for j in range(zb.shape[0]):
        qs, ls, qt, lt, es[j], e = _terms(zb[j], vb[j], scalars, exact)
        et[j] = e
        ev[j] = e * ((qt - qs) + (lt - ls)) if e > 0.0 else 0.0
        _, _, h, lo = _log_ratio(vb[j], zb[j], mv, centre, inv_t, temperature, exact, wide)
        ew[j] = e * (h + lo) if e > 0.0 else 0.0


@numba.njit(inline="always")
def _reverse_kl(w, w_m, total, ells, mv, vr, temperature):
    # D(s || t) = g + mu + (ell_t - ell_s) (the reverse, in its own names: s the student,
    # ells = ell_t - ell_s of the swapped call's ell_s - ell_t) with mu = E_s[delta'] =
    # w / total (_reverse_forward_block's sum over the student's S) and g = (m_v -
    # v_r)/T the teacher's gap at the student's first top class r, a pair from the exact
    # difference: its digits (D's bulk on a peaked row) rounded once, at the end (the
    # sum W/S of terms centred at m_v rounded them twice or three times, and m_v - v_r
    # too). And the shift centred_kl takes, -(g + mu). Issue 13, branch distrev1
    if not w < np.inf:  # (inf or NaN: the row's, as before)
        return w, 0.0
    d, d_lo = _exact_difference(mv, vr, True)
    inv_t = 1.0 / temperature
    g = d * inv_t
    g_lo = (d_lo * inv_t) if _power_of_two(temperature) else ((d - g * temperature) + d_lo) * inv_t
    mean = w / total
    if mean > -0.5 * g:  # (mu + g, the mean centred at m_v, is not nearer 0: D = g + ...)
        return g + (g_lo + (mean + ells)), -(g + mean)
    # (the student's mass away from r, where g and mu cancel: the sum centred at m_v,
    # w_m of _forward_block's terms, the forward direction's formula)
    mean = w_m / total
    return mean + ells, -mean


@numba.njit(inline="always")
def _given(d, mv, ell_t):
    # D(t || s) and the teacher's ell of t_c = e^(v_c) as they are (v: log-probabilities
    # summing to e^L, L = m_v + ell_t, near 1; T = 1), from the kernel's D_k of the
    # normalised t' = t e^-L: D = sum_c t_c (v_c - log s_c) = e^L (D_k + L), and
    # log t_c = tau_c + m_v = tau_c - ell with ell = -m_v (the backward's e^-ell: e^m_v)
    big_l = mv + ell_t
    return np.exp(big_l) * (d + big_l), -mv


@numba.njit(fastmath=_LOOP, inline="never")
def _exp_block(xb, m, ex):
    # sum_c e^(x_c - m) of a block (0 below the floor; a term past the range: the row's
    # NaN, found before): the exponentials into ex, then their sum (vectorised)
    n = xb.shape[0]
    for j in range(n):
        d = xb[j] - m
        ex[j] = exp_of_pair(d, 0.0, 0.0) if d > _FLOOR else 0.0
    return _sum_of(ex, n)


@numba.njit(fastmath=_SUMS, inline="never")
def _sum_of(ex, n):
    total = 0.0
    for j in range(n):
        total += ex[j]
    return total


@numba.njit(nogil=True, cache=True)
def distillation_forward_kernel(z, v, temperature, out, given=False, lse=0):
    # Per row: (D, m_z, ell_s, m_v, ell_t), float64 (module docstring); given: _given;
    # lse: _forward_rows'
    none = np.empty((0, z.shape[1]), dtype=z.dtype)  # (no gradient: the same types)
    no_flags = np.empty(0, dtype=np.bool_)
    _forward_rows(z, v, temperature, out, np.empty(0), none, no_flags, given, lse)


@numba.njit(nogil=True, cache=True)
def distillation_forward_gradient_kernel(
    z, v, temperature, out, scale, grad, spread_small, given=False, lse=0
):
    # distillation_forward_kernel's statistics, and distillation_backward_kernel's grad
    # and spread_small of them (the same bits), scale: r per row
    _forward_rows(z, v, temperature, out, scale, grad, spread_small, given, lse)


@numba.njit(nogil=True, cache=True)
def distillation_backward_kernel(z, v, stats, temperature, scale, out, spread_small):
    # Per row: out = (s - t) * scale[i] and whether the row's spread is small (docstring);
    # rows whose statistics are not finite are left to the caller (0 here)
    prefer_wide_vectors()
    classes = z.shape[1]
    inv_t = 1.0 / temperature
    wide = np.empty(BLOCK)  # (a dominant row's block in float64, then rounded into out)
    exact = z.itemsize == 8 and out.itemsize == 8  # (float64: _reformed rows)
    kept = np.empty((2, classes if exact else 0))  # (_exact_forward_row's)
    close = False  # (the row before was re-formed: this one is formed that way first)
    for i in range(z.shape[0]):
        spread_small[i] = False
        if not np.isfinite(stats[i, 0]):
            out[i, :] = 0.0
            continue
        scalars = (stats[i, 1], stats[i, 3], inv_t, temperature)
        a, b = _normalisers(stats[i, 2], stats[i, 4])
        j = _first_of(v[i], stats[i, 3]) if close else -1  # (the teacher's first top)
        if j >= 0 and _formula_holds(z[i, j], stats[i], temperature):
            # the one pass skipped where its rule's answer is sure: the spread of the
            # formula's entries inside [SPREAD_FLOOR b, _CANCEL b) by a margin (the
            # pass's spread errs by a few ulps of b: its answer is the same), the same
            # bits as the pass then _exact_forward_row (issue 13, branch distfwd2)
            own = _exact_forward_row(
                z[i], v[i], stats[i, 3], temperature, scale[i], out[i], kept, j
            )
            if _sure(own, b):
                continue
        # s_r = a and t_r = b above _DOMINANT at one class r: its entry minus the
        # float64 sum of the others' (_dominant_entry: s_r - t_r cancels)
        top = _first_top(z[i]) if a > _DOMINANT and b > _DOMINANT else -1
        top = top if top >= 0 and top == _first_top(v[i]) else -1
        spread = 0.0
        rest = 0.0
        for start in range(0, classes, BLOCK):
            stop = min(classes, start + BLOCK)
            at = slice(start, stop)
            if top < 0:
                block = _backward_block(z[i, at], v[i, at], out[i, at], scalars, a, b, scale[i])
            else:
                block = _backward_block(
                    z[i, at], v[i, at], wide[: stop - start], scalars, a, b, scale[i]
                )
                rest += _sum_without(wide, stop - start, top - start)
                _round_into(wide, out[i, at])
            spread = max(spread, block)
        spread_small[i] = spread < _SPREAD_FLOOR * b
        close = _reformed(spread, b, temperature, stats[i, 3], stats[i, 4], exact)
        if close:
            _exact_forward_row(z[i], v[i], stats[i, 3], temperature, scale[i], out[i], kept)
        elif top >= 0:
            out[i, top] = -rest


@numba.njit(fastmath=_LOOP, inline="always")
def _exact_difference(x, m, wide):
    # x - m as hi + lo exactly (Knuth's TwoSum; no multiplication, so nothing contracts);
    # lo = 0 for float32 rows (not wide: a constant of the compilation), whose difference
    # is exact in float64 but where |x| < 2**-29 |m| (then off by 2**-53 |x - m|, far
    # below the float32 result's unit)
    d = x - m
    if not wide:
        return d, 0.0
    b = d - x
    return d, (x - (d - b)) - (m + b)


@numba.njit(fastmath=_LOOP, inline="always")
def _log_ratio(zj, vj, mz, vr, inv_t, temperature, exact, wide):
    # sigma_c as the pair (q_s, l_s), and delta'_c = sigma_c - (v_c - v_r)/T (the
    # log-ratio log s_c - log t_c less its value at the student's top class r, where
    # sigma_r = 0) as h + lo: both differences exact (_exact_difference), their quotients
    # pairs (_quotient's, each difference's low part added; at a T of a power of two
    # the products are exact: no remainder), h = q_s - q_t rounded (module docstring)
    dz, dz_lo = _exact_difference(zj, mz, wide)
    dv, dv_lo = _exact_difference(vj, vr, wide)
    qs = dz * inv_t
    qt = dv * inv_t
    if exact:
        ls = dz_lo * inv_t
        lt = dv_lo * inv_t
    else:
        ls = ((dz - qs * temperature) + dz_lo) * inv_t
        lt = ((dv - qt * temperature) + dv_lo) * inv_t
    return qs, ls, qs - qt, ls - lt


@numba.njit(fastmath=_LOOP, inline="never")
def _reverse_terms_block(zb, vb, sb, pb, scalars):
    # the block's e^sigma_c into sb and p_c = e^sigma_c delta'_c (rounded once) into pb:
    # 0 where e^sigma_c is (even beside t_c = 0, where delta' is no number). delta'_c =
    # (q_s + l_s) - (q_t + l_t) of _log_ratio's quotient pairs, q_s - q_t = h + its low
    # part by TwoSum (as _exact_terms_block's), so h + lo is rounded once (_log_ratio's
    # h = q_s - q_t, rounded, then h + lo: twice; branch distrev2)
    mz, vr, inv_t, temperature = scalars
    exact = _power_of_two(temperature)
    wide = zb.itemsize == 8  # (float64 rows: their differences' low parts)
    for j in range(zb.shape[0]):
        qs, ls = _pair_quotient(zb[j], mz, inv_t, temperature, exact, wide)
        qt, lt = _pair_quotient(vb[j], vr, inv_t, temperature, exact, wide)
        e = exp_of_pair(qs, ls, 0.0) if qs > _FLOOR else 0.0
        h = qs - qt
        b = h - qs  # (TwoSum: qs - qt = h + its low part, exactly)
        lo = ((qs - (h - b)) + (-qt - b)) + (ls - lt)
        sb[j] = e
        pb[j] = e * (h + lo) if e > 0.0 else 0.0


@numba.njit(fastmath=_LOOP, inline="never")
def _reverse_block(sb, pb, ob, mean, r):
    # the block's entries r' (p_c - e^sigma_c mean) = r s_c (delta'_c - mean), r' = r/S
    # (p_c - e^sigma_c mean: an FMA)
    for j in range(ob.shape[0]):
        ob[j] = (pb[j] - sb[j] * mean) * r


@numba.njit(fastmath=_LOOP, inline="never")
def _reverse_block_largest(sb, pb, ob, mean, r):
    # _reverse_block into ob (float64), and the largest |ob[j]| (_round_into_largest's
    # integer maximum of the bits)
    largest = 0
    for j in range(ob.shape[0]):
        x = (pb[j] - sb[j] * mean) * r
        ob[j] = x
        largest = max(largest, float64_to_bits(abs(x)))
    return bits_to_float64(largest)


@numba.njit(fastmath=_LOOP, inline="never")
def _split_block(xb, sigma, parts):
    # each x of the block as q + (x - q), q = fl(fl(sigma + x) - sigma): x on the grid of
    # sigma's ulp (Rump's extraction: q and x - q exact for |x| <= sigma; no reassoc, so
    # nothing folds it), into parts[0] and parts[1]
    for j in range(xb.shape[0]):
        q = (sigma + xb[j]) - sigma
        parts[0, j] = q
        parts[1, j] = xb[j] - q


@numba.njit(inline="never")
def _exact_sum_without(wide, n, skip, largest, parts, hi, lo):
    # (hi, lo) plus the sum of wide[:n] but its entry skip, all but within some
    # n**2 2**-106 largest of it: the entries' parts on the grid of the ulp of sigma, a
    # power of two above 2 n largest, sum exactly in any order (their partial sums are
    # multiples of it below 2**53 of it), so the blocks' vectorised sums (_sum_of) err
    # only in the small parts (_split_block); the two sums joined to (hi, lo) by TwoSum.
    # The top entry of a dominant row is minus this sum: a plain vectorised sum rounded
    # each lane's partial sums (up to 1.4 units of 2**-53 of the row's largest entry on
    # check_distill_reverse_compiled.py's rows; branch distrev2)
    if not 0 <= skip < n:
        skip = n
    own = wide[skip] if skip < n else 0.0
    if skip < n:
        wide[skip] = 0.0
    bound = 2.0 * n * largest
    sigma = 2.0 * bits_to_float64(float64_to_bits(bound) & _INF_KEY)  # (0 if subnormal)
    if sigma < np.inf:
        _split_block(wide[:n], sigma, parts)
        hi, lo = two_sum(hi, lo, _sum_of(parts[0], n))
        hi, lo = two_sum(hi, lo, _sum_of(parts[1], n))
    else:
        hi, lo = two_sum(hi, lo, _sum_of(wide, n))
    if skip < n:
        wide[skip] = own
    return hi, lo


@numba.njit(fastmath=_LOOP, inline="never")
def _plain_reverse_block(zb, vb, ob, scalars, a, c, r):
    # the block's entries r s_c (sigma_c - tau_c + c), c = ell_t - ell_s - D: 0 where
    # s_c is (even beside t_c = 0, where tau_c - sigma_c is no number)
    exact = _power_of_two(scalars[3])
    mz, mv, inv_t, temperature = scalars
    for j in range(zb.shape[0]):
        qs, ls, qt, lt = _quotients(zb[j] - mz, vb[j] - mv, inv_t, temperature, exact)
        es = exp_of_pair(qs, ls, 0.0) if qs > _FLOOR else 0.0
        ob[j] = (es * a) * (((qs - qt) + (ls - lt)) + c) * r if es > 0.0 else 0.0


@numba.njit(fastmath=_LOOP, inline="never")
def _round_into_largest(wide, ob):
    # _round_into, and the largest |wide[j]| of the block (_gradient_block's integer
    # maximum: vectorised; a NaN's bits above any number's)
    largest = 0
    for j in range(ob.shape[0]):
        ob[j] = wide[j]
        largest = max(largest, float64_to_bits(abs(wide[j])))
    return bits_to_float64(largest)


@numba.njit(inline="never")
def _plain_reverse_rows(z, v, stats, temperature, scale, out, spread_small):
    # distillation_reverse_backward_kernel's rows of a float32 gradient: the factor
    # sigma_c - tau_c + (ell_t - ell_s - D) in one pass (its float64 error, up to some
    # 130 units of 2**-53 of the row's largest entry, far below float32's unit), and the
    # rows whose spread max_c |g_c|/r is below SPREAD_FLOOR max_c s_c flagged (the
    # NumPy gradient's rule, _near_rows.forward_rows_flagged: the caller forms them)
    classes = z.shape[1]
    inv_t = 1.0 / temperature
    wide = np.empty(BLOCK)  # (a block's entries in float64, then rounded into out)
    for i in range(z.shape[0]):
        spread_small[i] = False
        if not np.isfinite(stats[i, 0]):
            out[i, :] = 0.0
            continue
        scalars = (stats[i, 1], stats[i, 3], inv_t, temperature)
        a = exp_of_pair(-stats[i, 2], 0.0, 0.0)
        c = (stats[i, 4] - stats[i, 2]) - stats[i, 0]
        dominant = a > _DOMINANT
        top = _first_top(z[i]) if dominant else -1
        rest = 0.0
        spread = 0.0
        for start in range(0, classes, BLOCK):
            stop = min(classes, start + BLOCK)
            at = slice(start, stop)
            _plain_reverse_block(z[i, at], v[i, at], wide, scalars, a, c, scale[i])
            if dominant:
                rest += _sum_without(wide, stop - start, top - start)
            spread = max(spread, _round_into_largest(wide, out[i, at]))
        spread_small[i] = spread < _SPREAD_FLOOR * a * abs(scale[i])  # (times r, as g)
        if dominant:
            out[i, top] = -rest


@numba.njit(nogil=True, cache=True)
def distillation_reverse_backward_kernel(z, v, stats, temperature, scale, out, spread_small):
    # Per row of the reverse direction's statistics (D(s || t), m_z, ell_s, m_v, ell_t):
    # out = scale[i] s (log s - log t - D) (the gradient T s (log s - log t - D) of
    # T^2 D(s || t) in z, scale: u T), each entry formed in float64 and rounded once
    # (module docstring: the factor delta'_c - E_s[delta'], two passes); spread_small
    # all False (the kernel forms every row it is handed, near ones too; a float32 out:
    # _plain_reverse_rows, and its flags); rows whose D
    # is not finite are left to the caller (0 here). Where the top class's
    # s_r = e^-ell_s (a) is above _dominant_entry.DOMINANT, its entry is minus the
    # float64 sum of the others (_dominant_entry: its d_r - D cancels)
    prefer_wide_vectors()
    if out.itemsize == 4:  # (a float32 gradient: one pass, a constant of the compilation)
        _plain_reverse_rows(z, v, stats, temperature, scale, out, spread_small)
        return
    classes = z.shape[1]
    inv_t = 1.0 / temperature
    wide = np.empty(BLOCK)  # (a block's entries in float64, then rounded into out)
    kept = np.empty((2, classes))  # (the row's s_c and p_c: the first pass's)
    parts = np.empty((2, BLOCK))  # (_exact_sum_without's split of a block)
    for i in range(z.shape[0]):
        spread_small[i] = False
        if not np.isfinite(stats[i, 0]):
            out[i, :] = 0.0
            continue
        top = _first_of(z[i], stats[i, 1])  # (r: sigma_r = 0, z_r = m_z)
        scalars = (stats[i, 1], np.float64(v[i, top]), inv_t, temperature)  # (float64)
        a = exp_of_pair(-stats[i, 2], 0.0, 0.0)
        # S = sum_c e^sigma_c and the mean E_s[delta'] = sum_c p_c / S (compensated sums
        # of the blocks' sums, as the forward kernel's): log s_c - log t_c - D = delta'_c
        # - E_s[delta'], where the digits of ell_s, ell_t and D (of size |tau_r|) cancel
        # unformed, and s_c = e^sigma_c / S (module docstring)
        # (S = 1 + the others: r's term e^0 = 1 exactly, left out of the blocks' sums,
        # whose lanes rounded each addition at 1's ulp; branch distrev2)
        total, total_lo, w, w_lo = 1.0, 0.0, 0.0, 0.0
        for start in range(0, classes, BLOCK):
            stop = min(classes, start + BLOCK)
            at = slice(start, stop)
            sb, pb = kept[0, at], kept[1, at]
            _reverse_terms_block(z[i, at], v[i, at], sb, pb, scalars)
            others = _sum_without(sb, stop - start, top - start)
            total, total_lo = two_sum(total, total_lo, others)
            w, w_lo = two_sum(w, w_lo, _sum_of(pb, stop - start))
        total += total_lo
        mean = (w + w_lo) / total
        r = scale[i] / total
        if a > _DOMINANT:
            _dominant_reverse_row(kept, out[i], wide, parts, mean, r, top)
            continue
        for start in range(0, classes, BLOCK):
            stop = min(classes, start + BLOCK)
            at = slice(start, stop)
            _reverse_block(kept[0, at], kept[1, at], out[i, at], mean, r)  # (rounded once)


@numba.njit(inline="never")
def _dominant_reverse_row(kept, row, wide, parts, mean, r, top):
    # distillation_reverse_backward_kernel's second pass over a row whose top class's
    # s_r is above _dominant_entry.DOMINANT: the entries (_reverse_block's) in float64,
    # each rounded once into row, and the top entry minus the others' sum
    # (_exact_sum_without; its own function, so the kernel's loop of the other rows
    # compiles as before: inline, it cost some 5 % there)
    classes = row.shape[0]
    rest, rest_lo = 0.0, 0.0
    for start in range(0, classes, BLOCK):
        stop = min(classes, start + BLOCK)
        at = slice(start, stop)
        n = stop - start
        largest = _reverse_block_largest(kept[0, at], kept[1, at], wide[:n], mean, r)
        rest, rest_lo = _exact_sum_without(wide, n, top - start, largest, parts, rest, rest_lo)
        _round_into(wide, row[at])
    row[top] = -(rest + rest_lo)


@numba.njit(inline="never")
def _others(es, et, a, b, r, skip, wide):
    # the float64 sum of the row's entries (s_c - t_c) r but its entry skip, from its
    # e^sigma and e^tau (_gradient_block's entries), a block at a time into wide
    classes = es.shape[0]
    rest = 0.0
    for start in range(0, classes, BLOCK):
        n = min(BLOCK, classes - start)
        for j in range(n):
            wide[j] = _difference(es[start + j], et[start + j], a, b) * r
        rest += _sum_without(wide, n, skip - start)
    return rest


@numba.njit(inline="always")
def _first_top(row):
    # the first index of the row's largest entry (the generic path's argmax of log s)
    top = 0
    for j in range(row.shape[0]):
        if row[j] > row[top]:
            top = j
    return top


@numba.njit(inline="always")
def _first_of(row, top):
    # the first index of the row's entry equal to top (its maximum: _first_top's index)
    for j in range(row.shape[0]):
        if row[j] == top:
            return j
    return 0


@numba.njit(inline="always")
def _sum_without(wide, n, skip):
    # the sum of wide[:n] but its entry skip (where 0 <= skip < n)
    if 0 <= skip < n:
        own = wide[skip]
        wide[skip] = 0.0
        total = _sum_of(wide, n)
        wide[skip] = own
        return total
    return _sum_of(wide, n)


@numba.njit(fastmath=_LOOP, inline="never")
def _round_into(wide, ob):
    # the block's float64 entries into ob (its dtype: each rounded once)
    for j in range(ob.shape[0]):
        ob[j] = wide[j]


@numba.njit(inline="always")
def _reformed(spread, b, temperature, mv, ell_t, wide):
    # whether a float64 forward gradient row of this spread max_c |s_c - t_c| (b: max_c
    # t_c) is formed again by _exact_forward_row: SPREAD_FLOOR b <= spread < _CANCEL b
    # (below: the caller's rows), not a teacher taken as it is (T = 1, ell_t = -m_v:
    # _given's t_c = e^(v_c), not normalised; a row whose teacher sums to 1 exactly reads
    # the same and keeps the one pass)
    if not wide or not _SPREAD_FLOOR * b <= spread < _CANCEL * b:
        return False
    return not (temperature == 1.0 and ell_t == -mv)


_MARGIN = 2.0**-20
"""_sure's relative margin about the spread's bounds (the one pass's spread and
_exact_forward_row's differ by a few ulps of b, at least 2**15 below either bound's
size: 2**-36 of it)."""


@numba.njit(inline="always")
def _formula_holds(zj, stats, temperature):
    # whether _exact_forward_row holds on a row of these statistics (D, m_z, ell_s, m_v,
    # ell_t) whose teacher's first top class j has the student's logit zj: s_j >= t_j /
    # 2 (log s_j = (z_j - m_z)/T - ell_s, log t_j = -ell_t; a margin of 0.0001 over
    # log 2: rounding) where every row _reformed takes is (a spread below t_j / 2), its
    # e^sigma'_c = s_c / s_j below 2 / t_j; not a teacher taken as it is (_reformed's)
    if temperature == 1.0 and stats[4] == -stats[3]:
        return False
    return (zj - stats[1]) / temperature - stats[2] >= -stats[4] - 0.6930


@numba.njit(inline="always")
def _sure(spread, b):
    # whether _exact_forward_row's spread (-1 where not formed) is inside [SPREAD_FLOOR b,
    # _CANCEL b) by _MARGIN: the one pass's spread is there too, and its rule re-forms the
    # row (the backward kernel's rows formed first, distillation_backward_kernel)
    return _SPREAD_FLOOR * b * (1.0 + _MARGIN) <= spread < _CANCEL * b * (1.0 - _MARGIN)


@numba.njit(fastmath=_LOOP, inline="never")
def _exact_terms_block(zb, vb, sb, pb, scalars):
    # the block's e^sigma'_c into sb and P_c = e^sigma'_c expm1(delta'_c) = e^tau'_c -
    # e^sigma'_c into pb (_exact_forward_row): sigma'_c = (z_c - z_r)/T and tau'_c = (v_c
    # - m_v)/T as pairs (exact differences, _log_ratio's quotients), delta' = tau' -
    # sigma' as the pair h + lo (TwoSum), its expm1 taken at _FLOOR where h is below (-1
    # there); where e^sigma' is 0, e^tau' (a class masked on both sides: 0). Two
    # exponentials an entry, both formed on every entry and picked (no branch: the loop
    # vectorises; issue 13, branch distfwd2: three, the third in a branch, took 2.5 ns an
    # entry where this takes 1.6)
    zj, mv, inv_t, temperature = scalars
    exact = _power_of_two(temperature)
    wide = zb.itemsize == 8
    for j in range(zb.shape[0]):
        qs, ls = _pair_quotient(zb[j], zj, inv_t, temperature, exact, wide)
        qt, lt = _pair_quotient(vb[j], mv, inv_t, temperature, exact, wide)
        live = qs > _FLOOR
        x = qs if live else qt  # (the exponential formed: e^sigma', else e^tau')
        x_lo = ls if live else lt
        seen = x > _FLOOR
        e = exp_of_pair(x if seen else _FLOOR, x_lo if seen else 0.0, 0.0)
        e = e if seen else 0.0
        h = qt - qs
        b = h - qt  # (TwoSum: qt - qs = h + its low part, exactly)
        inside = h > _FLOOR
        lo = ((qt - (h - b)) + (-qs - b)) + (lt - ls)
        m1 = expm1_of_pair(h if inside else _FLOOR, lo if inside else 0.0)
        sb[j] = e if live else 0.0
        pb[j] = e * m1 if live else e


@numba.njit(fastmath=_LOOP, inline="always")
def _pair_quotient(x, m, inv_t, temperature, exact, wide):
    # (x - m)/T as the pair q + lo: the difference exact (_exact_difference), the
    # quotient's remainder by an FMA (_log_ratio's)
    d, d_lo = _exact_difference(x, m, wide)
    q = d * inv_t
    if exact:
        return q, d_lo * inv_t
    return q, ((d - q * temperature) + d_lo) * inv_t


@numba.njit(inline="never")
def _exact_forward_row(zr, vr, mv, temperature, r, ob, kept, j=-1):
    # The row's forward gradient r (s_c - t_c) into ob without the difference of nearly
    # equal probabilities (issue 13, branch distfwd1). Centred at the teacher's first top
    # class j (tau'_j = 0, m_v = v_j) with sigma'_c = (z_c - z_j)/T: t_c = s_c e^delta'_c
    # / E_s[e^delta'], delta' = tau' - sigma', so with E_c = expm1(delta'_c) and M =
    # E_s[E] = P/S (S = sum_c e^sigma'_c, P = sum_c e^sigma'_c E_c, compensated)
    #     s_c - t_c = s_c (M - E_c)/(1 + M) = (e^sigma'_c M - P_c)/(S + P)
    # where M and E_c are small together: their errors are of their size, not of s_c's.
    # kept: float64 (2, classes) for e^sigma' and P. Returns the row's spread max_c |s_c
    # - t_c| of these entries (before r) where formed, else -1.0; j: the teacher's first
    # top class where the caller has it (-1: found here)
    classes = zr.shape[0]
    j = _first_of(vr, mv) if j < 0 else j
    scalars = (np.float64(zr[j]), mv, 1.0 / temperature, temperature)
    total, total_lo, w, w_lo = 0.0, 0.0, 0.0, 0.0
    for start in range(0, classes, BLOCK):
        stop = min(classes, start + BLOCK)
        at = slice(start, stop)
        sb, pb = kept[0, at], kept[1, at]
        _exact_terms_block(zr[at], vr[at], sb, pb, scalars)
        total, total_lo = two_sum(total, total_lo, _sum_of(sb, stop - start))
        w, w_lo = two_sum(w, w_lo, _sum_of(pb, stop - start))
    total += total_lo
    w += w_lo
    # S + P = sum_c e^tau'_c >= 1, and S <= 2 (S + P) (s_j >= t_j / 2: _reformed's rows
    # are such); else (a spread of t_j / 2 or more, where nothing cancels) False, ob as it
    # was
    if not (total + w >= 1.0 and total <= 2.0 * (total + w)):
        return -1.0
    mean = w / total
    both = total + w
    factor = r / both
    spread = 0.0
    for start in range(0, classes, BLOCK):
        stop = min(classes, start + BLOCK)
        at = slice(start, stop)
        spread = max(spread, _exact_block(kept[0, at], kept[1, at], ob[at], mean, factor))
    return spread / both


@numba.njit(fastmath=_LOOP, inline="never")
def _exact_block(sb, pb, ob, mean, r):
    # the block's entries r' (e^sigma'_c M - P_c), r' = r/(S + P) (_exact_forward_row);
    # + 0.0: +0 at a class masked on both sides (e^sigma' = P = 0), as the other rows;
    # and the block's max_c |e^sigma'_c M - P_c| (an integer maximum: vectorised)
    spread = 0
    for j in range(ob.shape[0]):
        u = sb[j] * mean - pb[j]
        ob[j] = u * r + 0.0
        spread = max(spread, float64_to_bits(abs(u)))
    return bits_to_float64(spread)
