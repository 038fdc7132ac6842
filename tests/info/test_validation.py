"""Every error path: bad input raises InputError/InputTypeError naming argument, index, value."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import crossent
from crossent import InputError, InputTypeError

from conftest import Backend
from tolerances import CLOSED_FORM

PAIR_MEASURES = [
    crossent.cross_entropy,
    crossent.kl_divergence,
    crossent.js_divergence,
    crossent.cross_entropy_decomposition,
    crossent.perplexity,
]

GOOD = np.array([[0.2, 0.8], [0.5, 0.5], [0.1, 0.9]])


def test_errors_are_value_and_type_errors() -> None:
    assert issubclass(InputError, ValueError)
    assert issubclass(InputTypeError, TypeError)
    assert issubclass(InputError, crossent.CrossentError)


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        (-0.25, r"`q` must be non-negative \(probabilities\); got -0\.25 at index \(2, 0\)"),
        (math.nan, r"`q` contains NaN at index \(2, 0\)"),
        (math.inf, r"`q` must be finite; got inf at index \(2, 0\)"),
        (1.5, r"`q` must be probabilities in \[0, 1\]; got 1\.5 at index \(2, 0\)"),
    ],
)
@pytest.mark.parametrize("measure", PAIR_MEASURES)
def test_bad_entries_name_argument_index_and_value(
    measure: object, value: float, pattern: str
) -> None:
    q = GOOD.copy()
    q[2, 0] = value
    with pytest.raises(InputError, match=pattern):
        measure(GOOD, q)  # type: ignore[operator]


def test_bad_entry_index_is_in_the_callers_layout() -> None:
    # Classes along axis 0: the offending entry is q[1, 2] as the caller indexes it.
    q = GOOD.T.copy()
    q[1, 2] = -0.1
    with pytest.raises(InputError, match=r"at index \(1, 2\)"):
        crossent.kl_divergence(GOOD.T, q, axis=0)
    p3 = np.full((2, 3, 4), 0.25)
    p3[1, 2, 3] = np.nan
    with pytest.raises(InputError, match=r"at index \(1, 2, 3\)"):
        crossent.entropy(p3, axis=1)


def test_row_not_summing_to_one_names_row_sum_and_tolerance() -> None:
    p = GOOD.copy()
    p[1] = [0.5, 0.4]
    expected = (
        "`p` must sum to 1 along `axis`; row 1 sums to 0.9 (|error| 0.1 > tolerance "
        "1.14e-13 for float64 with 2 classes). crossent never renormalises silently"
    )
    with pytest.raises(InputError, match=re.escape(expected)):
        crossent.entropy(p)
    with pytest.raises(InputError, match=r"`q` must sum to 1 along `axis`; row \(1, 0\)"):
        crossent.cross_entropy(GOOD[0], np.broadcast_to(p, (2, 3, 2)).transpose(1, 0, 2))


def test_float32_rows_of_100_classes_summing_to_1_within_1e_6_are_accepted() -> None:
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(100), size=1000).astype(np.float32)
    p[:, 0] += np.float32(1e-6)  # a float32 softmax output: sums to 1 only to ~1e-6
    assert np.all(np.abs(p.astype(np.float64).sum(axis=1) - 1) > 5e-7)
    assert crossent.entropy(p).shape == (1000,)


def test_float64_row_off_by_1e_9_is_rejected() -> None:
    p = np.array([0.5, 0.5 + 1e-9])
    with pytest.raises(InputError, match="sums to"):
        crossent.entropy(p)


def test_tolerance_scales_with_dtype_and_classes() -> None:
    """Issue 14's derivation: eps_s / 2 (+ eps_s / 2 below float32) + min(eps_c (K + 513), 1e-3)."""
    from crossent._checks import row_sum_tolerance

    eps32, eps64 = np.finfo(np.float32).eps, np.finfo(np.float64).eps
    assert row_sum_tolerance(np.float64, 100, xp=np) == pytest.approx(
        eps64 / 2 + 613 * eps64, **CLOSED_FORM.rel_abs()
    )
    assert row_sum_tolerance(np.float32, 100, xp=np) == pytest.approx(
        eps32 / 2 + 613 * eps32, **CLOSED_FORM.rel_abs()
    )
    # float16 storage rounding and a float16 normalising sum, float32 computation
    assert row_sum_tolerance(np.float16, 100, xp=np) == pytest.approx(
        np.finfo(np.float16).eps + 613 * eps32, **CLOSED_FORM.rel_abs()
    )
    # the computation term is capped at 1e-3 for huge vocabularies
    assert row_sum_tolerance(np.float32, 200_000, xp=np) == pytest.approx(
        eps32 / 2 + 1e-3, **CLOSED_FORM.rel_abs()
    )


@pytest.mark.parametrize(
    ("values", "form", "pattern"),
    [
        ([0.0, math.nan], "log_probs", r"`p` contains NaN at index 1"),
        ([0.0, math.inf], "log_probs", r"`p` \(log-probabilities\) must not be \+inf"),
        ([math.log(0.5), math.log(0.6)], "log_probs", r"`p` must sum to 1 .* has exp-sum 1\.1"),
        ([1.0, math.nan], "logits", r"`p` contains NaN at index 1"),
        ([1.0, math.inf], "logits", r"`p` \(logits\) must not be \+inf; got \+inf at index 1"),
        ([-math.inf, -math.inf], "logits", r"`p` \(logits\) has the distribution entirely -inf"),
    ],
)
def test_log_forms_are_validated(values: list[float], form: str, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        crossent.entropy(values, p_form=form)


def test_logits_may_be_minus_inf_on_some_classes() -> None:
    assert crossent.entropy([0.0, -math.inf, 0.0], p_form="logits") == pytest.approx(
        math.log(2), **CLOSED_FORM.rel_abs()
    )
    assert crossent.cross_entropy([1, 0], [-math.inf, 0.0], q_form="logits") == math.inf
    assert crossent.cross_entropy([0, 1], [-math.inf, 0.0], q_form="logits") == 0.0


def test_logits_of_1e4_stay_exact() -> None:
    assert crossent.cross_entropy([1, 0], [1e4, -1e4], q_form="logits") == 0.0
    assert crossent.cross_entropy([0, 1], [1e4, -1e4], q_form="logits") == 2e4


def test_validate_false_skips_data_checks_but_not_shape_checks() -> None:
    bad = np.array([0.5, 0.6])
    assert crossent.entropy(bad, validate=False) == pytest.approx(
        -(0.5 * math.log(0.5) + 0.6 * math.log(0.6)), **CLOSED_FORM.rel_abs()
    )
    assert math.isnan(crossent.entropy([math.nan, 1.0], validate=False))
    with pytest.raises(InputError, match="same number of classes"):
        crossent.kl_divergence([0.5, 0.5], [1 / 3] * 3, validate=False)


def test_class_count_and_batch_shape_mismatches() -> None:
    with pytest.raises(
        InputError,
        match=r"`p` and `q` must have the same number of classes "
        r"along axis -1; got 2 and 3",
    ):
        crossent.cross_entropy([0.5, 0.5], [1 / 3] * 3)
    with pytest.raises(InputError, match=r"batch shapes \(3,\) and \(2,\)"):
        crossent.kl_divergence(GOOD, GOOD[:2])


@pytest.mark.parametrize("axis", [2, -3, 1.0, True])
def test_bad_axis(axis: object) -> None:
    # (a value of the wrong type: InputTypeError, a TypeError; out of range: InputError)
    error = InputError if type(axis) is int else InputTypeError
    with pytest.raises(error, match="axis"):
        crossent.entropy(GOOD, axis=axis)  # type: ignore[arg-type]


def test_scalar_distribution_is_rejected() -> None:
    with pytest.raises(InputError, match="at least one dimension"):
        crossent.entropy(1.0)
    with pytest.raises(InputError, match="at least one dimension"):
        crossent.cross_entropy(1.0, [1.0])


@pytest.mark.parametrize("base", [0, 1, -2, math.inf, math.nan, "2", True, 1.0])
def test_bad_base(base: object) -> None:
    error = InputTypeError if isinstance(base, str | bool) else InputError  # (as axis)
    with pytest.raises(error, match="`base` must be"):
        crossent.entropy([0.5, 0.5], base=base)  # type: ignore[arg-type]
    with pytest.raises(error, match="`base` must be"):
        crossent.surprisal(0.5, base=base)  # type: ignore[arg-type]


@pytest.mark.parametrize("keyword", ["p_form", "q_form"])
def test_bad_form(keyword: str) -> None:
    with pytest.raises(
        InputError,
        match=f"`{keyword}` must be one of .* got 'probabilities'. crossent never guesses",
    ):
        crossent.cross_entropy([1.0], [1.0], **{keyword: "probabilities"})


@pytest.mark.parametrize("eps", [0, 1, -1e-3, "1e-10", True])
def test_bad_eps(eps: object) -> None:
    with pytest.raises(InputError, match="`eps` must be"):
        crossent.cross_entropy([1.0], [1.0], eps=eps)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="`eps` must be"):
        crossent.binary_cross_entropy(1.0, 1.0, eps=eps)  # type: ignore[arg-type]


def test_eps_needs_probabilities() -> None:
    with pytest.raises(InputError, match="needs q_form='probs'; got q_form='logits'"):
        crossent.cross_entropy([1.0, 0.0], [0.0, 0.0], q_form="logits", eps=1e-10)


def test_complex_and_non_numeric_input_are_type_errors() -> None:
    with pytest.raises(InputTypeError, match="`q` must be real numbers; got dtype complex128"):
        crossent.kl_divergence([0.5, 0.5], np.array([0.5, 0.5], dtype=complex))
    with pytest.raises(InputTypeError, match="`p` must be real numbers"):
        crossent.entropy(["a", "b"])
    with pytest.raises(InputTypeError, match="`p` must be array-like"):
        crossent.entropy([[0.5], [0.2, 0.8]])


def test_arrays_from_two_libraries_are_a_type_error() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(InputTypeError, match="one array library"):
        crossent.cross_entropy(np.array([0.5, 0.5]), torch.tensor([0.5, 0.5]))


@pytest.mark.parametrize(
    ("function", "args", "pattern"),
    [
        (crossent.surprisal, (-0.1,), r"`p` must be non-negative .* got -0\.1 at index \(\)"),
        (
            crossent.surprisal,
            ([0.5, 1.5],),
            r"`p` must be probabilities in \[0, 1\]; got 1\.5 "
            r"at index 1",
        ),
        (crossent.binary_entropy, ([0.5, math.nan],), r"`p` contains NaN at index 1"),
        (crossent.binary_cross_entropy, ([1, 0], [0.5, 2.0]), r"`q` must be probabilities"),
        (
            crossent.binary_cross_entropy,
            ([1, 0, 1], [0.5, 0.5]),
            r"shapes must broadcast; got "
            r"`p` \(3,\) and `q` \(2,\)",
        ),
    ],
)
def test_pointwise_errors(function: object, args: tuple[object, ...], pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        function(*args)  # type: ignore[operator]


def test_errors_on_every_backend(backend: Backend) -> None:
    q = GOOD.copy()
    q[2, 1] = -0.5
    with pytest.raises(InputError, match=r"got -0\.5 at index \(2, 1\)"):
        crossent.kl_divergence(backend.asarray(GOOD), backend.asarray(q))
    p = GOOD.copy()
    p[1] = [0.5, 0.4]
    with pytest.raises(InputError, match=r"row 1 sums to 0\.9"):
        crossent.entropy(backend.asarray(p))


def test_inputs_are_never_written(backend: Backend) -> None:
    p = backend.asarray(GOOD)
    q = backend.asarray(GOOD[::-1].copy())
    before = backend.to_numpy(p).copy(), backend.to_numpy(q).copy()
    for measure in PAIR_MEASURES:
        measure(p, q)  # type: ignore[operator]
        measure(p, q, p_form="logits", q_form="logits")  # type: ignore[operator]
    np.testing.assert_array_equal(backend.to_numpy(p), before[0])
    np.testing.assert_array_equal(backend.to_numpy(q), before[1])


def test_validation_inside_jax_jit_explains_validate_false() -> None:
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    p = jnp.asarray([0.5, 0.5])
    with pytest.raises(InputTypeError, match=r"traced array .* pass validate=False"):
        jax.jit(lambda a: crossent.entropy(a))(p)
    jitted = jax.jit(lambda a: crossent.entropy(a, validate=False))
    assert float(jitted(p)) == pytest.approx(math.log(2), **CLOSED_FORM.rel_abs(jitted(p).dtype))
