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
    if form == "logits":
        assert mixed == expected
        assert one_d == expected
        return
    # a 1-D probability is scored from p itself, its label 0 by log(1 - p) unrounded
    # (branch binexact1); the two columns round 1 - p: an ulp or so apart
    for got in (mixed, one_d):
        assert (got.resamples, got.seed, got.confidence) == (200, 3, expected.confidence)
        for name in ("difference", "low", "high", "nll_a", "nll_b"):
            assert getattr(got, name) == pytest.approx(getattr(expected, name), rel=1e-14)


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


def _newton_reference(loss: object, start: np.ndarray, gauge: int = 0) -> np.ndarray:
    """Float64 Newton on ``loss`` (a torch function of the parameters) with torch
    autograd's gradient and Hessian, to the rounding of the gradient.  ``gauge`` > 0:
    the last ``gauge`` parameters are biases whose common shift the loss ignores; the
    reference picks those of sum 0 (the fit's documented choice)."""
    torch = pytest.importorskip("torch")
    theta = torch.tensor(start, dtype=torch.float64)
    flat = torch.zeros_like(theta)
    if gauge:
        flat[-gauge:] = 1.0 / np.sqrt(gauge)
        theta[-gauge:] -= theta[-gauge:].mean()
    for _ in range(50):
        g = torch.autograd.functional.jacobian(loss, theta)
        h = torch.autograd.functional.hessian(loss, theta) + torch.outer(flat, flat)
        step = torch.linalg.solve(h, -g)
        theta = theta + step
        if float(step.abs().max()) <= 1e-15 * (1.0 + float(theta.abs().max())):
            break
    return theta.numpy()


def _vector_data(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, classes)) * 2.0
    truth = 0.6 * z + rng.normal(size=classes) * 0.3
    p = np.exp(truth - truth.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = (rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
    return z, np.minimum(labels, classes - 1)


@pytest.mark.parametrize(("n", "classes", "seed"), [(300, 2, 0), (2000, 3, 1), (5000, 10, 2)])
def test_vector_scaling_reaches_the_newton_optimum(n: int, classes: int, seed: int) -> None:
    torch = pytest.importorskip("torch")
    from tolerances import POLISHED_FIT

    z, labels = _vector_data(n, classes, seed)
    fit = crossent.VectorScaling().fit(z, labels)
    scores, target = torch.tensor(z), torch.tensor(labels)

    def loss(theta: object) -> object:
        logits = scores * theta[:classes] + theta[classes:]  # type: ignore[index]
        return torch.nn.functional.cross_entropy(logits, target)

    start = np.concatenate([np.ones(classes), np.zeros(classes)])
    reference = _newton_reference(loss, start, gauge=classes)
    np.testing.assert_allclose(fit.scale_, reference[:classes], **POLISHED_FIT.tol())
    np.testing.assert_allclose(fit.bias_, reference[classes:], **POLISHED_FIT.tol())
    assert fit.converged_


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_platt_scaling_reaches_the_newton_optimum(seed: int) -> None:
    torch = pytest.importorskip("torch")
    from tolerances import POLISHED_FIT

    rng = np.random.default_rng(seed)
    s = rng.normal(size=4000) * 2.0
    labels = (rng.random(4000) < 1.0 / (1.0 + np.exp(-(0.5 * s - 0.3)))).astype(np.int64)
    fit = crossent.PlattScaling().fit(np.stack([np.zeros_like(s), s], axis=1), labels)
    odds, target = torch.tensor(s), torch.tensor(labels, dtype=torch.float64)

    def loss(theta: object) -> object:
        t = theta[0] * odds + theta[1]  # type: ignore[index]
        return torch.nn.functional.binary_cross_entropy_with_logits(t, target)

    reference = _newton_reference(loss, np.array([1.0, 0.0]))
    assert fit.slope_ == pytest.approx(reference[0], **POLISHED_FIT.rel_abs())
    assert fit.intercept_ == pytest.approx(reference[1], **POLISHED_FIT.rel_abs())


@pytest.mark.parametrize("factor", [1e-6, 1e6, 1e20])
def test_platt_fit_does_not_depend_on_the_scale_of_the_log_odds(factor: float) -> None:
    """Log-odds times c: the same model (slope / c, the same intercept).  On main L-BFGS-B
    stopped at the start (slope 1) for c = 1e-6, and at intercept 1.4e-21 (truth 0.106)
    for c = 1e20, both with converged_ True."""
    from tolerances import POLISHED_FIT

    rng = np.random.default_rng(0)
    s, labels = rng.normal(size=300), rng.integers(0, 2, size=300)
    base = crossent.PlattScaling().fit(np.stack([np.zeros_like(s), s], axis=1), labels)
    scaled = crossent.PlattScaling().fit(np.stack([np.zeros_like(s), s * factor], axis=1), labels)
    assert scaled.slope_ * factor == pytest.approx(base.slope_, **POLISHED_FIT.rel_abs())
    assert scaled.intercept_ == pytest.approx(base.intercept_, **POLISHED_FIT.rel_abs())
    assert scaled.converged_


@pytest.mark.parametrize("factor", [1e-3, 1e8])
def test_vector_fit_does_not_depend_on_the_scale_of_the_scores(factor: float) -> None:
    from tolerances import POLISHED_FIT

    z, labels = _vector_data(400, 3, 5)
    base = crossent.VectorScaling().fit(z, labels)
    scaled = crossent.VectorScaling().fit(z * factor, labels)
    np.testing.assert_allclose(scaled.scale_ * factor, base.scale_, **POLISHED_FIT.tol())
    np.testing.assert_allclose(scaled.bias_, base.bias_, **POLISHED_FIT.tol())


def test_scores_without_information_give_the_label_frequencies() -> None:
    """All scores 0: only the biases matter, and they are the centred log frequencies
    (Platt: the intercept is the log-odds of the positive rate)."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, size=60)
    fit = crossent.VectorScaling().fit(np.zeros((60, 3)), labels)
    log_frequency = np.log(np.bincount(labels, minlength=3) / 60)
    np.testing.assert_allclose(fit.bias_, log_frequency - log_frequency.mean(), rtol=1e-12)
    binary = rng.integers(0, 2, size=60)
    platt = crossent.PlattScaling().fit(np.zeros((60, 2)), binary)
    rate = binary.mean()
    assert platt.intercept_ == pytest.approx(np.log(rate / (1 - rate)), rel=1e-12)


def test_platt_fit_of_log_odds_past_float64_range_raises_no_numpy_warning() -> None:
    """Log-odds of 1e300: L-BFGS-B's trial points make inf - inf in the objective; its
    NumPy 'invalid value' warning became an error under -W error (the overflow one was
    already silenced).  Since stop 74 (platt2's profile fit) the fit converges: its log
    loss is at most the best slope-0 fit's (the labels' base rate), a point it could
    have stopped at."""
    import warnings

    rng = np.random.default_rng(0)
    s, labels = rng.normal(size=300) * 1e300, rng.integers(0, 2, size=300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = np.stack([np.zeros_like(s), s], axis=1)
        fit = crossent.PlattScaling().fit(scores, labels)
        probs = fit.transform(scores)
    assert fit.converged_
    rate = labels.mean()
    base_rate_loss = -(rate * np.log(rate) + (1 - rate) * np.log1p(-rate))
    fitted_loss = -np.mean(np.log(probs[np.arange(labels.size), labels]))
    assert fitted_loss <= base_rate_loss
