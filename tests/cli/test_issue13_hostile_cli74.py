"""Hostile pass 74 over ``crossent report`` (after stops 71-73 changed its numbers):
every number the report prints checked against an independent computation.

Each test pins a defect found by running the command on hostile model outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import mpmath
import numpy as np
import pytest

from crossent.cli import main


def _mean_surprisal(rows: list[list[float]], labels: list[int]) -> float:
    """The mean of ``log sum_j exp z_j - z_y`` over the rows, in 200-bit mpmath."""
    with mpmath.workprec(200):
        total = mpmath.mpf(0)
        for row, label in zip(rows, labels, strict=True):
            z = [mpmath.mpf(v) for v in row]
            top = max(z)
            total += top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in z)) - z[label]
        return float(total / len(rows))


def test_per_class_nll_of_far_logits_is_finite_as_the_nll_is(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Logits of ``[1e308, -1e308]`` labelled 1 have a surprisal of 2e308 (+inf in
    float64).  The report's NLL is formed from the logits' halves (7.5e307, finite since
    stop 73), but its per-class table took the state's per-class mean: class 1 (that
    row and one of surprisal 0, mean 1e308) printed inf under the finite NLL."""
    rows = [[1e308, -1e308], [-1e308, 1e308], [0.0, 1e308], [5.0, -5.0]]
    labels = [1, 1, 0, 0]
    path = tmp_path / "far.npz"
    np.savez(path, logits=np.array(rows), labels=np.array(labels))
    output = tmp_path / "far.json"
    assert main(["report", str(path), "--resamples", "10", "--output", str(output)]) == 0
    text = capsys.readouterr().out
    payload = json.loads(output.read_text(encoding="utf-8"))
    assert payload["nll_nats"] == _mean_surprisal(rows, labels)  # 7.5e307
    for k in (0, 1):
        mine = [i for i, y in enumerate(labels) if y == k]
        want = _mean_surprisal([rows[i] for i in mine], [labels[i] for i in mine])
        assert payload["per_class"][k]["nll_nats"] == want  # 5e307, 1e308 (was "inf")
    line = next(s for s in text.splitlines() if s.startswith("│     1 │"))
    assert "1.0000e+308" in line, line
