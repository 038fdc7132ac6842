"""Issue 13 hostile pass over ``crossent.report`` and ``crossent.compare_reports``: each
test pins a defect found by attacking them and fails on main (fa36995).

* ``report`` of no rows said "the state has seen no examples; call update() first", a
  message about an object the caller never made, naming no argument;
* ``compare_reports`` of something that is not a ``Report`` raised ``AttributeError``
  ("'int' object has no attribute 'payload'");
* ``report`` of 1-D binary predictions dropped ``class_names`` of any length but 2
  without a word (two-column predictions refused them);
* ``report``'s ``renormalize`` and ``builtin_example`` were read by truth value
  (``renormalize="no"`` renormalised).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import crossent


@pytest.mark.parametrize("classes", [1, 3])
def test_report_of_no_rows_names_predictions(classes: int) -> None:
    with pytest.raises(crossent.InputError, match=r"`predictions` has 0 rows"):
        crossent.report(np.zeros((0, classes)), np.zeros(0, np.int64))


def test_report_of_no_binary_rows_names_predictions() -> None:
    with pytest.raises(crossent.InputError, match=r"`predictions` has 0 rows"):
        crossent.report(np.zeros(0), np.zeros(0, np.int64))


def test_report_of_one_row_is_its_nll() -> None:
    """One row is enough: the NLL is -log p_y (SciPy-free closed form)."""
    result = crossent.report(np.array([[0.25, 0.75]]), np.array([1]), resamples=5).to_dict()
    assert result["n"] == 1
    assert result["nll_nats"] == pytest.approx(-np.log(0.75), rel=1e-15)


def _report(seed: int) -> crossent.Report:
    rng = np.random.default_rng(seed)
    return crossent.report(rng.dirichlet(np.ones(3), 20), np.arange(20) % 3, resamples=5)


@pytest.mark.parametrize(
    ("reports", "where", "kind"),
    [
        ([1, 2], r"reports\[0\]", "int"),
        (["a", "b"], r"reports\[0\]", "str"),
        (None, "reports", "NoneType"),
    ],
    ids=["ints", "strings", "none"],
)
def test_compare_reports_refuses_what_is_not_a_report(
    reports: object, where: str, kind: str
) -> None:
    with pytest.raises(crossent.InputTypeError, match=rf"`{where}` must be .*Report.*got {kind}"):
        crossent.compare_reports(reports)  # type: ignore[arg-type]


def test_compare_reports_names_the_entry_that_is_not_a_report() -> None:
    with pytest.raises(crossent.InputTypeError, match=r"`reports\[1\]` must be .*got dict"):
        crossent.compare_reports([_report(0), _report(0).to_dict()])  # type: ignore[list-item]


def test_compare_reports_of_a_model_with_itself_is_zero() -> None:
    """Identical models: every paired difference is exactly 0, and so is its interval."""
    result = crossent.compare_reports([_report(1), _report(1)], resamples=50)
    for row in result.comparisons:
        assert (row["difference"], row["ci_low"], row["ci_high"]) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("names", [["a", "b", "c"], [], ["a", "b", "c", "d"]])
def test_report_of_binary_predictions_refuses_a_wrong_number_of_class_names(
    names: list[str],
) -> None:
    """Main dropped them silently (the classes were named "0" and "1"); two-column
    predictions already refused them."""
    with pytest.raises(crossent.InputError, match=rf"`class_names` has {len(names)} names"):
        crossent.report(np.array([0.9, 0.2, 0.6]), np.array([1, 0, 0]), class_names=names)


def test_report_of_binary_predictions_keeps_two_class_names() -> None:
    result = crossent.report(
        np.array([0.9, 0.2, 0.6]), np.array([1, 0, 0]), class_names=["neg", "pos"], resamples=5
    )
    assert [row["name"] for row in result.to_dict()["per_class"]] == ["neg", "pos"]


@pytest.mark.parametrize("option", ["renormalize", "builtin_example"])
@pytest.mark.parametrize("value", ["yes", "no", 1, None])
def test_report_flags_must_be_bools(option: str, value: object) -> None:
    """Main read them by truth value: renormalize="no" renormalised, and
    builtin_example="no" reached the JSON as the string "no"."""
    probs = np.array([[0.25, 0.75], [0.5, 0.5]])
    with pytest.raises(crossent.InputTypeError, match=rf"`{option}` must be True or False"):
        crossent.report(probs, np.array([1, 0]), resamples=3, **{option: value})


def test_compare_reports_refuses_models_of_different_class_counts() -> None:
    """The same labels scored by a 3-class and a 4-class model are not a paired
    comparison of the same task (on fa36995 the log-loss difference was reported)."""
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(40, 3))
    labels = rng.integers(0, 3, 40)
    three = crossent.report(logits, labels, form="logits", resamples=5)
    four = crossent.report(np.c_[logits, rng.normal(size=40)], labels, form="logits", resamples=5)
    with pytest.raises(crossent.InputError, match=r"predicts 4 classes but .* predicts 3"):
        crossent.compare_reports([three, four], names=["three", "four"])


def test_cli_report_of_two_models_of_different_class_counts_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from crossent.cli import main

    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 30)
    for classes in (3, 4):
        probs = rng.dirichlet(np.ones(classes), size=30)
        np.savez(tmp_path / f"m{classes}.npz", probs=probs, labels=labels)
    code = main(["report", str(tmp_path / "m3.npz"), str(tmp_path / "m4.npz")])
    _out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1
    assert "predicts 4 classes" in err


@pytest.mark.parametrize(
    ("options", "named"), [({"progress": 5}, "progress"), ({"columns": [1, 2]}, "columns")]
)
def test_report_names_a_bad_progress_or_columns(options: dict[str, object], named: str) -> None:
    """On fa36995: ``TypeError: 'int' object is not callable`` after the first pass, and
    "cannot convert dictionary update sequence element" at the very end."""
    with pytest.raises(crossent.InputTypeError, match=rf"`{named}` must be"):
        crossent.report(np.full((4, 2), 0.5), np.array([0, 1, 0, 1]), resamples=5, **options)
