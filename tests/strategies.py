"""Hypothesis strategies for probability distributions, normalised to within an ulp."""

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
