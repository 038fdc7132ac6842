"""Two command-line leftovers of the hostile passes (branch cliout).

* A standard output that cannot be written (``crossent report > /dev/full``, also
  ``explain``, ``demo``, ``--help``) said only "crossent: error: [Errno 28] No space left
  on device": not what was lost, nor where.  The line now reads as ``--output``'s errors
  ("PATH: cannot write (No space left on device)"): "standard output: cannot write the
  report (No space left on device)"; exit 2, no traceback.  A reader that goes away
  (``crossent demo | head -1``) is no error: the output ends, exit 0 and nothing said, as
  pip and coverage do.
* ``crossent report a.csv b.csv`` of two models whose class columns are named with
  different sets (x, y, z against p, q, r) was compared with exit 0: the labels are class
  positions, so column k of one need not be the class of column k of the other.  Both
  named and different is refused with one line naming both sets; unnamed classes (the
  default 0, ..., K-1, as an .npz's) have nothing to check but their count.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import crossent
from crossent.cli import main
from stdio_streams import main_on

pytest.importorskip("rich")

SRC = Path(__file__).resolve().parents[2] / "src"
_FAST = ["--resamples", "5", "--top", "3"]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }


@pytest.fixture(scope="module")
def npzs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("stdout_unwritable")
    labels = np.arange(30) % 3
    paths = []
    for name in ("a.npz", "b.npz"):
        np.savez(folder / name, logits=rng.normal(size=(30, 3)), labels=labels)
        paths.append(str(folder / name))
    return paths[0], paths[1]


# --- a standard output that cannot be written: what was lost, and where --------------------


class _Unwritable(io.StringIO):
    """A standard output on a failing device: every write raises EIO."""

    def write(self, text: str) -> int:
        raise OSError(errno.EIO, os.strerror(errno.EIO))


_COMMANDS = {
    "report": (["report", "A", *_FAST], "the report"),
    "report-json": (["report", "A", "--json", *_FAST], "the report"),
    "report-markdown": (["report", "A", "--markdown", *_FAST], "the report"),
    "comparison": (["report", "A", "B", *_FAST], "the comparison"),
    "comparison-json": (["report", "A", "B", "--json", *_FAST], "the comparison"),
    "demo": (["demo", "kl"], "the demo"),
    "explain": (["explain", "--p", "1,0,0", "--q", "0.7,0.2,0.1"], "the explanation"),
}


def _argv(template: list[str], npzs: tuple[str, str]) -> list[str]:
    return [{"A": npzs[0], "B": npzs[1]}.get(arg, arg) for arg in template]


@pytest.mark.parametrize("name", list(_COMMANDS))
def test_a_failed_write_to_standard_output_names_what_was_lost(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    npzs: tuple[str, str],
    name: str,
) -> None:
    """Main: "crossent: error: [Errno 5] Input/output error"."""
    template, lost = _COMMANDS[name]
    monkeypatch.setattr(sys, "stdout", _Unwritable())
    code = main(_argv(template, npzs))
    err = capsys.readouterr().err
    assert (code, err) == (
        2,
        f"crossent: error: standard output: cannot write {lost} (Input/output error)\n",
    )


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("name", ["comparison", "report-markdown"])
def test_a_full_device_names_what_was_lost(
    npzs: tuple[str, str], name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Main: "crossent: error: [Errno 28] No space left on device" (buffered stdout, as
    in a terminal's ``> /dev/full``; test_issue13_help_full_device has the others, and
    the real processes). In the test process, on the stream and exit of a fresh one
    (``stdio_streams``)."""
    template, lost = _COMMANDS[name]
    with open("/dev/full", "w") as full:
        done = main_on(full.fileno(), _argv(template, npzs), buffered=True, capsys=capsys)
    assert done == (
        2,
        f"crossent: error: standard output: cannot write {lost} (No space left on device)\n",
    )


@pytest.mark.parametrize("name", ["demo", "explain", "report"])
def test_a_reader_that_stops_after_one_line_is_no_error(npzs: tuple[str, str], name: str) -> None:
    """``crossent demo | head -1``: the reader goes away mid-output; nothing is said and
    the exit code is 0 (as pip's and coverage's; unchanged, pinned here beside the full
    device, which is an error)."""
    template, _ = _COMMANDS[name]
    with subprocess.Popen(
        [sys.executable, "-m", "crossent", *_argv(template, npzs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        assert process.stdout.readline()
        process.stdout.close()  # `head -1` has its line and exits
        err = process.stderr.read()
        code = process.wait(timeout=300)
    assert (code, err) == (0, b"")


# --- models compared: both name their classes, and not the same ones ----------------------


def _csv(path: Path, names: str) -> Path:
    probs = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]
    labels = [0, 1, 2, 1]
    rows = "".join(f"{y},{a},{b},{c}\n" for y, (a, b, c) in zip(labels, probs, strict=True))
    path.write_text(f"label,{names}\n{rows}")
    return path


def test_models_naming_other_classes_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Main: x, y, z against p, q, r was compared, exit 0."""
    first, other = _csv(tmp_path / "a.csv", "x,y,z"), _csv(tmp_path / "b.csv", "p,q,r")
    code = main(["report", str(first), str(other), *_FAST])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err == (
        f"crossent: error: model '{other}' names other classes than '{first}' (p, q, r "
        "against x, y, z): a paired comparison needs the same classes in both; name the "
        "class columns alike\n"
    )


def test_models_sharing_some_class_names_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """One name of three differs (x, y, w): column 2 is not the same class."""
    first, other = _csv(tmp_path / "a.csv", "x,y,z"), _csv(tmp_path / "b.csv", "x,y,w")
    assert main(["report", str(first), str(other), *_FAST]) == 2
    assert "(x, y, w against x, y, z)" in capsys.readouterr().err


def test_unnamed_classes_are_compared_with_named_ones(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An .npz names no classes (0, 1, 2): nothing to check against x, y, z but the count."""
    table = _csv(tmp_path / "a.csv", "x,y,z")
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    np.savez(tmp_path / "b.npz", probs=probs, labels=np.array([0, 1, 2, 1]))
    assert main(["report", str(table), str(tmp_path / "b.npz"), *_FAST]) == 0
    capsys.readouterr()


def test_compare_reports_checks_named_classes_only() -> None:
    """The library's rule, which the command line calls: default names (``"0", ...,
    "K-1"``) on either side are not checked; two named sets must be equal."""
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(size=(12, 3)), np.arange(12) % 3

    def made(names: list[str] | None) -> crossent.Report:
        return crossent.report(logits, labels, form="logits", class_names=names, resamples=5)

    with pytest.raises(crossent.InputError, match=r"names other classes than .*\(p, q, r "):
        crossent.compare_reports([made(["x", "y", "z"]), made(["p", "q", "r"])], resamples=5)
    for pair in ([None, None], [None, ["p", "q", "r"]], [["x", "y", "z"], None]):
        crossent.compare_reports([made(pair[0]), made(pair[1])], resamples=5)
    same = crossent.compare_reports([made(["x", "y", "z"]), made(["x", "y", "z"])], resamples=5)
    assert same.comparisons[0]["difference"] == 0.0
