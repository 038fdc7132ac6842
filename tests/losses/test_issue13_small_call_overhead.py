"""Issue 13, "Small inputs": the per-call overhead cuts of branch smallcall3.

* the front door (``_batch.FrontDoor``): ``weight_scaled`` and ``far_rows_guard`` call
  a public loss's lean path themselves, and the rest of the function only where it
  declines. Every call, taken or not, weighted or not, good or bad, must give what the
  function without the front door gives (its value bit for bit, or its error);
* the small sigmoid path's compiled stages are called by their entry points
  (``_small_sigmoid._Steps``), which check no types: every call passes exactly the types
  of the overload its entry point belongs to;
* the small sigmoid path's workspace and the float64 label path's work arrays are kept
  per thread: calls of interleaved sizes and dtypes, and from two threads at once, give
  the full path's values.

The values of the lean paths themselves are pinned by ``test_issue13_small_sigmoid.py``,
``test_issue13_small_targets*.py`` and ``test_issue13_float64_small.py``.
"""

from __future__ import annotations

import inspect
import itertools
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels, _small_sigmoid, _weight_scale
from crossent.losses._sigmoid import _binary, _focal_binary
from crossent.losses._softmax import prepare_softmax_labels
from losses.small_target_checks import outcome, same_bits

pytestmark = pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")

#: The public losses whose lean path a front door calls (``weight_scaled`` outermost).
DOORS = {
    "softmax_cross_entropy": "labels",
    "softmax_cross_entropy_grad": "labels",
    "softmax_cross_entropy_with_targets": "targets",
    "softmax_cross_entropy_with_targets_grad": "targets",
    "softmax_focal_loss": "labels",
    "poly1_cross_entropy_grad": "labels",
    "sigmoid_cross_entropy": "binary",
    "sigmoid_focal_loss_grad": "binary",
}


def _without_front_door(public: Callable[..., Any]) -> Callable[..., Any]:
    """``public`` (a ``weight_scaled`` loss) made again around a plain call of the
    function it wraps, which has no front door: every call through all the layers."""
    inner = inspect.getclosurevars(public).nonlocals["public"]

    def plain(*args: Any, **kwargs: Any) -> Any:
        return inner(*args, **kwargs)

    return _weight_scale.weight_scaled(plain)


def _cases(kind: str, dtype: Any) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Calls that the lean path takes, declines (weights, an axis, float16, lists, a
    size past it), and that are bad (an error either way)."""
    rng = np.random.default_rng(3)
    z = rng.standard_normal((8, 10)).astype(dtype)
    big = rng.standard_normal((3, 3000)).astype(dtype)
    if kind == "binary":
        t = (rng.uniform(size=(8, 10)) < 0.5).astype(dtype)
        first, second = z, t
        bad = t + 2.0  # targets outside [0, 1]
        others: tuple[Any, ...] = (big, rng.uniform(size=big.shape).astype(dtype))
        weight = np.full(10, 1e300 if dtype == np.float64 else 1e30, dtype)
    else:
        labels = rng.integers(0, 10, size=8)
        t = rng.dirichlet(np.ones(10), size=8).astype(dtype)
        t = t / np.add.reduce(t, -1, keepdims=True)
        second = labels if kind == "labels" else t
        first = z
        bad = labels + 10 if kind == "labels" else t * 2.0
        wide = rng.integers(0, 3000, size=3) if kind == "labels" else None
        if wide is None:
            wide = rng.dirichlet(np.ones(3000), size=3).astype(dtype)
        others = (big, wide)
        weight = np.full(10, 1e300 if dtype == np.float64 else 1e30, dtype)
    return [
        ((first, second), {}),
        ((first, second), {"validate": False}),
        ((first, second), {"reduction": "none"}),
        ((first, second), {"reduction": "parts", "base": 2}),
        ((first, second), {"weight": weight}),
        ((first, second), {"weight": weight, "reduction": "sum"}),
        ((first, second), {"weight": None, "reduction": "sum"}),
        ((first.astype(np.float16), second), {}),
        ((first.tolist(), second.tolist()), {}),
        ((first, bad), {}),
        ((first, second), {"reduction": "average"}),
        ((first, second), {"no_such_option": 1}),
        (others, {"reduction": "sum"}),
    ]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(DOORS))
def test_issue13_front_door_gives_what_the_layers_give(name: str, dtype: Any) -> None:
    """Through the front door or through every layer: the same value bit for bit, or the
    same error, for calls taken, declined, weighted (scaled by a power of two) and bad."""
    public = getattr(crossent, name)
    layered = _without_front_door(public)
    for args, kwargs in _cases(DOORS[name], dtype):
        assert outcome(public, *args, **kwargs) == outcome(layered, *args, **kwargs), kwargs


def test_issue13_front_door_far_rows_formed_again() -> None:
    """A float32 row whose loss is past float32's range beside five ordinary ones (its
    ``'mean'`` 1e38): the guard's check of the result sends the call to the far-row
    pass, as through the layers (torchrow1's case)."""
    z = np.zeros((6, 2), np.float32)
    z[0] = [3e38, -3e38]
    labels = np.ones(6, np.int64)
    targets = np.zeros((6, 2), np.float32)
    targets[:, 1] = 1.0
    for public, second in (
        (crossent.softmax_cross_entropy, labels),
        (crossent.softmax_cross_entropy_with_targets, targets),
    ):
        got = outcome(public, z, second)
        assert got == outcome(_without_front_door(public), z, second)
        assert got[0] == "value"
        assert np.isfinite(public(z, second))


# ------------------------------------------------------------- the sigmoid entry points

SIGMOID = {
    "ce": (crossent.sigmoid_cross_entropy, _binary),
    "focal": (crossent.sigmoid_focal_loss, _focal_binary),
    "focal_grad": (crossent.sigmoid_focal_loss_grad, _focal_binary),
}
SIGMOID_OPTIONS: list[dict[str, Any]] = [
    {},
    {"reduction": "none"},
    {"reduction": "parts", "base": 2},
    {"label_smoothing": 0.1, "reduction": "sum"},
]


def _sigmoid_inputs(shape: tuple[int, ...], dtype: Any, soft: bool) -> tuple[Any, Any]:
    rng = np.random.default_rng(len(shape) + shape[-1])
    x = (4 * rng.standard_normal(shape)).astype(dtype)
    t = rng.uniform(size=shape) if soft else (rng.uniform(size=shape) < 0.5)
    return x, t.astype(dtype)


def _full(family: str, *args: Any, **kwargs: Any) -> Any:
    public, prepare = SIGMOID[family]
    return public.__wrapped__(prepare(*args, **kwargs))


def test_issue13_small_sigmoid_entry_points_take_exactly_their_types(monkeypatch) -> None:
    """Every call of a stage's entry point, over the kinds, options, shapes, soft and
    hard targets and both dtypes, passes the argument types of its overload; the values
    are the full path's bit for bit; ``difference`` (the float64 focal gradient's) is
    picked apart, for float64 only."""
    numba = pytest.importorskip("numba")
    seen = dict.fromkeys(("start", "terms", "finish", "difference"), 0)
    wrong: list[str] = []

    def spied(field: str, entry: Any, dispatcher: Any) -> Any:
        signatures = {c.entry_point: tuple(k) for k, c in dispatcher.overloads.items()}
        sig = signatures[entry]

        def spy(*args: Any) -> Any:
            seen[field] += 1
            types = tuple(numba.typeof(arg) for arg in args)
            if types != sig:
                wrong.append(f"{field}: {types} != {sig}")
            return entry(*args)

        return spy

    for char in ("d", "f"):
        _small_sigmoid._STEPS.pop(char, None)
        steps = _small_sigmoid._steps_of(char)
        spies = {}
        for field in ("start", "terms", "finish"):
            entry, dispatcher = getattr(steps, field), getattr(steps, f"{field}_of")
            assert entry is not dispatcher
            spies[field] = spied(field, entry, dispatcher)
        monkeypatch.setitem(_small_sigmoid._STEPS, char, steps._replace(**spies))
    _small_sigmoid._DIFFERENCE.pop("d", None)
    entry, dispatcher = _small_sigmoid._difference_of("d")
    assert entry is not dispatcher
    monkeypatch.setitem(
        _small_sigmoid._DIFFERENCE, "d", (spied("difference", entry, dispatcher), dispatcher)
    )
    for family, dtype, shape, soft, options in itertools.product(
        SIGMOID, (np.float64, np.float32), [(10,), (3, 4, 5)], (False, True), SIGMOID_OPTIONS
    ):
        x, t = _sigmoid_inputs(shape, dtype, soft)
        same_bits(SIGMOID[family][0](x, t, **options), _full(family, x, t, **options))
    assert not wrong, wrong[:5]
    assert all(seen.values()), seen
    assert "f" not in _small_sigmoid._DIFFERENCE


def test_issue13_small_sigmoid_patched_stage_runs_beside_a_kept_table(monkeypatch) -> None:
    """A stage patched on its module (a spy) is what a call runs, though the dtype's
    table of entry points is kept."""
    x, t = _sigmoid_inputs((10,), np.float64, False)
    crossent.sigmoid_focal_loss_grad(x, t)
    assert "d" in _small_sigmoid._STEPS
    compiled = _small_sigmoid._compiled()
    real, calls = compiled.finish, []

    def spy(*args: Any) -> Any:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(compiled, "finish", spy)
    same_bits(crossent.sigmoid_focal_loss_grad(x, t), _full("focal_grad", x, t))
    assert calls == [1]


# ----------------------------------------------------------------- the kept work arrays


def _kept_calls() -> list[tuple[Callable[[], Any], Callable[[], Any]]]:
    """(public call, full-path call) pairs of interleaved sizes and dtypes (one past the
    sigmoid path's kept size)."""
    pairs = []
    for n, dtype in itertools.product((1, 7, 10, 600), (np.float64, np.float32)):
        x, t = _sigmoid_inputs((n,), dtype, n == 7)
        for family in SIGMOID:
            pairs.append(
                (
                    lambda f=family, x=x, t=t: SIGMOID[f][0](x, t),
                    lambda f=family, x=x, t=t: _full(f, x, t),
                )
            )
    rng = np.random.default_rng(5)
    for rows, classes in ((1, 10), (8, 10), (3, 7)):
        z, y = rng.standard_normal((rows, classes)), rng.integers(0, classes, size=rows)
        for public in (crossent.softmax_cross_entropy, crossent.softmax_cross_entropy_grad):
            pairs.append(
                (
                    lambda p=public, z=z, y=y: p(z, y),
                    lambda p=public, z=z, y=y: p.__wrapped__(prepare_softmax_labels(z, y)),
                )
            )
    return pairs


def test_issue13_kept_work_arrays_interleaved_and_threads() -> None:
    """Calls of interleaved shapes, dtypes and families, in order, in reverse, and from
    two threads at once, each give the full path's value bit for bit."""
    pairs = _kept_calls()
    want = [full() for _, full in pairs]
    for order in (range(len(pairs)), reversed(range(len(pairs)))):
        for k in order:
            same_bits(pairs[k][0](), want[k])
    results: dict[int, list[Any]] = {}

    def run(slot: int) -> None:
        results[slot] = [call() for _ in range(20) for call, _ in pairs]

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for slot in range(2):
        for k, got in enumerate(results[slot]):
            same_bits(got, want[k % len(pairs)])
