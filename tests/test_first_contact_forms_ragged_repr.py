"""What a newcomer with only the README meets first: ``tasks.py``'s usage and errors, the
notebook's ``repr`` of a :class:`crossent.Report`, and the errors for ragged rows and for
logits passed where probabilities are expected."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import crossent
from crossent.cli._dataset import Dataset
from crossent.cli._messages import in_file_terms

ROOT = Path(__file__).resolve().parents[1]


def _tasks():
    spec = importlib.util.spec_from_file_location("crossent_tasks_script", ROOT / "tasks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_tasks_help_is_usage_on_stdout_with_status_0(flag, capsys) -> None:
    assert _tasks().main([flag]) == 0
    out, err = capsys.readouterr()
    assert "python3 tasks.py report" in out
    assert err == ""


def test_tasks_unknown_task_is_one_line_naming_it_and_the_tasks(capsys) -> None:
    assert _tasks().main(["bogus"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert "'bogus'" in err
    assert all(task in err for task in ("report", "demo", "test", "docs"))


@pytest.mark.parametrize("task", ["report", "demo"])
def test_tasks_report_runs_in_the_callers_folder(
    task: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cd runs && python3 ../tasks.py report preds.npz --output r.html`` reads and
    writes in ``runs``: the command ran in the clone's folder (branch hostilecli8), where
    ``preds.npz`` was "no such file" (or the clone's own) and ``r.html`` was written."""
    tasks = _tasks()
    ran: list[tuple[list[str], object]] = []
    monkeypatch.setattr(tasks, "ensure_environment", lambda task: None)
    monkeypatch.setattr(
        tasks.subprocess,
        "run",
        lambda command, cwd, check, env=None: ran.append((command, cwd)),
    )
    monkeypatch.chdir(tmp_path)
    assert tasks.main([task, "preds.npz"]) == 0
    assert ran == [([str(tasks.BIN / "crossent"), task, "preds.npz"], tmp_path)]


def test_tasks_ctrl_c_is_one_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C reaches tasks.py as well as the command it runs: it printed a traceback
    after the command's "crossent: interrupted" (branch hostilecli8)."""
    tasks = _tasks()

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tasks, "ensure_environment", lambda task: None)
    monkeypatch.setattr(tasks.subprocess, "run", interrupted)
    try:
        code = tasks.main(["report"])
    except KeyboardInterrupt:  # on main: the traceback (and the end of this test run)
        pytest.fail("KeyboardInterrupt escaped tasks.main")
    assert code == 130
    assert capsys.readouterr().err.endswith("tasks.py: interrupted\n")


def _report() -> crossent.Report:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=40)
    labels = rng.integers(0, 3, size=40)
    return crossent.report(probs, labels, source="preds.npz", resamples=20)


def test_report_repr_is_one_short_line_of_headline_metrics() -> None:
    report = _report()
    text = repr(report)
    data = report.to_dict()
    assert "\n" not in text
    assert len(text) < 200, text  # main printed the whole payload (thousands of characters)
    assert text.startswith("Report('preds.npz', n=40, classes=3, form='probs', ")
    assert f"accuracy={report.format_number(data['accuracy'])}" in text
    assert f"nll_nats={report.format_number(data['nll_nats'])}" in text
    assert f"ece={report.format_number(data['ece']['value'])}" in text
    assert text.endswith("passed=True)")


@pytest.mark.parametrize(
    ("rows", "where"),
    [
        ([[0.5, 0.5], [0.3, 0.3, 0.4]], "row 1 has 3 entries, row 0 has 2 entries"),
        ([[0.5, 0.5], 1.0], "row 1 has a number, row 0 has 2 entries"),
        (
            [[[0.5, 0.5], [1.0, 0.0]], [[0.5, 0.5], [1.0]]],
            "row (1, 1) has 1 entry, row (1, 0) has 2 entries",
        ),
    ],
    ids=["rows", "number", "nested"],
)
def test_ragged_rows_are_named(rows, where) -> None:
    with pytest.raises(crossent.InputTypeError, match=re.escape(where)) as info:
        crossent.entropy(rows)
    assert str(info.value).startswith("`p` must be array-like")


@pytest.mark.parametrize(
    ("call", "hint"),
    [
        (lambda: crossent.entropy([2.0, -1.0, 0.5]), "p_form='logits' or 'log_probs'"),
        (lambda: crossent.cross_entropy([1, 0], [2.0, -1.0]), "q_form='logits' or 'log_probs'"),
        (lambda: crossent.kl_divergence([0.5, 0.5], [1.5, 0.2]), "q_form='logits' or 'log_probs'"),
        (
            lambda: crossent.negative_log_likelihood([[2.0, -1.0], [0.3, 0.7]], [0, 1]),
            "form='logits' or 'log_probs'",
        ),
        # a 1-D binary column takes probs or logits only: the hint ends there
        (lambda: crossent.calibration_error([2.0, -1.0, 0.5], [0, 1, 1]), "say so: form='logits'"),
    ],
    ids=["entropy", "cross_entropy", "kl_above_1", "nll", "ece_binary"],
)
def test_logits_passed_as_probabilities_name_the_form_argument(call, hint) -> None:
    with pytest.raises(crossent.InputError) as info:
        call()
    assert str(info.value).endswith(hint)


def test_cli_says_the_form_hint_as_its_flags() -> None:
    with pytest.raises(crossent.InputError) as info:
        crossent.report(np.array([[2.0, -1.0], [0.3, 0.7]]), np.array([0, 1]))
    said = in_file_terms(
        str(info.value),
        Dataset(values=None, labels=None, form="probs", class_names=[], source="p.npz"),
    )
    assert "--logits or --log-probs" in said
    assert "form=" not in said


_WITHOUT_TORCH = """
import sys


class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoTorch())
try:
    import crossent.torch
except ModuleNotFoundError as exc:
    print(type(exc).__name__, exc)
"""


def test_crossent_torch_without_torch_names_the_extra() -> None:
    """``import crossent.torch`` on a base install: the error names the extra to install
    (main: ``No module named 'torch'`` from a submodule)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == (
        "MissingDependencyError crossent.torch needs PyTorch, which is not installed: "
        "pip install 'crossent[torch]' (from a clone: pip install '.[torch]')"
    )
