"""What the small-call tests of softmax cross-entropy share (issue 13).

The compiled float32 call, its label smoothing and the float64 hybrid are each tested
the same way: random cases with some near-deterministic rows, the full path's loss and
gradient as the expected values, the other paths made to fail so that a test proves
which path answered, and spies that record which functions a call reached.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from crossent.losses import _cpu_kernels
from crossent.losses._softmax import prepare_softmax_labels, softmax_gradient

LEAN_OPTIONS: list[dict[str, Any]] = [
    {},
    {"validate": False},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"reduction": "parts"},
    {"temperature": 0.5},
    {"temperature": 3.0, "reduction": "sum", "validate": False},
    {"z_loss": 1e-2},
    {"z_loss": 0.3, "reduction": "sum"},
    {"z_loss": 1e-4, "reduction": "none", "temperature": 1.5},
    {"base": 2},
    {"base": 10.0, "reduction": "parts", "z_loss": 1e-3},
    {"base": 2, "reduction": "none"},
    {"axis": -1, "temperature": 0.7, "z_loss": 0.1, "base": 10.0, "reduction": "sum"},
]
"""Option sets of the lean path's calls (every reduction, base, temperature, z-loss)."""


def random_case(
    shape: tuple[int, ...], seed: int, dtype: type = np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """Logits of ``shape`` (rows scaled by 0.5 to 40: some near-deterministic) and
    int64 labels."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.5, 40.0, size=(*shape[:-1], 1))
    logits = (scale * rng.standard_normal(shape)).astype(dtype, copy=False)
    return logits, rng.integers(0, shape[-1], size=shape[:-1])


def full_path(
    logits: np.ndarray, labels: np.ndarray, *, fused: bool, **kwargs: Any
) -> tuple[Any, np.ndarray]:
    """The full path's loss and gradient: the fused problem (``fused``) or the generic
    one, asserted to be the one taken."""
    problem = prepare_softmax_labels(logits, labels, **kwargs)
    assert (problem.fast_logits is not None) is fused
    return problem.loss(), softmax_gradient(problem)


def fail_on(
    monkeypatch: pytest.MonkeyPatch, module: ModuleType, names: Iterable[str], *, expected: str
) -> None:
    """Make ``module``'s ``names`` raise: a call that reaches one took a path other than
    ``expected``."""

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a path other than {expected} was taken")

    for name in names:
        monkeypatch.setattr(module, name, fail)


def record_calls(
    monkeypatch: pytest.MonkeyPatch, module: ModuleType, names: Iterable[str]
) -> list[str]:
    """The names of ``module``'s ``names`` in the order they are called, as they run.

    Spies on NumPy's own functions (``np.exp``...) come after Numba has registered NumPy's
    ufuncs: it does so from the ``numpy`` module's attributes when it first compiles or
    loads a kernel from its cache (``numba.np.npyimpl``), and a spy in a ufunc's place
    then fails that load (``'function' object has no attribute 'nin'``) in a worker
    whose first kernel load happens under the spy."""
    if module is np:
        with contextlib.suppress(ImportError):
            importlib.import_module("numba.np.npyimpl")
    calls: list[str] = []
    for name in names:
        real = getattr(module, name)

        def spy(*args: Any, real: Any = real, name: str = name, **kwargs: Any) -> Any:
            calls.append(name)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    return calls


def layouts_not_taken(dtype: type) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(what, logits, labels)`` of ``dtype`` that no compiled small call takes: int32
    or strided labels, strided or read-only logits, more than ``SERIAL_ELEMENTS``."""
    logits, labels = random_case((6, 10), 3, dtype)
    big, big_labels = random_case((_cpu_kernels.SERIAL_ELEMENTS // 10 + 1, 10), 4, dtype)
    readonly = logits.copy()
    readonly.flags.writeable = False
    return [
        ("int32 labels", logits, labels.astype(np.int32)),
        ("strided labels", logits, np.repeat(labels, 2)[::2]),
        ("strided logits", np.repeat(logits, 2, axis=0)[::2], labels),
        ("read-only logits", readonly, labels),
        ("more than SERIAL_ELEMENTS logits", big, big_labels),
    ]
