"""Step 2 of ``calibration/_separation.py`` does not certify overlap on (quasi-)separated
data whose fitted probabilities span many orders of magnitude (``tests/MUTATION.md``,
mutation3's mutant 102).

(Stop 53, branch vecscale2: step 2 now accepts where a bound on the Newton decrement
:math:`q = r^T G^{+} r` is below 1/4, which on separated data is at least 1 in exact
arithmetic; these data must still be refused. What follows describes the test that
stood before.) Step 2 accepted a null vector :math:`\\lambda'` of :math:`M^T` when the
residual is small against :math:`|M|^T \\lambda'` times the share
:math:`\\min \\lambda' / \\max \\lambda'`.
Mutant 102 (``onehot / W`` for ``onehot * W`` in that bound's label terms) makes the
bound about :math:`10^{-6} |z| / \\max \\lambda'` wherever a row is confidently right
(:math:`W` tiny): the share cancels, and a fit that stopped far along a separating
direction (entries :math:`e^{-t m}`, their residual along that direction below
:math:`10^{-6}` and out of the least squares' reach) passed for an overlap.

The data: rows that the scaling :math:`w = (2, -1, 0.5)`, :math:`b = (0.25, 0, -0.25)`
(mixed signs: no ranking of the scores shows it) ranks first, plus rows on which it ties
every class, each with all three labels (margins 0: quasi-separated), or those rows
moved a little so that their labels win by ``gap`` (separated, nearly overlapping).
Oracle: the dual linear program of ``test_vector_scaling_separation`` (Stiemke: the
data overlap iff some :math:`\\lambda \\ge 1` has :math:`M^T \\lambda = 0`) on the dense
margin matrix, by :func:`scipy.optimize.linprog`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import crossent
from crossent.calibration import _recalibrators, _separation

from .test_vector_scaling_separation import overlap_by_dual

_SCALE = np.array([2.0, -1.0, 0.5])
_BIAS = np.array([0.25, 0.0, -0.25])  # powers of 2: the ties below are exact


def _nearly_overlapping(seed: int, gap: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    free = rng.normal(size=(60, 3))
    free_labels = (free * _SCALE + _BIAS).argmax(axis=1)
    level = np.array([-1.5, -0.25, 0.75, 2.0])
    tied = (level[:, None] - _BIAS) / _SCALE  # w * z + b equal for every class
    tied = np.repeat(tied, 3, axis=0)
    tied_labels = np.tile([0, 1, 2], 4)
    # the label's score moved so that it wins by `gap` under (w, b)
    tied[np.arange(tied.shape[0]), tied_labels] += gap / _SCALE[tied_labels]
    return np.concatenate([free, tied]), np.concatenate([free_labels, tied_labels])


@pytest.mark.parametrize("gap", [0.0, 1e-6])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sepmutant_step_two_does_not_certify_nearly_separated_fits(
    monkeypatch: pytest.MonkeyPatch, seed: int, gap: float
) -> None:
    """The fit is separated (oracle: no positive null vector); step 2 refuses every
    starting point from the fit's probabilities (the raw ones and the floored ones),
    and the answer is "separated" (mutant 102 answered "not separated" here)."""
    scores, labels = _nearly_overlapping(seed, gap)
    assert set(labels.tolist()) == {0, 1, 2}
    margins = _separation._margins(scores, labels, np.concatenate([_SCALE, _BIAS]))
    assert np.all(margins >= 0.0)
    assert np.any(margins > 0.0)
    top = scores[np.arange(labels.size), labels][:, None] - scores
    for ranked in (top, -top):  # step 1 does not answer: step 2 is reached
        assert not (np.all(ranked >= 0.0) and np.any(ranked > 0.0))
    assert not overlap_by_dual(scores, labels)

    seen: list[np.ndarray] = []

    def recording(scores: np.ndarray, labels: np.ndarray, probs: np.ndarray) -> Any:
        seen.append(probs.copy())
        return _separation.separated(scores, labels, probs)

    monkeypatch.setattr(_recalibrators, "separated", recording)
    fitted = crossent.VectorScaling().fit(scores, labels)
    assert fitted.separated_
    assert not fitted.converged_
    (probs,) = seen
    wrong = labels[:, None] != np.arange(3)
    largest = probs[wrong].max()
    assert probs[wrong].min() < 1e-6 * largest  # the spread that step 2's share is for
    starts = [probs] + [np.maximum(probs, f * largest) for f in _separation._FLOORS]
    for start in starts:
        assert not _separation._overlap_certified(scores, labels, start)
