"""The calibration report of one model: every number, computed through the public API.

The prediction matrix is read in batches of rows (:data:`BATCH_ROWS`), so a
memory-mapped array larger than memory is fine: the evaluation states have a fixed
size, and the bootstrap, the temperature fit and the recalibration gap read the rows
block by block.  Per-row values (a few floats per row) are the only things held for
every row.  ``crossent report`` (the CLI) prints :meth:`Report.to_dict` as its JSON.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import calibration as cal
from .._checks import check_flag, check_form, check_integer
from ..calibration._bootstrap import (
    binned_calibration_interval,
    check_resamples,
    check_resampling,
    classwise_calibration_interval,
)
from ..calibration._calibrator import log_scores
from ..calibration._error import PRESET_OPTIONS as _PRESETS  # (a constant: private here)
from ..calibration._error import (
    CalibrationError,
    CalibrationSpec,
    block_bounds,
    calibration_error_of,
    check_spec,
    edges_for,
    error_of_rows,
)
from ..calibration._inputs import (
    as_predictions,
    binary_column_and_rows,
    check_values,
    renormalized,
)
from ..calibration._reliability import diagram_of
from ..calibration._scores import score_means
from ..calibration._smooth import SmoothCalibrationError, smooth_calibration_of
from ..calibration._state import add_summarized_block, adding_batch, perplexity_of
from ..calibration._summaries import summarize_block
from ..calibration._temperature import XTOL as _XTOL  # (a constant: private here)
from ..calibration._temperature import RowMemo, cross_fitted_nll, fit_scaler
from ..errors import InputError, InputTypeError
from . import _text
from ._held_out import held_out_temperature
from ._host import (
    bfloat16_tensor,
    check_aligned,
    host_array,
    host_labels,
    labels_by_name,
    sequence_shape_hint,
)

__all__ = ["BATCH_ROWS", "FORMAT", "Progress", "Report", "first_repeat", "report", "text_sequence"]

FORMAT = 3
"""Schema version of the JSON report; bumped when a field changes meaning or is removed
(fields are only ever added within a version). 3: ``reliability_bins`` lists the
non-empty bins only, each with its ``index`` (2 listed every bin: 4 rows in 2**20 bins
wrote 205 MB)."""

BATCH_ROWS = 1 << 15

_BOUNDS = (0.05, 20.0)
"""The temperatures the fit may choose from (TemperatureScaling's default)."""

_FOLDS = 2
"""Folds of the cross-fitted recalibration gap, stratified by top-1 misses; fewer rows
than this, or a training fold's temperature at a bound, give no gap (null, with a note)."""

_LEVEL = 0.95
"""Coverage of the calibration error's bootstrap interval and of the diagram's bins."""

Progress = Callable[[str, int], Callable[[int], None]]
"""``progress(label, total)`` returns an ``advance(steps)`` callback."""


def text_sequence(value: Any, *, name: str) -> list[str] | None:
    """Names given as a sequence of str (a list, a tuple, an array of str, a pandas
    Index), as a list of plain str; None stays None.  A bare str is refused, not split
    into its characters, and so is an entry that is not a str (None, a number, bytes),
    which the JSON and HTML reports could not show as a name."""
    if value is None:
        return None
    if isinstance(value, str | bytes | Mapping):
        raise InputTypeError(
            f"`{name}` must be a sequence of str, one a name; got {type(value).__name__} {value!r}"
        )
    try:
        entries = list(value)
    except TypeError:
        raise InputTypeError(
            f"`{name}` must be a sequence of str, one a name; got {type(value).__name__}"
        ) from None
    for index, entry in enumerate(entries):
        if not isinstance(entry, str):
            raise InputTypeError(
                f"`{name}` must be a sequence of str; got {entry!r} "
                f"({type(entry).__name__}) at index {index}"
            )
    return [str(entry) for entry in entries]


def _no_progress(label: str, total: int) -> Callable[[int], None]:
    return lambda step: None


@dataclass(frozen=True, eq=False)
class Report:
    """A model's calibration report: the numbers and the data behind its figures.

    Reports compare by identity (``==`` is ``is``; a report is hashable): compare
    :meth:`to_dict` for equal numbers.  (The generated field-by-field ``==`` compared
    the per-row arrays by truth value and raised ``ValueError`` for a report and its
    pickled copy.)

    Attributes
    ----------
    payload : dict
        The JSON-ready numbers (:meth:`to_dict` returns a copy).
    summary : EvaluationSummary
        The streamed metrics; its ``calibration`` is the report's calibration error (with
        equal-mass bins, edges at the exact quantiles, as ``to_dict()["ece"]``, not the
        streaming state's fine cells).
    diagram : ReliabilityDiagram
        The binned reliability curve of the report's calibration definition, every bin
        (``to_dict()["reliability_bins"]`` lists the non-empty ones, with their index).
    smooth : SmoothCalibrationError
        The smooth calibration error and its curve.
    surprisal : ndarray, shape (n,)
        :math:`-\\log p_y` of every row (for the histogram and paired comparisons).
    class_names : list of str
    classwise : EvaluationSummary
        The one-vs-rest (class-wise) bins of every class.
    brier_rows : ndarray, shape (n,)
        The Brier score of every row (for paired comparisons).
    labels : ndarray of int, shape (n,)
    ids : ndarray, shape (n,), or None
        The rows' ids, when given (:func:`compare_reports` checks that they agree).
    half_surprisal : ndarray, shape (n,), or None
        :math:`-\\log p_y / 2` of every row, kept only where a row's surprisal of
        logits passes float64 (``surprisal`` +inf for a finite one, up to 3.6e308):
        :func:`compare_reports` pairs the halves (None otherwise).
    """

    payload: dict[str, Any]
    summary: cal.EvaluationSummary = field(repr=False)
    diagram: cal.ReliabilityDiagram = field(repr=False)
    smooth: SmoothCalibrationError = field(repr=False)
    surprisal: Any = field(repr=False)
    class_names: list[str] = field(repr=False)
    classwise: Any = field(default=None, repr=False)
    brier_rows: Any = field(default=None, repr=False)
    labels: Any = field(default=None, repr=False)
    ids: Any = field(default=None, repr=False)
    half_surprisal: Any = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The report as the JSON object ``crossent report --json`` prints (a deep copy).

        Strict JSON: an infinite value is the string ``"inf"`` or ``"-inf"`` and an
        undefined or not applicable one is None (null), never a float NaN or infinity, so
        ``json.dumps(result.to_dict(), allow_nan=False)`` holds, and strict parsers read
        it; :meth:`format_number` prints such a value as every rendering does."""
        return _json_copy(self.payload)

    @property
    def passed(self) -> bool:
        """True when every gate (``max_ece``, ``max_nll``) passed (or none was set)."""
        return all(gate["pass"] for gate in self.payload["gates"])

    @staticmethod
    def format_number(value: float | str | None, digits: int = 4) -> str:
        """A number of the JSON report (:meth:`to_dict`) as every rendering prints it:
        ``inf`` or ``-inf`` for the infinities (``"inf"``/``"-inf"`` in the JSON),
        ``undefined`` for null, else ``digits`` decimals."""
        return _text.fmt(value, digits)

    @staticmethod
    def format_surprisal(entry: Mapping[str, Any], digits: int = 4) -> str:
        """A row of the JSON report's ``most_surprising`` (:meth:`to_dict`): its
        surprisal as every rendering prints it, :meth:`format_number` of
        ``surprisal_nats``, or where that is ``"inf"`` beside a finite
        ``surprisal_half_nats`` (logits more than 1.8e308 apart: ``[1e308, -1e308]``
        of label 1 has the surprisal 2e308, past float64), the half doubled exactly in
        decimal: ``2.0000e+308``."""
        return _text.surprisal_text(dict(entry), digits)

    @staticmethod
    def format_gate(value: float | str | None, threshold: float) -> tuple[str, str]:
        """A gate's value and threshold (``to_dict()["gates"]``) as every rendering prints
        them side by side: the threshold as given (its shortest round-trip text), the value
        with 4 decimals, or as many more as keep the printed pair in the order of the
        numbers: an NLL of 1.56704964 failing ``--max-nll 1.5670496`` prints
        ``1.56705 > 1.5670496``, where 4 decimals and ``:g`` gave the false
        ``1.5670 > 1.56705``.  Returns ``(value_text, threshold_text)``."""
        return _text.gate_texts(value, threshold)

    def metric_rows(self) -> list[tuple[str, str]]:
        """The headline metrics as ``(label, value)`` strings, as every rendering shows
        them (the HTML page, ``crossent report`` on the terminal and in Markdown)."""
        return _text.metric_rows(self.payload)

    def held_out_rows(self) -> tuple[str, list[str], list[list[str]]] | None:
        """The held-out temperature's table, as every rendering shows it: a title (the
        temperature and the validation rows it was fitted on), the header and the rows
        ``[metric, uncalibrated, at T]``; None when the report has no validation rows
        (``temperature_from``)."""
        return _text.held_out_rows(self.payload)

    def calibration_definition(self) -> str:
        """The calibration error's definition, resamples and preset, in one line."""
        return _text.definition(self.payload)

    def columns_statement(self) -> str | None:
        """One sentence naming the table columns the predictions were read from (None
        when they did not come from a table's columns)."""
        columns = self.payload.get("columns")
        return _text.columns_statement(columns) if columns else None

    def to_html(self, path: str | Path | None = None) -> str:
        """The report as one self-contained HTML page (figures as PNG data URIs, no
        script); written atomically to ``path`` when given.  The figures need matplotlib
        (without it, the page says how to install it in their place)."""
        from ._html import delivered, render_html

        return delivered(render_html(self), path)

    def _repr_html_(self) -> str:
        """The notebook rendering: :meth:`to_html`'s body in a ``<div>`` whose style
        applies inside it only."""
        from ._html import render_html

        return render_html(self, standalone=False)

    def __repr__(self) -> str:
        """One line: the source, size, form and headline metrics (as :meth:`metric_rows`
        prints them) and whether the gates passed; :meth:`to_dict` has every number."""
        data = self.payload
        fmt = self.format_number
        source = f"{data['source']!r}, " if data.get("source") else ""
        ece = data["ece"]["value"] if isinstance(data.get("ece"), dict) else None
        return (
            f"Report({source}n={data['n']}, classes={data['classes']}, "
            f"form={data['form']!r}, accuracy={fmt(data['accuracy'])}, "
            f"nll_nats={fmt(data['nll_nats'])}, brier={fmt(data['brier'])}, "
            f"ece={fmt(ece)}, passed={self.passed})"
        )


_LEAVES = frozenset({str, int, float, bool, type(None)})
"""The immutable leaves of a JSON-ready tree, shared by its copies."""


def _json_copy(value: Any) -> Any:
    """A deep copy of a JSON-ready tree: new dicts and lists all the way down, the same
    (immutable) strings, numbers, booleans and None; anything else through
    ``copy.deepcopy``.  ``copy.deepcopy`` of the whole payload, with its memo of every
    object, took a second for 50 000 classes' per-class table; this takes a fifth."""
    if type(value) in _LEAVES:
        return value
    if isinstance(value, dict):
        return {
            key: item if type(item) in _LEAVES else _json_copy(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [item if type(item) in _LEAVES else _json_copy(item) for item in value]
    return copy.deepcopy(value)


def _batches(values: Any, labels: Any) -> Iterator[tuple[int, Any, Any]]:
    for start in range(0, labels.shape[0], BATCH_ROWS):
        stop = start + BATCH_ROWS
        yield start, values[start:stop], labels[start:stop]


_number = _text.to_json_number


def _calibration_options(
    *,
    binary: bool,
    preset: str | None,
    explicit: dict[str, Any],
) -> CalibrationSpec:
    """The report's calibration definition: defaults, then the preset, then the options."""
    options: dict[str, Any] = {
        "bins": 15,
        "binning": "uniform",
        "norm": "l1",
        "scope": "positive-class" if binary else "top-label",
        "debias": False,
        "closed": "left",
    }
    if preset is not None:
        if preset not in _PRESETS:  # (as defined, whatever became of the public dict)
            raise InputError(
                f"`preset` must be one of {', '.join(sorted(_PRESETS))}; got {preset!r}"
            )
        options.update(_PRESETS[preset])
    options.update({k: v for k, v in explicit.items() if v is not None})
    return check_spec(**options)


def report(
    predictions: Any,
    labels: Any,
    /,
    *,
    form: str = "probs",
    class_names: Sequence[str] | None = None,
    ids: Any = None,
    bins: int | None = None,
    binning: str | None = None,
    scope: str | None = None,
    norm: str | None = None,
    debias: bool | None = None,
    closed: str | None = None,
    preset: str | None = None,
    renormalize: bool = False,
    resamples: int = 1000,
    seed: int = 0,
    top: int = 10,
    max_ece: float | None = None,
    max_nll: float | None = None,
    source: str | None = None,
    columns: Mapping[str, Any] | None = None,
    builtin_example: bool = False,
    progress: Progress | None = None,
    temperature_from: Any = None,
    temperature_source: str | None = None,
) -> Report:
    r"""Evaluate a model's predictions: the report ``crossent report`` prints, from Python.

    Accuracy, NLL (nats and bits), perplexity, Brier and spherical scores, the binned
    calibration error with its bootstrap interval and definition, the smooth calibration
    error (Błasiok and Nakkiran 2023), temperature scaling and the cross-fitted
    recalibration gap, per-class accuracy, cross-entropy and calibration, the per-bin
    table, and the most surprising examples.

    .. math::

        \mathrm{NLL} = -\frac1n\sum_i \log p_{i, y_i}, \qquad
        \mathrm{Brier} = \frac1n\sum_i\sum_k (p_{ik} - [k = y_i])^2, \qquad
        \mathrm{ECE} = \sum_b \frac{n_b}{n}\,|\bar h_b - \bar c_b|,

    with the calibration definition (scope, norm, bins) recorded beside each value.

    Parameters
    ----------
    predictions : array_like, shape (n, classes) or (n,)
        NumPy, PyTorch (any device; detached and copied to the host) or pandas
        (a DataFrame's columns name the classes and must all be numeric; nullable
        ``Float64`` columns are read as float64, a missing value is an error).  A 1-D
        array (or a one-column array ``(n, 1)`` or frame: the command line's one
        column) is :math:`P(y = 1)` of a binary problem with labels in {0, 1}, not a
        one-class distribution as for :func:`calibration_error`; the report then uses
        the positive-class scope for calibration (:math:`p` against ``[label = 1]``, as
        torchmetrics' ``binary_calibration_error``) and says so, where
        :func:`calibration_error` of the same 1-D array defaults to the top-label scope
        (:math:`\max(p, 1 - p)`, its default for every input); pass
        ``scope="top-label"`` here, or ``scope="positive-class"`` there, for one number.
    labels : array_like of int or str, shape (n,)
        True classes (a pandas Series or a tensor is fine; a Series beside a pandas
        ``predictions`` must have the same row index, so rows are never paired by
        position by mistake).  Strings are the names of the classes, read against
        ``class_names`` or a DataFrame's columns (scikit-learn's ``y`` beside
        ``predict_proba(X)`` and ``class_names=clf.classes_``); a string naming no class
        is an error.  Every row is an example: drop positions labelled ``-100`` (Hugging
        Face's ignored tokens) first, ``keep = labels != -100``.
    form : {"probs", "log_probs", "logits"}, default "probs"
        What ``predictions`` holds.  Never inferred from the values.
    class_names : sequence of str, optional
        Names of the classes (default: a DataFrame's columns, else ``"0"``, ``"1"``, ...),
        one a class, no name twice (an error: a label naming it would be either class):
        two for a 1-D binary ``predictions`` (a single name, that of its one column, is
        replaced by ``"0"``, ``"1"``).
    ids : array_like, shape (n,), optional
        Row identifiers shown in the most-surprising table (e.g. a table's ``id`` column),
        as given: strings stay strings (``"007"``), integers integers; ``crossent report``
        reads a CSV's ``--id-column`` as text and gives numbers only when every cell is
        its number's text.
    bins, binning, scope, norm, debias, closed : optional
        The calibration definition (:func:`calibration_error`'s options); defaults: 15
        equal-width bins, L1, top-label (positive-class for a 1-D binary input).
    preset : str, optional
        A name from :data:`CALIBRATION_PRESETS`; explicit options override it.
    renormalize : bool, default False
        Divide each row of probabilities by its sum first; the report records the
        largest deviation corrected.  Never the default.
    resamples : int, default 1000
        Bootstrap resamples of the calibration-error interval.
    seed : int, default 0
        Seed of the bootstrap and of the recalibration gap's folds.
    top : int, default 10
        How many most surprising examples to list.
    max_ece, max_nll : float, optional
        Gates: each becomes an entry of ``gates`` (threshold, value, pass).
    source : str, optional
        What the predictions are, for the report's header (default: their type and shape).
    columns : mapping, optional
        How a table's columns were read (recorded as ``columns``; the CLI sets it):
        ``label``, ``id``, ``classes`` and ``ignored`` (those not used); for an
        archive's arrays, ``predictions``, ``label`` and ``ignored``.
    builtin_example : bool, default False
        Marks the CLI's built-in example.
    progress : callable, optional
        ``progress(label, total)`` returning an ``advance(steps)`` callback.
    temperature_from : (predictions, labels), optional
        Held-out validation rows, in the same ``form`` and classes as ``predictions``
        (read as they are: a 1-D binary array, ``renormalize``, string labels).  The
        NLL-optimal temperature is fitted on them (``TemperatureScaling(guard=False)``)
        and ``held_out_temperature`` reports this input's NLL, Brier score and
        calibration error (with its interval) at it: Guo et al. (2017)'s protocol,
        ``TemperatureScaling(guard=False).fit(*temperature_from, form=form)
        .transform(predictions, form=form)`` then the metric functions, to the bit.
        Without it, ``held_out_temperature`` is None.
    temperature_source : str, optional
        What the validation rows are, for the report (default: their type).

    Returns
    -------
    Report
        ``to_dict()`` (the CLI's JSON), ``to_html(path)``, and a notebook rendering.

    Raises
    ------
    InputError
        Invalid predictions, labels or options (naming the row and value); a class name
        given twice.
    InputTypeError
        ``progress`` not callable, ``columns`` not a mapping, ``class_names`` not a
        sequence of str (a bare str is not split into names), ``source`` not a str, or
        predictions of a type that is not an array.

    See Also
    --------
    EvaluationState : The streamed metrics alone.
    calibration_error, smooth_calibration_error, bootstrap_interval, TemperatureScaling

    Examples
    --------
    >>> import numpy as np, crossent
    >>> rng = np.random.default_rng(0)
    >>> logits, labels = rng.normal(size=(300, 4)) * 2, rng.integers(0, 4, size=300)
    >>> result = crossent.report(logits, labels, form="logits", resamples=50)
    >>> result.to_dict()["n"], result.to_dict()["classes"]
    (300, 4)
    >>> bool(np.isclose(result.to_dict()["nll_nats"],
    ...      crossent.negative_log_likelihood(logits, labels, form="logits")))
    True
    """
    if progress is not None and not callable(progress):
        raise InputTypeError(
            f"`progress` must be a callable progress(label, total) or None; got {progress!r}"
        )
    if columns is not None and not isinstance(columns, Mapping):
        raise InputTypeError(f"`columns` must be a mapping or None; got {columns!r}")
    advance_to = progress or _no_progress
    renormalize = check_flag(renormalize, name="renormalize")  # not by truth value
    builtin_example = check_flag(builtin_example, name="builtin_example")
    resamples = check_resamples(resamples)
    top = check_integer(top, name="top", low=0)
    max_ece, max_nll = _threshold(max_ece, "max_ece"), _threshold(max_nll, "max_nll")
    class_names = text_sequence(class_names, name="class_names")
    if source is not None and not isinstance(source, str):
        raise InputTypeError(f"`source` must be a str or None; got {source!r}")
    check_aligned(predictions, labels)
    sequence_hint = sequence_shape_hint(predictions, labels)
    if sequence_hint:
        raise InputError(
            f"`predictions` has shape {tuple(predictions.shape)} and `labels` "
            f"{tuple(labels.shape)}{sequence_hint}"
        )
    values, names_from_frame = host_array(predictions, name="predictions")
    label_array = host_labels(labels)
    if getattr(values, "ndim", None) not in (1, 2):  # a scalar had no class axis to read
        raise InputError(
            "`predictions` must have shape (n, classes), or (n,) for P(label = 1) of a "
            f"binary problem; got shape {tuple(np.shape(values))}"
        )
    binary = getattr(values, "ndim", None) == 1 or (
        getattr(values, "ndim", None) == 2 and values.shape[1] == 1
    )
    checked_form = check_form(form, name="form")
    column = None  # a binary P(y = 1) as given, whose scores are formed from it
    if binary:
        column, values = binary_column_and_rows(
            np.asarray(values).reshape(-1), checked_form, name="predictions", validate=True
        )
        # a one-column table's single name is that of class 1; the classes are 0 and 1.
        # Any other count is refused below (it was dropped without a word: issue 13)
        names = (
            list(class_names) if class_names is not None and len(class_names) != 1 else ["0", "1"]
        )
        given_names = class_names if class_names is not None and len(class_names) == 2 else None
    else:
        given_names = class_names if class_names is not None else names_from_frame
        names = list(given_names or [str(k) for k in range(int(values.shape[1]))])
    correction: float | None = None
    if renormalize:
        if checked_form != "probs":
            raise InputError(
                f"`renormalize=True` divides probabilities by their row sums; got form={form!r}"
            )
        values, correction = renormalized(values, name="predictions")
        column = None  # (the rows divided by their sums)
    if getattr(values, "ndim", None) != 2:
        raise InputError(
            "`predictions` must have shape (n, classes), or (n,) for P(label = 1) of a "
            f"binary problem; got shape {tuple(np.shape(values))}"
        )
    if int(values.shape[0]) == 0:
        raise InputError("`predictions` has 0 rows; a report needs at least one example")
    checked_in_bfloat16 = False
    narrow = bfloat16_tensor(predictions)
    if narrow is not None and not binary and not renormalize:
        # host_array widened it to float32: its values are checked in bfloat16 here,
        # with bfloat16's tolerance, as negative_log_likelihood checks them
        check_values(narrow, name=checked_form, form=checked_form, first_row=0)
        checked_in_bfloat16 = True
    classes = int(values.shape[1])
    if len(names) != classes:
        raise InputError(f"`class_names` has {len(names)} names for {classes} classes")
    _check_distinct(names, "`class_names`" if class_names is not None else "`predictions`' columns")
    # e.g. sklearn's y beside classes_; a frame's columns must be the names given
    label_array = labels_by_name(label_array, given_names, None if binary else names_from_frame)
    spec = _calibration_options(
        binary=binary,
        preset=preset,
        explicit={
            "bins": bins,
            "binning": binning,
            "scope": scope,
            "norm": norm,
            "debias": debias,
            "closed": closed,
        },
    )
    n = int(label_array.shape[0])
    if ids is not None:
        ids = np.asarray(host_array(ids, name="ids")[0])
        if ids.shape != (n,):
            raise InputError(f"`ids` must have one value per row ({n}); got shape {ids.shape}")

    _check_per_class_bins(spec.bins, classes)
    state = cal.EvaluationState(
        classes,
        bins=spec.bins,
        binning=spec.binning,
        closed=spec.closed,
        scope=spec.scope,
        keep=top,
    )
    classwise = cal.EvaluationState(
        classes, bins=spec.bins, binning="uniform", closed=spec.closed, scope="class-wise", keep=0
    )
    # One curve for the diagram and the smooth ECE: the class-wise scope shows top-label.
    curve_scope = "positive-class" if spec.scope == "positive-class" else "top-label"
    rows = _first_pass(
        values,
        label_array,
        checked_form,
        (state, classwise),
        curve_scope,
        advance_to("evaluating", n),
        validate=not checked_in_bfloat16,
        binary=column,
    )
    scored = as_predictions(
        values, label_array, form=checked_form, validate=False, defer=True, binary=column
    )
    summary = _scored(
        state.compute(norm=spec.norm, debias=spec.estimator == "debiased"),
        scored,
        # the classes whose float64 surprisal total passed float64 (the state's means of
        # them come from its scaled sums: the report's, as negative_log_likelihood's)
        np.isposinf(state._class_surprisal),
    )
    # calibration_error's bins of these predictions: summed block by block over its
    # blocks (the top label in equal-width bins), else at once (block_bounds). The
    # report's batches are other blocks: the state's sums, and the rows' bins summed at
    # once, were up to 1e-14 relative off calibration_error's number past 200 000 rows
    bounds = block_bounds(scored, spec)
    if spec.scope == curve_scope:
        # the per-row confidences and hits are the scope's: calibration_error's number,
        # bit for bit, where the state's equal-mass bins join fine cells (another number
        # under the same definition) and a bin whose gap the rounding of its sum could
        # decide (a perfectly calibrated one: 6.4e-15, not 0) needs the rows' confidences
        summary = dataclasses.replace(
            summary, calibration=_binned_curve(rows.confidence, rows.hits, spec, bounds)
        )
    correct_per_class = rows.correct_per_class

    advance = advance_to("bootstrap interval", 1)
    if spec.scope == curve_scope:
        # bootstrap_interval's own path, from the values the first pass kept: its
        # interval, and calibration_error's value (the bins summed as it sums them)
        ece = binned_calibration_interval(
            rows.confidence,
            rows.hits,
            spec,
            confidence=_LEVEL,
            resamples=resamples,
            seed=seed,
            bounds=bounds,
        )
    else:  # class-wise: every class's column is resampled
        # bootstrap_interval's path, which bins the (n, classes) entries as
        # calibration_error does: summary.calibration is that result. It was the state's
        # bins, summed batch by batch (or a third pass where doubtful or quantile): up to
        # 1.8e-15 relative off to_dict()["ece"] (6 of 18 cases, issue 13)
        _, resamples, seed = check_resampling(_LEVEL, resamples, seed)
        ece, exact = classwise_calibration_interval(
            as_predictions(values, label_array, form=checked_form, validate=False),
            spec,
            confidence=_LEVEL,
            resamples=resamples,
            seed=seed,
        )
        summary = dataclasses.replace(summary, calibration=exact)
    advance(1)
    smooth = smooth_calibration_of(rows.confidence, rows.hits, scope=curve_scope)
    temperature = _temperature(values, label_array, checked_form, spec, seed, advance_to)
    held_out = None
    if temperature_from is not None:
        if temperature_source is not None and not isinstance(temperature_source, str):
            raise InputTypeError(
                f"`temperature_source` must be a str or None; got {temperature_source!r}"
            )
        held_out = held_out_temperature(
            temperature_from,
            values=values,
            labels=label_array,
            form=checked_form,
            binary=binary,
            renormalize=renormalize,
            given_names=given_names,
            spec=spec,
            resamples=resamples,
            seed=seed,
            confidence=_LEVEL,
            source=temperature_source,
        )
    diagram = _diagram(rows.confidence, rows.hits, spec, curve_scope)
    surprisal, brier_rows = rows.surprisal, rows.brier
    classwise_summary = classwise.compute()
    half = _half_surprisal(values, label_array, surprisal) if checked_form == "logits" else None
    payload = _payload(
        values=values,
        labels=label_array,
        form=checked_form,
        names=names,
        ids=ids,
        summary=summary,
        classwise=classwise_summary,
        correct_per_class=correct_per_class,
        ece=ece,
        spec=spec,
        preset=preset,
        smooth=smooth,
        diagram=diagram,
        temperature=temperature,
        binary=binary,
        correction=correction,
        source=source or _describe(predictions, n, classes),
        columns=columns,
        builtin_example=builtin_example,
        max_ece=max_ece,
        max_nll=max_nll,
        half=half,
    )
    payload["held_out_temperature"] = held_out
    return Report(
        payload,
        summary,
        diagram,
        smooth,
        surprisal,
        names,
        classwise_summary,
        brier_rows,
        # copies: the caller's arrays (a buffer refilled for the next data set) would
        # change under the report, and compare_reports' check of the same labels and ids
        # then passed on other examples
        np.array(label_array, dtype=np.intp),
        None if ids is None else ids.copy(),
        half,
    )


def _half_surprisal(values: Any, labels: Any, surprisal: Any) -> Any:
    """Half of every row's surprisal where a row of logits has one past float64 (None
    where none has): :math:`(m - z_y) / 2 + \\log \\sum_j e^{z_j - m} / 2` with
    :math:`m = \\max_j z_j`, finite for logits within float64 (a label of logit
    :math:`-\\infty`, probability 0, stays +inf).  ``[1e308, -1e308]`` of label 1 has the
    surprisal 2e308, +inf in float64: a comparison of it against a model of surprisal
    0.69 paired +inf with 0.69 and gave the difference -inf beside NLLs of 7.5e307 and
    0.69."""
    far = np.flatnonzero(np.isposinf(surprisal))
    if far.size == 0:
        return None
    half = np.asarray(surprisal, dtype=np.float64) / 2.0
    for row in far:
        z = np.asarray(values[row], dtype=np.float64)
        top, target = float(np.max(z)), float(z[labels[row]])
        if target == -math.inf:
            continue  # (a probability 0: the surprisal is +inf)
        with np.errstate(over="ignore"):  # (z - top below -1.8e308: exp of -inf is 0)
            spread = math.log(float(np.sum(np.exp(z - top))))
        half[row] = (top / 2.0 - target / 2.0) + spread / 2.0
    return half if np.isfinite(half[far]).any() else None  # (else every +inf is true)


def _scored(
    summary: cal.EvaluationSummary, predictions: Any, overflowed: Any
) -> cal.EvaluationSummary:
    """``summary`` with the NLL (nats, bits, perplexity), Brier and spherical scores of
    :func:`negative_log_likelihood`, :func:`brier_score` and :func:`spherical_score`,
    to the bit (``_scores.score_means``: one more pass, summing each block's scores as
    they do).  The state's sums, added block after block over the first pass's
    blocks, were 1 ulp off them (44 rows of 3 classes: Brier 0.812727272727273 where
    ``brier_score`` gave 0.8127272727272729)."""
    means = score_means(predictions, ("surprisal", "brier", "spherical"))
    nll = means["surprisal"]
    return dataclasses.replace(
        summary,
        per_class_nll=_per_class_nll(summary.per_class_nll, predictions, overflowed),
        nll=nll,
        nll_bits=nll / math.log(2),
        perplexity=perplexity_of(nll),
        brier=means["brier"],
        spherical=means["spherical"],
    )


def _per_class_nll(per_class: Any, predictions: Any, overflowed: Any) -> Any:
    """``per_class`` (the state's per-class NLL) with the mean of logits of each class
    whose surprisal total ``overflowed`` float64 formed again, from that class's rows,
    as the NLL is (:func:`score_means`, whose mean of logits more than 1.8e308 apart is
    formed from the logits' halves; the state's, from its scaled sums, may differ in
    the last bit).  A row ``[1e308, -1e308]`` of label 1 has a surprisal of 2e308,
    +inf in float64: beside a row of surprisal 0 of the same class, the class's NLL is
    1e308, which the report printed as inf under a finite NLL of 7.5e307.
    Probabilities and log-probabilities have no row past float64 (their +inf is a
    probability 0, kept)."""
    far = np.flatnonzero(overflowed)
    if predictions.form != "logits" or far.size == 0:
        return per_class
    labels = np.asarray(predictions.labels)
    chosen = predictions.selected  # (the report's are all rows: None)
    per_class = np.array(per_class, dtype=np.float64)
    for k in far:
        rows = np.flatnonzero(labels == k)
        values = predictions.values[rows if chosen is None else chosen[rows]]
        per_class[k] = score_means(
            as_predictions(values, labels[rows], form="logits", validate=False),
            ("surprisal",),
        )["surprisal"]
    return per_class


@dataclass(frozen=True)
class _Rows:
    """What the first pass keeps of every row (float64, shape ``(n,)``) and the correct
    predictions per class."""

    surprisal: Any
    brier: Any
    confidence: Any
    hits: Any
    correct_per_class: Any


def _first_pass(
    values: Any,
    labels: Any,
    form: str,
    states: tuple[cal.EvaluationState, ...],
    curve_scope: str,
    advance: Callable[[int], None],
    *,
    validate: bool = True,
    binary: Any = None,
) -> _Rows:
    """One pass over the rows: each block is validated, turned into probabilities once
    (one log-sum-exp per row) and summarised once; every state adds those summaries, and
    the per-row surprisal, Brier score, confidence and hit are kept for the bootstrap,
    the smooth calibration error, the diagram and paired comparisons.  ``binary``: a
    1-D binary prediction's :math:`P(y = 1)` (float64) of the rows :math:`[1 - p, p]`
    of ``values``, whose scores are formed from it (``Predictions.binary``)."""
    classes = int(values.shape[1])
    n = int(labels.shape[0])
    # the per-row columns written in place, block by block (a list of the blocks' parts
    # joined at the end held every row twice: 64 MB more, and 0.4 s of CPU, at 2 * 10^6 rows)
    kept: list[Any] = []
    at = 0
    correct = np.zeros(classes, dtype=np.int64)
    for start, batch, batch_labels in _batches(values, labels):
        # the caller's dtype sets the validation tolerance, as in EvaluationState.update
        # (validate=False: the values were checked already; the labels still are)
        predictions = as_predictions(
            batch,
            batch_labels,
            form=form,
            first_row=start,
            validate=validate,
            binary=None if binary is None else binary[start : start + batch.shape[0]],
        )
        with adding_batch(states):  # each state's sums allocated once a batch, not a block
            for block, rows in predictions.map_blocks(lambda b: (b, summarize_block(b))):
                for state in states:
                    add_summarized_block(state, block, rows, start, predictions)
                hit = rows.predicted == rows.labels
                correct += np.bincount(rows.labels[hit], minlength=classes)
                if curve_scope == "positive-class":
                    columns = (rows.surprisal, rows.brier, block.probs[:, 1], rows.labels == 1)
                else:
                    columns = (rows.surprisal, rows.brier, rows.confidence, hit)
                if not kept:  # (each column's dtype, the hits' as float64)
                    dtypes = [np.float64 if c.dtype == bool else c.dtype for c in columns]
                    kept = [np.empty(n, dtype) for dtype in dtypes]
                size = int(rows.labels.shape[0])
                for out, column in zip(kept, columns, strict=True):
                    out[at : at + size] = column
                at += size
        for state in states:
            state.n += predictions.n
        advance(int(batch_labels.shape[0]))
    surprisal, brier, confidence, hits = kept if kept else [np.zeros(0)] * 4
    return _Rows(surprisal, brier, confidence, hits, correct)


def _diagram(
    confidence: Any, hits: Any, spec: CalibrationSpec, scope: str
) -> cal.ReliabilityDiagram:
    """``reliability_diagram`` of the report's bins from the kept confidences and hits."""
    curve = check_spec(
        bins=spec.bins,
        binning=spec.binning,
        norm="l1",
        scope=scope,
        debias=False,
        closed=spec.closed,
    )
    return diagram_of(_binned_curve(confidence, hits, curve), _LEVEL, confidence)


def _binned_curve(
    confidence: Any, hits: Any, spec: CalibrationSpec, bounds: list[int] | None = None
) -> CalibrationError:
    """The calibration error of ``spec`` of one curve's per-row confidences and hits, as
    :func:`calibration_error` bins them (equal-mass edges at the exact quantiles; the
    bins :func:`binned_calibration_interval` gives the report's value from), its bins
    summed block by block between ``bounds`` (:func:`error_of_rows`) where given."""
    edges = edges_for(confidence, spec)
    value, stats, _ = error_of_rows(confidence, hits, edges, spec, bounds)
    return CalibrationError(value, spec, int(confidence.shape[0]), edges, stats)


def _describe(predictions: Any, n: int, classes: int) -> str:
    kind = type(predictions)
    return f"{kind.__module__.split('.')[0]}.{kind.__name__} ({n} x {classes})"


def _temperature(
    values: Any,
    labels: Any,
    form: str,
    spec: CalibrationSpec,
    seed: int,
    progress: Progress,
) -> dict[str, Any]:
    """The NLL-optimal temperature on the whole input, the metrics at it, and the gap."""
    advance = progress("temperature", 3)
    # one set of predictions for the fit and the cross-fitting, which share the rows'
    # numbers at T = 1 and at the bounds (RowMemo: the same bits, fewer passes)
    predictions = as_predictions(values, labels, form=form, validate=False)
    memo = RowMemo.for_fits(predictions, _BOUNDS)
    try:
        scaler = fit_scaler(
            cal.TemperatureScaling(bounds=_BOUNDS, guard=False), predictions, _BOUNDS, memo
        )
    except InputError as error:  # a label with probability 0: NLL is inf at every T
        # the note says why the temperature fields are null (the error names the row)
        return {
            "value": None,
            "nll_nats": None,
            "ece": None,
            "gap": None,
            "at_bound": None,
            "note": f"temperature and recalibration gap not reported: {error}",
        }
    advance(1)
    ece = _ece_at_temperature(values, labels, form, spec, scaler)
    advance(1)
    # recalibration_gap without its redundant pass (the label check)
    gap, note = None, None  # too few rows to cross-fit: reported as null, not an error
    if labels.shape[0] >= _FOLDS:
        fit = cross_fitted_nll(
            predictions, folds=_FOLDS, seed=seed, bounds=_BOUNDS, xtol=_XTOL, memo=memo, gap=True
        )
        gap = None if fit.at_bound else fit.gap
        note = _gap_note(fit.separated, fit.flattened) if fit.at_bound else None
    advance(1)
    return {
        "value": scaler.temperature_,
        "nll_nats": scaler.nll_after_,  # the fit's NLL at its temperature
        "ece": ece,
        "gap": gap,
        "at_bound": scaler.at_bound_,
        "note": note,
    }


def _gap_note(separated: bool, flattened: bool) -> str:
    """Why a cross-fitted gap whose fold fit is at a bound is reported as null: a fold
    without errors (the fit at the smallest temperature), predictions that tell next to
    nothing about the labels (at the largest, whatever the errors: the note said "too
    few errors" of 295 misses in 400 rows), or, at the smallest with errors in every fold,
    predictions far less confident than the labels warrant (or few errors)."""
    bounds = list(_BOUNDS)
    if flattened and not separated:
        return (
            "recalibration gap not reported: the predictions tell next to nothing about the "
            f"labels (a training fold's NLL keeps falling as T grows to the bound {bounds[1]}, "
            f"towards uniform predictions; the gap would measure the bounds {bounds}, not "
            "the model)"
        )
    if separated:
        return (
            "recalibration gap not reported: too few errors to cross-fit a temperature (a "
            "training fold has every label top-ranked, so its NLL keeps falling as T -> 0; "
            f"the gap would measure the bounds {bounds}, not the model)"
        )
    # the smallest temperature with errors in every fold: an under-confident model (logits
    # scaled by 0.01, 126 misses in 400 rows) was said to have "too few errors"
    return (
        "recalibration gap not reported: a training fold's NLL-optimal temperature is at a "
        f"bound (its NLL keeps falling as T shrinks to the bound {bounds[0]}: predictions "
        "much less confident than the labels warrant, or too few errors; the gap would "
        f"measure the bounds {bounds}, not the model)"
    )


def _ece_at_temperature(
    values: Any, labels: Any, form: str, spec: CalibrationSpec, scaler: Any
) -> float:
    r"""The report's calibration error of ``softmax(z / T)``.

    For a one-curve scope only the curve's confidence changes with :math:`T` (the
    predicted class does not), so one pass computes it from the log-scores :math:`z`
    with :math:`s = z - \max_k z_k`: :math:`1 / \sum_k e^{s_k / T}` (top label) or
    :math:`e^{s_1 / T} / \sum_k e^{s_k / T}` (class 1), without the full softmax, and
    bins it as the report's calibration error before scaling is binned
    (:func:`_binned_curve`: equal-mass bins at the exact quantiles of the scaled
    confidences).  The class-wise scope rescales every column: streamed for equal-width
    bins (exact), all at once for equal-mass bins, whose edges are each class's exact
    quantiles as :func:`calibration_error` takes them (an :class:`EvaluationState`'s
    equal-mass bins join fine cells instead: another number, 0.0601 where the
    definition gives 0.0652 on 500 binary rows, 15 bins).
    """
    temperature = scaler.temperature_
    debias = spec.estimator == "debiased"

    def state_of(classes: int, scope: str) -> cal.EvaluationState:
        return cal.EvaluationState(
            classes, bins=spec.bins, binning=spec.binning, closed=spec.closed, scope=scope, keep=0
        )

    if spec.scope == "class-wise" and spec.binning == "quantile":
        scaled = scaler.transform(values, form=form)
        return calibration_error_of(
            as_predictions(scaled, labels, form="probs", validate=False), spec
        ).value
    if spec.scope == "class-wise":
        state = state_of(int(values.shape[1]), spec.scope)
        for _, batch, batch_labels in _batches(values, labels):
            state.update(scaler.transform(batch, form=form), batch_labels, validate=False)
        return state.compute(norm=spec.norm, debias=debias).calibration.value
    positive = spec.scope == "positive-class"

    def curve(_: int, block: Any, block_labels: Any) -> tuple[Any, Any]:
        scores = log_scores(block, form)
        top = np.argmax(scores, axis=1)
        # in place where the block is this pass's own float64 copy (never the caller's)
        mine = scores.flags.owndata and scores.flags.writeable
        with np.errstate(over="ignore"):  # beyond the range below the top: -inf, exp 0
            shifted = np.subtract(
                scores, scores[np.arange(top.shape[0]), top][:, None], out=scores if mine else None
            )
        np.divide(shifted, temperature, out=shifted)
        np.exp(shifted, out=shifted)
        total = shifted.sum(axis=1)
        if positive:
            return shifted[:, 1] / total, block_labels == 1
        return 1.0 / total, top == block_labels

    predictions = as_predictions(values, labels, form=form, validate=False)
    parts = list(predictions.map_raw(curve))
    confidence = np.concatenate([part[0] for part in parts])
    hits = np.concatenate([part[1] for part in parts]).astype(np.float64)
    return _binned_curve(confidence, hits, spec).value


def _bins_table(diagram: cal.ReliabilityDiagram) -> list[dict[str, Any]]:
    """The JSON's ``reliability_bins``: the bins holding an example, in order, each with
    its ``index`` (0 to ``bins - 1``) and edges, so that the table has at most as many
    entries as rows whatever ``bins`` is (scikit-learn's ``calibration_curve`` drops
    empty bins too); an empty bin's count is 0 and its other numbers undefined."""
    return [
        {
            "index": int(b),
            "lower": float(diagram.lower[b]),
            "upper": float(diagram.upper[b]),
            "count": int(diagram.count[b]),
            "confidence": _number(diagram.confidence[b]),
            "accuracy": _number(diagram.accuracy[b]),
            "ci_low": _number(diagram.accuracy_low[b]),
            "ci_high": _number(diagram.accuracy_high[b]),
        }
        for b in np.flatnonzero(diagram.count)
    ]


def _check_per_class_bins(bins: int, classes: int) -> None:
    """Refuse ``bins`` whose per-class (one-vs-rest) calibration, which every report
    gives, would keep more than ``MAX_CLASS_BINS`` bins of all classes together: the
    state's own error blamed "the class-wise scope" and advised "the top-label scope"
    to a top-label report (20 classes of 2**20 bins)."""
    from ..calibration._binning import MAX_CLASS_BINS

    if bins * classes > MAX_CLASS_BINS:
        raise InputError(
            f"`bins` must be at most {MAX_CLASS_BINS // classes} with {classes} classes: the "
            f"report's per-class (one-vs-rest) calibration keeps {bins} bins for each class, "
            f"{bins * classes} in all, more than {MAX_CLASS_BINS} (2**24); got {bins}"
        )


def first_repeat(names: list[str]) -> tuple[int, int] | None:
    """The positions ``(first, again)`` of the first name given twice, or None."""
    first: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in first:
            return first[name], index
        first[name] = index
    return None


def _check_distinct(names: list[str], what: str) -> None:
    """Refuse a class name given twice: a string label naming it would be read as one of
    the two classes by guess (the last: an NLL of 1.1473 where the first gives 0.7419),
    and the per-class rows and a comparison could not tell the two apart (``crossent
    report`` refuses a repeated CSV column the same way)."""
    repeat = first_repeat(names)
    if repeat is not None:
        first, k = repeat
        raise InputError(
            f"{what} name class {first} and class {k} alike ({names[k]!r}): each "
            "class needs its own name, or a label naming it would be read as either"
        )


def _threshold(value: float | None, name: str) -> float | None:
    """A gate's threshold: None, or a finite real number >= 0 (the JSON report holds it,
    every comparison with NaN fails, and the calibration error and the NLL are never
    negative, so a negative threshold would fail every report)."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.integer | np.floating)
        or not math.isfinite(value)
    ):
        raise InputError(f"`{name}` must be a finite number or None; got {value!r}")
    if value < 0:
        raise InputError(
            f"`{name}` must be >= 0 (the calibration error and the NLL are never negative, "
            f"so every report would fail the gate); got {value!r}"
        )
    return float(value)


def _per_class_definition(spec: CalibrationSpec) -> str:
    """In words: each class's calibration error, as ``per_class[k]["calibration_error"]``
    holds it (the report's norm and estimator; always equal-width bins)."""
    bins = dataclasses.replace(spec, binning="uniform").bins_in_words
    return (
        f"{spec.norm.upper()} calibration error of class k: p_k against [label = k], "
        f"{bins}, {spec.estimator} estimator"
    )


def _gates(max_ece: float | None, max_nll: float | None, ece: float, nll: float) -> list[Any]:
    gates = []
    if max_ece is not None:
        gates.append(
            {"name": "max_ece", "threshold": max_ece, "value": ece, "pass": bool(ece <= max_ece)}
        )
    if max_nll is not None:
        gates.append(
            {
                "name": "max_nll",
                "threshold": max_nll,
                "value": _number(nll),
                "pass": bool(nll <= max_nll),
            }
        )
    return gates


def _surprisal_rank(entry: dict[str, Any]) -> tuple[int, float, int]:
    """A most surprising row's place: a surprisal +inf (a probability 0) first, then
    those past float64 by their halves, then the finite ones by value (each above every
    finite one), and the lower row first among equals."""
    half = entry.get("surprisal_half_nats")
    if half is not None:
        return 1, -half, entry["index"]
    value = _text.from_json_number(entry["surprisal_nats"])
    if value is None:  # (not kept: a NaN takes no place)
        return 3, 0.0, entry["index"]
    return (0, 0.0, entry["index"]) if value == math.inf else (2, -value, entry["index"])


def _id_value(value: Any) -> Any:
    """A row id as a JSON value: a string, integer or finite float as it is, a missing one
    (None, NaN, NaT) as null, and anything else (a date, bytes, a decimal, a list, an
    infinity: what JSON cannot hold) as its text, so that every id column gives a report.

    A NumPy datetime or timedelta is its text too, since ``item()`` of a nanosecond one is
    a bare integer."""
    if isinstance(value, np.datetime64 | np.timedelta64):
        return None if np.isnat(value) else str(value)
    if isinstance(value, np.ndarray):
        value = value.tolist() if value.ndim else value.item()
    elif isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, str | int):  # bool is an int
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value if math.isfinite(value) else str(value)
    return str(value)


_ECE_INTERVAL = "percentile bootstrap"
"""How ``ece``'s ``ci_low`` and ``ci_high`` are formed: the ``(1 - confidence) / 2`` and
``(1 + confidence) / 2`` quantiles of the error over ``resamples`` resamples of the rows
(:func:`~crossent.calibration.bootstrap_interval`; Efron and Tibshirani 1993, ch. 13)."""

_BIN_INTERVAL = (
    "Jeffreys interval of each bin's accuracy: the Beta(h + 1/2, n - h + 1/2) quantiles "
    "of a bin of n examples with h hits (the lower end 0 at h = 0, the upper 1 at h = n)"
)
"""What ``reliability_bins``' ``ci_low`` and ``ci_high`` are (:func:`reliability_diagram`)."""

#: What a one-column binary input holds, by its form (the report's note; a column of
#: log-probabilities is refused before).
_BINARY_GIVEN = {"probs": "P(label = 1)", "logits": "the log-odds of class 1"}


def _payload(
    *,
    values: Any,
    labels: Any,
    form: str,
    names: list[str],
    ids: Any,
    summary: cal.EvaluationSummary,
    classwise: cal.EvaluationSummary,
    correct_per_class: Any,
    ece: cal.Interval,
    spec: CalibrationSpec,
    preset: str | None,
    smooth: SmoothCalibrationError,
    diagram: cal.ReliabilityDiagram,
    temperature: dict[str, Any],
    binary: bool,
    correction: float | None,
    source: str,
    columns: Mapping[str, Any] | None,
    builtin_example: bool,
    max_ece: float | None,
    max_nll: float | None,
    half: Any = None,
) -> dict[str, Any]:
    from .. import __version__
    from ..calibration._binning import calibration_values

    most_surprising = []
    for row, value in summary.most_surprising:
        scores = np.asarray(values[row], dtype=np.float64)
        entry: dict[str, Any] = {
            "index": int(row),
            "surprisal_nats": _number(value),
            "label": int(labels[row]),
            "predicted": int(np.argmax(scores)),
        }
        if value == math.inf and half is not None and math.isfinite(half[row]):
            # a surprisal past float64 (logits more than 1.8e308 apart): "inf" in JSON,
            # its half kept, printed doubled (2.0000e+308, not inf; _text.surprisal_text)
            entry["surprisal_half_nats"] = float(half[row])
        if ids is not None:
            entry["id"] = _id_value(ids[row])
        most_surprising.append(entry)
    if half is not None:
        # the rows past float64 (all +inf, ranked by row) in the order of their halves,
        # after any of surprisal +inf indeed (a probability 0): 3e308 above 2e308
        most_surprising.sort(key=_surprisal_rank)
    stats = classwise.calibration.statistics
    debias = spec.estimator == "debiased"
    class_errors = calibration_values(stats, norm=spec.norm, debias=debias).tolist()
    per_class = []
    for k in range(len(names)):
        count = int(summary.per_class_count[k])
        per_class.append(
            {
                "class": k,
                "name": names[k],
                "count": count,
                "nll_nats": _number(summary.per_class_nll[k]) if count else None,
                "accuracy": float(correct_per_class[k]) / count if count else None,
                "calibration_error": class_errors[k],
            }
        )
    notes = []
    if binary:
        given = _BINARY_GIVEN[form]
        notes.append(
            f"binary predictions given as {given}: calibration uses the positive-class "
            "scope (p_1 against [label = 1])"
        )
    if correction is not None:
        notes.append(
            f"rows renormalised to sum to 1 (largest deviation corrected {correction:.3g})"
        )
    if temperature.get("note"):  # why the temperature or its gap is null
        notes.append(temperature["note"])
    return {
        "format": FORMAT,
        "crossent_version": __version__,
        "source": source,
        "builtin_example": builtin_example,
        "form": form,
        "n": summary.n,
        "classes": summary.classes,
        "accuracy": summary.accuracy,
        "nll_nats": _number(summary.nll),
        "nll_bits": _number(summary.nll_bits),
        "perplexity": _number(summary.perplexity),
        "brier": summary.brier,
        "spherical": summary.spherical,
        "mean_entropy_nats": summary.mean_entropy,
        "ece": {
            "value": ece.value,
            "ci_low": ece.low,
            "ci_high": ece.high,
            "confidence": ece.confidence,
            "interval": _ECE_INTERVAL,
            "resamples": ece.resamples,
            "seed": ece.seed,
            "definition": spec.definition,
            "scope": spec.scope,
            "norm": spec.norm,
            "binning": spec.binning,
            "closed": spec.closed,
            "estimator": spec.estimator,
            "preset": preset,
        },
        "smooth_ece": {
            "value": smooth.value,
            "bandwidth": smooth.bandwidth,
            "scope": smooth.scope,
            "definition": smooth.definition,
        },
        "temperature": {
            "value": temperature["value"],
            "nll_nats": _number(temperature["nll_nats"]),
            "ece": temperature["ece"],
            "at_bound": temperature.get("at_bound"),
            "bounds": list(_BOUNDS),
        },
        "recalibration_gap_nats": _number(temperature["gap"]),
        "most_surprising": most_surprising,
        "per_class": per_class,
        "per_class_calibration": {
            "norm": spec.norm,
            "debias": debias,
            "bins": spec.bins,
            "binning": "uniform",
            "closed": spec.closed,
            "definition": _per_class_definition(spec),
        },
        "bins": spec.bins,
        "reliability_bins": _bins_table(diagram),
        # the bins' curve: top-label also for a class-wise error (one curve a class)
        "reliability_scope": diagram.calibration.spec.scope,
        "reliability_interval": {
            "method": "jeffreys",
            "confidence": diagram.confidence_level,
            "definition": _BIN_INTERVAL,
        },
        "binary": binary,
        "renormalized": None if correction is None else {"max_deviation": correction},
        "columns": dict(columns) if columns is not None else None,
        "notes": notes,
        "gates": _gates(max_ece, max_nll, ece.value, summary.nll),
    }
