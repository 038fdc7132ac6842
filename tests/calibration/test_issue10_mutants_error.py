"""Issue 10, "Tests that let bugs through": tests that kill mutants of ``calibration/_error.py``.

Mutants the existing tests let through (``tests/MUTATION.md``): the defaults of
:func:`crossent.calibration_error` and of :class:`crossent.CalibrationSpec`, the bin
counts of the presets (every preset test overrode ``bins``), the words of
:attr:`~crossent.CalibrationSpec.definition` for equal-mass bins and the debiased
estimator, the exact error messages, and fields of :class:`crossent.CalibrationError`.
Each test here was seen failing on the mutants it names.

The value oracle is written here: top-label confidences and hits from ``argmax``, bins
``[a, b)`` with the last closed by direct comparison, Guo et al. (2017)'s L1 sum.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import crossent
from crossent import CalibrationSpec

from tolerances import SUM

RNG = np.random.default_rng(2017)


def _probs(n: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    logits = rng.normal(size=(n, classes)) * 2.0
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def _guo_l1(confidence: np.ndarray, hits: np.ndarray, bins: int) -> float:
    """Guo et al. (2017): sum over bins [a, b) (the last closed) of n_b/n |acc - conf|."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for b in range(bins):
        upper = confidence <= edges[b + 1] if b == bins - 1 else confidence < edges[b + 1]
        members = (confidence >= edges[b]) & upper
        if members.any():
            gap = hits[members].mean() - confidence[members].mean()
            total += members.sum() / confidence.size * abs(gap)
    return total


DEFAULT = {
    "scope": "top-label",
    "norm": "l1",
    "binning": "uniform",
    "bins": 15,
    "closed": "left",
    "estimator": "plug-in",
}


def test_issue10_kills_defaults_of_calibration_error_and_spec() -> None:
    # Mutants: every default of ``calibration_error`` (bins 16, debias True, renormalize
    # True, misspelt strings) and of ``CalibrationSpec``'s fields.
    p = _probs(400, 4, RNG)
    labels = RNG.integers(0, 4, size=400)
    result = crossent.calibration_error(p, labels)
    assert result.spec == CalibrationSpec(**DEFAULT)
    assert CalibrationSpec() == CalibrationSpec(**DEFAULT)
    assert result.renormalized is None
    confidence = p.max(axis=1)
    hits = (p.argmax(axis=1) == labels).astype(np.float64)
    assert result.value == pytest.approx(_guo_l1(confidence, hits, 15), **SUM.rel_abs())


PRESET_SPECS = {
    "guo2017": {},
    "torchmetrics-multiclass": {},
    "torchmetrics-binary": {"scope": "positive-class"},
    "sklearn": {"bins": 5, "scope": "positive-class", "closed": "right"},
    "netcal": {"bins": 10},
}


@pytest.mark.parametrize("name", list(PRESET_SPECS))
def test_issue10_kills_preset_definitions(name: str) -> None:
    # Mutants: the presets' bin counts (15, 15, 15, 5, 10 as documented; the tests of
    # the presets overrode them) and their other keys and values.
    p = _probs(50, 2, RNG)
    labels = RNG.integers(0, 2, size=50)
    result = crossent.calibration_error(p, labels, **crossent.CALIBRATION_PRESETS[name])
    assert result.spec == CalibrationSpec(**{**DEFAULT, **PRESET_SPECS[name]})


def test_issue10_kills_guo2017_preset_value() -> None:
    p = _probs(300, 5, RNG)
    labels = RNG.integers(0, 5, size=300)
    got = crossent.calibration_error(p, labels, **crossent.CALIBRATION_PRESETS["guo2017"])
    hits = (p.argmax(axis=1) == labels).astype(np.float64)
    assert got.value == pytest.approx(_guo_l1(p.max(axis=1), hits, 15), **SUM.rel_abs())


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (
            {"binning": "quantile", "bins": 3},
            "L1 calibration error, top-label (confidence = max_k p_k, hit = argmax is the "
            "label), 3 equal-mass bins [a, b) with the last bin closed, plug-in estimator",
        ),
        (
            {"norm": "l2", "debias": True, "bins": 5},
            "L2 calibration error, top-label (confidence = max_k p_k, hit = argmax is the "
            "label), 5 equal-width bins [a, b) with the last bin closed, debiased estimator",
        ),
        (
            {"norm": "max", "closed": "right", "bins": 2},
            "MAX calibration error, top-label (confidence = max_k p_k, hit = argmax is the "
            "label), 2 equal-width bins (a, b] with the first bin closed, plug-in estimator",
        ),
    ],
)
def test_issue10_kills_definition_words(options: dict, words: str) -> None:
    # Mutants of ``CalibrationSpec.definition``: "equal-mass", "[a, b) ...", the
    # estimator's name, each part wrapped in ``XX...XX``.
    p = np.array([[0.7, 0.3], [0.4, 0.6], [0.9, 0.1], [0.2, 0.8]])
    result = crossent.calibration_error(p, [0, 1, 1, 1], **options)
    assert result.spec.definition == words


def test_issue10_kills_result_repr_and_streaming_renormalized() -> None:
    # Mutants: ``field(repr=True)`` for ``edges`` / ``statistics`` (the repr of a result
    # is one line: its value and definition), ``renormalized`` defaulting to "" (the
    # streaming state's results never renormalize: None).
    result = crossent.calibration_error([[0.7, 0.3]], [1])
    assert repr(result) == (
        "CalibrationError(value=0.7, spec=CalibrationSpec(scope='top-label', norm='l1', "
        "binning='uniform', bins=15, closed='left', estimator='plug-in'), n=1, "
        "renormalized=None)"
    )
    state = crossent.EvaluationState(2)
    state.update(np.array([[0.7, 0.3]]), np.array([1]))
    assert state.calibration().renormalized is None


@pytest.mark.parametrize(
    ("probs", "options", "message"),
    [
        (
            [[0.7, 0.3]],
            {"scope": "top"},
            "`scope` must be 'top-label', 'class-wise' or 'positive-class'; got 'top'",
        ),
        ([[0.7, 0.3]], {"debias": 1}, "`debias` must be True or False; got 1"),
        (
            [[0.7, 0.3]],
            {"debias": True},
            "`debias=True` is defined for norm='l2' only (Kumar et al. 2019); got norm='l1'",
        ),
        (
            [[0.7, 0.2, 0.1]],
            {"scope": "positive-class"},
            "`scope='positive-class'` needs a binary problem (2 classes); got 3 classes. "
            "Use 'top-label' or 'class-wise'.",
        ),
        (
            np.zeros((0, 3)),
            {},
            "`probs` has 0 rows; a calibration error needs at least one example",
        ),
    ],
)
def test_issue10_kills_option_messages_are_exact(
    probs: object, options: dict, message: str
) -> None:
    # Mutants: each message wrapped in ``XX...XX`` (the old tests matched a substring).
    labels = np.zeros(len(probs), np.intp)  # type: ignore[arg-type]
    # (debias=1 is an InputTypeError: test_hostile_api2_flag_types)
    errors = (crossent.InputError, crossent.InputTypeError)
    with pytest.raises(errors, match=f"^{re.escape(message)}$"):
        crossent.calibration_error(probs, labels, **options)
