"""Issue 13, "Small inputs": the lean soft-target softmax cross-entropy on small float64 inputs.

``softmax_cross_entropy_with_targets`` and its gradient on small float64 logits and
targets (no class weights, no soft-capping, the classes last) are a hybrid
(``losses/_small_targets.py``): compiled calls (``losses/_small_targets_numba.py``, which
calls the label hybrid's ``_small_numba``) do the generic path's arithmetic in its order
and NumPy's own np.exp and np.log1p do the transcendentals on the same values, so the
values are the full path's (``prepare_softmax_targets``, ``SoftmaxProblem.loss``,
``softmax_gradient``) bit for bit. These tests pin that over random and hard rows, that
the benchmark's calls take the hybrid, that everything else (and every bad input) is
handed to the full path with its errors, and that a hybrid off by one rounding fails
them.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels, _small_targets, _small_targets_numba, _softmax
from crossent.losses._softmax import prepare_softmax_targets, softmax_gradient
from losses.small_call_paths import fail_on, random_case, record_calls
from losses.small_target_checks import check_shortcuts, same_bits, same_outcomes
from losses.test_issue13_float64_small import OPTIONS as LABEL_OPTIONS
from losses.test_issue13_float64_small import SHAPES as LABEL_SHAPES

pytestmark = pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")

LOSS = crossent.softmax_cross_entropy_with_targets
GRAD = crossent.softmax_cross_entropy_with_targets_grad

# The option sets and shapes of the float64 label hybrid's tests: every reduction, base,
# temperature, z-loss and smoothing; classes around NumPy's pairwise blocks; up to
# SERIAL_ELEMENTS, the most the hybrid takes.
OPTIONS = LABEL_OPTIONS
SHAPES = [*LABEL_SHAPES, (3, 4, 10)]


def _case(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits (some rows near-deterministic) and Dirichlet targets, some entries 0."""
    logits, _ = random_case(shape, seed, np.float64)
    rng = np.random.default_rng(seed + 1)
    targets = rng.dirichlet(np.full(shape[-1], 0.5), size=shape[:-1])
    if shape[-1] > 2:
        targets[..., 1] = 0.0
        targets /= np.add.reduce(targets, -1, keepdims=True)
    return logits, targets


def _full(logits: Any, targets: Any, **kwargs: Any) -> tuple[Any, Any]:
    """The full path's loss and gradient (the problem, never the shortcut)."""
    problem = prepare_softmax_targets(logits, targets, **kwargs)
    return problem.loss(), softmax_gradient(problem)


def _only_hybrid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the full path fail: a public call must be answered by the hybrid."""
    fail_on(monkeypatch, _softmax, ("softmax_rows", "target_terms"), expected="the hybrid")


def _check(logits: np.ndarray, targets: np.ndarray, options: dict[str, Any]) -> None:
    """The hybrid answers (not None) and gives the full path's loss and gradient."""
    shortcuts = (_small_targets.target_loss, _small_targets.target_gradient)
    check_shortcuts(shortcuts, _full, (logits, targets), options)


@pytest.mark.parametrize(("shape", "options"), list(itertools.product(SHAPES, OPTIONS)))
def test_issue13_small_targets_is_the_full_path_bit_for_bit(monkeypatch, shape, options) -> None:
    logits, targets = _case(shape, seed=len(shape) * 1000 + shape[-1])
    want_loss, want_grad = _full(logits, targets, **options)
    _only_hybrid(monkeypatch)
    same_bits(LOSS(logits, targets, **options), want_loss)
    same_bits(GRAD(logits, targets, **options), want_grad)


INF = np.inf
HARD_LOGITS = np.array(
    [
        [0.0, -INF, 1.0, 2.0],  # -inf where the target is 0
        [5.0, 5.0, 5.0, 5.0],  # ties
        [1e4, -1e4, 0.0, 3.0],  # a huge spread
        [3.0, 2.0, 1.0, 0.0],
        [0.0, 1e-300, 0.0, -3e300],  # near-ties and a huge negative logit
        [-0.0, 0.0, -0.0, -40.0],  # signed zeros at the maximum
        [1e-320, 0.0, -1e-320, 5e-324],  # subnormal differences
        [700.0, 699.0, -700.0, 1.0],
        [-INF, -INF, 7.0, -INF],  # one finite logit
        [40.0, -40.0, -40.0, -40.0],  # near-deterministic
    ]
)
HARD_TARGETS = np.array(
    [
        [0.5, 0.0, 0.25, 0.25],
        [0.25, 0.25, 0.25, 0.25],
        [0.0, 0.0, 0.0, 1.0],  # one-hot on a class 1e4 below the maximum
        [1.0, 0.0, 0.0, 0.0],  # one-hot
        [0.0, 0.5, 0.5, 0.0],
        [0.1, 0.2, 0.3, 0.4],
        [0.0, 0.0, 0.0, 1.0],
        [1 / 3, 1 / 3, 0.0, 1 / 3],
        [0.0, 0.0, 1.0, 0.0],  # all the mass on the one finite logit
        [0.0, 1.0, 0.0, 0.0],
    ]
)


@pytest.mark.parametrize("options", OPTIONS)
def test_issue13_small_targets_hard_rows_bit_for_bit(options) -> None:
    eps = options.get("label_smoothing", 0.0)
    # smoothed, a -inf logit's class gets mass and the loss is +inf: handed on
    rows = [1, 2, 3, 4, 5, 6, 7, 9] if eps else range(len(HARD_LOGITS))
    logits, targets = HARD_LOGITS[rows], HARD_TARGETS[rows]
    _check(logits, targets, options)
    for k in range(len(rows)):  # one row at a time too (the full path's one-row branches)
        _check(logits[k : k + 1], targets[k : k + 1], options)
        _check(logits[k], targets[k], options)


def test_issue13_small_targets_random_hard_rows_bit_for_bit() -> None:
    """Random rows with huge spreads, ties, -inf logits on classes of target 0 and
    one-hot targets, under every option set."""
    rng = np.random.default_rng(13)
    for trial in range(60):
        classes = int(rng.integers(2, 40))
        n = int(rng.integers(1, 9))
        logits = rng.standard_normal((n, classes)) * 10.0 ** rng.uniform(-3, 4, (n, 1))
        logits[rng.uniform(size=logits.shape) < 0.2] = 3.0  # ties
        targets = rng.dirichlet(np.full(classes, 0.3), size=n)
        zero = rng.uniform(size=logits.shape) < 0.3
        zero[:, 0] = False
        targets[zero] = 0.0
        targets[0] = 0.0
        targets[0, int(rng.integers(classes))] = 1.0  # one-hot
        targets /= np.add.reduce(targets, -1, keepdims=True)
        logits[(targets == 0.0) & (rng.uniform(size=logits.shape) < 0.5)] = -np.inf
        logits[:, -1] = np.where(np.isinf(logits).all(-1), 1.0, logits[:, -1])
        options = dict(OPTIONS[trial % len(OPTIONS)])
        if options.get("label_smoothing") and np.isinf(logits).any():
            options.pop("label_smoothing")  # (+inf: handed on, tested below)
        _check(logits, targets, options)


def test_issue13_small_targets_benchmark_calls_take_the_hybrid(monkeypatch) -> None:
    """The calls of ``bench_small_inputs.py`` (float64 (1, 10) and (8, 10), validating
    or not) are answered by the compiled calls, never by the full path."""
    rng = np.random.default_rng(0)
    loss_calls = record_calls(monkeypatch, _small_targets_numba, ("target_loss64",))
    grad_calls = record_calls(monkeypatch, _small_targets_numba, ("target_gradient64",))
    for rows in (1, 8):
        logits = rng.standard_normal((rows, 10))
        targets = rng.dirichlet(np.ones(10), size=rows)
        want = [_full(logits, targets, validate=v) for v in (True, False)]
        with monkeypatch.context() as patched:
            _only_hybrid(patched)
            for validate, (want_loss, want_grad) in zip((True, False), want, strict=True):
                same_bits(LOSS(logits, targets, validate=validate), want_loss)
                same_bits(GRAD(logits, targets, validate=validate), want_grad)
    assert loss_calls == ["target_loss64"] * 4
    assert grad_calls == ["target_gradient64"] * 4


def _handed_on_cases() -> list[tuple[str, Any, Any, dict[str, Any]]]:
    logits, targets = _case((6, 10), seed=3)
    big, big_targets = _case((_cpu_kernels.SERIAL_ELEMENTS // 10 + 1, 10), seed=4)
    readonly = logits.copy()
    readonly.flags.writeable = False
    swapped = logits.astype(logits.dtype.newbyteorder())
    off = targets.copy()
    off[2] *= 1.5  # no distribution
    negative = targets.copy()
    negative[1, :2] = [-0.25, negative[1, 0] + negative[1, 1] + 0.25]
    return [
        ("float32", logits.astype(np.float32), targets.astype(np.float32), {}),
        ("float32 targets", logits, targets.astype(np.float32), {}),
        ("strided logits", np.repeat(logits, 2, axis=0)[::2], targets, {}),
        ("Fortran targets", logits, np.asfortranarray(targets), {}),
        ("read-only logits", readonly, targets, {}),
        ("byte-swapped logits", swapped, targets, {}),
        ("more than SERIAL_ELEMENTS", big, big_targets, {}),
        ("class weights", logits, targets, {"weight": np.linspace(0.5, 2.0, 10)}),
        ("soft-capping", logits, targets, {"soft_cap": 5.0}),
        ("classes first", logits.T.copy(), targets.T.copy(), {"axis": 0}),
        ("lists", logits.tolist(), targets.tolist(), {}),
        ("unchecked, off the simplex", logits, off, {"validate": False}),
        ("unchecked, negative", logits, negative, {"validate": False}),
    ]


_HANDED_ON = _handed_on_cases()


@pytest.mark.parametrize(
    ("what", "logits", "targets", "kwargs"), _HANDED_ON, ids=[case[0] for case in _HANDED_ON]
)
def test_issue13_small_targets_leaves_other_inputs_to_the_full_path(
    what, logits, targets, kwargs
) -> None:
    """What the hybrid does not take returns None, and the public call is the full path's."""
    assert _small_targets.target_loss((logits, targets), dict(kwargs)) is None, what
    assert _small_targets.target_gradient((logits, targets), dict(kwargs)) is None, what
    want_loss, want_grad = _full(logits, targets, **kwargs)
    same_bits(LOSS(logits, targets, **kwargs), want_loss)
    same_bits(GRAD(logits, targets, **kwargs), want_grad)


NAN = np.nan
T3 = [0.2, 0.3, 0.5]
BAD: list[tuple[Any, Any, dict[str, Any]]] = [
    ([[0.0, NAN, 2.0]], [T3], {}),
    ([[0.0, INF, 2.0]], [T3], {"reduction": "none"}),
    ([[0.0, 1.0, 2.0], [-INF, -INF, -INF]], [T3, T3], {"reduction": "sum"}),
    ([[0.0, 1.0, 2.0]], [[0.2, 0.3, 0.6]], {}),  # sums to 1.1
    ([[0.0, 1.0, 2.0]], [[-0.2, 0.7, 0.5]], {}),  # a negative entry
    ([[0.0, 1.0, 2.0]], [[NAN, 0.5, 0.5]], {}),
    ([[0.0, 1.0, 2.0]], [[1.5, -0.5, 0.0]], {"validate": True}),
    ([[0.0, NAN, 2.0]], [[-0.2, 0.7, 0.5]], {}),  # both bad: the logits are named first
    ([0.0, 1.0, NAN], T3, {}),  # one row, no batch axis
    (1.0, 1.0, {}),  # scalars (0-d arrays): no class axis
    ([[0.0, 1.0, 2.0]], [T3, T3], {}),  # shapes differ
    ([[0.0, 1.0, 2.0]], [[0.5, 0.5]], {}),
    ([[0.0, 1.0, 2.0]], [T3], {"reduction": "avg"}),
    ([[0.0, 1.0, 2.0]], [T3], {"temperature": 0.0}),
    ([[0.0, 1.0, 2.0]], [T3], {"label_smoothing": 2.0}),
    ([[0.0, 1.0, 2.0]], [T3], {"label_smoothing": True}),
    ([[0.0, 1.0, 2.0]], [T3], {"z_loss": -1.0}),
    ([[0.0, 1.0, 2.0]], [T3], {"base": 1.0}),
    ([[0.0, 1.0, 2.0]], [T3], {"axis": 2}),
    ([[0.0, 1.0, 2.0]], [T3], {"axis": True}),
    ([[0.0, 1.0, 2.0]], [T3], {"bogus": 1}),
    # values the full path makes warn or not finite (its warnings are errors here)
    ([[1e308, -1e308, 0.0]], [T3], {}),  # z - max overflows
    ([[1.7e308, 1.7e308, 0.0]], [T3], {}),  # LSE overflows
    ([[1e200, 0.0, 0.0]], [T3], {"z_loss": 1.0}),  # LSE^2 overflows
    ([[0.0, 1e308, 0.0], [0.0, 1e308, 0.0]], [[1.0, 0.0, 0.0]] * 2, {"reduction": "sum"}),
    ([[0.0, -INF, 1.0]], [T3], {}),  # mass on a -inf logit: +inf
    ([[0.0, -INF, 1.0]], [[0.5, 0.0, 0.5]], {"label_smoothing": 0.1}),  # +inf too
]


@pytest.mark.parametrize(("logits", "targets", "kwargs"), BAD)
def test_issue13_small_targets_errors_are_the_full_paths(logits, targets, kwargs) -> None:
    """Every error (and warning) of a small float64 call is the full path's, and where the
    full path has none, so is its value."""
    z = np.array(logits, dtype=np.float64)
    t = np.array(targets, dtype=np.float64)

    def full_loss(*args: Any, **kw: Any) -> Any:
        return prepare_softmax_targets(*args, **kw).loss()

    def full_gradient(*args: Any, **kw: Any) -> Any:
        return softmax_gradient(prepare_softmax_targets(*args, **kw))

    same_outcomes((LOSS, GRAD), (full_loss, full_gradient), (z, t), kwargs)


def test_issue13_small_targets_row_sums_are_numpys() -> None:
    """``target_rows64``'s A and B are ``target_terms``' ``row_sum`` of the (smoothed)
    targets and of ``weighted_term(targets, shifted)``, in NumPy's pairwise order."""
    rng = np.random.default_rng(17)
    for classes, n in itertools.product([*range(1, 140), 255, 256, 257, 1000], (1, 3)):
        shifted = -rng.uniform(0, 30, (n, classes))
        shifted[:, 0] = 0.0
        targets = rng.dirichlet(np.ones(classes), size=n)
        for eps in (0.0, 0.3):
            keep, spread = 1.0 - eps, eps / classes
            rows = np.empty((6, n))
            terms = np.exp(shifted)
            _small_targets_numba.target_rows64(terms, shifted, targets, rows, keep, spread, eps > 0)
            smoothed = keep * targets + spread if eps else targets
            a = np.add.reduce(smoothed, -1)
            b = np.add.reduce(smoothed * shifted, -1)
            np.testing.assert_array_equal(rows[_small_targets_numba.A_ROW], a, str(classes))
            np.testing.assert_array_equal(rows[_small_targets_numba.B_ROW], b, str(classes))


_REAL_TARGET_ROWS = _small_targets_numba.target_rows64


def _fsum_rows(
    terms: np.ndarray,
    shifted: np.ndarray,
    targets: np.ndarray,
    rows: np.ndarray,
    keep: float,
    spread: float,
    smooth: bool,
) -> None:
    """A mutant of ``target_rows64``: B summed exactly (``math.fsum``), not in NumPy's
    order; everything else as there."""
    _REAL_TARGET_ROWS(terms, shifted, targets, rows, keep, spread, smooth)
    smoothed = keep * targets + spread if smooth else targets
    for i in range(targets.shape[0]):
        rows[_small_targets_numba.B_ROW, i] = math.fsum(smoothed[i] * shifted[i])


def _check_seeds(seeds: range) -> None:
    """:func:`_check` of per-row losses on random 8 x 37 cases."""
    for seed in seeds:
        _check(*_case((8, 37), seed=seed), {"reduction": "none"})


def test_issue13_small_targets_a_hybrid_off_by_a_rounding_fails(monkeypatch) -> None:
    """The bit-for-bit checks catch a hybrid whose only fault is the order of one sum, or
    one ulp in the reduced loss."""
    logits, targets = _case((8, 10), seed=8)
    _check(logits, targets, {})  # the real one passes
    with monkeypatch.context() as patched:
        patched.setattr(_small_targets_numba, "target_rows64", _fsum_rows)
        with pytest.raises(AssertionError):
            _check_seeds(range(20))
    real = _small_targets_numba.target_loss64

    def one_ulp_more(*args: Any) -> tuple[bool, float]:
        ok, value = real(*args)
        return ok, float(np.nextafter(value, np.inf))

    with monkeypatch.context() as patched:
        patched.setattr(_small_targets_numba, "target_loss64", one_ulp_more)
        with pytest.raises(AssertionError):
            _check(logits, targets, {})
