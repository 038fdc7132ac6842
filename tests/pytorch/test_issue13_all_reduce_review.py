"""Issue 13 review of ``crossent.torch.all_reduce_state`` on three gloo ranks.

Bugs pinned (on main): a bad ``state`` (not an ``EvaluationState``) on one rank raised
there before the first collective and left the other ranks waiting in it forever; a bad
``row_offset`` (-7, 1.5, "3") on one rank was accepted silently (negative rows, 1.5 read
as 1) or raised a raw ``ValueError`` after the first collectives (the others then waited
in the last); a process outside ``group`` got torch's raw ``ValueError``. Now every rank
of the group raises the same ``InputError`` naming the argument and the rank(s), from the
first collective; a non-member gets an ``InputError`` of its own.

Also pinned (these held on main): counts, bins' counts and the surprising rows equal
``EvaluationState.merge`` of the ranks' states and the one-shot state of all rows; the
float sums are bit-identical to ``merge`` on two ranks (one addition) and within 4 ulp
on three (gloo adds in its own order: 1 ulp off in most cases), the same bits on every
rank; reducing an already reduced state counts every row once per rank (documented, not
an error).

One spawn of three ranks runs every case in turn (a spawn costs seconds, a case
milliseconds). The cases run in a group whose collectives time out after
:data:`COLLECTIVE_TIMEOUT` seconds, so a rank left waiting fails the test instead of
hanging it (and ``run_spawned`` kills the ranks past :data:`SPAWN_TIMEOUT`).
"""

from __future__ import annotations

import datetime
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

import crossent  # noqa: E402
from spawned import gloo_marks, run_spawned  # noqa: E402

pytestmark = gloo_marks()

CLASSES = 5
ROWS = (40, 17, 33)  # rows of ranks 0, 1, 2
COLLECTIVE_TIMEOUT = 10
SPAWN_TIMEOUT = 90


def _data(rank: int, classes: int = CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """Rank ``rank``'s rows (seeded: any rank rebuilds any rank's)."""
    rng = np.random.default_rng(rank)
    return rng.normal(size=(ROWS[rank], classes)) * 3, rng.integers(0, classes, ROWS[rank])


def _state(rank: int, *, classes: int = CLASSES, first_row: int = 0) -> Any:
    """Rank ``rank``'s state of its own rows, numbered from ``first_row``."""
    state = crossent.EvaluationState(classes, bins=10, keep=4)
    return state.update(*_data(rank, classes), form="logits", first_row=first_row)


def _merged(ranks: range) -> Any:
    """The single-process oracle: ``merge`` of the ranks' states in rank order, their rows
    numbered globally."""
    total = _state(ranks[0])
    for r in ranks[1:]:
        total = total.merge(_state(r, first_row=sum(ROWS[:r])))
    return total


def _same_counts(got: Any, want: Any) -> None:
    assert got.n == want.n
    np.testing.assert_array_equal(got._class_count, want._class_count)
    np.testing.assert_array_equal(got._bins.count, want._bins.count)
    assert got._surprising == want._surprising


def _float_sums(state: Any) -> np.ndarray:
    bins = state._bins
    return np.concatenate([state._sums, state._class_surprisal, bins.confidence_sum, bins.hits])


def _expect_input_error(match: str, **call: Any) -> None:
    from crossent.errors import InputError
    from crossent.torch import all_reduce_state

    with pytest.raises(InputError, match=match):
        all_reduce_state(**call)


def _bad_arguments(rank: int, group: Any) -> None:
    """Issue 13: one rank's bad argument raises the same InputError on every rank."""
    good = _state(rank)
    _expect_input_error(
        r"on rank 1 of the group, `state` must be an EvaluationState; got dict$",
        state={"n": 3} if rank == 1 else good,
        group=group,
    )
    for bad_rank, bad, shown in ((2, -7, "-7"), (0, 1.5, "1.5"), (1, "3", "'3'"), (2, 2**53, "")):
        _expect_input_error(
            rf"on rank {bad_rank} of the group, `row_offset` must be None or a non-negative "
            rf"integer.*got {shown}",
            state=good,
            group=group,
            row_offset=bad if rank == bad_rank else None,
        )
    # Two ranks at once: both named.
    _expect_input_error(
        r"on rank 0 of the group, `row_offset`.*; on rank 2 of the group, `row_offset`",
        state=good,
        group=group,
        row_offset=-1 if rank != 1 else 0,
    )
    # A different class count on one rank: its fingerprint differs (held on main).
    _expect_input_error(
        r"disagree on `state` \(cannot merge .*different classes.*rank 0: 5 classes.*"
        r"rank 2: 6 classes",
        state=_state(rank, classes=CLASSES + 1) if rank == 2 else good,
        group=group,
    )


def _not_a_member(rank: int, pair: Any) -> None:
    """Issue 13: a process outside ``group`` gets an InputError (torch's ValueError on main)."""
    from crossent.torch import all_reduce_state

    if rank == 2:
        _expect_input_error(r"global rank 2\) is not in `group`", state=_state(2), group=pair)
        _expect_input_error(r"`group` is not a usable process group", state=_state(2), group="x")
    else:
        _same_counts(all_reduce_state(_state(rank), group=pair), _merged(range(2)))


def _exactness(rank: int, group: Any, pair: Any) -> None:
    """Counts exact; float sums bit-identical to merge on 2 ranks, within 4 ulp on 3."""
    from crossent.torch import all_reduce_state

    if rank < 2:
        got, want = all_reduce_state(_state(rank), group=pair), _merged(range(2))
        _same_counts(got, want)
        np.testing.assert_array_equal(_float_sums(got), _float_sums(want))
    got, want = all_reduce_state(_state(rank), group=group), _merged(range(3))
    _same_counts(got, want)
    np.testing.assert_array_max_ulp(_float_sums(got), _float_sums(want), maxulp=4)
    everyone: list[Any] = [None] * 3
    dist.all_gather_object(everyone, _float_sums(got).tobytes(), group=group)
    assert len(set(everyone)) == 1  # the same bits on every rank
    # The one-shot state of all rows in rank order: the same counts.
    parts = [_data(r) for r in range(3)]
    whole = crossent.EvaluationState(CLASSES, bins=10, keep=4).update(
        np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]), form="logits"
    )
    _same_counts(got, whole)
    # Reducing the reduced state again counts every row once per rank (documented).
    twice = all_reduce_state(got, group=group)
    assert twice.n == 3 * sum(ROWS)
    np.testing.assert_array_equal(twice._class_count, 3 * want._class_count)
    np.testing.assert_array_equal(twice._bins.count, 3 * want._bins.count)


def _worker(rank: int, world: int) -> None:
    from crossent.torch import all_reduce_state

    timeout = datetime.timedelta(seconds=COLLECTIVE_TIMEOUT)
    group = dist.new_group(list(range(world)), timeout=timeout)
    pair = dist.new_group([0, 1], timeout=timeout)
    _bad_arguments(rank, group)
    _not_a_member(rank, pair)
    _exactness(rank, group, pair)
    # The group still works after the errors.
    assert all_reduce_state(_state(rank), group=group).n == sum(ROWS)


def test_issue13_all_reduce_state_bad_input_on_one_rank_raises_on_every_rank() -> None:
    run_spawned(_worker, 3, timeout=SPAWN_TIMEOUT)
