"""Issue 13, a hostile evaluator's pass over the evaluation API (branch hostileeval5):
inputs that gave a wrong number with no error, or an error not crossent's.

* ``crossent.report`` took class names given twice (``class_names=["b", "b"]``, or a
  DataFrame with two columns named alike) and read a string label naming them as the
  last such class, by guess: NLL 1.1473 where the first class gives 0.7419 (the CLI
  already refused a repeated CSV column).
* ``VectorScaling().fit`` on one class raised SciPy's ValueError ("Invalid input for
  linprog") from its separation test; one class is a finite fit (the NLL is 0 at every
  point), the identity.
* ``EvaluationState.compute().calibration.statistics`` (and ``calibration()``'s) were
  the state's own sums, writable: a plot's counts normalised in place rewrote the state,
  whose next calibration error was 145.17. They are read-only views now (a snapshot:
  the state replaces its sums, never writes ones it handed out).
* ``crossent.report(preset=...)`` read the public ``CALIBRATION_PRESETS`` dict, so a
  caller's change to it (``kw = CALIBRATION_PRESETS["sklearn"]; kw.update(norm="max")``)
  changed what ``preset="sklearn"`` computed, still labelled "sklearn".
* A ``Report`` held the caller's label and id arrays themselves: a buffer refilled for
  the next data set changed them under the first report, and ``compare_reports``'
  check of the same examples passed on different ones.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import crossent
from crossent.errors import InputError

_PROBS = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])


@pytest.mark.parametrize(
    "labels", [np.array(["b", "b", "b"]), np.array([0, 1, 0])], ids=["names", "positions"]
)
def test_report_refuses_class_names_given_twice(labels: np.ndarray) -> None:
    # Which class "b" is cannot be told: the first gives -mean(log [0.9, 0.2, 0.6]) =
    # 0.7419..., the last 1.1473...; there is no right number to give
    with pytest.raises(InputError, match=r"class 0 and class 1 alike \('b'\)"):
        crossent.report(_PROBS, labels, class_names=["b", "b"], resamples=5)


def test_report_refuses_frame_columns_named_alike() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(_PROBS, columns=["b", "b"])
    with pytest.raises(InputError, match=r"columns name class 0 and class 1 alike"):
        crossent.report(frame, np.array(["b", "b", "b"]), resamples=5)


def test_report_distinct_names_still_read_by_name() -> None:
    # the guard must not refuse distinct names: "b" is column 0 here, "a" column 1
    got = crossent.report(
        _PROBS, np.array(["b", "a", "b"]), class_names=["b", "a"], resamples=5
    ).to_dict()["nll_nats"]
    want = -np.mean(np.log([0.9, 0.8, 0.6]))
    assert got == pytest.approx(want, rel=1e-15)


def test_vector_scaling_one_class_is_the_identity_not_a_scipy_error() -> None:
    # one class: softmax of one column is 1 whatever the scale and bias, so the NLL is 0
    # at every point and a finite fit exists (the start, scale 1, bias 0), as
    # TemperatureScaling keeps T = 1; main raised SciPy's "Invalid input for linprog"
    scores = np.random.default_rng(0).normal(size=(5, 1))
    fit = crossent.VectorScaling().fit(scores, np.zeros(5, dtype=np.int64))
    assert (fit.separated_, fit.converged_) == (False, True)
    assert fit.scale_.tolist() == [1.0]
    assert fit.bias_.tolist() == [0.0]
    assert fit.transform(np.array([[3.0], [-2.0]])).tolist() == [[1.0], [1.0]]


def test_equal_mass_edges_are_the_exact_quantiles() -> None:
    # The documented difference from scikit-learn's calibration_curve (CALIBRATION_PRESETS,
    # "sklearn"): the 1/3 quantile of 7 points is the third point, 0.3 itself (linear
    # interpolation at position 6 / 3 = 2), so with (a, b] bins 0.3 is in the first bin.
    # Passes on main; guards the mutant np.percentile(p, levels * 100), scikit-learn's
    # edges, which put e_1 at 0.29999999999999993 and the counts at 2, 3, 2.
    p1 = np.array([0.05, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9])
    labels = np.array([0, 0, 1, 0, 1, 1, 1])
    diagram = crossent.reliability_diagram(
        p1, labels, bins=3, binning="quantile", scope="positive-class", closed="right"
    )
    assert diagram.upper[0] == 0.3
    assert diagram.count.tolist() == [3, 2, 2]
    assert diagram.accuracy[0] == pytest.approx(1 / 3, rel=1e-15)


@pytest.mark.parametrize(
    "options",
    [{}, {"scope": "class-wise"}, {"bins": 10, "closed": "right"}],
    ids=["top-label", "class-wise", "right-closed"],
)
def test_state_results_do_not_share_writable_sums(options: dict) -> None:
    # compute().calibration.statistics were the state's own sums: a plot's counts
    # normalised in place (count /= count.sum()) rewrote them, and the state's next
    # calibration error was 145.17 (top-label; 308.2 class-wise), far past its bound 1
    rng = np.random.default_rng(48)
    probs, labels = rng.dirichlet(np.ones(3), 500), rng.integers(0, 3, 500)
    state = crossent.EvaluationState(3, **options).update(probs, labels)
    result = state.compute().calibration
    value, counts = result.value, result.statistics.count.copy()
    with contextlib.suppress(ValueError):  # (read-only: NumPy refuses the write)
        result.statistics.count[...] /= result.statistics.count.sum()
    assert state.calibration().value == value
    # and the result stays what it was when the state sees more (a snapshot)
    state.update(probs[::-1], labels[::-1])
    assert np.array_equal(result.statistics.count, counts)
    assert state.calibration().statistics.count.sum() == 1000 * (3 if "scope" in options else 1)


def test_report_preset_is_the_preset_whatever_became_of_the_public_dict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # CALIBRATION_PRESETS is a plain dict, the caller's to use; the report read it, so a
    # caller's variant (kw = CALIBRATION_PRESETS["sklearn"]; kw.update(...)) made
    # preset="sklearn" compute 20 bins of the max norm, still labelled "sklearn"
    rng = np.random.default_rng(0)
    p1 = rng.uniform(size=300)
    labels = (rng.uniform(size=300) < p1).astype(np.int64)
    monkeypatch.setitem(crossent.CALIBRATION_PRESETS["sklearn"], "norm", "max")
    monkeypatch.setitem(crossent.CALIBRATION_PRESETS["sklearn"], "bins", 20)
    ece = crossent.report(p1, labels, preset="sklearn", resamples=5).to_dict()["ece"]
    # scikit-learn's convention: 5 bins (a, b] on P(y = 1), L1
    want = crossent.calibration_error(
        p1, labels, bins=5, closed="right", scope="positive-class", norm="l1"
    )
    assert (ece["norm"], ece["preset"]) == ("l1", "sklearn")
    assert ece["definition"] == want.spec.definition
    assert ece["value"] == pytest.approx(want.value, rel=1e-12)


@pytest.mark.parametrize("refilled", ["labels", "ids"])
def test_report_keeps_its_own_labels_and_ids(refilled: str) -> None:
    # A report held the caller's label (and id) array itself: a buffer refilled for the
    # next data set changed the first report's labels too, and compare_reports' check
    # "the same examples" passed on two different data sets (a difference of 0.0448 nats
    # between models scored on other rows)
    rng = np.random.default_rng(52)
    labels = np.empty(200, dtype=np.int64)
    ids = np.empty(200, dtype=np.int64)
    labels[:] = rng.integers(0, 3, 200)
    reports = []
    for first_id in (0, 1000):
        if refilled == "labels":
            labels[:] = rng.integers(0, 3, 200)
        ids[:] = np.arange(first_id, first_id + 200)
        logits = rng.normal(size=(200, 3))
        reports.append(crossent.report(logits, labels, form="logits", ids=ids, resamples=5))
    assert reports[0].ids[0] == 0
    with pytest.raises(InputError, match=f"different {refilled}"):
        crossent.compare_reports(reports, resamples=10)
