"""``_xp.numpy_errstate``, the one test of "NumPy underneath? then ``np.errstate``, else
nothing" (``torch.compile(fullgraph=True)`` cannot trace ``np.errstate``), and the
host copy's refusal of JAX tracers (``_xp.host_float64``). Each test fails on the code
before the helper: the sites wrote the test out in eight forms, some not at all."""

from __future__ import annotations

import ast
import contextlib
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

import crossent
from crossent import _xp

_ROOT = Path(crossent.__file__).parent

_DYNAMO_NOISE = (
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated"),
    pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`"),
)


def _dynamo(test: object) -> object:
    """``test`` with the warnings Dynamo's compilation itself gives ignored."""
    for mark in _DYNAMO_NOISE:
        test = mark(test)
    return test


@pytest.mark.parametrize("kind", ["ndarray", "numpy_scalar", "array_api_strict"])
def test_numpy_errstate_quiets_what_numpy_computes(kind: str) -> None:
    """NumPy's arrays and scalars, and array-api-strict's arrays (NumPy underneath),
    overflow to ``inf`` without a warning (an error under ``-W error``) inside it; the
    settings are restored after it."""
    before = np.geterr()
    if kind == "array_api_strict":
        xp = pytest.importorskip("array_api_strict")
        value, namespace = xp.asarray([1e308]), xp
    elif kind == "ndarray":
        value, namespace = np.array([1e308]), None
    else:
        value, namespace = np.float64(1e308), None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with _xp.numpy_errstate(value, namespace, over="ignore"):
            product = value * 10.0
    assert math.isinf(float(np.asarray(product).reshape(-1)[0]))
    assert np.geterr() == before


def test_numpy_errstate_enters_nothing_for_other_libraries() -> None:
    """A PyTorch tensor (or a Python float) gets a context that changes nothing:
    NumPy's settings inside it are the caller's."""
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as xt

    before = np.geterr()
    for value, namespace in ((torch.ones(2), xt), (1.0, None)):
        context = _xp.numpy_errstate(value, namespace, all="ignore")
        assert isinstance(context, contextlib.nullcontext)
        with context:
            assert np.geterr() == before


@_dynamo
def test_numpy_errstate_traces_under_torch_compile_fullgraph() -> None:
    """Dynamo traces the helper itself on a tensor (``isinstance`` of a tuple,
    ``contextlib.nullcontext``): one graph."""
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as xt

    def double(x: object) -> object:
        with _xp.numpy_errstate(x, xt, over="ignore"):
            return x * 2.0

    torch._dynamo.reset()
    got = torch.compile(double, fullgraph=True, backend="aot_eager")(torch.tensor([1.0, 3.0]))
    assert got.tolist() == [2.0, 6.0]


@_dynamo
def test_js_divergence_of_torch_logits_traces_under_torch_compile_fullgraph(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``js_divergence`` of two sides of logits entered ``np.errstate`` for every
    namespace (``_log_ratios``): under ``torch.compile(fullgraph=True)`` Dynamo stopped
    with "attempted to trace numpy function unsupported by PyTorch". Value: eager's
    dtype and shape, both within 4 float64 ulps of mpmath's: not eager's bits, since
    eager takes the host route (the NumPy path, ``crossent._torch_host``) for small CPU
    tensors and compiled code the torch path."""
    torch = pytest.importorskip("torch")
    mpmath = pytest.importorskip("mpmath")
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(4, 5, dtype=torch.float64, generator=gen)
    b = torch.randn(4, 5, dtype=torch.float64, generator=gen)

    def js(p: object, q: object) -> object:
        return crossent.js_divergence(p, q, p_form="logits", q_form="logits", validate=False)

    from crossent import _torch_host

    monkeypatch.setattr(_torch_host, "MAX_ELEMENTS", _torch_host.ROUTE_ON)  # (the default)
    torch._dynamo.reset()
    got = torch.compile(js, fullgraph=True, backend="aot_eager")(a, b)
    eager = js(a, b)
    assert (got.dtype, got.shape) == (eager.dtype, eager.shape) == (torch.float64, (4,))
    with mpmath.workdps(50):
        exact = []
        for za, zb in zip(a.tolist(), b.tolist(), strict=True):
            p = [mpmath.exp(v) / mpmath.fsum(mpmath.exp(w) for w in za) for v in za]
            q = [mpmath.exp(v) / mpmath.fsum(mpmath.exp(w) for w in zb) for v in zb]
            m = [(x + y) / 2 for x, y in zip(p, q, strict=True)]
            terms = (
                x * mpmath.log(x / z) + y * mpmath.log(y / z)
                for x, y, z in zip(p, q, m, strict=True)
            )
            exact.append(float(mpmath.fsum(terms) / 2))
    ulp = np.spacing(np.array(exact))
    for value in (got, eager):
        assert float(np.max(np.abs(value.numpy() - exact) / ulp)) <= 4


# Modules that take arrays of any namespace; pure-NumPy modules (``_numpy_kernels``,
# ``_far_gaps``, ...) keep ``np.errstate`` itself.
_GENERIC_MODULES = (
    "_xp.py",
    "_numerics.py",
    "info/_measures.py",
    "losses/_terms.py",
    "losses/_distill.py",
    "losses/_sigmoid.py",
    "losses/_near_rows.py",
    "losses/_softmax.py",
    "losses/_hinge.py",
    "losses/_reduction.py",
)

# Functions of those modules that see NumPy arrays only (by their arguments' type or a
# host copy made before): ``np.errstate`` itself is right there.
_NUMPY_ONLY_FUNCTIONS = frozenset(
    {
        "_quiet_log1p",  # np.ndarray argument
        "_numpy_js_terms",
        "_numpy_binary_cross_grad_terms",
        "far_gap_cross_entropy64",  # float64 NumPy rows
        "_exact_mass_difference",  # host copies (math.fsum)
        "_far_gap_rows_elsewhere",  # its NumPy float64 host copy's cast
        "_far_gap_nats",  # NumPy float64 rows
        "_nan_rows_again",  # returns first unless the namespace is NumPy's
        "_far_rows_of_namespace",  # the cast of its NumPy float64 rows (``rows``)
        "_far_gap_gradient",  # the far rows' float64 NumPy gradient (``full``)
        "_far_inputs",  # the sides' float64 NumPy host copies
        "_in_unit",  # float64 NumPy nats
        "_perplexity_numpy",  # called only where the namespace is NumPy's
    }
)


def _is_numpy_guard(test: ast.expr) -> bool:
    """An ``if`` test that holds only for NumPy's arrays (not array-api-strict's)."""
    text = ast.unparse(test)
    numpy = "np.ndarray" in text or "is_numpy(" in text or " is np" in text
    return numpy and "is_strict" not in text


def _unguarded_errstates(path: Path) -> list[str]:
    """The ``np.errstate`` calls of ``path`` neither in a NumPy-only function nor in the
    body of an ``if`` that holds only for NumPy arrays."""
    tree = ast.parse(path.read_text())
    found: list[str] = []

    def visit(node: ast.AST, function: str, guarded: bool) -> None:
        if isinstance(node, ast.FunctionDef):
            function, guarded = node.name, False
        errstate = isinstance(node, ast.Call) and ast.unparse(node.func) == "np.errstate"
        if errstate and not guarded and function not in _NUMPY_ONLY_FUNCTIONS:
            found.append(f"{path.relative_to(_ROOT)}:{node.lineno} ({function})")
        if isinstance(node, ast.If):
            visit(node.test, function, guarded)
            for child in node.body:
                visit(child, function, guarded or _is_numpy_guard(node.test))
            for child in node.orelse:
                visit(child, function, guarded)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, function, guarded)

    visit(tree, "<module>", False)
    return found


def test_namespace_generic_modules_test_numpy_through_numpy_errstate_only() -> None:
    """Every ``np.errstate`` of the namespace-generic modules is NumPy's own (a NumPy-
    only function, or the body of an ``if`` on ``np.ndarray`` / ``is_numpy``) but for
    the one in ``numpy_errstate``: a site written out again (``if is_strict(xp):``,
    ``type(x) is np.ndarray or is_strict(xp)``, or an unconditional ``np.errstate``
    that a torch tensor reaches) is named here."""
    found = [site for name in _GENERIC_MODULES for site in _unguarded_errstates(_ROOT / name)]
    assert [site for site in found if not site.endswith(" (numpy_errstate)")] == []
    assert len(found) == 1  # the helper's own


def test_jax_grad_of_an_infinite_cross_entropy_of_logits_keeps_its_inf() -> None:
    """``jax.grad`` of a cross-entropy against logits whose value is ``inf`` (a class of
    P at a ``-inf`` logit of Q) raised "InputError: `result` (LinearizeTracer) could
    not be read as a host array", naming an internal array: the far-gap rebuild's
    screen answered (a tracer's ``bool`` has a value under ``jax.grad``) and its host
    copy failed. ``host_float64`` refuses tracers: the result is kept, ``inf``."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    q = jnp.asarray([0.0, -jnp.inf], dtype=jnp.float32)
    p = jnp.asarray([0.5, 0.5], dtype=jnp.float32)
    for measure in (crossent.cross_entropy, crossent.kl_divergence, crossent.perplexity):
        value = jax.value_and_grad(lambda a, f=measure: f(a, q, q_form="logits"))(p)[0]
        assert math.isinf(float(value))


def test_jax_jit_of_a_cross_entropy_of_logits_is_its_value() -> None:
    """Under ``jax.jit`` the far-gap screen's ``bool(any(isinf(result)))`` raised
    ``TracerBoolConversionError`` for every cross-entropy, KL and perplexity against
    logits, even with ``validate=False``; a traced result has no values to screen and
    is kept. Values: the eager ones (float32)."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    q = jnp.asarray([1.0, -1.0], dtype=jnp.float32)
    p = jnp.asarray([0.6, 0.4], dtype=jnp.float32)
    for measure in (crossent.cross_entropy, crossent.kl_divergence, crossent.perplexity):

        def call(a: object, f: object = measure) -> object:
            return f(a, q, q_form="logits", validate=False)  # type: ignore[operator]

        assert float(jax.jit(call)(p)) == float(call(p))
