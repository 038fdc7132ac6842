"""Issue 13 follow-up: ``crossent.torch.linear_cross_entropy``'s row statistics.

* The log-partition: :math:`\\mathrm{LSE} = m + \\log s` lost every log-partition below
  an ulp of :math:`m` (a confident row's loss :math:`\\approx e^{-d}` came out 0, and
  the label's gradient entry :math:`p_y - 1` with it). The forward now keeps :math:`s'`,
  the exp-sum without one maximal term, and :math:`\\ell = \\operatorname{log1p}(s')`,
  as ``crossent.losses``' kernels do; the loss is :math:`(m - z'_y) + \\ell`.
* The gradient's :math:`p`: the backward (and the forward's second sweep over
  vocabulary blocks) subtracted the float64 LSE rounded to float32 (an ulp of
  :math:`m`, alike for every entry of the row): median ``dh`` errors of 15-21 ulps
  where the naive float32 ``F.cross_entropy(F.linear(h, W), y)`` had 6. Now
  :math:`p = e^{z' - b}\\,e^{b - \\mathrm{LSE}}` with :math:`b` the block's maximum
  and the second factor from float64.

Checked with the identity as classifier (the logits exact, ``dh`` = the gradient
block) against mpmath per entry, and with exact small-grid products (the logits exact
in float32, so the only differences are the softmax's) against a float64 oracle
(:math:`p_y - 1` as :math:`-\\sum_{c \\ne y} p_c`, which float64 autograd rounds to 0
at extreme confidence) beside the naive float32 path: median ``dh`` and ``dW``
errors no worse than naive's on peaked rows, ties, two classes and vocabulary blocks.

Also (the same follow-up, ``crossent::softmax_ce_probs_v3``): probability targets with
``soft_cap`` take the custom op, whose backward applies the cap's factor without the
cancellation of :math:`1 - \tanh^2`.
"""

from __future__ import annotations

import functools

import mpmath
import numpy as np
import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

from crossent.torch import _functional  # noqa: E402

import oracles  # noqa: E402
from tolerances import ulps_apart  # noqa: E402

#: The oracles' working precision, set where they run: 40 digits (no cancellation: sums
#: of positive terms, their quotients and ``log1p``).
DIGITS = 40

GAPS = [0, 1, 5, 20, 40, 69, 80, 100]
OFFSETS = [0.0, 40.0, 1e3]


@pytest.fixture
def vocab_chunk():
    """Sets ``_functional._VOCAB_CHUNK`` for the test (0: automatic) and restores it."""
    saved = _functional._VOCAB_CHUNK

    def set_chunk(value: int) -> None:
        _functional._VOCAB_CHUNK = value

    yield set_chunk
    _functional._VOCAB_CHUNK = saved


@functools.cache
def _identity_case(classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of :func:`oracles.label_gap_rows` (the label ``gap`` above the rest, up to
    1e-44 losses) and the same rows with the label on another class, in float32."""
    rows, labels = oracles.label_gap_rows(classes, GAPS, OFFSETS)
    rows = rows.astype(np.float32)
    return np.concatenate([rows, rows]), np.concatenate([labels, (labels + 1) % classes])


@functools.cache
@mpmath.workdps(DIGITS)
def _mp_truth(classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row losses and gradients ``p - e_y`` of ``_identity_case`` by mpmath."""
    rows, labels = _identity_case(classes)
    losses, grads = [], []
    for row, label in zip(rows, labels, strict=True):
        zy = mpmath.mpf(float(row[label]))
        terms = [mpmath.exp(mpmath.mpf(float(x)) - zy) for x in row]
        others = mpmath.fsum(t for c, t in enumerate(terms) if c != label)
        total = 1 + others  # p_c = terms[c] / total; the loss log1p(others), to 1e-44
        losses.append(float(mpmath.log1p(others)))
        g = [float(t / total) for t in terms]
        g[label] = float(-others / total)
        grads.append(g)
    return np.asarray(losses), np.asarray(grads)


@pytest.mark.parametrize("classes", [2, 7, 300])
@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_losses_and_gradient_entries_against_mpmath(
    classes: int, split: bool, reduction: str, vocab_chunk
) -> None:
    rows, labels = _identity_case(classes)
    loss_truth, grad_truth = _mp_truth(classes)
    vocab_chunk(max(1, classes // 3) if split else 0)
    h = torch.from_numpy(rows).requires_grad_()
    y = torch.from_numpy(labels)
    eye = torch.eye(classes)  # z = h I^T exactly: dh is the gradient block itself
    loss = ct.linear_cross_entropy(h, eye, y, reduction=reduction)
    if reduction == "none":
        # Powers of two: the upstream scaling is exact.
        up = torch.tensor([0.5, 1.0, 2.0] * len(labels))[: len(labels)]
        (loss * up).sum().backward()
        expected = grad_truth * up.double().numpy()[:, None]
        per_row = ulps_apart(loss.detach().numpy(), loss_truth, "float32")
        assert per_row.max() <= 2.0, (per_row.max(), loss_truth[per_row.argmax()])
    else:
        loss.backward()
        expected = grad_truth
        assert ulps_apart(loss.detach().numpy(), loss_truth.sum(), "float32") <= 2.0
    entry = ulps_apart(h.grad.numpy(), expected, "float32")
    assert entry.max() <= 2.0, (entry.max(), np.unravel_index(entry.argmax(), entry.shape))


def test_confident_two_class_loss_is_not_rounded_away() -> None:
    # A loss of e^-69 ~ 1e-30 at logits near 40: m + log(s) rounded it to 0.
    h = torch.tensor([[40.0, -29.0], [1040.0, 971.0]])
    loss = ct.linear_cross_entropy(h, torch.eye(2), torch.tensor([0, 0]), reduction="none")
    with mpmath.workdps(DIGITS):
        truth = float(mpmath.log1p(mpmath.exp(-69)))
    assert ulps_apart(loss.numpy(), np.array([truth, truth]), "float32").max() <= 2.0


def _grid_case(name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """``h`` (32 x 17), ``W`` and labels on grids that make every logit exact in float32
    (entries multiples of 1/8 below 8: each product on 2^-6, sums below 2^11), and the
    vocabulary block (0: one block)."""
    g = torch.Generator().manual_seed(13)
    n, d = 32, 16
    classes, chunk = {"peaked": (64, 0), "tie": (64, 0), "two": (2, 0), "large": (4096, 1024)}[name]
    h = torch.randint(-16, 17, (n, d), generator=g) / 8.0
    w = torch.randint(-8, 9, (classes, d), generator=g) / 8.0
    y = torch.randint(0, classes, (n,), generator=g)
    if name == "peaked":  # the label some 5-60 above the rest
        w[y] = torch.where(h > 0, 2.0, -2.0) + torch.randint(-2, 3, (n, d), generator=g) / 8.0
    if name == "tie":  # the label's row tied with, or 1/64 away from, another's
        w[(y + 1) % classes] = w[y]
        w[(y + 2) % classes, 1:] = w[y, 1:]
    # A constant feature: every logit +40 (the offset an LSE rounded to float32 lost).
    h = torch.cat([h, torch.full((n, 1), 8.0)], 1)
    w = torch.cat([w, torch.full((classes, 1), 5.0)], 1)
    return h, w, y, chunk


def _float64_gradients(
    h: torch.Tensor, w: torch.Tensor, y: torch.Tensor, scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``dh``, ``dW`` in float64 with ``p_y - 1 = -sum_{c != y} p_c`` (no cancellation)."""
    p = torch.softmax(h.double() @ w.double().T, 1)
    g = p.clone()
    g[torch.arange(len(y)), y] = -p.scatter(1, y[:, None], 0.0).sum(1)
    g *= scale[:, None]
    return g @ w.double(), g.T @ h.double()


def _median_ulps(got: torch.Tensor, exact: torch.Tensor) -> float:
    return float(np.median(ulps_apart(got.numpy(), exact.numpy(), "float32")))


@pytest.mark.parametrize("name", ["peaked", "tie", "two", "large"])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_gradients_no_worse_than_naive(name: str, reduction: str, vocab_chunk) -> None:
    h, w, y, chunk = _grid_case(name)
    vocab_chunk(chunk)
    n = len(y)
    up = torch.rand(n, generator=torch.Generator().manual_seed(1)) + 0.5
    scale = up.double() if reduction == "none" else torch.full((n,), 1.0 / n, dtype=torch.float64)
    dh_exact, dw_exact = _float64_gradients(h, w, y, scale)
    errors = {}
    for path in ("crossent", "naive"):
        hh, ww = h.clone().requires_grad_(), w.clone().requires_grad_()
        if path == "naive":
            loss = torch.nn.functional.cross_entropy(hh @ ww.T, y, reduction=reduction)
        else:
            loss = ct.linear_cross_entropy(hh, ww, y, reduction=reduction)
        (loss * up).sum().backward() if reduction == "none" else loss.backward()
        errors[path] = (_median_ulps(hh.grad, dh_exact), _median_ulps(ww.grad, dw_exact))
    (dh, dw), (dh_naive, dw_naive) = errors["crossent"], errors["naive"]
    assert dh <= dh_naive + 0.25, errors
    assert dw <= dw_naive + 0.25, errors


def test_soft_capped_probability_targets_take_the_op(monkeypatch: pytest.MonkeyPatch) -> None:
    """Probability targets with ``soft_cap`` go through the custom op (no float64 copies
    of the logits kept by autograd) and its gradient carries the cap's factor
    :math:`\\operatorname{sech}^2(z/s)` exactly where :math:`1 - \\tanh^2` cancels
    (:math:`|z|/s` up to 30; the generic path's float64 autograd was up to 1.7e7 float32
    ulps off there), against mpmath's factor times float64 autograd's
    :math:`\\partial L/\\partial z'`."""
    from crossent.torch import _launch

    calls = []
    real = _launch.target_backward
    monkeypatch.setattr(_launch, "target_backward", lambda *a: calls.append(1) or real(*a))
    cap, temperature = 4.0, 1.5
    g = torch.Generator().manual_seed(2)
    z = (torch.randn(4, 50, generator=g) * 40).requires_grad_()
    t = torch.softmax(torch.randn(4, 50, generator=g), -1)
    ct.cross_entropy(z, t, soft_cap=cap, temperature=temperature, reduction="sum").backward()
    assert calls
    capped = (cap * torch.tanh(z.detach().double() / cap) / temperature).requires_grad_()
    torch.nn.functional.cross_entropy(capped, t.double(), reduction="sum").backward()
    with mpmath.workdps(DIGITS):
        factor = np.array(
            [
                [float(mpmath.sech(mpmath.mpf(float(x)) / cap) ** 2) for x in row]
                for row in z.detach()
            ]
        )
    exact = capped.grad.numpy() * factor / temperature
    assert ulps_apart(z.grad.numpy(), exact, "float32").max() <= 1.0
