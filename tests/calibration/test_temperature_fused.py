"""Temperature scaling's fused pass (``calibration/_temperature_numba.py``) and its memo.

``crossent report`` on language-model outputs (10^4 x 50 000 float32 logits) spent most
of its time in the temperature fit and the cross-fitted recalibration gap: each Newton
step made about ten NumPy passes over a float64 copy of every block of logits.  The
fused pass reads the stored float32 (or float64) rows in place, once a step, with an
exponential of its own (fdlibm's, written as arithmetic so that it vectorises), and
:class:`RowMemo` spares the cross-fitting's folds the passes at T = 1 and at the
bounds.  Pinned here: the exponential against mpmath; the rows' numbers against the
NumPy twin (``_numpy_rows``) on hard rows (peaked, flat, ties, 2 classes, ``-inf``
logits, weights in the subnormals, NaN); the fitted temperature against the twin and
against SciPy's ``minimize_scalar`` on the float64 NLL; no float64 copy of the logits;
the memo's sums bit for bit, with fewer passes.
"""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import mpmath
import numpy as np
import pytest

from crossent._read_only import read_only
from crossent.calibration import _row_kernels, _temperature
from crossent.calibration._inputs import as_predictions
from numba_cache_harness import CacheRuns, register, section_output

from tolerances import ROUNDING, SOLVER, ulps_apart

pytest.importorskip("numba")
from crossent.calibration import _temperature_numba

_BOUNDS = (0.05, 20.0)

_CACHE_SCRIPT = """
import hashlib
import json

import numpy as np

from crossent.calibration import _temperature
from crossent.calibration._inputs import as_predictions

digests = {}
for dtype in (np.float32, np.float64):
    for classes in (2, 255, 1000, 5003):
        rng = np.random.default_rng(classes)
        z = (rng.normal(size=(40, classes)) * 4).astype(dtype)
        z[0, 1] = -np.inf
        z[1, 1:] = -rng.uniform(700.0, 760.0, size=classes - 1)  # subnormal weights
        y = rng.integers(1, classes, 40) if classes > 2 else np.ones(40, np.intp)
        frozen = z.copy()
        frozen.flags.writeable = False  # (a memory-mapped file: a read-only array)
        for name, values in (("writeable", z), ("read-only", frozen)):
            predictions = as_predictions(values, y, form="logits", validate=False)
            moments = [_temperature._moments(predictions, b) for b in (0.05, 0.7, 1.0, 20.0)]
            beta = _temperature._fit_beta(predictions, (0.05, 20.0), 1e-10).beta
            bits = np.array([*np.ravel(moments), beta]).tobytes()
            key = f"{np.dtype(dtype).name}/{classes}/{name}"
            digests[key] = hashlib.sha1(bits).hexdigest()[:16]
kernel = _temperature._kernels().row_moments
stats = [
    len(kernel.signatures),
    sum(kernel.stats.cache_hits.values()),
    sum(kernel.stats.cache_misses.values()),
]
print(json.dumps({"digests": digests, "stats": stats}))
"""

register("temperature_bits", _CACHE_SCRIPT)


def _sample(rng: np.random.Generator, scores: np.ndarray) -> np.ndarray:
    """A label for each row drawn from softmax(scores)."""
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random((scores.shape[0], 1))
    return np.minimum((p.cumsum(axis=1) < u).sum(axis=1), scores.shape[1] - 1)


def _hard_rows() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Logits and labels on which the fused pass and its twin could part."""
    rng = np.random.default_rng(7)
    cases: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    z = rng.normal(size=(24, 5003)) * 3  # 5003: a partial last stretch of lanes
    cases["normal float32"] = (z.astype(np.float32), rng.integers(0, 5003, 24))
    z = rng.normal(size=(30, 700))
    z[np.arange(30), rng.integers(0, 700, 30)] += 60.0  # one logit far above the rest
    cases["peaked"] = (z, rng.integers(0, 700, 30))
    cases["flat"] = (rng.normal(size=(30, 3001)) * 1e-3, rng.integers(0, 3001, 30))
    z = rng.integers(-2, 2, size=(40, 300)).astype(np.float64)  # many tied maxima
    cases["ties"] = (z, rng.integers(0, 300, 40))
    cases["two classes"] = (rng.normal(size=(50, 2)) * 4, rng.integers(0, 2, 50))
    z = rng.normal(size=(20, 1000)) * 3
    z[:, ::3] = -np.inf  # probability 0 (never a label here)
    cases["-inf logits"] = (z, 1 + 3 * rng.integers(0, 333, 20))
    z = np.zeros((6, 600))
    z[:, 1:] = -rng.uniform(700.0, 760.0, size=(6, 599))  # e^(beta s) in the subnormals
    z[:, 5] = -1e300  # far below: weight 0
    cases["subnormal weights"] = (z, np.full(6, 2))
    z = np.zeros((6, 500))
    z[:, 1:] = -rng.uniform(709.0, 745.0, size=(6, 499))  # all of them just below e^-708
    cases["subnormal weights only"] = (z, np.full(6, 3))
    z = np.full((3, 4), -1e308)
    z[:, 0] = 1e308  # z - max overflows to -inf: weight 0, as NumPy's
    cases["overflowing shift"] = (z, np.zeros(3, np.intp))
    return cases


def _fused_rows(z: np.ndarray, y: np.ndarray, beta: float) -> np.ndarray:
    out = np.empty((4, z.shape[0]))
    lanes, weights = np.empty((5, _temperature._LANES)), np.empty(z.shape[1])
    rows = np.arange(z.shape[0], dtype=np.intp)
    # values and labels read-only, as _temperature._fused_parts hands them (the
    # specialisation the library compiles, not one more)
    labels = read_only(y.astype(np.intp))
    _temperature_numba.row_moments(read_only(z), rows, labels, beta, lanes, weights, out)
    return out


@pytest.mark.parametrize("case", list(_hard_rows()))
@pytest.mark.parametrize("beta", [0.05, 0.7, 1.0, 20.0])
def test_fused_rows_agree_with_the_numpy_twin(case: str, beta: float) -> None:
    z, y = _hard_rows()[case]
    fused = _fused_rows(z, y, beta)
    twin = np.array(_temperature._numpy_rows(z.astype(np.float64), y, "logits", beta))
    np.testing.assert_array_equal(fused[3], twin[3])  # s_y: one subtraction, exact
    # S >= 1 and E, V of a few units: relative rounding; E of a peaked row is tiny but
    # formed from the same terms, so relative too (subnormal E: atol of one subnormal)
    np.testing.assert_allclose(fused[:3], twin[:3], rtol=ROUNDING.rtol, atol=2.0**-1074)


def test_a_nan_logit_makes_its_row_nan_in_both() -> None:
    z = np.random.default_rng(0).normal(size=(3, 300)).astype(np.float32)
    z[1, 17] = np.nan
    fused = _fused_rows(z, np.zeros(3, np.intp), 1.0)
    twin = np.array(
        _temperature._numpy_rows(z.astype(np.float64), np.zeros(3, np.intp), "logits", 1.0)
    )
    assert np.isnan(fused[:3, 1]).all()
    assert np.isnan(twin[:3, 1]).all()
    np.testing.assert_allclose(fused[:, [0, 2]], twin[:, [0, 2]], rtol=ROUNDING.rtol)


def test_fdlibm_exp_is_within_one_ulp_of_mpmath() -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate(
        [
            -rng.uniform(0.0, 746.0, 3000),
            -rng.uniform(0.0, 1.0, 500),
            -rng.exponential(1e-9, 200),
            -rng.uniform(708.0, 745.2, 500),  # subnormal results
            [0.0, -0.0, -1e-300, -708.0, -708.4, -745.13, -745.14, -746.0, -800.0],
        ]
    )
    got = np.empty_like(x)
    _temperature_numba.exp_array(x, got)
    with mpmath.workdps(50):
        exact = np.array([float(mpmath.exp(mpmath.mpf(float(v)))) for v in x])
    assert ulps_apart(got, exact, "float64").max() <= 1.0  # measured 1 (0.73 from the truth)
    special = np.array([-np.inf, np.nan])
    out = np.empty(2)
    _temperature_numba.exp_array(special, out)
    assert out[0] == 0.0
    assert np.isnan(out[1])


def _fit(z: np.ndarray, y: np.ndarray, form: str, numpy_twin: bool, xtol: float = 1e-10) -> float:
    predictions = as_predictions(z, y, form=form, validate=False)
    with pytest.MonkeyPatch.context() as patch:
        if numpy_twin:
            patch.setattr(_row_kernels, "available", lambda: False)
        assert (_temperature._fused_kernel(predictions) is None) == numpy_twin
        return 1.0 / _temperature._fit_beta(predictions, _BOUNDS, xtol).beta


def _scipy_temperature(z: np.ndarray, y: np.ndarray) -> float:
    """The oracle: SciPy's bounded scalar minimiser on the float64 mean NLL of
    softmax(beta z), beta in [1/T_max, 1/T_min]."""
    optimize = pytest.importorskip("scipy.optimize")
    special = pytest.importorskip("scipy.special")
    z = np.asarray(z, dtype=np.float64)
    label_z = z[np.arange(z.shape[0]), y]

    def nll(beta: float) -> float:
        return float(np.mean(special.logsumexp(beta * z, axis=1) - beta * label_z))

    found = optimize.minimize_scalar(
        nll, bounds=(1 / _BOUNDS[1], 1 / _BOUNDS[0]), method="bounded", options={"xatol": 1e-12}
    )
    return 1.0 / float(found.x)


def _fit_cases() -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    rng = np.random.default_rng(11)
    cases: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}
    z = rng.normal(size=(1500, 400)) * 2
    y = _sample(rng, z)
    cases["overconfident float32"] = ((2.5 * z).astype(np.float32), y, "logits")
    cases["underconfident"] = (0.4 * z, y, "logits")
    scaled = 1.5 * z - np.log(np.exp(1.5 * z).sum(axis=1, keepdims=True))
    cases["log-probs"] = (scaled, y, "log_probs")
    z = rng.normal(size=(1500, 60)) * 30
    cases["peaked"] = (z, _sample(rng, z / 10), "logits")
    z = rng.normal(size=(800, 4000)) * 0.05
    cases["flat"] = (z.astype(np.float32), _sample(rng, z * 5), "logits")
    z = rng.integers(-3, 3, size=(2000, 20)).astype(np.float64)
    cases["ties"] = (z, _sample(rng, z * 0.8), "logits")
    z = rng.normal(size=(4000, 2)) * 3
    cases["two classes"] = (z, _sample(rng, z / 2), "logits")
    z = rng.normal(size=(1000, 300)) * 3
    z[:, ::7] = -np.inf
    y = _sample(rng, np.where(np.isinf(z), -np.inf, z / 2))
    cases["-inf logits"] = (z, y, "logits")
    return cases


#: The names of ``_fit_cases()``, in its order: written out, so that collecting this module
#: does not build the cases' 2.7 million logits (0.33 s of each pytest-xdist worker's
#: collection CPU) only to read their names; each test checks the list against the builder.
_FIT_CASE_NAMES = (
    "overconfident float32",
    "underconfident",
    "log-probs",
    "peaked",
    "flat",
    "ties",
    "two classes",
    "-inf logits",
)


@pytest.mark.parametrize("case", _FIT_CASE_NAMES)
def test_fitted_temperature_agrees_with_the_twin_and_scipy(case: str) -> None:
    cases = _fit_cases()
    assert tuple(cases) == _FIT_CASE_NAMES  # (a case added to the builder is named above)
    z, y, form = cases[case]
    fused, twin = _fit(z, y, form, False), _fit(z, y, form, True)
    # the same Newton steps from moments a few roundings apart (measured: 0 to 1.1e-16)
    assert fused == ROUNDING.approx(twin)
    assert 1 / _BOUNDS[1] < 1 / fused < 1 / _BOUNDS[0]  # interior: the oracle's optimum
    assert fused == SOLVER.approx(_scipy_temperature(z, y))


@pytest.mark.parametrize("step", ["moments", "misses", "label check"])
def test_the_passes_over_the_logits_make_no_float64_copy(step: str) -> None:
    rng = np.random.default_rng(5)
    z = rng.normal(size=(40, 50_000)).astype(np.float32)  # 8 MB; 2 blocks of 20 rows
    predictions = as_predictions(z, rng.integers(0, 50_000, 40), form="logits", validate=False)
    run = {
        "moments": lambda: _temperature._moments(predictions, 0.5),
        "misses": lambda: _temperature._misses(predictions),
        "label check": lambda: _temperature._check_finite_label_scores(predictions),
    }[step]
    run()  # (compiled or loaded before measuring)
    tracemalloc.start()
    try:
        run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # NumPy's passes copied each block to float64 (8 MB a block, one per thread: 30 MiB
    # measured for the moments); the fused pass keeps one row's weights (400 KB) per
    # block, the misses read the stored block, the label check the labels' entries
    assert peak < 2 * 2**20


def _counted(patch: pytest.MonkeyPatch) -> list[int]:
    """Count the rows the fused kernel reads (patched into _fused_kernel's result)."""
    rows_read = [0]
    kernel = _temperature._kernels().row_moments

    def counting(values: Any, rows: np.ndarray, *args: Any) -> Any:
        rows_read[0] += rows.shape[0]
        return kernel(values, rows, *args)

    patch.setattr(_temperature, "_fused_kernel", lambda predictions: counting)
    return rows_read


@pytest.mark.parametrize("planted", ["at a bound", "interior"])
def test_the_memo_gives_the_same_sums_with_fewer_passes(planted: str) -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(size=(600, 300)) * 3
    y = rng.integers(0, 300, 600) if planted == "at a bound" else _sample(rng, z / 2)
    predictions = as_predictions(z, y, form="logits", validate=False)
    options: dict[str, Any] = {"folds": 2, "seed": 0, "bounds": _BOUNDS, "xtol": 1e-8}
    with pytest.MonkeyPatch.context() as patch:
        plain_reads = _counted(patch)
        plain_fit = _temperature._fit_beta(predictions, _BOUNDS, 1e-10)
        plain = _temperature.cross_fitted_nll(predictions, **options)
    with pytest.MonkeyPatch.context() as patch:
        memo_reads = _counted(patch)
        memo = _temperature.RowMemo.for_fits(predictions, _BOUNDS)
        assert memo is not None
        memo_fit = _temperature._fit_beta(predictions, _BOUNDS, 1e-10, memo)
        kept = _temperature.cross_fitted_nll(predictions, **options, memo=memo)
    assert (memo_fit, kept) == (plain_fit, plain)  # bit for bit
    assert plain_fit.bound == (planted == "at a bound")
    n = predictions.n
    if planted == "at a bound":  # the folds' passes (3 half passes each) from the memo
        assert memo_reads[0] == plain_reads[0] - 3 * n
    else:  # at least each fold's first step (T = 1), and any bound both fits evaluated
        assert memo_reads[0] <= plain_reads[0] - n


def test_a_memo_of_other_values_is_not_used() -> None:
    rng = np.random.default_rng(4)
    z = rng.normal(size=(50, 300))
    y = rng.integers(0, 300, 50)
    one = as_predictions(z, y, form="logits", validate=False)
    other = as_predictions(1.3 * z, y, form="logits", validate=False)
    memo = _temperature.RowMemo.for_fits(one, _BOUNDS)
    assert memo is not None
    _temperature._moments(one, 1.0, memo)
    assert _temperature._moments(other, 1.0, memo) == _temperature._moments(other, 1.0)


def test_a_memo_without_the_fit_on_all_rows_keeps_nothing_of_the_folds() -> None:
    # cross-fitting alone: the folds' rows are never kept (a subset's rows are not all
    # rows), and the sums are those without a memo
    rng = np.random.default_rng(6)
    z = rng.normal(size=(400, 300)) * 3
    predictions = as_predictions(z, _sample(rng, z / 2), form="logits", validate=False)
    options: dict[str, Any] = {"folds": 3, "seed": 1, "bounds": _BOUNDS, "xtol": 1e-8}
    memo = _temperature.RowMemo.for_fits(predictions, _BOUNDS)
    assert memo is not None
    kept = _temperature.cross_fitted_nll(predictions, **options, memo=memo)
    assert kept == _temperature.cross_fitted_nll(predictions, **options)
    assert memo.rows == {}


def test_the_fused_pass_gives_the_same_bits_compiled_or_loaded_from_the_cache(
    numba_cache_runs: CacheRuns,
) -> None:
    # one function, its helpers inlined by Numba, no reassociation: the kernel loaded
    # from Numba's disk cache in a new process is the one compiled (the moments at four
    # temperatures and the fitted one, float32 and float64, writeable and read-only)
    cold, warm = (
        json.loads(out.strip().splitlines()[-1])
        for out in section_output(numba_cache_runs, "temperature_bits")
    )
    assert warm["digests"] == cold["digests"]
    signatures, hits, misses = warm["stats"]
    # float32 and float64: the writeable and the read-only logits share one (each is
    # handed to the kernel read-only; 4 before)
    assert signatures == 2
    assert (hits, misses) == (signatures, 0)
