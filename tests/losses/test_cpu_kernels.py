"""The fused CPU kernels (Numba) against the generic Array-API path, which is the fallback."""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent
from crossent import InputError
from crossent.losses import _cpu_kernels
from crossent.losses._kernel_inputs import GradientTerms, StatisticsOptions

from tolerances import FLOAT32_KERNEL, KERNEL_EXP, ulps

pytest.importorskip("numba")

RNG = np.random.default_rng(31)
LOGITS = (RNG.normal(size=(40, 300)) * 4).astype(np.float32)
LABELS = RNG.integers(0, 300, size=40)
LABELS[[3, 17]] = -100
WEIGHT = RNG.uniform(0.1, 2.0, size=300).astype(np.float32)

OPTIONS = [
    {},
    {"ignore_index": -100},
    {"ignore_index": -100, "weight": WEIGHT, "label_smoothing": 0.15},
    {"ignore_index": -100, "temperature": 1.7, "z_loss": 1e-3, "base": 2},
    {"ignore_index": -100, "label_smoothing": 0.1, "reduction": "none"},
    {"ignore_index": -100, "weight": WEIGHT, "reduction": "sum"},
]


@pytest.fixture
def generic(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run a call with the kernels unavailable: the pure Array-API fallback."""

    def run(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        with monkeypatch.context() as patch:
            patch.setattr(_cpu_kernels, "available", lambda: False)
            return fn(*args, **kwargs)

    return run


def _labels_for(options: dict) -> np.ndarray:
    return LABELS if "ignore_index" in options else np.where(LABELS < 0, 0, LABELS)


@pytest.mark.parametrize("options", OPTIONS)
def test_kernels_agree_with_the_generic_path(options: dict, generic) -> None:  # type: ignore[no-untyped-def]
    labels = _labels_for(options)
    fast = crossent.softmax_cross_entropy(LOGITS, labels, **options)
    slow = generic(crossent.softmax_cross_entropy, LOGITS, labels, **options)
    exact = crossent.softmax_cross_entropy(LOGITS.astype(np.float64), labels, **options)
    assert np.asarray(fast).dtype == np.float32
    # float32 results: both within a few float32 ulps of the float64 truth
    np.testing.assert_allclose(fast, exact, **FLOAT32_KERNEL.tol(np.float32))
    np.testing.assert_allclose(slow, exact, **FLOAT32_KERNEL.tol(np.float32))
    grad_fast = crossent.softmax_cross_entropy_grad(LOGITS, labels, **options)
    grad_slow = generic(crossent.softmax_cross_entropy_grad, LOGITS, labels, **options)
    grad_exact = crossent.softmax_cross_entropy_grad(LOGITS.astype(np.float64), labels, **options)
    assert grad_fast.dtype == np.float32
    scale = np.abs(grad_exact).max()
    np.testing.assert_allclose(
        grad_fast, grad_exact, rtol=FLOAT32_KERNEL.rtol32, atol=ulps(16, np.float32, scale)
    )
    np.testing.assert_allclose(
        grad_slow, grad_exact, rtol=FLOAT32_KERNEL.rtol32, atol=ulps(16, np.float32, scale)
    )


def test_kernels_take_batched_and_float16_logits() -> None:
    logits = LOGITS.reshape(4, 10, 300)
    labels = np.where(LABELS < 0, 0, LABELS).reshape(4, 10)
    got = crossent.softmax_cross_entropy(logits, labels, reduction="none")
    assert got.shape == (4, 10)
    np.testing.assert_allclose(
        got,
        crossent.softmax_cross_entropy(logits.astype(np.float64), labels, reduction="none"),
        **FLOAT32_KERNEL.tol(np.float32),
    )
    grad = crossent.softmax_cross_entropy_grad(logits, labels)
    assert grad.shape == logits.shape
    half = LOGITS.astype(np.float16)
    labels = np.where(LABELS < 0, 0, LABELS)
    got = crossent.softmax_cross_entropy(half, labels)
    assert got.dtype == np.float32
    assert got == pytest.approx(
        crossent.softmax_cross_entropy(half.astype(np.float64), labels),
        **FLOAT32_KERNEL.rel_abs(np.float32),
    )


def test_kernel_limits_match_the_generic_path(generic) -> None:  # type: ignore[no-untyped-def]
    z = np.array([[1e4, -1e4, 0.0], [0.0, -np.inf, 1.0], [-50.0, 50.0, 0.0]], dtype=np.float32)
    y = np.array([0, 2, 0])
    fast = crossent.softmax_cross_entropy(z, y, reduction="none")
    exact = crossent.softmax_cross_entropy(z.astype(np.float64), y, reduction="none")
    # float64 inside the kernel: correctly rounded here (the float32 generic path is
    # within an ulp)
    np.testing.assert_array_equal(fast, exact.astype(np.float32))
    slow = generic(crossent.softmax_cross_entropy, z, y, reduction="none")
    np.testing.assert_allclose(slow, exact, rtol=ulps(2, np.float32))
    assert fast[0] == 0.0
    assert fast[2] == pytest.approx(100.0, rel=ulps(1, np.float32), abs=0)
    assert crossent.softmax_cross_entropy(z, np.array([0, 1, 0]), reduction="none")[1] == np.inf
    grad = crossent.softmax_cross_entropy_grad(z, y)
    assert np.all(np.isfinite(grad))
    assert grad[1, 1] == 0


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        (math.nan, r"`logits` contains NaN at index \(5, 7\)"),
        (math.inf, r"`logits` \(logits\) must not be \+inf; got \+inf at index \(5, 7\)"),
    ],
)
def test_fused_validation_names_the_entry(value: float, pattern: str) -> None:
    bad = LOGITS.copy()
    bad[5, 7] = value
    labels = np.where(LABELS < 0, 0, LABELS)
    with pytest.raises(InputError, match=pattern):
        crossent.softmax_cross_entropy(bad, labels)
    with pytest.raises(InputError, match=pattern):
        crossent.softmax_cross_entropy_grad(bad, labels)
    dead = LOGITS.copy()
    dead[9] = -np.inf
    with pytest.raises(InputError, match="row 9 entirely -inf"):
        crossent.softmax_cross_entropy(dead, labels)


def test_other_layouts_and_soft_capping_use_the_generic_path(generic) -> None:  # type: ignore[no-untyped-def]
    labels = np.where(LABELS < 0, 0, LABELS)
    for kwargs, logits in [
        ({"axis": 0}, np.ascontiguousarray(LOGITS.T)),
        ({}, np.asfortranarray(LOGITS)),
        ({"soft_cap": 10.0}, LOGITS),
    ]:
        np.testing.assert_array_equal(
            crossent.softmax_cross_entropy(logits, labels, **kwargs),
            generic(crossent.softmax_cross_entropy, logits, labels, **kwargs),
        )


def test_import_crossent_does_not_import_numba() -> None:
    import subprocess
    import sys

    code = (
        "import sys, crossent; crossent.softmax_cross_entropy([[0.0, 1.0]], [1]); "
        "print('numba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # float64 input: no kernel, no import


def test_kernel_exp_is_accurate_to_float64_over_its_whole_range() -> None:
    # Rows [0, d]: the kernel's near-deterministic branch returns ell = log1p(e^d), so
    # each row measures the inlined exp at one point d in [-708, 0] (documented relative
    # error below 5.2e-11; np.exp is within an ulp of the truth).
    d = np.concatenate(
        [-np.geomspace(1e-7, 708, 4000), -RNG.uniform(0, 3, 4000), [0.0, -0.5 * math.log(2)]]
    ).astype(np.float32)
    z = np.stack([np.zeros_like(d), d], axis=1)
    _, ell, *_ = _cpu_kernels.row_statistics(
        z, np.zeros(len(d), dtype=np.int64), StatisticsOptions()
    )
    expected = np.log1p(np.exp(d.astype(np.float64)))
    np.testing.assert_allclose(ell, expected, **KERNEL_EXP.tol())


def test_kernel_log_partition_matches_scipy_in_float64() -> None:
    from scipy.special import logsumexp

    z = (RNG.standard_normal((64, 5000)) * RNG.uniform(0.1, 30, (64, 1))).astype(np.float32)
    for temperature in (1.0, 0.37, 2.5):
        m, ell, *_ = _cpu_kernels.row_statistics(
            z, np.zeros(64, dtype=np.int64), StatisticsOptions(inv_temperature=1 / temperature)
        )
        expected = logsumexp(z.astype(np.float64) / temperature, axis=1)
        np.testing.assert_allclose(m + ell, expected, **KERNEL_EXP.tol())


def test_kernel_gradient_is_the_correctly_rounded_softmax() -> None:
    from scipy.special import softmax

    z = (RNG.standard_normal((64, 3000)) * 6).astype(np.float32)
    exact = softmax(z.astype(np.float64), axis=1)
    got = _cpu_kernels.write_gradient(
        z,
        np.zeros(64, dtype=np.int64),
        GradientTerms(
            shift=np.log(np.exp(z.astype(np.float64)).sum(axis=1)),
            inv_temperature=1.0,
            p_coef=np.ones(64),
            target_coef=np.zeros(64),
        ),
    )
    # float64 inside: each float32 entry is the rounding of the float64 softmax (an ulp
    # apart at most where the truth sits on a rounding boundary)
    np.testing.assert_array_max_ulp(got, exact.astype(np.float32), maxulp=1)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_every_position_of_a_bad_entry_makes_the_row_suspect(value: float) -> None:
    # one row per position, so that vector bodies and scalar tails are both covered
    v = 37
    z = np.tile((RNG.standard_normal(v) * 5).astype(np.float32), (v + 1, 1))
    z[np.arange(v), np.arange(v)] = value
    suspect = _cpu_kernels.row_statistics(
        z, np.zeros(v + 1, dtype=np.int64), StatisticsOptions(inv_temperature=0.5)
    )[-1]
    np.testing.assert_array_equal(suspect, [True] * v + [False])


def test_minus_infinity_is_suspect_only_when_the_whole_row_is() -> None:
    z = (RNG.standard_normal((3, 37)) * 5).astype(np.float32)
    z[0, [0, 5, 36]] = -np.inf  # masked classes: valid, no full check needed
    z[1] = -np.inf
    z[2, 1:] = -np.inf  # one finite entry left
    suspect = _cpu_kernels.row_statistics(z, np.zeros(3, dtype=np.int64), StatisticsOptions())[-1]
    np.testing.assert_array_equal(suspect, [False, True, False])


def test_rows_at_block_boundaries_keep_their_own_maximum() -> None:
    # The kernel takes the next row's maximum inside this row's exp-sum, in blocks of
    # rows: special rows on and around the block edges must not leak into neighbours.
    from scipy.special import logsumexp

    n = 3 * _cpu_kernels._ROWS_PER_BLOCK + 5
    z = (RNG.standard_normal((n, 45)) * RNG.uniform(0.5, 20, (n, 1))).astype(np.float32)
    edge = _cpu_kernels._ROWS_PER_BLOCK
    z[edge - 1] = -np.inf  # last row of the first block, all -inf
    z[edge, 3] = np.nan  # first row of the second block
    z[edge + 1, [0, 44]] = -np.inf  # masked classes: valid
    z[2 * edge, 10] = np.inf
    z[2 * edge + 1] += 1e4  # a much larger maximum right after a suspect row
    m, ell, *_, suspect = _cpu_kernels.row_statistics(
        z, np.zeros(n, dtype=np.int64), StatisticsOptions()
    )
    bad = [edge - 1, edge, 2 * edge]
    np.testing.assert_array_equal(np.flatnonzero(suspect), bad)
    good = np.setdiff1d(np.arange(n), bad)
    np.testing.assert_array_equal(m[good], z[good].max(axis=1))
    expected = logsumexp(z[good].astype(np.float64), axis=1)
    np.testing.assert_allclose((m + ell)[good], expected, **KERNEL_EXP.tol())


def test_the_integer_keyed_maximum_orders_negatives_and_signed_zeros() -> None:
    z = np.array(
        [
            [-3.5, -1e-30, -7.0, -1e30],  # all negative: the maximum is the one nearest 0
            [-0.0, 0.0, -1.0, -2.0],  # signed zeros: either is the maximum, 0 == -0
            [-0.0, -np.inf, -5.0, -0.0],
            [-np.inf, -np.inf, -3e38, -np.inf],
        ],
        dtype=np.float32,
    )
    m, ell, *_, suspect = _cpu_kernels.row_statistics(
        z, np.zeros(4, dtype=np.int64), StatisticsOptions()
    )
    np.testing.assert_array_equal(m, z.max(axis=1))
    assert not suspect.any()
    with np.errstate(divide="ignore"):
        expected = np.log(np.exp(z.astype(np.float64) - m[:, None]).sum(axis=1))
    np.testing.assert_allclose(ell, expected, **KERNEL_EXP.tol())
