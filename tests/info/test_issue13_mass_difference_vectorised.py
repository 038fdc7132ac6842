"""The careful KL's mass difference, computed in the array's own namespace (issue 13).

On the generic path, the KL of nearly equal rows is the sum of the non-negative terms
plus the mass difference :math:`\\sum_i (p_i - q_i)`, corrected to its exactly rounded
value. That correction came from ``math.fsum`` per row on the host; it now comes from
``_measures._MassExtraction`` (error-free extraction, vectorised) in PyTorch or NumPy.
The oracle: mpmath at 1300 bits, where the sum of float64 values down to 2^-1074 is
exact, rounded to nearest once. The tests also hold the result to the fsum path's bits,
and check that neither ``math.fsum`` nor a host copy runs on the vectorised path.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import array_api_compat.numpy as compat_numpy
import mpmath
import numpy as np
import pytest

import crossent
from crossent.info import _measures

torch = pytest.importorskip("torch")


def _exactly_rounded(p: np.ndarray, q: np.ndarray, computed: float) -> float:
    """mpmath: sum(p - q) - computed, exact at 1300 bits, rounded to nearest float64."""
    with mpmath.workprec(1300):
        total = mpmath.fsum([*map(mpmath.mpf, p), *(-mpmath.mpf(v) for v in q), -computed])
        return mpmath.libmp.to_float(total._mpf_, rnd="n")


def _softmax(x: np.ndarray) -> np.ndarray:
    return np.exp(x - np.log(np.exp(x).sum(axis=-1, keepdims=True)))


def _nearly_equal(
    noise: float, rows: int = 6, classes: int = 33, scale: float = 3.0
) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(13)
    z = rng.standard_normal((rows, classes)) * scale
    return _softmax(z), _softmax(z + rng.standard_normal(z.shape) * noise)


def _mixed_magnitudes() -> tuple[np.ndarray, np.ndarray]:
    """Logits 60 z: probabilities from about 1 down to subnormals and 0, nearly equal."""
    rng = np.random.default_rng(7)
    z = rng.standard_normal((6, 40)) * 60
    return _softmax(z), _softmax(z + rng.standard_normal(z.shape) * 1e-10)


def _subnormal_entries() -> tuple[np.ndarray, np.ndarray]:
    """Normal entries 1e-13 apart beside subnormal ones a few 2^-1074 apart."""
    p, q = _nearly_equal(1e-13, rows=5, classes=24)
    rng = np.random.default_rng(3)
    tiny = 2.0**-1074 * rng.integers(1, 2**40, size=(5, 8))
    p[:, ::3], q[:, ::3] = tiny, tiny + 2.0**-1074 * rng.integers(-5, 6, size=tiny.shape)
    return p, q


def _deep_cancellation() -> tuple[np.ndarray, np.ndarray]:
    """Differences 2^-30, -2^-30, 2^-k, 2^-(k + j): the sum 2^-k + 2^-(k + j) is far
    below the largest difference, and the computed mass 2^-k misses 2^-(k + j), which
    more extraction levels than the first round's must reach."""
    rows = []
    for k, j in ((300, 100), (200, 300), (100, 600), (60, 900)):
        p = [0.5, 0.25, 1.5 * 2.0**-k, 1.5 * 2.0 ** -(k + j), 0.125]
        q = [0.5 - 2.0**-30, 0.25 + 2.0**-30, 0.5 * 2.0**-k, 0.5 * 2.0 ** -(k + j), 0.125]
        rows.append((p, q))
    return np.array([p for p, _ in rows]), np.array([q for _, q in rows])


ROWS = {
    "nearly equal 1e-9": lambda: _nearly_equal(1e-9),
    "nearly equal 1e-13": lambda: _nearly_equal(1e-13),
    "wide nearly equal 1e-9": lambda: _nearly_equal(1e-9, scale=12.0),
    "mixed magnitudes": _mixed_magnitudes,
    "subnormal entries": _subnormal_entries,
    "equal": lambda: (_nearly_equal(0.0)[0],) * 2,
    "deep cancellation": _deep_cancellation,
    "random": lambda: (_nearly_equal(0.0)[0], _nearly_equal(0.0, rows=12)[0][6:]),
}


def _no_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``math.fsum`` and the host copy raise, and take the extraction whatever the
    size (small host batches go to fsum, which is cheaper there: ``_host_is_cheaper``)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a per-row host path ran")

    monkeypatch.setattr(math, "fsum", refuse)
    monkeypatch.setattr(_measures, "to_numpy", refuse)
    monkeypatch.setattr(_measures, "_HOST_MASS_COST", {"numpy": -1, "cpu": -1})


MASSES = {
    "sum": lambda d: d.sum(axis=-1),  # often exact for nearly equal rows: correction 0
    "float32 sum": lambda d: d.sum(axis=-1).astype(np.float32).astype(np.float64),
    "sum plus 2^-40": lambda d: d.sum(axis=-1) * (1 + 2.0**-40) + 2.0**-1070,
}


@pytest.mark.parametrize("mass_kind", list(MASSES))
@pytest.mark.parametrize("kind", list(ROWS))
@pytest.mark.parametrize("backend", ["torch", "numpy", "numpy through array-api-compat"])
def test_mass_correction_is_exactly_rounded_without_host(
    kind: str, backend: str, mass_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each row's correction is mpmath's exactly rounded sum(p - q) - mass, to the bit,
    for the computed mass and for masses rounded more coarsely (whose correction has
    all 53 bits), with fsum and the host copy refused."""
    p, q = ROWS[kind]()
    mass = MASSES[mass_kind](p - q)
    want = np.array([_exactly_rounded(a, b, c) for a, b, c in zip(p, q, mass, strict=True)])
    if backend == "torch":
        xp, convert = _measures.namespace(torch.zeros(1), names=("x",))[0], torch.from_numpy
    else:
        xp, convert = compat_numpy, np.asarray
        monkeypatch.setattr(_measures, "_NUMPY_ARRAY_API", backend == "numpy")
    _no_host(monkeypatch)
    rows = np.ones(len(p), dtype=bool)
    got = _measures._mass_correction(convert(p), convert(q), convert(mass), convert(rows), xp=xp)
    assert np.asarray(got).view(np.int64).tolist() == want.view(np.int64).tolist()


def _kl_fsum_path(p: object, q: object) -> object:
    """The KL with the mass correction from ``math.fsum`` on the host (the former path)."""

    def by_fsum(
        p: object, q: object, mass: object, rows: object, *, xp: object, **options: object
    ) -> object:
        exact = _measures._exact_mass_difference(p, q, mass, rows, **options)
        return xp.asarray(exact, dtype=mass.dtype)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_measures, "_mass_correction", by_fsum)
        return crossent.kl_divergence(p, q, validate=False)


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the rows the careful form takes (so that each test exercises it)."""
    taken: list[int] = []
    original = _measures._mass_correction

    def spy(
        p: object, q: object, mass: object, rows: object, *, xp: object, **options: object
    ) -> object:
        taken.append(int(xp.sum(xp.astype(rows, xp.int64))))
        return original(p, q, mass, rows, xp=xp, **options)

    monkeypatch.setattr(_measures, "_mass_correction", spy)
    return taken


@pytest.mark.parametrize("kind", list(ROWS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_kl_equals_fsum_path_bits(
    kind: str, dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PyTorch KL of every kind of row: the former fsum path's bits, no host path run."""
    p, q = (torch.from_numpy(x).to(getattr(torch, dtype)) for x in ROWS[kind]())
    want = _kl_fsum_path(p, q)
    taken = _spy(monkeypatch)
    _no_host(monkeypatch)
    got = crossent.kl_divergence(p, q, validate=False)
    bits = torch.int64 if dtype == "float64" else torch.int32
    assert torch.equal(got.view(bits), want.view(bits))
    if kind not in ("equal", "random") and dtype == "float64":
        assert taken[0] > 0


def test_uncertified_rows_fall_back_to_fsum(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows beyond _MASS_LIMIT are not certified: fsum takes them, to the same bits."""
    p, q = _nearly_equal(1e-9, rows=3, classes=5)
    p[1], q[1] = p[1] * 2.0**1000, q[1] * 2.0**1000
    a, b = torch.from_numpy(p), torch.from_numpy(q)
    mass = (a - b).sum(dim=-1)
    called: list[int] = []
    fsum = math.fsum
    monkeypatch.setattr(math, "fsum", lambda values: called.append(1) or fsum(values))
    monkeypatch.setattr(_measures, "_HOST_MASS_COST", {"numpy": -1, "cpu": -1})
    xp = _measures.namespace(a, names=("a",))[0]
    got = _measures._mass_correction(a, b, mass, torch.ones(3, dtype=torch.bool), xp=xp)
    want = [_exactly_rounded(x, y, float(c)) for x, y, c in zip(p, q, mass.numpy(), strict=True)]
    assert got.tolist() == want
    assert called == [1]


def test_gradients_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """The correction is a constant: the gradients are those of the plain sums."""
    p, q = (torch.from_numpy(x).requires_grad_() for x in _nearly_equal(1e-9, rows=3))
    monkeypatch.setattr(_measures, "_HOST_MASS_COST", {"numpy": -1, "cpu": -1})

    def gradients(correction: Callable[..., object] | None) -> list[object]:
        for x in (p, q):
            x.grad = None
        with pytest.MonkeyPatch.context() as patch:
            if correction is not None:
                patch.setattr(_measures, "_mass_correction", correction)
            crossent.kl_divergence(p, q, validate=False).sum().backward()
        return [p.grad.clone(), q.grad.clone()]

    def zero(
        p: object, q: object, mass: object, rows: object, *, xp: object, **options: object
    ) -> object:
        return xp.zeros_like(mass).detach()

    with_correction, constant = gradients(None), gradients(zero)
    assert all(torch.equal(a, b) for a, b in zip(with_correction, constant, strict=True))
    xp = _measures.namespace(p, names=("p",))[0]
    mass = (p - q).sum(dim=-1)
    correction = _measures._mass_correction(p, q, mass, torch.ones(3, dtype=torch.bool), xp=xp)
    assert not correction.requires_grad


def test_some_rows_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the rows asked for get a correction (the others 0), gathered and scattered
    back in place, with a batch broadcast against a single row of Q; and one row alone
    (batch shape ())."""
    _no_host(monkeypatch)
    p, q = _nearly_equal(1e-9, rows=5, classes=7, scale=12.0)
    a, b = torch.from_numpy(p), torch.from_numpy(q[0])
    mass = (a - b).sum(dim=-1)
    rows = torch.tensor([False, True, False, True, True])
    xp = _measures.namespace(a, names=("a",))[0]
    got = _measures._mass_correction(a, b, mass, rows, xp=xp)
    want = [
        _exactly_rounded(x, q[0], float(c)) if r else 0.0
        for x, c, r in zip(p, mass.numpy(), rows.tolist(), strict=True)
    ]
    assert got.tolist() == want
    one = _measures._mass_correction(a[1], b, mass[1], rows[1], xp=xp)
    assert one.shape == ()
    assert float(one) == want[1]


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_small_host_batches_take_fsum(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A few rows in host memory go to fsum (cheaper there), larger batches do not; the
    bits are the same either way."""
    calls: list[int] = []
    fsum = math.fsum
    monkeypatch.setattr(math, "fsum", lambda values: calls.append(1) or fsum(values))
    for rows, fsum_calls in ((2, 2), (40, 0)):
        p, q = _nearly_equal(1e-9, rows=rows, classes=33, scale=12.0)
        mass = (p - q).sum(axis=-1)
        want = [_exactly_rounded(a, b, c) for a, b, c in zip(p, q, mass, strict=True)]
        if backend == "torch":
            p, q, mass = (torch.from_numpy(x) for x in (p, q, mass))
        xp = _measures.namespace(p, names=("p",))[0]
        calls.clear()
        got = _measures._mass_correction(p, q, mass, mass == mass, xp=xp)
        assert len(calls) == fsum_calls
        assert [float(x) for x in got] == want
