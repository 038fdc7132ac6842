"""What a new user meets next (the pass after ``test_first_contact_forms_ragged_repr.py``): class
names passed as labels to the losses, the ``repr`` of estimators and states in a
notebook, ``crossent explain --help`` on ``--temperature``, and the install command that
every missing-extra message gives (there is no release on PyPI yet)."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import crossent
from crossent.cli import main

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "crossent"

_FIX = "Map each class name to the index of its column in the predictions"

_LABELLED_LOSSES = {
    "softmax": crossent.softmax_cross_entropy,
    "softmax_grad": crossent.softmax_cross_entropy_grad,
    "focal": crossent.softmax_focal_loss,
    "focal_grad": crossent.softmax_focal_loss_grad,
    "poly1": crossent.poly1_cross_entropy,
    "poly1_grad": crossent.poly1_cross_entropy_grad,
    "hinge": crossent.multiclass_hinge_loss,
    "hinge_grad": crossent.multiclass_hinge_loss_grad,
    "nll": crossent.negative_log_likelihood,  # (an evaluation function: the same words)
}
_LABEL_FORMS = {
    "ndarray": lambda names: np.array(names),
    "list": list,
    "object": lambda names: np.array(names, dtype=object),
}


# ---------------------------------------------------------------- 1. names as labels


@pytest.mark.parametrize("form", sorted(_LABEL_FORMS))
@pytest.mark.parametrize("loss", sorted(_LABELLED_LOSSES))
def test_class_names_as_labels_name_the_argument_entry_and_fix(loss: str, form: str) -> None:
    """Main: the index and value were never named, and a list of names was "`labels` must
    be real numbers; got an array of dtype <U3" with no fix."""
    values = np.full((2, 3), 1 / 3)
    labels = _LABEL_FORMS[form](["cat", "dog"])
    with pytest.raises(crossent.InputTypeError) as info:
        _LABELLED_LOSSES[loss](values, labels)
    message = str(info.value)
    assert message.startswith("`labels` must be integer class ids; got ")
    assert "(index 0 is 'cat')." in message
    assert _FIX in message


def test_the_first_name_among_numbers_is_the_one_named() -> None:
    """``[0, 'dog']`` is a string array to NumPy (``['0', 'dog']``): entry 1 is the name."""
    for labels in ([0, "dog"], np.array([0, "dog"], dtype=object)):
        with pytest.raises(crossent.InputTypeError, match=re.escape("(index 1 is 'dog')")):
            crossent.softmax_cross_entropy(np.zeros((2, 3)), labels)


def test_names_in_batched_labels_are_named_by_their_index_tuple() -> None:
    labels = np.array([[0, 1], [2, 0]]).astype(str)
    labels[1, 0] = "bird"
    with pytest.raises(crossent.InputTypeError, match=re.escape("(index (1, 0) is 'bird')")):
        crossent.softmax_focal_loss(np.zeros((2, 2, 3)), labels)


def test_numbers_written_as_text_get_the_cast_not_the_name_map() -> None:
    with pytest.raises(crossent.InputTypeError) as info:
        crossent.multiclass_hinge_loss(np.zeros((2, 3)), np.array(["2", "0"]))
    assert str(info.value).endswith(
        "(index 0 is '2'). They are numbers written as text: pass labels.astype(np.int64)."
    )


def test_other_arguments_name_their_first_string() -> None:
    with pytest.raises(crossent.InputTypeError) as info:
        crossent.sigmoid_cross_entropy(np.zeros(2), np.array(["yes", "no"]))
    assert str(info.value) == "`targets` must be real numbers; got dtype <U3 (index 0 is 'yes')"


def test_losses_and_evaluation_say_the_same_words() -> None:
    """One message, written once: the losses' and the evaluation functions' agree, and the
    fix's text is in one module only."""
    said = set()
    for call in (crossent.softmax_cross_entropy, crossent.negative_log_likelihood):
        with pytest.raises(crossent.InputTypeError) as info:
            call(np.full((2, 3), 1 / 3), np.array(["cat", "dog"]))
        said.add(str(info.value))
    assert len(said) == 1
    holders = [p.name for p in SRC.rglob("*.py") if _FIX in p.read_text(encoding="utf-8")]
    assert holders == ["_hints.py"]


# ---------------------------------------------------------------- 2. one-line reprs


def _public_classes() -> list[type]:
    return [
        obj
        for name in crossent.__all__
        if inspect.isclass(obj := getattr(crossent, name)) and not issubclass(obj, Exception)
    ]


def test_every_public_class_has_its_own_repr() -> None:
    """Main: EvaluationState, HistogramBinning, PlattScaling, TemperatureScaling and
    VectorScaling printed ``<crossent... object at 0x...>``."""
    default = sorted(c.__name__ for c in _public_classes() if c.__repr__ is object.__repr__)
    assert default == []


def _logits(n: int = 400, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    true = rng.normal(size=(n, classes)) * 1.5
    labels = np.array([rng.choice(classes, p=np.exp(r) / np.exp(r).sum()) for r in true])
    return true * 2.5, labels


def _one_line(obj: object) -> str:
    text = repr(obj)
    assert "\n" not in text
    assert " at 0x" not in text
    assert len(text) < 200, text
    return text


def test_temperature_scaling_repr() -> None:
    assert _one_line(crossent.TemperatureScaling()) == "TemperatureScaling(unfitted)"
    assert (
        _one_line(crossent.TemperatureScaling(folds=3)) == "TemperatureScaling(unfitted, folds=3)"
    )
    scaler = crossent.TemperatureScaling().fit(*_logits())
    assert scaler.converged_
    assert (
        _one_line(scaler)
        == f"TemperatureScaling(temperature={scaler.temperature_:.4g}, converged=True)"
    )


def test_platt_and_vector_scaling_and_histogram_binning_reprs() -> None:
    logits, labels = _logits()
    assert _one_line(crossent.PlattScaling()) == "PlattScaling(unfitted)"
    platt = crossent.PlattScaling().fit(logits[:, :2], (labels == 1).astype(int))
    assert _one_line(platt) == (
        f"PlattScaling(slope={platt.slope_:.4g}, intercept={platt.intercept_:.4g}, "
        f"converged={platt.converged_})"
    )
    assert _one_line(crossent.VectorScaling()) == "VectorScaling(unfitted)"
    vector = crossent.VectorScaling().fit(logits, labels)
    text = _one_line(vector)
    assert text.startswith(f"VectorScaling(classes=3, scale=[{vector.scale_[0]:.4g}, ")
    assert text.endswith(f"converged={vector.converged_})")
    many = crossent.VectorScaling().fit(*_logits(n=600, classes=12))  # a range, not 12 numbers
    assert f"scale=[{many.scale_.min():.4g} .. {many.scale_.max():.4g}]" in _one_line(many)
    assert _one_line(crossent.HistogramBinning(bins=5)) == "HistogramBinning(bins=5, unfitted)"
    binned = crossent.HistogramBinning().fit(np.full((3, 3), 1 / 3), [0, 1, 2])
    assert _one_line(binned) == "HistogramBinning(bins=15, classes=3)"


def test_evaluation_state_repr_counts_rows() -> None:
    state = crossent.EvaluationState(3, bins=10, keep=0)
    state.update(np.full((4, 3), 1 / 3), [0, 1, 2, 0])
    state.update(np.full((2, 3), 1 / 3), [1, 1])
    assert _one_line(state) == (
        "EvaluationState(classes=3, n=6, bins=10, binning='uniform', scope='top-label', "
        "closed='left', keep=0)"
    )


# ---------------------------------------------------------------- 3. explain --help


def test_explain_help_says_where_temperature_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """Main: "--temperature T to reshape", then ``--binary --temperature 2`` refused."""
    assert main(["explain", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.count("not with --binary, --kl or --hinge") == 2  # description and flag
    for mode in (["--binary", "--y", "1", "--p", "0.9"], ["--p", "1,0", "--q", "0.5,0.5", "--kl"]):
        assert main(["explain", *mode, "--temperature", "2"]) == 2
    capsys.readouterr()


# ---------------------------------------------------------------- 4. install commands

_BOTH = re.compile(r"pip install 'crossent\[(\w+)\]' \(from a clone: pip install '\.\[\1\]'\)")


def _hide(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, package, None)


_WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None
try:
    import crossent.torch
except ModuleNotFoundError as exc:
    print(exc)
"""


def _missing_messages(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Each place that raises MissingDependencyError, made to raise it."""
    from crossent.cli._deps import require

    said = {}
    env = {**os.environ, "PYTHONPATH": str(SRC.parent)}
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH], capture_output=True, text=True, env=env, check=True
    )
    said["torch"] = done.stdout.strip()
    with pytest.raises(crossent.MissingDependencyError) as info:
        require("crossent_no_such_module", "a test", extra="cli")
    said["cli"] = str(info.value)
    diagram = crossent.reliability_diagram(np.full((4, 2), 0.5), [0, 1, 1, 0], bins=2)
    with monkeypatch.context() as patch:
        _hide(patch, "matplotlib")
        with pytest.raises(crossent.MissingDependencyError) as info:
            crossent.plot_reliability_diagram(diagram)
    said["plot"] = str(info.value)
    return said


def test_every_missing_extra_message_gives_both_install_commands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Main: ``pip install 'crossent[torch]'`` alone, which fails: nothing is on PyPI."""
    for where, message in _missing_messages(monkeypatch).items():
        assert _BOTH.search(message), (where, message)


def test_every_raise_and_install_note_uses_the_one_helper() -> None:
    """Every ``MissingDependencyError(`` built in src/ takes its command from
    ``install_command``, and no other code spells a ``pip install`` command."""
    raised = 0
    for path in SRC.rglob("*.py"):
        if path.name == "_hints.py":
            continue
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"raise (?:crossent\.)?MissingDependencyError\(", text):
            call = text[match.end() : text.index(") from", match.end())]
            assert "install_command(" in call, (path.name, call)
            raised += 1
        for line in text.splitlines():
            code = line.split("#", 1)[0]
            if "pip install" in code and '"' in code and "``" not in code:
                raise AssertionError(f"{path.name}: {line.strip()}")
    assert raised == 3  # crossent.torch, cli's require, plot_reliability_diagram
