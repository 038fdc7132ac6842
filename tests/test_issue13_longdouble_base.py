"""Issue 13 (a hostile pass): long double results in a ``base`` other than nats.

Every public function taking ``base`` computes ``np.longdouble`` input in long double
(x87 extended, 64-bit significand), but divided the nats by the float64
``math.log(base)``, 1.1e-16 (relative) off :math:`\\ln b`: ``entropy(p, base=2)`` was
3.35e-17 off against mpmath, where its nats are 6e-20 off. The divisor is now
``log(base)`` in long double for long double results (``_checks.log_base_in``).

Oracles: mpmath at 60 digits, from the function's own long double nats (each public
function taking ``base``, found from the signature fixture, so that a new one must be
added here or to :data:`FLOAT64_ONLY` with its reason), and from scratch for the entropy,
the surprisal and the softmax cross-entropy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent

if np.finfo(np.longdouble).nmant < 63:  # pragma: no cover - platforms without x87
    pytest.skip("longdouble is not extended precision here", allow_module_level=True)

LD = np.longdouble
ULP = float(np.finfo(LD).eps)  # 1.08e-19
FIXTURE = Path(__file__).parent / "test_issue11_public_signatures.json"
BASES = (2, 10, 3.7, 0.5)


def _inputs() -> dict[str, Any]:
    rng = np.random.default_rng(20261205)
    p = rng.dirichlet(np.ones(6), size=4).astype(LD)
    q = rng.dirichlet(np.ones(6), size=4).astype(LD)
    x = rng.normal(scale=3.0, size=(4, 6)).astype(LD)
    return {
        "p": p / p.sum(axis=-1, keepdims=True),  # rows summing to 1 in long double
        "q": q / q.sum(axis=-1, keepdims=True),
        "x": x,
        "teacher": x[::-1].copy(),
        "labels": np.array([0, 5, 2, 3]),
        "t01": rng.random((4, 6)).astype(LD),  # binary targets
        "p1": rng.uniform(0.05, 0.95, 7).astype(LD),
        "q1": rng.uniform(0.05, 0.95, 7).astype(LD),
    }


D = _inputs()

CALLS: dict[str, Callable[[Any], Any]] = {
    "binary_cross_entropy": lambda b: crossent.binary_cross_entropy(D["p1"], D["q1"], base=b),
    "binary_cross_entropy_grad": lambda b: crossent.binary_cross_entropy_grad(
        D["p1"], D["q1"], base=b
    ),
    "binary_entropy": lambda b: crossent.binary_entropy(D["p1"], base=b),
    "cross_entropy": lambda b: crossent.cross_entropy(D["p"], D["q"], base=b),
    "cross_entropy_decomposition": lambda b: np.stack(
        crossent.cross_entropy_decomposition(D["p"], D["q"], base=b)
    ),
    "distillation_loss": lambda b: crossent.distillation_loss(
        D["x"], D["teacher"], base=b, reduction="none"
    ),
    "distillation_loss_grad": lambda b: crossent.distillation_loss_grad(
        D["x"], D["teacher"], base=b
    ),
    "entropy": lambda b: crossent.entropy(D["p"], base=b),
    "js_divergence": lambda b: crossent.js_divergence(D["p"], D["q"], base=b),
    "kl_divergence": lambda b: crossent.kl_divergence(D["p"], D["q"], base=b),
    "sigmoid_cross_entropy": lambda b: crossent.sigmoid_cross_entropy(
        D["x"], D["t01"], base=b, reduction="none"
    ),
    "sigmoid_cross_entropy_grad": lambda b: crossent.sigmoid_cross_entropy_grad(
        D["x"], D["t01"], base=b
    ),
    "sigmoid_focal_loss": lambda b: crossent.sigmoid_focal_loss(D["x"], D["t01"], base=b),
    "sigmoid_focal_loss_grad": lambda b: crossent.sigmoid_focal_loss_grad(
        D["x"], D["t01"], base=b, reduction="sum"
    ),
    "softmax_cross_entropy": lambda b: crossent.softmax_cross_entropy(
        D["x"], D["labels"], base=b, reduction="none"
    ),
    "softmax_cross_entropy_grad": lambda b: crossent.softmax_cross_entropy_grad(
        D["x"], D["labels"], base=b, label_smoothing=0.1
    ),
    "softmax_cross_entropy_with_targets": lambda b: crossent.softmax_cross_entropy_with_targets(
        D["x"], D["p"], base=b, reduction="sum"
    ),
    "softmax_cross_entropy_with_targets_grad": (
        lambda b: crossent.softmax_cross_entropy_with_targets_grad(D["x"], D["p"], base=b)
    ),
    "softmax_focal_loss": lambda b: crossent.softmax_focal_loss(D["x"], D["labels"], base=b),
    "softmax_focal_loss_grad": lambda b: crossent.softmax_focal_loss_grad(
        D["x"], D["labels"], base=b
    ),
    "surprisal": lambda b: crossent.surprisal(D["p1"], base=b),
}
"""Each public function taking ``base``, on long double input."""

FLOAT64_ONLY = {
    "bootstrap_interval": "evaluation API: float64 statistics (Python floats)",
    "compare_log_loss": "evaluation API: float64 statistics (Python floats)",
    "negative_log_likelihood": "evaluation API: computes in float64 (a float64 result)",
    "recalibration_gap": "evaluation API: a Python float",
}
"""The public functions taking ``base`` that return no long double, and why."""


def _mp(x: Any) -> mpmath.mpf:
    """A long double (or float) as an mpmath number, exactly."""
    num, den = LD(x).as_integer_ratio()
    return mpmath.mpf(num) / den


def _relative_errors(got: np.ndarray, want: list[mpmath.mpf]) -> list[float]:
    return [
        float(abs(_mp(g) - w) / abs(w)) if w != 0 else float(abs(_mp(g)))
        for g, w in zip(np.ravel(got), want, strict=True)
    ]


def test_every_public_function_taking_base_is_covered() -> None:
    signatures = json.loads(FIXTURE.read_text())["crossent"]
    taking = {name for name, sig in signatures.items() if "base:" in sig and "." not in name}
    assert taking == set(CALLS) | set(FLOAT64_ONLY)


@pytest.mark.parametrize("base", BASES, ids=[f"base{b}" for b in BASES])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_long_double_unit_is_nats_over_the_long_double_log(name: str, base: float) -> None:
    """A long double result in ``base`` is its nats over :math:`\\ln b` to within a few
    long double ulps (mpmath, 60 digits); on main 3.35e-17 (2^-53 ln 2 / ln 2)."""
    nats = np.asarray(CALLS[name](None))
    got = np.asarray(CALLS[name](base))
    assert nats.dtype == got.dtype == LD
    with mpmath.workdps(60):
        log_b = mpmath.log(mpmath.mpf(base))
        want = [_mp(v) / log_b for v in np.ravel(nats)]
        errors = _relative_errors(got, want)
    # the quotient's rounding, and for the gradients the reduction's factor 1/N rounded
    # in long double before it is divided by the base's log
    assert max(errors) <= 3 * ULP, (name, base, max(errors))


def _entropy_oracle(p: np.ndarray, base: float) -> list[mpmath.mpf]:
    return [-mpmath.fsum(_mp(v) * mpmath.log(_mp(v)) for v in row) / mpmath.log(base) for row in p]


def _surprisal_oracle(p: np.ndarray, base: float) -> list[mpmath.mpf]:
    return [-mpmath.log(_mp(v)) / mpmath.log(base) for v in p]


def _softmax_oracle(x: np.ndarray, base: float) -> list[mpmath.mpf]:
    rows = []
    for row, y in zip(x, D["labels"], strict=True):
        z = [_mp(v) for v in row]
        rows.append((mpmath.log(mpmath.fsum(mpmath.exp(v) for v in z)) - z[y]) / mpmath.log(base))
    return rows


@pytest.mark.parametrize("base", [2, 10], ids=["bits", "decimal"])
@pytest.mark.parametrize(
    ("name", "compute", "oracle", "arg"),
    [
        ("entropy", lambda b: crossent.entropy(D["p"], base=b), _entropy_oracle, "p"),
        ("surprisal", lambda b: crossent.surprisal(D["p1"], base=b), _surprisal_oracle, "p1"),
        (
            "softmax_cross_entropy",
            lambda b: crossent.softmax_cross_entropy(D["x"], D["labels"], base=b, reduction="none"),
            _softmax_oracle,
            "x",
        ),
    ],
    ids=("entropy", "surprisal", "softmax_cross_entropy"),
)
def test_long_double_bits_against_mpmath(
    name: str, compute: Callable[[Any], Any], oracle: Callable[..., Any], arg: str, base: int
) -> None:
    """From scratch: within 16 long double ulps of mpmath's value (the nats' own error,
    6e-20 here, plus the unit's rounding); main's 3.35e-17 is 300 ulps."""
    got = np.asarray(compute(base))
    with mpmath.workdps(60):
        errors = _relative_errors(got, oracle(D[arg], base))
    assert max(errors) <= 16 * ULP, (name, max(errors))


def test_long_double_base_keeps_its_own_precision() -> None:
    """A long double ``base`` (10/3, which float64 cannot hold) is taken at its own
    precision, not rounded to float64 first."""
    base = LD(10) / 3
    assert LD(float(base)) != base  # (the premise)
    nats = np.asarray(crossent.entropy(D["p"]))
    got = np.asarray(crossent.entropy(D["p"], base=base))
    with mpmath.workdps(60):
        errors = _relative_errors(got, [_mp(v) / mpmath.log(_mp(base)) for v in nats])
    assert max(errors) <= 3 * ULP, max(errors)
