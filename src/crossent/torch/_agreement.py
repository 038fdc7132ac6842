r"""One small exchange before a distributed call's data-sized collectives: the ranks agree.

A rank whose own checks fail cannot simply raise: the other ranks of its group would then
wait forever (or, with gloo, abort) in the call's next collective, and a rank whose
arguments differ in size from the others' (rows, features, options that change a
buffer's length) sends a message of another size, which gloo answers with an abort
(``SIGABRT``) and NCCL with a hang or a wrong number. So each distributed function of
``crossent.torch`` first sends one fixed-size record per rank, with one ``all_gather``:

=============  ================================================================
slot           content
=============  ================================================================
0              the function's tag (the first 8 bytes of BLAKE2b of its name)
1              1 when this rank's own checks failed, else 0
2 ...          the fields that must be equal on every rank (sizes, dtype code,
               BLAKE2b digests of the options, sums that fingerprint replicated
               tensors), then this rank's own fields (its slice width, ...)
=============  ================================================================

padded with zeros to :data:`RECORD` slots, so a record always meets a record of the same
size, even from another function. From the gathered table every rank takes the same
decision: go on, or raise the same :class:`~crossent.errors.InputError` (or
:class:`~crossent.errors.InputTypeError`) naming the rank(s) and what is wrong. Only
then, and on every rank at once, a second collective (``all_gather_object``) fetches the
ranks' messages and the values that differ: errors cost it, correct calls do not.

The fingerprints are BLAKE2b's first 8 bytes (``hashlib.blake2b(digest_size=8)``),
the same in every process (Python's ``hash`` is salted per process). CRC32, used before
for the evaluation state's layout, is 32 bits and linear (a sum of fingerprints of the
parts), good against transmission errors, not made to tell apart structured strings; and
with 64 bits an accidental collision between two different layouts has probability
:math:`2^{-64}`. A replicated tensor (the labels, the class weights) is fingerprinted on
its own device, without a host copy, by :func:`tensor_digest`: two exact integer sums of
its bytes as 16-bit words, each weighted by a pseudo-random position weight of period
:math:`2^{32}` words. That catches a different batch or a different order of rows (not a
crafted collision).

What no exchange can detect: a rank that calls with *another* group than the others (a
subgroup where the others pass ``None``, a group it is not a member of) or never calls
meets no record. The others then wait until the group's timeout (``timeout=`` of
``init_process_group`` or ``new_group``); :func:`exchange` turns that timeout into an
:class:`~crossent.errors.InputError` saying so, instead of the backend's bare
"timed out".
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..errors import CrossentError, InputError, InputTypeError

__all__ = [
    "RECORD",
    "Field",
    "exchange",
    "fingerprint",
    "group_and_rank",
    "message_device",
    "rank_in",
    "tensor_digest",
    "untraced_exchange",
]

#: int64 slots of each rank's record (fixed, whatever the function).
RECORD = 16


def fingerprint(text: str) -> int:
    """The first 8 bytes of BLAKE2b of ``text``, as a signed 64-bit integer."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def tensor_digest(x: torch.Tensor) -> torch.Tensor:
    r"""Two int64 sums that fingerprint the bytes of ``x``, on its device (no host copy).

    With :math:`u_j` the signed 16-bit words of ``x``'s bytes (little-endian order of
    the elements), :math:`(\sum_j \pi_j u_j,\ \sum_j \pi'_j u_j)`, whose position
    weights are the high halves of two multiplicative (Weyl) sequences,
    :math:`\pi_j = 1 + \lfloor ((j+1) K \bmod 2^{32}) / 2^{16} \rfloor` with
    :math:`K` = ``0x9E3779B1`` (:math:`2^{32}/\varphi`) and ``0x85EBCA6B`` for
    :math:`\pi'`: in :math:`[1, 2^{16}]`, so exact in int64 (no overflow) below
    :math:`2^{31}` words, and of period :math:`2^{32}` words. Shape and dtype are
    fingerprinted apart.

    Before, :math:`\pi_j = (40503\,j + 1) \bmod 2^{16}` and a plain sum: of period
    :math:`2^{16}` words, so int64 labels of rows 16384 apart had the same weights, and
    labels with two blocks of 16384 rows in another order (8 sequences of 2048 tokens
    before the next 8) passed as the same labels. Two weighted sums, not one: a swap of
    two single int64 rows :math:`d` apart can keep one sum where :math:`4dK` is within
    :math:`2^{16}` of a multiple of :math:`2^{32}` (below :math:`2^{16}` rows, 28011 and
    50549 for the first multiplier, 5599 and 11198 for the second), not both.
    """
    words = x.detach().contiguous().reshape(-1).view(torch.uint8)
    if words.numel() % 2:
        words = torch.cat([words, words.new_zeros(1)])
    u = words.view(torch.int16).to(torch.int64)
    position = torch.arange(1, u.numel() + 1, dtype=torch.int64, device=u.device)
    sums = [(u * (((position * k) & 0xFFFFFFFF) >> 16).add_(1)).sum() for k in _WEYL]
    return torch.stack(sums)


#: Multipliers of :func:`tensor_digest`'s position weights (odd, below 2**32).
_WEYL = (0x9E3779B1, 0x85EBCA6B)


@dataclass(frozen=True)
class Field:
    """One quantity of a rank's record.

    ``value`` is an int (one slot), a tensor (its :func:`tensor_digest`, two slots;
    ``None`` for no tensor: zeros) or ``None``; ``shown`` is how an error message prints
    it (``None``: only that it differs); ``same`` says whether every rank must have the
    same value (else it is the rank's own, as the slice width).
    """

    name: str
    value: int | torch.Tensor | None
    shown: str | None = None
    same: bool = True

    @property
    def slots(self) -> int:
        return 1 if isinstance(self.value, int) else 2


def message_device(group: Any) -> torch.device:
    """Where the records live: the current GPU for NCCL, else the CPU."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def group_and_rank(
    group: Any, function: str, problem: BaseException | None, needs: str
) -> tuple[Any, int]:
    """The process group (default: the world) and this process's rank in it
    (:func:`rank_in`); an error on this process only when there is no initialised
    process group (``problem`` first, this rank's own, else an :class:`InputError`
    whose subject is ``needs``: "all_reduce_state needs"), or it is not a member (that
    cannot be shared: no collective can run)."""
    if not (dist.is_available() and dist.is_initialized()):
        if problem is not None:
            raise problem
        raise InputError(
            f"{needs} an initialised torch.distributed process group; "
            "call torch.distributed.init_process_group first (e.g. under torchrun)"
        )
    group = dist.group.WORLD if group is None else group
    return group, rank_in(group, function)


def rank_in(group: Any, function: str) -> int:
    """This process's rank in ``group``; an InputError (on this process only) when
    ``group`` is not a process group or does not contain this process."""
    try:
        rank = dist.get_rank(group)
    except (ValueError, RuntimeError, TypeError, AttributeError) as error:
        raise InputError(f"`group` is not a usable process group: {error}") from None
    if rank < 0:
        raise InputError(
            f"this process (global rank {dist.get_rank()}) is not in `group`; only the "
            f"group's ranks may call {function} with it"
        )
    return rank


def _ranks(ranks: Sequence[int]) -> str:
    return f"rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))}"


def exchange(
    function: str,
    group: Any,
    fields: Sequence[Field],
    problem: BaseException | None = None,
) -> list[list[int]]:
    """Every rank's own fields (``same=False``) as a table ``[rank][field]``, after one
    ``all_gather`` of the records; the same error on every rank when a rank's checks
    failed (``problem``) or a ``same`` field differs between ranks.

    ``fields`` are ignored on a rank with a ``problem`` (they may not exist there); on
    the others they are the same list for every call of ``function``. A rank whose
    record cannot be formed (a replicated tensor on the ``meta`` device has no bytes to
    fingerprint) sends a failed record with that error as its problem: it used to raise
    alone, and the others waited in the all-gather until the group's timeout. Runs
    eagerly under ``torch.compile`` (a graph break): the collective and the decision
    read the host. Code that Dynamo may trace calls it as ``untraced_exchange()(...)``
    (:func:`untraced_exchange`). (The vocab-parallel losses on the default group call it
    inside their custom ops, ``_vocab_parallel_ops``, which Dynamo does not trace.)
    """
    device = message_device(group)
    world = dist.get_world_size(group)
    if problem is None:
        try:
            record = _record(function, fields, device)
        except Exception as error:  # (a tensor on the meta device): shared as a problem
            problem = error
    if problem is not None:
        if world == 1:  # no other rank to tell
            raise problem
        record = _record(function, [], device, failed=True)
    table = [torch.empty_like(record) for _ in range(world)]
    try:
        dist.all_gather(table, record, group=group)
    except RuntimeError as error:
        text = str(error).lower()
        if not any(cue in text for cue in ("timed out", "timeout", "closed by peer")):
            raise
        raise InputError(
            f"{function}: a rank of `group` did not answer within the group's timeout (or "
            "closed its connection). "
            "Every rank of the group must make the same distributed calls with the same "
            "group; a rank that passed another `group` (a subgroup, None for the world, a "
            "group it is not in), raised before the call or never called cannot be told "
            f"apart from a slow one. ({type(error).__name__}: {str(error)[:200]})"
        ) from error
    rows = [[int(v) for v in t.tolist()] for t in torch.stack(table).cpu()]
    _agree_on_function(function, rows, group)
    failed = [r for r, row in enumerate(rows) if row[1]]
    if failed:
        _raise_problems(function, failed, problem, group)
    # Slots of each field, after the two header slots.
    spans, start = [], 2
    for f in fields:
        spans.append((f, start, start + f.slots))
        start += f.slots
    differ = [
        (f, [r for r, row in enumerate(rows) if row[a:b] != rows[0][a:b]])
        for f, a, b in spans
        if f.same
    ]
    differ = [(f, ranks) for f, ranks in differ if ranks]
    if differ:
        _raise_differences(function, differ, fields, group)
    return [[row[a] for f, a, _ in spans if not f.same] for row in rows]


#: :func:`exchange` behind torch's lazy ``torch.compiler.disable``
#: (``torch._disable_dynamo``, what PyTorch applies to its own functions and to the
#: kernels of every ``torch.library.custom_op``): nothing is imported until its first
#: call, which then imports ``torch._dynamo`` (1.4-1.8 s of CPU, with ``torch._inductor``
#: and SymPy) and calls ``torch._dynamo.disable(exchange)``.
#: Dynamo treats it as disabled: its code is in PyTorch's files (Dynamo traces neither
#: them nor, at run time, their frames) and it carries the attributes
#: ``torch.compiler.disable`` sets, so the graph break names it with our reason.
#: ``@torch.compiler.disable`` on :func:`exchange` imported Dynamo with ``crossent.torch``
#: (issue 13): in every process of its users, and in each test worker and subprocess.
_lazy_disable = getattr(torch, "_disable_dynamo", None)
if _lazy_disable is None:  # pragma: no cover (a PyTorch without it: disable now)
    _lazy_disable = torch.compiler.disable
_exchange_untraced: Callable[..., list[list[int]]] = _lazy_disable(exchange)
_exchange_untraced._torchdynamo_disable = True  # type: ignore[attr-defined]
_exchange_untraced._torchdynamo_disable_msg = (  # type: ignore[attr-defined]
    "crossent: the ranks' agreement runs collectives and reads the host"
)


def untraced_exchange() -> Callable[..., list[list[int]]]:
    """:func:`exchange` as code that ``torch.compile`` may trace must call it:
    ``untraced_exchange()(function, group, fields, problem)``.

    Once ``torch._dynamo`` is imported (``torch.compile``, ``torch.export`` and Dynamo's
    own imports load it before any trace), the exchange behind ``torch.compiler.disable``
    (:data:`_exchange_untraced`): a graph break where Dynamo traces the call, and at run
    time no frame of it traced, also where Dynamo runs the caller's frame eagerly but
    would trace the frames it calls. Before that nothing can trace a frame, and the
    exchange itself runs, without importing Dynamo: an eager distributed call does not
    import it (the first call of any ``torch.library.custom_op``, crossent's losses'
    included, does: PyTorch wraps their kernels in ``torch._disable_dynamo``). Dynamo
    traces this function's choice (a constant) and calls, at run time, the exchange it
    chose.
    """
    if "torch._dynamo" in sys.modules:
        return _exchange_untraced
    return exchange


def _record(
    function: str, fields: Sequence[Field], device: torch.device, *, failed: bool = False
) -> torch.Tensor:
    """This rank's record (see the module docstring); the tensors' digests formed on their
    devices, then one copy each. Raises where a digest cannot be formed (a tensor with no
    data, on the meta device): :func:`exchange` then sends a failed record instead, so
    the other ranks raise too, rather than wait for this one."""
    values = [fingerprint(function), int(failed)]
    digests: list[tuple[int, str, torch.Tensor]] = []
    for f in fields:
        if isinstance(f.value, int):
            values.append(f.value)
            continue
        if f.value is not None:
            digests.append((len(values), f.name, f.value))
        values += [0, 0]
    record = torch.tensor(values + [0] * (RECORD - len(values)), dtype=torch.int64, device=device)
    for at, name, tensor in digests:
        try:
            record[at : at + 2] = tensor_digest(tensor)
        except Exception as error:
            raise InputError(
                f"{name} cannot be read on device {tensor.device} ({type(error).__name__}: {error})"
            ) from error
    return record


def _agree_on_function(function: str, rows: list[list[int]], group: Any) -> None:
    """Raise (on every rank) when the ranks are not all in a call of ``function``."""
    tags = [row[0] for row in rows]
    if len(set(tags)) == 1:
        return
    names: list[Any] = [None] * len(rows)
    dist.all_gather_object(names, function, group=group)
    calls = "; ".join(f"rank {r}: {name}" for r, name in enumerate(names))
    raise InputError(
        "the ranks of `group` are in different distributed calls "
        f"({calls}): every rank must make the same calls in the same order"
    )


def _raise_problems(
    function: str, failed: list[int], problem: BaseException | None, group: Any
) -> None:
    """The same error on every rank, with each failed rank's message."""
    mine = None
    if problem is not None:
        ours = isinstance(problem, CrossentError)
        text = str(problem) if ours else f"{type(problem).__name__}: {problem}"
        mine = (isinstance(problem, TypeError), text)
    gathered: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, mine, group=group)
    kind = InputTypeError if gathered[failed[0]][0] else InputError
    what = "; ".join(f"on rank {r} of the group, {gathered[r][1]}" for r in failed)
    raise kind(f"{function}: {what}") from problem


def _raise_differences(
    function: str, differ: list[tuple[Field, list[int]]], fields: Sequence[Field], group: Any
) -> None:
    """The same InputError on every rank: the first field that differs from rank 0's,
    each rank's value of it, and the names of the others that differ."""
    shown = {f.name: f.shown for f in fields}
    gathered: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, shown, group=group)
    first, ranks = differ[0]
    if first.shown is None:
        values = f"{_ranks(ranks)} differ{'' if len(ranks) > 1 else 's'} from rank 0"
    else:
        values = "; ".join(f"rank {r}: {gathered[r][first.name]}" for r in [0, *ranks])
    also = ", ".join(f.name for f, _ in differ[1:])
    raise InputError(
        f"{function}: the ranks of the group disagree on {first.name} ({values}); it "
        "must be the same on every rank" + (f" (also different: {also})" if also else "")
    )
