"""KL of float32 JAX arrays without x64: the exact words only for the chunk of rows
that holds a row failing the screen (issue 13, branch jaxkl3).

Branch jaxkl2 took the exact words of every row of a batch where one row failed its
screen (one ``jax.lax.cond`` a batch): one nearly equal row among random ones made the
whole batch pay. Now ``_kl_mixed._narrow_choice`` gathers the failing rows into chunks
of :math:`\\lceil R/8\\rceil` rows and forms the exact words of those chunks only. These
tests pin that (the rows given to the exact words), the failing rows' accuracy and
that passing rows keep the screen's value; and, as guards, the exact words' skipped
work (``exp_pair32`` where every entry takes its series, the words of entries of
probability 0 where there are none) against mpmath. The first fails on main (no
chunks: ``exact`` takes no rows).
"""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np
import pytest

from oracles import row_probabilities

jax = pytest.importorskip("jax")

EPS32 = float(np.finfo(np.float32).eps)
FORMS = ("log_probs", "log_probs")


def _log_probs(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=-1, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))).astype(np.float32)


def _ulps(a: np.ndarray, b: np.ndarray, got: np.ndarray) -> np.ndarray:
    out = []
    with mpmath.workdps(30):
        for x, y, g in zip(a, b, got, strict=True):
            p = row_probabilities(x.astype(np.float64), "log_probs")
            q = row_probabilities(y.astype(np.float64), "log_probs")
            truth = mpmath.fsum(s * mpmath.log(s / t) for s, t in zip(p, q, strict=True) if s)
            out.append(float(abs(mpmath.mpf(float(g)) - truth) / (abs(truth) * EPS32)))
    return np.array(out)


_JITTED: dict[str, Any] = {}


@pytest.fixture
def pieces(no_x64: Any) -> Any:
    """One ``jax.jit`` (compiled once for the module's tests, each under ``no_x64``):
    ``kl_narrow``, the screen's fast value and its flags."""
    from crossent.info._kl_mixed import _narrow_parts, kl_narrow

    jnp = no_x64

    def call(a: Any, b: Any) -> tuple[Any, Any, Any]:
        fast, passed, _ = _narrow_parts(a, FORMS[0], b, FORMS[1], xp=jnp)
        return kl_narrow(a, FORMS[0], b, FORMS[1], xp=jnp), fast, passed

    jitted = _JITTED.setdefault("call", jax.jit(call))

    def run(a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(v) for v in jitted(jnp.asarray(a), jnp.asarray(b))]

    return run


def _rows(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((20, 12)) * 3
    return z, np.roll(z, 1, axis=0), z + 1e-6 * rng.standard_normal(z.shape)


def test_one_failing_row_takes_the_exact_words_of_its_chunk_only(
    pieces: Any, no_x64: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 random rows, two of them nearly equal (rows 5 and 17): the exact words are
    formed on one chunk of 3 rows (ceil(20/8); traced by ``jax.eval_shape``), the two
    failing rows are within 2.5 ulps of mpmath (the screen's value of such rows is far
    off), the others keep the screen's value bit for bit (main: the exact value of every
    row, within an ulp of it)."""
    from crossent.info import _kl_mixed

    z, far, near = _rows(73)
    mixed = far.copy()
    mixed[[5, 17]] = near[[5, 17]]
    a, b = _log_probs(z), _log_probs(mixed)
    got, fast, passed = pieces(a, b)
    assert not passed[5]
    assert not passed[17]
    assert passed.sum() == 18
    assert np.array_equal(got[passed], fast[passed])
    assert _ulps(a[[5, 17]], b[[5, 17]], got[[5, 17]]).max() <= 2.5

    taken: list[tuple[int, ...]] = []
    parts = _kl_mixed._narrow_parts

    def spied(*args: Any, **kwargs: Any) -> Any:
        fast, passed, exact = parts(*args, **kwargs)

        def watched(rows: Any) -> Any:
            out = exact(rows)
            taken.append(tuple(out.shape))
            return out

        return fast, passed, watched

    monkeypatch.setattr(_kl_mixed, "_narrow_parts", spied)
    jnp = no_x64
    jax.eval_shape(
        lambda x, y: _kl_mixed.kl_narrow(x, FORMS[0], y, FORMS[1], xp=jnp),
        jnp.asarray(a),
        jnp.asarray(b),
    )
    assert taken == [(3,)]


def test_exact_words_skip_what_no_entry_reads(pieces: Any) -> None:
    """Guards (pass on main): rows 1e-6 apart (every entry by its series: no
    ``exp_pair32``; no entry of probability 0: no words for them), the same with an
    entry far apart (|r| above 2^-5: ``exp_pair32``) and with classes of probability 0
    on both sides and on P's only (their words; the rows normalised): within 2.5 ulps
    of mpmath."""
    z, _, near = _rows(74)
    a, b = _log_probs(z), _log_probs(near)
    moved = near.copy()
    moved[3, 4] += 0.25
    z[6, 2] = near[6, 2] = -np.inf
    z[9, 7] = -np.inf
    zeros = _log_probs(z), _log_probs(near)
    for x, y in ((a, b), (a, _log_probs(moved)), zeros):
        got, _, passed = pieces(x, y)
        assert not passed.all()
        assert _ulps(x, y, got).max() <= 2.5
