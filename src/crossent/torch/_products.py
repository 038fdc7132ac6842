r"""The matrix products of the linear cross-entropy: which dtype they run in, one place.

Two kinds (:class:`Products`, chosen once per call by :meth:`Products.of`):

* **widened** (the CPU, float32, float64, and any accelerator without the operator
  below): bfloat16/float16 operands are upcast to float32 (float64 stays float64) and
  multiplied in that dtype. The product of two bf16/fp16 values is exact in float32,
  so this is the float32 sum of exact products. On the CPU this is the only kind (no
  fast bf16 matrix product there) and its results are unchanged.
* **native** (bfloat16/float16 ``input`` and ``linear_weight`` on CUDA, where
  ``torch.mm(a, b, out_dtype=torch.float32)``, the ``aten::mm.dtype`` overload added
  in PyTorch 2.8 for CUDA, runs): the operands stay in their own dtype and the
  tensor cores return float32: the same exact products summed in float32 (the order
  of the sums aside), at some 10x the rate of float32 products (which do not use the
  tensor cores without TF32), and with no float32 copy of ``W`` (2.1 GB at
  V = 128256, D = 4096).

  The logits :math:`z = hW^\top + b` are then as accurate as widened. The backward's
  products :math:`\partial h = GW` and :math:`\partial W = G^\top h` take the float32
  gradient block :math:`G`, which is not a bf16 value: rounded once to bf16 (PyTorch's
  own ``dlogits`` is bf16) each entry is off by up to :math:`2^{-9}` of itself. It is
  split instead,

  .. math:: G_{\text{hi}} = \operatorname{rd}(G),\quad
            G_{\text{lo}} = \operatorname{rd}(G - G_{\text{hi}}),\qquad
            |G - G_{\text{hi}} - G_{\text{lo}}| \le 2^{-17}|G|

  (``rd``: rounding to bf16, 8 significant bits each, :math:`G - G_{\text{hi}}` exact
  in float32), and both halves go through one product each with the halves stacked:
  :math:`\partial h` from :math:`[G_{\text{hi}}; G_{\text{lo}}]\,W` (the two halves
  of the result added), :math:`\partial W` from :math:`[G_{\text{hi}};
  G_{\text{lo}}]^\top [h; h]` (the sum inside the product's float32 accumulator):
  twice a bf16 product's work, still some 5x faster than one float32 product.
  float16 has 11 bits but a small range (entries of :math:`G` below
  :math:`2^{-14}`, e.g. :math:`p_c/N` of a ``'mean'`` over thousands of rows, lose
  digits or flush to 0), so each float16 block is first scaled by a power of two
  :math:`2^k` that brings its largest entry to :math:`[2^{14}, 2^{15})` (exact), and
  the float32 results are multiplied by :math:`2^{-k}` (exact); the scale is a device
  tensor (no host synchronisation), so ``dW`` gets it through a float32 product of a
  few rows at a time (``SCRATCH_BYTES``) added to it, not in place.

  ``dW`` accumulates in place in float32 through ``torch.addmm(dW, a, b,
  out_dtype=torch.float32, out=dW)`` where the PyTorch build accepts a float32
  ``self`` beside bf16 operands (later than 2.8, whose first version required
  ``self`` in the operands' dtype); otherwise through float32 products of a few rows
  at a time added to it. Both abilities are found once per device and dtype by a
  1 x 1 product whose float32 result a rounding to bf16 would change
  (:func:`_native_support`); an accelerator where ``out_dtype`` raises or is ignored
  (no such overload: PyTorch before 2.8; ROCm or XPU builds without it) stays widened.

For tests on the CPU, ``_EMULATE = True`` makes bf16/fp16 CPU calls native with each
product formed from its operands upcast to float32 (the same exact products; the
accumulation order is the only difference from cuBLAS), so the accelerator logic (no
copy of ``W``, the split, the scaling, the block sizes) runs here; ``_FORCE_NATIVE``
calls the real ``out_dtype`` operators whatever the device (on the meta device, whose
kernels check shapes and dtypes: the CUDA branch without a GPU).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

__all__ = ["DH_CHUNK", "SCRATCH_BYTES", "Products"]

#: Tests only: bf16/fp16 on the CPU take the native path, each product of operands
#: upcast to float32 (see the module's notes).
_EMULATE = False
#: Tests only: the native path with the real ``out_dtype`` operators on any device.
_FORCE_NATIVE = False

#: Classes per product of the native ``dh = G W`` (its :math:`K`), summed in float32:
#: shorter float32 accumulations than one product over the whole vocabulary block.
DH_CHUNK = 4096

#: Bytes of a float32 product formed apart and then added to ``dW`` (float16, or no
#: in-place accumulation): a few rows of ``dW`` at a time.
SCRATCH_BYTES = 64 * 2**20

_NATIVE_DTYPES = (torch.bfloat16, torch.float16)


@functools.cache
def _native_support(device: torch.device, dtype: torch.dtype) -> tuple[bool, bool]:
    """Whether ``torch.mm(a, b, out_dtype=torch.float32)`` returns the float32 product of
    ``dtype`` operands on ``device``, and whether ``torch.addmm(c, a, b,
    out_dtype=torch.float32, out=c)`` adds it to a float32 ``c`` in place.

    Checked on :math:`(1 + 2^{-7})^2 = 1 + 2^{-6} + 2^{-14}`, exact in float32 and not
    in bf16/fp16 (one host synchronisation per device and dtype, once a process)."""
    a = torch.full((1, 1), 1 + 2**-7, dtype=dtype, device=device)
    exact = (1 + 2**-7) ** 2
    try:
        z = torch.mm(a, a, out_dtype=torch.float32)
        if z.dtype != torch.float32 or float(z[0, 0]) != exact:
            return False, False
    except (RuntimeError, TypeError, NotImplementedError):
        return False, False
    c = torch.ones((1, 1), dtype=torch.float32, device=device)
    try:
        torch.addmm(c, a, a, out_dtype=torch.float32, out=c)
        return True, float(c[0, 0]) == 1 + exact
    except (RuntimeError, TypeError, NotImplementedError):
        return True, False


@dataclass(frozen=True)
class Products:
    """How one call's matrix products run (see the module's notes).

    ``operand``: the dtype ``h`` and ``W`` take in the products; ``output``: the dtype
    of their results and of the gradients' accumulators; ``native``: operands in their
    own bf16/fp16 with float32 results (else widened: ``operand == output``);
    ``in_place``: ``dW`` accumulates through ``addmm(..., out=dW)`` (native only);
    ``emulated``: native on the CPU for tests, each product from float32 copies."""

    operand: torch.dtype
    output: torch.dtype
    native: bool = False
    in_place: bool = True
    emulated: bool = False

    @classmethod
    def of(cls, h: torch.Tensor, w: torch.Tensor) -> Products:
        """The products of hidden states ``h`` and classifier ``w`` (one dtype)."""
        if h.dtype == torch.float64 or w.dtype == torch.float64:
            return cls(torch.float64, torch.float64)
        widened = cls(torch.float32, torch.float32)
        if h.dtype != w.dtype or h.dtype not in _NATIVE_DTYPES:
            return widened
        if _FORCE_NATIVE:
            return cls(h.dtype, torch.float32, native=True)
        if h.device.type == "cpu":
            if _EMULATE:
                return cls(h.dtype, torch.float32, native=True, emulated=True)
            return widened
        works, in_place = _native_support(h.device, h.dtype)
        if not works:
            return widened
        return cls(h.dtype, torch.float32, native=True, in_place=in_place)

    def _mm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``a @ b`` in float32 from operands in ``self.operand`` (a new tensor)."""
        if self.emulated:
            return a.float() @ b.float()
        return torch.mm(a, b, out_dtype=torch.float32)

    def _chunked_mm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        r"""``a @ b`` in float32 as the sum of the products of ``DH_CHUNK`` columns of
        ``a`` (rows of ``b``) at a time (a new tensor).

        :math:`\partial h = GW` sums over the whole vocabulary block (:math:`K` = 128256
        at the H200 benchmark), and one product's float32 accumulation over that
        :math:`K` left :math:`\partial h` 6.5e-5 of its largest entry off (cancelling
        terms: the rows of :math:`G` sum to 0); the products of 4096-class chunks added
        in float32 gave 1.0e-5 (``benchmarks/check_torch_cuda.py``, its "linear gradient
        accuracy" line, on the H200), eager PyTorch 3.3e-3."""
        k = a.shape[1]
        if k <= DH_CHUNK:
            return self._mm(a, b)
        out = self._mm(a[:, :DH_CHUNK], b[:DH_CHUNK])
        for c0 in range(DH_CHUNK, k, DH_CHUNK):
            out.add_(self._mm(a[:, c0 : c0 + DH_CHUNK], b[c0 : c0 + DH_CHUNK]))
        return out

    def logits(self, h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        r""":math:`z = hW^\top + b` in ``self.output`` (a new tensor), ``h`` and ``w`` in
        ``self.operand``, ``b`` in ``self.output``. Widened: one ``addmm`` (as before);
        native: the float32 product, then the bias added in float32 (an ``addmm`` with
        ``out_dtype`` and a float32 bias is refused by PyTorch 2.8's first version)."""
        if not self.native:
            return h @ w.T if b is None else torch.addmm(b, h, w.T)
        z = self._mm(h, w.T)
        return z if b is None else z.add_(b)

    def gradient_products(
        self,
        grad: torch.Tensor,
        h: torch.Tensor,
        w: torch.Tensor,
        dh: torch.Tensor | None,
        dw: torch.Tensor | None,
        *,
        first_h: bool,
        first_w: bool,
    ) -> None:
        r""":math:`\partial h \mathrel{(+)}= G W` and :math:`\partial W \mathrel{(+)}= G^\top
        h` for the gradient block ``grad`` (:math:`G`, rows x classes, in
        ``self.output``; widened: in place, native: scaled in place for float16), the
        hidden states ``h`` of its rows and the classifier rows ``w`` of its classes
        (both in ``self.operand``), into ``self.output`` accumulators (None: not
        wanted); ``first_*``: written, not added (no read of the accumulator)."""
        if not self.native:
            if dh is not None:
                dh.addmm_(grad, w, beta=0 if first_h else 1)
            if dw is not None:
                dw.addmm_(grad.T, h, beta=0 if first_w else 1)
            return
        rows = grad.shape[0]
        unscale = _power_of_two_scale_(grad) if self.operand == torch.float16 else None
        halves = torch.empty((2 * rows, grad.shape[1]), dtype=self.operand, device=grad.device)
        halves[:rows] = grad  # G_hi = rd(G)
        halves[rows:] = grad.sub_(halves[:rows])  # G_lo = rd(G - G_hi), the difference exact
        if dh is not None:
            part = self._chunked_mm(halves, w)
            part = part[:rows].add_(part[rows:])
            if unscale is not None:
                part.mul_(unscale)
            if first_h:
                dh.copy_(part)
            else:
                dh.add_(part)
            del part
        if dw is not None:
            self._add_product(dw, halves.T, torch.cat([h, h]), unscale, first=first_w)

    def _add_product(
        self,
        acc: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor,
        unscale: torch.Tensor | None,
        *,
        first: bool,
    ) -> None:
        """``acc (+)= (a @ b) * unscale`` in float32, ``a`` and ``b`` in ``self.operand``:
        in place where it can, else ``SCRATCH_BYTES`` of rows of ``acc`` at a time."""
        if unscale is None and self.in_place:
            if self.emulated:
                acc.addmm_(a.float(), b.float(), beta=0 if first else 1)
            else:
                torch.addmm(acc, a, b, beta=0 if first else 1, out_dtype=torch.float32, out=acc)
            return
        step = max(1, SCRATCH_BYTES // (4 * max(1, acc.shape[1])))
        for start in range(0, acc.shape[0], step):
            part = self._mm(a[start : start + step], b)
            if unscale is not None:
                part.mul_(unscale)
            if first:
                acc[start : start + step] = part
            else:
                acc[start : start + step] += part
            del part


def _power_of_two_scale_(grad: torch.Tensor) -> torch.Tensor:
    r"""Scale ``grad`` in place by :math:`2^k`, its largest magnitude then in
    :math:`[2^{14}, 2^{15})` (float16's largest finite value is 65504), and return
    :math:`2^{-k}` (a float32 device tensor; :math:`|k| \le 100`, so both are normal
    float32 numbers and the scalings exact unless an entry leaves float32's range,
    which needs a ratio of :math:`2^{100}` within a block). No host synchronisation."""
    top = grad.abs().amax() if grad.numel() else grad.new_zeros(())
    exponent = torch.frexp(top.float()).exponent  # top = f 2^e, f in [0.5, 1); 0 for 0
    k = (15 - exponent).clamp(-100, 100)
    grad.mul_(_exp2(k).to(grad.dtype))
    return _exp2(-k)


def _exp2(k: torch.Tensor) -> torch.Tensor:
    r""":math:`2^k` in float32 for integers :math:`|k| \le 126`, from its bits (exact by
    construction, unlike an ``exp2`` whose error bound is some ulps)."""
    return ((k.to(torch.int32) + 127) << 23).view(torch.float32)
