"""Issue 13, a hostile pass over ``crossent report`` (branch hostile16).

* Logits of +-1e308 (a model's saturated outputs): the surprisals 1e308, 1e308 and
  log 2 have the mean 6.67e307, but their sum overflowed and the NLL (JSON, text, and
  ``negative_log_likelihood``) was ``inf``; the mean is now taken row by row when the
  sum overflows (a row of surprisal +inf still makes it +inf).
* Such numbers were printed in fixed notation with all their digits: a per-class NLL
  of 5e307 made a table cell 313 characters wide (the ``.txt`` report promises 80
  columns); from 1e15 on they are printed as ``5.0000e+307``.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

import crossent
from crossent.cli import main

pytest.importorskip("rich")

_FAST = ["--resamples", "5", "--top", "3"]
_HUGE = np.array([[1e308, 0.0], [0.0, 1e308], [0.0, 0.0]])
_HUGE_LABELS = np.array([1, 0, 0])
_HUGE_NLL = 2 * (1e308 / 3) + math.log(2) / 3  # rows 1e308, 1e308, log 2 (their sum overflows)


@pytest.fixture
def huge(tmp_path: Path) -> Path:
    path = tmp_path / "huge.npz"
    np.savez(path, logits=_HUGE, labels=_HUGE_LABELS)
    return path


def test_nll_of_huge_logits_is_their_finite_mean(
    capsys: pytest.CaptureFixture[str], huge: Path
) -> None:
    """Main: ``"nll_nats": "inf"`` (the sum 2e308 overflowed)."""
    assert main(["report", str(huge), "--json", *_FAST]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["nll_nats"] == pytest.approx(_HUGE_NLL, rel=1e-15)
    assert payload["nll_bits"] == pytest.approx(_HUGE_NLL / math.log(2), rel=1e-15)
    nll = crossent.negative_log_likelihood(_HUGE, _HUGE_LABELS, form="logits")
    assert nll == pytest.approx(_HUGE_NLL, rel=1e-15)
    binary = crossent.negative_log_likelihood(
        np.array([1e308, -1e308, 0.0]), np.array([0, 1, 1]), form="logits"
    )
    assert binary == pytest.approx(_HUGE_NLL, rel=1e-15)


def test_an_infinite_surprisal_keeps_the_nll_infinite() -> None:
    """Guard of the fallback: a label of probability 0 (surprisal +inf) among huge rows
    is still an NLL of +inf (kills a fallback that drops or clips infinite rows)."""
    logits = np.array([[1e308, 0.0], [0.0, 1e308], [0.0, -np.inf]])
    labels = np.array([1, 0, 1])
    assert crossent.negative_log_likelihood(logits, labels, form="logits") == math.inf


def test_huge_numbers_fit_the_text_table(huge: Path) -> None:
    """Main: the per-class NLL 5e307 and the surprisal 1e308 printed with 308 digits."""
    output = huge.parent / "r.txt"
    assert main(["report", str(huge), "--output", str(output), "--json", *_FAST]) == 0
    text = output.read_text(encoding="utf-8")
    table = [line for line in text.splitlines() if line[:1] in "┌│└┏┃┡"]
    assert max(map(len, table)) <= 80
    assert "6.6667e+307" in text  # the NLL
    assert "5.0000e+307" in text  # class 0's NLL: rows of 1e308 and log 2


def test_paired_difference_of_huge_logits_is_finite(
    capsys: pytest.CaptureFixture[str], huge: Path
) -> None:
    """Main: the difference ``"inf"`` beside its interval [3.67e307, 1e308], and NumPy's
    two-line overflow warning on standard error; ``compare_log_loss`` gave -inf."""
    baseline = huge.parent / "flat.npz"
    np.savez(baseline, logits=np.zeros((3, 2)), labels=_HUGE_LABELS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["report", str(baseline), str(huge), "--json", *_FAST]) == 0
        compared = crossent.compare_log_loss(
            np.zeros((3, 2)), _HUGE, _HUGE_LABELS, form_a="logits", form_b="logits", resamples=5
        )
    captured = capsys.readouterr()
    assert captured.err == ""
    (nll,) = [c for c in json.loads(captured.out)["comparisons"] if c["metric"] == "nll_nats"]
    assert nll["difference"] == pytest.approx(_HUGE_NLL - math.log(2), rel=1e-15)
    assert nll["ci_low"] <= nll["difference"] <= nll["ci_high"]
    assert compared.difference == pytest.approx(math.log(2) - _HUGE_NLL, rel=1e-15)
    assert compared.nll_b == pytest.approx(_HUGE_NLL, rel=1e-15)


def test_explain_prints_a_huge_loss_in_scientific_notation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Main: ``loss = -sum y log p =`` then the 309 digits of 1e308 on their own line."""
    assert main(["explain", "--logits", "1e308,-1e308,0", "--label", "2"]) == 0
    out = capsys.readouterr().out
    assert "loss = -sum y log p = 1.000000e+308 nats" in out
    assert max(map(len, out.splitlines())) <= 80


def test_explain_of_many_logits_builds_no_square_matrix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Main: the one-hot target was ``np.eye(K)[label]``, K*K floats: 4_000 logits took
    128 MB, 20_000 took 3.2 GB, and 100_000 were an internal error (MemoryError, 74.5
    GiB), exit 3."""
    import tracemalloc

    assert main(["explain", "--logits", "0,0", "--label", "1"]) == 0  # imports, untraced
    capsys.readouterr()
    logits = ",".join(["0"] * 4_000)
    tracemalloc.start()
    try:
        assert main(["explain", "--logits", logits, "--label", "5"]) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40e6  # the K*K target alone was 1.28e8 bytes
    assert f"loss = -sum y log p = {math.log(4_000):.6f} nats" in capsys.readouterr().out


def test_a_failed_gate_prints_a_huge_nll_in_scientific_notation(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Main: "crossent: gate failed: NLL 1000000000000000010979...0000.0000 nats >
    --max-nll 1e+300" (a surprisal of 1e308 in one row: no overflow needed)."""
    path = tmp_path / "one.npz"
    np.savez(path, logits=np.array([[1e308, 0.0]]), labels=np.array([1]))
    assert main(["report", str(path), "--max-nll", "1e300", "--json", *_FAST]) == 1
    err = capsys.readouterr().err
    assert err == "crossent: gate failed: NLL 1.0000e+308 nats > --max-nll 1e+300\n"


def test_a_class_nll_whose_sum_overflows_is_its_finite_mean(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Main: class 1's rows of surprisal 1e308 and 1e308 gave ``"nll_nats": "inf"``
    (the streamed per-class sum overflowed); a class with a row of probability 0 keeps
    +inf."""
    path = tmp_path / "classes.npz"
    logits = np.array([[1e308, 0.0], [1e308, 0.0], [0.0, 0.0], [0.0, -np.inf]])
    np.savez(path, logits=logits, labels=np.array([1, 1, 0, 1]))
    assert main(["report", str(path), "--json", *_FAST]) == 0
    per_class = json.loads(capsys.readouterr().out)["per_class"]
    assert per_class[0]["nll_nats"] == pytest.approx(math.log(2), rel=1e-15)
    assert per_class[1]["nll_nats"] == "inf"  # row 3: probability 0
    np.savez(path, logits=logits[:3], labels=np.array([1, 1, 0]))
    assert main(["report", str(path), "--json", *_FAST]) == 0
    per_class = json.loads(capsys.readouterr().out)["per_class"]
    assert per_class[1]["nll_nats"] == 1e308
