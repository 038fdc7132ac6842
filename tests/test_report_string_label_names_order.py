"""``crossent.report``'s string labels read by class name (``_report._host.labels_by_name``):
the cases the mutation pass of branch mutation5 found unguarded.

* Class names in an order that is not sorted (a DataFrame's columns, or names given by
  hand): every test of ``tests/test_real_model_outputs.py`` used sorted names (as
  scikit-learn's ``classes_`` are), so reading the labels against ``sorted(names)``
  survived.
* Labels of which some, not all, read as numbers (``["1", "cat", "0"]``) without
  ``class_names``: they are names, so the message says to pass the class names; the
  mutant ``all(...)`` -> ``any(...)`` left them to the cast message ("pass
  labels.astype(np.int64)"), which cannot read "cat".
* Numbers held as Python objects beside ``class_names``: the label check's cast message;
  the early return for labels that are not all strings dropped, they were read as names.

Oracle: the negative log-likelihood written out, :math:`-\\frac1n\\sum_i \\log p_{i,k(y_i)}`
with :math:`k` the position of the name in the given order. Guards behaviour (passes on
main); kills those mutants.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent

NAMES = ["dog", "cat", "emu"]  # (not sorted)


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(13)
    logits = rng.normal(size=(200, 3)) * 2
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return probs, np.array(NAMES)[rng.integers(0, 3, size=200)]


def test_unsorted_class_names_read_each_label_as_its_own_column() -> None:
    probs, y = _data()
    result = crossent.report(probs, y, class_names=NAMES, resamples=10).to_dict()
    column = [NAMES.index(name) for name in y]
    nll = -sum(math.log(probs[i, k]) for i, k in enumerate(column)) / len(y)
    assert result["nll_nats"] == pytest.approx(nll, rel=1e-13)


def test_unsorted_frame_columns_read_each_label_as_its_own_column() -> None:
    pd = pytest.importorskip("pandas")
    probs, y = _data()
    frame = pd.DataFrame(probs, columns=NAMES)
    result = crossent.report(frame, y, resamples=10).to_dict()
    column = [NAMES.index(name) for name in y]
    nll = -sum(math.log(probs[i, k]) for i, k in enumerate(column)) / len(y)
    assert result["nll_nats"] == pytest.approx(nll, rel=1e-13)


def test_labels_partly_numbers_as_text_say_to_pass_class_names() -> None:
    with pytest.raises(crossent.InputTypeError, match=r"class_names=clf\.classes_"):
        crossent.report(np.full((3, 2), 0.5), np.array(["1", "cat", "0"]), resamples=10)


def test_numbers_held_as_objects_keep_the_cast_message_beside_class_names() -> None:
    """Labels that are not all strings (numbers held as Python objects, a pandas object
    column) are left to the label check, names given or not; the mutant that read them
    as names (the early return dropped) said "row 0 is 0, which names no class"."""
    labels = np.array([0, 1, 1], dtype=object)
    with pytest.raises(crossent.InputTypeError, match=r"pass labels\.astype\(np\.int64\)"):
        crossent.report(np.full((3, 2), 0.5), labels, class_names=["cat", "dog"], resamples=10)
