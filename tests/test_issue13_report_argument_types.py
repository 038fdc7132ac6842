"""Hostile API pass: ``report`` and ``compare_reports`` arguments of the wrong type.

On main (9add731): ``report`` of a 0-d prediction raised a bare ``IndexError`` ("tuple
index out of range") from reading its class count; ``class_names`` of non-str entries
reached the report (``b"a"`` made ``to_dict()`` unserialisable as JSON, None and 1 were
the names of classes), and a bare str was split into one-letter names (``"abc"``);
``source`` of anything but a str broke ``to_json``/``to_html`` (``AttributeError:
'list' object has no attribute 'replace'``); ``compare_reports(names="xy")`` named the
models "x" and "y". Each is now refused by name. 13 of the 14 tests fail on main (an
array of str gave NumPy's ``np.str_`` names, now plain str); the last passes there too.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import crossent

_RNG = np.random.default_rng(0)
_LOGITS = _RNG.normal(size=(40, 3)) * 2
_LABELS = _RNG.integers(0, 3, 40)


def _report(**options: object) -> crossent.Report:
    return crossent.report(_LOGITS, _LABELS, form="logits", resamples=5, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("predictions", [np.float64(0.5), np.array(0.5), 0.5])
def test_report_of_a_scalar_names_the_shape(predictions: object) -> None:
    with pytest.raises(crossent.InputError, match=r"`predictions` must have shape.*got shape \(\)"):
        crossent.report(predictions, np.array([1]))


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ("abc", r"`class_names` must be a sequence of str, one a name; got str 'abc'"),
        (
            [b"a", b"b", b"c"],
            r"`class_names` must be a sequence of str; got b'a' \(bytes\) at index 0",
        ),
        (["a", None, "c"], r"got None \(NoneType\) at index 1"),
        (["a", "b", 3], r"got 3 \(int\) at index 2"),
        (7, r"`class_names` must be a sequence of str, one a name; got int"),
    ],
)
def test_report_class_names_must_be_strings(names: object, message: str) -> None:
    with pytest.raises(crossent.InputTypeError, match=message):
        _report(class_names=names)


@pytest.mark.parametrize("source", [5, ["<b>x</b>"], b"file.npy"])
def test_report_source_must_be_a_string(source: object) -> None:
    with pytest.raises(crossent.InputTypeError, match=r"`source` must be a str or None"):
        _report(source=source)


def test_compare_reports_refuses_a_bare_string_of_names() -> None:
    reports = [_report(), _report()]
    with pytest.raises(crossent.InputTypeError, match=r"`names` must be a sequence of str"):
        crossent.compare_reports(reports, names="xy")
    with pytest.raises(crossent.InputTypeError, match=r"got 1 \(int\) at index 0"):
        crossent.compare_reports(reports, names=[1, 2])  # type: ignore[list-item]


def test_names_of_str_arrays_stay_accepted_as_plain_str() -> None:
    result = _report(class_names=np.array(["cat", "dog", "eel"]), source="model.npy")
    payload = json.loads(json.dumps(result.to_dict()))
    assert [row["name"] for row in payload["per_class"]] == ["cat", "dog", "eel"]
    assert all(type(name) is str for name in result.class_names)
    assert payload["source"] == "model.npy"


def test_compare_reports_names_of_a_tuple() -> None:
    result = crossent.compare_reports((_report(), _report()), names=("a", "b"), resamples=5)
    assert result.names == ["a", "b"]
