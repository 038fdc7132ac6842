"""One rule for 0-d results: a NumPy scalar of the result dtype, as a ufunc returns.

``np.log(2.0)``, ``np.log(np.float64(2.0))`` and ``np.log(np.array(2.0))`` are all
``np.float64``; crossent's measures and losses follow it (docs/index.md, "Result
dtypes"). On main ``sigmoid_cross_entropy_grad(2.0, 1.0)`` (a Python float or a 0-d
array, any reduction and options) returned a 0-d ndarray while
``sigmoid_focal_loss_grad(2.0, 1.0)`` returned ``np.float64``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent

SCALARS: dict[str, Any] = {
    "python": 2.0,
    "float64": np.float64(2.0),
    "0d-float64": np.array(2.0, dtype=np.float64),
    "float32": np.float32(2.0),
    "0d-float32": np.array(2.0, dtype=np.float32),
    "float16": np.float16(2.0),
}
SIGMOID = (
    "sigmoid_cross_entropy",
    "sigmoid_cross_entropy_grad",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_grad",
)
OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "weight": {"weight": 0.5},
    "smoothing": {"label_smoothing": 0.1},
    "bits": {"base": 2.0},
    "unchecked": {"validate": False},
}


def _sigmoid_cases() -> list[tuple[str, Callable[[Any, Any], Any]]]:
    cases: list[tuple[str, Callable[[Any, Any], Any]]] = []
    for name, reduction, (option, kwargs) in itertools.product(
        SIGMOID, ("mean", "sum", "none"), OPTIONS.items()
    ):
        f = getattr(crossent, name)
        cases.append(
            (
                f"{name}-{reduction}-{option}",
                lambda x, t, f=f, r=reduction, k=kwargs: f(x, t, reduction=r, **k),
            )
        )
    for name in ("sigmoid_cross_entropy", "sigmoid_cross_entropy_grad"):
        f = getattr(crossent, name)
        cases.append((f"{name}-pos_weight", lambda x, t, f=f: f(x, t, pos_weight=2.0)))
    for name in ("sigmoid_focal_loss", "sigmoid_focal_loss_grad"):
        f = getattr(crossent, name)
        cases.append((f"{name}-alpha", lambda x, t, f=f: f(x, t, alpha=0.25)))
    return cases


def _probability_cases() -> list[tuple[str, Callable[[Any, Any], Any]]]:
    c = crossent
    return [
        ("surprisal", lambda x, t: c.surprisal(x * 0.25)),
        ("binary_entropy", lambda x, t: c.binary_entropy(x * 0.25)),
        ("binary_cross_entropy", lambda x, t: c.binary_cross_entropy(x * 0.25, t * 0.25)),
        (
            "binary_cross_entropy_grad",
            lambda x, t: c.binary_cross_entropy_grad(x * 0.25, t * 0.25),
        ),
    ]


CASES = _sigmoid_cases() + _probability_cases()


@pytest.mark.parametrize("call", [f for _, f in CASES], ids=[name for name, _ in CASES])
def test_a_scalar_in_is_a_numpy_scalar_out(call: Callable[[Any, Any], Any]) -> None:
    """Each kind of scalar in turn (in the loop, not a parameter: 408 tests were about
    2 ms each of pytest's own time, CI time)."""
    for kind, scalar in SCALARS.items():
        result = call(scalar, 1.0)
        assert isinstance(result, np.generic), (kind, type(result))
        # The value of the same call on 1-element arrays (float32 within its rounding).
        array = call(np.reshape(scalar, (1,)), np.ones(1))
        assert float(result) == pytest.approx(float(np.reshape(array, ())), rel=1e-6), kind


@pytest.mark.parametrize("kind", list(SCALARS))
@pytest.mark.parametrize(
    "name",
    [
        "softmax_cross_entropy",
        "poly1_cross_entropy",
        "softmax_focal_loss",
        "multiclass_hinge_loss",
    ],
)
def test_one_row_of_labelled_logits_is_a_numpy_scalar(name: str, kind: str) -> None:
    # One row of logits (1-d) with a scalar label: the per-row loss is 0-d.
    logits = np.stack([np.asarray(SCALARS[kind]), np.asarray(SCALARS[kind]) * 0])
    result = getattr(crossent, name)(logits, 1, reduction="none")
    assert isinstance(result, np.generic), type(result)
    rows = getattr(crossent, name)(logits[None], np.array([1]), reduction="none")
    assert result.dtype == rows.dtype
    assert float(result) == pytest.approx(float(rows[0]), rel=1e-6)  # float32: an ulp


def test_the_scalar_gradient_is_the_value_of_the_array_one() -> None:
    # sigma(2) - 1 from the 1-element array, and the scalar call agrees to the bit.
    scalar = crossent.sigmoid_cross_entropy_grad(2.0, 1.0)
    array = crossent.sigmoid_cross_entropy_grad(np.array([2.0]), np.array([1.0]))
    assert scalar == array[0]
    assert scalar == pytest.approx(1.0 / (1.0 + np.exp(2.0)) * -1.0, rel=1e-15)


# A Python float is weak (NumPy 2's NEP 50): ``np.float32(2) * 1.0`` is float32. On main
# the sigmoid losses and gradients made ``sigmoid_cross_entropy(np.float32(2), 1.0)``
# float64 (the Python float, made a float64 array, took part in the promotion), where
# ``binary_cross_entropy(np.float32(0.3), 1.0)`` was float32.
HALVES: dict[str, Any] = {
    kind: np.asarray(v.dtype.type(0.5)) if isinstance(v, np.ndarray) else type(v)(0.5)
    for kind, v in SCALARS.items()
}


def _numpy_result_dtype(value: Any) -> np.dtype:
    """The dtype NumPy gives ``value`` with a Python float, float16 computed in float32
    (docs/index.md, "Result dtypes")."""
    dtype = np.add(value, 1.0).dtype
    return np.dtype(np.float32) if dtype == np.float16 else dtype


@pytest.mark.parametrize(("name", "call"), CASES, ids=[name for name, _ in CASES])
def test_a_python_float_partner_takes_the_other_dtype(
    name: str, call: Callable[[Any, Any], Any]
) -> None:
    wrong = []
    for kind in SCALARS:
        sides = {"targets": (SCALARS[kind], 1.0), "logits": (0.5, HALVES[kind])}
        if name in ("surprisal", "binary_entropy"):  # one argument: no partner
            del sides["logits"]
        for side, args in sides.items():
            result = call(*args)
            want = _numpy_result_dtype(SCALARS[kind])
            if not isinstance(result, np.generic) or result.dtype != want:
                wrong.append(f"{kind} with a Python float as {side}: {result!r}, want {want}")
            # The value of the same call with the Python float in that dtype.
            same = call(*(a if type(a) is not float else want.type(a) for a in args))
            if result.dtype == want and result != same:
                wrong.append(f"{kind} with a Python float as {side}: {result!r} != {same!r}")
    assert not wrong, "\n".join(wrong)


def _float32_scalar(library: str) -> Any:
    """A 0-d float32 array of ``library`` (0-d: the sigmoid losses' shapes must match)."""
    if library == "array-api-strict":
        xs = pytest.importorskip("array_api_strict")
        return xs.asarray(0.25, dtype=xs.float32)
    if library == "torch":
        torch = pytest.importorskip("torch")
        return torch.tensor(0.25, dtype=torch.float32)
    jnp = pytest.importorskip("jax.numpy")
    return jnp.asarray(0.25, dtype=jnp.float32)


_WEAK_NAMES = (
    "sigmoid_cross_entropy",
    "sigmoid_cross_entropy_grad",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_grad",
    "binary_cross_entropy",
    "binary_cross_entropy_grad",
)
# JAX compiles each new operation (seconds on CI): one sigmoid loss and one measure.
_WEAK_CASES = [
    (library, name)
    for library in ("array-api-strict", "torch", "jax")
    for name in _WEAK_NAMES
    if library != "jax" or name in ("sigmoid_cross_entropy", "binary_cross_entropy")
]


@pytest.mark.parametrize(("library", "name"), _WEAK_CASES)
def test_a_python_float_partner_of_a_float32_array_of_another_library(
    library: str, name: str
) -> None:
    f = getattr(crossent, name)
    value = _float32_scalar(library)
    for args in ((value, 1.0), (0.5, value)):
        assert f(*args).dtype == value.dtype, args
