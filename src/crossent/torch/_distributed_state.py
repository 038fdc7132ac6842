r"""Merge every rank's :class:`~crossent.EvaluationState` across a ``torch.distributed`` group.

An :class:`~crossent.EvaluationState` is a fixed-size summary (sums, counts, calibration
bins and the ``keep`` most surprising rows), and ``merge`` adds two of them. Across
ranks the same merge takes three collectives whose sizes are bounded by the number of
classes, bins and ``keep``, never by the number of examples (no prediction is gathered):

1. ``all_gather`` of one fixed-size record per rank (``_agreement.exchange``): whether
   this rank's own checks failed (``state`` not an ``EvaluationState``, ``row_offset``
   not a non-negative integer, a surprising row at or past :math:`2^{53}`), what must
   agree (a BLAKE2b fingerprint of the classes, binning, ``keep`` and ``entropy``, and
   exactly the length of the sums' vector and ``keep``), the rank's example count and
   how many surprising rows it keeps. A failed check on any rank, or a layout that
   differs from rank 0's, raises the same :class:`~crossent.errors.InputError` on
   every rank, naming the argument, the rank(s) and the values, before any other
   collective (so no rank is left waiting in one); the counts give each rank's first
   global row (the ranks' data concatenated in rank order) and the size of the third
   collective.
2. ``all_reduce(SUM)`` of one float64 vector: the five score sums, the per-class counts
   and surprisal sums, and the bins' counts, confidence sums and hits (counts are
   integers below :math:`2^{53}`, so they add exactly).
3. ``all_gather`` of each rank's most surprising rows as (surprisal, global row) float64
   pairs, padded to the most rows any rank kept, from which every rank takes the
   ``keep`` highest (ties to the lower row), as ``merge`` does. Skipped when no rank
   kept a row (``keep = 0``, or no examples).

Message sizes a call (each rank's own message; an all-gather delivers ``world`` of
them to every rank, and the backend's algorithm decides the bytes on the wire):

- the record: 16 int64, 128 bytes;
- the sums: :math:`8\,(6 + 3C + 3M)` bytes for :math:`C` classes (the last
  :math:`1 + C` the surprisal sums scaled by :math:`2^{-64}`, which a total above
  :math:`2^{1023}` reads), where :math:`M` is
  the number of cells: ``bins`` for equal-width bins, ``FINE_CELLS + 2`` (4098) for
  ``binning="quantile"`` (which merges fine cells), times :math:`C` for
  ``scope="class-wise"``. The default (15 equal-width top-label bins) on 10 classes
  is 648 bytes; class-wise quantile bins on 1000 classes are 98 MB;
- the surprising rows: :math:`16\,m` bytes, :math:`m` the most rows a rank kept
  (at most ``keep``, and at most the rank's examples).

A disagreement is found in the first collective, before the data-sized ones, and raised
after one more all-gather (the ranks' descriptions, for the message): milliseconds, not
the group's timeout.

Counts, bins' counts and the surprising rows are exact: the same as
:meth:`~crossent.EvaluationState.merge` of the ranks' states. Sums of floats are exact up
to reassociation (the all-reduce adds in its own order): with two ranks they are
bit-identical to ``merge`` (one addition, which commutes); with three or more they may
differ from ``merge`` in rank order by a few ulp, as ``merge`` in another order would.

Every rank of ``group`` must call :func:`all_reduce_state` with that group: a rank that
never calls, or passes another group (``None`` where the others pass a subgroup, or the
reverse), leaves the others waiting in the first collective until the group's timeout (no
exchange can detect it: it meets no record); they then raise an
:class:`~crossent.errors.InputError` that says so instead of the backend's "timed out".

This module reads the state's fields directly (``EvaluationState`` has no public
pack/unpack yet): if a field is added to the state, add it to ``_FIELDS`` and to the
packing below; a test checks that the list matches the state's attributes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from .._checks import check_integer
from ..calibration import EvaluationState
from ..calibration._state import _HUGE
from ..errors import InputError
from ._agreement import (
    Field,
    fingerprint,
    group_and_rank,
    message_device,
    untraced_exchange,
)

__all__ = ["all_reduce_state"]

#: The attributes of an ``EvaluationState``, all handled below.
_FIELDS = frozenset(
    {
        "_spec",
        "classes",
        "keep",
        "entropy",
        "n",
        "_next_row",
        "_sums",
        "_class_count",
        "_class_surprisal",
        "_bins",
        "_surprising",
        "_huge",
    }
)


#: The largest value of a record's int64 slot.
_INT64_MAX = 2**63 - 1

#: Row numbers travel as float64: exact below this.
_EXACT_ROWS = 2**53

_ROW_OFFSET = "`row_offset` must be None or a non-negative integer (shifted rows < 2**53)"


def _local_problem(state: Any, row_offset: Any) -> InputError | None:
    """This rank's error for its own arguments (None when they pass)."""
    if not isinstance(state, EvaluationState):
        return InputError(f"`state` must be an EvaluationState; got {type(state).__name__}")
    last = max((row for _, row in state._surprising), default=0)
    if row_offset is None:  # shifted by the lower ranks' rows: at least these
        if last >= _EXACT_ROWS:
            return InputError(
                "`state`'s most surprising rows must be below 2**53 (they travel as "
                f"float64); got rows up to {last} (from `first_row=` in update)"
            )
        return None
    try:
        offset = check_integer(row_offset, name="row_offset", low=0)
    except InputError:
        return InputError(f"{_ROW_OFFSET}; got {row_offset!r}")
    if offset + last >= _EXACT_ROWS:
        return InputError(f"{_ROW_OFFSET}; got {offset}, with rows up to {last}")
    return None


def _layout(state: EvaluationState) -> list[Field]:
    """What must agree for the states to merge, and this rank's counts."""
    described = f"{state.classes} classes, {state.spec}, keep={state.keep}, entropy={state.entropy}"
    words = "`state` (cannot merge states with different classes, binning, `keep` or `entropy`)"
    key = repr((state.classes, state.spec, state.keep, state.entropy))
    length = 6 + 3 * state.classes + 3 * int(state._bins.count.size)  # _pack's length
    return [
        Field(words, fingerprint(key), described),
        # Exactly the size of the all-reduce, and `keep` (also under a fingerprint
        # collision); `keep` held to an int64 slot ("keep them all" may pass 10**30).
        Field("the length of `state`'s sums", length, str(length)),
        Field("`state.keep`", min(int(state.keep), _INT64_MAX), str(state.keep)),
        Field("n", int(state.n), same=False),
        Field("surprising rows", len(state._surprising), same=False),
    ]


def _pack(state: EvaluationState) -> np.ndarray:
    bins = state._bins
    return np.concatenate(
        [
            state._sums,
            state._class_count.astype(np.float64),
            state._class_surprisal,
            np.ravel(bins.count),
            np.ravel(bins.confidence_sum),
            np.ravel(bins.hits),
            state._scaled(),  # the scaled surprisal sums (EvaluationState._huge)
        ]
    )


def _unpack(state: EvaluationState, vector: np.ndarray, n: int, surprising: list[Any]) -> Any:
    """A new state like ``state`` holding the merged fields."""
    classes, shape = state.classes, state._bins.count.shape
    cells = int(np.prod(shape))
    parts = np.split(vector, np.cumsum([5, classes, classes, cells, cells, cells]))
    merged = EvaluationState.__new__(EvaluationState)
    merged.__dict__.update(state.__dict__)
    merged.n = n
    merged._next_row = n  # (as EvaluationState.merge)
    merged._sums = parts[0]
    merged._class_count = np.rint(parts[1]).astype(np.int64)
    merged._class_surprisal = parts[2]
    merged._bins = type(state._bins)(*(np.reshape(p, shape) for p in parts[3:6]))
    merged._surprising = surprising
    # the scaled sums once the total passes the state's threshold (as ``merge``): the
    # ranks' totals of about 1e308 each overflowed the reduced sums
    merged._huge = parts[6] if merged._sums[0] > _HUGE else None
    return merged


def all_reduce_state(
    state: EvaluationState, *, group: Any = None, row_offset: int | None = None
) -> EvaluationState:
    """Every rank's evaluation state merged across ``group``: the whole data set's state.

    Parameters
    ----------
    state : EvaluationState
        This rank's state; every rank's must have the same classes, binning, ``keep`` and
        ``entropy``.
    group : ProcessGroup, optional
        Default: the world.
    row_offset : int, optional
        A non-negative integer added to this rank's row numbers of the most surprising
        examples (rows travel as float64: the shifted rows must stay below
        :math:`2^{53}`). Default: the number of examples on the lower ranks, so rows
        are numbered as in the ranks' data concatenated in rank order (each rank having
        numbered its own rows from 0).
        Pass 0 when the ranks already gave global row numbers (``first_row=`` in
        ``update``).

    Returns
    -------
    EvaluationState
        A new state (the input is unchanged), the same on every rank; its ``compute()``
        gives the metrics of the whole evaluation set.

    Raises
    ------
    InputError
        The same on every rank of ``group``, naming the argument, the rank(s) and the
        values, when any rank's ``state`` is not an ``EvaluationState`` or its
        ``row_offset`` is not ``None`` or a non-negative integer, or its surprising rows
        (shifted by ``row_offset``) reach :math:`2^{53}`, or the ranks' states cannot be
        merged (different classes, binning, ``keep`` or ``entropy``), or the ranks are in
        different distributed calls of ``crossent.torch``.
        On this process only when no process group is initialised, or this process is
        not in ``group`` (or ``group`` is not a process group): then the other ranks
        wait until the group's timeout, and raise an ``InputError`` saying so.

    See Also
    --------
    crossent.EvaluationState.merge : the same merge within one process.

    Notes
    -----
    Three collectives (two when no rank kept a surprising row), whose sizes are bounded
    by the classes, the bins and ``keep``, not by the examples: see the module docstring
    for what each carries and its bytes. With NCCL the
    messages go through the current GPU (tested on gloo only).

    Every rank of ``group`` must call this function with the same group (a rank that
    never calls, or passes another group, leaves the others waiting in the first
    collective until the group's timeout). Reduce each rank's own state once: reducing
    a state that is already the group's merge (the result of this function) counts every
    example ``world`` times, as ``merge`` of a state with itself counts it twice.

    Examples
    --------
    On each rank of ``torchrun --nproc-per-node=4 eval.py``::

        state = crossent.EvaluationState(classes)
        for logits, labels in my_shard_of_the_loader:
            state.update(logits.numpy(), labels.numpy(), form="logits")
        summary = crossent.torch.all_reduce_state(state).compute()
    """
    problem = _local_problem(state, row_offset)
    group, rank = group_and_rank(group, "all_reduce_state", problem, "all_reduce_state needs")
    device = message_device(group)
    world = dist.get_world_size(group)
    fields = [] if problem else _layout(state)
    table = untraced_exchange()("all_reduce_state", group, fields, problem)
    counts = [row[0] for row in table]
    n = sum(counts)

    sums = torch.from_numpy(_pack(state)).to(device)
    dist.all_reduce(sums, op=dist.ReduceOp.SUM, group=group)

    surprising: list[tuple[float, int]] = []
    # Each rank sends as many rows as the rank that kept the most (the exchange gave every
    # rank's count): at most ``keep``, and never more than it has seen.
    longest = max(row[1] for row in table)
    if longest:
        offset = sum(counts[:rank]) if row_offset is None else int(row_offset)
        mine = torch.zeros((longest, 2), dtype=torch.float64, device=device)
        if state._surprising:
            mine[: len(state._surprising)] = torch.tensor(
                [(value, row + offset) for value, row in state._surprising], dtype=torch.float64
            )
        gathered = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(gathered, mine, group=group)
        for r, part in enumerate(gathered):
            rows = part[: table[r][1]].cpu().tolist()
            surprising += [(float(value), int(row)) for value, row in rows]
        surprising = sorted(surprising, key=lambda item: (-item[0], item[1]))[: state.keep]

    return _unpack(state, sums.cpu().numpy(), n, surprising)
