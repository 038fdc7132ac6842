"""Issue 13, "Small inputs": the lean path of the sigmoid losses (``losses/_small_sigmoid.py``).

``sigmoid_cross_entropy``, ``sigmoid_focal_loss`` and their gradients take small float32
and float64 calls through a hybrid: compiled calls (``_small_sigmoid_numba``) do the
generic path's arithmetic in its order and dtype, and NumPy's np.exp, np.log1p and np.log
run between them on the generic path's values, so the results are the full path's bit
for bit. These tests pin that against the full path itself (the prepare step and the
body, without the shortcut) over random and hard inputs and every option the lean path
takes; prove with spies that the issue's benchmark calls take it (and never reach the
full path); and check that every call it does not take (other dtypes and layouts, bad
values and options, calls that warn) gives the full path's value, error or warning.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels, _sigmoid, _small_sigmoid
from crossent.losses._sigmoid import _binary, _focal_binary
from losses.small_call_paths import fail_on, record_calls

from tolerances import assert_identical

pytestmark = pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")

# name: (public function, its prepare step, the lean path's function)
FAMILIES: dict[str, tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]] = {
    "ce": (crossent.sigmoid_cross_entropy, _binary, _small_sigmoid.cross_entropy),
    "ce_grad": (crossent.sigmoid_cross_entropy_grad, _binary, _small_sigmoid.cross_entropy_grad),
    "focal": (crossent.sigmoid_focal_loss, _focal_binary, _small_sigmoid.focal_loss),
    "focal_grad": (
        crossent.sigmoid_focal_loss_grad,
        _focal_binary,
        _small_sigmoid.focal_loss_grad,
    ),
}
REDUCTIONS = ("none", "sum", "mean", "parts")
SHARED_OPTIONS: list[dict[str, Any]] = [
    {},
    {"validate": False},
    *({"reduction": r} for r in REDUCTIONS),
    {"base": 2},
    {"base": 10.0, "reduction": "none"},
    {"base": 0.5, "reduction": "parts"},
    {"label_smoothing": 0.1},
    {"label_smoothing": 1.0, "reduction": "none"},
    {"label_smoothing": 1e-7, "reduction": "sum", "base": 2, "validate": False},
    {"weight": "classes"},
    {"weight": "full", "reduction": "none"},
    {"weight": "rows", "reduction": "sum"},
    {"weight": "scalar", "label_smoothing": 0.2},
    {"weight": "zeros", "reduction": "mean"},  # some weights 0
    {"weight": "all_zero", "reduction": "mean"},  # a normaliser of 0
    {"weight": "all_zero", "reduction": "parts"},
]
OWN_OPTIONS: dict[str, list[dict[str, Any]]] = {
    "ce": [
        {"pos_weight": "classes"},
        {"pos_weight": "rows", "weight": "classes", "reduction": "none"},
        {"pos_weight": "full", "label_smoothing": 0.3, "base": 2},
    ],
    "focal": [
        {"gamma": 0.0},
        {"gamma": 0},
        {"gamma": 0.5, "alpha": 0.25},
        {"gamma": 3.0, "reduction": "none"},
        {"alpha": 0.0},
        {"alpha": 1.0, "reduction": "sum"},
        {"alpha": 1},
        {"gamma": 0.0, "alpha": 0.0, "reduction": "none"},
        {"gamma": 1, "alpha": 0.75, "weight": "zeros", "label_smoothing": 0.1},
        {"gamma": 2.5, "base": 2, "reduction": "parts"},
    ],
}
SHAPES = [(10,), (1, 10), (8, 10), (3, 4, 10), (1,), (7,), (2, 1, 3)]


def _options(family: str) -> list[dict[str, Any]]:
    return SHARED_OPTIONS + OWN_OPTIONS[family.removesuffix("_grad")]


def _weight(kind: str, shape: tuple[int, ...], dtype: Any, seed: int) -> np.ndarray:
    """A weight of the lean path's shapes: per class, per entry, per row, a scalar."""
    rng = np.random.default_rng(seed)
    if kind == "classes":
        return rng.uniform(0.5, 2.0, size=shape[-1:]).astype(dtype)
    if kind == "rows":
        return rng.uniform(0.5, 3.0, size=(*shape[:-1], 1)).astype(dtype)
    if kind == "scalar":
        return np.array(1.7, dtype=dtype)
    w = rng.uniform(0.0, 2.0, size=shape).astype(dtype)
    if kind == "zeros":
        w.flat[:: max(1, w.size // 3)] = 0.0
    elif kind == "all_zero":
        w[...] = 0.0
    return w


def _resolve(options: dict[str, Any], shape: tuple[int, ...], dtype: Any) -> dict[str, Any]:
    """Options with the weights' kinds made arrays."""
    return {
        key: _weight(value, shape, dtype, len(key)) if key in ("weight", "pos_weight") else value
        for key, value in options.items()
    }


def _targets(kind: str, shape: tuple[int, ...], dtype: Any, rng: np.random.Generator) -> Any:
    """0/1 targets (some -0.0), soft ones, or a mix with 0 and 1 among soft ones."""
    if kind == "hard":
        t = (rng.uniform(size=shape) < 0.5).astype(dtype)
        t[t == 0] = -0.0 if rng.uniform() < 0.5 else 0.0
        return t
    t = rng.uniform(size=shape).astype(dtype)
    if kind == "mixed":
        t[rng.uniform(size=shape) < 0.3] = 1.0
        t[rng.uniform(size=shape) < 0.3] = 0.0
    return t


def _full(family: str, *args: Any, **kwargs: Any) -> Any:
    """The full path: the prepare step and the body, without the shortcut."""
    public, prepare, _ = FAMILIES[family]
    return public.__wrapped__(prepare(*args, **kwargs))


def _lean(family: str, *args: Any, **kwargs: Any) -> Any:
    """The lean path's answer (None: not taken)."""
    return FAMILIES[family][2](args, dict(kwargs))


def _same_bits(actual: Any, expected: Any) -> None:
    """:func:`assert_identical`, and the same bytes (a -0.0 is not a 0.0, NaN payloads)."""
    assert_identical(actual, expected)
    parts = (
        zip(actual, expected, strict=True) if isinstance(expected, tuple) else [(actual, expected)]
    )
    for got, want in parts:
        assert np.asarray(got).tobytes() == np.asarray(want).tobytes()


def _check_taken(family: str, x: np.ndarray, t: np.ndarray, options: dict[str, Any]) -> None:
    """The lean path takes the call and gives the full path's result, bit for bit (and
    writes into none of its inputs)."""
    kwargs = _resolve(options, x.shape, x.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the full path does not warn on these
        want = _full(family, x, t, **kwargs)
    given = [np.copy(a) for a in (x, t, *kwargs.values()) if isinstance(a, np.ndarray)]
    got = _lean(family, x, t, **kwargs)
    assert got is not None, "the lean path did not take the call"
    _same_bits(got, want)
    after = [a for a in (x, t, *kwargs.values()) if isinstance(a, np.ndarray)]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(given, after, strict=True))
    _same_bits(FAMILIES[family][0](x, t, **kwargs), want)


def _check_taken_unless_warned(
    family: str, x: np.ndarray, t: np.ndarray, options: dict[str, Any]
) -> None:
    """:func:`_check_taken`, or, where the full path warns (an overflow), not taken and
    the public function warns as the full path does."""
    kwargs = _resolve(options, x.shape, x.dtype)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _full(family, x, t, **kwargs)
    except RuntimeWarning:
        assert _lean(family, x, t, **kwargs) is None
        public = FAMILIES[family][0]
        assert _outcome(lambda: public(x, t, **kwargs)) == _outcome(
            lambda: _full(family, x, t, **kwargs)
        )
        return
    if family.startswith("focal") and _lean(family, x, t, **kwargs) is None:
        # The focal factor's exp overflowing to a factor 0 no longer warns on the full path
        # (issue 13: no RuntimeWarning where the overflow is handled); the lean path still
        # leaves such calls to it, which must then give the full path's bits.
        _same_bits(FAMILIES[family][0](x, t, **kwargs), _full(family, x, t, **kwargs))
        return
    if family == "ce" and _lean(family, x, t, **kwargs) is None:
        # A float32 total past float32's range (losses of 3.4e38) no longer warns on the
        # full path (hostilenumpy8: the cast without NumPy's overflow warning; a mean is
        # the float64 total's quotient); the lean path leaves a call whose total would
        # not be finite to it, which must then give the full path's bits.
        summed = {**kwargs, "reduction": "sum"}
        assert not np.isfinite(_full(family, x, t, **summed))
        _same_bits(FAMILIES[family][0](x, t, **kwargs), _full(family, x, t, **kwargs))
        return
    _check_taken(family, x, t, options)


CASES = [
    (family, dtype, k)
    for family in FAMILIES
    for dtype in (np.float64, np.float32)
    for k in range(len(_options(family)))
]


@pytest.mark.parametrize(("family", "dtype", "k"), CASES)
def test_issue13_small_sigmoid_random_calls_are_the_full_path_bit_for_bit(
    family: str, dtype: Any, k: int
) -> None:
    options = _options(family)[k]
    rng = np.random.default_rng(1000 * k + len(family))
    for shape, scale, kind in itertools.product(
        SHAPES, (0.1, 3.0, 40.0, 1e4), ("hard", "soft", "mixed")
    ):
        x = (scale * rng.standard_normal(shape)).astype(dtype)
        _check_taken(family, x, _targets(kind, shape, dtype, rng), options)


def _hard_inputs(dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """Every hard logit against every kind of target: signed zeros, subnormals, the
    saturated range, and beyond the focal gradient's clip (finfo.max / 4)."""
    info = np.finfo(dtype)
    big = float(info.max)
    logits = [0.0, -0.0, float(info.smallest_subnormal), 1e-30, 1.0, 17.0, 40.0, 89.0]
    logits += [104.0, 800.0, 1e4, big / 4, np.nextafter(dtype(big / 4), dtype(np.inf)), big]
    logits += [-v for v in logits[2:]]
    targets = [0.0, -0.0, 1.0, 0.5, 1e-7, 1 - 2**-20, float(info.smallest_subnormal)]
    x, t = zip(*itertools.product(logits, targets), strict=True)
    return np.array(x, dtype=dtype), np.array(t, dtype=dtype)


HARD_OPTIONS = [
    {"reduction": "none"},
    {"reduction": "none", "gamma": 0.0},
    {"reduction": "none", "gamma": 0.5},
    {"reduction": "none", "alpha": 0.0},
    {"reduction": "none", "alpha": 1.0, "gamma": 0.0},
    {"reduction": "none", "label_smoothing": 1e-3},
    {"reduction": "none", "label_smoothing": 1.0},
    {"reduction": "sum", "base": 2},
    {"reduction": "parts"},
    {},
]


HARD_CASES = [
    (family, options)
    for family in FAMILIES
    for options in HARD_OPTIONS
    if family.startswith("focal") or not ("gamma" in options or "alpha" in options)
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("family", "options"), HARD_CASES, ids=str)
@pytest.mark.parametrize("target_kind", ["all", "hard"])
def test_issue13_small_sigmoid_hard_entries_are_the_full_path_bit_for_bit(
    family: str, dtype: Any, options: dict[str, Any], target_kind: str
) -> None:
    x, t = _hard_inputs(dtype)
    if target_kind == "hard":  # 0/1 targets only: the focal factor's hard branch
        keep = (t == 0) | (t == 1)
        x, t = x[keep], t[keep]
    _check_taken_unless_warned(family, x, t, options)
    modest = np.abs(x) <= 1e4  # (no overflow: always taken)
    _check_taken(family, x[modest], t[modest], options)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [8191, 8192])
def test_issue13_small_sigmoid_takes_up_to_numpys_buffer(dtype: Any, n: int) -> None:
    """The sums are one pairwise sum up to 8192 entries (NumPy's buffer for the float32
    sums with a float64 accumulator); one entry more is left to the full path."""
    rng = np.random.default_rng(n)
    x = (5 * rng.standard_normal(n)).astype(dtype)
    t = rng.uniform(size=n).astype(dtype)
    for family in FAMILIES:
        _check_taken(family, x, t, {"weight": "full"})
        _check_taken(family, x, t, {"reduction": "sum"})
    if n == _small_sigmoid.MOST_ELEMENTS:
        assert _lean("ce", np.append(x, x[:1]), np.append(t, t[:1])) is None


BENCHMARK = {  # the issue's calls: (10,) float64 logits, 0/1 targets, the defaults
    "ce": ["start", "exp", "log1p", "finish"],  # (finish calls terms)
    "ce_grad": ["start"],  # (then _sigmoid_grad_numba's kernel, float64 as float32)
    "focal": ["start", "exp", "log1p", "terms", "exp", "finish"],
    "focal_grad": ["start", "exp", "log1p", "terms", "exp", "finish"],
}


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_issue13_small_sigmoid_benchmark_calls_take_the_lean_path(
    monkeypatch: pytest.MonkeyPatch, family: str, validate: bool
) -> None:
    """The benchmark's calls go through the compiled stages and NumPy's ufuncs alone:
    the full path (whose prepare step looks up the arrays' namespace) fails if reached."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal(10)
    bt = (rng.uniform(size=10) < 0.5).astype(np.float64)
    want = _full(family, z, bt, validate=validate)
    compiled = _small_sigmoid._compiled()
    names = ("start", "spread", "terms", "soft_log_q", "finish")
    calls = record_calls(monkeypatch, compiled, names)
    ufuncs = record_calls(monkeypatch, np, ("exp", "log1p", "log"))
    fail_on(monkeypatch, _sigmoid, ["namespace"], expected="the lean path")
    _same_bits(FAMILIES[family][0](z, bt, validate=validate), want)
    assert calls == [name for name in BENCHMARK[family] if name in names]
    assert ufuncs == [name for name in BENCHMARK[family] if name not in names]


def test_issue13_small_sigmoid_soft_focal_factor_takes_numpys_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Soft targets: log(1 - p_t) by NumPy's log, log1p, exp and log1p, as there."""
    rng = np.random.default_rng(1)
    z, t = rng.standard_normal(10), rng.uniform(size=10)
    want = _full("focal", z, t)
    ufuncs = record_calls(monkeypatch, np, ("exp", "log1p", "log"))
    fail_on(monkeypatch, _sigmoid, ["namespace"], expected="the lean path")
    _same_bits(crossent.sigmoid_focal_loss(z, t), want)
    assert ufuncs == ["exp", "log1p", "log", "log1p", "exp", "log1p", "exp"]


def _outcome(call: Callable[[], Any]) -> tuple[Any, str]:
    """The error or warning a call raises, or its result's type, dtype, shape and bytes."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            value = call()
        except (ValueError, TypeError, RuntimeWarning) as error:
            return type(error), str(error)
    parts = [np.asarray(p) for p in (value if isinstance(value, tuple) else (value,))]
    # (a long double's bytes include padding: its values' reprs instead)
    return type(value), repr(
        [
            (p.dtype, p.shape, list(p.ravel()) if p.dtype.itemsize > 8 else p.tobytes())
            for p in parts
        ]
    )


def _declined() -> list[tuple[str, Any, Any, dict[str, Any]]]:
    """``(what, logits, targets, options)`` that the lean path leaves to the full path."""
    rng = np.random.default_rng(7)
    x = 3 * rng.standard_normal((4, 10))
    t = (rng.uniform(size=(4, 10)) < 0.5).astype(np.float64)
    nan_x, inf_x, ninf_x = x.copy(), x.copy(), x.copy()
    nan_x[1, 2], inf_x[0, 0], ninf_x[3, 9] = np.nan, np.inf, -np.inf
    readonly = x.copy()
    readonly.flags.writeable = False
    cases: list[tuple[str, Any, Any, dict[str, Any]]] = [
        ("NaN logit", nan_x, t, {}),
        ("NaN logit unchecked", nan_x, t, {"validate": False}),
        ("+inf logit", inf_x, t, {}),
        ("-inf logit", ninf_x, t, {"reduction": "none"}),
        ("target 2", x, t * 2, {}),
        ("target 2 unchecked", x, t * 2, {"validate": False, "reduction": "none"}),
        ("target -0.5", x, t - 0.5, {}),
        ("NaN target", x, np.where(t == 1, np.nan, t), {}),
        ("negative weight", x, t, {"weight": -np.ones(10)}),
        ("negative weight unchecked", x, t, {"weight": -np.ones(10), "validate": False}),
        ("infinite weight", x, t, {"weight": np.full(10, np.inf)}),
        ("weight of another shape", x, t, {"weight": np.ones(3)}),
        ("weight broadcast in two blocks", x, t, {"weight": np.ones((4, 1, 1))}),
        ("float32 weight", x, t, {"weight": np.ones(10, dtype=np.float32)}),
        ("list weight", x, t, {"weight": [1.0] * 10}),
        ("label_smoothing -0.1", x, t, {"label_smoothing": -0.1}),
        ("reduction avg", x, t, {"reduction": "avg"}),
        ("reduction list", x, t, {"reduction": ["mean"]}),
        ("base 1", x, t, {"base": 1}),
        ("base 0", x, t, {"base": 0}),
        ("validate array", x, t, {"validate": np.array([True, False])}),
        ("validate numpy bool", x, t, {"validate": np.True_}),
        ("unknown keyword", x, t, {"axis": 0}),
        ("float16", x.astype(np.float16), t.astype(np.float16), {}),
        ("longdouble", x.astype(np.longdouble), t.astype(np.longdouble), {}),
        ("float32 logits, float64 targets", x.astype(np.float32), t, {}),
        ("bool targets", x, t.astype(bool), {}),
        ("big-endian", x.astype(">f8"), t.astype(">f8"), {}),
        ("Fortran", np.asfortranarray(x.T), np.asfortranarray(t.T), {}),
        ("strided", x[:, ::2], t[:, ::2], {}),
        ("read-only", readonly, t, {}),
        ("0-d", np.array(1.5), np.array(1.0), {}),
        ("empty", np.empty((0, 3)), np.empty((0, 3)), {"reduction": "sum"}),
        ("lists", x.tolist(), t.tolist(), {}),
        ("other shape", x, t[:2], {}),
        ("complex", x.astype(complex), t, {}),
        ("more than 8192", np.zeros(8193), np.ones(8193), {}),
    ]
    return cases


FOCAL_DECLINED: list[tuple[str, Any, Any, dict[str, Any]]] = [
    ("gamma -0.5", {"gamma": -0.5}),
    ("gamma True", {"gamma": True}),
    ("gamma inf", {"gamma": np.inf}),
    ("alpha 1.5", {"alpha": 1.5}),
    ("alpha array", {"alpha": np.array([0.5])}),
    ("pos_weight", {"pos_weight": np.ones(10)}),
    ("pos_weight None", {"pos_weight": None}),
    ("pos_weight None with a weight", {"pos_weight": None, "weight": np.ones(10)}),
    ("gamma huge: overflow", {"gamma": 1e305}),
]


def _declined_cases() -> list[tuple[str, str, Any, Any, dict[str, Any]]]:
    cases = [(family, *case) for family in FAMILIES for case in _declined()]
    x = np.array([-1e4, 3.0, 0.5, -2.0, 1.0, 0.0, 4.0, 2.0, -3.0, 9.0])
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    for family in ("focal", "focal_grad"):
        cases += [(family, what, x, t, options) for what, options in FOCAL_DECLINED]
    for family in ("ce", "ce_grad"):
        cases.append((family, "gamma", x, t, {"gamma": 2.0}))
    huge = {"pos_weight": np.full(10, 1e305)}  # pi t sp(-x) overflows
    cases.append(("ce", "huge pos_weight: overflow", x, 1.0 - t, huge))
    # float32(gamma) is inf (not for the float32 focal gradient, formed in float64 on both
    # paths since hostile20: the random calls check it bit for bit)
    for family in ("focal",):
        cases.append(
            (
                family,
                "gamma beyond float32",
                x.astype(np.float32),
                t.astype(np.float32),
                {"gamma": 1e39},
            )
        )
    return cases


@pytest.mark.parametrize(
    ("family", "what", "x", "t", "options"),
    _declined_cases(),
    ids=[f"{case[0]}-{case[1]}" for case in _declined_cases()],
)
def test_issue13_small_sigmoid_leaves_the_rest_to_the_full_path(
    family: str, what: str, x: Any, t: Any, options: dict[str, Any]
) -> None:
    """Not taken, and the public function's value, error or warning is the full path's."""
    assert _lean(family, x, t, **options) is None
    public = FAMILIES[family][0]
    assert _outcome(lambda: public(x, t, **options)) == _outcome(
        lambda: _full(family, x, t, **options)
    )


@pytest.mark.parametrize("family", list(FAMILIES))
def test_issue13_small_sigmoid_huge_weights_are_scaled_then_taken(family: str) -> None:
    """Weights of 1e308: the lean path declines them as given (their products overflow);
    the public function calls it with the weights at a power of two of their size
    (``_weight_scale``), and its ``'sum'`` is that call's times the power of two:
    ``inf`` where the true sum overflows, with no warning (a hostile review; it was the
    full path's ``RuntimeWarning``)."""
    x = np.array([-1e4, 3.0, 0.5, -2.0, 1.0, 0.0, 4.0, 2.0, -3.0, 9.0])
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    huge = {"weight": np.full(10, 1e308), "reduction": "sum"}
    shift = np.frexp(1e308)[1] - 1
    scaled = {"weight": np.full(10, np.ldexp(1e308, -shift)), "reduction": "sum"}
    with np.errstate(over="ignore"):
        expected = np.ldexp(_full(family, x, t, **scaled), shift)
    if family == "ce_grad":  # (the full path's kernel, in float64: no overflow here)
        _same_bits(_lean(family, x, t, **huge), expected)
    else:
        assert _lean(family, x, t, **huge) is None
    public = FAMILIES[family][0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _same_bits(public(x, t, **huge), expected)


def test_issue13_small_sigmoid_bad_calls_raise_the_full_paths_errors() -> None:
    """Each family's errors, word for word (the lean path raises none of its own)."""
    x = np.array([0.5, np.nan, 1.0])
    t = np.array([1.0, 0.0, 3.0])
    for family in FAMILIES:
        public = FAMILIES[family][0]
        with pytest.raises(crossent.InputError, match="`logits` contains NaN at index"):
            public(x, t)
        with pytest.raises(crossent.InputError, match="`targets`"):
            public(np.nan_to_num(x), t)
        with pytest.raises(crossent.InputError, match="`reduction`"):
            public(np.nan_to_num(x), t, reduction="avg")


def test_issue13_small_sigmoid_an_ulp_off_fails_the_comparison(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bit-for-bit check is not vacuous: a lean path whose loss is one ulp off (or
    whose log1p is the textbook log(1 + exp) of the same values) fails it."""
    rng = np.random.default_rng(3)
    x, t = 3 * rng.standard_normal(10), rng.uniform(size=10)
    compiled = _small_sigmoid._compiled()
    real = compiled.finish

    def one_ulp_off(*args: Any) -> Any:
        ok, value, normalizer = real(*args)
        return ok, np.nextafter(value, np.inf), normalizer

    monkeypatch.setattr(compiled, "finish", one_ulp_off)
    with pytest.raises(AssertionError):
        _check_taken("ce", x, t, {})
    monkeypatch.undo()

    class Textbook:
        """NumPy, but log1p(y) as log(1 + y)."""

        def __getattr__(self, name: str) -> Any:
            return getattr(np, name)

        @staticmethod
        def log1p(y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
            return np.log(1.0 + y, out=out)

    monkeypatch.setattr(_small_sigmoid, "np", Textbook())
    x, t = 3 * rng.standard_normal(100), rng.uniform(size=100)
    for family in set(FAMILIES) - {"ce_grad"}:  # (ce_grad: the full path's own kernel)
        with pytest.raises(AssertionError):
            _check_taken(family, x, t, {"reduction": "none"})


KEYWORD_VALUES: dict[str, list[Any]] = {  # valid, invalid and odd values of each keyword
    "weight": [
        *(None, np.ones(10), np.ones(10, np.float32), np.float64(2.0), 2.0, [1.0] * 10),
        *(np.ones((1, 10)), np.ones((10, 1)), np.zeros(10)),
    ],
    "pos_weight": [None, np.full(10, 2.0), 3.0, np.array(2.0)],
    "label_smoothing": [0.0, 0, 0.1, np.float32(0.1), True, None, 1, "0.1", -0.0],
    "reduction": ["mean", "sum", "none", "parts", "MEAN", None, np.str_("sum")],
    "base": [None, 2, 2.0, np.e, True, 1, 0.5, "2"],
    "validate": [True, False, 1, 0, None, np.bool_(True)],
    "gamma": [2.0, 0, 0.0, 1, True, None, np.float64(0.5), -0.0, np.inf],
    "alpha": [None, 0.25, 0, 1, True, np.float32(0.5), 2],
    "bogus": [1],
}


def test_issue13_small_sigmoid_any_keywords_give_the_full_paths_outcome() -> None:
    """Random sets of keywords (up to three, valid or not, of every family): the public
    function's value, error or warning is the full path's, whether the lean path takes
    the call or not (a focal ``pos_weight=None``, which the full path rejects, was once
    taken)."""
    rng = np.random.default_rng(1)
    x = 3 * rng.standard_normal(10)
    t = (rng.uniform(size=10) < 0.5).astype(np.float64)
    names = list(KEYWORD_VALUES)
    for _ in range(1500):
        family = list(FAMILIES)[rng.integers(len(FAMILIES))]
        chosen = rng.choice(names, size=rng.integers(0, 4), replace=False)
        kwargs = {str(k): KEYWORD_VALUES[k][rng.integers(len(KEYWORD_VALUES[k]))] for k in chosen}
        dtype = np.float64 if rng.uniform() < 0.7 else np.float32
        xx, tt = x.astype(dtype), t.astype(dtype)
        public = FAMILIES[family][0]
        got = _outcome(lambda: public(xx, tt, **kwargs))  # noqa: B023 (called at once)
        want = _outcome(lambda: _full(family, xx, tt, **kwargs))  # noqa: B023
        assert got == want, (family, dtype, kwargs)
