r"""Linear cross-entropy without the logits: blocks of tokens (and of the vocabulary).

Design
------
With hidden states :math:`h` (N x D), classifier :math:`W` (V x D) and bias :math:`b`,
the logits :math:`z = hW^\top + b` (N x V) are the largest tensor of a language-model
step. Everything the loss and its gradients need from them is per row, so they are
formed one block of :math:`N_c` tokens (and, when V is large, :math:`V_c` classes) at a
time and dropped:

* forward: :math:`z'_{ic} = c_{ic}/T`, :math:`c = \operatorname{cap}(z)`; the
  log-sum-exp is kept online over vocabulary blocks as the maximum :math:`m` of the
  *undivided* :math:`c` and the float64 sum :math:`s'` of :math:`e^{(c - m)/T}` over
  all terms but one maximal one (a block with a larger maximum :math:`m'` rescales by
  :math:`e^{(m - m')/T}` and moves the old maximal term into :math:`s'`),
  :math:`\ell = \operatorname{log1p}(s')`, :math:`\operatorname{LSE} = m/T + \ell`
  and :math:`\log p_y = (c_y - m)/T - \ell`: the temperature divides the shifted
  capped logits, as ``crossent.losses._terms.softmax_rows`` (:math:`c/T` overflows
  huge float32 products for :math:`T < 1` where the loss is finite). The forward
  keeps :math:`(m, \ell)` of each row (float64) for the backward, not the LSE
  (issue 13: :math:`m + \log s` lost every log-partition below an ulp of :math:`m`,
  the loss :math:`e^{-d}` of a confident row, as ``crossent.losses``' kernels keep
  it); the label's :math:`z'_y` is gathered from the block that holds it and, for label
  smoothing, :math:`D_i = \sum_c w_c (c_{ic} - m_i) \le 0` kept online in float64
  (:class:`_ClassSum`). The loss of row i is (as in
  :func:`crossent.softmax_cross_entropy`)

  .. math:: L_i = -(1-\varepsilon) w_{y_i} \log p_{y_i}
            + \tfrac{\varepsilon}{V}\Big(\textstyle\sum_c w_c\,\ell_i
            - D_i/T\Big) + \lambda\,\omega_i \operatorname{LSE}_i^2,

  the smoothing term :math:`\sum_c w_c(\operatorname{LSE}_i - z'_{ic})` as two terms
  :math:`\ge 0` (issue 13: the difference of :math:`\sum_c w_c \operatorname{LSE}_i`
  and a float32 :math:`\sum_c w_c z'_{ic}` overflowed near :math:`3\cdot 10^{38}` and
  lost :math:`\ell` beside a large :math:`m`).

* gradient: :math:`G_i = r_i\,[(A_i + 2\lambda\omega_i\operatorname{LSE}_i)\,p_i
  - (1-\varepsilon) w_{y_i} e_{y_i} - \tfrac{\varepsilon}{V} w] \odot
  \operatorname{sech}^2(z_i/s)/T` with :math:`p = e^{(c - m)/T - \ell}` and :math:`r_i` the
  upstream gradient of row i (0 on ignored rows), then
  :math:`\partial h = G W`, :math:`\partial W \mathrel{+}= G^\top h`,
  :math:`\partial b \mathrel{+}= \sum_i G_i` (on the CPU a :math:`\partial h` block
  that is not finite is formed again with float64 sums, :func:`_finite_row_gradient_`:
  float32 partial sums overflow near :math:`10^{38}`). The label's entry is formed as
  :math:`g\,\operatorname{expm1}(\log p_y) + (c - g)\,p_y` with
  :math:`g = (1-\varepsilon) w_y`, :math:`c = A + 2\lambda\omega\,\mathrm{LSE}`, so
  :math:`p_y - 1` keeps its digits when :math:`p_y \to 1` (the regime where a
  rounded :math:`p_y` minus 1 loses all of them).

* When autograd will need the gradients and the reduction is a scalar (``'mean'`` or
  ``'sum'``, whose per-row upstream is the same known constant), the forward forms
  them from the same logits block: three matrix products in all, as the naive
  ``F.cross_entropy(F.linear(h, W), y)``. The backward then only scales them, in
  place, by the incoming scalar (no second gradient-sized buffer; a second backward
  through the graph fails on the saved tensors' version counter instead of scaling
  twice). For ``'none'`` (any per-row upstream) the forward saves the
  per-row LSE and :math:`\log p_y` (float64) and the backward recomputes each block:
  four products. With the
  vocabulary split into blocks, forming the gradient needs the final LSE of the row,
  so the block is recomputed in a second sweep (four products too).

Block size. Each token block of :math:`R` rows streams all of :math:`W` from memory
twice (:math:`z = h_c W^\top` and :math:`\partial h_c = G W`) and reads and writes
all of :math:`\partial W` (:math:`\partial W \mathrel{+}= G^\top h_c`): 3 x 131 MB
at V = 32000, D = 1024, against :math:`2 R V D` multiply-adds per product. Below
some 500 rows that traffic, not the multipliers, sets the time. Measured on the
2-core AVX2 EPYC (N = 4096, D = 1024, V = 32000, float32, process CPU time of 2
threads, interleaved with the naive ``F.cross_entropy(F.linear(h, W), y)``; the
machine was shared, so CPU time, not wall time): the three products at 131-row
blocks took 10.2 + 9.0 + 5.2 s against 5.3 + 4.9 + 4.5 s as one product each
(about 2x for :math:`z` and :math:`\partial h`), at 1024 rows 5.7 + 5.3 + 4.6 s;
the elementwise passes over the blocks are a few percent of the whole either
way. Whole forward + backward over naive: 1.63x at 16 MiB blocks (131 rows),
1.10x at 64 MiB (512 rows), 0.97x at 128 MiB (1024 rows). (With the old 16 MiB
budget, a ``chunk_size`` of 512 or 1024 rows split the vocabulary and recomputed
each block: four products, which hid the gain.) So a block is
``BLOCK_BYTES`` = 96 MiB, split into equal token blocks (683 rows here); the peak
memory rise is the gradients (dW 125 MiB, dh 16 MiB) plus one block: 208 MiB
measured, against 262 MiB for PyTorch 2.13's chunked ``F.linear_cross_entropy`` and
about 1500 MiB for the naive form (96 MiB stays under the chunked path's figure;
128 MiB blocks did not: 379 MiB, with two blocks alive). Exactly one:
every name of a block is dropped before the next is formed (holding the last one
while the next was allocated made two). The first block writes ``dW`` and each
``dh`` block (``beta=0``) instead of adding to zeros. With these, the benchmark
(``bench_torch_losses.py --skip-ce --dtypes float32 --repeats 2 --turn 1 --linear
crossent,naive``, load about 2) gave 8.07 s against naive's 8.42 s (0.96x).

Precision: the matrix products' results are float32 for float32/bfloat16/float16
inputs (float64 for float64), from ``_products.Products``, the one place that
decides their operands. On the CPU bfloat16/float16 ``W`` is upcast to float32 once
(no fast bf16 matrix product there; the product of two bf16 values is exact in
float32). On CUDA bfloat16/float16 ``h`` and ``W`` stay in their dtype and the tensor
cores return float32 (``torch.mm(..., out_dtype=torch.float32)``): the same exact
products, no float32 copy of ``W``, and ``NATIVE_BLOCK_BYTES`` blocks; the backward's
float32 :math:`G` goes into those products as two bf16 halves
:math:`G_{hi} + G_{lo}` (:math:`2^{-17}` of :math:`G`, against :math:`2^{-9}` for
:math:`G` rounded once as eager PyTorch's bf16 ``dlogits``; fp16 blocks scaled by a
power of two first), see ``_products.py``. Gradients accumulate in float32 and are
rounded once to the input dtype at the end. The exponentials :math:`e^{(c - m)/T}`
and :math:`p = e^{(c - m)/T - \ell}` are formed in float64 a few rows at a time (one
``SUB_BYTES`` buffer beside the block: 16 MiB more peak memory, some 15 % more time at
D = 512 on the loaded 2-core Xeon, issue 13), each rounded once: in float32, :math:`z' -
\mathrm{LSE}` carried the LSE rounded to an ulp of :math:`m` (median ``dh`` errors
15-21 ulps at logits near 40, against the naive float32 path's 6) and :math:`z' - m`
half an ulp of itself (32 ulps of :math:`e^{-70}`). The rest of the elementwise work
on a block (cap, the gradient block :math:`G`) is in float32 too, except with
soft-capping on the CPU
(``_launch.work_dtype``, issue 13): there each float32 product block is converted to
float64, :math:`G` formed in float64 and rounded once to float32 for the products,
and the token blocks are sized for the float64 block (half the rows). With ``W = I``
(the logits exact) :math:`G` is then within half an ulp; in float32 it was some 350
ulps off (1e7 where :math:`|z| \gg s`). The cap is ``_launch._soft_capped``'s (in
place on the block), the temperature divides the shifted values (:func:`_tempered_`, in
the float64 buffer) and the chain rule's factor
:math:`\operatorname{sech}^2(z/s)` is ``_launch._times_cap_slope_``'s
:math:`4v/(1 + v)^2`, :math:`v = e^{-2|z|/s}` (in place on the block :math:`z/s` and on
:math:`G`), not :math:`1 - \tanh^2`, which cancels where :math:`|z| \gg s`, nor
:math:`1/\cosh^2`, which overflows to 0 past :math:`|z|/s = 355` (the slope is a
float64 subnormal up to 372).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..losses._terms import label_offset, p_coefficient
from ._backend import Options
from ._launch import (
    _far_rows,
    _infinite_at,
    _label_target_weights,
    _soft_capped,
    _times_cap_slope_,
    _unshifted_lse,
    work_dtype,
)
from ._products import Products

__all__ = [
    "BLOCK_BYTES",
    "NATIVE_BLOCK_BYTES",
    "SUB_BYTES",
    "Gradients",
    "LinearProblem",
    "auto_chunks",
    "backward_pass",
    "forward_pass",
    "row_stats",
]

#: Bytes of one logits block (the only N x V-like temporary), in the compute dtype.
#: Large on purpose: every token block streams all of ``W`` twice (``z = h_c W^T`` and
#: ``dh_c = G W``) and reads and writes all of ``dW``, so the products run at the memory's
#: speed, not the multipliers', below some 500 rows (see the module's notes).
BLOCK_BYTES = 96 * 2**20

#: The same with native bf16/fp16 products (``_products``, CUDA): 256 MiB, some 512
#: rows at V = 128256. Each token block reads and writes all of the float32 ``dW``
#: (2.1 GB at V = 128256, D = 4096: some 0.9 ms of an H200's 4.8 TB/s, beside 1.4 ms
#: of the block's bf16 ``dW`` product), so fewer, larger blocks; the peak memory rise
#: is then ``dW`` plus this block and its bf16 halves :math:`[G_{hi}; G_{lo}]` (as
#: large again): some 2.6 GB there, against 11 GB for the eager
#: ``F.cross_entropy((h @ W.T).float(), y)``.
NATIVE_BLOCK_BYTES = 256 * 2**20


def auto_chunks(
    tokens: int,
    classes: int,
    itemsize: int,
    chunk_size: int | None,
    vocab_chunk: int | None,
    budget: int = BLOCK_BYTES,
) -> tuple[int, int]:
    """Token and vocabulary block sizes: a block of at most about ``budget`` bytes
    (``BLOCK_BYTES``; ``NATIVE_BLOCK_BYTES`` for native products).

    Tokens first (whole rows keep three matrix products), in blocks of equal size
    (4096 rows at V = 32000: 6 blocks of 683, not 5 of 786 and one of 166); the
    vocabulary is split only when 64 rows of it exceed twice the budget.
    """
    tokens, classes = max(tokens, 1), max(classes, 1)  # V = 0 (no rows then): no division by 0
    if chunk_size is not None:
        rows = chunk_size
    else:
        rows = max(64, budget // (itemsize * classes))
        rows = -(-tokens // -(-tokens // rows))  # ceil(tokens / number of blocks)
    rows = max(1, min(rows, tokens))
    if vocab_chunk is None:
        vocab_chunk = (
            classes
            if rows * classes * itemsize <= 2 * budget
            else max(1024, budget // (itemsize * rows))
        )
    return rows, max(1, min(vocab_chunk, classes))


@dataclass
class LinearProblem:
    """The inputs of one call in the compute dtype, with the per-row label quantities."""

    h: torch.Tensor  # (N, D) as given (blocks are upcast on use when widened)
    w: torch.Tensor  # (V, D) in the dtype of the products' operands
    b: torch.Tensor | None  # (V,) in the dtype of the products' results
    safe: torch.Tensor  # (N,) int64 labels, ignored rows at class 0
    active: torch.Tensor  # (N,) bool
    class_weight: torch.Tensor | None  # (V,) work dtype
    w_y: torch.Tensor  # (N,) work dtype: class weight of the label (1 without weights)
    omega: torch.Tensor  # (N,) example weight, 0 on ignored rows
    a: torch.Tensor  # (N,) A_i = (1 - eps) w_y + eps/V sum(w)
    total_w: float | torch.Tensor
    options: Options  # label_smoothing, z_loss, temperature, soft_cap
    token_chunk: int
    vocab_chunk: int
    work: torch.dtype  # of the elementwise work on the blocks (see ``work_dtype``)
    masked: bool = False  # whether ``hidden`` zeroes the ignored rows (there are some)
    products: Products = field(default_factory=lambda: Products(torch.float32, torch.float32))

    @classmethod
    def build(
        cls,
        h: torch.Tensor,
        w: torch.Tensor,
        b: torch.Tensor | None,
        labels: torch.Tensor,
        class_weight: torch.Tensor | None,
        opts: Options,
        *,
        ignore_index: int | None,
        chunk_size: int | None,
        vocab_chunk: int | None,
    ) -> LinearProblem:
        """The problem of a call with the checked options ``opts`` (block sizes None: auto)."""
        products = Products.of(h, w)
        acc = products.output
        # float64 blocks with soft-capping on the CPU (products still in float32).
        work = torch.float64 if acc == torch.float64 else work_dtype(h, opts.soft_cap)
        classes = w.shape[0]
        active = (
            torch.ones_like(labels, dtype=torch.bool)
            if ignore_index is None
            else labels != ignore_index
        )
        safe = torch.where(active, labels, torch.zeros_like(labels))
        if class_weight is None:
            cw = None
            w_y = torch.ones(labels.shape, dtype=work, device=h.device)
            total_w: float | torch.Tensor = float(classes)
        else:
            cw = class_weight.detach().to(work)
            w_y = cw[safe]
            total_w = cw.sum()
        eps = opts.label_smoothing
        omega = w_y * active
        a = (1 - eps) * w_y + (eps / classes) * total_w if eps else w_y
        budget = NATIVE_BLOCK_BYTES if products.native else BLOCK_BYTES
        rows, vocab = auto_chunks(
            labels.shape[0], classes, torch.finfo(work).bits // 8, chunk_size, vocab_chunk, budget
        )
        return cls(
            h=h.detach(),
            w=w.detach().to(products.operand),  # native: W itself, no copy
            b=None if b is None else b.detach().to(acc),
            safe=safe,
            active=active,
            class_weight=cw,
            w_y=w_y,
            omega=omega,
            a=a,
            total_w=total_w,
            options=opts,
            token_chunk=rows,
            vocab_chunk=vocab,
            work=work,
            masked=ignore_index is not None and cls.reads_mask(h, active),
            products=products,
        )

    @staticmethod
    def reads_mask(h: torch.Tensor, active: torch.Tensor) -> bool:
        """Whether some row is ignored (given an ``ignore_index``): read on the CPU; off it
        True without a host sync (whenever rows may be ignored)."""
        return h.device.type != "cpu" or not bool(active.all())

    def hidden(self, rows: slice) -> torch.Tensor:
        r"""The hidden states of the token block ``rows`` in the products' dtype, those of
        the ignored rows replaced by 0 (a copy) when there are any.

        An ignored row's logits are never used (issue 13): its loss and its gradient
        are 0, also where its :math:`h_i` holds a NaN or an infinity (padding positions),
        which then raise no error; zeroed, they cannot reach :math:`\partial W =
        G^\top h` either (:math:`0 \cdot \mathrm{NaN}` is NaN), nor the check of the
        logits (:func:`crossent.torch._ops._check_finite`). N x D elementwise work
        beside the N x V x D products."""
        hc = self.h[rows].to(self.products.operand)
        if not self.masked:
            return hc
        return torch.where(self.active[rows, None], hc, 0.0)

    @property
    def host_checks(self) -> bool:
        """Whether checks that read values on the host may run (on the CPU only: on
        accelerators each would be a synchronisation)."""
        return self.h.device.type == "cpu"

    @property
    def acc(self) -> torch.dtype:
        """The dtype of the products' results and of the gradients' accumulators."""
        return self.products.output

    @property
    def classes(self) -> int:
        return int(self.w.shape[0])

    def token_blocks(self) -> list[tuple[int, int]]:
        n, step = self.h.shape[0], self.token_chunk
        return [(i, min(n, i + step)) for i in range(0, n, step)]

    def vocab_blocks(self) -> list[tuple[int, int]]:
        v, step = self.classes, self.vocab_chunk
        return [(j, min(v, j + step)) for j in range(0, v, step)]

    def logits(
        self, hc: torch.Tensor, v0: int, v1: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        r"""The capped logits :math:`c = s\tanh(z/s)` of a block (a fresh tensor in the
        work dtype; ``z`` without a cap), undivided by :math:`T`, and ``z/s`` when
        soft-capping (for the chain rule's :math:`\operatorname{sech}^2(z/s)`)."""
        b = None if self.b is None else self.b[v0:v1]
        z = self.products.logits(hc, self.w[v0:v1], b)
        z = z.to(self.work)  # the float32 product dropped at once when widened
        # The block is ours (the product, or its float64 copy): capped in place.
        return _soft_capped(z, self.options.soft_cap, overwrite=True)

    def gradient_block(
        self,
        z: torch.Tensor,
        t: torch.Tensor | None,
        stats: torch.Tensor,
        log_p: torch.Tensor,
        scale: torch.Tensor,
        rows: slice,
        v0: int,
        v1: int,
        *,
        normalised: bool = False,
    ) -> torch.Tensor:
        r"""``d L / d z`` of a block, in place of ``c`` (``scale`` = upstream x active).

        ``stats`` (:math:`m` and :math:`\ell`, :func:`row_stats`) and ``log_p``
        (:math:`\log p_y = (c_y - m)/T - \ell`) are the rows' float64 statistics. With
        ``normalised``, ``z`` already holds the probabilities :math:`p` (the forward's,
        normalised). Otherwise :math:`p = e^{(c - m)/T - \ell}` is formed in float64
        (:func:`_probabilities_`): no rounding of the LSE to the work dtype (an ulp of
        :math:`m`, some 16 float32 ulps at :math:`m = 40`, alike for every entry of the
        row) nor of :math:`(c - m)/T - \ell`.
        """
        eps, z_loss, classes = self.options.label_smoothing, self.options.z_loss, self.classes
        w_y, a = self.w_y[rows], self.a[rows]
        m, ell = stats[:, 0], stats[:, 1]
        temperature = self.options.temperature
        target = (1 - eps) * w_y
        if z_loss:
            lse = _unshifted_lse(m, ell, temperature)
            coef = p_coefficient(a, self.omega[rows], lse, z_loss=z_loss)
            # c - g from c's parts, not from c rounded (issue 13)
            gap = label_offset(a, target, self.omega[rows], lse, z_loss=z_loss)
        else:
            coef, gap = a, a - target
        label = self.safe[rows] - v0
        here = (label >= 0) & (label < v1 - v0)
        label = label.clamp(0, v1 - v0 - 1)[:, None]
        p = z if normalised else _probabilities_(z, m, ell, temperature)
        # The label's entry g expm1(log p_y) + (c - g) p_y keeps p_y - 1's digits.
        g_y = target * torch.expm1(log_p) + gap * p.gather(1, label)[:, 0]
        grad = p.mul_((coef * scale).to(p.dtype)[:, None])
        g_y = (g_y * scale).to(grad.dtype)
        grad.scatter_(1, label, torch.where(here, g_y, grad.gather(1, label)[:, 0])[:, None])
        if eps:
            uniform = (
                torch.full((v1 - v0,), eps / classes, dtype=grad.dtype, device=grad.device)
                if self.class_weight is None
                else (eps / classes) * self.class_weight[v0:v1]
            )
            grad.addr_(scale, uniform, alpha=-1)
        if t is not None:  # z/s is not used again: sech^2(z/s) formed in its place
            grad = _times_cap_slope_(grad, t)
        if self.options.temperature != 1.0:
            grad /= self.options.temperature
        return grad


@dataclass
class Gradients:
    """Float32 (or float64) accumulators for the three gradients."""

    h: torch.Tensor | None
    w: torch.Tensor | None
    b: torch.Tensor | None


def _empty_grads(problem: LinearProblem, bias: bool, *, unscaled: bool = False) -> Gradients:
    """The accumulators; ``dW`` is written (not added to) by the first token block.

    ``dh`` is in the input's dtype (each block rounded once), but ``unscaled`` (the
    forward's gradients, which the backward still multiplies by the upstream scalar):
    then in ``acc`` too, as ``dW`` and ``db``, so that they are rounded to the input's
    dtype once, after that product (``_ops._linear_backward``)."""
    dev, acc = problem.h.device, problem.acc
    fresh = torch.zeros if problem.h.shape[0] == 0 else torch.empty
    return Gradients(
        h=torch.empty(problem.h.shape, dtype=acc if unscaled else problem.h.dtype, device=dev),
        w=fresh(problem.w.shape, dtype=acc, device=dev),
        b=torch.zeros(problem.classes, dtype=acc, device=dev) if bias else None,
    )


def _accumulate(
    problem: LinearProblem,
    grads: Gradients,
    grad: torch.Tensor,
    hc: torch.Tensor,
    gh: torch.Tensor,
    v0: int,
    v1: int,
    *,
    first_rows: bool,
) -> None:
    """``db_c += sum G``, ``dh_c (+)= G W_c``, ``dW_c (+)= G^T h_c``
    (:meth:`Products.gradient_products`, which may overwrite ``grad``); written (no
    zero fill and no read) on each accumulator's first block."""
    if grads.b is not None:
        grads.b[v0:v1] += grad.sum(0)
    assert grads.w is not None
    problem.products.gradient_products(
        grad,
        hc,
        problem.w[v0:v1],
        gh,
        grads.w[v0:v1],
        first_h=v0 == 0,
        first_w=first_rows,
    )


def _row_gradient(grads: Gradients, rows: slice, acc: torch.dtype) -> torch.Tensor:
    """Where ``dh`` of a token block accumulates: ``dh`` itself when it is in ``acc``."""
    assert grads.h is not None
    if grads.h.dtype == acc:
        return grads.h[rows]
    return torch.empty((rows.stop - rows.start, grads.h.shape[1]), dtype=acc, device=grads.h.device)


def _finite_row_gradient_(
    problem: LinearProblem,
    gh: torch.Tensor,
    hc: torch.Tensor,
    stats: torch.Tensor,
    log_p: torch.Tensor,
    scale: torch.Tensor,
    rows: slice,
) -> None:
    r"""``dh`` of a token block formed anew with float64 sums where the float32 product
    :math:`G W` was not finite (on the CPU; in place of ``gh``).

    Issue 13: with weights near :math:`10^{38}` the float32 partial sums of
    :math:`\sum_c G_{ic} W_{cd}` can overflow where the sum does not (:math:`|G_{ic}|
    \le 1` per unit of upstream, but :math:`\sum_c |G_{ic}|` up to 2): ``inf`` for a
    true :math:`2.8\cdot 10^{38}` (PyTorch's own ``F.linear`` + ``F.cross_entropy``
    backward gives the same ``inf``). Then each gradient block :math:`G` is formed again,
    rounded to float32 as before, and multiplied by :math:`W` in float64 (the products
    exact, no overflow below :math:`10^{308}`), the sum rounded once: ``inf`` only where
    the true gradient overflows. Costs one finiteness check of the ``dh`` block (rows x
    D, a small fraction of the logits block) where nothing overflowed. Not on
    accelerators: a check there is a host synchronisation per block; their products'
    sums stay in float32, as PyTorch's."""
    if gh.device.type != "cpu" or bool(torch.isfinite(gh).all()):
        return
    wide = torch.zeros(gh.shape, dtype=torch.float64)
    for v0, v1 in problem.vocab_blocks():
        z, t = problem.logits(hc, v0, v1)
        grad = problem.gradient_block(z, t, stats, log_p, scale, rows, v0, v1)
        del z
        wide.addmm_(grad.to(problem.acc).double(), problem.w[v0:v1].double())
        del grad, t
    gh.copy_(wide)


def _store_row_gradient(grads: Gradients, rows: slice, gh: torch.Tensor) -> None:
    assert grads.h is not None
    if gh.dtype != grads.h.dtype:
        grads.h[rows] = gh


#: Bytes of the float64 buffer of the exponentials (a few rows of a block at a time):
#: fewer, larger steps than 4 MiB's (each elementwise operation is a parallel region,
#: which a loaded machine makes slow), a sixth of a block.
SUB_BYTES = 16 * 2**20


def _wide(z: torch.Tensor) -> torch.dtype:
    """The dtype of the exponentials of ``z``: float64 on the CPU; on accelerators
    ``z``'s own (float64 runs at a small fraction of float32's rate on most GPUs, see
    :func:`crossent.torch._launch.work_dtype`)."""
    return torch.float64 if z.device.type == "cpu" else z.dtype


def _sub_blocks(z: torch.Tensor) -> tuple[list[slice], torch.Tensor]:
    """Rows of ``z`` a few at a time and a float64 buffer for them (``SUB_BYTES``) when
    widened, else all at once, in place (the buffer is ``z``)."""
    n, v = z.shape
    if _wide(z) == z.dtype:
        return [slice(0, n)], z
    step = max(1, min(n, SUB_BYTES // (8 * max(1, v))))
    buffer = torch.empty((step, v), dtype=_wide(z), device=z.device)
    return [slice(i, min(n, i + step)) for i in range(0, n, step)], buffer


def _tempered_(shifted: torch.Tensor, temperature: float) -> torch.Tensor:
    r"""``shifted / T`` in place (``shifted`` itself at :math:`T = 1`): the temperature
    divides differences of capped logits, never the logits (:math:`c/T` overflows for
    :math:`T < 1` where :math:`(c - m)/T \le 0` cannot)."""
    return shifted if temperature == 1.0 else shifted.div_(temperature)


def row_stats(stats: torch.Tensor, temperature: float) -> torch.Tensor:
    r"""The rows' :math:`\operatorname{LSE} = m/T + \ell` from the forward's float64
    ``stats`` (:math:`m`, the row maximum of the undivided capped logits, and
    :math:`\ell = \operatorname{lse}((c - m)/T)`, a row each)."""
    return _unshifted_lse(stats[:, 0], stats[:, 1], temperature)


def _probabilities_(
    z: torch.Tensor, m: torch.Tensor, ell: torch.Tensor, temperature: float
) -> torch.Tensor:
    r""":math:`p = e^{(c - m)/T - \ell}` in place of ``z`` (the capped logits :math:`c`),
    each entry formed in float64 (a few rows at a time; on the CPU) and rounded once:
    no rounding of :math:`(c - m)/T - \ell` to ``z``'s dtype (half an ulp of it, 32
    float32 ulps of :math:`p` at a distance of 70)."""
    rows, buffer = _sub_blocks(z)
    for r in rows:
        e = z if buffer is z else buffer[: r.stop - r.start].copy_(z[r])
        e = _tempered_(e.sub_(m[r, None]), temperature).sub_(ell[r, None]).exp_()
        if buffer is not z:
            z[r] = e
    return z


@dataclass
class _ClassSum:
    r"""The label smoothing's :math:`D_i = \sum_c w_c (c_{ic} - m_i) \le 0` of a token
    block, kept online over the vocabulary blocks against the running maximum
    :math:`m_i` of the capped logits, in float64.

    The smoothing term :math:`\sum_c w_c(\operatorname{LSE}_i - z'_{ic})` is then
    :math:`(\sum_c w_c)\,\ell_i - D_i/T`, two terms :math:`\ge 0`: no cancellation,
    and nothing overflows where the true value does not. (Issue 13: it was
    :math:`(\sum_c w_c)\operatorname{LSE}_i - \sum_c w_c z'_{ic}`, the second sum
    accumulated in the work dtype: float32 logits near :math:`3\cdot 10^{38}` summed to
    ``inf`` and the loss came back ``-inf``; and the difference of two sums of size
    :math:`V m` lost :math:`\ell` beside a large :math:`m`, e.g. all logits tied at
    :math:`10^{30}`.) Each block's differences :math:`c - m` are those
    :func:`_exp_rest_` forms in float64 for its exponentials (in the work dtype on
    accelerators, see :func:`_wide`); a new maximum :math:`m' > m` moves the classes
    seen before by :math:`(\sum_{\text{seen}} w_c)(m - m')`, also :math:`\le 0`.
    """

    sums: torch.Tensor  # (rows,) float64: D over the classes seen so far
    weight: torch.Tensor | None  # (V,) class weights (None: all 1)
    seen: float | torch.Tensor = 0.0  # sum of w_c over the classes seen so far
    columns: slice = field(default_factory=lambda: slice(0, 0))  # the vocabulary block added

    @classmethod
    def of(cls, problem: LinearProblem, rows: int) -> _ClassSum:
        sums = torch.zeros(rows, dtype=torch.float64, device=problem.h.device)
        return cls(sums, problem.class_weight)

    def move_to(self, m: torch.Tensor, m_new: torch.Tensor, v0: int, v1: int) -> None:
        """Rescale to the new maxima ``m_new`` (from ``m``) before block ``[v0, v1)``."""
        if v0 > 0:  # m is -inf before the first block, where nothing was seen
            self.sums += self.seen * (m.double() - m_new)
        self.columns = slice(v0, v1)
        block = v1 - v0 if self.weight is None else self.weight[v0:v1].double().sum()
        self.seen = self.seen + block

    def add_block(self, gaps: torch.Tensor, rows: slice) -> None:
        r"""Add :math:`\sum_c w_c g_c` of rows ``rows`` of the block's ``gaps`` :math:`c - m`."""
        if self.weight is None:
            self.sums[rows] += gaps.sum(1, dtype=torch.float64)
        else:
            self.sums[rows] += gaps @ self.weight[self.columns].to(gaps.dtype)


def _exp_rest_(
    z: torch.Tensor,
    m: torch.Tensor,
    top_at: torch.Tensor,
    temperature: float,
    *,
    normalise: bool,
    gaps: _ClassSum | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Float64 sums over each row of :math:`e^{(c - m)/T}`, apart: the term at
    ``top_at`` and the rest, the exponentials formed in float64 a few rows at a time.

    With ``normalise`` (the block holds whole rows, ``m`` their maxima), ``z`` is
    overwritten with :math:`p = e^{(c - m)/T} / (1 + \text{rest})`, rounded once.
    With ``gaps`` (label smoothing), :math:`\sum_c w_c (c_c - m) \le 0` of the block is
    added to it from the same float64 differences (:class:`_ClassSum`).
    """
    top = torch.empty(z.shape[0], dtype=torch.float64, device=z.device)
    rest = torch.empty_like(top)
    at, shift = top_at[:, None], m.to(torch.float64)
    rows, buffer = _sub_blocks(z)
    for r in rows:
        e = buffer[: r.stop - r.start]
        e = (e if buffer is z else e.copy_(z[r])).sub_(shift[r, None])
        if gaps is not None:
            gaps.add_block(e, r)
        e = _tempered_(e, temperature).exp_()
        kept = e.gather(1, at[r])
        # in place (no second temporary); float64 sums of the work dtype's terms
        # (accelerators: float32 exponentials, float64 accumulation)
        rest[r] = e.scatter_(1, at[r], 0.0).sum(1, dtype=torch.float64)
        top[r] = kept[:, 0]
        if normalise:
            z[r] = e.scatter_(1, at[r], kept).mul_((1 / (1 + rest[r]))[:, None])
    return top, rest


def forward_pass(
    problem: LinearProblem, *, row_scale: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Gradients | None]:
    r"""Per-row losses (float64: the callers round them to ``problem.acc``; a row past
    float32's range by itself stays finite for the mean, issue 13, branch torchrow1),
    float64 row statistics ``(N, 2)`` (:math:`m` and :math:`\ell`:
    :func:`row_stats`) and :math:`\log p_y`, and (when ``row_scale`` is given) the
    gradients.

    ``row_scale`` is the upstream gradient of each row's loss (zero on ignored rows is
    applied here); the gradients are then formed from the same logits blocks.

    The row statistics: the maximum :math:`m` and, in float64, the sum :math:`s'` of
    :math:`e^{z'_c - m}` over all terms but one maximal one, kept online over the
    vocabulary blocks (a block with a larger maximum moves the old maximal term into
    :math:`s'`), so :math:`\ell = \operatorname{log1p}(s')` and the loss
    :math:`(m - c_y)/T + \ell` keep a log-partition far below an ulp of :math:`m` (a
    confident row's :math:`e^{-d}`, which :math:`m + \log s` rounds to 0 or to an ulp
    of :math:`m`), as ``crossent.losses``' kernels do.
    """
    n, acc = problem.h.shape[0], problem.acc
    eps, z_loss = problem.options.label_smoothing, problem.options.z_loss
    loss = torch.empty(n, dtype=torch.float64, device=problem.h.device)
    # Per-row statistics in float64: near p_y = 1 the loss LSE - z'_y is a small
    # difference of two large numbers, which float32 would leave with few digits.
    stats_all = torch.empty((n, 2), dtype=torch.float64, device=problem.h.device)
    log_p_all = torch.empty(n, dtype=torch.float64, device=problem.h.device)
    temperature = problem.options.temperature
    grads = None
    if row_scale is not None:
        grads = _empty_grads(problem, problem.b is not None, unscaled=True)
    vocab = problem.vocab_blocks()
    for start, stop in problem.token_blocks():
        rows = slice(start, stop)
        hc = problem.hidden(rows)
        safe = problem.safe[rows]
        m = torch.full((stop - start,), -torch.inf, dtype=problem.work, device=hc.device)
        rest = torch.zeros(stop - start, dtype=torch.float64, device=hc.device)
        z_y = torch.zeros_like(m)
        gaps = _ClassSum.of(problem, stop - start) if eps else None
        kept = None
        for v0, v1 in vocab:
            z, t = problem.logits(hc, v0, v1)
            label = safe - v0
            here = (label >= 0) & (label < v1 - v0)
            picked = z.gather(1, label.clamp(0, v1 - v0 - 1)[:, None])[:, 0]
            z_y += torch.where(here, picked, torch.zeros_like(picked))
            top, top_at = z.max(1)
            m_new = torch.maximum(m, top)
            if gaps is not None:
                gaps.move_to(m, m_new, v0, v1)
            # One block: z' is not needed again, its probabilities overwrite it (when
            # the gradients are formed from them here).
            keep = len(vocab) == 1 and grads is not None
            top_term, block_rest = _exp_rest_(
                z, m_new, top_at, temperature, normalise=keep, gaps=gaps
            )
            # A new maximum: the old maximal term (1 before rescaling) joins the rest.
            factor = _tempered_(m.double() - m_new, temperature).exp_()
            rest = torch.where(
                top > m, rest * factor + factor + block_rest, rest + top_term + block_rest
            )
            m = m_new
            if keep:
                kept = (z, t)
            # Drop each name of the block now: one block alive at a time, not two
            # (the next block is allocated before a name still holding this one rebinds).
            del z, t
        ell = torch.log1p(rest)
        lse = _unshifted_lse(m.double(), ell, temperature)  # m/T in float64: no overflow
        log_p = _tempered_(z_y.double() - m, temperature) - ell
        a_loss = -(1 - eps) * problem.w_y[rows] * log_p
        if gaps is not None:  # sum_c w_c (LSE - z'_c) = (sum_c w_c) ell - D / T
            smooth = problem.total_w * ell - gaps.sums / temperature
            a_loss = a_loss + (eps / problem.classes) * smooth
        if z_loss:
            a_loss = a_loss + z_loss * problem.omega[rows] * lse * lse
        loss[rows] = _far_linear_rows(
            problem, torch.where(problem.active[rows], a_loss, torch.zeros_like(a_loss)), hc, rows
        )
        stats_all[rows, 0] = m
        stats_all[rows, 1] = ell
        log_p_all[rows] = log_p
        stats = stats_all[rows]
        if grads is None or row_scale is None:
            continue
        scale = row_scale[rows] * problem.active[rows]
        gh = _row_gradient(grads, rows, acc)
        for v0, v1 in vocab:
            if kept is not None:  # one vocabulary block: its p kept, no recompute
                p, t = kept
                grad = problem.gradient_block(
                    p, t, stats, log_p, scale, rows, v0, v1, normalised=True
                )
                kept = None
                del p
            else:
                z, t = problem.logits(hc, v0, v1)
                grad = problem.gradient_block(z, t, stats, log_p, scale, rows, v0, v1)
                del z
            grad = grad.to(acc)  # rounded once when widened
            _accumulate(problem, grads, grad, hc, gh, v0, v1, first_rows=start == 0)
            del grad, t
        _finite_row_gradient_(problem, gh, hc, stats, log_p, scale, rows)
        _store_row_gradient(grads, rows, gh)
    return loss, stats_all, log_p_all, grads


def _far_linear_rows(
    problem: LinearProblem, loss: torch.Tensor, hc: torch.Tensor, rows: slice
) -> torch.Tensor:
    r"""The losses ``loss`` of a token block, those that came out ``inf`` on the CPU formed
    again from their whole rows of logits by ``_launch._far_rows`` (issue 13: float64
    logits :math:`2\cdot 10^{308}` apart overflow :math:`c - m`, or :math:`(c - m)/T`
    for :math:`T < 1`, where the loss weighs the gap by :math:`\varepsilon/V` or
    :math:`(1-\varepsilon) w_y` and is finite, or :math:`T > 1` brings it in range).
    One check of a value per row where nothing overflowed; the rows again a few at a
    time (``BLOCK_BYTES`` of float64 logits)."""
    far = _infinite_at(loss) if problem.host_checks else None
    if far is None:
        return loss
    eps, classes = problem.options.label_smoothing, problem.classes
    step = max(1, BLOCK_BYTES // (8 * classes))
    for start in range(0, far.shape[0], step):
        at = far[start : start + step]
        labels = problem.safe[rows][at]
        v = _label_target_weights(labels, problem.class_weight, eps, classes)[0]
        capped = problem.logits(hc[at], 0, classes)[0]
        again = _far_rows(capped, v, problem.omega[rows][at].double()[:, None], problem.options)
        loss[at] = again.to(loss.dtype)
    return loss


def backward_pass(
    problem: LinearProblem,
    stats: torch.Tensor,
    log_p: torch.Tensor,
    upstream: torch.Tensor,
    *,
    bias: bool,
) -> Gradients:
    r"""Gradients for a per-row ``upstream``, recomputing each logits block, from the
    forward's float64 ``stats`` (:math:`m`, :math:`\ell`) and ``log_p`` (:math:`\log
    p_y`)."""
    acc = problem.acc
    grads = _empty_grads(problem, bias)
    for start, stop in problem.token_blocks():
        rows = slice(start, stop)
        hc = problem.hidden(rows)
        scale = upstream[rows].to(problem.work) * problem.active[rows]
        gh = _row_gradient(grads, rows, acc)
        for v0, v1 in problem.vocab_blocks():
            z, t = problem.logits(hc, v0, v1)
            grad = problem.gradient_block(z, t, stats[rows], log_p[rows], scale, rows, v0, v1)
            del z
            grad = grad.to(acc)
            _accumulate(problem, grads, grad, hc, gh, v0, v1, first_rows=start == 0)
            del grad, t
        _finite_row_gradient_(problem, gh, hc, stats[rows], log_p[rows], scale, rows)
        _store_row_gradient(grads, rows, gh)
    return grads
