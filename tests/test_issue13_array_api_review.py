"""Issue 13: a review of the core functions on array-API backends other than NumPy; each
test fails on main at bdbcf67.

* The sigmoid losses promoted their computation to the weights' dtype: a float64 or a
  Python-float ``pos_weight`` (or ``weight``) made a float32 or float16 loss float64.
  The weights now take the logits' and targets' compute dtype, as the softmax losses'
  class weights always did.
* ``_near_rows._quiet`` silenced NumPy's floating-point warnings for NumPy only; with
  array-api-strict (NumPy underneath) a masked class (``-inf`` on both sides) of a
  distillation row warned "invalid value encountered in subtract".
* Labels of a narrow integer dtype: array-api-strict raised ``OverflowError`` when the
  class count or ``ignore_index`` did not fit the dtype (int8 labels of 300 classes,
  uint8 labels with ``ignore_index=-100``), and JAX wrapped -100 to 156 in uint8, so the
  valid label 156 was ignored: a wrong loss.
* Integer class weights on array-api-strict: a raw ``TypeError`` from comparing them
  with a Python float; NumPy, torch and JAX took them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import crossent

xs = pytest.importorskip("array_api_strict")

_RNG = np.random.default_rng(13)
_Z = _RNG.standard_normal((6, 4)).astype(np.float32)
_T = (_RNG.random((6, 4)) < 0.5).astype(np.float32)


@pytest.mark.parametrize(
    "weights",
    [
        {"pos_weight": 2.0},
        {"pos_weight": np.array([1.0, 2.0, 0.5, 3.0])},
        {"weight": np.float64(1.5)},
        {"weight": np.array([1.0, 2.0, 0.5, 3.0]), "pos_weight": np.float64(2.0)},
    ],
    ids=["python-float", "float64-array", "float64-scalar", "both"],
)
@pytest.mark.parametrize(
    "function", [crossent.sigmoid_cross_entropy, crossent.sigmoid_cross_entropy_grad]
)
def test_issue13_sigmoid_weights_take_the_logits_dtype(function, weights) -> None:
    """The loss of float32 logits is float32, with the bits of the same call with the
    weights given in float32 (main: float64)."""
    as32 = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
    got = function(_Z, _T, **weights)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, function(_Z, _T, **as32))
    half = function(_Z.astype(np.float16), _T, **weights)
    assert half.dtype == np.float32  # float16 computes and returns in float32
    strict = function(
        xs.asarray(_Z),
        xs.asarray(_T),
        **{k: (v if type(v) is float else xs.asarray(np.asarray(v))) for k, v in weights.items()},
    )
    assert strict.dtype == xs.float32


def test_issue13_sigmoid_focal_weight_takes_the_logits_dtype() -> None:
    got = crossent.sigmoid_focal_loss(_Z, _T, weight=np.array([1.0, 2.0, 0.5, 3.0]))
    assert got.dtype == np.float32


def test_issue13_masked_class_distillation_is_quiet_on_array_api_strict() -> None:
    """Identical student and teacher with a class masked on both sides (``-inf``): the
    near-rows path forms ``-inf - -inf`` on purpose; no warning, loss and gradient 0."""
    z = 5.0 * np.random.default_rng(1).standard_normal((8, 5))
    z[:, 1] = -np.inf
    for direction in ("forward", "reverse"):
        keywords = {"temperature": 3.0, "direction": direction, "reduction": "none"}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loss = crossent.distillation_loss(xs.asarray(z), xs.asarray(z), **keywords)
            grad = crossent.distillation_loss_grad(xs.asarray(z), xs.asarray(z), **keywords)
        assert not np.any(np.asarray(loss))
        assert not np.any(np.asarray(grad))


@pytest.mark.parametrize(
    ("dtype", "classes", "ignore_index"),
    [
        ("int8", 300, None),
        ("int8", 300, -100),
        ("uint8", 5, -100),
        ("uint8", 200, 1000),
        ("int16", 40000, -100),
    ],
)
@pytest.mark.parametrize(
    "function", [crossent.softmax_cross_entropy, crossent.softmax_cross_entropy_grad]
)
def test_issue13_narrow_labels_on_array_api_strict(function, dtype, classes, ignore_index) -> None:
    """A class count or ``ignore_index`` the labels' dtype cannot hold: the value of the
    same labels as NumPy int64 (main: ``OverflowError``)."""
    z = np.random.default_rng(2).standard_normal((4, classes)).astype(np.float32)
    labels = np.array([0, 1, 2, 4])
    keywords = {"ignore_index": ignore_index, "reduction": "none"}
    want = function(z, labels, **keywords)
    got = function(xs.asarray(z), xs.asarray(labels, dtype=getattr(xs, dtype)), **keywords)
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-6, atol=0)


@pytest.mark.parametrize(("dtype", "bad"), [("uint8", 7), ("int8", -2), ("int16", 5)])
def test_issue13_narrow_labels_out_of_range_still_refused(dtype: str, bad: int) -> None:
    z = xs.asarray(np.zeros((4, 5), dtype=np.float32))
    labels = xs.asarray([0, 1, bad, 3], dtype=getattr(xs, dtype))
    with pytest.raises(crossent.InputError, match=rf"row 2 has {bad}\)"):
        crossent.softmax_cross_entropy(z, labels, ignore_index=-100)


def test_issue13_uint8_label_156_is_not_ignore_index_minus_100_on_jax() -> None:
    """JAX compares ``uint8 != -100`` as ``!= 156``: the label 156 was ignored."""
    jnp = pytest.importorskip("jax.numpy")
    z = np.random.default_rng(3).standard_normal((3, 200)).astype(np.float32)
    labels = np.array([0, 156, 2])
    want = crossent.softmax_cross_entropy(z, labels, ignore_index=-100, reduction="none")
    got = crossent.softmax_cross_entropy(
        jnp.asarray(z), jnp.asarray(labels, dtype=jnp.uint8), ignore_index=-100, reduction="none"
    )
    assert float(got[1]) > 0  # main: 0, the row ignored
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-6, atol=0)


@pytest.mark.parametrize(
    "function", [crossent.softmax_cross_entropy, crossent.softmax_cross_entropy_grad]
)
def test_issue13_integer_class_weights_on_array_api_strict(function) -> None:
    z, labels = _Z[:, :3], np.array([0, 1, 2, 0, 1, 2])
    want = function(z, labels, weight=np.array([1.0, 2.0, 3.0]))
    got = function(xs.asarray(z), xs.asarray(labels), weight=xs.asarray([1, 2, 3]))
    # (NumPy takes the compiled float32 path, array-api-strict the generic one)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=2e-8)
    with pytest.raises(crossent.InputError, match="`weight` must be finite and non-negative"):
        function(xs.asarray(z), xs.asarray(labels), weight=xs.asarray([1, -2, 3]))
