"""A 1-D binary column's bins and hits from ``p`` itself (issue 13, branch binupd1):
``_row_kernels.binary_bins`` reads ``p`` where ``_summaries._binary_totals`` ran the
``totals`` kernel over the rows ``[1 - p, p]`` (formed for each block); its twin, that
kernel on those rows, gives the same bits: every bin's count, confidence sum, hits and
rounding errors, and the hits, on hard ``p``, values not validated (NaN, infinities,
-0.0, outside [0, 1]) and random ones over several of its chunks.  The top-label
``EvaluationState.update`` of such a column forms no rows ``[1 - p, p]``
(``as_predictions(rows=False)``), with the same bits."""

from __future__ import annotations

import numpy as np
import pytest

from crossent import EvaluationState
from crossent.calibration import _row_kernels, _state
from crossent.calibration._binning import uniform_edges

pytest.importorskip("numba")

_HARD = [0.0, -0.0, 1e-300, 2.0**-54, 0.1, 0.5 - 2.0**-53, 0.5, 0.6, 14 / 15, 1 - 2.0**-53, 1.0]
_ODD = [np.nan, np.inf, -np.inf, 1.5, -0.2, 2.0]


def _column() -> tuple[np.ndarray, np.ndarray]:
    """The hard ``p`` and the odd ones with both labels, 1/2 of label 0, then 9000
    random rows (three of the kernel's chunks of 4096 rows), a quarter of them tiny
    (bin 0's errors)."""
    rng = np.random.default_rng(65)
    fixed = np.repeat(_HARD + _ODD, 2)
    p = np.concatenate([fixed, [0.5], rng.random(6750), 10.0 ** rng.uniform(-30, 0, 2250)])
    labels = np.concatenate(
        [np.tile([0, 1], fixed.size // 2), [0], rng.integers(0, 2, 9000)]
    )  # (a tie 1/2 of label 0 alone: class 0 predicted, a hit; both labels hide a swap)
    return p, labels.astype(np.intp)


@pytest.mark.parametrize(("bins", "closed", "errors"), [(15, "left", True), (10, "right", False)])
def test_binary_bins_are_the_totals_kernels_over_the_rows(bins, closed, errors):
    p, labels = _column()
    edges = uniform_edges(bins)
    got, hits = _row_kernels.binary_bins(p, labels, edges, left=closed == "left", errors=errors)
    rows = np.stack([1.0 - p, p], axis=1)
    _, _, (sums, _, want, _) = _row_kernels.block_totals(
        rows, labels, top=True, entropy=False, limit=1.0, spherical=False, squares=False,
        classes=False, edges=edges, left=closed == "left", keep=0, surprisal=False,
        errors=errors,
    )  # fmt: skip
    assert got.tobytes() == want.tobytes()
    assert hits == sums[4]
    assert want[3].any() == errors  # (the errors asked for are there: bin 0's tiny sums)


def _state_bits(state: EvaluationState) -> bytes:
    """The bits of a state's sums, bins and most surprising rows."""
    arrays = [state._sums, state._class_count, state._class_surprisal, *state._bins.arrays()]
    if state._bins.error is not None:
        arrays.append(state._bins.error)
    arrays.append(np.array([v for pair in state._surprising for v in pair], dtype=float))
    return b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)


def test_top_label_update_forms_no_rows_and_keeps_the_bits(monkeypatch):
    """The top-label scope's update reads ``p`` alone: no rows ``[1 - p, p]`` formed
    (a zero-stride stand-in), the same bits as with them; the class-wise scope forms
    them (its bins read the rows)."""
    p, labels = _column()
    p = np.clip(np.nan_to_num(p), 0.0, 1.0)  # (validated)
    asked = []
    original = _state.as_predictions

    def spy(*args, **kwargs):
        predictions = original(*args, **kwargs)
        asked.append(predictions.values.strides)
        return predictions

    monkeypatch.setattr(_state, "as_predictions", spy)
    for binning in ("uniform", "quantile"):
        got = EvaluationState(2, binning=binning).update(p, labels)
        with monkeypatch.context() as rows:
            rows.setattr(_state, "as_predictions", lambda *a, **k: spy(*a, **{**k, "rows": True}))
            want = EvaluationState(2, binning=binning).update(p, labels)
        assert _state_bits(got) == _state_bits(want)
    EvaluationState(2, scope="class-wise").update(p, labels)
    assert asked == [(0, 0), (16, 8), (0, 0), (16, 8), (16, 8)]
