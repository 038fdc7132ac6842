"""``perplexity`` of float64 logits and log-probabilities within an ulp of the truth
(issue 13).

ppl1 took the entropy of probability sides in double-double; logits and
log-probabilities (and ``perplexity(p, q)`` with ``q`` logits, a language model
evaluator's call) kept ``exp`` of the float64 entropy: up to 84 ulps from the mpmath
truth on rows of 1000 random logits (fused NumPy kernel), 37 on NumPy's generic path for
1000 equal logits, 25 through PyTorch for 50000. They now take ``H`` in double-double
too (``info/_perplexity_dd.py``: the logarithm by its atanh series and ``exp`` with its
own rounding's residual, the log-partition in double-double) on every path, and
array-api-strict (no ``frexp``) with them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent
from crossent.info import _fused, _measures


def _lp(z: np.ndarray) -> np.ndarray:
    top = np.max(z)
    return z - (top + np.log(np.sum(np.exp(z - top))))


def _rows() -> dict[str, tuple[np.ndarray, np.ndarray | None, str, str]]:
    rng = np.random.default_rng(7)
    z = rng.normal(size=1000) * 2.0
    return {
        "flat1000_logits": (np.zeros(1000), None, "logits", "probs"),
        "flat50000_logits": (np.full(50000, 7.3), None, "logits", "probs"),
        "flat123_log_probs": (np.full(123, -np.log(123.0)), None, "log_probs", "probs"),
        "flat32000_log_probs": (np.full(32000, -np.log(32000.0)), None, "log_probs", "probs"),
        "random_logits": (z, None, "logits", "probs"),
        # most entries below the kernel's cut, -(log n + 12), where exp is not refined
        "peaked_logits": (rng.standard_t(3, size=5000) * 4.0, None, "logits", "probs"),
        "peaked_log_probs": (_lp(rng.standard_t(3, size=5000) * 4.0), None, "log_probs", "probs"),
        "near_one_hot_logits": (np.array([30.0, 0.0, 0.0, -1.0]), None, "logits", "probs"),
        "neginf_logits": (np.array([0.0, -np.inf, 0.5, -np.inf]), None, "logits", "probs"),
        "huge_spread_logits": (np.array([1.5e300, 1.5e300, -1e300]), None, "logits", "probs"),
        "q_logits_flat50000": (np.full(50000, 2e-5), np.zeros(50000), "probs", "logits"),
        "q_log_probs_flat123": (
            np.full(123, 1.0 / 123),
            np.full(123, -np.log(123.0)),
            "probs",
            "log_probs",
        ),
        "q_logits_random": (rng.dirichlet(np.ones(1000)), z, "probs", "logits"),
        "both_logits": (rng.normal(size=1000), z, "logits", "logits"),
        "log_probs_and_logits": (_lp(rng.normal(size=1000)), z, "log_probs", "logits"),
        "q_logits_gap": (
            np.array([0.5, 0.0, 0.5]),
            np.array([0.0, -np.inf, 1.0]),
            "probs",
            "logits",
        ),
        "q_logits_inf": (np.array([0.5, 0.5]), np.array([0.0, -np.inf]), "probs", "logits"),
        # z - max past the float64 range: halved (cross_entropy's far-gap rows)
        "q_logits_far": (np.array([0.6, 0.4]), np.array([1.7e308, -1.7e308]), "probs", "logits"),
        "q_logits_far_subnormal_p": (
            np.array([1.0, 1e-320]),
            np.array([1.7e308, -1.7e308]),
            "probs",
            "logits",
        ),
    }


ROWS = _rows()


def _side(v: np.ndarray, form: str) -> tuple[list[Any], list[Any]]:
    """Weights and logarithms of the distinct values of ``v`` (mpmath, 60 digits)."""
    values, counts = np.unique(v, return_counts=True)
    mp = [mpmath.mpf(float(x)) for x in values]
    if form == "probs":
        return mp, [mpmath.log(x) if x > 0 else -mpmath.inf for x in mp]
    if form == "logits":
        top = max(mp)
        log_s = mpmath.log(
            mpmath.fsum(int(k) * mpmath.exp(x - top) for x, k in zip(mp, counts, strict=True))
        )
        mp = [(x - top) - log_s for x in mp]
    return [mpmath.exp(x) for x in mp], mp


def _truth(p: np.ndarray, q: np.ndarray | None, p_form: str, q_form: str) -> Any:
    """exp(-sum p log q), equal pairs grouped, in 60 digits."""
    with mpmath.workdps(60):
        q, q_form = (p, p_form) if q is None else (q, q_form)
        weights = dict(zip(np.unique(p).tolist(), _side(p, p_form)[0], strict=True))
        logs = dict(zip(np.unique(q).tolist(), _side(q, q_form)[1], strict=True))
        pairs, counts = np.unique(np.stack([p, q]), axis=1, return_counts=True)
        total = mpmath.mpf(0)
        for (a, b), k in zip(pairs.T.tolist(), counts, strict=True):
            if weights[a] == 0:
                continue
            if logs[b] == -mpmath.inf:
                return mpmath.inf
            total -= int(k) * weights[a] * logs[b]
        return mpmath.exp(total)


def _ulps(got: float, truth: Any) -> float:
    if mpmath.isinf(truth) or truth > np.finfo(np.float64).max:
        return 0.0 if got == np.inf else np.inf
    with mpmath.workdps(60):
        return float(abs(mpmath.mpf(float(got)) - truth) / mpmath.mpf(np.spacing(float(truth))))


def _call(to: Callable[[np.ndarray], Any], row: tuple[Any, ...], **kw: Any) -> float:
    p, q, p_form, q_form = row
    if q is None:
        return float(crossent.perplexity(to(p), p_form=p_form, **kw))
    return float(crossent.perplexity(to(p), to(q), p_form=p_form, q_form=q_form, **kw))


def _batched(row: tuple[Any, ...]) -> float:
    """The row as the second of two (the kernel's row loop, not validated)."""
    p, q, p_form, q_form = row
    rows = np.stack([p[::-1], p])
    args = (rows,) if q is None else (rows, q)
    out = crossent.perplexity(*args, p_form=p_form, q_form=q_form, validate=False)
    return float(out[1])


def _torch(row: tuple[Any, ...]) -> float:
    torch = pytest.importorskip("torch")
    return _call(torch.tensor, row)


def _strict(row: tuple[Any, ...]) -> float:
    xs = pytest.importorskip("array_api_strict")
    return _call(xs.asarray, row)


@pytest.mark.parametrize("name", list(ROWS))
def test_perplexity_of_logits_within_an_ulp_on_each_path(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = ROWS[name]
    truth = _truth(*row)
    worst = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        worst["numpy"] = _ulps(_call(np.asarray, row), truth)
        worst["batched"] = _ulps(_batched(row), truth)
        worst["torch"] = _ulps(_torch(row), truth)
        worst["strict"] = _ulps(_strict(row), truth)
        with monkeypatch.context() as patch:  # NumPy without the kernel, torch off the host
            patch.setattr(_fused, "operands", lambda a, b: None)
            patch.setattr(_measures, "routable", lambda first: False)
            worst["generic"] = _ulps(_call(np.asarray, row), truth)
            worst["torch_generic"] = _ulps(_torch(row), truth)
    assert max(worst.values()) <= 1.0, worst


def test_array_api_strict_perplexity_of_a_large_entropy() -> None:
    """H = log(1e300)/2 + log(2)/2, 345.7 nats: array-api-strict (no ``frexp``) gave
    1.4142135623730394e150, 306 ulps from sqrt(2) 1e150; now within an ulp."""
    xs = pytest.importorskip("array_api_strict")
    p, q = np.array([0.5, 0.5, 0.0]), np.array([1e-300, 0.5, 0.5])
    truth = _truth(p, q, "probs", "probs")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = float(crossent.perplexity(xs.asarray(p), xs.asarray(q)))
    assert _ulps(got, truth) <= 1.0, (got, _ulps(got, truth))


def test_perplexity_of_logits_is_screened_by_the_kernel() -> None:
    """Guard: the kernel's screen still refuses what the validation refuses (NaN and
    +inf logits, log-probabilities summing above 1), with its message."""
    with pytest.raises(crossent.InputError):
        crossent.perplexity(np.array([[0.0, np.nan], [0.0, 1.0]]), p_form="logits")
    with pytest.raises(crossent.InputError):
        crossent.perplexity(np.array([0.0, np.inf]), p_form="logits")
    with pytest.raises(crossent.InputError):
        crossent.perplexity(np.log(np.array([0.7, 0.7])), p_form="log_probs")
    with pytest.raises(crossent.InputError):
        crossent.perplexity(np.full(2, 0.5), np.array([1.0, np.nan]), q_form="logits")
