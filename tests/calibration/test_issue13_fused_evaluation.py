"""Issue 13, evaluation near one read of the data: the fused per-row pass over stored
probabilities (Numba kernel and its NumPy twin) gives the generic path's numbers and
the same validation, without float64 copies of the input."""

from __future__ import annotations

import tracemalloc

import mpmath
import numpy as np
import pytest

import crossent
from crossent.calibration import _row_kernels, _row_numpy, _summaries
from crossent.calibration._binning import assign_bins, assign_uniform_bins, uniform_edges
from crossent.calibration._inputs import Block, as_predictions
from crossent.errors import InputError

from tolerances import SUM

KERNELS = [
    pytest.param(_row_kernels, id="numba"),
    pytest.param(_row_numpy, id="numpy"),
]


def _probs(rows: int, classes: int, dtype: type, seed: int, alpha: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(classes, alpha), size=rows)
    return probs.astype(dtype)


def _hard_rows(dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Ties (first maximum wins), zeros, certain rows, near-certain correct and wrong
    predictions (whose Brier score must keep its digits), and subnormal entries."""
    eps = 1e-12 if dtype == np.float64 else 1e-6
    tiny = 1e-310 if dtype == np.float64 else 1e-40
    rows = np.array(
        [
            [0.25, 0.25, 0.25, 0.25],
            [0.0, 0.5, 0.5, 0.0],
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
            [1 - eps, eps / 3, eps / 3, eps / 3],
            [1 - eps, eps / 3, eps / 3, eps / 3],
            [tiny, 1.0 - 2 * tiny, tiny, 0.0],
            [0.1, 0.2, 0.3, 0.4],
        ],
        dtype=dtype,
    )
    return rows, np.array([2, 1, 0, 0, 0, 1, 0, 3])


def _generic(probs: np.ndarray, labels: np.ndarray) -> _summaries.ExampleSummaries:
    """The per-block path of the other forms, on the float64 probabilities."""
    block = Block(0, None, probs.astype(np.float64), labels.astype(np.intp))
    return _summaries.summarize_block(block, entropy=True)


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classes", [1, 2, 3, 10, 17, 1000])
def test_issue13_fused_rows_equal_the_generic_path(kernels, dtype: type, classes: int) -> None:
    if kernels is _row_kernels:
        pytest.importorskip("numba")
    probs = _probs(300, classes, dtype, seed=classes)
    labels = np.random.default_rng(1).integers(0, classes, size=300)
    suspect, p_label, others, confidence, predicted, ent = kernels.row_summaries(
        probs, labels, top=True, entropy=True, limit=1e-3
    )
    want = _generic(probs, labels)
    assert suspect == 0
    np.testing.assert_array_equal(p_label, want.p_label)  # a read, exactly
    np.testing.assert_array_equal(confidence, want.confidence)
    np.testing.assert_array_equal(predicted, want.predicted)
    np.testing.assert_allclose(others, want.others, rtol=SUM.rtol, atol=1e-300)
    np.testing.assert_allclose(ent, want.entropy, rtol=SUM.rtol, atol=SUM.atol)


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_issue13_fused_hard_rows(kernels, dtype: type) -> None:
    if kernels is _row_kernels:
        pytest.importorskip("numba")
    probs, labels = _hard_rows(dtype)
    suspect, p_label, others, confidence, predicted, ent = kernels.row_summaries(
        probs, labels, top=True, entropy=True, limit=1e-3
    )
    want = _generic(probs, labels)
    assert suspect == 0
    np.testing.assert_array_equal(confidence, want.confidence)
    np.testing.assert_array_equal(predicted, [0, 1, 0, 3, 0, 0, 1, 3])  # first maximum
    np.testing.assert_array_equal(predicted, want.predicted)
    np.testing.assert_array_equal(p_label, want.p_label)
    np.testing.assert_allclose(others, want.others, rtol=1e-15, atol=0)
    np.testing.assert_allclose(ent, want.entropy, rtol=1e-14, atol=1e-300)
    assert ent[2] == 0  # 0 log 0 = 0
    assert ent[3] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_issue13_public_scores_keep_the_brier_digits_of_near_certain_rows(
    row_backend: str, dtype: type
) -> None:
    probs, labels = _hard_rows(dtype)
    x = probs.astype(np.float64)
    one_hot = np.eye(4)[labels]
    got = crossent.brier_score(probs, labels, reduction="none")
    for row in (4, 7):  # correct near-certain row: (1 - p_y)^2 + sum of the rest
        with mpmath.workdps(40):  # (not mpmath's global precision, 15 digits)
            want = float(
                mpmath.fsum(
                    [
                        (mpmath.mpf(float(a)) - float(b)) ** 2
                        for a, b in zip(x[row], one_hot[row], strict=True)
                    ]
                )
            )
        assert got[row] == pytest.approx(want, rel=1e-14)


def test_issue13_kernel_log_is_within_one_ulp_of_the_correctly_rounded_log() -> None:
    pytest.importorskip("numba")
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            rng.random(20000),
            np.exp(-rng.random(5000) * 745),  # down into the subnormals
            np.exp(rng.normal(size=5000) * 100),
            [5e-324, 1e-310, 2.2250738585072014e-308, 0.5, 1.0, 1 - 2**-53, 1 + 2**-52],
            [np.sqrt(2), np.sqrt(0.5), np.nextafter(np.sqrt(2), 0), 1.7976931348623157e308],
        ]
    )
    x = x[x > 0]
    got = _row_kernels.log_positive(x)
    reference = np.log(x)  # correctly rounded or within 1 ulp itself
    ulp = np.abs(got - reference) / np.spacing(np.abs(reference) + 1e-300)
    assert ulp.max() <= 1.0
    with mpmath.workdps(40):
        for value, mine in zip(x[::997], got[::997], strict=True):
            exact = mpmath.log(mpmath.mpf(float(value)))
            assert abs(mine - exact) <= 1.0 * np.spacing(abs(float(exact)) + 1e-300)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classes", [3, 10, 257])
def test_issue13_public_functions_equal_on_both_backends_and_the_generic_path(
    row_backend: str, dtype: type, classes: int
) -> None:
    probs = _probs(2000, classes, dtype, seed=7)
    labels = np.random.default_rng(8).integers(0, classes, size=2000)
    want = _generic(probs, labels)
    nll = crossent.negative_log_likelihood(probs, labels, reduction="none")
    np.testing.assert_array_equal(nll, want.surprisal)
    np.testing.assert_allclose(
        crossent.brier_score(probs, labels, reduction="none"), want.brier, rtol=1e-13
    )
    np.testing.assert_allclose(
        crossent.spherical_score(probs, labels, reduction="none"), want.spherical, rtol=1e-13
    )
    np.testing.assert_array_equal(crossent.accuracy(probs, labels, reduction="none"), want.correct)
    state = crossent.EvaluationState(classes).update(probs, labels).compute()
    assert state.mean_entropy == pytest.approx(float(np.mean(want.entropy)), rel=1e-13)
    assert state.nll == pytest.approx(float(np.mean(want.surprisal)), rel=1e-14)
    assert state.accuracy == float(np.mean(want.correct))
    ece = crossent.calibration_error(probs, labels)
    assert ece.value == pytest.approx(
        crossent.calibration_error(probs.astype(np.float64), labels, validate=False).value,
        rel=1e-12,
    )
    assert state.calibration.value == pytest.approx(ece.value, rel=1e-12)


def _bad_inputs() -> list[tuple[str, np.ndarray]]:
    base = _probs(70000, 4, np.float32, seed=3)  # two check blocks of 65536 rows
    cases = []
    for name, row, column, value in [
        ("nan", 5, 1, np.nan),
        ("negative", 66000, 2, -0.25),
        ("above one", 69999, 0, 1.5),
        ("inf", 12, 3, np.inf),
    ]:
        bad = base.copy()
        bad[row, column] = value
        cases.append((name, bad))
    off = base.copy()
    off[40000] *= 1.01  # sums to 1.01
    cases.append(("row sum", off))
    later = base.copy()
    later[3] *= 1.01  # a row-sum error in the block before an entry error
    later[69000, 0] = np.nan
    cases.append(("two errors", later))
    return cases


@pytest.mark.parametrize("case", _bad_inputs(), ids=lambda c: c[0])
@pytest.mark.parametrize("first_row", [0, 1000])
def test_issue13_fused_validation_raises_the_eager_check_error(
    row_backend: str, case: tuple[str, np.ndarray], first_row: int
) -> None:
    _, bad = case
    labels = np.zeros(bad.shape[0], dtype=int)
    with pytest.raises(crossent.InputError) as eager:
        as_predictions(bad, labels, form="probs", first_row=first_row)
    message = str(eager.value)
    calls = [
        lambda: crossent.negative_log_likelihood(bad, labels),
        lambda: crossent.brier_score(bad, labels),
        lambda: crossent.spherical_score(bad, labels),
        lambda: crossent.accuracy(bad, labels),
        lambda: crossent.calibration_error(bad, labels),
        lambda: crossent.EvaluationState(4).update(bad, labels),
    ]
    if first_row:
        calls = [lambda: crossent.EvaluationState(4).update(bad, labels, first_row=first_row)]
    else:
        message = str(eager.value)
    for call in calls:
        with pytest.raises(crossent.InputError) as fused:
            call()
        assert str(fused.value) == message


def test_issue13_rows_near_the_tolerance_are_accepted_as_before(row_backend: str) -> None:
    """A row inside the tolerance but past the kernel's stricter limit is suspect; the
    full check then passes it, as the eager check does."""
    probs = np.full((3, 10), 0.1)
    probs[1, 0] += 1.1e-13  # tolerance for float64, 10 classes: 1.2e-13
    labels = np.array([0, 1, 2])
    as_predictions(probs, labels, form="probs")  # the eager check accepts it
    assert crossent.negative_log_likelihood(probs, labels) == pytest.approx(np.log(10))
    probs[1, 0] += 1e-13
    with pytest.raises(crossent.InputError, match="row 1 sums to"):
        crossent.negative_log_likelihood(probs, labels)


def test_issue13_deferred_check_runs_for_every_other_reader() -> None:
    probs = _probs(50, 3, np.float64, seed=2)
    probs[7] = [0.5, 0.6, 0.0]
    labels = np.zeros(50, dtype=int)
    pending = as_predictions(probs, labels, form="probs", defer=True)
    assert pending.pending
    for read in (
        pending.probs,
        lambda: list(pending.blocks()),
        lambda: pending.subset(np.arange(10)),
        lambda: list(pending.map_raw(lambda *a: a)),
    ):
        with pytest.raises(crossent.InputError, match=r"row 7 sums to 1\.1"):
            read()
    for scope in ("class-wise", "top-label"):
        with pytest.raises(crossent.InputError, match=r"row 7 sums to 1\.1"):
            crossent.calibration_error(probs, labels, scope=scope)
    two = np.stack([probs[:, 0], 1 - probs[:, 0]], axis=1)
    two[9] = [0.5, 0.7]
    with pytest.raises(crossent.InputError, match=r"row 9 sums to 1\.2"):
        crossent.calibration_error(two, labels, scope="positive-class")
    with pytest.raises(crossent.InputError, match=r"row 9 sums to 1\.2"):
        crossent.EvaluationState(2, scope="positive-class").update(two, labels)


@pytest.mark.parametrize("layout", ["fortran", "strided", "float16", "list"])
def test_issue13_other_layouts_and_dtypes_give_the_same_numbers(
    row_backend: str, layout: str
) -> None:
    probs = _probs(500, 6, np.float64, seed=4)
    labels = np.random.default_rng(5).integers(0, 6, size=500)
    given = {
        "fortran": np.asfortranarray(probs),
        "strided": np.repeat(probs, 2, axis=1)[:, ::2],
        "float16": probs.astype(np.float16),
        "list": probs.tolist(),
    }[layout]
    reference = probs.astype(np.float16) if layout == "float16" else probs
    for score in (crossent.negative_log_likelihood, crossent.brier_score, crossent.accuracy):
        assert score(given, labels) == pytest.approx(
            score(reference.astype(np.float64), labels, validate=False), rel=1e-14
        )


def test_issue13_validate_false_gives_the_validated_numbers(row_backend: str) -> None:
    probs = _probs(3000, 12, np.float32, seed=6)
    labels = np.random.default_rng(6).integers(0, 12, size=3000)
    for score in (
        crossent.negative_log_likelihood,
        crossent.brier_score,
        crossent.spherical_score,
        crossent.accuracy,
    ):
        assert score(probs, labels, validate=False) == score(probs, labels)


def test_issue13_evaluation_makes_no_float64_copy_of_the_input(row_backend: str) -> None:
    rows, classes = 8000, 500  # 16 MB of float32; a float64 copy of a block is 8 MB
    probs = _probs(rows, classes, np.float32, seed=9, alpha=1.0)
    labels = np.random.default_rng(9).integers(0, classes, size=rows)
    state = crossent.EvaluationState(classes)
    calls = {
        "nll": lambda: crossent.negative_log_likelihood(probs, labels),
        "brier": lambda: crossent.brier_score(probs, labels),
        "ece": lambda: crossent.calibration_error(probs, labels),
        "state": lambda: state.update(probs, labels),
    }
    for name, call in calls.items():
        call()  # compile and warm up
        tracemalloc.start()
        call()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # per-row results (a few float64 values per row) and the NumPy twin's 512 KiB
        # blocks, never a float64 copy of the matrix or of 1 MiB-entry blocks
        assert peak < 6 * 2**20, (name, peak / 2**20)


@pytest.mark.parametrize("bins", [1, 2, 3, 7, 10, 15, 100, 1000])
@pytest.mark.parametrize("closed", ["left", "right"])
def test_issue13_uniform_bins_by_arithmetic_equal_the_search(bins: int, closed: str) -> None:
    edges = uniform_edges(bins)
    rng = np.random.default_rng(bins)
    confidence = np.concatenate(
        [
            rng.random(20000),
            edges,  # exactly on every edge, and one ulp either side
            np.nextafter(edges, -1.0),
            np.nextafter(edges, 2.0),
            [0.0, 1.0, -0.5, 1.5, np.nan, -np.inf, np.inf],  # unchecked input
        ]
    )
    np.testing.assert_array_equal(
        assign_uniform_bins(confidence, bins, closed), assign_bins(confidence, edges, closed)
    )


@pytest.mark.parametrize("label", [-5, 3, 1000])
def test_issue13_unchecked_labels_out_of_range_never_read_outside_the_row(
    row_backend: str, label: int
) -> None:
    probs = _probs(10, 3, np.float32, seed=1)
    labels = np.zeros(10, dtype=int)
    labels[4] = label
    # the labels' InputError whatever validate says (labelsafe: it was an IndexError)
    with pytest.raises(InputError, match=rf"\(row 4 has {label}\)"):
        crossent.negative_log_likelihood(probs, labels, validate=False)


def test_issue13_negative_unchecked_labels_are_refused(row_backend: str) -> None:
    """A label -1 with ``validate=False`` is an error, not the last class (labelsafe:
    it was read as NumPy's indexing reads it, a silent wrong number)."""
    probs = _probs(10, 3, np.float64, seed=1)
    labels = np.full(10, -1)
    with pytest.raises(InputError, match=r"\(row 0 has -1\)"):
        crossent.negative_log_likelihood(probs, labels, validate=False, reduction="none")
