"""Issue 13 hostile pass over the inputs of the measures and losses (branch
hostilemeasures): each test pins a defect found by attacking them, and fails on main
before its fix.

* big-endian (``'>f8'``) class weights of a small focal or poly-1 call reached the
  compiled shortcut, whose guard compared dtype characters (``'d'`` for both byte
  orders): Numba's "TypingError: non-precise type pyobject" instead of the loss;
* sparse inputs: a SciPy sparse matrix or array and a JAX BCOO were read by NumPy as a
  0-d object array ("must be real numbers ... index (0, 0) is BCOO(...)"), a sparse
  PyTorch tensor stopped in PyTorch ("Could not run 'aten::amin' with arguments from the
  'SparseCPU' backend"), a nested one with "Internal error", a quantized one in
  ``isdtype``: each is now refused by argument name with the call that makes it dense.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy.special import log_softmax

import crossent

_RNG = np.random.default_rng(13)
_LOGITS = _RNG.normal(size=(5, 4)) * 2.0
_LABELS = np.array([0, 3, 1, 2, 3])
_WEIGHT = np.array([0.5, 2.0, 1.0, 3.0])


def _focal_oracle(logits: np.ndarray, labels: np.ndarray, weight: np.ndarray) -> float:
    """Weighted mean of w_y (1 - p_y)^2 (-log p_y), from SciPy's log_softmax."""
    logp = log_softmax(logits, axis=1)[np.arange(labels.size), labels]
    w = weight[labels]
    return float(np.sum(w * np.expm1(logp) ** 2 * -logp) / np.sum(w))


def _poly_oracle(logits: np.ndarray, labels: np.ndarray, weight: np.ndarray) -> float:
    """Weighted mean of w_y (-log p_y + 1 - p_y) (epsilon 1)."""
    logp = log_softmax(logits, axis=1)[np.arange(labels.size), labels]
    w = weight[labels]
    return float(np.sum(w * (-logp - np.expm1(logp))) / np.sum(w))


@pytest.mark.parametrize(
    ("loss", "oracle"),
    [
        pytest.param(crossent.softmax_focal_loss, _focal_oracle, id="focal"),
        pytest.param(crossent.poly1_cross_entropy, _poly_oracle, id="poly1"),
    ],
)
def test_big_endian_class_weights_of_a_small_call_give_the_loss(
    loss: Callable[..., Any], oracle: Callable[..., float]
) -> None:
    got = loss(_LOGITS, _LABELS, weight=_WEIGHT.astype(">f8"))
    assert float(got) == pytest.approx(oracle(_LOGITS, _LABELS, _WEIGHT), rel=1e-13)
    assert float(got) == float(loss(_LOGITS, _LABELS, weight=_WEIGHT))


@pytest.mark.parametrize(
    "gradient",
    [crossent.softmax_focal_loss_grad, crossent.poly1_cross_entropy_grad],
    ids=["focal", "poly1"],
)
def test_big_endian_class_weights_of_a_small_gradient_give_the_gradient(
    gradient: Callable[..., Any],
) -> None:
    native = gradient(_LOGITS, _LABELS, weight=_WEIGHT)
    swapped = gradient(_LOGITS, _LABELS, weight=_WEIGHT.astype(">f8"))
    np.testing.assert_array_equal(swapped, native)


_P = np.array([[0.25, 0.75, 0.0], [0.5, 0.25, 0.25]])


def _scipy_sparse(x: np.ndarray) -> object:
    sparse = pytest.importorskip("scipy.sparse")
    return sparse.csr_array(x)


def _jax_sparse(x: np.ndarray) -> object:
    pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    jsparse = pytest.importorskip("jax.experimental.sparse")
    return jsparse.BCOO.fromdense(jnp.asarray(x, dtype=jnp.float32))


def _torch_layout(layout: str) -> Callable[[np.ndarray], object]:
    def make(x: np.ndarray) -> object:
        torch = pytest.importorskip("torch")
        dense = torch.tensor(x, dtype=torch.float64)
        return dense.to_sparse() if layout == "coo" else dense.to_sparse_csr()

    return make


@pytest.mark.parametrize(
    ("make", "says"),
    [
        pytest.param(_scipy_sparse, "p.toarray()", id="scipy-csr_array"),
        pytest.param(_jax_sparse, "p.todense()", id="jax-BCOO"),
        pytest.param(_torch_layout("coo"), "p.to_dense()", id="torch-sparse_coo"),
        pytest.param(_torch_layout("csr"), "p.to_dense()", id="torch-sparse_csr"),
    ],
)
@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta:UserWarning")
def test_sparse_distributions_are_refused_by_name(
    make: Callable[[np.ndarray], object], says: str, validate: bool
) -> None:
    with pytest.raises(crossent.InputTypeError, match=r"`p` is a sparse") as info:
        crossent.entropy(make(_P), validate=validate)
    assert says in str(info.value)


def test_sparse_torch_labels_and_class_weights_are_refused_by_name() -> None:
    torch = pytest.importorskip("torch")
    logits = torch.tensor(_LOGITS)
    labels = torch.tensor(_LABELS)
    with pytest.raises(crossent.InputTypeError, match=r"`labels` is a sparse tensor"):
        crossent.softmax_cross_entropy(logits, labels.to_sparse())
    weight = torch.tensor(_WEIGHT).to_sparse()
    with pytest.raises(crossent.InputTypeError, match=r"`weight` is a sparse tensor"):
        crossent.softmax_cross_entropy(logits, labels, weight=weight)
    targets = torch.ones(5, 4, dtype=torch.float64)
    with pytest.raises(crossent.InputTypeError, match=r"`pos_weight` is a sparse tensor"):
        crossent.sigmoid_cross_entropy(logits, targets, pos_weight=weight)


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors:UserWarning")
@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
def test_nested_and_quantized_torch_tensors_are_refused_by_name() -> None:
    torch = pytest.importorskip("torch")
    nested = torch.nested.nested_tensor([torch.tensor([0.5, 0.5]), torch.tensor([1.0])])
    with pytest.raises(crossent.InputTypeError, match=r"`p` is a nested tensor"):
        crossent.entropy(nested)
    quantized = torch.quantize_per_tensor(
        torch.tensor(_P, dtype=torch.float32), 0.125, 0, torch.qint8
    )
    with pytest.raises(crossent.InputTypeError, match=r"p\.dequantize\(\)"):
        crossent.kl_divergence(quantized, quantized)


def test_dense_strided_torch_tensors_still_give_the_value() -> None:
    """Guard of the refusals above (a mutant refusing every tensor fails it)."""
    torch = pytest.importorskip("torch")
    got = crossent.entropy(torch.tensor(_P, dtype=torch.float64).T.contiguous().T)
    np.testing.assert_allclose(got.numpy(), crossent.entropy(_P), rtol=0, atol=0)


def test_byte_swapped_out_buffer_is_named_as_byte_swapped() -> None:
    """``out`` of dtype ``'>f8'`` was refused with "must have dtype float64; got >f8",
    which reads as a contradiction (both are float64)."""
    out = np.empty(_LOGITS.shape, dtype=">f8")
    with pytest.raises(crossent.InputTypeError, match=r"byte-swapped float64"):
        crossent.softmax_cross_entropy_grad(_LOGITS, _LABELS, out=out)
    native = np.empty(_LOGITS.shape)
    got = crossent.softmax_cross_entropy_grad(_LOGITS, _LABELS, out=native)
    assert got is native
    np.testing.assert_array_equal(native, crossent.softmax_cross_entropy_grad(_LOGITS, _LABELS))


def test_numbers_held_as_python_objects_are_named_with_the_cast() -> None:
    """An object array of numbers was "`p` must be real numbers; got dtype object" (they
    are real numbers), and object labels were "numbers written as text" (they are not
    text)."""
    with pytest.raises(crossent.InputTypeError) as info:
        crossent.entropy(np.array([0.5, 0.5], dtype=object))
    assert str(info.value) == (
        "`p` must be real numbers; got dtype object. They are numbers held as Python "
        "objects: pass p.astype(np.float64)."
    )
    with pytest.raises(crossent.InputTypeError) as info:
        crossent.softmax_cross_entropy(_LOGITS[:2], np.array([0, 1], dtype=object))
    assert str(info.value).endswith(
        "They are numbers held as Python objects: pass labels.astype(np.int64)."
    )
