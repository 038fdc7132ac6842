"""Probability targets that require grad are checked under ``torch.compile`` too.

Targets (or class weights) that require grad take the generic path of
``crossent.torch.cross_entropy``, whose check read values eagerly and was skipped while
Dynamo traced: on main a compiled call took NaN, negative, above-one entries and rows
not summing to 1 without a word (``torch.compile(fullgraph=True)``, both backends).
Now the op ``crossent::probability_targets_checked`` checks them at run time (one
opaque node, no graph break): the eager call's :class:`InputError`, naming the row,
the entry and the value. Oracles: the eager call's message; its values and gradients
(unchanged by the check).
"""

from __future__ import annotations

import pytest

from crossent.errors import InputError

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated"),
    pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`"),
]

# Row 2 of four 4-class rows is bad; what the message names (the eager one).
_BAD = {
    "negative": ([0.75, 0.5, -0.25, 0.0], r"non-negative .*got -0\.25 at index \(2, 2\) \(row 2\)"),
    "nan": ([0.5, float("nan"), 0.5, 0.0], r"contains NaN at index \(2, 1\) \(row 2\)"),
    "inf": ([0.5, float("inf"), 0.0, 0.0], r"must be finite; got inf at index \(2, 1\)"),
    "above_one": ([1.5, 0.0, 0.0, 0.0], r"in \[0, 1\]; got 1\.5 at index \(2, 0\)"),
    "sum": ([0.5, 0.625, 0.0, 0.0], r"row 2 sums to 1\.125"),
}


def _targets(bad_row: list[float], dtype: torch.dtype) -> torch.Tensor:
    rows = [[0.25] * 4, [1.0, 0.0, 0.0, 0.0], bad_row, [0.5, 0.5, 0.0, 0.0]]
    return torch.tensor(rows, dtype=dtype)


def _loss(z: torch.Tensor, t: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    return ct.cross_entropy(z, t, weight=w, label_smoothing=0.1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_bad_targets_that_require_grad_raise_when_compiled(dtype: torch.dtype) -> None:
    """Every bad kind, targets requiring grad, and class weights requiring grad (the
    generic path too): the eager message under ``torch.compile(fullgraph=True)``; good
    targets keep the eager values and gradients of the logits, targets and weights."""
    torch._dynamo.reset()
    compiled = torch.compile(_loss, fullgraph=True, backend="aot_eager")
    z = torch.linspace(-2.0, 2.0, 16, dtype=torch.float64).reshape(4, 4).to(dtype)
    w = torch.tensor([0.5, 1.0, 1.5, 2.0], dtype=dtype)
    for row, message in _BAD.values():
        t = _targets(row, dtype)
        with pytest.raises(InputError, match=message):
            _loss(z, t.clone().requires_grad_(), None)  # the eager message
        with pytest.raises(InputError, match=message):
            compiled(z, t.clone().requires_grad_(), None)
        with pytest.raises(InputError, match=message):
            compiled(z, t, w.clone().requires_grad_())
    good = _targets([0.0, 0.0, 0.0, 1.0], dtype)
    results = []
    for fn in (_loss, compiled):
        leaves = [x.clone().requires_grad_() for x in (z, good, w)]
        value = fn(*leaves)
        value.backward()
        results.append((value, *(x.grad for x in leaves)))
    for got, want in zip(results[1], results[0], strict=True):
        assert got is not None
        assert want is not None
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("reduction", "backend"),
    # One Inductor (the default backend) compile: on a cold Inductor cache each one is
    # about 20 s of g++ (child processes, CI's other core); the check is the opaque op's,
    # the same node in both graphs, so 'none' runs it through AOTAutograd's graph alone.
    [("sum", "inductor"), ("none", "aot_eager")],
)
def test_k_dim_targets_name_the_row_under_inductor(reduction: str, backend: str) -> None:
    """(N, C, d1) targets requiring grad, Inductor (the default backend): the row (n,
    d1) and the entry (n, c, d1), as eager names them."""
    torch._dynamo.reset()

    def loss(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return ct.cross_entropy(z, t, reduction=reduction)

    compiled = torch.compile(loss, fullgraph=True, backend=backend)
    z = torch.linspace(-1.0, 1.0, 24).reshape(2, 4, 3)
    t = torch.full((2, 4, 3), 0.25)
    torch.testing.assert_close(compiled(z, t.clone().requires_grad_()), loss(z, t))
    t[1, 3, 2] = -0.5
    t[1, 0, 2] = 1.0
    with pytest.raises(InputError, match=r"got -0\.5 at index \(1, 3, 2\) \(row \(1, 2\)\)"):
        compiled(z, t.clone().requires_grad_())
    t[1, 3, 2] = 0.25
    with pytest.raises(InputError, match=r"row \(1, 2\) sums to 1\.75"):
        compiled(z, t.clone().requires_grad_())
