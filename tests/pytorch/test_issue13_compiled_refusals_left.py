"""Issue 13: the last public losses of crossent.torch whose refused arguments came out of
``torch.compile(fullgraph=True)`` as Dynamo's errors now raise crossent's, with eager's
type and message (``_ops.refused_while_traced``), as every other public loss does
(test_compiled_option_errors.py).

* ``linear_head_cross_entropy`` with a ``head`` that is no ``nn.Linear``: main raised
  ``Unsupported: Observed exception``;
* ``vocab_parallel_cross_entropy`` and ``vocab_parallel_linear_cross_entropy`` with a bad
  option or argument type: main raised ``Unsupported: Skip calling
  torch.compiler.disable()d function`` (the agreement's exchange). Their refusal on the
  default group runs the agreement at run time (``crossent::refused_on_every_rank_v1``):
  on two ranks, a compiled rank with a bad option and an eager rank whose own checks pass
  both raise eager's shared error (main: the compiled rank never reached the exchange).

A valid vocab-parallel call does not compile with ``fullgraph=True`` (its agreement and
host checks are graph breaks, see ``_vocab_parallel``'s docstring), so those tests compare
the refusal only. Every test fails on main.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

from crossent.errors import InputError, InputTypeError  # noqa: E402
from spawned import gloo_marks, one_rank_group, run_spawned  # noqa: E402


def _compiled_error_is_eagers(call: Callable[[], Any], error: type[Exception]) -> None:
    """The eager call raises ``error`` (exactly that type); the same call compiled with
    ``fullgraph=True`` raises the same type with the same message."""
    with pytest.raises(error) as eager:
        call()
    assert type(eager.value) is error
    torch._dynamo.reset()
    with pytest.raises(error) as compiled:
        torch.compile(call, fullgraph=True, backend="aot_eager")()
    assert type(compiled.value) is error
    assert str(compiled.value) == str(eager.value)


def test_linear_head_refuses_a_head_under_fullgraph() -> None:
    """A ``head`` that is no ``nn.Linear`` (an ``nn.Identity``); a real head compiles
    and gives eager's loss."""
    g = torch.Generator().manual_seed(3)
    h, y = torch.randn(3, 4, generator=g), torch.tensor([0, 4, 2])
    _compiled_error_is_eagers(
        lambda: ct.linear_head_cross_entropy(h, torch.nn.Identity(), y), InputTypeError
    )
    head = torch.nn.Linear(4, 5).double()
    hd = h.double()
    torch._dynamo.reset()
    good = torch.compile(
        lambda: ct.linear_head_cross_entropy(hd, head, y), fullgraph=True, backend="aot_eager"
    )
    torch.testing.assert_close(good(), ct.linear_head_cross_entropy(hd, head, y))


@pytest.fixture
def one_rank(tmp_path: Path) -> Iterator[None]:
    with one_rank_group(str(tmp_path)):
        yield


def _logit_call(**options: Any) -> Callable[[], Any]:
    z = options.pop("input", torch.linspace(-2.0, 2.0, 20).reshape(4, 5))
    y = torch.tensor([0, 1, 2, 3])
    return lambda: ct.vocab_parallel_cross_entropy(z, y, **options)


def _linear_call(**options: Any) -> Callable[[], Any]:
    h = options.pop("input", torch.linspace(-2.0, 2.0, 12).reshape(4, 3))
    w = torch.linspace(-1.0, 1.0, 15).reshape(5, 3)
    y = torch.tensor([0, 1, 2, 3])
    return lambda: ct.vocab_parallel_linear_cross_entropy(h, w, y, **options)


# (loss, options, eager's error type)
_REFUSED = [
    ("logits", {"reduction": "bogus"}, InputError),
    ("logits", {"label_smoothing": 1.5}, InputError),
    ("logits", {"temperature": 0.0}, InputError),
    ("logits", {"ignore_index": 1.5}, InputTypeError),
    ("logits", {"input": torch.ones(4, 5, dtype=torch.int64)}, InputTypeError),
    ("logits", {"weight": torch.ones(5, 2)}, InputError),
    ("linear", {"reduction": "bogus"}, InputError),
    ("linear", {"z_loss": -1.0}, InputError),
    ("linear", {"chunk_size": 0}, InputError),
    ("linear", {"input": torch.ones(4, 3, dtype=torch.float64)}, InputTypeError),
    ("linear", {"bias": torch.zeros(4)}, InputError),
]


@pytest.mark.distributed
@pytest.mark.usefixtures("one_rank")
@pytest.mark.parametrize(
    ("loss", "options", "error"),
    _REFUSED,
    ids=[f"{c[0]}-{next(iter(c[1]))}" for c in _REFUSED],
)
def test_vocab_parallel_refuses_under_fullgraph(
    loss: str, options: dict[str, Any], error: type[Exception]
) -> None:
    make = _logit_call if loss == "logits" else _linear_call
    _compiled_error_is_eagers(make(**options), error)


EXPECTED = "vocab_parallel_cross_entropy: on rank 1 of the group, `label_smoothing` must be"


def _two_ranks(rank: int, world: int) -> None:
    """Rank 1 compiles a call with a bad ``label_smoothing`` (``fullgraph=True``); rank 0
    calls eagerly with good options. Both raise the agreement's error naming rank 1."""
    z = torch.linspace(-2.0, 2.0, 12).reshape(4, 3)
    y = torch.tensor([0, 5, 2, 3])
    bad = {"label_smoothing": 1.5} if rank == 1 else {}

    def call() -> Any:
        return ct.vocab_parallel_cross_entropy(z, y, **bad)

    if rank == 0:
        with pytest.raises(InputError, match=EXPECTED):
            call()
        return
    compiled = torch.compile(call, fullgraph=True, backend="aot_eager")
    try:
        with pytest.raises(InputError, match=EXPECTED):
            compiled()
    except BaseException:  # main: Dynamo's error, before the exchange
        with pytest.raises(InputError):
            call()  # (eagerly: rank 0 is released instead of waiting for the timeout)
        raise


_GLOO = gloo_marks()


@_GLOO[0]
@_GLOO[1]
def test_compiled_refusal_shared_with_an_eager_rank() -> None:
    run_spawned(_two_ranks, 2, timeout=120)
