"""Tests that kill the surviving mutants of ``crossent/info/_measures.py`` (tests/MUTATION.md).

Each error must name the argument the caller passed; the mutants renamed it (``XXpXX``).
Numbers are mutmut 2.5.1's in the recorded (partial) run.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent.errors import InputError, InputTypeError

P = np.array([0.25, 0.75])


@pytest.mark.parametrize("measure", [crossent.entropy, crossent.perplexity])
def test_mutants_measures_bad_p_form_names_p_form(measure: object) -> None:
    """Mutant 1: the one-sided path names ``p_form``."""
    with pytest.raises(InputError, match=r"^`p_form` must be one of"):
        measure(P, p_form="bad")  # type: ignore[operator]


def test_mutants_measures_bad_axis_names_p() -> None:
    """Mutant 5: an axis out of range names the array ``p``."""
    with pytest.raises(InputError, match=r"^`axis` 3 is out of range for `p` with 1 dimensions$"):
        crossent.entropy(P, axis=3)


def test_mutants_measures_complex_p_names_p() -> None:
    """Mutants 3, 7: a complex ``p`` (array or list) is refused by name."""
    with pytest.raises(InputTypeError, match=r"^`p` must be real numbers; got dtype complex128$"):
        crossent.entropy(P.astype(complex))
    with pytest.raises(InputTypeError, match=r"^`p` must be real numbers; got an array of dtype"):
        crossent.entropy(["a", "b"])


def test_mutants_measures_negative_p_names_p() -> None:
    """Mutant 9: the one-sided value check names ``p``."""
    with pytest.raises(
        InputError,
        match=r"^`p` must be non-negative \(probabilities\); got -0.25 at index 0\. If these "
        r"are logits or log-probabilities, say so: p_form='logits' or 'log_probs'$",
    ):
        crossent.entropy(np.array([-0.25, 1.25]))


TWO_SIDED = [
    crossent.cross_entropy,
    crossent.kl_divergence,
    crossent.js_divergence,
    crossent.perplexity,
    crossent.cross_entropy_decomposition,
]
BAD = np.array([-0.25, 1.25])


@pytest.mark.parametrize("measure", TWO_SIDED)
@pytest.mark.parametrize("side", ["p", "q"])
def test_mutants_measures_two_sided_errors_name_the_argument(measure: object, side: str) -> None:
    """Mutants 11, 12, 14, 15, 17, 18: every refusal of the two-sided path names the
    argument (``p``/``q``, ``p_form``/``q_form``) it is about."""
    other = "q" if side == "p" else "p"

    def call(**arrays: object) -> object:
        args = {side: arrays.get("bad", P), other: P}
        return measure(args["p"], args["q"], **arrays.get("kw", {}))  # type: ignore[operator]

    with pytest.raises(InputError, match=rf"^`{side}_form` must be one of"):
        call(kw={f"{side}_form": "bad"})
    with pytest.raises(
        InputError, match=rf"^`{side}` must be non-negative \(probabilities\); got -0.25"
    ):
        call(bad=BAD)
    with pytest.raises(InputTypeError, match=rf"^`{side}` must be real numbers; got"):
        call(bad=P.astype(complex))
    with pytest.raises(InputTypeError, match=rf"^`{side}` must be real numbers; got an array of"):
        call(bad=["a", "b"])  # not an array: converted, and refused, by name


def _mp(values: list[float]) -> list[object]:
    import mpmath

    return [mpmath.mpf(v) for v in values]


def test_mutants_measures_probs_inputs_take_the_direct_probability_path() -> None:
    """Mutants 21-32: ``probs`` inputs use the terms computed from probabilities, not the
    round trip through logarithms, which loses accuracy that an mpmath oracle sees:
    ``exp(log p) log p`` for a tiny ``p`` (relative error ~1e-14), and ``log p - log q``
    for nearly equal ``p``, ``q`` (KL of 2e-24 computed as 4e-24)."""
    mpmath = pytest.importorskip("mpmath")
    # 50 digits: the KL of 2e-24 below is the sum of two terms of 1e-12
    with mpmath.workdps(50):
        p = [1e-300, 1 - 1e-300]
        q = [1e-310, 1 - 1e-310]
        mp_p, mp_q = _mp(p), _mp(q)
        entropy = -sum(a * mpmath.log(a) for a in mp_p)
        cross = -sum(a * mpmath.log(b) for a, b in zip(mp_p, mp_q, strict=True))
    np.testing.assert_allclose(crossent.entropy(np.array(p)), float(entropy), rtol=1e-15, atol=0)
    np.testing.assert_allclose(
        crossent.cross_entropy(np.array(p), np.array(q)), float(cross), rtol=1e-15, atol=0
    )
    p = [0.5 + 1e-12, 0.5 - 1e-12]
    q = [0.5, 0.5]
    mp_p, mp_q = _mp(p), _mp(q)
    with mpmath.workdps(50):
        kl = sum(a * mpmath.log(a / b) for a, b in zip(mp_p, mp_q, strict=True))
    np.testing.assert_allclose(
        crossent.kl_divergence(np.array(p), np.array(q)), float(kl), rtol=1e-3, atol=0
    )


@pytest.mark.parametrize("measure", [crossent.cross_entropy, crossent.kl_divergence])
@pytest.mark.parametrize(("p_form", "q_form"), [("log_probs", "probs"), ("probs", "log_probs")])
def test_mutants_measures_mixed_forms_agree_with_probs(
    measure: object, p_form: str, q_form: str
) -> None:
    """Mutants 23, 25, 27, 28, 30, 32: one side in ``probs``, the other in ``log_probs``,
    must not be fed to the probabilities-only terms."""
    q = np.array([0.5, 0.5])
    p_in = np.log(P) if p_form == "log_probs" else P
    q_in = np.log(q) if q_form == "log_probs" else q
    expected = measure(P, q)  # type: ignore[operator]
    got = measure(p_in, q_in, p_form=p_form, q_form=q_form)  # type: ignore[operator]
    np.testing.assert_allclose(got, expected, rtol=1e-14)
