"""Issue 15: ``crossent.torch.all_reduce_state`` equals the one-shot state of the concatenated data.

One spawn of three ranks, groups of 1, 2 and 3 ranks, uneven splits with an empty rank,
three binnings; fixed-size messages (three collectives) counted with ``CommDebugMode``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

import crossent  # noqa: E402
from spawned import gloo_marks, run_spawned  # noqa: E402

pytestmark = gloo_marks()

CLASSES = 7
SPLITS = {1: [123], 2: [100, 23], 3: [70, 0, 53]}
SPECS = (
    {},
    {"binning": "quantile", "bins": 10, "keep": 4},
    {"scope": "class-wise", "closed": "right", "keep": 0},
)


def _data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, CLASSES)) * 3
    labels = rng.integers(0, CLASSES, size=rows)
    return logits, labels


def _state(logits: np.ndarray, labels: np.ndarray, spec: dict, *, first_row: int = 0) -> Any:
    state = crossent.EvaluationState(CLASSES, **spec)
    half = logits.shape[0] // 2  # two updates per rank: the rows number on
    if logits.shape[0]:
        state.update(logits[:half], labels[:half], form="logits", first_row=first_row or None)
        state.update(
            logits[half:], labels[half:], form="logits", first_row=first_row + half or None
        )
    return state


def _same(merged: Any, whole: Any) -> None:
    a, b = merged.compute(), whole.compute()
    assert a.n == b.n
    np.testing.assert_array_equal(a.per_class_count, b.per_class_count)
    np.testing.assert_array_equal(merged._bins.count, whole._bins.count)
    for name in ("accuracy", "nll", "brier", "spherical", "mean_entropy"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(a.calibration.value, b.calibration.value, rtol=1e-12)
    np.testing.assert_allclose(a.per_class_nll, b.per_class_nll, rtol=1e-12)
    assert [r for r, _ in a.most_surprising] == [r for r, _ in b.most_surprising]
    np.testing.assert_allclose(
        [v for _, v in a.most_surprising], [v for _, v in b.most_surprising], rtol=1e-15
    )


def _counts(mode: Any) -> dict[str, int]:
    return {str(op).split(".")[-1]: n for op, n in mode.get_comm_counts().items()}


def _worker(rank: int, world: int) -> None:
    from torch.distributed.tensor.debug import CommDebugMode

    from crossent.errors import InputError
    from crossent.torch import all_reduce_state

    groups = {k: dist.new_group(list(range(k))) for k in range(1, world)}
    groups[world] = None
    for k, group in groups.items():
        if rank >= k:
            continue
        split = SPLITS[k]
        logits, labels = _data(sum(split), seed=k)
        lo, hi = sum(split[:rank]), sum(split[: rank + 1])
        for spec in SPECS:
            whole = _state(logits, labels, spec)
            mine = _state(logits[lo:hi], labels[lo:hi], spec)
            with CommDebugMode() as mode:
                merged = all_reduce_state(mine, group=group)
            want = {"allgather_": 2 if whole.keep else 1, "allreduce_": 1}
            assert _counts(mode) == want, (spec, _counts(mode))
            _same(merged, whole)
            assert mine.n == hi - lo  # the input is unchanged
            # States that already number their rows globally: no offset.
            numbered = _state(logits[lo:hi], labels[lo:hi], spec, first_row=lo)
            _same(all_reduce_state(numbered, group=group, row_offset=0), whole)

    # Different `keep` on one rank: every rank raises (none is left in a collective).
    state = crossent.EvaluationState(CLASSES, keep=3 if rank == world - 1 else 10)
    state.update(*_data(5, seed=rank), form="logits")
    with pytest.raises(InputError, match="different classes, binning, `keep` or `entropy`"):
        all_reduce_state(state)
    # Different `entropy` on one rank: the same.
    state = crossent.EvaluationState(CLASSES, entropy=rank != 0)
    state.update(*_data(5, seed=rank), form="logits")
    with pytest.raises(InputError, match=r"entropy=(True|False)\)"):
        all_reduce_state(state)
    # States without the entropy merge into one without it.
    state = crossent.EvaluationState(CLASSES, entropy=False)
    state.update(*_data(5, seed=rank), form="logits")
    merged = all_reduce_state(state)
    assert merged.entropy is False
    assert merged.compute().mean_entropy is None
    # The group still works.
    assert all_reduce_state(crossent.EvaluationState(CLASSES)).n == 0


def test_issue15_all_reduce_state_equals_one_shot() -> None:
    run_spawned(_worker, 3, timeout=480)


def test_issue15_all_reduce_state_reads_every_field() -> None:
    """A field added to EvaluationState must be merged too (see _distributed_state)."""
    from crossent.torch import _distributed_state

    state = crossent.EvaluationState(CLASSES)
    assert set(vars(state)) == _distributed_state._FIELDS


def test_issue15_all_reduce_state_needs_a_process_group() -> None:
    from crossent.errors import InputError
    from crossent.torch import all_reduce_state

    if dist.is_initialized():
        pytest.skip("a process group is initialised in this process")
    with pytest.raises(InputError, match="init_process_group"):
        all_reduce_state(crossent.EvaluationState(CLASSES))
    with pytest.raises(InputError, match="EvaluationState"):
        all_reduce_state(object())  # type: ignore[arg-type]
