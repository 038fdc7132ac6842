"""Issue 13, "Small inputs": the lean soft-target softmax cross-entropy on small float64 inputs.

``softmax_cross_entropy_with_targets`` and its gradient on small float64 logits and
targets (no class weights, no soft-capping, the classes last) are a hybrid
(``losses/_small_targets.py``): compiled calls (``losses/_small_targets_numba.py``, which
calls the label hybrid's ``_small_numba``) do the generic path's arithmetic in its order
and NumPy's own np.exp and np.log1p do the transcendentals on the same values, so the
values are the full path's (``prepare_softmax_targets``, ``SoftmaxProblem.loss``,
``softmax_gradient``) bit for bit. These tests pin that over random and hard rows, and
that a hybrid off by one rounding fails them; that the benchmark's calls take the
hybrid and that everything else (and every bad input) is handed to the full path with
its errors is tested with distillation's in ``test_issue13_small_soft_paths.py``.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels, _small_targets_numba
from losses.small_target_checks import TARGETS, same_bits, target_case
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


def _check(logits: np.ndarray, targets: np.ndarray, options: dict[str, Any]) -> None:
    """The hybrid answers (not None) and gives the full path's loss and gradient."""
    TARGETS.check(logits, targets, options)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_issue13_small_targets_is_the_full_path_bit_for_bit(monkeypatch, shape) -> None:
    """Each of :data:`OPTIONS` in turn (in the loop, not a parameter: 396 tests were
    about 2 ms each of pytest's own time, CI time); the full path's results first."""
    logits, targets = target_case(shape, seed=len(shape) * 1000 + shape[-1])
    wants = [TARGETS.full(logits, targets, **options) for options in OPTIONS]
    TARGETS.only_shortcut(monkeypatch)
    for options, (want_loss, want_grad) in zip(OPTIONS, wants, strict=True):
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
        _check(*target_case((8, 37), seed=seed), {"reduction": "none"})


def test_issue13_small_targets_a_hybrid_off_by_a_rounding_fails(monkeypatch) -> None:
    """The bit-for-bit checks catch a hybrid whose only fault is the order of one sum, or
    one ulp in the reduced loss."""
    logits, targets = target_case((8, 10), seed=8)
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


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", [{}, {"z_loss": 1e-3, "label_smoothing": 0.1}])
def test_issue13_small_targets_expm1_only_where_a_row_has_p_above_half(
    monkeypatch, dtype, options
) -> None:
    """The top entry's :math:`\\operatorname{expm1}(-\\ell)` (NumPy's, for the entry with
    :math:`p_c > 1/2`) is formed only where ``target_rows64`` flags a row that may have
    such an entry: ``target_gradient64`` gets an empty array on rows without one, the
    expm1 of every row on rows with one (main formed it on every call: 0.6-0.9 us of a
    6-9 us call); a row the flag misses (a patched ``target_rows64`` that flags none),
    it asks for, having written nothing, and is called again with it. The gradient is
    the full path's bit for bit each way."""
    real = _small_targets_numba.target_gradient64
    given: list[int] = []

    def spy(*args: Any) -> Any:
        given.append(len(args[-1]))
        return real(*args)

    monkeypatch.setattr(_small_targets_numba, "target_gradient64", spy)
    logits, targets = target_case((8, 10), seed=3, dtype=dtype)
    logits = np.clip(logits, -1.0, 1.0)  # p_c <= e^2 / (e^2 + 9) < 1/2 everywhere
    _check(logits, targets, options)
    assert given == [0]  # (not main's expm1 of every row)
    logits[5, 2] = 6.0  # p_2 > 1/2 in row 5 (and one-hot there: the entry that needs it)
    targets[5] = np.eye(10, dtype=dtype)[2]
    given.clear()
    _check(logits, targets, options)
    assert given == [8]
    rows = _small_targets_numba.target_rows64
    monkeypatch.setattr(_small_targets_numba, "target_rows64", lambda *a: rows(*a) and False)
    given.clear()
    _check(logits, targets, options)
    assert given == [0, 8]
