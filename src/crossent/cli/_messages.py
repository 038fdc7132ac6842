"""The library's error messages, said in the command line's terms.

The library names its arguments (`probs`, or the form such as `logits`; `axis`) and offers
``validate=False``; on the command line the array is the file's (the ``.npz`` member, or
a table's prediction columns), there is no axis to choose, and validation cannot be
turned off; its options are the command line's flags (``--debias``, not
``debias=True``).  :func:`in_file_terms` rewrites those phrases and nothing else.
"""

from __future__ import annotations

import re
from typing import Any

from .._printable import printable
from ._dataset import Dataset

__all__ = ["NORMALISE_HINT", "in_file_terms", "in_option_terms", "json_ready", "printable"]

_OPTIONS = "bins|binning|scope|norm|debias|preset|renormalize|resamples|seed|top|max_ece|max_nll"
"""The arguments of :func:`crossent.report` that are options of ``crossent report``."""

_SETTING = re.compile(rf"`?\b({_OPTIONS})=(True|'([^']*)'|(-?[\d.]+))`?")
"""``debias=True``, ``norm='l1'``, ``bins=3``: the library's words for a setting."""

_NAMED = re.compile(rf"`({_OPTIONS})`")

_FORM = {"form='probs'": "probabilities", "form='logits'": "logits"}
_FORM["form='log_probs'"] = "log-probabilities"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _setting(found: re.Match[str]) -> str:
    name, value, quoted, number = found.groups()
    shown = quoted if quoted is not None else number
    return _flag(name) if value == "True" else f"{_flag(name)} {shown}"


def in_option_terms(message: str) -> str:
    """``message`` with the library's settings said as the options typed: "`debias=True`
    is defined for norm='l2' only; got norm='l1'" as "--debias is defined for --norm l2
    only; got --norm l1", "`bins`" as "--bins", "classes=3" as "3 classes"."""
    message = _SETTING.sub(_setting, message)
    message = _NAMED.sub(lambda found: _flag(found[1]), message)
    for said, meant in _FORM.items():
        message = message.replace(said, meant)
    return re.sub(r"\bclasses=(\d+)", r"\1 classes", message)


_VALIDATE_FALSE = re.compile(r",? or pass validate=False\.?|;? pass validate=False[^.]*\.?")


NORMALISE_HINT = re.compile(r"normalise it first \(p / p\.sum\(axis, keepdims=True\)[^)]*\)")
"""The library's fix for rows that do not sum to 1: Python code, ``renormalize=True`` and the
flag, in one parenthesis (rewritten by the option pass as "--renormalize in the evaluation
functions, --renormalize in the CLI"); ``report`` and ``explain`` each say their own."""

_NORMALISE_FLAG = "normalise the rows first, or pass --renormalize (each row divided by its sum)"

_FORM_HINT = re.compile(r"say so: (p_|q_)?form='logits'( or 'log_probs')?")
"""The library's hint for logits given as probabilities (``form='logits' or 'log_probs'``)."""

_FORM_FLAGS = (
    "say so: --logits or --log-probs (a table, .npy or single tensor), or name the array "
    "logits or log_probs (.npz, .safetensors, .pt dict)"
)


_AT_INDEX = re.compile(r"at index \((\d+), (\d+)\)")
"""The library's place of a bad value in the prediction matrix, ``at index (row, class)``."""


_PLURAL = {"contains": "contain", "has": "have", "is": "are", "looks": "look"}
"""The library's verbs after an array's name (one array: singular), and their plurals
after "the predictions (FORM)": "the predictions (logits) contains NaN" read wrongly."""


def _plural_verbs(message: str, what: str) -> str:
    """``message`` with each singular verb of :data:`_PLURAL` right after ``what`` made
    plural."""
    pattern = re.escape(what) + " (" + "|".join(_PLURAL) + r")\b"
    return re.sub(pattern, lambda found: f"{what} {_PLURAL[found.group(1)]}", message)


def _in_table_terms(message: str, class_names: list[str]) -> str:
    """``at index (1, 1)`` as a table's row and column: ``in row 1, column 'b'`` (the
    CSV's other messages count rows so, from 0)."""

    def cell(found: re.Match[str]) -> str:
        row, column = int(found.group(1)), int(found.group(2))
        if column >= len(class_names):
            return found.group(0)
        return f"in row {row}, column {class_names[column]!r}"

    return _AT_INDEX.sub(cell, message)


def in_file_terms(message: str, dataset: Dataset) -> str:
    """``message`` with the prediction array named as in the file and no library-only advice."""
    message = _FORM_HINT.sub(_FORM_FLAGS, message)
    message = NORMALISE_HINT.sub(_NORMALISE_FLAG, message)
    message = _VALIDATE_FALSE.sub(".", message).replace("..", ".").replace(": .", ".")
    message = message.replace(" along `axis`", "")
    message = in_option_terms(message)
    if dataset.what:
        # "`logits` (logits) must not be +inf": the file's name for the array says it once
        message = message.replace(f"`{dataset.form}` ({dataset.form})", dataset.what)
        message = message.replace(f"`probs` ({dataset.form})", dataset.what)
        message = message.replace("`probs`", dataset.what)
        message = message.replace(f"`{dataset.form}`", dataset.what)
        if dataset.what.startswith("the predictions"):  # a plural name
            message = _plural_verbs(message, dataset.what)
    if dataset.columns is not None and "classes" in dataset.columns:  # a table's columns
        message = _in_table_terms(message, dataset.class_names)
    if dataset.labels_source:  # --labels: the labels are another file's
        message = message.replace("`labels`", f"the labels in {dataset.labels_source}")
    if dataset.dtype_hint and "must sum to 1" in message:
        message = f"{message} {dataset.dtype_hint}"
    return message


def json_ready(value: Any) -> Any:
    r"""``value`` (the JSON report: dicts, lists, strings, numbers) with every string valid
    Unicode: a byte of a file name that is not UTF-8, which Python holds as a lone
    surrogate (``0xff`` as U+DCFF), written as the text ``\xff`` (a backslash, ``x``
    and two hex digits: Python's ``backslashreplace``).

    ``json.dumps`` wrote it as the escape ``"\udcff"``, a lone surrogate that strict JSON
    readers refuse or replace (``jq`` printed U+FFFD; JavaScript's string is not well
    formed). Strings without surrogates are returned as they are (no copy)."""
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raw = value.encode("utf-8", "surrogateescape" if _escapes(value) else "surrogatepass")
            return raw.decode("utf-8", "backslashreplace")
        return value
    if isinstance(value, dict):
        return {json_ready(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def _escapes(text: str) -> bool:
    r"""Whether every surrogate of ``text`` is one of ``surrogateescape``'s (U+DC80 to
    U+DCFF, a byte that is not UTF-8); another (a lone U+D800) is written as the bytes
    ``surrogatepass`` gives it, each then ``\xNN``."""
    return all(not 0xD800 <= ord(c) < 0xE000 or 0xDC80 <= ord(c) <= 0xDCFF for c in text)
