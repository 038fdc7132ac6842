"""`crossent demo calibration` read as a learner reads it: its ECE column had no
definition (which confidence, how many bins), and its numbers are checked here against
a NumPy/SciPy oracle written apart (top-label confidence, 15 equal-width bins closed on
the left, [k/15, (k+1)/15), the last one holding 1; |accuracy - confidence| weighted by
count; the NLL-optimal temperature by `scipy.optimize.minimize_scalar`).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp, softmax

from crossent.cli import main


def _demo(capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["demo", "calibration"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def _data() -> tuple[np.ndarray, np.ndarray]:
    """The demo's model, drawn as the demo draws it (seed 0)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2000, 5)) * 2
    probs = softmax(logits, axis=1)
    labels = (rng.random((2000, 1)) > np.cumsum(probs, axis=1)).sum(axis=1)
    return 3 * logits, labels


def _nll(z: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(logsumexp(z, axis=1) - z[np.arange(len(labels)), labels]))


def _ece(z: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    p = softmax(z, axis=1)
    conf, hit = p.max(axis=1), p.argmax(axis=1) == labels
    where = np.minimum(np.floor(conf * bins).astype(int), bins - 1)
    gaps = [
        abs(hit[where == b].mean() - conf[where == b].mean()) * np.sum(where == b)
        for b in range(bins)
        if np.any(where == b)
    ]
    return float(sum(gaps) / len(conf))


def test_learner_demo_calibration_numbers_against_an_oracle(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A guard (passes on main): kills a demo that bins the ECE otherwise, or reports
    the NLL or temperature of other predictions."""
    out = _demo(capsys)
    z, labels = _data()
    t = minimize_scalar(
        lambda s: _nll(z / s, labels),
        bounds=(0.05, 20),
        method="bounded",
        options={"xatol": 1e-10},
    ).x
    accuracy = float(np.mean(z.argmax(axis=1) == labels))
    before = f"{_nll(z, labels):.4f}  {_ece(z, labels):.4f}    {accuracy:.4f}"
    after = f"{_nll(z / t, labels):.4f}  {_ece(z / t, labels):.4f}    {accuracy:.4f}"
    assert re.search(rf"model \(logits x 3\) +{before}", out), out
    assert re.search(rf"after temperature T = {t:.2f} +{after}", out), out


def test_learner_demo_calibration_says_what_its_ece_is(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = " ".join(_demo(capsys).split())
    assert "ECE here: the top-label confidence in 15 equal-width bins" in text
    assert "weighted by its share of the predictions" in text
