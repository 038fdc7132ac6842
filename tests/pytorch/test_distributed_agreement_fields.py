"""Hostile pass over the distributed agreement: what it let through on main (at 4d024a0).

Two ranks (V = 2 + 3), each case alone runs against main's code with
``python tests/pytorch/test_distributed_agreement_fields.py CASE``:

* ``weight_given``: ``weight=None`` on rank 0, ``weight=torch.zeros(V)`` on rank 1 (and
  the same with ``class_weight`` of the linear loss): both weights' fingerprints were
  ``(0, 0)`` (an absent tensor's is zeros, and so are a zero tensor's byte sums), the
  agreement passed, and the ranks returned different losses (2.37 on rank 0, 0.0 on
  rank 1) without an error;
* ``negative_zero``: ``weight`` of ``0.0`` on rank 0 and ``-0.0`` on rank 1 (the same
  weights) raised "disagree on `weight`": the fingerprint read the sign bit;
* ``meta_logits``: logits on the ``meta`` device on rank 1 only (CPU on rank 0): the
  agreement passed, rank 1 failed in the row maxima's all-reduce, rank 0 waited there
  until the group's timeout (a bare backend error);
* ``meta_target``: a ``meta`` target on rank 1 only: forming its record's fingerprint
  raised ``NotImplementedError`` on rank 1 alone, rank 0 waited until the timeout;
* ``meta_classifier``: the linear loss's classifier slice on ``meta`` beside CPU hidden
  states on rank 1: both ranks returned a loss of 1.9e231 without an error; a ``meta``
  bias there: rank 1 failed in an all-reduce, rank 0 waited (then a backend error).

Now each raises the same ``InputError`` on both ranks, naming rank and value (or, for
``negative_zero``, gives the same loss on both). The group's timeout is
:data:`COLLECTIVE_TIMEOUT` seconds, so main's hangs fail quickly.
"""

from __future__ import annotations

import datetime
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

import crossent  # noqa: E402
from spawned import gloo_marks, run_spawned  # noqa: E402

pytestmark = gloo_marks()

COLLECTIVE_TIMEOUT = 5
SPAWN_TIMEOUT = 120
SIZES = (2, 3)
ROWS = 4


def _whole() -> Any:
    return torch.tensor(np.random.default_rng(3).normal(size=(ROWS, sum(SIZES))))


def _labels() -> Any:
    return torch.tensor([0, 4, 2, -100])  # 2: the first class of rank 1


def _mine(rank: int, x: Any) -> Any:
    lo = sum(SIZES[:rank])
    return x[..., lo : lo + SIZES[rank]].clone()


def _ce(rank: int, group: Any, **kw: Any) -> Any:
    from crossent.torch import vocab_parallel_cross_entropy

    logits = kw.pop("logits", None)
    logits = _mine(rank, _whole()) if logits is None else logits
    target = kw.pop("target", None)
    target = _labels() if target is None else target
    return vocab_parallel_cross_entropy(logits, target, group=group, **kw)


def _linear(rank: int, group: Any, **kw: Any) -> Any:
    from crossent.torch import vocab_parallel_linear_cross_entropy

    rng = np.random.default_rng(4)
    hidden = torch.tensor(rng.normal(size=(ROWS, 3)))
    weight = _mine(rank, torch.tensor(rng.normal(size=(sum(SIZES), 3))).T).T
    return vocab_parallel_linear_cross_entropy(hidden, weight, _labels(), group=group, **kw)


def _raises(match: str, call: Callable[[], Any]) -> None:
    from crossent.errors import InputError

    with pytest.raises(InputError, match=match):
        call()


def _weight_given(rank: int, group: Any) -> None:
    zeros = torch.zeros(sum(SIZES), dtype=torch.float64)
    _raises(
        r"^vocab_parallel_cross_entropy: the ranks of the group disagree on whether "
        r"`weight` is given \(rank 0: False; rank 1: True\)",
        lambda: _ce(rank, group, weight=None if rank == 0 else zeros),
    )
    _raises(
        r"^vocab_parallel_linear_cross_entropy: the ranks of the group disagree on whether "
        r"`class_weight` is given \(rank 0: True; rank 1: False\)",
        lambda: _linear(rank, group, class_weight=zeros if rank == 0 else None),
    )


def _negative_zero(rank: int, group: Any) -> None:
    weight = torch.linspace(0.0, 2.0, sum(SIZES), dtype=torch.float64)
    weight[3] = 0.0
    if rank == 1:
        weight[[0, 3]] = -0.0  # the same weights (-0.0 == 0.0), another sign bit
    loss = _ce(rank, group, weight=weight, label_smoothing=0.1)
    want = crossent.softmax_cross_entropy(
        _whole().numpy(),
        _labels().numpy(),
        weight=np.abs(weight.numpy()),
        ignore_index=-100,
        label_smoothing=0.1,
    )
    assert math.isclose(float(loss), float(want), rel_tol=1e-12), (float(loss), float(want))


def _meta_logits(rank: int, group: Any) -> None:
    logits = _mine(rank, _whole())
    _raises(
        r"^vocab_parallel_cross_entropy: the ranks of the group disagree on the device "
        r"type of `input` \(rank 0: cpu; rank 1: meta\)",
        lambda: _ce(rank, group, logits=logits.to("meta") if rank == 1 else logits),
    )


def _meta_target(rank: int, group: Any) -> None:
    _raises(
        r"^vocab_parallel_cross_entropy: on rank 1 of the group, .*meta",
        lambda: _ce(rank, group, target=_labels().to("meta") if rank == 1 else _labels()),
    )


def _meta_classifier(rank: int, group: Any) -> None:
    from crossent.torch import vocab_parallel_linear_cross_entropy

    rng = np.random.default_rng(4)
    hidden = torch.tensor(rng.normal(size=(ROWS, 3)))
    weight = _mine(rank, torch.tensor(rng.normal(size=(sum(SIZES), 3))).T).T
    bias = torch.zeros(SIZES[rank], dtype=torch.float64)
    for name, kw in (
        ("weight", {"weight": weight.to("meta") if rank == 1 else weight}),
        ("bias", {"weight": weight, "bias": bias.to("meta") if rank == 1 else bias}),
    ):
        _raises(
            rf"^vocab_parallel_linear_cross_entropy: on rank 1 of the group, `{name}` must be "
            r"on the device of `input` \(cpu\); got meta",
            lambda kw=kw: vocab_parallel_linear_cross_entropy(
                hidden, target=_labels(), group=group, **kw
            ),
        )


CASES: dict[str, Callable[[int, Any], None]] = {
    "weight_given": _weight_given,
    "negative_zero": _negative_zero,
    "meta_logits": _meta_logits,
    "meta_target": _meta_target,
    "meta_classifier": _meta_classifier,
}


def _still_works(rank: int, group: Any) -> None:
    """After the errors, a valid call gives the unsharded loss on both ranks."""
    want = crossent.softmax_cross_entropy(_whole().numpy(), _labels().numpy(), ignore_index=-100)
    assert math.isclose(float(_ce(rank, group)), float(want), rel_tol=1e-12)


def _worker(rank: int, world: int, cases: tuple[str, ...]) -> None:
    timeout = datetime.timedelta(seconds=COLLECTIVE_TIMEOUT)
    group = dist.new_group(list(range(world)), timeout=timeout)
    for case in cases:
        CASES[case](rank, group)
        _still_works(rank, group)


def test_hostiledist_ranks_that_differ_raise_on_every_rank() -> None:
    run_spawned(_worker, 2, tuple(CASES), timeout=SPAWN_TIMEOUT)


def test_hostiledist_digest_tells_blocks_of_16384_rows_apart() -> None:
    """Labels of 32 sequences of 2048 tokens, sequences 0-7 and 8-15 in the other order
    on one rank: main's digest (position weights of period 2**16 words, 16384 int64
    labels) gave both orders the same two sums, so the ranks agreed on different labels
    (a wrong loss without an error). Also a roll by 16384 rows, and one label moved by
    d rows (16384 on main: the same sums) for distances that one sum alone misses."""
    from crossent.torch._agreement import tensor_digest

    labels = torch.tensor(np.random.default_rng(5).integers(0, 50_000, size=(32, 2048)))
    other = torch.cat([labels[8:16], labels[:8], labels[16:]])
    rows = labels.reshape(-1)
    digests = {
        tuple(tensor_digest(x).tolist())
        for x in (rows, other.reshape(-1), torch.roll(rows, 16384), labels.T.reshape(-1))
    }
    assert len(digests) == 4
    one = torch.zeros(2**15, dtype=torch.int64)
    one[0] = 1
    base = tuple(tensor_digest(one).tolist())
    # 28011 and 5599 rows: 4dK within 2**16 of a multiple of 2**32 for one multiplier
    # (the only such distances below 2**16 rows, with 50549 and 11198), where that sum
    # alone can miss a move
    distances = [16384, 8192, 4096, 28011, 5599, 11198, *range(1, 2**15, 1009)]
    same = [d for d in distances if tuple(tensor_digest(one.roll(d)).tolist()) == base]
    assert same == [], same[:5]


if __name__ == "__main__":  # one case at a time (to check each against main's code)
    sys.path.insert(0, str(Path(__file__).parents[1]))
    run_spawned(_worker, 2, tuple(sys.argv[1:]), timeout=SPAWN_TIMEOUT)
