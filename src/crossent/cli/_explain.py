"""``crossent explain``: step-by-step tables for learners, every total computed by crossent.

Modes (the flags of one mode cannot be mixed with another's; ``--bits`` works in all):

* ``--p P --q Q``: per outcome P, Q, the surprisal -log Q and the contribution
  -P log Q; then H(P), H(P, Q) and D(P||Q), with the identity H(P, Q) = H(P) + D(P||Q)
  checked.  ``--temperature T`` reshapes Q to softmax(log Q / T) and recomputes the
  cross-entropy; ``--kl`` shows D(P||Q) and D(Q||P) term by term (the asymmetry).
* ``--logits Z --label Y`` (or ``--p`` as the target distribution): the softmax, the
  loss and its gradient (p - y) / T, in nats or, with ``--bits``, divided by ln 2.
  ``--temperature T`` divides the logits by T (after shifting them by their maximum,
  so huge logits with T < 1 do not overflow); ``--smoothing EPS`` mixes the target
  with the uniform distribution and shows the loss's new floor; ``--hinge`` sets the
  multi-class hinge loss beside the cross-entropy on the same logits.
* ``--binary --y Y --p P``: binary cross-entropy, term by term, and its gradient in the
  logit, p - y (divided by ln 2 in bits).

Needs only the base install: tables are drawn with rich when it is installed, as
plain text otherwise.  Errors name the command-line flag (``--y``), never the library
argument behind it.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

import numpy as np

import crossent

from .._reprs import FIXED_LIMIT as _FIXED_LIMIT
from ._messages import NORMALISE_HINT
from ._numbers import ascii_digits, decimal
from ._pipe import closed_pipe_is_quiet
from ._width import WIDTH as _WIDTH
from ._width import fit_width

__all__ = [
    "TABLE_ROWS",
    "Output",
    "class_id",
    "explain_binary",
    "explain_distributions",
    "explain_entropy",
    "explain_hinge",
    "explain_kl",
    "explain_logits",
    "flags",
    "fmt",
    "parse_number",
    "parse_vector",
    "run_explain",
]

_LN2 = math.log(2.0)

# Which flags each mode reads; any other flag given is a usage error naming it.
_MODE_FLAGS = {
    "--binary": ("--binary", "--y", "--p", "--bits"),
    "--logits": ("--logits", "--label", "--p", "--temperature", "--smoothing", "--bits", "--all"),
    "--hinge": ("--logits", "--label", "--hinge", "--bits", "--all"),
    "--p/--q": ("--p", "--q", "--temperature", "--kl", "--bits", "--all"),
}


# Output: rich when installed, else aligned plain text ---------------------------------------


#: Rows of one table shown by default; ``--all`` shows every one.
TABLE_ROWS = 20


class Output:
    """Lines and tables on ``stream``: through rich when it is installed, else plain text.

    ``rows``: at most that many rows of a long table (None: every row), the ones its
    caller orders first, then a line that counts the others (:meth:`table`)."""

    def __init__(self, stream: TextIO, *, rows: int | None = TABLE_ROWS) -> None:
        self._stream = stream
        self._rows = rows
        try:
            from rich.console import Console
        except ImportError:
            self._console: Any = None
        else:
            # _WIDTH, not the terminal's or $COLUMNS: rich fits a table to the console's
            # width by cutting its cells ("0.65…", "-0.…"; empty at COLUMNS=20), and
            # printed nothing at all at COLUMNS=0; the prose is filled to _WIDTH anyway.
            self._console = Console(
                file=stream, highlight=False, markup=False, soft_wrap=True, width=_WIDTH
            )
            # rich's own handler exits with status 1; leave the closed pipe to the caller.
            self._console.on_broken_pipe = _raise_broken_pipe

    def line(self, text: str = "") -> None:
        text = fit_width(text)
        if self._console is not None:
            self._console.print(text)
        else:
            self._stream.write(text + "\n")

    def table(
        self,
        title: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[str]],
        *,
        order: Any = None,
        rest: Any = None,
    ) -> None:
        """``rows`` under ``columns``. Past :attr:`_rows` rows with an ``order`` (row
        indices, the most telling first), only the first of that order are shown, in the
        table's order, then "... N more rows not shown" with ``rest(hidden indices)``'s
        words (what the hidden rows add up to); the totals printed after a table are
        the callers', over every row."""
        hidden = None
        if order is not None and self._rows is not None and len(rows) > self._rows:
            picked = np.sort(np.asarray(order)[: self._rows])
            hidden = np.setdiff1d(np.arange(len(rows)), picked)
            rows = [rows[k] for k in picked]
        self._draw(title, columns, rows)
        if hidden is not None:
            more = "" if rest is None else f", {rest(hidden)}"
            self.line(f"... {hidden.size} more rows not shown{more} (--all shows every row)")

    def _draw(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        if self._console is not None:
            from rich.table import Table

            table = Table(title=title)
            for column in columns:
                table.add_column(column, justify="right")
            for row in rows:
                table.add_row(*row)
            # wide enough for every cell whole: a cell past the width would be cut
            self._console.width = max(_WIDTH, _table_width(columns, rows))
            self._console.print(table)
            self._console.width = _WIDTH
            return
        cells = [list(columns), *[list(row) for row in rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
        self._stream.write(title + "\n")
        for n, row in enumerate(cells):
            self._stream.write("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
            self._stream.write("\n")
            if n == 0:
                self._stream.write("  ".join("-" * w for w in widths) + "\n")


def _table_width(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    """The columns rich's default table takes with no cell cut: each column its widest
    cell plus a space either side, and a border before, between and after them."""
    widest = [max(len(cell) for cell in column) for column in zip(columns, *rows, strict=True)]
    return sum(width + 3 for width in widest) + 1


def _g(value: float) -> str:
    """``value`` as ``:g`` writes it (``0.1``, ``1e-07``) where that reads back as
    ``value``, else its shortest exact form: ``:g`` keeps six digits, so ``--smoothing
    1.0000001`` was refused as "got 1" and ``--temperature 1.0000001`` titled "T = 1",
    and ``--binary --p 0.9999999999999999`` printed as "p = 1" beside a loss of 1.1e-16."""
    text = f"{value:g}"
    return text if float(text) == value else repr(float(value))


def _raise_broken_pipe() -> None:
    raise BrokenPipeError


def fmt(value: float, digits: int = 6, *, sign: bool = False) -> str:
    """``value`` with ``digits`` decimals; never "-0.000000" (a zero has no sign); from
    ``_reprs.FIXED_LIMIT`` (1e15, the report's too) on in scientific notation
    (``1.000000e+308``): fixed notation wrote a loss of 1e308 with all its 309 digits.
    A value that is not 0 but that the decimals would round to 0 is in scientific
    notation too (``3.720076e-44``): the loss of ``--logits 100,0 --label 0`` was
    printed as 0.000000 beside a table that showed 3.72e-44 and a note that said it
    stays above 0."""
    number = float(value)
    kind = "e" if math.isfinite(number) and abs(number) >= _FIXED_LIMIT else "f"
    text = f"{number:{'+' if sign else ''}.{digits}{kind}}"
    if text.lstrip("+-").strip("0.") == "":  # rounds to zero
        if number != 0:
            return f"{number:{'+' if sign else ''}.{digits}e}"
        text = ("+" if sign else "") + text.lstrip("+-")
    return text


# Input: parsing, and errors that name the flag ----------------------------------------------


def parse_vector(text: str, *, name: str) -> Any:
    """``"0.7,0.2,0.1"`` as a float array; a clear error for anything else."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise crossent.InputError(
            f"`{name}` must be comma-separated numbers such as 0.7,0.2,0.1; got {text!r}"
        ) from None
    try:
        values = [decimal(part) for part in text.split(",")]  # 1e-400 was 0
    except ValueError as exc:
        raise crossent.InputError(f"`{name}`: {exc}") from None
    return np.array(values)


def class_id(text: str) -> int:
    """``--label``: the true class's index.  A comma-separated one-hot vector (``0,1,0``)
    is refused with the index it stands for (and ``--p`` for it as a distribution);
    anything else that is not an integer gets argparse's own wording."""
    try:
        digits = ascii_digits(text)  # a digit of another script: its own message
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    try:
        return int(digits)
    except ValueError:
        parts = text.split(",")
        if len(parts) > 1 and all(part.strip() in ("0", "1") for part in parts):
            ones = [k for k, part in enumerate(parts) if part.strip() == "1"]
            if len(ones) == 1:
                raise argparse.ArgumentTypeError(
                    f"takes the true class's index, one integer; got the one-hot {text!r}: "
                    f"pass --label {ones[0]} (or the same target as a distribution, "
                    f"--p {text})"
                ) from None
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None


def parse_number(text: str, *, name: str, mode: str) -> float:
    """One number: extra values are an error, not silently dropped."""
    values = parse_vector(text, name=name)
    if values.size != 1:
        raise crossent.InputError(
            f"`{name}` takes one number with {mode}; got {values.size} values ({text})"
        )
    return float(values[0])


_FORM_HINT = re.compile(
    r"If these are logits or log-probabilities, say so: (\w*)form='logits'[^.;]*"
)
"""The library's fix for logits given as probabilities, an argument explain has not."""


def _form_flag(found: re.Match[str]) -> str:
    """The fix in explain's flags: the prediction's logits go to ``--logits``; the
    target ``--p`` is always probabilities."""
    if found[1] == "p_":
        return "--p, the target, takes probabilities; logits belong to the prediction: --logits"
    return "If these are logits, pass them as --logits (with --label or --p, the target)"


def _translate(message: str, flags: dict[str, str]) -> str:
    """A library message in the command line's words: flags, not argument names."""
    message = _FORM_HINT.sub(_form_flag, message)
    message = re.sub(r" along `?axis`?(?: -?\d+)?", "", message)
    message = message.replace(" at index ()", "")
    # the library's fix is Python and the report's flag; here it is the numbers typed
    message = NORMALISE_HINT.sub("give numbers that sum to 1 (each divided by their sum)", message)
    message = re.sub(r",? or pass validate=False", "", message)
    return re.sub(r"`(\w+)`", lambda m: f"`{flags.get(m[1], m[1])}`", message)


@contextlib.contextmanager
def flags(**names: str) -> Iterator[None]:
    """Re-raise the library's input errors with its argument names replaced by ``names``."""
    try:
        yield
    except crossent.CrossentError as exc:
        raise crossent.InputError(_translate(str(exc), names)) from None


# The modes -------------------------------------------------------------------------------------


def _unit(bits: bool) -> tuple[float | None, str]:
    return (2, "bits") if bits else (None, "nats")


def _log(bits: bool) -> str:
    """The logarithm as the table computes it: ``log2`` in bits, ``log`` (natural) in nats."""
    return "log2" if bits else "log"


def _check_identity(out: Output, h_pq: float, h_p: float, kl: float, unit: str) -> None:
    holds = math.isclose(h_pq, h_p + kl, rel_tol=1e-12, abs_tol=1e-15) or (
        math.isinf(h_pq) and math.isinf(kl)
    )
    mark = "holds" if holds else "FAILS"
    out.line(f"H(P, Q) = H(P) + D(P||Q):  {fmt(h_pq)} = {fmt(h_p)} + {fmt(kl)} {unit}  ({mark})")


def explain_distributions(
    out: Output, p: Any, q: Any, *, bits: bool, temperature: float | None
) -> None:
    """H(P), H(P, Q) and D(P||Q) outcome by outcome; ``temperature`` reshapes Q."""
    from scipy import special  # here: every crossent command imports this module

    base, unit = _unit(bits)
    with flags(p="--p", q="--q"):
        h_pq = float(crossent.cross_entropy(p, q, base=base))  # validates both
    h_p = float(crossent.entropy(p, base=base))
    kl = float(crossent.kl_divergence(p, q, base=base))
    surprisal = np.asarray(crossent.surprisal(q, base=base), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        parts = np.where(p == 0, 0.0, p * surprisal)  # 0 log 0 = 0
    rows = [
        [str(k), _g(pk), _g(qk), fmt(sk, 4), fmt(ck, 4)]
        for k, (pk, qk, sk, ck) in enumerate(zip(p, q, surprisal, parts, strict=True))
    ]
    log = _log(bits)
    out.table(
        f"cross-entropy H(P, Q) in {unit}, outcome by outcome",
        ("outcome", "P", "Q", f"surprisal -{log} Q", f"contribution -P {log} Q"),
        rows,
        order=np.lexsort((-p, -q, -parts)),  # the largest contributions, then Q's mass
        rest=lambda h: f"contributing {fmt(np.sum(parts[h]), 4)} {unit} to H(P, Q)",
    )
    out.line(f"H(P)     = {fmt(h_p)} {unit}   (entropy: the unavoidable surprise)")
    out.line(f"H(P, Q)  = {fmt(h_pq)} {unit}   (cross-entropy: the sum of contributions)")
    out.line(f"D(P||Q)  = {fmt(kl)} {unit}   (KL divergence: the cost of believing Q)")
    _check_identity(out, h_pq, h_p, kl, unit)
    if temperature is None:
        return
    with np.errstate(divide="ignore"):
        log_q = np.log(q)  # -inf where q = 0: a valid logit
    scaled = _shift_and_scale(log_q, temperature)  # log_q / T overflows for tiny T
    reshaped = special.softmax(scaled)
    _temperature_table(out, q, reshaped, temperature, "Q")
    h_pq_t = float(crossent.cross_entropy(p, scaled, q_form="logits", base=base))
    kl_t = float(crossent.kl_divergence(p, scaled, q_form="logits", base=base))
    out.line(f"H(P, Q_T) = {fmt(h_pq_t)} {unit}   (cross-entropy against the reshaped Q)")
    out.line(f"D(P||Q_T) = {fmt(kl_t)} {unit}   (before: {fmt(kl)} {unit})")


def explain_entropy(out: Output, p: Any, *, bits: bool) -> None:
    """H(P) alone, outcome by outcome: the surprisal of each outcome weighted by its
    probability (the seeds' first two steps, before any model Q), beside its maximum
    log K and the perplexity b^H(P)."""
    base, unit = _unit(bits)
    if p.size == 1 and 0 <= p[0] < 1:  # the seeds' surprise(0.125): one event, not P
        event, rest = _g(float(p[0])), _g(float(1 - p[0]))
        raise crossent.InputError(
            f"--p alone is a distribution (its entropy); for the surprisal of one event "
            f"of probability {event}, give it with the rest: --p {event},{rest}"
        )
    with flags(p="--p"):
        h_p = float(crossent.entropy(p, base=base))  # validates P
    surprisal = np.asarray(crossent.surprisal(p, base=base), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        parts = np.where(p == 0, 0.0, p * surprisal)  # 0 log 0 = 0
    rows = [
        [str(k), _g(pk), fmt(sk, 4), fmt(ck, 4)]
        for k, (pk, sk, ck) in enumerate(zip(p, surprisal, parts, strict=True))
    ]
    log = _log(bits)
    out.table(
        f"entropy H(P) in {unit}, outcome by outcome",
        ("outcome", "P", f"surprisal -{log} P", f"contribution -P {log} P"),
        rows,
        order=np.lexsort((-p, -parts)),  # the largest contributions, then P's mass
        rest=lambda h: f"contributing {fmt(np.sum(parts[h]), 4)} {unit} to H(P)",
    )
    size = int(p.size)
    most = math.log2(size) if bits else math.log(size)
    out.line(f"H(P) = {fmt(h_p)} {unit}   (entropy: the average surprise, weighted by P)")
    if np.all(p == p[0]):  # exactly uniform: the gap would be rounding, not information
        where = "this P is uniform, so H(P) is that maximum"
    else:
        where = f"this P is {fmt(most - h_p)} {unit} below it"
    out.line(
        f"largest possible over {size} outcomes: {log} {size} = {fmt(most)} {unit}, "
        f"for the uniform distribution; {where}"
    )
    perplexity = 2.0**h_p if bits else math.exp(h_p)  # the same number in either unit
    letter = "2" if bits else "e"
    out.line(
        f"perplexity {letter}^H(P) = {fmt(perplexity, 4)}: as uncertain as a fair choice "
        f"among {fmt(perplexity, 4)} equally likely outcomes"
    )
    out.line("Add --q Q for the cross-entropy H(P, Q): the surprise when you expect Q.")


def explain_kl(out: Output, p: Any, q: Any, *, bits: bool) -> None:
    """D(P||Q) and D(Q||P) term by term: the divergence is not symmetric."""
    from scipy import special  # here: every crossent command imports this module

    base, unit = _unit(bits)
    with flags(p="--p", q="--q"):
        forward = float(crossent.kl_divergence(p, q, base=base))  # validates both
    reverse = float(crossent.kl_divergence(q, p, base=base))
    scale = _LN2 if bits else 1.0
    terms_pq = special.rel_entr(p, q) / scale  # p log(p/q), 0 where p = 0
    terms_qp = special.rel_entr(q, p) / scale
    rows = [
        [str(k), _g(pk), _g(qk), fmt(a, 4), fmt(b, 4)]
        for k, (pk, qk, a, b) in enumerate(zip(p, q, terms_pq, terms_qp, strict=True))
    ]
    log = _log(bits)
    out.table(
        f"KL divergence in {unit}, both directions",
        ("outcome", "P", "Q", f"p {log}(p/q)", f"q {log}(q/p)"),
        rows,
        # the largest terms of each direction in turn (one direction's infinite terms,
        # where the other has no mass, would fill a table ordered by the larger of two)
        order=_in_turn(
            np.lexsort((-q, -p, -np.abs(terms_pq))), np.lexsort((-p, -q, -np.abs(terms_qp)))
        ),
        rest=lambda h: (
            f"their terms summing to {fmt(np.sum(terms_pq[h]), 4)} and "
            f"{fmt(np.sum(terms_qp[h]), 4)} {unit}"
        ),
    )
    out.line(f"D(P||Q) = {fmt(forward)} {unit}   (expected under P: where P has mass, Q must too)")
    out.line(f"D(Q||P) = {fmt(reverse)} {unit}   (expected under Q: where Q has mass, P must too)")
    if math.isinf(forward) or math.isinf(reverse):
        out.line(
            "An infinite direction: one distribution gives probability 0 to an outcome the "
            "other allows."
        )
    elif math.isclose(forward, reverse, rel_tol=1e-9, abs_tol=1e-15):
        out.line("Here both directions agree, but in general D(P||Q) != D(Q||P).")
    else:
        out.line(f"Not symmetric: they differ by {fmt(abs(forward - reverse))} {unit}.")
    out.line("Gibbs' inequality: both are >= 0, and 0 only when P = Q.")


def _in_turn(*orders: Any) -> list[int]:
    """The indices of ``orders`` (permutations of one range) taken from each in turn,
    each index once: a table's rows ordered by several columns at once."""
    seen: set[int] = set()
    merged: list[int] = []
    for index in (int(k) for group in zip(*orders, strict=True) for k in group):
        if index not in seen:
            seen.add(index)
            merged.append(index)
    return merged


def _temperature_table(
    out: Output,
    before: Any,
    after: Any,
    temperature: float,
    name: str,
    *,
    index: str = "outcome",
    columns: tuple[str, str] | None = None,
) -> None:
    """``before`` and ``after`` the temperature; ``columns`` names them (default: the
    name, and the name at T)."""
    title = f"temperature T = {_g(temperature)}: {name} reshaped to softmax(log {name} / T)"
    if columns is not None:
        title = f"temperature T = {_g(temperature)}: the softmax at T = 1 and at T"
    out.table(
        title,
        (index, *(columns or (name, f"{name} at T"))),
        [
            [str(k), fmt(b, 4), fmt(a, 4)]
            for k, (b, a) in enumerate(zip(before, after, strict=True))
        ],
        order=np.argsort(-np.maximum(before, after), kind="stable"),
        rest=lambda h: (
            f"holding {fmt(np.sum(before[h]), 4)} of the mass before and "
            f"{fmt(np.sum(after[h]), 4)} after"
        ),
    )
    if temperature == 1:
        return
    support = np.asarray(before) > 0
    if np.ptp(np.asarray(before)[support]) == 0:  # equal probabilities wherever positive
        out.line(
            f"T > 1 makes the distribution flatter; T < 1 sharper. Here {name} is uniform "
            "over the outcomes it allows: any temperature leaves it unchanged."
        )
        return
    word = "flatter (less confident)" if temperature > 1 else "sharper (more confident)"
    out.line(f"T > 1 makes the distribution flatter; T < 1 sharper. Here: {word}.")


def _shift_and_scale(logits: Any, temperature: float) -> Any:
    """(z - max z) / T: the same softmax as z / T, but finite for huge z and T < 1."""
    top = float(np.max(logits))
    with np.errstate(over="ignore"):  # 1e308 - (-1e308) is -inf: its softmax weight, 0
        shifted = logits - top if math.isfinite(top) else logits
        return shifted / temperature


_SCALE = 64
"""Past float64, the loss is formed times :math:`2^{-64}` (:func:`_scaled_loss`)."""


def _scaled_loss(logits: Any, weights: Any, temperature: float) -> float:
    r"""The loss in nats times :math:`2^{-64}`, :math:`\sum_j y'_j (m - z_j) 2^{-64} / T +
    2^{-64} \log \sum_j e^{(z_j - m) / T}` with :math:`m = \max_j z_j`, each
    difference formed from the scaled logits (exact: a power of 2): finite where the
    loss passes float64 though the logits are finite (``--logits 1e308,-1e308 --label
    1``: 2e308, printed ``inf``), up to about 3e327; +inf beyond, or for a logit of
    -inf under a weight (a probability 0)."""
    if not np.isfinite(logits).all():
        return math.inf
    scaled = np.ldexp(logits, -_SCALE)
    with np.errstate(over="ignore"):
        gaps = (np.max(scaled) - scaled) / temperature
        spread = math.log(float(np.sum(np.exp(_shift_and_scale(logits, temperature)))))
        return float(np.sum(weights * gaps)) + math.ldexp(spread, -_SCALE)


def _unscaled(scaled: float, digits: int = 6) -> str:
    """``scaled`` times :math:`2^{64}` (past float64) with ``digits`` decimals in
    scientific notation, as :func:`fmt` prints a huge number: exact in decimal."""
    from decimal import Decimal, localcontext

    with localcontext() as context:
        context.prec = 800  # (every float's decimal expansion is shorter: exact)
        return f"{Decimal(scaled) * 2**_SCALE:.{digits}e}"


def explain_logits(
    out: Output,
    logits: Any,
    target: Any,
    *,
    bits: bool,
    temperature: float | None,
    smoothing: float | None = None,
) -> None:
    """Softmax, loss and gradient from logits; optional temperature and label smoothing."""
    from scipy import special  # here: every crossent command imports this module

    base, unit = _unit(bits)
    t = 1.0 if temperature is None else temperature
    eps = 0.0 if smoothing is None else smoothing
    with flags(logits="--logits", targets="--p", label_smoothing="--smoothing"):
        crossent.softmax_cross_entropy_with_targets(logits, target, label_smoothing=eps)
    z = _shift_and_scale(logits, t)
    probs = special.softmax(z)
    # the loss of the logits as given, at T: the shifted z held -inf for a logit 1.8e308
    # below the maximum, and its y' weight made the loss inf (logits 1e308,-1e308 with
    # --smoothing 0.1: inf for 1e307; --label 1 --temperature 1e3: inf for 2e305)
    loss = float(
        crossent.softmax_cross_entropy_with_targets(
            logits, target, label_smoothing=eps, base=base, temperature=t
        )
    )
    # d loss / d logits = (p - y') / T in nats; in bits, divided by ln 2 as the loss is.
    # A tiny T (a subnormal, 1e-320) makes (p - y') / T overflow: its entries are then
    # infinite, as they round, and the sum shown is that of p - y' (it was inf - inf,
    # printed as "+nan", with NumPy's overflow warnings on standard error).
    unscaled = crossent.softmax_cross_entropy_with_targets_grad(z, target, label_smoothing=eps)
    with np.errstate(over="ignore"):
        grad = unscaled / t / _LN2 if bits else unscaled / t
    overflowed = not np.isfinite(grad).all()
    smoothed = (1 - eps) * target + eps / logits.size
    title = "softmax cross-entropy from logits" + (f" at T = {_g(t)}" if temperature else "")
    columns = ["class", "logit z", "softmax p", "target y"]
    if smoothing is not None:
        columns.append("smoothed y'")
    columns.append("gradient dL/dz")
    rows = []
    for k in range(logits.size):
        row = [str(k), _g(logits[k]), fmt(probs[k], 4), _g(target[k])]
        if smoothing is not None:
            row.append(fmt(smoothed[k], 4))
        rows.append([*row, fmt(grad[k], 4, sign=True)])
    out.table(
        title,
        columns,
        rows,
        order=np.lexsort((-np.abs(grad), -probs, -target)),  # the target, then p's mass
        rest=lambda h: f"their softmax p summing to {fmt(np.sum(probs[h]), 4)}",
    )
    y = "y'" if smoothing is not None else "y"
    zt = "z/T" if temperature else "z"
    computed = f"logsumexp({zt}) - sum {y} {zt}"
    if bits:
        computed = f"({computed}) / ln 2"
    shown = fmt(loss)
    if loss == math.inf:  # past float64 (logits more than 1.8e308 apart), or truly +inf
        scaled = _scaled_loss(logits, smoothed, t)
        if math.isfinite(scaled):
            shown = _unscaled(scaled / _LN2 if bits else scaled)
    out.line(
        f"loss = -sum {y} {_log(bits)} p = {shown} {unit}  (computed as {computed}, "
        f"never log(softmax({zt})))"
    )
    scale = (
        f"(p - {y})"
        + (" / T" if temperature else "")
        + (" / ln 2" if bits else "")
        + (f", T = {_g(t)}" if temperature else "")
    )
    out.line(
        f"gradient = {scale}; it sums to {float(np.sum(grad)):+.1e} over classes (0 up to rounding)"
        if not overflowed
        else f"gradient = {scale}: beyond float64's range at this T (shown as infinities); "
        f"p - {y} sums to {float(np.sum(unscaled)):+.1e} over classes (0 up to rounding)"
    )
    if smoothing is not None:
        _smoothing_floor(out, target, smoothed, eps, base=base, unit=unit)
    if temperature is not None:
        # p above is softmax(z/T); this table's columns say which softmax, not "p" for both
        _temperature_table(
            out,
            special.softmax(_shift_and_scale(logits, 1.0)),
            probs,
            t,
            "p",
            index="class",
            columns=("softmax(z)", "p = softmax(z/T)"),
        )


def _smoothing_floor(
    out: Output, target: Any, smoothed: Any, eps: float, *, base: float | None, unit: str
) -> None:
    """The loss's smallest value, H(y') at p = y', against H(y) without smoothing."""
    floor = float(crossent.entropy(smoothed, base=base))
    before = float(crossent.entropy(target, base=base))
    mix = f"label smoothing {_g(eps)}: y' = (1 - {_g(eps)}) y + {_g(eps)}/{target.size}."
    if eps == 0:
        out.line(f"{mix} Nothing changes: y' = y, and the floor stays H(y) = {fmt(floor)} {unit}.")
    elif before == 0:
        out.line(
            f"{mix} The loss can no longer reach 0: its floor is H(y') = {fmt(floor)} {unit}, "
            "at p = y'."
        )
    else:
        out.line(
            f"{mix} The loss's floor, its value at p = y', rises from H(y) = {fmt(before)} to "
            f"H(y') = {fmt(floor)} {unit}."
        )


def explain_hinge(out: Output, logits: Any, label: int, *, bits: bool) -> None:
    """Crammer-Singer hinge loss beside the cross-entropy on the same logits."""
    from scipy import special  # here: every crossent command imports this module

    base, unit = _unit(bits)
    with flags(logits="--logits", labels="--label"):
        hinge = float(crossent.multiclass_hinge_loss(logits, label))
    ce = float(crossent.softmax_cross_entropy(logits, label, base=base))
    hinge_grad = crossent.multiclass_hinge_loss_grad(logits, label)
    ce_grad = crossent.softmax_cross_entropy_grad(logits, label) / (_LN2 if bits else 1.0)
    probs = special.softmax(_shift_and_scale(logits, 1.0))
    out.table(
        "hinge loss vs cross-entropy on the same logits",
        ("class", "logit z", "softmax p", "hinge gradient", "cross-entropy gradient"),
        [
            [
                str(k),
                _g(logits[k]),
                fmt(probs[k], 4),
                fmt(hinge_grad[k], 4, sign=True),
                fmt(ce_grad[k], 4, sign=True),
            ]
            for k in range(logits.size)
        ],
        order=np.lexsort((-probs, -np.abs(hinge_grad), np.arange(logits.size) != label)),
        rest=lambda h: f"their softmax p summing to {fmt(np.sum(probs[h]), 4)}",
    )
    margin = _margin(logits, label)
    out.line(f"margin z_y - max z_other = {fmt(margin, 4)}  (the hinge asks for at least 1)")
    out.line(f"hinge loss = {fmt(hinge)}  (Crammer-Singer: max(0, 1 - margin))")
    out.line(f"cross-entropy = {fmt(ce)} {unit}")
    rows = []
    underflowed: list[int] = []  # scales whose exact, positive loss rounds to 0 in float64
    overflowed = 0  # the first scale whose logits float64 cannot hold (1e308 x 2)
    for factor in (1, 2, 4, 8):
        with np.errstate(over="ignore"):
            scaled = logits * factor
        if not np.isfinite(scaled).all():
            overflowed = factor
            break
        # Both columns in the loss's unit and in e-notation: a loss of 1e-7 is not 0.000000.
        scaled_ce = float(crossent.softmax_cross_entropy(scaled, label, base=base))
        scaled_grad = crossent.softmax_cross_entropy_grad(scaled, label) / (_LN2 if bits else 1.0)
        if margin > 0 and (scaled_ce == 0 or float(np.max(np.abs(scaled_grad))) == 0):
            underflowed.append(factor)
        rows.append(
            [
                f"{factor}",
                fmt(_margin(scaled, label), 4),
                fmt(float(crossent.multiclass_hinge_loss(scaled, label))),
                f"{scaled_ce:.2e}",
                f"{float(np.max(np.abs(scaled_grad))):.2e}",
            ]
        )
    out.table(
        "scaling the logits up (more confident)",
        ("scale", "margin", "hinge loss", f"cross-entropy ({unit})", "max |CE gradient|"),
        rows,
    )
    if overflowed:
        out.line(
            f"From x{overflowed} on, the scaled logits are beyond float64's largest number "
            "(1.8e308): those rows are not shown."
        )
    if margin > 0:
        out.line(
            "Once the margin reaches 1 the hinge stops caring: loss 0, gradient 0. Cross-entropy "
            "never stops pushing: its loss and gradient shrink but stay above 0."
        )
        if underflowed:
            # The exact loss is log(1 + sum_c e^-(z_y - z_c) s) >= log(1 + e^-(margin s)) > 0.
            scales = ", ".join(f"x{f}" for f in underflowed)
            out.line(
                f"The 0.00e+00 at {scales} is not 0: the exact value (the loss is at least "
                "log(1 + e^-(margin x scale))) is below the smallest positive float64 "
                "(4.9e-324) and rounds to 0."
            )
    elif margin == 0:
        tied = int(np.sum(logits == logits[label]))
        limit = math.log(tied) / (_LN2 if bits else 1.0)
        out.line(
            "Here the true class only ties for the top (margin 0): scaling changes neither the "
            "margin nor the hinge loss, and cross-entropy tends to log of the number of tied "
            f"classes, {fmt(limit)} {unit}, not to 0. Neither gradient vanishes."
        )
    else:
        out.line(
            "Here the true class is behind (margin < 0): scaling up makes the model more "
            "confident in a wrong class, and both losses grow without bound, the hinge as "
            "1 - margin, cross-entropy about as fast. Neither gradient vanishes."
        )


def _margin(logits: Any, label: int) -> float:
    """z_y - max z_other, the hinge's margin: +-inf past float64's range (1e308 and
    -1e308 are 2e308 apart), without NumPy's overflow warning on standard error."""
    with np.errstate(over="ignore"):
        return float(logits[label] - np.max(np.delete(logits, label)))


def explain_binary(out: Output, y: float, p: float, *, bits: bool) -> None:
    """Binary cross-entropy of label ``y`` and prediction ``p``, term by term."""
    base, unit = _unit(bits)
    with flags(p="--y", q="--p"):
        loss = float(crossent.binary_cross_entropy(y, p, base=base))  # validates both
    log = (lambda v: math.log(v) / _LN2) if bits else math.log
    positive = 0.0 if y == 0 else -y * (log(p) if p > 0 else -math.inf)
    negative = 0.0 if y == 1 else -(1 - y) * (log(1 - p) if p < 1 else -math.inf)
    terms = (
        (f"-y {_log(bits)} p", fmt(positive)),
        (f"-(1 - y) {_log(bits)}(1 - p)", fmt(negative)),
        ("loss", f"{fmt(loss)} {unit}"),
    )
    width = max(len(name) for name, _ in terms)
    out.line(f"binary cross-entropy, y = {_g(y)}, p = {_g(p)}, in {unit}:")
    for name, value in terms:
        out.line(f"  {name.ljust(width)} = {value}")
    if bits:
        out.line(f"  gradient in the logit: (p - y) / ln 2 = {fmt((p - y) / _LN2, sign=True)}")
    else:
        out.line(f"  gradient in the logit: p - y = {fmt(p - y, sign=True)}")
    if 0 < y < 1:  # a soft label: the loss cannot reach 0
        floor = float(crossent.binary_cross_entropy(y, y, base=base))  # H(y), at p = y
        excess = float(crossent.kl_divergence([y, 1 - y], [p, 1 - p], base=base))
        out.line(
            f"A soft label y = {_g(y)} is a distribution [y, 1 - y]: the loss is smallest at "
            f"p = y, where it is the entropy H(y) = {fmt(floor)} {unit}, not 0; the rest, "
            f"{fmt(excess)} {unit}, is D(y||p)."
        )


# Dispatch ------------------------------------------------------------------------------------


def _given(args: argparse.Namespace) -> list[str]:
    """The flags given on the command line, in a fixed order."""
    values = {
        "--binary": args.binary,
        "--hinge": getattr(args, "hinge", False),
        "--kl": getattr(args, "kl", False),
        "--logits": args.logits is not None,
        "--label": args.label is not None,
        "--p": args.p is not None,
        "--q": args.q is not None,
        "--y": args.y is not None,
        "--temperature": args.temperature is not None,
        "--smoothing": getattr(args, "smoothing", None) is not None,
        "--bits": args.bits,
        "--all": getattr(args, "all", False),
    }
    return [flag for flag, present in values.items() if present]


def _mode(given: list[str]) -> str:
    if "--binary" in given:
        return "--binary"
    if "--hinge" in given:
        return "--hinge"
    if "--logits" in given:
        return "--logits"
    return "--p/--q"


def _check_flags(given: list[str], mode: str) -> None:
    for flag in given:
        if flag not in _MODE_FLAGS[mode]:
            raise crossent.InputError(
                f"{flag} cannot be combined with {mode}; with {mode} use "
                f"{', '.join(f for f in _MODE_FLAGS[mode] if f != mode)}"
            )


def _logits_target(args: argparse.Namespace, logits: Any) -> Any:
    if args.label is not None and args.p is not None:
        raise crossent.InputError(
            "--label and --p both give the target with --logits; pass one of them"
        )
    if args.label is not None:
        if not 0 <= args.label < logits.size:
            raise crossent.InputError(
                f"--label must be a class in [0, {logits.size}); got {args.label}"
            )
        target = np.zeros(logits.size)  # np.eye(K)[label] built K*K floats: 74.5 GiB at 1e5
        target[args.label] = 1.0
        return target
    if args.p is not None:
        return parse_vector(args.p, name="--p")
    raise crossent.InputError("--logits needs --label (a class id) or --p (a target distribution)")


def _dispatch(args: argparse.Namespace, out: Output) -> None:
    given = _given(args)
    mode = _mode(given)
    _check_flags(given, mode)
    if args.temperature is not None and not 0 < args.temperature < math.inf:
        raise crossent.InputError(
            f"--temperature must be positive and finite; got {_g(args.temperature)}"
        )
    smoothing = getattr(args, "smoothing", None)
    if smoothing is not None and not 0 <= smoothing <= 1:
        raise crossent.InputError(f"--smoothing must be in [0, 1]; got {_g(smoothing)}")
    if mode == "--binary":
        if args.y is None or args.p is None:
            raise crossent.InputError(
                "--binary needs --y (0 to 1) and --p (the predicted probability)"
            )
        y = parse_number(args.y, name="--y", mode="--binary")
        p = parse_number(args.p, name="--p", mode="--binary")
        explain_binary(out, y, p, bits=args.bits)
        return
    if mode == "--hinge":
        if args.logits is None or args.label is None:
            raise crossent.InputError("--hinge needs --logits and --label (a class id)")
        logits = parse_vector(args.logits, name="--logits")
        _logits_target(args, logits)  # checks the label's range
        if logits.size < 2:  # before any line: the margin is against another class
            raise crossent.InputError(
                "--hinge needs at least two logits (the margin is the true class's logit "
                f"minus the largest other one); got {logits.size}"
            )
        explain_hinge(out, logits, args.label, bits=args.bits)
        return
    if mode == "--logits":
        logits = parse_vector(args.logits, name="--logits")
        target = _logits_target(args, logits)
        explain_logits(
            out,
            logits,
            target,
            bits=args.bits,
            temperature=args.temperature,
            smoothing=smoothing,
        )
        return
    if args.p is not None and args.q is None:  # the entropy of P alone
        for flag in ("--kl", "--temperature"):
            if flag in given:
                raise crossent.InputError(
                    f"{flag} needs --q as well as --p; --p alone explains the entropy H(P)"
                )
        explain_entropy(out, parse_vector(args.p, name="--p"), bits=args.bits)
        return
    if args.p is None:
        raise crossent.InputError(
            "explain needs --p (a distribution: its entropy), --p and --q (cross-entropy), "
            "--logits with --label, or --binary"
        )
    p = parse_vector(args.p, name="--p")
    q = parse_vector(args.q, name="--q")
    if getattr(args, "kl", False):
        if args.temperature is not None:
            raise crossent.InputError("--temperature cannot be combined with --kl")
        explain_kl(out, p, q, bits=args.bits)
        return
    explain_distributions(out, p, q, bits=args.bits, temperature=args.temperature)


def run_explain(args: argparse.Namespace, stream: TextIO) -> None:
    """Dispatch on the arguments of ``crossent explain``, writing to ``stream``."""
    with closed_pipe_is_quiet(stream, what="the explanation"):
        _dispatch(args, Output(stream, rows=None if getattr(args, "all", False) else TABLE_ROWS))
