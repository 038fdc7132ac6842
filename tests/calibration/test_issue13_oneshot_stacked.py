"""Issue 13, evaluation on short rows (branch short10): the one-shot metrics read their
blocks as ``EvaluationState.update`` does.

``negative_log_likelihood``, ``brier_score``, ``spherical_score``, ``accuracy`` and the
top-label ``calibration_error`` of stored float probabilities in several blocks used to
map their blocks over the thread pool (``_summaries.map_totals``: the pool's two threads
read while the caller waited), and on the quiet 2-core AMD EPYC (a KVM guest, whose
Linux often wakes a thread on the waker's CPU) both threads then shared one CPU: the
NLL of 10^6 x 10 float32 took its one-thread time, 3.4x one read of the data.  Now they
take ``_summaries.stacked_blocks`` (the caller's thread reads from the first block on,
the pool's from the last back, the pool's kept off the caller's CPU): the same kernel
calls on the same blocks, so the same numbers.

Checked: the caller's thread reads blocks (none on main: the first test fails there);
every metric and the calibration error's bins bit for bit those of the blocks mapped
over the pool (``map_totals``) and of one thread; a NaN entry and a label out of range
in a late block raise the same messages on either path (guards: they pass on main).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent
from crossent import _parallel
from crossent.calibration import _inputs, _summaries

from .test_issue13_next_blocks import _probabilities, _wrapped_totals

pytest.importorskip("numba")

_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], Any]] = {
    "nll": crossent.negative_log_likelihood,
    "brier": crossent.brier_score,
    "spherical": crossent.spherical_score,
    "accuracy": crossent.accuracy,
    "ece": lambda p, y: crossent.calibration_error(p, y),
    "ece l2 right": lambda p, y: crossent.calibration_error(
        p, y, norm="l2", closed="right", bins=10
    ),
    "nll unchecked": lambda p, y: crossent.negative_log_likelihood(p, y, validate=False),
}


@pytest.fixture
def sixteen_blocks(monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, np.ndarray]:
    monkeypatch.setattr(_inputs, "_BLOCK_ELEMENTS", 2000)  # 3000 x 10: 16 blocks
    probs, labels = _probabilities(3000, 10, seed=13)
    predictions = _inputs.as_predictions(probs, labels, form="probs")
    assert len(list(predictions._spans())) == 16
    return probs, labels


def _bits(result: Any) -> tuple[object, ...]:
    """A metric's float as its bits, or a calibration error's value and bins."""
    if isinstance(result, float):
        return (result.hex(),)
    stats = result.statistics
    return (result.value.hex(), *(np.asarray(a).tobytes() for a in stats.arrays()))


def test_issue13_oneshot_caller_reads_blocks(
    sixteen_blocks: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    probs, labels = sixteen_blocks
    monkeypatch.setattr(_parallel, "workers", lambda: 2)
    eight = threading.Event()  # the caller has read 8 blocks
    waited: list[bool] = []

    def before(mine: bool) -> None:
        if mine and read[True] == 7:
            eight.set()
        elif not mine and not waited:  # the pool's thread waits for them on its first
            waited.append(True)  # block (an event, not a sleep: under load the caller
            eight.wait(timeout=10)  # may be slow); on main, 10 s

    read = _wrapped_totals(monkeypatch, before)
    for name in ("nll", "brier", "ece"):
        read[True] = read[False] = 0
        eight.clear()
        waited.clear()
        _METRICS[name](probs, labels)
        # 17: the pool's first block read again by the caller, which took it over from a
        # pool thread slow to wake (_NextBlocks.stragglers; a late count of an earlier
        # call's pool thread may land here too)
        assert read[True] + read[False] >= 16, name
        assert read[True] >= 8, name  # main: 0 (the caller only waited)


def test_issue13_oneshot_stacked_same_bits(
    sixteen_blocks: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    probs, labels = sixteen_blocks
    probs[::37] = np.float32(1e-42)  # tiny confidences (bin 0) and surprisals of 96.7
    probs[::37, 3] = 1.0
    monkeypatch.setattr(_parallel, "workers", lambda: 2)
    stacked = {name: _bits(f(probs, labels)) for name, f in _METRICS.items()}
    monkeypatch.setattr(_parallel, "workers", lambda: 1)
    alone = {name: _bits(f(probs, labels)) for name, f in _METRICS.items()}
    monkeypatch.setattr(_parallel, "workers", lambda: 2)
    monkeypatch.setattr(_summaries, "_stacked_applies", lambda predictions: False, raising=False)
    mapped = {name: _bits(f(probs, labels)) for name, f in _METRICS.items()}
    assert stacked == alone
    assert stacked == mapped


@pytest.mark.parametrize("bad", ["nan", "label"])
def test_issue13_oneshot_stacked_same_errors(
    sixteen_blocks: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    probs, labels = sixteen_blocks
    probs, labels = probs.copy(), labels.copy()
    if bad == "nan":
        probs[2500, 4] = np.nan  # block 13
    else:
        labels[2700] = 10
    monkeypatch.setattr(_parallel, "workers", lambda: 2)
    messages = []
    for stacked in (True, False):
        if not stacked:
            monkeypatch.setattr(
                _summaries, "_stacked_applies", lambda predictions: False, raising=False
            )
        for f in (crossent.negative_log_likelihood, crossent.calibration_error):
            with pytest.raises(crossent.InputError) as caught:
                f(probs, labels)
            messages.append(str(caught.value))
    assert messages[:2] == messages[2:]
    assert ("2500" if bad == "nan" else "2700") in messages[0]
