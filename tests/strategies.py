"""Hypothesis strategies: distributions (normalised to within an ulp), logits with ties and
``-inf`` entries, every loss and calibration option, and predictions whose confidences sit
exactly on bin edges, at 1.0 and in ties."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st


def _normalise(weights: list[float]) -> np.ndarray:
    # fsum gives a correctly rounded normaliser, so the row sums to 1 within ~1 ulp
    # and passes validation for any number of classes.
    total = math.fsum(weights)
    return np.array([w / total for w in weights])


@st.composite
def distributions(
    draw: st.DrawFn, *, min_classes: int = 1, max_classes: int = 12, classes: int | None = None
) -> np.ndarray:
    k = classes if classes is not None else draw(st.integers(min_classes, max_classes))
    weight = st.one_of(
        st.just(0.0),
        st.floats(1e-300, 1.0),
        st.floats(0.01, 1.0),
    )
    weights = draw(st.lists(weight, min_size=k, max_size=k).filter(lambda w: math.fsum(w) > 0))
    return _normalise(weights)


@st.composite
def distribution_pairs(draw: st.DrawFn, *, max_classes: int = 12) -> tuple[np.ndarray, np.ndarray]:
    k = draw(st.integers(1, max_classes))
    return draw(distributions(classes=k)), draw(distributions(classes=k))


# ------------------------------------------------------------------ logits and losses


@st.composite
def logit_rows(
    draw: st.DrawFn,
    *,
    rows: tuple[int, int] = (1, 12),
    classes: tuple[int, int] = (2, 9),
    magnitude: float = 60.0,
    minus_inf: bool = True,
) -> np.ndarray:
    """float64 logits ``(n, classes)`` with ties (values from a small pool, whole rows
    equal) and ``-inf`` entries (never a whole row), besides ordinary values."""
    n = draw(st.integers(*rows))
    k = draw(st.integers(*classes))
    pool = draw(st.lists(st.floats(-magnitude, magnitude), min_size=1, max_size=3))
    value = st.one_of(st.floats(-magnitude, magnitude), st.sampled_from(pool))
    if minus_inf:
        value = st.one_of(value, st.just(-math.inf))
    z = np.array(draw(st.lists(st.lists(value, min_size=k, max_size=k), min_size=n, max_size=n)))
    if draw(st.booleans()):  # a row of ties
        z[draw(st.integers(0, n - 1))] = draw(st.floats(-magnitude, magnitude))
    dead = np.all(z == -math.inf, axis=1)
    z[dead, draw(st.integers(0, k - 1))] = 0.0
    return z


@st.composite
def labels_for(draw: st.DrawFn, logits: np.ndarray, *, finite: bool = True) -> np.ndarray:
    """Labels ``(n,)``, each at a class with a finite logit when ``finite`` (else any)."""
    labels = []
    for row in logits:
        allowed = np.flatnonzero(np.isfinite(row)) if finite else np.arange(row.size)
        labels.append(int(draw(st.sampled_from(allowed.tolist()))))
    return np.array(labels, dtype=np.int64)


@st.composite
def softmax_options(draw: st.DrawFn, classes: int) -> dict:
    """Every option of ``softmax_cross_entropy`` that the fused kernels serve."""
    options: dict = {}
    if draw(st.booleans()):
        options["weight"] = np.array(
            draw(st.lists(st.floats(0.1, 3.0), min_size=classes, max_size=classes))
        )
    if draw(st.booleans()):
        options["ignore_index"] = draw(st.sampled_from([-100, classes, 0]))
    options["label_smoothing"] = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    options["reduction"] = draw(st.sampled_from(["mean", "sum", "none"]))
    options["temperature"] = draw(st.sampled_from([1.0, 0.5, 1.7, 4.0]))
    options["z_loss"] = draw(st.sampled_from([0.0, 1e-4, 0.1]))
    options["base"] = draw(st.sampled_from([None, 2.0]))
    return options


# ------------------------------------------------------------------ calibration


@st.composite
def calibration_options(draw: st.DrawFn, *, classes: int = 3) -> dict:
    """Every option of ``calibration_error`` (``debias`` only where defined)."""
    norm = draw(st.sampled_from(["l1", "l2", "max"]))
    scopes = ["top-label", "class-wise"] + (["positive-class"] if classes == 2 else [])
    return {
        "bins": draw(st.integers(1, 20)),
        "binning": draw(st.sampled_from(["uniform", "quantile"])),
        "norm": norm,
        "scope": draw(st.sampled_from(scopes)),
        "closed": draw(st.sampled_from(["left", "right"])),
        "debias": norm == "l2" and draw(st.booleans()),
    }


@st.composite
def predictions_on_edges(
    draw: st.DrawFn, *, bins: int, classes: int = 2, rows: tuple[int, int] = (1, 40)
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities ``(n, classes)`` and labels whose confidences fall exactly on the
    uniform bin edges ``numpy.linspace(0, 1, bins + 1)``, at 1.0 (one-hot rows), in ties
    between classes (equal top probabilities) and anywhere else."""
    n = draw(st.integers(*rows))
    edges = np.linspace(0.0, 1.0, bins + 1)
    probs = []
    for _ in range(n):
        kind = draw(st.sampled_from(["edge", "one", "tie", "any"]))
        if kind == "one":
            row = np.eye(classes)[draw(st.integers(0, classes - 1))]
        elif kind == "tie":
            row = np.full(classes, 1.0 / classes)
        else:
            top = (
                float(edges[draw(st.integers(0, bins))])
                if kind == "edge"
                else draw(st.floats(0.0, 1.0))
            )
            top = max(top, 1.0 / classes)  # a top-label confidence is at least 1/classes
            rest = (1.0 - top) / (classes - 1)
            row = np.full(classes, rest)
            row[draw(st.integers(0, classes - 1))] = top
            if classes == 2:  # positive-class scope: the edge on p_1 as well
                row = row if draw(st.booleans()) else row[::-1].copy()
        probs.append(row)
    labels = draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n))
    return np.array(probs), np.array(labels, dtype=np.int64)
