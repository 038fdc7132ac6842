"""Mutation pass 3 over ``_xp.is_jax_tracer`` and ``_xp.host_float64``
(``tests/MUTATION.md``): the tests saw only JAX tracers (under ``jax.grad`` and
``jax.jit``), never that other arrays are not tracers, nor what ``host_float64`` returns.

* ``is_jax_tracer`` with ``or`` for ``and`` called every array but NumPy's a tracer:
  ``host_float64`` then refused PyTorch tensors and the far-gap rebuild kept ``inf``;
* ``host_float64`` without ``dtype=np.float64`` returned float32 for float32 tensors, and
  with ``np.asarray`` a view of a float64 tensor's memory (its caller writes into it).
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent import _xp


def test_mutation3_arrays_of_other_libraries_are_not_jax_tracers() -> None:
    torch = pytest.importorskip("torch")
    strict = pytest.importorskip("array_api_strict")
    for x in (
        np.ones(2),
        np.float64(1.0),
        torch.ones(2),
        torch.ones(2, requires_grad=True),
        strict.asarray([1.0]),
        1.0,
        [1.0],
    ):
        assert _xp.is_jax_tracer(x) is False, type(x)


def test_mutation3_jax_arrays_and_tracers() -> None:
    jax = pytest.importorskip("jax")
    seen: list[bool] = []

    def f(x: object) -> object:
        seen.append(_xp.is_jax_tracer(x))
        return x

    jax.jit(f)(jax.numpy.ones(2))
    assert seen == [True]
    assert _xp.is_jax_tracer(jax.numpy.ones(2)) is False  # a concrete array


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mutation3_host_float64_of_a_tensor_is_a_float64_copy(dtype: str) -> None:
    torch = pytest.importorskip("torch")
    x = torch.tensor([0.1, -2.5, float("inf")], dtype=getattr(torch, dtype))
    x.requires_grad_(True)
    got = _xp.host_float64(x, name="x")
    assert type(got) is np.ndarray
    assert got.dtype == np.float64
    assert got.tolist() == [float(v) for v in x.detach().tolist()]
    got[:] = 7.0  # the caller writes the rows it forms again into the copy
    assert x.detach().tolist()[0] != 7.0
    a = np.array([1.5, 2.5], dtype=np.float32)
    copied = _xp.host_float64(a, name="a")
    assert copied is not None
    assert copied.dtype == np.float64
    copied[0] = 0.0
    assert a[0] == 1.5


@pytest.mark.parametrize(("dtype", "big"), [("float64", 1e308), ("float32", 3e38)])
def test_mutation3_torch_far_gap_is_formed_again_not_kept_infinite(dtype: str, big: float) -> None:
    """A far gap (logits ``big`` and ``-big``: their difference overflows, so the
    tensor's own cross-entropy of p = (1/2, 1/2) is ``inf``) is formed again in float64
    on the host for a PyTorch tensor (``host_float64``): the exact value
    ``(0 + 2 big) / 2 = big``, finite (as for NumPy arrays)."""
    torch = pytest.importorskip("torch")
    p = torch.tensor([0.5, 0.5], dtype=getattr(torch, dtype))
    q = torch.tensor([big, -big], dtype=getattr(torch, dtype))
    value = crossent.cross_entropy(p, q, q_form="logits")
    assert value.dtype == getattr(torch, dtype)
    assert float(value) == float(torch.tensor(big, dtype=getattr(torch, dtype)))
