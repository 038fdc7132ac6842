"""Predictions and labels for evaluation: named form, validated once, read in row blocks.

Evaluation runs on the host in float64.  Arrays from other libraries are read through
``numpy.asarray`` (DLPack where that fails; PyTorch tensors detached, bfloat16 widened to
float32).  The input is validated once in its own library and dtype, which sets the
tolerance (no float64 copy of the whole matrix), and then offered in blocks
of rows, each converted to float64 log-probabilities and probabilities, so memory stays
at a few blocks whatever the number of rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from .._checks import (
    Form,
    check_classes,
    check_flag,
    check_form,
    check_labels,
    check_not_nan,
    check_probabilities,
    row_offset,
)
from .._numerics import safe_log
from .._parallel import ordered_map
from .._sides import prepare
from .._xp import (
    compute_dtype,
    detached,
    foreign_dtype_note,
    log_softmax,
    namespace,
    sequence_array,
    to_numpy,
)
from ..errors import InputError, InputTypeError

__all__ = [
    "LOGITS",
    "Block",
    "Predictions",
    "as_predictions",
    "binary_column_and_rows",
    "binary_columns",
    "check_same_rows",
    "check_values",
    "labels_array",
    "renormalized",
    "require_examples",
    "to_log_probs_and_probs",
]

_BLOCK_ELEMENTS = 1 << 20
"""Entries of the prediction matrix converted to float64 at a time (8 MiB)."""

_BINARY_BLOCK_ROWS = 1 << 15
"""Rows of a block of a 1-D binary prediction (:attr:`Predictions.binary`), whose
scores are a dozen NumPy passes over the block's column (:mod:`._binary`): blocks whose
temporaries stay in cache (blocks of 2^19 rows, ``_BLOCK_ELEMENTS`` entries of the
two-column rows, went to memory on each pass: 16 against 6 ms for the surprisals of
10^6 rows on the loaded Emerald Rapids)."""

_R = TypeVar("_R")
FloatArray = npt.NDArray[Any]
"""float64 by convention; NumPy's stubs type reductions such as bincount loosely."""
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Block:
    """A block of rows in float64: probabilities, labels, and log-probabilities unless given
    as probabilities (``log_probs`` is None then: use ``label_log_probs``).

    ``predicted``, when given, is each row's most probable class (the first on ties)
    found in the values as given: the order of logits or log-probabilities is that of
    the probabilities, which ``exp`` (and ``log_softmax``) can round to ties between
    classes whose values differ (logits one ulp apart: the later class is the more
    probable, but ``argmax`` of the rounded probabilities picked the first; issue 13).
    """

    start: int
    log_probs: FloatArray | None
    probs: FloatArray
    labels: IntArray
    predicted: IntArray | None = None
    binary: FloatArray | None = None
    """The rows' :math:`p = P(y = 1)` in float64 where they are a 1-D binary prediction
    (``probs`` is then :math:`[1 - p, p]`, rounded: :mod:`._binary`)."""

    def label_log_probs(self) -> FloatArray:
        """``log p_y`` of each row (``-inf`` where the label has probability 0)."""
        rows = np.arange(self.labels.shape[0])
        if self.log_probs is not None:
            return self.log_probs[rows, self.labels]
        return safe_log(self.probs[rows, self.labels], xp=np)


@dataclass(frozen=True)
class Predictions:
    """Validated predictions ``(n, classes)`` of a named form and their integer labels.

    ``selected``, when given, holds the (sorted) indices of the rows of ``values`` to use,
    gathered lazily: blocks gather only their own rows, so a subset of a memory-mapped
    file is never loaded whole.  ``labels`` are those of the selected rows.
    """

    values: Any
    form: Form
    labels: IntArray
    selected: IntArray | None = None
    name: str = "probs"
    renormalized: float | None = None
    """The largest ``|row sum - 1|`` corrected by ``renormalize=True`` (None otherwise)."""
    pending: bool = False
    """The check of the values and of the labels' range was deferred
    (``as_predictions(..., defer=True)``) to the fused pass of
    :func:`._summaries.summary_blocks`; every other reader checks them first."""
    labels_pending: bool = False
    """The labels' range check was deferred to the fused pass (also with
    ``validate=False``, which skips the values' check only: issue 13), whose kernel
    flags a label outside ``[0, classes)`` before reading its row; every other reader
    checks the range first."""
    first_row: int = 0
    """The number of the first row in messages (data read in chunks)."""
    binary: FloatArray | None = None
    """For a 1-D binary prediction, :math:`p = P(y = 1)` of every row of ``values`` (in
    float64, C-contiguous), whose ``values`` are the rows :math:`[1 - p, p]`: the scores
    are formed from ``p`` (:mod:`._binary`: :math:`1 - p` rounds)."""

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def classes(self) -> int:
        return int(self.values.shape[1])

    def _spans(self) -> Iterator[tuple[int, int]]:
        """The blocks' ``(start, stop)``: at most ``_BLOCK_ELEMENTS`` entries each (at least
        a row), as equal as whole rows allow, and an even number of them when more than
        one (never more than the rows), so that two threads finish together (blocks of
        ``_BLOCK_ELEMENTS`` entries and a short last one kept one thread on a last full
        block while the other waited: 10^6 x 10 on two threads, 5 blocks against 4.54).
        The spans depend on the rows and classes only (and whether the rows are a 1-D
        binary prediction: :data:`_BINARY_BLOCK_ROWS` rows), never on the threads: every
        number is the same whatever the threads."""
        step = (
            max(1, _BLOCK_ELEMENTS // max(self.classes, 1))
            if self.binary is None
            else _BINARY_BLOCK_ROWS
        )
        count = -(-self.n // step)
        if count > 1:  # (no empty block: a row is the least)
            count = min(count + count % 2, self.n)
        for block in range(count):
            yield block * self.n // count, (block + 1) * self.n // count

    def _rows(self, array: Any, span: tuple[int, int]) -> Any:
        """The rows of ``span`` of ``array`` (``values`` or ``binary``), as selected."""
        start, stop = span
        return array[start:stop] if self.selected is None else array[self.selected[start:stop]]

    def block_of(self, array: Any, start: int, rows: int) -> Any:
        """The block of ``rows`` rows from row ``start`` of ``array`` (``values`` or
        ``binary``), as :meth:`map_stored` hands it over."""
        return self._rows(array, (start, start + rows))

    def _raw(self, span: tuple[int, int]) -> tuple[int, FloatArray, IntArray]:
        chosen = self._rows(self.values, span)
        return span[0], np.asarray(chosen, dtype=np.float64), self.labels[span[0] : span[1]]

    def _block(self, span: tuple[int, int]) -> Block:
        start, chunk, labels = self._raw(span)
        log_probs, probs = to_log_probs_and_probs(chunk, self.form)
        predicted = np.argmax(chunk, axis=1).astype(np.intp)  # (Block: before the rounding)
        binary = None if self.binary is None else self._rows(self.binary, span)
        return Block(start, log_probs, probs, labels, predicted, binary)

    def check_values(self) -> None:
        """Run the checks that ``as_predictions`` would have run: the labels' range (when
        deferred), then the values (raises on a bad label or row)."""
        if self.pending:
            self.check_labels()
        check_values(self.values, name=self.name, form=self.form, first_row=self.first_row)

    def check_labels(self) -> None:
        """The labels' range check (raises on a label outside ``[0, classes)``, naming
        its row in the whole data and its value): where the kernel flagged one."""
        with row_offset(self.first_row):
            labels_array(self.labels, n=self.n, classes=self.classes)

    def _checked(self) -> None:
        if self.pending:
            self.check_values()
        elif self.labels_pending:
            self.check_labels()

    def map_stored(
        self, function: Callable[[int, Any, IntArray], _R], *, binary: bool = False
    ) -> Iterator[_R]:
        """``function(start, values, labels)`` of each block, values as stored (no copy,
        no conversion; gathered for a subset), or with ``binary`` the block's
        :attr:`binary` column; on all cores, results in block order.
        The caller validates the values if ``pending``."""
        array = self.binary if binary else self.values

        def stored(span: tuple[int, int]) -> _R:
            return function(span[0], self._rows(array, span), self.labels[span[0] : span[1]])

        spans = list(self._spans())
        if len(spans) <= 1:  # one block: no thread pool to start (small inputs)
            return map(stored, spans)
        return ordered_map(stored, spans)

    def map_rows(self, function: Callable[[int, IntArray, IntArray], _R]) -> Iterator[_R]:
        """``function(start, rows, labels)`` of each block: its first row's number, the
        indices of its rows in ``values`` (no values read, none copied: for a kernel
        that reads the stored rows in place) and their labels; on all cores, results in
        block order, the blocks of :meth:`map_raw`.  The values are validated first if
        ``pending``."""
        self._checked()

        def indices(span: tuple[int, int]) -> _R:
            start, stop = span
            rows = (
                np.arange(start, stop, dtype=np.intp)
                if self.selected is None
                else self.selected[start:stop]
            )
            return function(start, rows, self.labels[start:stop])

        return ordered_map(indices, self._spans())

    def map_raw(self, function: Callable[[int, FloatArray, IntArray], _R]) -> Iterator[_R]:
        """``function(start, values, labels)`` of each block, values in float64 and still in
        ``form``; blocks run on all cores, results in block order."""
        self._checked()
        return ordered_map(lambda span: function(*self._raw(span)), self._spans())

    def map_blocks(self, function: Callable[[Block], _R]) -> Iterator[_R]:
        """``function(block)`` of each block converted for metrics, on all cores, in order."""
        self._checked()
        return ordered_map(lambda span: function(self._block(span)), self._spans())

    def blocks(self) -> Iterator[Block]:
        """The rows in blocks of about ``_BLOCK_ELEMENTS`` entries, converted for metrics."""
        return self.map_blocks(lambda block: block)

    def probs(self) -> FloatArray:
        """All rows as float64 probabilities (an ``(n, classes)`` array)."""
        return np.concatenate([b.probs for b in self.blocks()]) if self.n else _empty(self)

    def subset(self, rows: IntArray) -> Predictions:
        """The predictions of the given sorted rows, selected lazily (already validated)."""
        self._checked()
        chosen = rows if self.selected is None else self.selected[rows]
        return Predictions(
            self.values,
            self.form,
            self.labels[rows],
            chosen,
            self.name,
            self.renormalized,
            binary=self.binary,
        )


def require_examples(predictions: Predictions, *, purpose: str) -> None:
    """Refuse predictions of 0 rows: ``purpose`` says what needed at least one example."""
    if predictions.n == 0:
        raise InputError(f"`{predictions.name}` has 0 rows; {purpose} needs at least one example")


def _empty(predictions: Predictions) -> FloatArray:
    return np.zeros((0, predictions.classes))


def to_log_probs_and_probs(values: FloatArray, form: Form) -> tuple[FloatArray | None, FloatArray]:
    """Float64 rows of ``form`` as (log-probabilities, probabilities); probabilities given
    directly are not logged (None): most metrics need only their labels' logs."""
    if form == "probs":
        return None, values
    log_probs = log_softmax(values, xp=np) if form == "logits" else values
    return log_probs, np.exp(log_probs)


def labels_array(
    labels: Any, *, n: int, classes: int, check_range: bool = True, of: str = "probs"
) -> IntArray:
    """Integer labels of length ``n`` in ``[0, classes)``, as ``intp``; ``of`` names the
    predictions in a message about the labels' shape.

    The range is checked whatever ``validate`` says (issue 13: ``check_labels``), here
    or, with ``check_range`` False, by the fused pass's kernel, which flags a label
    outside ``[0, classes)`` before it reads the row (then
    :meth:`Predictions.check_labels` names it).  Labels of a dtype that ``intp`` cannot
    hold (uint64) are range-checked here in any case: the cast would turn 2**63 and
    more into negative ids, which a later check would report by the wrong value.
    """
    given = labels
    xp, (labels,) = namespace(to_numpy(labels, name="labels"), names=("labels",))
    if isinstance(given, list | tuple) and labels.size == 0:
        # an empty list: NumPy's float64 is its default for no values, not the caller's
        # dtype (``update([], [])`` was refused as "dtype float64")
        labels = np.zeros(labels.shape, dtype=np.intp)
    if labels.ndim != 1:
        one_hot = tuple(labels.shape) == (n, classes)
        raise InputError(
            f"`labels` must be one-dimensional; got shape {tuple(labels.shape)}"
            + (
                f". One-hot labels? Pass the class ids, labels.argmax(axis=1), one per row of "
                f"`{of}`"
                if one_hot
                else ""
            )
        )
    if labels.dtype == np.bool_:  # a binary problem's classes 0 and 1
        labels = _boolean_labels(labels, classes=classes)
    try:
        check_labels(
            labels,
            xp=xp,
            batch_shape=(n,),
            classes=classes,
            ignore_index=None,
            check_range=check_range or not np.can_cast(labels.dtype, np.intp),
            float_hint="Cast whole-number floats with labels.astype(int) after checking them.",
            values_name=of,
        )
    except InputError as exc:
        hint = _label_range_hint(labels, classes, of) if tuple(labels.shape) == (n,) else ""
        if not hint:
            raise
        raise InputError(f"{exc}{hint}") from None
    return np.asarray(labels, dtype=np.intp)


def _label_range_hint(labels: Any, classes: int, of: str) -> str:
    """What to do about labels out of range that have a common reading: a negative label
    (-100) marks a position to ignore, as PyTorch's and Hugging Face's ``ignore_index``,
    which the evaluation functions do not take (every row is an example); labels that
    are the classes' own values (scikit-learn's ``classes_`` of ``[-1, 1]`` or
    ``[1, 2, 3]``) are not the columns' positions; the label 1 beside one column is a
    binary classifier's ``P(y = 1)`` given as ``(n, 1)``.  Empty when none applies."""
    if int(labels.size) == 0 or labels.dtype.kind not in "iu":
        return ""
    low, high = int(labels.min()), int(labels.max())
    if classes == 1 and low >= 0 and high == 1:
        return (
            ". One column (n, 1) is a distribution over one class; a binary classifier's "
            f"P(label = 1) is passed as shape (n,): {of}[:, 0]"
        )
    positions = (
        "labels that are the classes' own values (scikit-learn's classes_) map to the "
        "columns' positions with np.searchsorted(clf.classes_, labels)"
    )
    if low == -100:
        return (
            ". If -100 marks positions to ignore (ignore_index), drop those rows first: "
            f"keep = labels != -100, then {of}[keep], labels[keep]"
        )
    if low < 0:
        return (
            f". If {low} marks positions to ignore, drop those rows first (keep = labels != "
            f"{low}, then {of}[keep], labels[keep]); {positions}"
        )
    if high >= classes:
        return f". Labels are the columns' positions 0 to {classes - 1}; {positions}"
    return ""


def _boolean_labels(labels: npt.NDArray[np.bool_], *, classes: int) -> IntArray:
    """Boolean labels of a binary problem as the class ids 0 (False) and 1 (True).

    With two classes (two columns, or one-dimensional predictions of class 1) there is
    one reading: ``False`` is class 0 and ``True`` class 1, NumPy's own cast, the order
    of scikit-learn's classes ``[False, True]``, and what ``crossent report`` reads from
    a boolean label column or array.  With any other number of classes a boolean says
    which of two classes, not which of ``classes``: refused, saying what to write if
    False and True do mean the classes 0 and 1.
    """
    if classes != 2:
        raise InputTypeError(
            f"`labels` are booleans, which are the classes 0 (False) and 1 (True) of a "
            f"binary problem, but the predictions have {classes} "
            f"{'class' if classes == 1 else 'classes'}; if False and True are the classes "
            "0 and 1, pass labels.astype(np.int64) (a PyTorch tensor: labels.long())"
        )
    return labels.astype(np.intp)


def _check_real_floating(values: Any, *, xp: Any, name: str, form: str) -> None:
    """Refuse predictions that are not a real floating array of their library.

    A NumPy array's dtype is judged by its kind: NumPy's ``isdtype`` raises a bare
    ``TypeError`` for dtypes NumPy does not define (``ml_dtypes``' bfloat16, kind
    ``"V"``), which must be this message instead (issue 13).  Other libraries' arrays
    are judged by their own ``isdtype``: JAX's bfloat16, whose dtype is ``ml_dtypes``'
    NumPy dtype, is real floating there and computed in float32, as PyTorch's is.
    Raises :class:`~crossent.errors.InputTypeError` (integer, boolean, complex, object,
    string and datetime arrays too).
    """
    dtype = values.dtype
    numpy_dtype = isinstance(values, np.ndarray) or xp is np
    real_floating = dtype.kind == "f" if numpy_dtype else xp.isdtype(dtype, "real floating")
    if real_floating:
        return
    got = foreign_dtype_note(name, dtype) or f"dtype {dtype}"
    what = "" if name == form else f" ({form})"
    # a dtype is the argument's type: InputTypeError, as the measures and losses raise
    # for the same arrays (an InputError, a ValueError, escaped `except TypeError`)
    raise InputTypeError(f"`{name}` must be a real floating array{what}; got {got}")


def binary_columns(values: Any, form: Form, *, name: str, validate: bool) -> Any:
    """A 1-D binary prediction as the two-column matrix of classes 0 and 1: the second
    of :func:`binary_column_and_rows`."""
    return binary_column_and_rows(values, form, name=name, validate=validate)[1]


def binary_column_and_rows(
    values: Any, form: Form, *, name: str, validate: bool, rows: bool = True
) -> tuple[FloatArray | None, Any]:
    r"""A 1-D binary prediction as ``(p, rows)``: the float64 column :math:`p` of
    probabilities (None for logits) and the two-column matrix of classes 0 and 1.

    ``probs`` :math:`p = P(y = 1)` becomes :math:`[1 - p, p]` in float64 (exact for
    :math:`p \ge 1/2`; :math:`1 - p` rounds below, to 1 for :math:`p < 2^{-54}`, so
    the scores are formed from ``p``: :attr:`Predictions.binary`); ``logits`` :math:`z`, the
    log-odds of class 1, become :math:`[0, z]`, whose softmax is
    :math:`[1 - \sigma(z), \sigma(z)]`, and :math:`z = +\infty` (probability 1, as
    :math:`-\infty` is probability 0) the row :math:`[-\infty, 0]`: a two-column row
    of logits may not hold ``+inf``, a log-odds may.  A NaN log-odds is refused at its
    own index (``validate``), not at the column it would fill.  ``rows=False``: the
    rows of probabilities are not formed, a read-only NaN view of their shape stands
    for them (for a caller that reads ``p`` alone: a NaN, not a number, if it did not).
    """
    xp, (values,) = namespace(values, names=(name,))
    _check_real_floating(values, xp=xp, name=name, form=form)
    column = np.asarray(values, dtype=np.float64)
    if form == "probs":
        if validate:
            check_probabilities(
                column, name=name, xp=np, hint=". If these are log-odds, say so: form='logits'"
            )
        if not rows:  # (forming them: about 6 ms of CPU per 10^6 rows, a fresh 16 MB)
            return column, np.broadcast_to(np.float64(np.nan), (column.shape[0], 2))
        return column, _complement_rows(column)
    if form == "logits":
        if validate:
            check_not_nan(column, name=name, xp=np)
        certain = column == np.inf  # [0, +inf] is no row of logits; [-inf, 0] is
        return None, np.stack(
            [np.where(certain, -np.inf, 0.0), np.where(certain, 0.0, column)], axis=1
        )
    raise InputError(
        f"a one-dimensional `{name}` is the probability (form='probs') or the log-odds "
        f"(form='logits') of class 1 in a binary problem; got form={form!r}"
    )


def _complement_rows(p: FloatArray) -> FloatArray:
    """The rows :math:`[\\mathrm{fl}(1 - p), p]` of a float64 column, written in place
    (``numpy.stack`` of ``1 - p`` formed a whole column's temporary first: 2.6 against
    2.0 ms of CPU for 10^6 rows)."""
    rows = np.empty((p.shape[0], 2))
    np.subtract(1.0, p, out=rows[:, 0])
    rows[:, 1] = p
    return rows


_RENORMALIZE_ROWS = 1 << 16


def renormalized(values: Any, *, name: str) -> tuple[Any, float]:
    """Each row of probabilities divided by its sum, and the largest ``|sum - 1|`` corrected.

    Entries are checked first (finite, in [0, 1]); a row summing to 0 cannot be
    renormalised and is an error.  The result keeps the input's dtype (float32 at least),
    dividing in float64, so it sums to 1 within the dtype's rounding.  A dtype refused
    without ``renormalize`` (ml_dtypes' bfloat16) is refused here too (issue 13).
    """
    host = np.asarray(values)
    _check_real_floating(host, xp=np, name=name, form="probs")
    out = np.empty(host.shape, dtype=np.result_type(host.dtype, np.float32))
    largest = 0.0
    for start in range(0, host.shape[0], _RENORMALIZE_ROWS):
        chunk = np.asarray(host[start : start + _RENORMALIZE_ROWS], dtype=np.float64)
        with row_offset(start):
            check_probabilities(chunk, name=name, xp=np)
        totals = chunk.sum(axis=1)
        empty = np.flatnonzero(totals == 0)
        if empty.size:
            raise InputError(
                f"`{name}` row {start + int(empty[0])} sums to 0 and cannot be renormalised"
            )
        if totals.size:
            largest = max(largest, float(np.max(np.abs(totals - 1.0))))
        out[start : start + _RENORMALIZE_ROWS] = chunk / totals[:, None]
    return out, largest


def check_same_rows(first: Any, second: Any, *, names: tuple[str, str]) -> None:
    """Refuse two pandas objects (a DataFrame of predictions, a Series of labels) whose
    row indexes differ: a shuffled or filtered Series, whose rows would be paired with
    the frame's by position (a shuffled Series of 75 iris labels gave an NLL of 4.69
    where the aligned rows give 0.164, without a word; issue 13).  Anything else,
    and pandas objects with one index, pass."""
    if not all(type(x).__module__.split(".")[0] == "pandas" for x in (first, second)):
        return
    if not first.index.equals(second.index):
        raise InputError(
            f"`{names[0]}` and `{names[1]}` are pandas objects with different row indexes; "
            "their rows would be paired by position: align them "
            f"({names[1]}.loc[{names[0]}.index]) or pass .to_numpy() of both"
        )


class _UnnamedForm(str):
    """A form the caller did not name: the default of a parameter called ``logits``,
    told apart from ``form='logits'`` by identity (its text is the same)."""

    __slots__ = ()


LOGITS: str = _UnnamedForm("logits")
"""The recalibrators' default form: logits, unless the rows are probabilities
(:func:`_refuse_unnamed_probabilities`)."""


def _refuse_unnamed_probabilities(values: FloatArray, name: str) -> None:
    """Refuse ``values`` (n, classes >= 2) given with the default form :data:`LOGITS`
    whose every row is non-negative and sums to 1 (within the square root of the
    dtype's epsilon): probabilities, which are valid logits too, so reading them so
    would be a guess.  ``TemperatureScaling().fit(probs, labels)`` fitted the softmax
    of the probabilities without a word (30 rows of 3 classes: T = 20, its bound)."""
    if values.ndim != 2 or values.shape[1] < 2 or values.shape[0] == 0:
        return
    with np.errstate(invalid="ignore"):
        if not bool(np.all((values >= 0) & (values <= 1))):  # NaN too: not probabilities
            return
        sums = values.sum(axis=1, dtype=np.float64)
    if float(np.max(np.abs(sums - 1.0))) <= math.sqrt(float(np.finfo(values.dtype).eps)):
        raise InputError(
            f"`{name}` looks like probabilities: every row is non-negative and sums "
            "to 1, and no form was named; pass "
            "form='probs' (or form='logits' if these numbers are logits)"
        )


def as_predictions(
    values: Any,
    labels: Any,
    *,
    form: str,
    name: str | None = None,
    validate: bool = True,
    first_row: int = 0,
    renormalize: bool = False,
    defer: bool = False,
    binary: FloatArray | None = None,
    rows: bool = True,
) -> Predictions:
    """Check and wrap ``values`` of shape ``(n, classes)`` in the named ``form`` with labels.

    A 1-D ``values`` is a binary prediction for class 1 (:func:`binary_column_and_rows`;
    of probabilities: :attr:`Predictions.binary`).  ``binary``: the float64 column
    :math:`p` of two-column ``values`` that :func:`binary_column_and_rows` formed (the
    report's), whose scores are then formed from it.
    ``renormalize=True`` (probabilities only) divides each row by its sum first and records
    the largest deviation corrected.  Messages call ``values`` by ``name``, by default by
    its form (`probs`, `log_probs`, `logits`): what the caller said it holds.
    ``first_row`` numbers the rows in error messages (for data read in chunks).
    ``defer=True`` leaves the value check of a 2-D NumPy float32 or float64 array of
    probabilities, and the range check of the labels, to the fused pass of
    :func:`._summaries.summary_blocks`, which flags the rows and labels it would
    reject as it reads them and then runs the same checks (so the same error); the
    result is ``pending`` until then.  The labels' dtype, the shapes and dtypes are
    always checked here.  ``rows=False``: a 1-D probability column's rows :math:`[1 -
    p, p]` are not formed (:func:`binary_column_and_rows`), for a caller that reads
    :attr:`Predictions.binary` alone (``EvaluationState.update``'s top-label scope).
    """
    checked_form = check_form(form, name="form")
    name = checked_form if name is None else name
    check_same_rows(values, labels, names=(name, "labels"))
    validate = check_flag(validate)
    renormalize = check_flag(renormalize, name="renormalize")  # InputTypeError, as validate
    if renormalize and checked_form != "probs":
        raise InputError(
            f"`renormalize=True` divides probabilities by their row sums; got form={form!r} "
            "(log-probabilities and logits are normalised by the softmax)"
        )
    values = detached(values, name=name)
    if not hasattr(values, "ndim"):  # lists and scalars
        values = sequence_array(values, name=name)
    rows_given = values.ndim == 2  # (a 1-D column in [0, 1] is valid log-odds as often)
    if values.ndim == 1:
        with row_offset(first_row):  # a bad entry's index counted as the labels' are
            binary, values = binary_column_and_rows(
                to_numpy(values, name=name), checked_form, name=name, validate=validate, rows=rows
            )
    correction: float | None = None
    if renormalize and values.ndim == 2:
        values, correction = renormalized(to_numpy(values, name=name), name=name)
        binary = None  # (the rows divided by their sums: the scores from those rows)
    xp, (values,) = namespace(values, names=(name,))
    if values.ndim != 2:
        raise InputError(
            f"`{name}` must have shape (n, classes), one row per example (or (n,) for the "
            f"probability of class 1 in a binary problem); got shape "
            f"{tuple(values.shape)}"
        )
    check_classes(values.shape[1], name=name, axis=1)
    _check_real_floating(values, xp=xp, name=name, form=checked_form)
    fused = (  # (a binary column was checked whole: its scores are formed from it)
        defer
        and binary is None
        and checked_form == "probs"
        and isinstance(values, np.ndarray)
        and values.dtype in (np.float32, np.float64)
    )
    pending = validate and fused
    with row_offset(first_row):  # the range in the fused pass if deferred
        label_ids = labels_array(
            labels, n=values.shape[0], classes=values.shape[1], check_range=not fused, of=name
        )
    if validate and not pending and binary is None:  # (a binary column: checked whole)
        check_values(values, name=name, form=checked_form, first_row=first_row)
    values = to_numpy(values, name=name)
    if form is LOGITS and rows_given:
        _refuse_unnamed_probabilities(values, name)
    return Predictions(
        values,
        checked_form,
        label_ids,
        name=name,
        renormalized=correction,
        pending=pending,
        labels_pending=fused,
        first_row=first_row,
        binary=None if binary is None else np.ascontiguousarray(binary, dtype=np.float64),
    )


_CHECK_ROWS = 1 << 16


def check_values(values: Any, *, name: str, form: Form, first_row: int) -> None:
    """The value check of ``(n, classes)`` predictions of ``form``, in the caller's library
    and dtype (which sets the tolerance), ``_CHECK_ROWS`` rows at a time."""
    xp, (values,) = namespace(values, names=(name,))
    dtype = compute_dtype(values, xp=xp, names=(name,))
    n = values.shape[0]
    for start in range(0, n, _CHECK_ROWS):
        with row_offset(first_row + start):
            prepare(
                values[start : min(start + _CHECK_ROWS, n), :],
                name=name,
                form=form,
                axis=1,
                xp=xp,
                dtype=dtype,
                validate=True,
            )
