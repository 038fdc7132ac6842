"""Issue 13: one thread pool for the package (``crossent._parallel``).

The NumPy loss kernels (``losses._numpy_kernels``), the measures' blocked float32 path
(``info._fused.measure_rows``) and calibration's evaluation share one pool of
``_parallel.workers()`` threads per process. Pinned: the losses' and the measures'
blocked paths give the same bits with one thread and with two (and the two-thread runs
do use the pool); the measures take at most Numba's thread count of parts; a block of
an ``ordered_map`` that evaluates a loss split into parts (a nested call from one of
the pool's threads) runs it in its own thread instead of waiting on the pool, which
would deadlock; ``run_in_parts`` keeps order and balance, waits for its parts when one
raises, and a forked child starts its own pool. (Calibration's determinism and
``ordered_map`` itself: ``tests/calibration/test_parallel.py``,
``tests/calibration/test_issue13_shared_pool.py``.)
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent
from crossent import _parallel
from crossent.info import _fused
from crossent.losses import _numpy_kernels

from kernel_paths import use_kernel_path

TIMEOUT = 60.0
"""Seconds a nested call may take before the test calls it a deadlock."""


class _PoolSpy:
    """Counts the tasks submitted to the shared pool (``_parallel._pool``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.submitted = 0
        real = _parallel._pool

        def pool(count: int) -> Any:
            executor = real(count)
            spy = self

            class Counting:
                def submit(self, *args: Any) -> Any:
                    spy.submitted += 1
                    return executor.submit(*args)

            return Counting()

        monkeypatch.setattr(_parallel, "_pool", pool)


def _with_threads(
    threads: int, monkeypatch: pytest.MonkeyPatch, call: Callable[[], Any]
) -> tuple[Any, int]:
    """``call()``'s result with ``threads`` pool threads, and the tasks it submitted."""
    with monkeypatch.context() as patch:
        patch.setattr(_parallel, "workers", lambda: threads)
        spy = _PoolSpy(patch)
        result = call()
    return result, spy.submitted


def _bits(values: Any) -> list[tuple[str, tuple[int, ...], bytes]]:
    arrays = values if isinstance(values, tuple) else (values,)
    return [(str(a.dtype), a.shape, a.tobytes()) for a in map(np.asarray, arrays)]


def _mixed_logits(rows: int, classes: int) -> np.ndarray:
    """Random rows, then confident ones (one logit far above the rest), then random:
    each thread's guess of confident rows (``row_statistics``'s moving share) then
    differs from one thread's."""
    rng = np.random.default_rng(13)
    z = rng.standard_normal((rows, classes)) * 4.0
    middle = slice(rows // 3, 2 * rows // 3)
    z[middle, 0] += 40.0
    z[middle, 1::97] += 12.0  # a few terms that count
    return z.astype(np.float32)


def _large_loss_input() -> tuple[np.ndarray, np.ndarray]:
    rows, classes = 4200, 1024
    assert rows * classes >= _numpy_kernels.PARALLEL_ELEMENTS
    labels = np.random.default_rng(14).integers(0, classes, rows)
    return _mixed_logits(rows, classes), labels


LOSS_CALLS: dict[str, Callable[[np.ndarray, np.ndarray], Any]] = {
    "forward": lambda z, y: crossent.softmax_cross_entropy(z, y, reduction="none"),
    "forward_temperature_sum": lambda z, y: crossent.softmax_cross_entropy(
        z, y, temperature=1.7, label_smoothing=0.1, reduction="parts"
    ),
    "gradient": lambda z, y: crossent.softmax_cross_entropy_grad(z, y, reduction="none"),
    "gradient_smoothing": lambda z, y: crossent.softmax_cross_entropy_grad(
        z, y, label_smoothing=0.1, reduction="mean"
    ),
}


@pytest.mark.parametrize("path", ["numpy", "numpy_exact_all"])
@pytest.mark.parametrize("name", sorted(LOSS_CALLS))
def test_issue13_shared_pool_losses_same_bits_one_and_two_threads(
    name: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_kernel_path(path, monkeypatch)
    z, labels = _large_loss_input()
    call = LOSS_CALLS[name]
    one, submitted_one = _with_threads(1, monkeypatch, lambda: call(z, labels))
    two, submitted_two = _with_threads(2, monkeypatch, lambda: call(z, labels))
    assert submitted_one == 0
    assert submitted_two >= 1  # the second part ran on the pool
    assert _bits(one) == _bits(two)


def _strided_sides() -> tuple[np.ndarray, np.ndarray]:
    """Float32 probabilities and logits with a strided class axis (Fortran order):
    ``measure_rows``'s blocked path, above ``PARALLEL_ELEMENTS``."""
    rng = np.random.default_rng(15)
    p = rng.dirichlet(np.full(300, 0.3), size=1500).astype(np.float32)
    z = _mixed_logits(1500, 300)
    assert p.size > _fused.PARALLEL_ELEMENTS
    return np.asfortranarray(p), np.asfortranarray(z)


MEASURE_CALLS: dict[str, Callable[[np.ndarray, np.ndarray], Any]] = {
    "entropy_logits": lambda p, z: crossent.entropy(z, p_form="logits"),
    "cross_entropy": lambda p, z: crossent.cross_entropy(p, z, q_form="logits"),
    "kl": lambda p, z: crossent.kl_divergence(z, p, p_form="logits", base=2.0),
    "decomposition": lambda p, z: tuple(
        crossent.cross_entropy_decomposition(p, z, q_form="logits")
    ),
}


@pytest.fixture
def measure_spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Numba required; ``measure_rows``'s calls on the blocked path are recorded."""
    if not _fused.available():
        pytest.skip("needs Numba")
    blocked: list[int] = []
    real = _fused._block_rows

    def spy(a: np.ndarray, b: np.ndarray) -> int | None:
        step = real(a, b)
        if step is not None:
            blocked.append(step)
        return step

    monkeypatch.setattr(_fused, "_block_rows", spy)
    monkeypatch.setattr(_fused, "_threads", lambda: 2)  # Numba's count, whatever the CPUs
    return blocked


@pytest.mark.parametrize("name", sorted(MEASURE_CALLS))
def test_issue13_shared_pool_measures_same_bits_one_and_two_threads(
    name: str, measure_spy: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    p, z = _strided_sides()
    call = MEASURE_CALLS[name]
    one, submitted_one = _with_threads(1, monkeypatch, lambda: call(p, z))
    two, submitted_two = _with_threads(2, monkeypatch, lambda: call(p, z))
    assert measure_spy  # the blocked path ran
    assert submitted_one == 0
    assert submitted_two >= 1
    assert _bits(one) == _bits(two)
    contiguous = MEASURE_CALLS[name](np.ascontiguousarray(p), np.ascontiguousarray(z))
    assert _bits(two) == _bits(contiguous)  # a row's result does not depend on its part


def test_issue13_shared_pool_measures_keep_numbas_thread_count(
    measure_spy: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``NUMBA_NUM_THREADS`` of 1 keeps the measures' blocked path in one thread."""
    monkeypatch.setattr(_fused, "_threads", lambda: 1)
    p, _ = _strided_sides()
    _, submitted = _with_threads(2, monkeypatch, lambda: crossent.entropy(p))
    assert measure_spy
    assert submitted == 0


def test_issue13_shared_pool_loss_in_a_mapped_block_does_not_deadlock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Calibration's map over blocks, each block a loss that splits into parts: the
    parts run in the block's thread (waiting on the pool from its threads, every
    thread busy with a block, would wait forever)."""
    use_kernel_path("numpy", monkeypatch)
    monkeypatch.setattr(_parallel, "workers", lambda: 2)
    z, labels = _large_loss_input()
    shifts = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]

    def block(shift: float) -> np.ndarray:
        assert threading.current_thread().name.startswith("crossent")
        return np.asarray(crossent.softmax_cross_entropy(z + np.float32(shift), labels))

    done: list[list[np.ndarray]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            done.append(list(_parallel.ordered_map(block, shifts)))
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=TIMEOUT)
    assert not thread.is_alive(), "a loss split into parts inside a mapped block deadlocked"
    assert not errors, errors
    serial = [crossent.softmax_cross_entropy(z + np.float32(s), labels) for s in shifts]
    assert _bits(tuple(done[0])) == _bits(tuple(np.asarray(v) for v in serial))


def test_issue13_shared_pool_run_in_parts_order_balance_and_nesting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_parallel, "workers", lambda: 3)
    seen: list[tuple[int, int, str]] = []

    def work(first: int, stop: int) -> tuple[int, int]:
        seen.append((first, stop, threading.current_thread().name))
        time.sleep(0.01 * (first == 0))  # the first part finishes last
        return first, stop

    assert _parallel.run_in_parts(work, 10) == [(0, 3), (3, 6), (6, 10)]
    here = threading.current_thread().name
    assert sorted(seen) == sorted([(0, 3, here), *((f, s, n) for f, s, n in seen if f)])
    assert all(name.startswith("crossent") for first, _, name in seen if first)
    assert _parallel.run_in_parts(work, 10, 2) == [(0, 5), (5, 10)]
    assert _parallel.run_in_parts(work, 10, 1) == [(0, 10)]
    assert _parallel.run_in_parts(work, 2) == [(0, 1), (1, 2)]
    assert _parallel.run_in_parts(work, 0) == [(0, 0)]
    # from one of the pool's threads: one part, in that thread
    nested = list(_parallel.ordered_map(lambda _: _parallel.run_in_parts(work, 10), range(4)))
    assert nested == [[(0, 10)]] * 4


def test_issue13_shared_pool_run_in_parts_waits_for_its_parts_on_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_parallel, "workers", lambda: 2)
    finished: list[int] = []
    started = threading.Event()

    def work(first: int, stop: int) -> None:
        if first == 0:
            started.wait(timeout=TIMEOUT)
            raise ValueError("part 0")
        started.set()
        time.sleep(0.05)
        finished.append(first)

    with pytest.raises(ValueError, match="part 0"):
        _parallel.run_in_parts(work, 10)
    assert finished == [5]  # the running part was done before the error went on


def _child_parts(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue.put(_parallel.run_in_parts(lambda first, stop: (first, stop), 8))


def test_issue13_shared_pool_forked_child_starts_its_own_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork")
    monkeypatch.setattr(_parallel, "workers", lambda: 2)
    assert _parallel.run_in_parts(lambda first, stop: stop - first, 8) == [4, 4]  # pool up
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_parts, args=(queue,))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)
        child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0, "the forked child hung on its parent's pool"
    assert queue.get(timeout=5) == [(0, 4), (4, 8)]
