r"""Issue 13 follow-up: three overflows of ``crossent.torch`` where the true value is finite.

1. The fused linear loss's label smoothing summed :math:`\sum_c w_c z'_c` in the work
   dtype (float32) and subtracted it from :math:`(\sum_c w_c)\operatorname{LSE}`: logits
   near :math:`3\cdot 10^{38}` summed to ``inf`` (the loss ``-inf``), and the difference of
   two sums of size :math:`V m` lost :math:`\ell` beside a large :math:`m` (logits tied at
   :math:`2^{100}`: 1.2477 for :math:`\ln 4 = 1.3863`). Now :math:`(\sum_c w_c)\ell - D/T`
   with :math:`D = \sum_c w_c (c_c - m) \le 0` in float64 (``_linear._ClassSum``).
2. The vocab-parallel loss formed the target's and the smoothing's :math:`(c - m)/T` in
   float32: ``inf`` for :math:`T < 1` where :math:`\varepsilon/V` or a class weight
   :math:`< 1` times them is finite. Now in float64. (The other paths were right: the
   fused kernels, and the probability targets' float64 on the CPU; float64 logits whose
   gap :math:`c - m` itself passes :math:`1.8\cdot 10^{308}` are left as they are.)
3. The fused linear loss's :math:`\partial h = G W` in float32: with weights near
   :math:`10^{38}` its partial sums overflowed (``inf``, as PyTorch's own backward of
   ``F.linear`` + ``F.cross_entropy``) for a true :math:`2.77\cdot 10^{38}`. Now formed
   anew with float64 sums where the float32 product is not finite
   (``_linear._finite_row_gradient_``).

Oracles: mpmath (50 digits) for the losses of the stored float32 logits, torch float64
autograd for the gradient. Every test fails on main at 44a6699 (``-inf``, ``inf`` or the
lost :math:`\ell`).
"""

from __future__ import annotations

import math

import mpmath
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("crossent.torch")

from crossent.torch import _functional, linear_cross_entropy  # noqa: E402
from spawned import run_spawned  # noqa: E402

DIGITS = 50


def _oracle(
    z: list[float], label: int, eps: float, temperature: float, weight: list[float] | None = None
) -> float:
    r""":math:`(1-\varepsilon)w_y(\operatorname{LSE} - z'_y) + \tfrac{\varepsilon}{V}
    \sum_c w_c(\operatorname{LSE} - z'_c)`, :math:`z' = z/T`, in mpmath."""
    classes = len(z)
    w = [1.0] * classes if weight is None else weight
    with mpmath.workdps(DIGITS):
        zp = [mpmath.mpf(v) / temperature for v in z]
        top = max(zp)
        lse = top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in zp))
        smooth = mpmath.fsum(w[c] * (lse - zp[c]) for c in range(classes))
        return float((1 - eps) * w[label] * (lse - zp[label]) + eps / classes * smooth)


@pytest.fixture
def vocab_chunk():
    """Sets ``_functional._VOCAB_CHUNK`` for the test (0: automatic) and restores it."""
    saved = _functional._VOCAB_CHUNK
    yield lambda value: setattr(_functional, "_VOCAB_CHUNK", value)
    _functional._VOCAB_CHUNK = saved


@pytest.mark.parametrize("chunk", [0, 2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_issue13_linear_smoothing_sum_near_float32_max(
    vocab_chunk, chunk: int, weighted: bool, temperature: float
) -> None:
    """Logits near 3e38 (products ``h W^T`` exact: D = 1, h = 1): main gave ``-inf``."""
    vocab_chunk(chunk)
    z = torch.tensor([3e38, 3.2e38, 2.9e38, -3e38])
    w = torch.tensor([0.5, 2.0, 1.0, 0.25]) if weighted else None
    eps = 0.1
    got = linear_cross_entropy(
        torch.ones(1, 1),
        z[:, None],
        torch.tensor([1]),
        weight=w,
        reduction="sum",
        label_smoothing=eps,
        temperature=temperature,
    )
    want = _oracle(z.tolist(), 1, eps, temperature, None if w is None else w.tolist())
    assert math.isfinite(float(got))
    assert float(got) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("chunk", [0, 1, 2])
def test_issue13_linear_smoothing_keeps_ell_beside_a_large_maximum(vocab_chunk, chunk: int) -> None:
    r"""Row 0: four logits tied at :math:`2^{100}` (loss :math:`\ln 4`; main: 1.2477).
    Row 1: rising over the vocabulary blocks, so each block moves the maximum (the
    online rescaling of :math:`D`)."""
    vocab_chunk(chunk)
    base = 2.0**100
    ties = [base] * 4
    rising = [base * (1 + k / 8) for k in range(4)]
    weight = torch.tensor([ties, rising]).T.contiguous()  # (V, D = 2): h picks a column
    h = torch.eye(2)
    labels = torch.tensor([0, 2])
    eps = 0.1
    got = linear_cross_entropy(h, weight, labels, reduction="none", label_smoothing=eps)
    for row, z in enumerate((ties, rising)):
        want = _oracle(z, int(labels[row]), eps, 1.0)
        assert float(got[row]) == pytest.approx(want, rel=1e-6, abs=0)


def _dh_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """D = 2: ``h = (0, 1)`` picks the logits (-3, 0.5, 0.8, 1.5) of column 1; column 0
    holds weights of +-3e38, whose float32 partial sums in ``G W`` pass 3.4e38."""
    logits = torch.tensor([-3.0, 0.5, 0.8, 1.5])
    huge = torch.tensor([-3e38, 3e38, 3e38, -3e38])
    return torch.tensor([[0.0, 1.0]]), torch.stack([huge, logits], 1), torch.tensor([0])


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_issue13_linear_input_gradient_near_float32_max(reduction: str) -> None:
    """``dh`` of a true 2.77e38: main gave ``inf`` ('sum': formed in the forward;
    'none': the backward op)."""
    h, weight, labels = _dh_case()
    mine = h.clone().requires_grad_()
    linear_cross_entropy(mine, weight, labels, reduction=reduction).sum().backward()
    wide = h.double().requires_grad_()
    naive = torch.nn.functional.cross_entropy(wide @ weight.double().T, labels, reduction=reduction)
    naive.sum().backward()
    assert mine.grad is not None
    assert wide.grad is not None
    assert bool(torch.isfinite(mine.grad).all())
    torch.testing.assert_close(mine.grad.double(), wide.grad, rtol=1e-6, atol=0)


def _vocab_parallel_worker(rank: int, world: int) -> None:
    """Two layouts of the row (3e38, -3e38): one class per rank (the shift between the
    ranks' maxima overflows) and both on rank 0 (the shift within a slice)."""
    from crossent.torch import vocab_parallel_cross_entropy

    z = torch.tensor([[3e38, -3e38], [0.5, -1.0]])
    temperature = 0.5
    weight = [1.0, 0.01]
    cases = [
        ({"label_smoothing": 0.1}, torch.tensor([0, 0]), None),
        ({"weight": torch.tensor(weight)}, torch.tensor([1, 1]), weight),
        ({"label_smoothing": 0.1, "weight": torch.tensor(weight)}, torch.tensor([1, 0]), weight),
    ]
    for columns in ((slice(0, 1), slice(1, 2)), (slice(0, 2), slice(2, 2))):
        local = z[:, columns[rank]].contiguous().requires_grad_()
        for options, labels, class_weight in cases:
            got = vocab_parallel_cross_entropy(
                local, labels, reduction="none", temperature=temperature, **options
            )
            eps = options.get("label_smoothing", 0.0)
            for row in range(2):
                want = _oracle(z[row].tolist(), int(labels[row]), eps, temperature, class_weight)
                assert float(got[row]) == pytest.approx(want, rel=1e-6), (columns, options, row)
            got.sum().backward()
            assert bool(torch.isfinite(local.grad).all())
            local.grad = None


def test_issue13_vocab_parallel_terms_beyond_float32_range() -> None:
    """main: ``inf`` for the finite 6e37 and 1.2e37 (float32 work on the CPU)."""
    run_spawned(_vocab_parallel_worker, 2)
