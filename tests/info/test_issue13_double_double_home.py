"""One home for the double-double primitives, and the perplexity kernel's table ``exp``
(issue 13, branch ddone1).

The generic path had two double-double families, ``info/_perplexity_dd.py`` (``log_dd``,
``exp_parts``, ``sum_dd``, ...) and ``info/_js_mixed.py`` (``exp_dd``,
``excess_of_pairs``, ...), on TwoSum and TwoProduct from ``_numerics``; they now live in
``crossent/_double_double.py`` and the others import them (the old private names of
``_numerics`` are the same objects; branch exphome1 moved ``_kl_mixed``'s exponential
there too, the one array double-double ``exp``). The perplexity
kernel takes its weights' ``exp`` from a table (``_perplexity_kernels._exp_table``)
instead of ``exp`` and a residual by an atanh series: the results stay within half an
ulp of mpmath's, one side of logits equals P = Q logits bit for bit, and a screened side
of log-probabilities (whose exp-sum now comes from the weights) is flagged as before.
"""

from __future__ import annotations

import ast
import inspect

import mpmath
import numpy as np
import pytest

import crossent
from crossent import _numerics
from crossent.info import _fused, _js_mixed, _kl_mixed, _measures, _perplexity_dd

_needs_numba = pytest.mark.skipif(not _fused.available(), reason="needs Numba")


def test_generic_double_double_primitives_have_one_home() -> None:
    """No other generic-path module defines a primitive of ``_double_double`` again, and
    the names they are imported by are the home's objects."""
    from crossent import _double_double  # (new: main has none)

    names = set(_double_double.__all__)
    for module in (_numerics, _perplexity_dd, _js_mixed, _kl_mixed, _measures):
        tree = ast.parse(inspect.getsource(module))
        defined = {
            node.name.lstrip("_") for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
        }
        assert not defined & names, (module.__name__, defined & names)
    assert _numerics._two_sum is _double_double.two_sum
    assert _numerics._two_product is _double_double.two_product
    assert _numerics._quick_two_sum is _double_double.quick_two_sum
    assert _kl_mixed.exp_pairs is _double_double.exp_pairs  # (branch exphome1)
    assert _js_mixed.exp_dd is _double_double.exp_dd


def _rows() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(13)
    logits = rng.normal(size=(6, 300)) * 3.0
    top = np.max(logits, axis=-1, keepdims=True)
    log_probs = (logits - top) - np.log(np.sum(np.exp(logits - top), axis=-1, keepdims=True))
    return logits, log_probs, rng.dirichlet(np.ones(300), size=6)


def _truth(log_p: list, log_q: list) -> mpmath.mpf:
    return mpmath.exp(-mpmath.fsum(mpmath.exp(a) * b for a, b in zip(log_p, log_q, strict=True)))


def _logs(row: np.ndarray, form: str) -> list:
    values = [mpmath.mpf(float(x)) for x in row]
    if form == "probs":
        return [mpmath.log(x) for x in values]
    if form == "log_probs":
        return values
    top = max(values)
    log_s = mpmath.log(mpmath.fsum(mpmath.exp(x - top) for x in values))
    return [(x - top) - log_s for x in values]


@_needs_numba
def test_perplexity_kernel_within_half_an_ulp() -> None:
    """Logits, log-probabilities and probabilities against logits (the table ``exp``'s
    three uses) within half an ulp of mpmath's (40 digits), and e^H by the table too."""
    logits, log_probs, probs = _rows()
    cases = {
        "logits": (crossent.perplexity(logits, p_form="logits"), logits, "logits", None, ""),
        "log_probs": (
            crossent.perplexity(log_probs, p_form="log_probs"),
            log_probs,
            "log_probs",
            None,
            "",
        ),
        "q_logits": (
            crossent.perplexity(probs, logits, q_form="logits"),
            probs,
            "probs",
            logits,
            "logits",
        ),
    }
    worst = {}
    with mpmath.workdps(40):
        for name, (got, p, p_form, q, q_form) in cases.items():
            errors = []
            for i in range(p.shape[0]):
                log_p = _logs(p[i], p_form)
                truth = _truth(log_p, log_p if q is None else _logs(q[i], q_form))
                errors.append(float(abs(mpmath.mpf(float(got[i])) - truth)) / np.spacing(got[i]))
            worst[name] = max(errors)
    assert max(worst.values()) <= 0.5, worst


@_needs_numba
def test_one_side_of_logits_equals_p_against_itself() -> None:
    """W taken as S for one side of logits: the same bits as P = Q logits, which sums
    both."""
    logits, _, _ = _rows()
    one = crossent.perplexity(logits, p_form="logits")
    two = crossent.perplexity(logits, logits, p_form="logits", q_form="logits")
    np.testing.assert_array_equal(one, two)


@_needs_numba
def test_log_probability_screen_from_the_weights() -> None:
    """A side of log-probabilities is suspect (checked in full) where its exp-sum is off
    by 1e-6, not where it is a rounded log-softmax."""
    _, log_probs, _ = _rows()
    tolerance = 1e-9
    _, suspect = _fused.perplexity_rows(
        log_probs, log_probs, cross=False, forms=(1, 1), tolerances=(tolerance, None)
    )
    assert not suspect
    shifted = log_probs.copy()
    shifted[3] -= 1e-6
    _, suspect = _fused.perplexity_rows(
        shifted, shifted, cross=False, forms=(1, 1), tolerances=(tolerance, None)
    )
    assert suspect
    with pytest.raises(crossent.InputError):
        crossent.perplexity(shifted, p_form="log_probs")
