"""Issue 13 follow-up: distillation rows of a student near its teacher above the floor.

Rows whose KL is above ``_near_rows.KL_FLOOR`` = :math:`2^{-20}` went by the common
path, whose terms cancel: its absolute error some :math:`\\varepsilon\\log C`, so a
float64 KL of :math:`10^{-5}` was :math:`10^{4}`-:math:`10^{6}` ulps off (student
``[1e-3, 0, 0, 0, 0, 0]``, teacher ``[0.011, 0.005, -0.007, 0, 0.002, 0]``:
1.3445466741120909e-05 against 1.3445466740942940e-05; float32 torch tensors through
the NumPy-API function: 49811 ulps). Rows below ``_near_rows.NEAR_CEILING`` are now
formed again over the centred log-ratio (``_centred_kl_numba``; ``NearRows`` in
other namespaces): every path (lean, full, fused, ``crossent.torch``, the generic
path on torch tensors) within 8 ulps of mpmath here (branch distillnear2).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import crossent

torch = pytest.importorskip("torch")
import crossent.torch as ct  # noqa: E402

EPS = 2.0**-52
ULPS = 8.0
Z = [1e-3, 0.0, 0.0, 0.0, 0.0, 0.0]
V = [0.011, 0.005, -0.007, 0.0, 0.002, 0.0]


def _kl(z, v, temperature: float, direction: str) -> mpmath.mpf:
    """:math:`T^2 D` of one row by mpmath at 50 digits (forward: :math:`D(t\\,\\|\\,s)`)."""
    with mpmath.workdps(50):
        a = [mpmath.mpf(float(x)) / temperature for x in z]
        b = [mpmath.mpf(float(x)) / temperature for x in v]
        if direction == "reverse":
            a, b = b, a
        la = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in a))
        lb = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in b))
        d = mpmath.fsum(
            mpmath.exp(y - lb) * ((y - lb) - (x - la)) for x, y in zip(a, b, strict=True)
        )
        return d * temperature**2


def _relative(value: float, exact: mpmath.mpf) -> float:
    with mpmath.workdps(50):
        return float(abs(mpmath.mpf(float(value)) - exact) / exact)


def _rows(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Near rows: a teacher's logits and a student off by 3e-3 or 1e-2 a class (KL
    1e-6 to 1e-4, above the old floor), 2 to 300 classes."""
    rng = np.random.default_rng(seed)
    rows = []
    for classes in (2, 50, 300):
        for scale in (3e-3, 1e-2):
            v = rng.normal(size=classes) * rng.choice([0.3, 3.0])
            rows.append((v + scale * rng.normal(size=classes), v))
    return rows


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_reported_row_every_path(direction: str, temperature: float) -> None:
    """The reported row on the lean path (one row), the fused kernels (the row repeated
    past ``FUSED_ELEMENTS``) and ``crossent.torch`` float64, each within 8 ulps."""
    z, v = np.array([Z]), np.array([V])
    options = {"temperature": temperature, "direction": direction}
    exact = _kl(Z, V, temperature, direction)
    big_z, big_v = np.repeat(z, 3000, axis=0), np.repeat(v, 3000, axis=0)
    values = {
        "lean": crossent.distillation_loss(z, v, **options),
        "fused": crossent.distillation_loss(big_z, big_v, reduction="none", **options)[-1],
        "torch": ct.distillation_loss(torch.tensor(z), torch.tensor(v), **options).item(),
    }
    errors = {name: _relative(value, exact) / EPS for name, value in values.items()}
    assert max(errors.values()) <= ULPS, errors


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_near_rows_fuzz(direction: str) -> None:
    """Seeded near rows (NumPy lean path and ``crossent.torch`` float64) within 8 ulps."""
    for z, v in _rows(13):
        exact = _kl(z, v, 1.0, direction)
        numpy_value = crossent.distillation_loss(z[None], v[None], direction=direction)
        torch_value = ct.distillation_loss(
            torch.tensor(z[None]), torch.tensor(v[None]), direction=direction
        ).item()
        assert _relative(numpy_value, exact) <= ULPS * EPS, (z.size, numpy_value, exact)
        assert _relative(torch_value, exact) <= ULPS * EPS, (z.size, torch_value, exact)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("temperature", [0.5, 3.0])
def test_reported_row_full_and_generic_paths(
    dtype: str, direction: str, temperature: float
) -> None:
    """The reported row by the NumPy full path (``axis=0``: not the lean one) and the
    generic path on torch tensors (``crossent.distillation_loss``, the host route off:
    float32 there was 49811 ulps off), each within 8 ulps of its dtype (the exact KL of
    the rounded inputs)."""
    z, v = np.array([Z], dtype=dtype), np.array([V], dtype=dtype)
    options = {"temperature": temperature, "direction": direction}
    exact = _kl(z[0].tolist(), v[0].tolist(), temperature, direction)
    values = {
        "full": crossent.distillation_loss(z.T, v.T, axis=0, **options),
        "generic": crossent.distillation_loss(
            torch.from_numpy(z), torch.from_numpy(v), **options
        ).item(),
    }
    eps = float(np.finfo(dtype).eps)
    errors = {name: _relative(float(value), exact) / eps for name, value in values.items()}
    assert max(errors.values()) <= ULPS, errors


@pytest.mark.parametrize(
    ("z", "v", "temperature"),
    [
        ([0.0, float(np.log(3e-5)), -30.0], [0.0, float(np.log(1e-5)), -30.0], 1.0),
        ([-24.402586, -22.958498], [-33.72379, 58.943], 0.125),
    ],
    ids=["small-class", "teacher-underflows"],
)
def test_hard_near_rows_every_path(z: list[float], v: list[float], temperature: float) -> None:
    """Guards (these pass on main, whose common path is exact enough on them): a class of
    probability 1e-5 whose :math:`\\log t` of -11.5 must not be rounded before its
    exponential (10 ulps off so: ``NearRows`` is, 14), and a teacher class below the
    exponential's floor (:math:`e^{-741}`) where the student has its mass of 1e-5: the
    centred sums over the teacher's weights alone gave 0."""
    options = {"temperature": temperature, "reduction": "none"}
    exact = _kl(z, v, temperature, "forward")
    row_z, row_v = np.array([z]), np.array([v])
    values = {
        "lean": crossent.distillation_loss(row_z, row_v, **options)[0],
        "full": crossent.distillation_loss(row_z.T, row_v.T, axis=0, **options)[0],
        "fused": crossent.distillation_loss(
            np.repeat(row_z, 9000, axis=0), np.repeat(row_v, 9000, axis=0), **options
        )[-1],
        "torch": ct.distillation_loss(torch.tensor(row_z), torch.tensor(row_v), **options)[
            0
        ].item(),
    }
    errors = {name: _relative(float(value), exact) / EPS for name, value in values.items()}
    assert max(errors.values()) <= ULPS, errors
