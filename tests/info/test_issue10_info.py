"""Regression tests for issue 10's items on the information measures and shared input checks."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import crossent

from conftest import Backend

# ----------------------------------------------------------------- item 8: KL near P = Q


def _exact_near_pairs(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of 5 dyadic probabilities k / 2^52 summing to exactly 1, and the same with each
    numerator moved by at most 8 (again summing to exactly 1): nearly equal, exactly
    normalised, so the true KL is positive and computable exactly."""
    rng = np.random.default_rng(seed)
    scale = 2**52
    k = rng.multinomial(scale - 5 * 2**40, np.ones(5) / 5, size=rows) + 2**40
    k[:, -1] = scale - k[:, :-1].sum(axis=1)
    d = rng.integers(-8, 9, size=(rows, 5))
    d[:, -1] = -d[:, :-1].sum(axis=1)
    return k / float(scale), (k + d) / float(scale)


def _kl_mpmath(p: np.ndarray, q: np.ndarray) -> float:
    with mpmath.workdps(60):
        return float(
            sum(
                mpmath.mpf(a) * mpmath.log(mpmath.mpf(a) / mpmath.mpf(b))
                for a, b in zip(p, q, strict=True)
            )
        )


@pytest.mark.parametrize(
    "measure",
    [
        crossent.kl_divergence,
        lambda p, q: crossent.cross_entropy_decomposition(p, q).kl_divergence,
    ],
)
def test_issue10_item8_kl_of_nearly_equal_distributions_is_positive_and_accurate(
    backend: Backend, measure: object
) -> None:
    p, q = _exact_near_pairs(60, seed=1)
    got = backend.to_numpy(measure(backend.asarray(p), backend.asarray(q)))  # type: ignore[operator]
    truth = np.array([_kl_mpmath(a, b) for a, b in zip(p, q, strict=True)])
    assert np.all(truth > 0)
    assert np.all(got > 0), got[got <= 0]
    # The sum of terms of about 1e-15 that cancel to about 1e-29: the summation alone
    # costs a few per cent; the old torch path was off by factors of 10^7.
    np.testing.assert_allclose(got, truth, rtol=0.25)


def test_issue10_item8_kl_terms_keep_relative_accuracy_near_one(backend: Backend) -> None:
    # One class with validate=False isolates a single term p log(p / q) with p / q near 1.
    rng = np.random.default_rng(2)
    p = rng.uniform(0.01, 1.0, size=(200, 1))
    q = p * (1 + rng.uniform(-1e-10, 1e-10, size=(200, 1)))
    got = backend.to_numpy(
        crossent.kl_divergence(backend.asarray(p), backend.asarray(q), validate=False)
    )
    truth = np.array([_kl_mpmath(a, b) for a, b in zip(p, q, strict=True)])
    np.testing.assert_allclose(got, truth, rtol=1e-14, atol=0)


# ------------------------------------------------- item 16: every torch integer dtype

_TORCH_INTEGER_DTYPES = ["int8", "int16", "int32", "uint8", "uint16", "uint32", "uint64"]
_LOGITS = np.array([[1.0, 2.0, -0.5], [0.0, 1.0, 3.0], [2.0, -1.0, 0.5], [0.2, 0.1, 0.0]])
_LABELS = np.array([0, 2, 1, 0])


@pytest.mark.parametrize("dtype", _TORCH_INTEGER_DTYPES)
@pytest.mark.parametrize(
    "function",
    [
        crossent.softmax_cross_entropy,
        crossent.softmax_cross_entropy_grad,
        crossent.softmax_focal_loss,
        crossent.multiclass_hinge_loss,
        lambda z, y: crossent.negative_log_likelihood(z, y, form="logits"),
        lambda z, y: crossent.accuracy(z, y, form="logits"),
        lambda z, y: crossent.brier_score(z, y, form="logits"),
        lambda z, y: crossent.calibration_error(z, y, form="logits").value,
    ],
)
def test_issue10_item16_torch_integer_labels_of_any_dtype(dtype: str, function: object) -> None:
    torch = pytest.importorskip("torch")
    logits = torch.tensor(_LOGITS)
    expected = function(logits, torch.tensor(_LABELS, dtype=torch.int64))  # type: ignore[operator]
    got = function(logits, torch.tensor(_LABELS, dtype=getattr(torch, dtype)))  # type: ignore[operator]
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


@pytest.mark.parametrize("dtype", _TORCH_INTEGER_DTYPES)
def test_issue10_item16_out_of_range_labels_of_any_dtype_are_named(dtype: str) -> None:
    torch = pytest.importorskip("torch")
    labels = torch.tensor([0, 2, 7, 0], dtype=getattr(torch, dtype))
    with pytest.raises(crossent.InputError, match=r"row 2 has 7"):
        crossent.softmax_cross_entropy(torch.tensor(_LOGITS), labels)


def test_issue10_item16_huge_uint64_label_is_out_of_range_not_negative() -> None:
    torch = pytest.importorskip("torch")
    labels = torch.tensor([0, 2, 2**64 - 1, 0], dtype=torch.uint64)
    with pytest.raises(crossent.InputError, match=r"row 2 has 9223372036854775807"):
        crossent.softmax_cross_entropy(torch.tensor(_LOGITS), labels)


# ------------------------------------------------------ item 19: zero classes, meta tensors

_MEASURES = {
    "entropy": lambda p, form, validate: crossent.entropy(p, p_form=form, validate=validate),
    "cross_entropy": lambda p, form, validate: crossent.cross_entropy(
        p, p, p_form=form, q_form=form, validate=validate
    ),
    "kl_divergence": lambda p, form, validate: crossent.kl_divergence(
        p, p, p_form=form, q_form=form, validate=validate
    ),
    "js_divergence": lambda p, form, validate: crossent.js_divergence(
        p, p, p_form=form, q_form=form, validate=validate
    ),
    "perplexity": lambda p, form, validate: crossent.perplexity(p, p_form=form, validate=validate),
    "decomposition": lambda p, form, validate: crossent.cross_entropy_decomposition(
        p, p, p_form=form, q_form=form, validate=validate
    ),
}


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize("form", ["probs", "log_probs", "logits"])
@pytest.mark.parametrize("measure", list(_MEASURES))
def test_issue10_item19_zero_classes_raise_input_error(
    backend: Backend, measure: str, form: str, validate: bool
) -> None:
    empty = backend.asarray(np.zeros((2, 0)))
    with pytest.raises(crossent.InputError, match=r"`p` has 0 classes along axis 1"):
        _MEASURES[measure](empty, form, validate)


@pytest.mark.parametrize(
    "function",
    [
        lambda m: crossent.entropy(m),
        lambda m: crossent.kl_divergence(m, m),
        lambda m: crossent.cross_entropy(m, m, q_form="logits"),
        lambda m: crossent.softmax_cross_entropy(m, _meta_labels(m)),
        lambda m: crossent.softmax_cross_entropy_grad(m, _meta_labels(m)),
    ],
)
def test_issue10_item19_meta_tensor_with_validation_gives_a_clear_error(function: object) -> None:
    torch = pytest.importorskip("torch")
    meta = torch.zeros((2, 3), device="meta")
    with pytest.raises(crossent.InputTypeError, match=r"meta tensor.*validate=False"):
        function(meta)  # type: ignore[operator]


def _meta_labels(meta: object) -> object:
    import torch

    return torch.zeros(2, dtype=torch.int64, device="meta")


def test_issue10_item19_meta_tensor_without_validation_keeps_shapes() -> None:
    torch = pytest.importorskip("torch")
    meta = torch.zeros((2, 3), device="meta")
    result = crossent.kl_divergence(meta, meta, validate=False)
    assert result.device.type == "meta"
    assert tuple(result.shape) == (2,)


def test_issue10_item8_numpy_repairs_a_rel_entr_that_loses_digits_near_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # SciPy 1.17's rel_entr is accurate near p = q; older ones computed x * log(x / y).
    import types

    from crossent import _numerics

    def naive(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x > 0, x * np.log(x / y), 0.0)

    monkeypatch.setattr(_numerics, "special", types.SimpleNamespace(rel_entr=naive))
    monkeypatch.setattr(_numerics, "_REL_ENTR_NAIVE_NEAR_ONE", True)
    rng = np.random.default_rng(2)
    p = rng.uniform(0.01, 1.0, size=(200, 1))
    q = p * (1 + rng.uniform(-1e-10, 1e-10, size=(200, 1)))
    got = crossent.kl_divergence(p, q, validate=False)
    truth = np.array([_kl_mpmath(a, b) for a, b in zip(p, q, strict=True)])
    np.testing.assert_allclose(got, truth, rtol=1e-14, atol=0)
