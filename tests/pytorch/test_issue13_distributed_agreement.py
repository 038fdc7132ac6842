"""Issue 13: distributed calls where one rank differs raise the same error on every rank.

Bugs pinned (on main at fa36995, each case alone):

* ``vocab_parallel_cross_entropy`` with another number of rows, or label smoothing, on one
  rank: the ranks sent all-reduces of different sizes and gloo aborted every process
  (``SIGABRT``); other labels on one rank gave a wrong loss without an error;
* a bad argument on one rank only (a float ``target``, a negative class weight): that rank
  raised, the others waited in the next collective (here until the group's timeout);
* ``vocab_parallel_linear_cross_entropy`` with other features on one rank: the backward's
  all-reduce of ``N x D`` had different sizes (abort); ``input`` requiring grad on one
  rank only: that rank waited in the backward's all-reduce alone (timeout);
* two ranks in different distributed calls (``all_reduce_state`` and a vocab-parallel
  loss): messages of different sizes (abort);
* a rank that passes a group the others do not (``"x"``): the others waited until the
  group's timeout and got the backend's bare "timed out"; now an ``InputError`` that says
  what cannot be told apart.

Now each raises, on every rank, an ``InputError`` (or ``InputTypeError``) naming the
rank(s) and the values, from one fixed-size all-gather before any collective whose size
depends on the data; a valid call afterwards still works. One spawn of three ranks runs
every case; its collectives time out after :data:`COLLECTIVE_TIMEOUT` seconds (the timeout
case after :data:`SHORT_TIMEOUT`), and ``run_spawned`` kills the ranks after
:data:`SPAWN_TIMEOUT`, so a regression fails instead of hanging.
"""

from __future__ import annotations

import datetime
import hashlib
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

COLLECTIVE_TIMEOUT = 10
SHORT_TIMEOUT = 2
SPAWN_TIMEOUT = 120
SIZES = (3, 0, 4)  # classes of ranks 0, 1, 2 (V = 7, an empty slice)
ROWS = 5


def _logits(rank: int, rows: int = ROWS) -> Any:
    """Rank ``rank``'s slice of float64 logits (seeded: the same whole matrix on every rank)."""
    whole = torch.tensor(np.random.default_rng(0).normal(size=(rows, sum(SIZES))))
    lo = sum(SIZES[:rank])
    return whole[:, lo : lo + SIZES[rank]].clone()


def _labels(rows: int = ROWS) -> Any:
    return torch.tensor([0, 6, 3, -100, 2, 5, 1][:rows])


def _raises(kind: type[Exception], match: str, call: Callable[[], Any]) -> None:
    with pytest.raises(kind, match=match):
        call()


def _ce(rank: int, group: Any, **kw: Any) -> Any:
    from crossent.torch import vocab_parallel_cross_entropy

    logits = kw.pop("logits", None)
    logits = _logits(rank) if logits is None else logits
    target = kw.pop("target", None)
    target = _labels() if target is None else target
    return vocab_parallel_cross_entropy(logits, target, group=group, **kw)


def _linear(rank: int, group: Any, *, features: int = 4, grad: bool = True) -> Any:
    """The linear loss of hidden states (replicated) and this rank's classifier rows."""
    from crossent.torch import vocab_parallel_linear_cross_entropy

    rng = np.random.default_rng(1)
    hidden = torch.tensor(rng.normal(size=(ROWS, features)), requires_grad=grad)
    weight = torch.tensor(rng.normal(size=(sum(SIZES), features)))
    lo = sum(SIZES[:rank])
    mine = weight[lo : lo + SIZES[rank]].clone().requires_grad_(True)
    loss = vocab_parallel_linear_cross_entropy(hidden, mine, _labels(), group=group)
    loss.backward()
    return loss


def _vocab_parallel_cases(rank: int, group: Any, only: str | None = None) -> None:
    """One rank differs from the others in each case (``only``: that case alone)."""
    from crossent.errors import InputError, InputTypeError

    cases: dict[str, Callable[[], None]] = {}

    # Another number of rows on rank 2 (main: gloo aborted every rank).
    def rows() -> None:
        _raises(
            InputError,
            r"disagree on the number of rows \(rank 0: 5; rank 2: 4\); it must be the same",
            lambda: _ce(
                rank,
                group,
                logits=_logits(rank, 4 if rank == 2 else ROWS),
                target=_labels(4 if rank == 2 else ROWS),
            ),
        )

    cases["rows"] = rows

    # Label smoothing on rank 1 only (main: abort, the SUM buffers had 3N+1 and 4N+1).
    def smoothing() -> None:
        _raises(
            InputError,
            r"disagree on the options \(rank 0: .*label_smoothing=0\.0.*; rank 1: .*"
            r"label_smoothing=0\.1",
            lambda: _ce(rank, group, label_smoothing=0.1 if rank == 1 else 0.0),
        )

    cases["smoothing"] = smoothing

    # Other labels on rank 0 (main: a loss, wrong, without an error).
    def labels() -> None:
        other = _labels()
        other[1] = 4
        _raises(
            InputError,
            r"disagree on `target` \(the labels\) \(ranks 1, 2 differ from rank 0\)",
            lambda: _ce(rank, group, target=other if rank == 0 else _labels()),
        )

    cases["labels"] = labels

    # A float target on rank 1 only: its InputTypeError on every rank (main: others waited).
    def float_target() -> None:
        _raises(
            InputTypeError,
            r"^vocab_parallel_cross_entropy: on rank 1 of the group, `target` must hold integer",
            lambda: _ce(rank, group, target=_labels().double() if rank == 1 else _labels()),
        )

    cases["float_target"] = float_target

    # A negative class weight on rank 2 only.
    def class_weight() -> None:
        weight = torch.ones(sum(SIZES), dtype=torch.float64)
        bad = weight.clone()
        bad[3] = -1.0
        _raises(
            InputError,
            r"on rank 2 of the group, `weight` must be finite and non-negative",
            lambda: _ce(rank, group, weight=bad if rank == 2 else weight),
        )

    cases["class_weight"] = class_weight

    # The linear loss: other features on rank 0 (main: the backward's all-reduce aborted).
    def features() -> None:
        _raises(
            InputError,
            r"vocab_parallel_linear_cross_entropy: .*disagree on the features of `input` "
            r"\(rank 0: 3; rank 1: 4; rank 2: 4\)",
            lambda: _linear(rank, group, features=3 if rank == 0 else 4),
        )

    cases["features"] = features

    # `input` requires grad on rank 1 only (main: rank 1 alone in the backward's all-reduce).
    def requires_grad() -> None:
        _raises(
            InputError,
            r"disagree on whether `input` requires grad \(rank 0: False; rank 1: True\)",
            lambda: _linear(rank, group, grad=rank == 1),
        )

    cases["requires_grad"] = requires_grad

    for name, case in cases.items():
        if only in (None, name):
            case()


def _mixed_calls(rank: int, group: Any) -> None:
    """Rank 1 in ``all_reduce_state``, the others in a vocab-parallel loss (main: abort)."""
    from crossent.errors import InputError
    from crossent.torch import all_reduce_state

    def call() -> Any:
        if rank == 1:
            return all_reduce_state(crossent.EvaluationState(3), group=group)
        return _ce(rank, group)

    _raises(
        InputError,
        r"different distributed calls \(rank 0: vocab_parallel_cross_entropy; rank 1: "
        r"all_reduce_state; rank 2: vocab_parallel_cross_entropy\)",
        call,
    )


def _still_works(rank: int, group: Any) -> None:
    """After the errors, a valid call gives the unsharded loss, on every rank."""
    z = torch.tensor(np.random.default_rng(0).normal(size=(ROWS, sum(SIZES))))
    want = crossent.softmax_cross_entropy(z.numpy(), _labels().numpy(), ignore_index=-100)
    assert math.isclose(float(_ce(rank, group)), float(want), rel_tol=1e-12)
    merged = crossent.EvaluationState(7).update(z.numpy()[:2], np.array([0, 6]), form="logits")
    from crossent.torch import all_reduce_state

    assert all_reduce_state(merged, group=group).n == 6


def _group_elsewhere(rank: int, group: Any) -> None:
    """Rank 2 passes a group that is not one (it raises at once); ranks 0 and 1 wait for it
    until the group's timeout, then say so (main: the backend's bare timeout error). Then
    a barrier in ``group``, where rank 2 waits (had it exited, the others would have seen
    its connection close before their timeout)."""
    from crossent.errors import InputError
    from crossent.torch import all_reduce_state

    timeout = datetime.timedelta(seconds=SHORT_TIMEOUT)
    short = dist.new_group([0, 1, 2], timeout=timeout)
    state = crossent.EvaluationState(3)
    if rank == 2:
        _raises(InputError, "`group` is not a usable process group", lambda: _ce(2, "x"))
    else:
        _raises(
            InputError,
            r"all_reduce_state: a rank of `group` did not answer within the group's timeout",
            lambda: all_reduce_state(state, group=short),
        )
    dist.barrier(group=group)


def _worker(rank: int, world: int, cases: tuple[str, ...]) -> None:
    timeout = datetime.timedelta(seconds=COLLECTIVE_TIMEOUT)
    group = dist.new_group(list(range(world)), timeout=timeout)
    functions = {
        "vocab_parallel": lambda: _vocab_parallel_cases(rank, group),
        "mixed_calls": lambda: _mixed_calls(rank, group),
        "still_works": lambda: _still_works(rank, group),
        # last: it leaves a timed-out group
        "group_elsewhere": lambda: _group_elsewhere(rank, group),
    }
    for case in cases:
        if case.startswith("vocab_parallel:"):  # one of its cases alone
            _vocab_parallel_cases(rank, group, case.split(":")[1])
        else:
            functions[case]()


ALL_CASES = ("vocab_parallel", "mixed_calls", "still_works", "group_elsewhere")


def test_issue13_one_rank_differs_every_rank_raises() -> None:
    run_spawned(_worker, 3, ALL_CASES, timeout=SPAWN_TIMEOUT)


def test_issue13_tensor_digest_equals_a_numpy_oracle() -> None:
    """The labels' fingerprint: exact int64 sums of the bytes' 16-bit words (a Python-int
    oracle), changed by a swap of two rows; the same for a copy."""
    from crossent.torch._agreement import fingerprint, tensor_digest

    rng = np.random.default_rng(16)
    labels = rng.integers(-(2**62), 2**62, size=1001)
    labels[:3] = [-100, 0, 2**63 - 1]
    words = labels.astype("<i8").view("<i2").astype(object)
    # (the position weights of test_distributed_agreement_fields: two Weyl sequences' high halves)
    want = [
        int(sum((((j + 1) * k % 2**32) // 2**16 + 1) * u for j, u in enumerate(words)))
        for k in (0x9E3779B1, 0x85EBCA6B)
    ]
    got = tensor_digest(torch.tensor(labels))
    assert got.tolist() == want
    assert tensor_digest(torch.tensor(labels).clone()).tolist() == want
    swapped = labels.copy()
    swapped[[4, 5]] = swapped[[5, 4]]
    assert tensor_digest(torch.tensor(swapped)).tolist() != want
    # BLAKE2b's first 8 bytes, little-endian: the same in every process (not Python's hash).
    digest = hashlib.blake2b(b"abc", digest_size=8).digest()
    assert fingerprint("abc") == int.from_bytes(digest, "little", signed=True)


if __name__ == "__main__":  # one case at a time (to check each against main's code)
    sys.path.insert(0, str(Path(__file__).parents[1]))
    run_spawned(_worker, 3, tuple(sys.argv[1:]), timeout=SPAWN_TIMEOUT)
