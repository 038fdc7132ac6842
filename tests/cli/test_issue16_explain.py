"""`crossent explain` and `crossent demo` for learners (issue 13; issue 10 items 9, 20, 22).

Every expected number is computed here from the textbook formula, never by crossent.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from crossent.cli import main
from stdio_streams import main_on

LN2 = math.log(2)
SRC = Path(__file__).resolve().parents[2] / "src"


def _softmax(z: list[float], t: float = 1.0) -> list[float]:
    m = max(z)
    e = [math.exp((v - m) / t) for v in z]
    return [v / sum(e) for v in e]


def _ok(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    return out


def _usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err


# --bits: the gradient of the loss shown ----------------------------------------------------


def test_issue13_bits_gradient_is_p_minus_y_over_ln2(capsys: pytest.CaptureFixture[str]) -> None:
    out = _ok(capsys, ["explain", "--logits", "2,1,0.1", "--label", "0", "--bits"])
    p = _softmax([2.0, 1.0, 0.1])
    for k, pk in enumerate(p):
        assert f"{(pk - (k == 0)) / LN2:+.4f}" in out
    assert f"{-math.log2(p[0]):.6f} bits" in out
    assert "(p - y) / ln 2" in out


def test_issue13_binary_bits_gradient_is_p_minus_y_over_ln2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _ok(capsys, ["explain", "--binary", "--y", "1", "--p", "0.9", "--bits"])
    assert f"{-math.log2(0.9):.6f} bits" in out
    assert f"{(0.9 - 1) / LN2:+.6f}" in out
    assert "(p - y) / ln 2" in out


def test_issue13_temperature_and_bits_gradient(capsys: pytest.CaptureFixture[str]) -> None:
    out = _ok(
        capsys, ["explain", "--logits", "2,1,0.1", "--label", "2", "--temperature", "2", "--bits"]
    )
    p = _softmax([2.0, 1.0, 0.1], 2.0)
    for k, pk in enumerate(p):
        assert f"{(pk - (k == 2)) / 2 / LN2:+.4f}" in out
    assert f"{-math.log2(p[2]):.6f} bits" in out


# Conflicting inputs and extra values: usage errors naming the CLI flag ----------------------


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--logits", "1,2", "--label", "0", "--q", "0.5,0.5"], "--q"),
        (["--logits", "1,2", "--label", "0", "--p", "1,0"], "--p"),
        (["--p", "1,0", "--q", "0.5,0.5", "--logits", "1,2"], "--q"),
        (["--binary", "--y", "1", "--p", "0.9", "--temperature", "2"], "--temperature"),
        (["--binary", "--y", "1", "--p", "0.9", "--q", "0.1"], "--q"),
        (["--binary", "--y", "1", "--p", "0.9", "--logits", "1"], "--logits"),
        (["--p", "1,0", "--q", "0.5,0.5", "--label", "0"], "--label"),
        (["--p", "1,0", "--q", "0.5,0.5", "--y", "1"], "--y"),
        (["--p", "1,0", "--q", "0.5,0.5", "--hinge"], "--hinge"),
        (["--logits", "1,2", "--label", "0", "--kl"], "--kl"),
        (["--logits", "1,2", "--p", "0.5,0.5", "--hinge"], "--hinge"),
    ],
)
def test_issue13_conflicting_inputs_are_usage_errors_naming_the_flag(
    capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:
    err = _usage_error(capsys, ["explain", *argv])
    assert flag in err, err


@pytest.mark.parametrize(
    ("argv", "flag", "wrong"),
    [
        (["--binary", "--y", "2", "--p", "0.9"], "`--y`", "`p`"),
        (["--binary", "--y", "1", "--p", "1.5"], "`--p`", "`q`"),
        (["--p", "1,0", "--q", "0.7,0.2"], "`--q`", "`q`"),
        (["--p", "1,-1", "--q", "0.5,0.5"], "`--p`", "`p`"),
        (["--logits", "2,1,0.1", "--p", "0.5,0.6,0"], "`--p`", "`targets`"),
        (["--logits", "2,1,nan", "--label", "0"], "`--logits`", "`logits`"),
    ],
)
def test_issue10_item20_errors_name_the_cli_flag(
    capsys: pytest.CaptureFixture[str], argv: list[str], flag: str, wrong: str
) -> None:
    err = _usage_error(capsys, ["explain", *argv])
    assert flag in err, err
    assert wrong not in err, err
    assert "validate=False" not in err, err
    # the library's fixes are Python code and the report's flag, not explain's (a row of
    # the wrong sum told the reader to run p / p.sum(axis, keepdims=True) or --renormalize)
    assert "keepdims" not in err, err
    assert "--renormalize" not in err, err
    if "sum to 1" in err:
        assert "give numbers that sum to 1 (each divided by their sum)" in err, err


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--binary", "--y", "1,0", "--p", "0.9"], "--y"),
        (["--binary", "--y", "1", "--p", "0.9,0.1"], "--p"),
    ],
)
def test_issue10_item20_extra_values_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:
    err = _usage_error(capsys, ["explain", *argv])
    assert flag in err, err


def test_issue10_item22_no_negative_zero_and_no_empty_index(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for y, p in (("0", "0"), ("1", "1")):
        out = _ok(capsys, ["explain", "--binary", "--y", y, "--p", p])
        assert "-0.000000" not in out, out
    out = _ok(capsys, ["explain", "--p", "1,0", "--q", "1,0", "--kl"])
    assert "-0.0000" not in out, out
    err = _usage_error(capsys, ["explain", "--binary", "--y", "2", "--p", "0.9"])
    assert "index ()" not in err, err


def test_issue10_item9_temperature_below_one_with_huge_logits(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _ok(capsys, ["explain", "--logits", "1e308,0", "--label", "0", "--temperature", "0.5"])
    assert "nan" not in out.lower(), out
    assert "loss = -sum y log p = 0.000000 nats" in out
    out = _ok(capsys, ["explain", "--logits", "1e308,0", "--label", "1", "--temperature", "0.5"])
    assert "nan" not in out.lower(), out
    assert "= 2.000000e+308 nats" in out  # 1e308 / 0.5, past float64 (was "inf")


# explain needs only the base install ---------------------------------------------------------


def test_issue13_explain_works_without_rich_sklearn_matplotlib_pyarrow() -> None:
    # One fresh process (the interpreter's start and crossent's import cost seconds)
    # calls main for each command in turn, each with its own stdout and stderr; after
    # every call, none of the four packages may have been imported.
    script = textwrap.dedent(
        """
        import contextlib, io, json, sys
        BANNED = ("rich", "sklearn", "matplotlib", "pyarrow")
        for name in BANNED:
            sys.modules[name] = None  # import fails, as when the package is absent
        from crossent.cli import main
        results = []
        for argv in json.loads(sys.argv[1]):
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
            assert not any(
                m.split(".")[0] in BANNED for m, v in sys.modules.items() if v is not None
            ), argv
            results.append([code, out.getvalue(), err.getvalue()])
        print(json.dumps(results))
        """
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    commands = [
        ["explain", "--p", "1,0,0", "--q", "0.7,0.2,0.1"],
        ["explain", "--logits", "2,1,0.1", "--label", "0", "--hinge"],
        ["demo", "entropy"],
    ]
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    results = json.loads(done.stdout)
    for argv, (code, out, err) in zip(commands, results, strict=True):
        assert code == 0, (argv, err)
        assert err == "", argv
        assert re.search(r"\d\.\d{4}", out), out
    assert f"{-math.log(0.7):.4f}" in results[0][1]


# New modes -----------------------------------------------------------------------------------


def test_issue13_smoothing_shows_the_smoothed_target_and_its_loss(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _ok(capsys, ["explain", "--logits", "2,1,0.1", "--label", "0", "--smoothing", "0.1"])
    p = _softmax([2.0, 1.0, 0.1])
    target = [0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3]
    loss = -sum(t * math.log(v) for t, v in zip(target, p, strict=True))
    floor = -sum(t * math.log(t) for t in target)
    assert f"{target[0]:.4f}" in out
    assert f"{target[1]:.4f}" in out
    for k in range(3):
        assert f"{p[k] - target[k]:+.4f}" in out
    assert f"{loss:.6f} nats" in out
    assert f"{floor:.6f} nats" in out  # the floor: the entropy of the smoothed target


def test_issue13_hinge_versus_cross_entropy_on_the_same_logits(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _ok(capsys, ["explain", "--logits", "3,1,0.5", "--label", "0", "--hinge"])
    margin = 3 - 1
    assert f"margin z_y - max z_other = {margin:.4f}" in out
    assert "hinge loss = 0.000000" in out
    p = _softmax([3.0, 1.0, 0.5])
    assert f"{-math.log(p[0]):.6f} nats" in out
    # scaling the logits: the hinge stays at 0, the cross-entropy keeps shrinking (in
    # e-notation since learner: at scale 8 it is 1.1e-07, which 6 decimals showed as 0)
    for scale in (2, 4, 8):
        ps = _softmax([3.0 * scale, 1.0 * scale, 0.5 * scale])
        assert f"{-math.log(ps[0]):.2e}" in out
    out = _ok(capsys, ["explain", "--logits", "1,0.5,0", "--label", "0", "--hinge"])
    assert "hinge loss = 0.500000" in out


def test_issue13_kl_both_directions(capsys: pytest.CaptureFixture[str]) -> None:
    out = _ok(capsys, ["explain", "--p", "0.5,0.5", "--q", "0.9,0.1", "--kl"])
    forward = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    reverse = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert f"D(P||Q) = {forward:.6f} nats" in out
    assert f"D(Q||P) = {reverse:.6f} nats" in out
    out = _ok(capsys, ["explain", "--p", "0.5,0.5", "--q", "1,0", "--kl", "--bits"])
    assert "D(P||Q) = inf bits" in out
    assert "D(Q||P) = 1.000000 bits" in out


def test_issue13_temperature_recomputes_the_loss_on_distributions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _ok(capsys, ["explain", "--p", "1,0", "--q", "0.8,0.2", "--temperature", "0.5"])
    q_t = 0.64 / 0.68
    assert f"{q_t:.4f}" in out
    assert f"H(P, Q_T) = {-math.log(q_t):.6f} nats" in out
    assert f"H(P, Q)  = {-math.log(0.8):.6f} nats" in out


def _row_ids(out: str) -> list[int]:
    """The first cell of each table row that starts with an integer (rich or plain)."""
    return [int(m.group(1)) for m in re.finditer(r"^[│ ]\s*(\d+)\s+[│ ]", out, re.M)]


@pytest.mark.parametrize(
    ("argv", "kept"),
    [
        (["--kl"], 250),
        (["--temperature", "2"], 250),
        ([], 250),
    ],
    ids=["kl", "temperature", "distributions"],
)
def test_leftovers11_long_tables_are_capped(
    capsys: pytest.CaptureFixture[str], argv: list[str], kept: int
) -> None:
    """leftovers11: 300 outcomes printed 300 rows a table (10 000 classes, 10 000). Now 20
    rows, the largest contributions first (the true outcome 250 among them), then a line
    counting the rest and what they add up to; the totals stay those of every outcome
    (textbook formula); ``--all`` prints every row."""
    n = 300
    q = [0.5 / (n - 1)] * n
    q[kept] = 0.5
    p = ["0"] * n
    p[kept] = "1"
    args = ["explain", "--p", ",".join(p), "--q", ",".join(map(repr, q)), *argv]
    out = _ok(capsys, args)
    ids = _row_ids(out)
    tables = 2 if "--temperature" in argv else 1
    assert len(ids) == 20 * tables
    assert kept in ids[:20]
    assert out.count("280 more rows not shown") == tables
    assert f"{-math.log(0.5):.6f} nats" in out  # H(P, Q) or D(P||Q), over every outcome
    every = _ok(capsys, [*args, "--all"])
    assert sorted(_row_ids(every)) == sorted(list(range(n)) * tables)
    assert "more rows not shown" not in every


@pytest.mark.parametrize("hinge", [False, True], ids=["softmax", "hinge"])
def test_leftovers11_long_logits_tables_keep_the_label(
    capsys: pytest.CaptureFixture[str], hinge: bool
) -> None:
    """The logits' tables keep the label's row and the largest probabilities first."""
    z = [float(k % 7) for k in range(200)]
    args = ["explain", "--logits", ",".join(map(str, z)), "--label", "1"]
    out = _ok(capsys, [*args, "--hinge"] if hinge else args)
    ids = _row_ids(out)[:20]
    assert 1 in ids
    assert all(z[k] == 6.0 for k in ids if k != 1)
    p = _softmax(z)
    assert f"{-math.log(p[1]):.6f} nats" in out
    assert "180 more rows not shown" in out


@pytest.mark.parametrize(
    ("argv", "flag", "digit"),
    [
        (["explain", "--binary", "--y", "1", "--p", "\u09e6.\u09ea"], "--p", "U+09E6"),
        (["explain", "--p", "\u0660.\u0665,0.5", "--q", "0.9,0.1"], "--p", "U+0660"),
        (["explain", "--logits", "2,1,0", "--label", "\u0661"], "--label", "U+0661"),
        (
            ["explain", "--logits", "2,1", "--label", "0", "--temperature", "\uff12"],
            "--temperature",
            "U+FF12",
        ),
        (["report", "--max-ece", "0.\u09ea"], "--max-ece", "U+09EA"),
        (["report", "--resamples", "\u09e7\u09e6"], "--resamples", "U+09E7"),
        (["report", "--top", "\u0661"], "--top", "U+0661"),
    ],
    ids=["binary-p", "p", "label", "temperature", "max-ece", "resamples", "top"],
)
def test_leftovers11_digits_of_other_scripts_are_refused(
    capsys: pytest.CaptureFixture[str], argv: list[str], flag: str, digit: str
) -> None:
    """leftovers11: ``float`` and ``int`` read every script's digits, so ``--p \u09e6.\u09ea``
    (Bengali 0.4, whose four looks like a Latin 8) was the probability 0.4 and ``--label
    \u0661`` the class 1, where a CSV's cells refuse them. Now a usage error naming the flag
    and the digit."""
    err = _usage_error(capsys, argv)
    assert flag in err
    assert digit in err
    assert "ASCII digits 0-9" in err


# demo ----------------------------------------------------------------------------------------


def test_issue13_demo_speaks_of_the_tutorial_examples(capsys: pytest.CaptureFixture[str]) -> None:
    out = _ok(capsys, ["demo"])
    assert "the tutorial examples" in out
    assert "seed" not in out.lower()


@pytest.mark.parametrize(
    ("topic", "expected", "absent"),
    [
        ("entropy", "Entropy", "Perplexity"),
        ("cross-entropy", "Cross-entropy", "Surprisal"),
        ("softmax", "softmax", "Entropy:"),
        ("calibration", "temperature", "Surprisal"),
    ],
)
def test_issue13_demo_takes_a_topic(
    capsys: pytest.CaptureFixture[str], topic: str, expected: str, absent: str
) -> None:
    out = _ok(capsys, ["demo", topic])
    assert expected in out
    assert absent not in out


def test_issue13_demo_unknown_topic_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "nonsense"]) == 2
    assert "entropy" in capsys.readouterr().err  # lists the topics


@pytest.mark.parametrize("command", [["demo"], ["explain", "--p", "1,0,0", "--q", "0.7,0.2,0.1"]])
def test_issue13_writing_into_a_closed_pipe_is_quiet(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """In the test process, on the stream and exit of a fresh one (``stdio_streams``: a
    process each cost 2 s of CPU in all; real processes: test_issue13_report_closed_pipe)."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte, as with `| head -1` at its end
    try:
        done = main_on(
            write, command, buffered=not os.environ.get("PYTHONUNBUFFERED"), capsys=capsys
        )
    finally:
        os.close(write)
    assert done == (0, "")
