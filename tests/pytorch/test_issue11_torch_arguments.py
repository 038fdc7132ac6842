"""Issue 11 in crossent.torch: one home for the argument checks and the option bundle.

``cross_entropy``, ``linear_cross_entropy`` and both vocab-parallel losses check their
options with ``crossent.torch._arguments.call_options`` (and ``chunk_size`` with
``check_chunk_size``), so the same bad value gets the same error from each. The
vocab-parallel checks run before any collective, so no process group is needed here.
"""

from __future__ import annotations

import pytest

from crossent.errors import InputError, InputTypeError

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")
dist = pytest.importorskip("torch.distributed")


def _calls(**options):
    z, y = torch.zeros(3, 4), torch.tensor([0, 1, 3])
    h, w = torch.zeros(3, 2), torch.zeros(4, 2)
    return {
        "cross_entropy": lambda: ct.cross_entropy(z, y, **options),
        "linear_cross_entropy": lambda: ct.linear_cross_entropy(h, w, y, **options),
        "vocab_parallel_cross_entropy": lambda: ct.vocab_parallel_cross_entropy(z, y, **options),
        "vocab_parallel_linear_cross_entropy": lambda: ct.vocab_parallel_linear_cross_entropy(
            h, w, y, **options
        ),
    }


@pytest.mark.parametrize(
    "options",
    [
        {"reduction": "avg"},
        {"ignore_index": 1.5},
        {"label_smoothing": 1.5},
        {"z_loss": -1.0},
        {"soft_cap": 0.0},
        {"temperature": float("nan")},
    ],
    ids=lambda o: next(iter(o)),
)
def test_issue11_every_torch_loss_gives_one_error_for_one_bad_option(options):
    messages = set()
    name = next(iter(options))
    # a value of the wrong Python type (ignore_index=1.5) is an InputTypeError, as in
    # the NumPy-style API; a value out of range an InputError
    error = InputTypeError if name == "ignore_index" else InputError
    for call in _calls(**options).values():
        with pytest.raises(error, match=f"`{name}`") as info:
            call()
        messages.add(str(info.value))
    assert len(messages) == 1, messages


@pytest.mark.parametrize("chunk_size", [0, 2.5, True])
def test_issue11_vocab_parallel_chunk_size_is_checked_as_linear_cross_entropy_does(chunk_size):
    # Before: the vocab-parallel check accepted 2.5 (truncated to 2) and True (as 1).
    if dist.is_initialized():
        pytest.skip("a process group is initialised in this process")
    calls = _calls(chunk_size=chunk_size)
    messages = set()
    for name in ("linear_cross_entropy", "vocab_parallel_linear_cross_entropy"):
        with pytest.raises(InputError, match="`chunk_size` must be a positive integer") as info:
            calls[name]()
        messages.add(str(info.value))
    assert len(messages) == 1, messages


@pytest.mark.parametrize("kind", ["int64", "int32", "uint8"])
def test_issue13_numpy_integer_chunk_size_is_read_as_its_value_as_ignore_index_is(kind):
    # Before: chunk_size=np.int64(2) was an InputError while ignore_index=np.int64(...)
    # was accepted. Now both read a NumPy integer as its value (bool, floats still refused).
    np = pytest.importorskip("numpy")
    g = torch.Generator().manual_seed(0)
    h, w = torch.randn(5, 3, generator=g), torch.randn(4, 3, generator=g)
    y = torch.tensor([0, 3, 1, -100, 2])
    chunk = np.dtype(kind).type(2)
    want = ct.linear_cross_entropy(h, w, y, ignore_index=-100, chunk_size=2)
    got = ct.linear_cross_entropy(h, w, y, ignore_index=np.int64(-100), chunk_size=chunk)
    assert torch.equal(got, want)
    # the oracle: torch's own cross-entropy of the logits
    assert torch.allclose(want, torch.nn.functional.cross_entropy(h @ w.T, y), atol=1e-6)
    module = ct.LinearCrossEntropyLoss(
        np.int64(3), np.int32(4), ignore_index=-100, chunk_size=chunk
    )
    with torch.no_grad():
        module.linear.weight.copy_(w)
    assert type(module.num_classes) is int
    assert type(module.linear.in_features) is int
    assert torch.equal(module(h, y), want)


@pytest.mark.parametrize("name", ["in_features", "num_classes"])
@pytest.mark.parametrize("value", [True, 3.0, -1])
def test_issue13_linear_loss_module_sizes_are_integers(name, value):
    # Before: True was read as 1 and 3.0 failed inside torch.empty with a TypeError.
    sizes = {"in_features": 3, "num_classes": 4, name: value}
    with pytest.raises(InputError, match=f"`{name}` must be a non-negative integer"):
        ct.LinearCrossEntropyLoss(**sizes)
