"""Issue 13, a fourth hostile pass over the command line: each test pins a defect found by
attacking ``crossent report``, ``explain`` and their readers, and fails on main at
6e6304a (the commit message of each fix says how many).

* a CSV whose class columns are named ``01, 02`` (zero-padded integers) and whose
  labels are ``01``: pyarrow reads the label as the integer 1, which was taken as the
  position of the column ``02``: exit 0, accuracy 0 where it is 1;
* integer labels beside class columns of which one is named by an integer other than its
  position (``1, a, 0``: the label 0 names the third column, read as the first);
* boolean labels beside class columns named ``True, False``: the label ``True`` names
  the first column and was read as the second, exit 0 and wrong numbers;
* numbers typed on the command line that float64 cannot hold were read as another:
  ``explain --binary --y 1 --p 1e-400`` printed an infinite loss (it is 921 nats),
  ``--max-ece 1e-400`` gated at 0, ``--temperature 1e-400`` said "got 0", ``1e309`` was
  infinite, and ``--max-ece -0`` recorded the threshold ``-0.0``; ``--logits -inf,2``
  was "expected one argument";
* an option given twice (``--seed 1 --seed 2``, ``explain --p 1,0 ... --p 0,1``) took
  the last value silently; errors about options said the library's words (`` `seed` ``,
  ``debias=True``, ``norm='l1'``), not the flags typed, after the input's name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.cli import main

pytest.importorskip("rich")
pytest.importorskip("pyarrow")

_FAST = ["--resamples", "5", "--top", "3"]


def _usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    _out, err = capsys.readouterr()
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "internal error" not in err
    assert "Traceback" not in err
    return err


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    code = main([*argv, "--json", *_FAST])
    out, err = capsys.readouterr()
    assert code == 0, err
    return dict(json.loads(out))


_PROBS = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4]])
_NLL_FIRST = float(-np.mean(np.log(_PROBS[:, 0])))
"""The NLL when every row's label is the first class column."""


def _table(path: Path, names: list[str], labels: list[str]) -> Path:
    rows = [f"{y},{p0!r},{p1!r}" for y, (p0, p1) in zip(labels, _PROBS.tolist(), strict=True)]
    path.write_text("\n".join([",".join(["label", *names]), *rows]) + "\n", encoding="utf-8")
    return path


# --- labels that name a class column are never read as another's position ---------------


def test_zero_padded_integer_class_names_beside_integer_labels_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Main: exit 0, accuracy 0, NLL 1.61 (the label 01 read as the position of '02')."""
    path = _table(tmp_path / "padded.csv", ["01", "02"], ["01", "01", "01"])
    err = _usage_error(capsys, ["report", str(path), *_FAST])
    assert "--integer-labels names" in err
    assert "'01', '02'" in err
    named = _json(capsys, ["report", str(path), "--integer-labels", "names"])
    assert named["accuracy"] == 1.0
    assert named["nll_nats"] == pytest.approx(_NLL_FIRST, rel=1e-12)


def test_integer_labels_beside_a_column_named_by_another_position_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Columns ``1, a, 0`` (not all integers) and the label 0, which names the third
    column: main read it as the first (exit 0, NLL 0.69 for 1.39; found by hypothesis)."""
    path = tmp_path / "mixed.csv"
    path.write_text("label,1,a,0\n" + "0,0.5,0.25,0.25\n" * 3)
    err = _usage_error(capsys, ["report", str(path), *_FAST])
    assert "--integer-labels" in err
    positions = _json(capsys, ["report", str(path), "--integer-labels", "positions"])
    assert positions["nll_nats"] == pytest.approx(np.log(2))


def test_zero_padded_names_that_are_the_positions_need_no_flag(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``00, 01``: the integers 0 and 1 in order, so a name is its position (a guard)."""
    path = _table(tmp_path / "padded.csv", ["00", "01"], ["00", "00", "0"])
    payload = _json(capsys, ["report", str(path)])
    assert payload["nll_nats"] == pytest.approx(_NLL_FIRST, rel=1e-12)


def test_integer_labels_names_refuses_two_columns_of_one_integer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _table(tmp_path / "twice.csv", ["1", "01"], ["1", "1", "1"])
    err = _usage_error(capsys, ["report", str(path), "--integer-labels", "names", *_FAST])
    assert "'1', '01' name the same integer" in err


@pytest.mark.parametrize("names", [["True", "False"], ["true", "false"], ["1", "0"]])
def test_boolean_labels_beside_columns_named_by_booleans_in_another_order_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, names: list[str]
) -> None:
    """Main: exit 0 with the label True read as the column named False (accuracy 0)."""
    path = _table(tmp_path / "flags.csv", names, ["True", "True", "True"])
    err = _usage_error(capsys, ["report", str(path), *_FAST])
    assert "holds booleans" in err
    assert f"{names[0]!r} is at position 0" in err
    reordered = _json(capsys, ["report", str(path), "--class-columns", f"{names[1]},{names[0]}"])
    assert reordered["accuracy"] == 1.0
    assert reordered["nll_nats"] == pytest.approx(float(-np.mean(np.log(_PROBS[:, 0]))))


@pytest.mark.parametrize("names", [["False", "True"], ["no", "yes"], ["0", "1"]])
def test_boolean_labels_beside_other_columns_are_the_classes_0_and_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, names: list[str]
) -> None:
    """A guard: the documented rule, False the first column and True the second."""
    path = _table(tmp_path / "flags.csv", names, ["False", "False", "False"])
    payload = _json(capsys, ["report", str(path)])
    assert payload["nll_nats"] == pytest.approx(_NLL_FIRST, rel=1e-12)


# --- numbers on the command line mean what was typed ---------------------------------------


@pytest.mark.parametrize(
    ("argv", "flag", "text"),
    [
        (["--binary", "--y", "1", "--p", "1e-400"], "--p", "1e-400"),
        (["--p", "1,0", "--q", "1e-400,1"], "--q", "1e-400"),
        (["--logits", "1e309,0", "--label", "0"], "--logits", "1e309"),
        (["--logits", "1,2", "--label", "0", "--temperature", "1e-400"], "--temperature", "1e-400"),
    ],
)
def test_explain_refuses_numbers_float64_cannot_hold(
    capsys: pytest.CaptureFixture[str], argv: list[str], flag: str, text: str
) -> None:
    """Main: exit 0 with an infinite loss (1e-400 read as 0), or "got 0" / "+inf"."""
    err = _usage_error(capsys, ["explain", *argv])
    assert flag in err
    assert repr(text) in err


def test_explain_small_normal_numbers_are_exact(capsys: pytest.CaptureFixture[str]) -> None:
    """A guard: -log(1e-300) is printed, and 0 (typed as 0e-999) is the infinite loss."""
    assert main(["explain", "--binary", "--y", "1", "--p", "1e-300"]) == 0
    assert f"{-np.log(1e-300):.6f}" in capsys.readouterr().out
    assert main(["explain", "--binary", "--y", "1", "--p", "0e-999"]) == 0
    assert "loss                = inf nats" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["1e-400", "1e309"])
@pytest.mark.parametrize("flag", ["--max-ece", "--max-nll"])
def test_gate_thresholds_float64_cannot_hold_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flag: str, value: str
) -> None:
    """Main: 1e-400 was the threshold 0 (a failed gate, exit 1), 1e309 "not finite"."""
    path = _table(tmp_path / "t.csv", ["a", "b"], ["0", "0", "0"])
    err = _usage_error(capsys, ["report", str(path), f"{flag}={value}", *_FAST])
    assert f"argument {flag}: {value!r}" in err


def test_negative_zero_threshold_is_recorded_as_zero(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _table(tmp_path / "t.csv", ["a", "b"], ["0", "0", "0"])
    code = main(["report", str(path), "--max-ece=-0", "--json", *_FAST])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert err.endswith("> --max-ece 0\n")
    assert json.dumps(json.loads(out)["gates"][0]["threshold"]) == "0.0"


@pytest.mark.parametrize("word", ["-inf,2", "-Infinity,2"])
def test_explain_reads_negative_infinite_logits(
    capsys: pytest.CaptureFixture[str], word: str
) -> None:
    """Main: "argument --logits: expected one argument" (``-inf`` taken for an option)."""
    assert main(["explain", "--logits", word, "--label", "1"]) == 0
    assert "loss = -sum y log p = 0.000000 nats" in capsys.readouterr().out


# --- readers: one line for every damaged or empty source -----------------------------------


def _safetensors(path: Path, header_json: bytes, data: bytes) -> Path:
    path.write_bytes(len(header_json).to_bytes(8, "little") + header_json + data)
    return path


_GOOD_DATA = _PROBS.tobytes() + np.zeros(3, dtype="<i8").tobytes()
_GOOD_ENTRIES = (
    b'"probs":{"dtype":"F64","shape":[3,2],"data_offsets":[0,48]},'
    b'"labels":{"dtype":"I64","shape":[3],"data_offsets":[48,72]}'
)


@pytest.mark.parametrize(
    ("header", "said"),
    [
        (b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "is not JSON"),  # RecursionError
        (b'{"a":' + b"9" * 5000 + b"}", "is not JSON"),  # int of more than 4300 digits
        (
            b"{" + _GOOD_ENTRIES + b',"probs":{"dtype":"F32","shape":[3,4],"data_offsets":[0,48]}}',
            "names a tensor twice",
        ),
    ],
    ids=["nested", "long-integer", "key-twice"],
)
def test_safetensors_headers_json_cannot_hold_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, header: bytes, said: str
) -> None:
    """Main: exit 3 (RecursionError, ValueError) for the first two; the third, the
    prediction tensor declared twice (F64 then F32 over the same bytes), was read as the
    last declaration, which another reader need not pick."""
    path = _safetensors(tmp_path / "bad.safetensors", header, _GOOD_DATA)
    err = _usage_error(capsys, ["report", str(path), *_FAST])
    assert f"not a safetensors file (header {said}" in err
    good = _safetensors(tmp_path / "good.safetensors", b"{" + _GOOD_ENTRIES + b"}", _GOOD_DATA)
    assert _json(capsys, ["report", str(good)])["nll_nats"] == pytest.approx(_NLL_FIRST)


def test_closed_standard_input_is_one_line(tmp_path: Path) -> None:
    """``crossent report - <&-``: main's exit 3 ("'NoneType' object has no attribute
    'buffer'")."""
    # the shell closes descriptor 0 before Python starts (so it has no sys.stdin); not
    # preexec_fn, which forks this process, where JAX (imported by other tests) warns
    done = subprocess.run(
        ["sh", "-c", 'exec "$0" -m crossent report - --json <&-', sys.executable],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(crossent.__file__).parents[1])},
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "standard input, which is closed" in done.stderr


def test_meta_tensor_is_named_as_one(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Main: "'probs' has dtype torch.float64, which cannot be read" (it has no values)."""
    torch = pytest.importorskip("torch")
    path = tmp_path / "meta.pt"
    torch.save({"probs": torch.zeros(3, 2, device="meta"), "labels": torch.zeros(3)}, path)
    err = _usage_error(capsys, ["report", str(path), *_FAST])
    assert "'probs': a meta tensor, which holds no values" in err


# --- options: given once, and named as typed ------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--seed", "1", "--seed", "2"], "argument --seed: given twice (1 and then 2)"),
        (["--max-ece=0.1", "--max-ece", "0.2"], "argument --max-ece: given twice (0.1 and then"),
        (["--output", "{tmp}/a.html", "--output", "{tmp}/b.html"], "--output: given twice"),
        (["--bins", "3", "--bins", "3"], "argument --bins: given twice (3 and then 3)"),
    ],
)
def test_report_value_option_given_twice_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], said: str
) -> None:
    """Main: exit 0 with the last value (--seed 2), the first dropped without a word."""
    path = _table(tmp_path / "t.csv", ["a", "b"], ["0", "0", "0"])
    argv = [word.format(tmp=tmp_path) for word in argv]  # on main: b.html was written
    err = _usage_error(capsys, ["report", str(path), *argv, "--json", *_FAST])
    assert said in err
    assert not (tmp_path / "a.html").exists()
    assert not (tmp_path / "b.html").exists()


def test_explain_value_option_given_twice_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(capsys, ["explain", "--p", "1,0", "--q", "0.5,0.5", "--p", "0,1"])
    assert "argument --p: given twice (1,0 and then 0,1)" in err


def test_flags_without_a_value_may_repeat(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A guard: ``--json --json`` says the same thing twice, and PATHs are many."""
    path = _table(tmp_path / "t.csv", ["a", "b"], ["0", "0", "0"])
    other = _table(tmp_path / "u.csv", ["a", "b"], ["0", "0", "0"])  # one file twice is refused
    payload = _json(capsys, ["report", str(path), str(other), "--json"])
    assert len(payload["models"]) == 2


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--seed", "-1"], "argument --seed: must be a non-negative integer; got '-1'"),
        (["--bins", "2000000"], "argument --bins: must be at most 1_048_576 (2**20"),
        (["--debias"], "--debias is defined for --norm l2 only (Kumar et al. 2019); got --norm l1"),
        (["--scope", "positive-class"], "--scope positive-class needs 2 classes; got 3 classes"),
        (["--logits", "--renormalize"], "--renormalize divides probabilities by their row sums"),
    ],
)
def test_option_errors_name_the_flags(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], said: str
) -> None:
    """Main: "t.csv: `seed` must be a non-negative integer", "`bins` must be at most",
    "`debias=True` is defined for norm='l2' only ...; got norm='l1'", "`scope=
    'positive-class'` needs 2 classes; got classes=3", "`renormalize=True` ..."."""
    path = tmp_path / "t.csv"
    path.write_text("label,a,b,c\n0,0.7,0.2,0.1\n1,0.2,0.7,0.1\n2,0.3,0.3,0.4\n")
    err = _usage_error(capsys, ["report", str(path), *argv, *_FAST])
    assert said in err
    assert "`" not in err
    assert "=" not in err


def test_bins_bound_is_the_librarys() -> None:
    import crossent.cli as cli
    from crossent.calibration._binning import MAX_BINS

    assert cli._MAX_BINS == MAX_BINS


# --- an empty column is named as empty -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("label,a,b\n0,,1\n1,,1\n", "a"),  # a class column of empty cells only
        ("label,a,b\n,0.5,0.5\n,0.5,0.5\n", "label"),  # the label column
    ],
)
def test_a_column_of_empty_cells_is_named_empty(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, column: str
) -> None:
    """Main: "column 'a' must be numeric to be a class; name it with --id-column ...",
    and "the 'label' column must hold integers ...; it holds null" (pyarrow's type of a
    column whose first block is empty)."""
    path = tmp_path / "empty.csv"
    path.write_text(text)
    err = _usage_error(capsys, ["report", str(path), *_FAST])
    assert f"the {column!r} column is empty in row 0" in err


def test_a_column_empty_in_the_first_block_is_named_empty(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A class column empty for the first 16 MB (pyarrow's block), then a number: main
    said it "must be numeric to be a class"; its first row is empty."""
    row = "0,0.5,0.5,\n"
    path = tmp_path / "late.csv"
    path.write_text("label,a,b,c\n" + row * ((1 << 24) // len(row) + 10) + "1,0.5,0.2,0.3\n")
    err = _usage_error(capsys, ["report", str(path), *_FAST])
    assert "the 'c' column is empty in row 0" in err


# --- bfloat16 predictions are checked as bfloat16, as the library checks them --------------


def _bfloat16_probs() -> tuple[Any, Any]:
    """bfloat16 probabilities (each row's sum off 1 by up to 2e-3), and the labels."""
    torch = pytest.importorskip("torch")
    return torch.tensor(_PROBS).to(torch.bfloat16), torch.tensor([0, 1, 0])


def _nll_of(probs: Any, labels: Any) -> float:
    """The float64 NLL of the stored bfloat16 values (widening is exact)."""
    p = probs.double().numpy()
    return float(-np.mean(np.log(p[np.arange(p.shape[0]), labels.numpy()])))


def test_bfloat16_probabilities_in_a_pt_are_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Main: "`probs` must sum to 1; row 0 sums to 0.99853515625 (... tolerance 6.15e-05
    for float32 ...)": widened to float32 first, they met float32's tolerance, where
    crossent.report of the same tensor checks bfloat16's."""
    torch = pytest.importorskip("torch")
    import crossent

    probs, labels = _bfloat16_probs()
    path = tmp_path / "bf16.pt"
    torch.save({"probs": probs, "labels": labels}, path)
    payload = _json(capsys, ["report", str(path)])
    assert payload["nll_nats"] == pytest.approx(_nll_of(probs, labels), rel=1e-6)
    library = crossent.report(probs, labels.numpy(), resamples=5).to_dict()
    assert payload["nll_nats"] == library["nll_nats"]
    torch.save((probs, labels), path)  # a (predictions, labels) pair
    assert _json(capsys, ["report", str(path)])["nll_nats"] == payload["nll_nats"]


def test_bfloat16_probabilities_in_a_safetensors_are_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    probs, labels = _bfloat16_probs()
    bits = probs.view(torch.int16).numpy().astype("<i2").tobytes()
    header = (
        b'{"probs":{"dtype":"BF16","shape":[3,2],"data_offsets":[0,12]},'
        b'"labels":{"dtype":"I64","shape":[3],"data_offsets":[12,36]}}'
    )
    path = _safetensors(tmp_path / "bf16.safetensors", header, bits + labels.numpy().tobytes())
    payload = _json(capsys, ["report", str(path)])
    assert payload["nll_nats"] == pytest.approx(_nll_of(probs, labels), rel=1e-6)


# --- --dtype float32 reads a value float32 holds, or refuses it ----------------------------


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize(
    ("cell", "form", "read_as"),
    [("1e-50", [], "0.0"), ("1e39", ["--logits"], "inf")],
)
def test_dtype_float32_refuses_values_float32_cannot_hold(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    cell: str,
    form: list[str],
    read_as: str,
) -> None:
    """Main: a probability of 1e-50 read as 0, exit 0 with an infinite NLL (it is 57.7
    nats over the two rows); 1e39 as inf, "must be finite; got inf" (and a
    RuntimeWarning)."""
    path = tmp_path / "wide.csv"
    path.write_text(f"label,a,b\n0,{cell},1\n1,0.2,0.8\n")
    err = _usage_error(capsys, ["report", str(path), "--dtype", "float32", *form, *_FAST])
    assert f"holds {float(cell)!r} in row 0, which float32 cannot hold" in err
    assert f"read it as {read_as}" in err
    if not form:  # as float64, the report of what the file holds
        payload = _json(capsys, ["report", str(path)])
        assert payload["nll_nats"] == pytest.approx((50 * np.log(10) - np.log(0.8)) / 2)


# --- --output names no file can have are refused before the work ---------------------------


def test_output_link_loop_is_refused_before_the_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Main: the report was computed, then "cannot write (Too many levels of symbolic
    links)"; a name too long was "[Errno 36] File name too long: 'aaa...'"."""
    import crossent.cli as cli

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the report was computed")

    monkeypatch.setattr(cli, "_evaluate", no_work)
    path = _table(tmp_path / "t.csv", ["a", "b"], ["0", "0", "0"])
    loop = tmp_path / "loop.html"
    loop.symlink_to(loop)
    err = _usage_error(capsys, ["report", str(path), "--output", str(loop)])
    assert err.startswith(f"crossent: error: {loop}: cannot write (Too many levels")
    long = tmp_path / ("a" * 300 + ".html")
    err = _usage_error(capsys, ["report", str(path), "--output", str(long)])
    assert f"{long}: cannot write (File name too long)" in err
