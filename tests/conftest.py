"""Shared fixtures: the array backends every core test runs on, and hypothesis profiles."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None)
# For mutation runs (tests/MUTATION.md): few examples, so one mutant costs seconds.
settings.register_profile("mutation", derandomize=True, max_examples=10, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@dataclass(frozen=True)
class Backend:
    """How to move NumPy test data into one array library and back."""

    name: str
    asarray: Callable[[np.ndarray], Any]
    to_numpy: Callable[[Any], np.ndarray]
    array_type: type | tuple[type, ...]


def _numpy() -> Backend:
    return Backend("numpy", np.asarray, np.asarray, (np.ndarray, np.generic))


def _numpy_readonly() -> Backend:
    def readonly(a: np.ndarray) -> np.ndarray:
        a = np.array(a)  # a private copy, then frozen: any write into it raises
        a.flags.writeable = False
        return a

    return Backend("numpy-readonly", readonly, np.asarray, (np.ndarray, np.generic))


def _strict() -> Backend:
    import array_api_strict as xs

    return Backend(
        "array-api-strict",
        lambda a: xs.asarray(np.asarray(a)),
        lambda x: np.from_dlpack(x),
        type(xs.asarray(0.0)),
    )


def _torch() -> Backend:
    import torch

    return Backend(
        "torch",
        lambda a: torch.from_numpy(np.array(a)),
        lambda x: x.detach().cpu().numpy(),
        torch.Tensor,
    )


def _jax() -> Backend:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return Backend("jax", lambda a: jnp.asarray(a), lambda x: np.asarray(x), jax.Array)


_BACKENDS: dict[str, tuple[str | None, Callable[[], Backend]]] = {
    "numpy": (None, _numpy),
    "numpy-readonly": (None, _numpy_readonly),
    "array-api-strict": ("array_api_strict", _strict),
    "torch": ("torch", _torch),
    "jax": ("jax", _jax),
}


@pytest.fixture(params=list(_BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    """Every installed array backend; missing ones are skipped."""
    module, make = _BACKENDS[request.param]
    if module is not None and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    return make()
