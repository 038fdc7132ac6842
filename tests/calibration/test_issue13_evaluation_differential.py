"""One independent oracle against every evaluation path (issue 13).

The evaluation metrics reach the same numbers by many paths: the Numba ``totals``
kernel (tiles for float32 rows of at most 16 classes, looped rows, chunks of at most
256 rows and 4096 entries, folded sums, the vectorised logarithm, the found rows and
the bins), the stacked blocks of ``EvaluationState.update`` for stored float
probabilities in several blocks, ``map_totals``' converted blocks (other dtypes,
log-probabilities, logits), the summaries of the quantile binning and of the
class-wise and positive-class scopes, and the one-shot functions.  Each test here
computes the definitions of the docstrings in plain NumPy (float64, long double for
logits) from the same rows, and checks every path against them:

* the surprisal of the label, the Brier score (sum over classes), the spherical score,
  the entropy (0 log 0 = 0), the accuracy (the first maximum on ties), the top-label
  confidence and its bin (``closed="left"``: ``[e_b, e_b+1)``, the last closed;
  ``"right"``: ``(e_b, e_b+1]``, the first closed), the per-class NLL, and the ``keep``
  most surprising rows (highest first, the lower row on ties);
* on hard rows (exact zeros, one-hot rows, subnormal entries, confidences on bin edges
  and exactly 1, argmax ties, row sums at the edge of the tolerance, -inf
  log-probabilities, huge logits, labels of the first and last class);
* over sizes across the kernels' thresholds (rows: chunks of 256, 4096 entries;
  classes: 16 for the tiles, 64 for the short rows), small blocks
  (``_inputs._BLOCK_ELEMENTS`` patched) for the stacked path and 1 or 2 threads;
* split-then-merge against one batch; the one-shot functions against the state;
* the same ``InputError`` from every path for the same bad entry or label, and the
  state as it was after an update that raises.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

import crossent
from crossent import _parallel
from crossent._checks import row_sum_tolerance
from crossent.calibration import _inputs
from crossent.errors import InputError

import oracles

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

LONG = np.longdouble


# ---------------------------------------------------------------- the oracle


def oracle_rows(values: Any, labels: Any, form: str) -> dict[str, np.ndarray]:
    """Per-row numbers from the definitions: surprisal, Brier, spherical, entropy,
    predicted class (the first maximum), confidence (its probability)."""
    x = np.asarray(values).astype(np.float64)
    y = np.asarray(labels).astype(np.int64)
    n, k = x.shape
    rows = np.arange(n)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if form == "probs":
            p = x.astype(LONG)
            logp = np.where(p > 0, np.log(np.where(p > 0, p, 1)), -np.inf)
            predicted = np.argmax(x, axis=1)  # numpy: the first maximum
        else:
            z = x.astype(LONG)
            if form == "logits":  # z - max - log1p(the other terms' sum): no cancellation
                first = np.argmax(z, axis=1)
                shifted = z - z[rows, first][:, None]
                others = np.exp(shifted)
                others[rows, first] = 0
                z = shifted - np.log1p(np.sum(others, axis=1, keepdims=True))
            logp = z
            p = np.exp(logp)
            predicted = np.argmax(x, axis=1)
        onehot = y[:, None] == np.arange(k)[None, :]
        surprisal = -logp[rows, y]
        brier = np.sum(np.square(p - onehot), axis=1)
        spherical = p[rows, y] / np.sqrt(np.sum(np.square(p), axis=1))
        entropy = -np.sum(np.where(p > 0, p * np.where(p > 0, logp, 0), 0), axis=1)
    return {
        "surprisal": surprisal.astype(np.float64),
        "brier": brier.astype(np.float64),
        "spherical": spherical.astype(np.float64),
        "entropy": entropy.astype(np.float64),
        "correct": (predicted == y).astype(np.float64),
        # the float64 probability that the library converts to (exact for probs)
        "confidence": np.exp(logp[rows, predicted].astype(np.float64))
        if form != "probs"
        else x[rows, predicted],
        "labels": y,
        "probs": p.astype(np.float64) if form != "probs" else x,
    }


def oracle_bins(confidence: np.ndarray, edges: Any, closed: str) -> np.ndarray:
    """The bin of each confidence among ``edges`` (``bins`` an int:
    ``numpy.linspace(0, 1, bins + 1)``): with ``closed="left"`` the number of inner
    edges at or below it, with ``"right"`` the number strictly below it (0 and 1 land
    in the end bins either way)."""
    if isinstance(edges, int):
        edges = np.linspace(0.0, 1.0, edges + 1)
    inner = np.asarray(edges)[1:-1]
    if closed == "left":
        return np.sum(confidence[:, None] >= inner[None, :], axis=1)
    return np.sum(confidence[:, None] > inner[None, :], axis=1)


def oracle_error(
    confidence: np.ndarray,
    hits: np.ndarray,
    index: np.ndarray,
    bins: int,
    norm: str,
    debias: bool = False,
) -> float:
    """The calibration error of bins given each example's bin (the docstring's sums;
    ``debias``: each squared gap less ``h (1 - h) / (n_b - 1)``, 0 for one example)."""
    n, total, squared, largest = len(confidence), 0.0, 0.0, 0.0
    for b in range(bins):
        member = index == b
        count = int(member.sum())
        if not count:
            continue
        rate = float(np.mean(hits[member]))
        gap = abs(rate - float(np.mean(confidence[member])))
        total += count / n * gap
        bias = rate * (1 - rate) / (count - 1) if count > 1 else gap * gap
        squared += count / n * (gap * gap - (bias if debias else 0.0))
        largest = max(largest, gap)
    if norm == "squared":  # (the L2 error's square, negative if debiased so)
        return squared
    return {"l1": total, "l2": math.sqrt(max(squared, 0.0)), "max": largest}[norm]


def oracle_top(surprisal: np.ndarray, keep: int, first_row: int = 0) -> list[tuple[int, float]]:
    """The ``keep`` highest surprisals, the lower row first on ties."""
    order = sorted(range(len(surprisal)), key=lambda i: (-surprisal[i], i))[:keep]
    return [(first_row + i, float(surprisal[i])) for i in order]


# ---------------------------------------------------------------- the comparisons


def _close(got: float, want: float, rtol: float = 1e-12, atol: float = 0.0) -> bool:
    """Equal to ``rtol`` (relative to the larger) plus ``atol``; infinities and NaN
    equal only to themselves."""
    got, want = float(got), float(want)
    if math.isnan(got) or math.isnan(want):
        return math.isnan(got) and math.isnan(want)
    if math.isinf(got) or math.isinf(want):
        return got == want
    return abs(got - want) <= rtol * max(abs(got), abs(want)) + atol


def _assert_rows(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Per-row values equal to 1e-12 relative plus 1e-15 absolute (inf and NaN alike)."""
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    with np.errstate(invalid="ignore"):
        near = np.abs(got - want) <= 1e-12 * np.maximum(np.abs(got), np.abs(want)) + 1e-15
    bad = np.flatnonzero(~(same | near))
    assert bad.size == 0, (what, bad[:5], got[bad[:5]], want[bad[:5]])


def _mean(values: np.ndarray) -> float:
    """The mean of per-row numbers, accurately (``math.fsum``; inf and NaN as summed)."""
    if not np.all(np.isfinite(values)):
        return float(np.sum(values)) / len(values)
    try:
        return math.fsum(values.tolist()) / len(values)
    except OverflowError:  # a sum past 1.8e308: the exact mean, finite where it is
        # (issue 13, branches hostile16 and evalstate15; it was +inf until then)
        return float(sum(map(Fraction, values.tolist())) / len(values))


def _assert_scores(summary: Any, rows: dict[str, np.ndarray], what: str) -> None:
    """The state's means against the oracle's rows (the surprisal's kernel logarithm
    within 1 ulp a row, compensated sums: 1e-12 relative; the Brier score and the
    entropy to 1e-15 absolute beside that, for terms that cancel in a long double)."""
    for name, field, atol in (
        ("surprisal", "nll", 1e-300),
        ("brier", "brier", 1e-15),
        ("spherical", "spherical", 1e-15),
        ("entropy", "mean_entropy", 1e-15),
    ):
        want, got = _mean(rows[name]), getattr(summary, field)
        if name == "surprisal" and "exact_nll" in rows:
            want = rows["exact_nll"](np.ones(len(rows[name]), dtype=bool))
        assert _close(got, want, atol=atol), (what, field, got, want)
    assert summary.accuracy == _mean(rows["correct"]), (what, summary.accuracy)


def _assert_classes(summary: Any, rows: dict[str, np.ndarray], classes: int, what: str) -> None:
    count = np.bincount(rows["labels"], minlength=classes)
    np.testing.assert_array_equal(summary.per_class_count, count, err_msg=what)
    for c in range(classes):
        member = rows["labels"] == c
        want = _mean(rows["surprisal"][member]) if count[c] else math.nan
        if count[c] and "exact_nll" in rows:
            want = rows["exact_nll"](member)
        assert _close(summary.per_class_nll[c], want, atol=1e-300), (
            what,
            c,
            summary.per_class_nll[c],
            want,
        )


def _assert_found(found: list[tuple[int, float]], rows: dict[str, np.ndarray], keep: int) -> None:
    """The most surprising rows: the same values in order, and the same rows wherever
    the oracle's surprisals are not within rounding of a neighbour's (a tie the
    kernel's logarithm and the oracle's could order differently)."""
    surprisal = rows["surprisal"]
    want = oracle_top(surprisal, keep)
    assert len(found) == len(want), (found, want)
    for (row, value), (want_row, want_value) in zip(found, want, strict=True):
        assert _close(value, want_value, rtol=1e-15), (found, want)
        near = [
            i
            for i in range(len(surprisal))
            if _close(surprisal[i], want_value, rtol=4e-16) or surprisal[i] == want_value
        ]
        if len(near) == 1:
            assert row == want_row, (found, want)
        else:
            assert row in near, (found, want)


def _assert_bins(
    statistics: Any,
    confidence: np.ndarray,
    hits: np.ndarray,
    index: np.ndarray,
    bins: int,
    what: str,
) -> None:
    count = np.bincount(index, minlength=bins)
    np.testing.assert_array_equal(statistics.count, count, err_msg=f"{what}: counts")
    np.testing.assert_array_equal(
        statistics.hits, np.bincount(index, weights=hits, minlength=bins), err_msg=f"{what}: hits"
    )
    for b in range(bins):
        want = math.fsum(confidence[index == b].tolist())
        assert _close(statistics.confidence_sum[b], want, rtol=1e-13), (what, b)


def check_everything(
    values: Any,
    labels: Any,
    form: str,
    *,
    bins: int,
    closed: str,
    keep: int,
    norm: str = "l1",
    splits: tuple[int, ...] = (),
    exact_nll: Any = None,
) -> None:
    """Every path of the state and of the one-shot functions against the oracle.

    ``exact_nll(member)``: the mean NLL of the rows where ``member``, where it is not the
    mean of the oracle's float64 rows: rows whose own surprisal is past float64's range
    while their mean is not (logits +-1e308; issue 13, calib2 for the one-shot NLL, the
    lead at stop 73 for the state's).
    """
    n, classes = np.shape(values)
    rows: dict[str, Any] = oracle_rows(values, labels, form)
    if exact_nll is not None:
        rows["exact_nll"] = exact_nll
    confidence, hits = rows["confidence"], rows["correct"]
    index = oracle_bins(confidence, bins, closed)

    # the state: one batch, then the same rows split and merged
    state = crossent.EvaluationState(classes, bins=bins, closed=closed, keep=keep)
    summary = state.update(values, labels, form=form).compute(norm=norm)
    _assert_scores(summary, rows, "state")
    _assert_classes(summary, rows, classes, "state")
    _assert_found(summary.most_surprising, rows, keep)
    _assert_bins(summary.calibration.statistics, confidence, hits, index, bins, "state")
    want = oracle_error(confidence, hits, index, bins, norm)
    assert _close(summary.calibration.value, want, atol=1e-14), (summary.calibration.value, want)
    bounds = [0, *sorted(min(s, n) for s in splits), n]
    merged = crossent.EvaluationState(classes, bins=bins, closed=closed, keep=keep)
    for first, stop in itertools.pairwise(bounds):
        part = crossent.EvaluationState(classes, bins=bins, closed=closed, keep=keep)
        if stop > first:
            part.update(values[first:stop], labels[first:stop], form=form, first_row=first)
        merged = merged.merge(part)
    again = merged.compute(norm=norm)
    _assert_scores(again, rows, "merged")
    _assert_classes(again, rows, classes, "merged")
    _assert_found(again.most_surprising, rows, keep)
    for field in ("count", "hits"):
        np.testing.assert_array_equal(
            getattr(again.calibration.statistics, field),
            getattr(summary.calibration.statistics, field),
        )

    # the one-shot functions, means and rows
    for function, name in (
        (crossent.negative_log_likelihood, "surprisal"),
        (crossent.brier_score, "brier"),
        (crossent.spherical_score, "spherical"),
        (crossent.accuracy, "correct"),
    ):
        got = function(values, labels, form=form)
        want_mean = _mean(rows[name])
        if name == "surprisal" and exact_nll is not None:
            want_mean = exact_nll(np.ones(n, dtype=bool))
        assert _close(got, want_mean, atol=1e-15), (name, got, want_mean)
        each = function(values, labels, form=form, reduction="none")
        _assert_rows(each, rows[name], name)
    one_shot = crossent.calibration_error(
        values, labels, form=form, bins=bins, closed=closed, norm=norm
    )
    _assert_bins(one_shot.statistics, confidence, hits, index, bins, "calibration_error")
    assert _close(one_shot.value, want, atol=1e-14), (one_shot.value, want)


def _class_error(probs: np.ndarray, labels: np.ndarray, edges: Any, spec: dict[str, Any]) -> float:
    """The class-wise error: each class's ``p_k`` against ``[y = k]``, combined as
    :class:`CalibrationSpec` says (the mean, the L2 mean of squares each at least 0, the
    maximum)."""
    norm, debias = spec["norm"], spec["debias"]
    each = []
    for c in range(probs.shape[1]):
        column = probs[:, c]
        bounds = edges if isinstance(edges, int) else edges[c]
        index = oracle_bins(column, bounds, spec["closed"])
        hits = (labels == c).astype(np.float64)
        each.append(
            oracle_error(
                column, hits, index, spec["bins"], "squared" if norm == "l2" else norm, debias
            )
        )
    if norm == "max":
        return max(each)
    if norm == "l1":
        return float(np.mean(each))
    # a class's debiased square below 0 is an error of 0 (Kumar et al.'s max(., 0) per class)
    return math.sqrt(float(np.mean(np.maximum(each, 0.0))))


def check_scopes(
    values: Any, labels: Any, form: str, *, bins: int, closed: str, norm: str, debias: bool
) -> None:
    """The class-wise and positive-class scopes and the quantile binning, one-shot and
    in the state, against the oracle."""
    classes = np.shape(values)[1]
    rows = oracle_rows(values, labels, form)
    probs, y = rows["probs"], rows["labels"]
    spec = {"bins": bins, "closed": closed, "norm": norm, "debias": debias}
    if norm != "l2":
        debias = spec["debias"] = False
    scopes = ["top-label", "class-wise"] + (["positive-class"] if classes == 2 else [])
    for scope in scopes:
        for binning in ("uniform", "quantile"):
            options = dict(bins=bins, binning=binning, closed=closed, scope=scope)
            state = crossent.EvaluationState(classes, keep=2, **options)
            summary = state.update(values, labels, form=form).compute(norm=norm, debias=debias)
            _assert_scores(summary, rows, f"{scope} {binning}")
            _assert_classes(summary, rows, classes, f"{scope} {binning}")
            stats = summary.calibration.statistics
            if scope == "top-label":
                confidence, hits = rows["confidence"], rows["correct"]
            elif scope == "positive-class":
                confidence, hits = probs[:, 1], (y == 1).astype(np.float64)
            else:
                confidence, hits = probs, (y[:, None] == np.arange(classes)).astype(np.float64)
            assert np.sum(stats.count) == confidence.size, (scope, binning)
            assert np.sum(stats.hits) == np.sum(hits), (scope, binning)
            assert _close(
                np.sum(stats.confidence_sum), math.fsum(confidence.ravel()), 1e-12, 1e-300
            )
            one_shot = crossent.calibration_error(
                values, labels, form=form, norm=norm, debias=debias, **options
            )
            if binning == "uniform":
                edges: Any = bins
            elif scope == "class-wise":
                edges = [_quantile_edges(probs[:, c], bins) for c in range(classes)]
            else:
                edges = _quantile_edges(confidence, bins)
            if scope == "class-wise":
                want = _class_error(probs, y, edges, spec)
            else:
                index = oracle_bins(confidence, edges, closed)
                want = oracle_error(confidence, hits, index, bins, norm, debias)
                if binning == "uniform":
                    _assert_bins(one_shot.statistics, confidence, hits, index, bins, scope)
                    _assert_bins(stats, confidence, hits, index, bins, scope + " state")
            assert _close(one_shot.value, want, atol=1e-14), (scope, binning, one_shot.value, want)
            if binning == "uniform":
                assert _close(summary.calibration.value, want, atol=1e-14), (scope, want)


def _quantile_edges(confidence: np.ndarray, bins: int) -> np.ndarray:
    """scikit-learn's quantile edges (numpy.quantile, linear), the outer ones 0 and 1."""
    edges = np.quantile(confidence, np.linspace(0.0, 1.0, bins + 1))
    edges[0], edges[-1] = 0.0, 1.0
    return edges


# ---------------------------------------------------------------- the inputs


def hard_probs(rng: np.random.Generator, n: int, k: int, kind: str, bins: int) -> np.ndarray:
    """``(n, k)`` float64 probabilities of one hard kind: Dirichlet rows (peaked to flat),
    one-hot rows, ties between 2 to 4 classes, top-label confidences on the edges of
    ``bins`` uniform bins (1.0 included), a subnormal or zero first entry, or rows
    whose sum is off 1 by nearly the validation tolerance."""
    rows = np.arange(n)
    if k == 1:
        return np.ones((n, 1))
    if kind == "onehot":
        p = np.zeros((n, k))
        p[rows, rng.integers(0, k, n)] = 1.0
        return p
    if kind == "ties":
        p = np.zeros((n, k))
        m = int(min(k, rng.integers(2, 5)))
        p[rows[:, None], np.argsort(rng.random((n, k)), axis=1)[:, :m]] = 1.0 / m
        return p
    if kind == "edges":
        # the edges of numpy.linspace (j / bins is not always one), or an ulp off
        c = np.linspace(0.0, 1.0, bins + 1)[rng.integers(-(-bins // k), bins + 1, n)]
        c = np.minimum(c * (1.0 + rng.integers(-1, 2, n) * np.finfo(float).eps), 1.0)
        c = np.maximum(c, 1.0 / k)  # (the top label)
        top = rng.integers(0, k, n)
        p = np.repeat(((1.0 - c) / (k - 1))[:, None], k, axis=1)
        p[rows, top] = c
        return p
    p = rng.dirichlet(np.full(k, float(rng.choice([0.05, 0.5, 3.0]))), size=n)
    if kind == "subnormal":
        p = rng.dirichlet(np.ones(k), size=n)  # (no zero column to scale)
        tiny = 5e-324 * rng.integers(0, 4, n)
        p[:, 1:] *= ((1.0 - tiny) / p[:, 1:].sum(axis=1))[:, None]
        p[:, 0] = tiny
    elif kind == "tolerance":  # float64 rows 0.9 of the tolerance from 1 (accepted)
        side = np.where(p.max(axis=1) < 0.99, rng.choice([-1.0, 1.0], n), -1.0)
        p *= (1.0 + side * 0.9 * np.finfo(float).eps * (k + 1 + 512))[:, None]
    return p


def _values(p: np.ndarray, form: str, dtype: Any, rng: np.random.Generator) -> np.ndarray:
    """The probabilities in ``form`` and ``dtype`` (logits shifted by up to 50 a row)."""
    if form == "probs":
        return p.astype(dtype)
    with np.errstate(divide="ignore"):
        log_p = np.log(p)  # -inf for the zeros
    if form == "logits":
        log_p = log_p + rng.normal(size=(len(p), 1)) * 50
    return log_p.astype(dtype)


@contextlib.contextmanager
def evaluation_setting(count: int, block: int | None) -> Iterator[None]:
    """The thread count (1 or 2) and the block size of the evaluation, for a while."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_parallel, "workers", lambda: count)
        if block:
            patch.setattr(_inputs, "_BLOCK_ELEMENTS", block)
        yield


_KINDS = st.sampled_from(["dirichlet", "onehot", "ties", "edges", "subnormal", "tolerance"])
_CLOSED = st.sampled_from(["left", "right"])
_NORMS = st.sampled_from(["l1", "l2", "max"])


def _drawn(
    data: Any, sizes: list[int], classes: list[int], forms: list[str], dtypes: list[Any]
) -> tuple[np.ndarray, np.ndarray, str, int]:
    """Rows of a hard kind (:func:`hard_probs`), their labels, form and a number of bins."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n, k = data.draw(st.sampled_from(sizes)), data.draw(st.sampled_from(classes))
    kind, form = data.draw(_KINDS), data.draw(st.sampled_from(forms))
    dtype, bins = data.draw(st.sampled_from(dtypes)), data.draw(st.sampled_from([1, 2, 5, 15]))
    if form == "logits" and kind == "edges":  # (exp rounds the edges either way)
        kind = "dirichlet"
    if kind == "tolerance" or (dtype == np.float16 and form != "probs"):
        dtype = np.float64
    if dtype == np.float16 and kind == "subnormal":
        kind = "dirichlet"
    values = _values(hard_probs(rng, n, k, kind, bins), form, dtype, rng)
    labels = rng.integers(0, k, n)
    if data.draw(st.booleans()):  # every label the last class, or the first
        labels[:] = data.draw(st.sampled_from([0, k - 1]))
    return values, labels, form, bins


@settings(max_examples=60, deadline=None, derandomize=True)
@given(data=st.data())
def test_issue13_every_path_against_the_oracle(data: Any) -> None:
    """Rows across the chunks of 256 rows, classes across the tiles of 16 and the short
    rows of 64, blocks of 64 or 1000 entries (the stacked path), 1 or 2 threads."""
    values, labels, form, bins = _drawn(
        data,
        [1, 2, 3, 255, 256, 257, 300],
        [1, 2, 3, 10, 16, 17, 64, 65],
        ["probs", "probs", "log_probs", "logits"],
        [np.float64, np.float32, np.float16],
    )
    keep = data.draw(st.sampled_from([0, 1, 3, 10]))
    splits = tuple(data.draw(st.lists(st.integers(0, len(labels)), max_size=2)))
    block, count = data.draw(st.sampled_from([None, 64, 1000])), data.draw(st.sampled_from([1, 2]))
    closed, norm = data.draw(_CLOSED), data.draw(_NORMS)
    with evaluation_setting(count, block):
        check_everything(
            values, labels, form, bins=bins, closed=closed, keep=keep, norm=norm, splits=splits
        )


@settings(max_examples=25, deadline=None, derandomize=True)
@given(data=st.data())
def test_issue13_scopes_and_quantiles_against_the_oracle(data: Any) -> None:
    values, labels, form, bins = _drawn(
        data,
        [1, 3, 40, 257],
        [1, 2, 2, 3, 17],
        ["probs", "log_probs", "logits"],
        [np.float64, np.float32],
    )
    closed, norm, debias = data.draw(_CLOSED), data.draw(_NORMS), data.draw(st.booleans())
    check_scopes(values, labels, form, bins=bins, closed=closed, norm=norm, debias=debias)


# ---------------------------------------------------------------- layouts and dtypes


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["fortran", "strided", "reversed rows", "reversed classes"])
def test_issue13_layouts_against_the_oracle(dtype: Any, layout: str) -> None:
    rng = np.random.default_rng(3)
    p = hard_probs(rng, 300, 10, "dirichlet", 10).astype(dtype)
    labels = rng.integers(0, 10, 300)
    if layout == "fortran":
        p = np.asfortranarray(p)
    elif layout == "strided":
        wide = np.zeros((300, 20), dtype)
        wide[:, ::2] = p
        p = wide[:, ::2]
    elif layout == "reversed rows":
        p, labels = p[::-1], labels[::-1]
    else:  # (read-only rows: left out, a kernel compiled for them alone, seconds)
        p = p[:, ::-1]
    with evaluation_setting(2, 1000):
        check_everything(p, labels, "probs", bins=10, closed="left", keep=3, splits=(100,))


@pytest.mark.parametrize("label_dtype", [np.uint8, np.int16, np.int32, np.uint32, np.uint64])
def test_issue13_label_dtypes_against_the_oracle(label_dtype: Any) -> None:
    rng = np.random.default_rng(4)
    p = hard_probs(rng, 257, 17, "ties", 5).astype(np.float32)
    labels = rng.integers(0, 17, 257).astype(label_dtype)
    check_everything(p, labels, "probs", bins=5, closed="right", keep=10, splits=(256,))


@pytest.mark.parametrize(
    ("case", "form"),
    [
        ("huge logits", "logits"),
        ("tiny logits", "logits"),
        ("logits near the float64 limit", "logits"),
        ("-inf log-probabilities", "log_probs"),
        ("one class", "probs"),
    ],
)
def test_issue13_extreme_values_against_the_oracle(case: str, form: str) -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 10, 300)
    if case == "huge logits":
        values = rng.normal(size=(300, 10)) * 1e300
    elif case == "tiny logits":
        values = rng.normal(size=(300, 10)) * 1e-300
    elif case == "logits near the float64 limit":
        values = rng.normal(size=(300, 10))
        values[:, 2], values[:, 5] = 1e308, -1e308
    elif case == "-inf log-probabilities":
        values = np.log(rng.dirichlet(np.ones(10), size=300))
        values[:, 3] = -np.inf
        values -= np.logaddexp.reduce(values, axis=1, keepdims=True)
    else:
        values, labels = np.ones((300, 1)), np.zeros(300, dtype=np.intp)
    exact_nll = None
    if case == "logits near the float64 limit":  # rows of 2e308: their means fit

        def exact_nll(member: np.ndarray) -> float:
            return oracles.mean_surprisal_of_logits(values[member], labels[member])

        assert math.isfinite(exact_nll(np.ones(len(labels), dtype=bool)))
    with np.errstate(over="ignore"):
        check_everything(
            values,
            labels,
            form,
            bins=15,
            closed="left",
            keep=10,
            splits=(7, 200),
            exact_nll=exact_nll,
        )


# ---------------------------------------------------------------- errors


def _every_path(values: Any, labels: Any, k: int, state: Any) -> dict[str, Any]:
    """What each path raises for the same input (None if it returns)."""
    calls = {
        "nll": lambda: crossent.negative_log_likelihood(values, labels),
        "nll rows": lambda: crossent.negative_log_likelihood(values, labels, reduction="none"),
        "brier": lambda: crossent.brier_score(values, labels),
        "spherical": lambda: crossent.spherical_score(values, labels),
        "accuracy": lambda: crossent.accuracy(values, labels),
        "ece": lambda: crossent.calibration_error(values, labels),
        "ece quantile": lambda: crossent.calibration_error(values, labels, binning="quantile"),
        "ece class-wise": lambda: crossent.calibration_error(values, labels, scope="class-wise"),
        "state quantile": lambda: crossent.EvaluationState(k, binning="quantile").update(
            values, labels
        ),
        "state class-wise": lambda: crossent.EvaluationState(k, scope="class-wise").update(
            values, labels
        ),
        "state": lambda: state.update(values, labels, first_row=0),
    }
    raised: dict[str, Any] = {}
    for name, call in calls.items():
        try:
            call()
            raised[name] = None
        except InputError as error:
            raised[name] = (type(error), error.args)
    return raised


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("block", [None, 100])
@pytest.mark.parametrize(
    "bad",
    [
        "nan",
        "negative",
        "above 1",
        "row sum",
        "sum past tolerance",
        "label k",
        "label -1",
        "nan and label",
    ],
)
def test_issue13_the_same_error_from_every_path(dtype: Any, block: int | None, bad: str) -> None:
    rng = np.random.default_rng(6)
    n, k = 400, 10
    values = rng.dirichlet(np.ones(k), size=n).astype(dtype)
    labels = rng.integers(0, k, n)
    if bad == "nan":
        values[350, 3] = np.nan
    elif bad == "negative":
        values[350, 3], values[350, 4] = -0.01, values[350, 4] + 0.01
    elif bad == "above 1":
        values[350, 3] = 1.5
    elif bad == "row sum":
        values[350] *= 1.01
    elif bad == "sum past tolerance":  # 1.2 times the tolerance off, in the row's dtype
        tolerance = row_sum_tolerance(np.dtype(dtype), k, xp=np)
        row = values[350].astype(np.float64)
        values[350] = row * ((1.0 + 1.2 * tolerance) / row.sum())
        assert abs(values[350].astype(np.float64).sum() - 1.0) > tolerance
    elif bad == "label k":
        labels[350] = k
    elif bad == "label -1":
        labels[350] = -1
    else:  # the labels are checked first, whichever row comes first
        values[120, 3], labels[350] = np.nan, k
    state = crossent.EvaluationState(k, keep=3)
    state.update(values[:50], labels[:50])
    before = state.compute()
    with evaluation_setting(2, block):
        raised = _every_path(values, labels, k, state)
    assert len(set(raised.values())) == 1, raised
    assert None not in raised.values()
    after = state.compute()  # the state as it was
    assert (state.n, after.nll, after.brier, after.mean_entropy) == (
        50,
        before.nll,
        before.brier,
        before.mean_entropy,
    )
    assert after.most_surprising == before.most_surprising
    np.testing.assert_array_equal(
        after.calibration.statistics.count, before.calibration.statistics.count
    )


# ---------------------------------------------------------------- regressions


def test_issue13_accuracy_of_logits_one_ulp_apart() -> None:
    """Logits one ulp apart: the later class is the more probable, though their float64
    probabilities round to a tie (``argmax`` of those picked the first: 0.80 for 1.0)."""
    z = np.random.default_rng(7).normal(size=(1000, 2))
    z[:, 1] = np.nextafter(z[:, 0], np.inf)
    labels = np.ones(1000, dtype=np.intp)
    assert crossent.accuracy([[0.0, 1e-300]], [1], form="logits") == 1.0
    assert crossent.accuracy(z, labels, form="logits") == 1.0
    assert crossent.accuracy(z, labels, form="logits", reduction="none").min() == 1.0
    summary = crossent.EvaluationState(2).update(z, labels, form="logits").compute()
    assert summary.accuracy == 1.0
    error = crossent.calibration_error(z, labels, form="logits", scope="top-label")
    assert error.statistics.hits.sum() == 1000
    half = math.log(0.5)
    log_p = [[half, float(np.nextafter(half, 0.0))]]  # exp: 0.5 both
    assert crossent.accuracy(log_p, [1], form="log_probs") == 1.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_issue13_unchecked_label_error_names_the_row(dtype: Any) -> None:
    """``validate=False`` and a label out of range: the labels' InputError (labelsafe:
    it was an IndexError) names the row of the batch, counted from ``first_row``, not
    its row in its block of rows (row 5)."""
    rng = np.random.default_rng(8)
    values = rng.dirichlet(np.ones(10), size=400).astype(dtype)
    labels = rng.integers(0, 10, 400)
    labels[355] = 10
    with evaluation_setting(2, 100):  # blocks of 10 rows
        with pytest.raises(InputError, match=r"\(row 355 has 10\)"):
            crossent.negative_log_likelihood(values, labels, validate=False)
        with pytest.raises(InputError, match=r"\(row 355 has 10\)"):
            crossent.accuracy(values, labels, validate=False, reduction="none")
        with pytest.raises(InputError, match=r"\(row 1355 has 10\)"):
            crossent.EvaluationState(10).update(values, labels, validate=False, first_row=1000)


def test_issue13_most_surprising_tie_of_rounded_surprisals() -> None:
    """Label probabilities 1e-300 and the float64 below it: one surprisal, a tie, which
    the earlier row wins in one batch as in a batch split between the two (the kernel
    kept the smaller probability, the later row, and the merge the earlier; float32
    probabilities are too far apart to round to one surprisal)."""
    tiny = np.array([1e-300, np.nextafter(1e-300, 0.0)])
    probs = np.array([[tiny[0], 1 - tiny[0]], [tiny[1], 1 - tiny[1]], [0.5, 0.5]])
    labels = [0, 0, 1]
    surprisal = crossent.negative_log_likelihood(probs, labels, reduction="none")
    assert surprisal[0] == surprisal[1]  # (the premise)
    whole = crossent.EvaluationState(2, keep=1).update(probs, labels).compute()
    left = crossent.EvaluationState(2, keep=1).update(probs[:1], labels[:1])
    right = crossent.EvaluationState(2, keep=1).update(probs[1:], labels[1:], first_row=1)
    assert whole.most_surprising == [(0, surprisal[0])]
    assert left.merge(right).compute().most_surprising == whole.most_surprising
    logits = crossent.EvaluationState(2, keep=1).update(np.log(probs), labels, form="log_probs")
    assert logits.compute().most_surprising[0][0] == 0


@pytest.mark.parametrize("closed", ["left", "right"])
@pytest.mark.parametrize("bins", [3, 10, 15, 100])
def test_issue13_confidences_on_every_edge(closed: str, bins: int) -> None:
    """Top-label confidences on every edge of ``numpy.linspace(0, 1, bins + 1)`` from
    1/2 to 1 and an ulp either side, 2 and 10 classes, float64, through the kernel's
    bins (the state, one batch and split; ``calibration_error``) and the generic ones
    (class-wise)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    c = edges[edges >= 0.5]
    c = np.concatenate([c, np.nextafter(c, 0.0), np.minimum(np.nextafter(c, 2.0), 1.0)])
    labels = np.random.default_rng(9).integers(0, 2, c.size)
    pairs = np.stack([c, 1.0 - c], axis=1)
    check_everything(pairs, labels, "probs", bins=bins, closed=closed, keep=1, splits=(5,))
    check_scopes(pairs, labels, "probs", bins=bins, closed=closed, norm="l1", debias=False)
    spread = np.repeat(((1.0 - c) / 9)[:, None], 10, axis=1)
    spread[:, 3] = c
    check_everything(spread, labels, "probs", bins=bins, closed=closed, keep=0)


def test_issue13_compensated_sum_of_chunks() -> None:
    """A surprisal of 690 in the first chunk of 256 rows, then 10 chunks of surprisals
    of 1.1e-16 (2.8e-14 a chunk, a quarter of an ulp of 690): added plainly, every
    chunk's sum is lost; the kernel's compensated sum of the chunks keeps them (the
    mean within an ulp of the exact one)."""
    n = 11 * 256
    p_label = np.full(n, 1.0 - 2.0**-53)
    p_label[0] = 1e-300
    probs = np.stack([p_label, 1.0 - p_label], axis=1)
    labels = np.zeros(n, dtype=np.intp)
    exact = math.fsum(oracle_rows(probs, labels, "probs")["surprisal"].tolist()) / n
    for got in (
        crossent.EvaluationState(2).update(probs, labels).compute().nll,
        crossent.negative_log_likelihood(probs, labels),
    ):
        assert abs(got - exact) <= math.ulp(exact), (got, exact)
