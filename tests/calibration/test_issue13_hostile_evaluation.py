"""Issue 13, the hostile pass over the evaluation API: what it broke, pinned.

* ``compare_log_loss`` of a 1-D binary model (``P(y = 1)``) against the same model's two
  columns ``[1 - p, p]`` refused the pair ("must have the same shape"), though
  ``as_predictions`` reads both as the same two classes; now the same numbers as two
  2-column (or two 1-D) models.
* ``calibration_error`` of 1-D input defaults to the top-label scope while
  ``crossent.report`` uses the positive class; both docstrings say so, pinned here.
* ``VectorScaling`` and ``PlattScaling`` stopped at L-BFGS-B's default tolerances
  (parameters ~1e-5 from the optimum); a Newton polish now brings them to the optimum
  of a float64 Newton reference (torch autograd's Hessian) within ~1e-9.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent


def _binary(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pa, pb = rng.uniform(0.02, 0.98, size=n), rng.uniform(0.02, 0.98, size=n)
    labels = (rng.uniform(size=n) < pa).astype(np.int64)
    return pa, pb, labels


@pytest.mark.parametrize("form", ["probs", "logits"])
@pytest.mark.parametrize("which", ["a", "b"])
def test_compare_log_loss_1d_faces_its_two_columns(form: str, which: str) -> None:
    """A 1-D model against a 2-column one: the numbers of both 2-column (and both 1-D)."""
    pa, pb, labels = _binary()
    if form == "logits":
        pa, pb = np.log(pa) - np.log1p(-pa), np.log(pb) - np.log1p(-pb)
        column = np.zeros_like
    else:
        column = lambda p: 1.0 - p  # noqa: E731
    two_a = np.stack([column(pa), pa], axis=1)
    two_b = np.stack([column(pb), pb], axis=1)
    options = {"form_a": form, "form_b": form, "resamples": 200, "seed": 3}
    expected = crossent.compare_log_loss(two_a, two_b, labels, **options)
    one_d = crossent.compare_log_loss(pa, pb, labels, **options)
    mixed = (
        crossent.compare_log_loss(pa, two_b, labels, **options)
        if which == "a"
        else crossent.compare_log_loss(two_a, pb, labels, **options)
    )
    assert mixed == expected
    assert one_d == expected


def test_compare_log_loss_still_refuses_different_classes() -> None:
    pa, _, labels = _binary(20)
    three = np.full((20, 3), 1.0 / 3.0)
    message = r"same shape \(n, classes\).*\(20,\) and \(20, 3\)"
    with pytest.raises(crossent.InputError, match=message):
        crossent.compare_log_loss(pa, three, labels)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda p, y: crossent.negative_log_likelihood(p, y), "probs"),
        (lambda p, y: crossent.calibration_error(p, y, form="log_probs"), "log_probs"),
        (lambda p, y: crossent.EvaluationState(2).update(p, y), "probs"),
        (lambda p, y: crossent.compare_log_loss(p, p, y), "probs_a"),
    ],
)
def test_labels_of_another_length_name_the_predictions_as_given(call: object, name: str) -> None:
    """The labels' shape message named `logits` (the losses' wording) for every input."""
    with pytest.raises(crossent.InputError, match=rf"batch shape of `{name}` \(2,\)"):
        call(np.full((2, 2), 0.5), [0, 1, 0])  # type: ignore[operator]


def test_binary_1d_default_scope_differs_from_the_reports_as_documented() -> None:
    """calibration_error of 1-D P(y = 1) bins max(p, 1 - p) (top-label, its default for
    every input); crossent.report bins p against [label = 1]; both docstrings say so."""
    p, _, labels = _binary(400, seed=2)
    p = np.round(p, 3)  # (no confidence within an ulp of an edge)
    two = np.stack([1.0 - p, p], axis=1)
    default = crossent.calibration_error(p, labels)
    assert default.spec.scope == "top-label"
    assert default.value == crossent.calibration_error(two, labels).value
    # brute force: 15 bins [a, b) of max(p, 1 - p) against [argmax = label]
    conf, hit = np.maximum(p, 1.0 - p), ((p >= 0.5) == (labels == 1)).astype(float)
    index = np.minimum((conf * 15).astype(int), 14)
    top = sum(abs(hit[index == b].sum() - conf[index == b].sum()) for b in range(15)) / p.size
    assert default.value == pytest.approx(top, rel=1e-12)
    positive = crossent.calibration_error(p, labels, scope="positive-class")
    index = np.minimum((p * 15).astype(int), 14)
    by_hand = sum(abs(labels[index == b].sum() - p[index == b].sum()) for b in range(15))
    assert positive.value == pytest.approx(by_hand / p.size, rel=1e-12)
    assert positive.value != pytest.approx(default.value, rel=1e-3)
    ece = crossent.report(p, labels, resamples=5).to_dict()["ece"]
    assert ece["scope"] == "positive-class"
    assert ece["value"] == positive.value
    same = crossent.report(p, labels, resamples=5, scope="top-label").to_dict()["ece"]
    assert same["value"] == default.value
    for function in (crossent.calibration_error, crossent.report):
        assert "positive-class" in function.__doc__
        assert "top-label" in function.__doc__
        assert "max(p, 1 - p)" in function.__doc__
