r"""Merge every rank's :class:`~crossent.EvaluationState` across a ``torch.distributed`` group.

An :class:`~crossent.EvaluationState` is a fixed-size summary (sums, counts, calibration
bins and the ``keep`` most surprising rows), and ``merge`` adds two of them. Across
ranks the same merge takes three collectives whose sizes depend on the number of classes,
bins and ``keep`` only, never on the number of examples (no prediction is gathered):

1. ``all_gather`` of four integers per rank: a problem code (0, or which argument failed
   this rank's own checks: ``state`` not an ``EvaluationState``, ``row_offset`` not a
   non-negative integer), a fingerprint (CRC32) of (classes, binning, ``keep``, ``entropy``), the
   rank's example count, and how many surprising rows it keeps. A problem on any rank,
   or a fingerprint that differs from rank 0's, raises an
   :class:`~crossent.errors.InputError` naming the argument and the rank(s) on every
   rank, before any other collective (so no rank is left waiting in one); the counts give
   each rank's first global row (the ranks' data concatenated in rank order).
2. ``all_reduce(SUM)`` of one float64 vector: the five score sums, the per-class counts
   and surprisal sums, and the bins' counts, confidence sums and hits (counts are
   integers below :math:`2^{53}`, so they add exactly).
3. ``all_gather`` of each rank's ``keep`` most surprising rows as (surprisal, global
   row) pairs, from which every rank takes the ``keep`` highest (ties to the lower row),
   as ``merge`` does. Skipped when ``keep = 0``.

Counts, bins' counts and the surprising rows are exact: the same as
:meth:`~crossent.EvaluationState.merge` of the ranks' states. Sums of floats are exact up
to reassociation (the all-reduce adds in its own order): with two ranks they are
bit-identical to ``merge`` (one addition, which commutes); with three or more they may
differ from ``merge`` in rank order by a few ulp, as ``merge`` in another order would.

Every rank of ``group`` must call :func:`all_reduce_state`: a rank that never calls
leaves the others waiting in the first collective until the group's timeout (as for any
collective; nothing here can detect it).

This module reads the state's fields directly (``EvaluationState`` has no public
pack/unpack yet): if a field is added to the state, add it to ``_FIELDS`` and to the
packing below; a test checks that the list matches the state's attributes.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from .._checks import check_integer
from ..calibration import EvaluationState
from ..errors import InputError

__all__ = ["all_reduce_state"]

#: The attributes of an ``EvaluationState``, all handled below.
_FIELDS = frozenset(
    {
        "_spec",
        "classes",
        "keep",
        "entropy",
        "n",
        "_sums",
        "_class_count",
        "_class_surprisal",
        "_bins",
        "_surprising",
    }
)


#: Problem codes of the header, found by each rank's own checks before any collective.
_NO_PROBLEM, _BAD_STATE, _BAD_ROW_OFFSET = 0, 1, 2
_PROBLEMS = {
    _BAD_STATE: "`state` must be an EvaluationState",
    _BAD_ROW_OFFSET: "`row_offset` must be None or a non-negative integer (shifted rows < 2**53)",
}

#: Row numbers travel as float64: exact below this.
_EXACT_ROWS = 2**53


def _local_problem(state: Any, row_offset: Any) -> tuple[int, str]:
    """This rank's problem code for its own arguments, and what it got ("" when none)."""
    if not isinstance(state, EvaluationState):
        return _BAD_STATE, f"got {type(state).__name__}"
    if row_offset is not None:
        try:
            offset = check_integer(row_offset, name="row_offset", low=0)
        except InputError:
            return _BAD_ROW_OFFSET, f"got {row_offset!r}"
        last = max((row for _, row in state._surprising), default=0)
        if offset + last >= _EXACT_ROWS:
            return _BAD_ROW_OFFSET, f"got {offset}, with rows up to {last}"
    return _NO_PROBLEM, ""


def _fingerprint(state: EvaluationState) -> int:
    """A checksum of what must agree for two states to merge (stable across processes)."""
    return zlib.crc32(repr((state.classes, state.spec, state.keep, state.entropy)).encode())


def _rank_in(group: Any) -> int:
    """This process's rank in ``group``; an InputError when it is not a member."""
    try:
        rank = dist.get_rank(group)
    except (ValueError, RuntimeError, TypeError, AttributeError) as error:
        raise InputError(f"`group` is not a usable process group: {error}") from None
    if rank < 0:
        raise InputError(
            f"this process (global rank {dist.get_rank()}) is not in `group`; only the "
            "group's ranks may call all_reduce_state with it"
        )
    return rank


def _raise_on_problems(table: list[list[int]], rank: int, got: str) -> None:
    """The same InputError on every rank when any rank's own checks failed."""
    for code, message in _PROBLEMS.items():
        ranks = [r for r, row in enumerate(table) if row[0] == code]
        if ranks:
            mine = f" (this rank {rank}: {got})" if rank in ranks else ""
            raise InputError(f"{message}, on rank(s) {ranks} of the group{mine}")


def _device(group: Any) -> torch.device:
    """Where the messages live: the current GPU for NCCL, else the CPU."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


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
        ]
    )


def _unpack(state: EvaluationState, vector: np.ndarray, n: int, surprising: list[Any]) -> Any:
    """A new state like ``state`` holding the merged fields."""
    classes, shape = state.classes, state._bins.count.shape
    cells = int(np.prod(shape))
    parts = np.split(vector, np.cumsum([5, classes, classes, cells, cells]))
    merged = EvaluationState.__new__(EvaluationState)
    merged.__dict__.update(state.__dict__)
    merged.n = n
    merged._sums = parts[0]
    merged._class_count = np.rint(parts[1]).astype(np.int64)
    merged._class_surprisal = parts[2]
    merged._bins = type(state._bins)(*(np.reshape(p, shape) for p in parts[3:6]))
    merged._surprising = surprising
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
        On every rank of ``group``, naming the argument and the rank(s), when any rank's
        ``state`` is not an ``EvaluationState`` or its ``row_offset`` is not ``None`` or
        a non-negative integer (with the shifted rows below :math:`2^{53}`), or
        the ranks' states cannot be merged (different classes, binning, ``keep`` or
        ``entropy``).
        On this process only when no process group is initialised, or this process is
        not in ``group``.

    See Also
    --------
    crossent.EvaluationState.merge : the same merge within one process.

    Notes
    -----
    Three collectives (two without ``keep``), each of fixed size: see the module
    docstring. With NCCL the messages go through the current GPU (tested on gloo only).

    Every rank of ``group`` must call this function (a rank that never calls leaves the
    others waiting in the first collective). Reduce each rank's own state once: reducing
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
    problem, got = _local_problem(state, row_offset)
    if not (dist.is_available() and dist.is_initialized()):
        if problem:
            raise InputError(f"{_PROBLEMS[problem]}; {got}")
        raise InputError(
            "all_reduce_state needs an initialised torch.distributed process group; "
            "call torch.distributed.init_process_group first (e.g. under torchrun)"
        )
    group = dist.group.WORLD if group is None else group
    rank = _rank_in(group)
    device = _device(group)
    world = dist.get_world_size(group)

    ok = problem == _NO_PROBLEM  # else `state` may not be a state: send zeros
    fields = [_fingerprint(state), state.n, len(state._surprising)] if ok else [0, 0, 0]
    header = torch.tensor([problem, *fields], dtype=torch.int64, device=device)
    headers = [torch.empty_like(header) for _ in range(world)]
    dist.all_gather(headers, header, group=group)
    table = [[int(v) for v in h.tolist()] for h in headers]
    _raise_on_problems(table, rank, got)
    different = [r for r in range(world) if table[r][1] != table[0][1]]
    if different:
        raise InputError(
            "`state`: cannot merge evaluation states with different classes, binning, "
            f"`keep` or `entropy` across ranks: rank(s) {different} of the group differ "
            f"from rank 0 (this rank {rank}: {state.classes} classes, {state.spec}, "
            f"keep={state.keep}, entropy={state.entropy})"
        )
    counts = [row[2] for row in table]
    n = sum(counts)

    sums = torch.from_numpy(_pack(state)).to(device)
    dist.all_reduce(sums, op=dist.ReduceOp.SUM, group=group)

    surprising: list[tuple[float, int]] = []
    if state.keep:
        offset = sum(counts[:rank]) if row_offset is None else int(row_offset)
        mine = torch.zeros((state.keep, 2), dtype=torch.float64, device=device)
        if state._surprising:
            mine[: len(state._surprising)] = torch.tensor(
                [(value, row + offset) for value, row in state._surprising], dtype=torch.float64
            )
        gathered = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(gathered, mine, group=group)
        for r, part in enumerate(gathered):
            rows = part[: table[r][3]].cpu().tolist()
            surprising += [(float(value), int(row)) for value, row in rows]
        surprising = sorted(surprising, key=lambda item: (-item[0], item[1]))[: state.keep]

    return _unpack(state, sums.cpu().numpy(), n, surprising)
