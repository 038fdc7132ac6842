"""Issue 10, items 1-5: `--output` never destroys a file, and a killed run leaves nothing.

The HTML rendering is replaced by a stub where the page's content does not matter, so these
tests exercise the file handling without drawing figures.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import crossent.cli
from crossent.cli import main

from .conftest import make_predictions

PAGE = "<html>stub report</html>"


@pytest.fixture
def stub_html(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crossent.cli, "render_html", lambda report: PAGE)


def _report(path: Path, output: Path | str) -> list[str]:
    return ["report", str(path), "--resamples", "5", "--output", str(output)]


def _csv(path: Path) -> Path:
    logits, labels = make_predictions(n=30)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    lines = ["label,a,b,c,d"] + [
        ",".join([str(y)] + [repr(float(v)) for v in row])
        for y, row in zip(labels, probs, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------------- item 1


@pytest.mark.parametrize("kind", ["same", "symlink", "hardlink", "relative"])
@pytest.mark.parametrize("suffix", ["npz", "csv"])
def test_issue10_item1_output_is_input_refused(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    npz_logits: Path,
    stub_html: None,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    suffix: str,
) -> None:
    if suffix == "csv":
        pytest.importorskip("pyarrow")
    source = npz_logits if suffix == "npz" else _csv(tmp_path / "preds.csv")
    before = source.read_bytes()
    output: Path | str = source
    if kind == "symlink":
        output = tmp_path / "link.html"
        output.symlink_to(source)
    elif kind == "hardlink":
        output = tmp_path / "hard.html"
        os.link(source, output)
    elif kind == "relative":
        monkeypatch.chdir(tmp_path)
        output = f"./sub/../{source.name}"
        (tmp_path / "sub").mkdir()
    assert main(_report(source, output)) == 2
    err = capsys.readouterr().err
    assert "is the input file" in err
    assert "Traceback" not in err
    assert source.read_bytes() == before


# ---------------------------------------------------------------------------- item 2


def _read_fifo(path: Path, into: list[bytes]) -> threading.Thread:
    def reader() -> None:
        with open(path, "rb") as handle:
            into.append(handle.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    return thread


def test_issue10_item2_output_to_a_fifo_is_written_directly(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, npz_logits: Path, stub_html: None
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    thread = _read_fifo(fifo, received)
    assert main(_report(npz_logits, fifo)) == 0, capsys.readouterr().err
    thread.join(timeout=30)
    assert received == [PAGE.encode()]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe", "preds.npz"]


def test_issue10_item2_output_to_a_device_keeps_the_device(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, npz_logits: Path, stub_html: None
) -> None:
    if os.name != "posix":
        pytest.skip("POSIX device files")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # As root, a regression would replace the machine's /dev/null: use a private node.
        device = tmp_path / "null"
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    else:
        device = Path("/dev/null")
    before = os.stat(device)
    assert main(_report(npz_logits, device)) == 0, capsys.readouterr().err
    after = os.stat(device)
    assert stat.S_ISCHR(after.st_mode)
    assert (after.st_ino, after.st_rdev, stat.S_IMODE(after.st_mode)) == (
        before.st_ino,
        before.st_rdev,
        stat.S_IMODE(before.st_mode),
    )
    leftovers = [p.name for p in device.parent.iterdir() if p.name.startswith(".")]
    assert not [name for name in leftovers if "crossent" in name or name.endswith(".tmp")]


def test_issue10_item2_output_to_dev_stdout_writes_to_the_pipe(
    tmp_path: Path, npz_logits: Path
) -> None:
    """/dev/stdout is a link to a pipe here: the page goes down the pipe, nothing is renamed."""
    if not Path("/dev/stdout").exists():
        pytest.skip("no /dev/stdout")
    before = os.lstat("/dev/stdout")
    env = dict(os.environ)
    source_root = Path(crossent.cli.__file__).parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(source_root), env.get("PYTHONPATH", "")])
    argv = ["report", str(npz_logits), "--json", "--resamples", "5", "--output", "/dev/stdout"]
    result = subprocess.run(
        [sys.executable, "-m", "crossent", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    if result.returncode == 2 and "needs matplotlib" in result.stderr:
        pytest.skip("matplotlib is not installed")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("<!DOCTYPE html>")
    assert '"format": 3' in result.stdout
    after = os.lstat("/dev/stdout")
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)


def test_issue10_item2_output_that_is_a_directory_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, npz_logits: Path, stub_html: None
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(_report(npz_logits, folder)) == 2
    assert "is a directory" in capsys.readouterr().err
    assert folder.is_dir()
    assert list(folder.iterdir()) == []


def test_issue10_output_through_a_symlink_keeps_the_link(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, npz_logits: Path, stub_html: None
) -> None:
    real = tmp_path / "real.html"
    real.write_text("old")
    link = tmp_path / "link.html"
    link.symlink_to(real)
    assert main(_report(npz_logits, link)) == 0, capsys.readouterr().err
    assert link.is_symlink()
    assert real.read_text() == PAGE


# ---------------------------------------------------------------------------- item 3

_DRIVER = """
import os, signal, sys, time
import crossent.cli
from crossent.cli import main

WHERE, SIGNUM = sys.argv[1], getattr(signal, sys.argv[2])
# A process started in the background by a non-interactive shell inherits SIGINT
# ignored, and Python then installs no KeyboardInterrupt handler: restore the one an
# interactive user's Ctrl-C meets, so the test does not depend on how it was launched.
signal.signal(signal.SIGINT, signal.default_int_handler)

def kill_self(*args, **kwargs):
    os.kill(os.getpid(), SIGNUM)
    time.sleep(5)
    raise AssertionError("the signal did not stop the run")

if WHERE == "report":
    crossent.cli.build_report = kill_self
else:
    import crossent.cli._files as files
    files.os.fsync = kill_self
    # the page's content is not the point (the in-process tests' stub_html): no plots
    crossent.cli.render_html = lambda report: "<html>stub report</html>"
sys.exit(main(sys.argv[3:]))
"""


def _run_killed(
    tmp_path: Path, where: str, signame: str, argv: list[str]
) -> subprocess.CompletedProcess[str]:
    temporary = tmp_path / "tmpdir"
    temporary.mkdir(exist_ok=True)
    env = dict(os.environ, TMPDIR=str(temporary), TEMP=str(temporary), TMP=str(temporary))
    source_root = Path(crossent.cli.__file__).parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(source_root), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_DRIVER), where, signame, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("compressed", [True, False])
def test_issue10_item3_sigterm_removes_unpacked_data(
    tmp_path: Path, predictions: tuple[np.ndarray, np.ndarray], compressed: bool
) -> None:
    if not hasattr(signal, "SIGTERM") or os.name != "posix":
        pytest.skip("POSIX signals")
    source = tmp_path / "preds.npz"
    (np.savez_compressed if compressed else np.savez)(
        source, logits=predictions[0], labels=predictions[1]
    )
    result = _run_killed(tmp_path, "report", "SIGTERM", ["report", str(source), "--json"])
    assert result.returncode == 143, result.stderr
    assert "Traceback" not in result.stderr
    assert "terminated" in result.stderr
    assert list((tmp_path / "tmpdir").iterdir()) == []


def test_issue10_item3_sigterm_removes_unpacked_csv_data(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    source = _csv(tmp_path / "preds.csv")
    result = _run_killed(tmp_path, "report", "SIGTERM", ["report", str(source), "--json"])
    assert result.returncode == 143, result.stderr
    assert list((tmp_path / "tmpdir").iterdir()) == []


@pytest.mark.parametrize(("signame", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_issue10_item3_signal_while_writing_removes_the_temporary_output(
    tmp_path: Path, npz_logits: Path, signame: str, code: int
) -> None:
    pytest.importorskip("matplotlib")
    output = tmp_path / "out" / "report.html"
    output.parent.mkdir()
    result = _run_killed(
        tmp_path,
        "write",
        signame,
        ["report", str(npz_logits), "--resamples", "5", "--output", str(output)],
    )
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert list(output.parent.iterdir()) == []
    assert list((tmp_path / "tmpdir").iterdir()) == []


def test_issue10_item3_ctrl_c_exits_130_without_traceback(tmp_path: Path, npz_logits: Path) -> None:
    result = _run_killed(tmp_path, "report", "SIGINT", ["report", str(npz_logits), "--json"])
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == "crossent: interrupted"
    assert list((tmp_path / "tmpdir").iterdir()) == []


# ---------------------------------------------------------------------------- item 4


@pytest.fixture
def umask_022() -> object:
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.parametrize(("replaced", "expected"), [(None, 0o644), (0o664, 0o664), (0o600, 0o600)])
def test_issue10_item4_report_mode_is_the_umasks_or_the_replaced_files(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    npz_logits: Path,
    stub_html: None,
    umask_022: None,
    replaced: int | None,
    expected: int,
) -> None:
    output = tmp_path / "report.html"
    if replaced is not None:
        output.write_text("old")
        os.chmod(output, replaced)
    assert main(_report(npz_logits, output)) == 0, capsys.readouterr().err
    assert stat.S_IMODE(os.stat(output).st_mode) == expected
    assert output.read_text() == PAGE


# ---------------------------------------------------------------------------- item 5


@pytest.mark.parametrize("length", [242, 250, 255])
def test_issue10_item5_long_output_names_work(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    npz_logits: Path,
    stub_html: None,
    length: int,
) -> None:
    output = tmp_path / ("r" * (length - len(".html")) + ".html")
    assert len(output.name.encode()) == length
    assert main(_report(npz_logits, output)) == 0, capsys.readouterr().err
    assert output.read_text() == PAGE
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([output.name, "preds.npz"])


def test_issue10_item5_write_errors_name_the_users_path(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    npz_logits: Path,
    stub_html: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import crossent.cli._files as files

    def fail(source: object, target: object) -> None:
        raise OSError(28, "No space left on device", str(source))

    monkeypatch.setattr(files.os, "replace", fail)
    output = tmp_path / "report.html"
    assert main(_report(npz_logits, output)) == 2
    err = capsys.readouterr().err
    assert str(output) in err
    assert "No space left on device" in err
    assert ".tmp" not in err
    assert "crossent-" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.npz"]


def test_issue10_atomic_write_temp_file_beside_the_destination(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    npz_logits: Path,
    stub_html: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The temporary file is in the destination's folder, not TMPDIR: a rename across file
    systems fails, so a temp file elsewhere would break reports written beside the data."""
    import tempfile

    import crossent.cli._files as files

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("TMPDIR", str(elsewhere))
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))
    renamed: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def replace(source: str, target: str) -> None:
        renamed.append((Path(source), Path(target)))
        real_replace(source, target)

    monkeypatch.setattr(files.os, "replace", replace)
    output = tmp_path / "out" / "report.html"
    output.parent.mkdir()
    assert main(_report(npz_logits, output)) == 0, capsys.readouterr().err
    [(source, target)] = renamed
    assert source.parent == output.parent
    assert target == output
    assert len(source.name) <= 32
    assert list(elsewhere.iterdir()) == []
