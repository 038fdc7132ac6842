"""Issue 13, ``crossent report`` end to end: the binned bootstrap drawn block by block.

Each replicate of a calibration error's bootstrap (one curve: top-label,
positive-class) used to draw every row of a bin with ``rng.integers`` (8 bytes a row)
and read it anywhere in the bin; it now draws how many rows fall in each block of 256
rows of a bin (and in each bin's remainder), one random byte a row as the offset, and
sums each bin in NumPy's order (``_bootstrap_numba.binned_sums`` where Numba is
installed).  The oracles:

* NumPy's ``values[:m].sum()`` and the NumPy twin of the kernel (bits);
* the scheme written out from the docstring of ``binned_replicates`` (bits);
* the uniform draw with replacement, which the scheme must equal in distribution: each
  row's count over many replicates (chi-square), the per-row count's variance, and a
  bin's count variance (multinomial);
* coverage on data whose population calibration error is known (quadrature).
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

import crossent
from crossent.calibration import _bootstrap, _row_kernels
from crossent.calibration._binning import BinStatistics
from crossent.calibration._error import bin_indices, check_spec, edges_for, error_from_statistics

needs_numba = pytest.mark.skipif(not _row_kernels.available(), reason="needs Numba")


def _values(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Confidences over many magnitudes (another order of the additions would show)."""
    conf = rng.random(n) * 10.0 ** rng.integers(-12, 3, size=n)
    hits = (rng.random(n) < 0.6).astype(np.float64)
    return conf, hits


# bins: empty, smaller than a block, exactly one block, blocks and a remainder
_SIZES = [0, 3, 256, 1000, 0, 77, 2048, 700]


@needs_numba
def test_pairwise_sum_is_numpys_bits_for_every_length() -> None:
    from crossent.calibration._bootstrap_numba import pairwise_sum

    rng = np.random.default_rng(0)
    values, _ = _values(400_000, rng)
    for m in [*range(0, 3001), *rng.integers(3001, 400_000, size=40).tolist()]:
        expected = values[:m].sum()
        got = pairwise_sum(values, m)
        assert np.float64(got).tobytes() == np.float64(expected).tobytes(), m


@needs_numba
def test_the_kernel_sums_are_the_numpy_twins_bits() -> None:
    rng = np.random.default_rng(1)
    plan = _bootstrap._BlockPlan.of(_SIZES)
    conf, hits = _values(plan.n, rng)
    compiled = _bootstrap._summer(conf, hits, plan, draws=10**12)
    assert not isinstance(compiled, functools.partial)  # the kernel, not the NumPy twin
    # batches of 1 to 8 replicates (the kernel sweeps the rows once a batch: branch report13)
    for size in [1, 8, 3, 8, 2, *[8] * 22]:
        draws = [_bootstrap._draw(rng, plan) for _ in range(size)]
        for drawn, got in zip(draws, compiled(draws), strict=True):
            expected = _bootstrap._numpy_sums(conf, hits.astype(np.uint8), drawn)
            floats = _bootstrap._numpy_sums(conf, hits, drawn)  # hits as floats: summed
            for a, b, c in zip(got, expected, floats, strict=True):
                assert a.tobytes() == b.tobytes() == c.tobytes()


@needs_numba
def test_float32_confidences_are_summed_in_float64_on_either_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(6)
    plan = _bootstrap._BlockPlan.of(_SIZES)
    conf, hits = _values(plan.n, rng)
    conf32 = conf.astype(np.float32)
    compiled = _bootstrap._summer(conf32, hits, plan, draws=10**12)
    monkeypatch.setattr(_row_kernels, "available", lambda: False)
    plain = _bootstrap._summer(conf32, hits, plan, draws=10**12)
    assert isinstance(plain, functools.partial)
    for _ in range(50):
        drawn = _bootstrap._draw(rng, plan)
        rows, bounds = _bootstrap._drawn_rows(drawn)
        wide = conf32.astype(np.float64)[rows]
        expected = [wide[a:b].sum() for a, b in itertools.pairwise(bounds)]
        assert compiled([drawn])[0][0].tolist() == expected
        assert plain([drawn])[0][0].tolist() == expected


def _declared_replicates(
    conf: np.ndarray, hits: np.ndarray, spec: object, resamples: int, seed: int
) -> list[float]:
    """``binned_replicates`` as its docstring declares it, written out with plain NumPy."""
    edges = edges_for(conf, spec)  # type: ignore[arg-type]
    index = bin_indices(conf, edges, spec)  # type: ignore[arg-type]
    bins = spec.bins  # type: ignore[attr-defined]
    order = np.argsort(index, kind="stable")
    conf, hits, index = conf[order], hits[order], index[order]
    n = conf.shape[0]
    groups = []  # (bin, first row, rows), blocks of every bin first, then the remainders
    remainders = []
    for b in range(bins):
        rows = np.flatnonzero(index == b)
        first, size = (int(rows[0]) if rows.size else 0), rows.size
        groups += [(b, first + 256 * k, 256) for k in range(size // 256)]
        if size % 256:
            remainders.append((b, first + 256 * (size // 256), size % 256))
    groups += remainders
    replicates = []
    chunks = [min(25, resamples - s) for s in range(0, resamples, 25)]
    for stream, count in zip(np.random.SeedSequence(seed).spawn(len(chunks)), chunks, strict=True):
        rng = np.random.default_rng(stream)
        for _ in range(count):
            counts = rng.multinomial(n, [size / n for _, _, size in groups])
            whole = [c for (_, _, size), c in zip(groups, counts, strict=True) if size == 256]
            words = rng.bit_generator.random_raw(-(-sum(whole) // 8))
            offsets = [int(w) >> (8 * j) & 255 for w in words.tolist() for j in range(8)]
            highs = [
                size
                for (_, _, size), c in zip(groups, counts, strict=True)
                if size < 256
                for _ in range(c)
            ]
            rest_offsets = rng.integers(0, np.array(highs, dtype=np.int64)).tolist()
            drawn: list[list[int]] = [[] for _ in range(bins)]
            for (b, first, size), c in zip(groups, counts, strict=True):
                source = offsets if size == 256 else rest_offsets
                drawn[b] += [first + source.pop(0) for _ in range(c)]
            stats = BinStatistics(
                np.array([len(rows) for rows in drawn], dtype=np.float64),
                np.array([conf[rows].sum() if rows else 0.0 for rows in drawn]),
                np.array([hits[rows].sum() if rows else 0.0 for rows in drawn]),
            )
            replicates.append(error_from_statistics(stats, spec))  # type: ignore[arg-type]
    return replicates


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_replicates_follow_the_declared_scheme(
    row_backend: str, norm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails on main (its replicates drew every row with rng.integers, bin by bin)."""
    monkeypatch.setattr(_bootstrap, "_KERNEL_DRAWS", 0)  # the kernel wherever Numba is
    rng = np.random.default_rng(2)
    conf = rng.beta(5, 1, size=3000)
    hits = (rng.random(3000) < conf**1.3).astype(np.float64)
    spec = check_spec(
        bins=15, binning="uniform", norm=norm, scope="top-label", debias=False, closed="left"
    )
    index = bin_indices(conf, edges_for(conf, spec), spec)
    got = _bootstrap.binned_replicates(conf, hits, index, spec, 60, 7)
    assert got.tolist() == _declared_replicates(conf, hits, spec, 60, 7)


def test_each_row_is_drawn_uniformly_with_replacement() -> None:
    """Over many replicates each row is drawn once a replicate on average, with the
    multinomial's variances: a row's count has variance 1 - 1/n, a bin's count of
    ``s`` rows ``s (1 - s/n)``.  A mutant drawing a remainder's offsets from
    ``[0, size - 1)``, or a block's from 255 values, fails the chi-square."""
    plan = _bootstrap._BlockPlan.of(_SIZES)
    rng = np.random.default_rng(3)
    replicates = 4000
    counts = np.zeros((replicates, plan.n), dtype=np.int64)
    for r in range(replicates):
        drawn = _bootstrap._draw(rng, plan)
        rows, bounds = _bootstrap._drawn_rows(drawn)
        assert rows.shape == (plan.n,)
        assert bounds[-1] == plan.n
        starts = np.concatenate([[0], np.cumsum(_SIZES)])
        for b in range(len(_SIZES)):  # a bin's drawn rows are its own rows
            part = rows[bounds[b] : bounds[b + 1]]
            assert np.all((part >= starts[b]) & (part < starts[b + 1]))
        counts[r] = np.bincount(rows, minlength=plan.n)
    total = counts.sum(axis=0)
    chi2 = float(np.sum((total - replicates) ** 2 / replicates))
    dof = plan.n - 1
    assert abs(chi2 - dof) < 5 * np.sqrt(2 * dof), (chi2, dof)
    assert counts.var(axis=0).mean() == pytest.approx(1 - 1 / plan.n, rel=0.02)
    starts = np.concatenate([[0], np.cumsum(_SIZES)])
    for b, size in enumerate(_SIZES):
        if size:
            per_bin = counts[:, starts[b] : starts[b + 1]].sum(axis=1)
            variance = size * (1 - size / plan.n)
            assert abs(per_bin.mean() - size) < 4 * np.sqrt(variance / replicates)
            assert per_bin.var() == pytest.approx(variance, rel=0.1)


def test_calibration_interval_covers_the_population_error() -> None:
    """95 % intervals of the debiased L2 calibration error of ``P(y = 1 | p) = p^1.5``,
    ``p ~ U(0, 1)``, 10 bins, 4000 rows (bins of about 400: a block and a remainder
    each): the population's binned error (quadrature) is inside in about 95 % of 100
    data sets (``benchmarks/bench_interval_coverage.py``; at least 88 % here, 2.7
    standard errors of 100 data sets below 95 %)."""
    bins, rows = 10, 4000
    grid = (np.arange(2_000_000) + 0.5) / 2_000_000
    index = np.minimum((grid * bins).astype(int), bins - 1)
    gap = np.bincount(index, weights=grid**1.5 - grid) / np.bincount(index)
    truth = float(np.sqrt(np.mean(np.square(gap))))
    inside = 0
    for r in range(100):
        rng = np.random.default_rng(r)
        p = rng.random(rows)
        y = (rng.random(rows) < p**1.5).astype(int)
        ci = crossent.bootstrap_interval(
            "calibration_error",
            p,
            y,
            scope="positive-class",
            bins=bins,
            norm="l2",
            debias=True,
            resamples=200,
            seed=r,
        )
        inside += ci.low <= truth <= ci.high
    assert inside >= 88


def test_replicates_are_the_same_with_numpys_sums(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(5) * 0.3, size=20_000)
    labels = np.array([rng.choice(5, p=row) for row in probs[:2000]] * 10)
    compiled = crossent.bootstrap_interval("calibration_error", probs, labels, resamples=60, seed=3)
    monkeypatch.setattr(_bootstrap._row_kernels, "available", lambda: False)
    plain = crossent.bootstrap_interval("calibration_error", probs, labels, resamples=60, seed=3)
    assert (compiled.value, compiled.low, compiled.high) == (plain.value, plain.low, plain.high)


@needs_numba
def test_the_report_bootstrap_sums_with_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The calibration error's bootstrap calls the compiled sums for every replicate
    (8 at a time), and NumPy's twin where a hit is not 0 or 1."""
    kernel, calls = _bootstrap._sums_kernel(), []

    def spy(*arguments: np.ndarray) -> None:
        calls.extend((arguments[3].sum(axis=1) + arguments[8].sum(axis=1)).tolist())
        kernel(*arguments)

    monkeypatch.setattr(_bootstrap, "_sums_kernel", lambda: spy)
    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(3), size=500)
    labels = rng.integers(0, 3, size=500)
    crossent.bootstrap_interval("calibration_error", probs, labels, resamples=20)
    assert calls == [500] * 20  # (the warm-up call before the threads: no replicate)
    plan = _bootstrap._BlockPlan.of([2])
    sums = _bootstrap._summer(np.array([0.25, 0.5]), np.array([0.0, 0.5]), plan, draws=10**12)
    nothing = np.zeros(0, np.int64)
    drawn = _bootstrap._Draw(
        plan, nothing, nothing.astype(np.uint8), np.array([2]), np.array([1, 1])
    )
    assert [a.tolist() for a in sums([drawn])[0]] == [[1.0], [1.0]]


def test_same_seed_same_replicates_on_one_thread_or_many(monkeypatch: pytest.MonkeyPatch) -> None:
    from crossent import _parallel

    rng = np.random.default_rng(5)
    conf = rng.random(5000)
    hits = (rng.random(5000) < conf).astype(np.float64)
    spec = check_spec(
        bins=15, binning="uniform", norm="l1", scope="positive-class", debias=False, closed="left"
    )
    index = bin_indices(conf, edges_for(conf, spec), spec)
    many = _bootstrap.binned_replicates(conf, hits, index, spec, 120, 9)
    monkeypatch.setattr(_parallel, "_threads", lambda: 1)
    one = _bootstrap.binned_replicates(conf, hits, index, spec, 120, 9)
    assert many.tobytes() == one.tobytes()
