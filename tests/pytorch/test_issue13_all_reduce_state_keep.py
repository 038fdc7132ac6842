"""Issue 13: ``all_reduce_state``'s most surprising rows: as many as kept, and exact.

Bug pinned (on main): each rank sent a ``(keep, 2)`` float64 tensor of its most
surprising rows, whatever it had kept, so ``keep=10**12`` ("keep them all", which
``update`` and ``merge`` bound by the rows: see ``test_issue13_keep_unbounded``) raised
torch's "DefaultCPUAllocator: can't allocate memory: you tried to allocate
16000000000000 bytes" on every rank, and ``keep=10**7`` sent 160 MB a rank (and received
``world`` times that) for a few rows. Now a rank sends as many rows as the rank that kept
the most (every rank knows the counts from the first exchange), and no third collective
when no rank kept a row.

Also pinned (on main): ``keep`` past int64 (``10**30``, which ``update`` and ``merge``
take) raised a bare ``ValueError: Overflow when unpacking long long`` forming the first
record (on every rank of a larger world: "on rank r of the group, ValueError: ..."); now
the record holds ``keep`` capped at ``2**63 - 1`` (its fingerprint tells larger values
apart). And a state whose rows were numbered from ``first_row >= 2**53`` in
``update`` (with the default ``row_offset=None``) had its rows rounded to float64 on the
way (2**53 + 1 arrived as 2**53), where ``row_offset=0`` refused the same rows; now every
rank raises the same ``InputError``, naming the rank and the rows.

One spawn of three ranks with 0, 37 and 91 rows; the oracle is ``merge`` of the ranks'
states in rank order (rows numbered globally) and the one-shot state of all rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

import crossent  # noqa: E402
from spawned import gloo_marks, one_rank_group, run_spawned  # noqa: E402

pytestmark = gloo_marks()

CLASSES = 4
ROWS = (0, 37, 91)  # rows of ranks 0, 1, 2


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(13)
    rows = sum(ROWS)
    return rng.normal(size=(rows, CLASSES)) * 3, rng.integers(0, CLASSES, rows)


def _state(keep: int, lo: int, hi: int, *, first_row: int = 0) -> Any:
    logits, labels = _data()
    state = crossent.EvaluationState(CLASSES, keep=keep)
    return state.update(logits[lo:hi], labels[lo:hi], form="logits", first_row=first_row)


def _gathers(call: Any) -> tuple[Any, int]:
    from torch.distributed.tensor.debug import CommDebugMode

    with CommDebugMode() as mode:
        result = call()
    counts = {str(op).split(".")[-1]: n for op, n in mode.get_comm_counts().items()}
    return result, counts.get("allgather_", 0)


def _worker(rank: int, world: int) -> None:
    from crossent.torch import all_reduce_state

    bounds = [sum(ROWS[:r]) for r in range(world + 1)]
    lo, hi = bounds[rank], bounds[rank + 1]
    for keep in (10**30, 10**12, 10**7, 50, 3):
        merged = _state(keep, 0, 0)
        for r in range(world):
            merged = merged.merge(_state(keep, bounds[r], bounds[r + 1], first_row=bounds[r]))
        whole = _state(keep, 0, bounds[-1])
        got = all_reduce_state(_state(keep, lo, hi))
        assert got.n == whole.n == sum(ROWS)
        assert got._surprising == merged._surprising == whole._surprising
        assert len(got.compute().most_surprising) == min(keep, sum(ROWS))
    # No rank kept a row: the exchange and the sums' all-reduce, no gather of rows.
    empty, gathers = _gathers(lambda: all_reduce_state(crossent.EvaluationState(CLASSES)))
    assert (empty.n, empty._surprising, gathers) == (0, [], 1)
    # Only rank 2 kept rows: the others send that many empty slots, and the rows arrive.
    keep = 4
    mine = _state(keep, 0, 5) if rank == 2 else crossent.EvaluationState(CLASSES, keep=keep)
    got, gathers = _gathers(lambda: all_reduce_state(mine))
    assert gathers == 2
    assert got._surprising == _state(keep, 0, 5, first_row=0)._surprising


def test_issue13_all_reduce_state_gathers_only_the_kept_rows() -> None:
    run_spawned(_worker, 3, timeout=90)


def _big_rows_worker(rank: int, world: int) -> None:
    from crossent.errors import InputError
    from crossent.torch import all_reduce_state

    first = 2**53 - 3 if rank == 1 else 0  # rows 2**53 - 3 ... 2**53 + 1 on rank 1
    state = _state(5, 0, 5, first_row=first)
    with pytest.raises(
        InputError,
        match=r"on rank 1 of the group, `state`'s most surprising rows must be below 2\*\*53 "
        r".*got rows up to 9007199254740993",
    ):
        all_reduce_state(state)
    # Below the limit: the rows arrive exactly.
    state = _state(5, 0, 5, first_row=2**53 - 6 if rank == 1 else 0)
    got = all_reduce_state(state, row_offset=0)
    want = _state(5, 0, 5).merge(_state(5, 0, 5, first_row=2**53 - 6))
    assert got._surprising == want._surprising
    assert max(row for _, row in got._surprising) > 2**53 - 6  # rank 1's rows are kept


def test_issue13_all_reduce_state_refuses_rows_past_float64() -> None:
    run_spawned(_big_rows_worker, 2, timeout=90)


def test_issue13_all_reduce_state_keep_past_int64(tmp_path: Any) -> None:
    from crossent.torch import all_reduce_state

    state = _state(10**30, 0, 20)
    with one_rank_group(str(tmp_path)):
        got = all_reduce_state(state)
    assert got.keep == 10**30
    assert got.n == 20
    assert got._surprising == state._surprising
    assert len(got._surprising) == 20
