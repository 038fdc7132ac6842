"""The numbers typed into the docs' prose, the README and the demo's notes, pinned.

The tutorials' code cells run when the site is built, so their output cannot go stale;
the sentences around them can. Each number written in prose is recomputed here twice:
by an independent oracle (mpmath at 50 digits, exact fractions, or the float64 fact
itself) and, where crossent computes it, by crossent. The test fails if the prose
changes without the number, or the number without the prose.

The docs' plain ``python`` blocks (the index's snippet, each "Try it" block) are not
executed by the build: they are run here. So are the ``crossent explain`` and
``crossent demo`` commands that the docs and the README tell a reader to type.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import mpmath
import numpy as np
import pytest

import crossent
from crossent._checks import row_sum_tolerance
from crossent._xp import compat_numpy
from crossent.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIALS = DOCS / "tutorials"
MP = mpmath.mp.clone()
MP.dps = 50


def _log2(x: object) -> mpmath.mpf:
    return MP.log(MP.mpf(x), 2)


def _h2(p: list[mpmath.mpf]) -> mpmath.mpf:
    """Entropy in bits, 0 log 0 = 0, no normalisation."""
    return -MP.fsum(pk * _log2(pk) for pk in p if pk > 0)


def _dice() -> list[mpmath.mpf]:
    return [MP.mpf(min(s - 1, 13 - s)) / 36 for s in range(2, 13)]


# The dice probabilities of the seed tutorial, rounded to 0.01 (they sum to 1.01).
_ROUNDED_DICE = ["0.03", "0.06", "0.08", "0.11", "0.14", "0.17", "0.14", "0.11", "0.08", "0.06"]
_ROUNDED_DICE.append("0.03")


def _clipped_bits(share: str) -> mpmath.mpf:
    """The seed's clipped cross-entropy: share * -log2(1e-10)."""
    return -MP.mpf(share) * _log2("1e-10")


# (file, the text as typed, the number in it, the oracle's value, crossent's value or
# None, the format that turns either value into the number as written).
Number = tuple[str, str, str, Callable[[], object], Callable[[], object] | None, str]
_SE, _CK, _CL = (
    "docs/tutorials/surprise-entropy.md",
    "docs/tutorials/cross-entropy-kl.md",
    "docs/tutorials/clipping.md",
)
NUMBERS: list[Number] = [
    (
        _SE,
        "The entropy is 3.2744 bits",
        "3.2744",
        lambda: _h2(_dice()),
        lambda: crossent.entropy([min(s - 1, 13 - s) / 36 for s in range(2, 13)], base=2),
        ".4f",
    ),
    (
        _SE,
        r"$\log_2 11 = 3.4594$",
        "3.4594",
        lambda: _log2(11),
        lambda: crossent.entropy(np.full(11, 1 / 11), base=2),
        ".4f",
    ),
    (
        _SE,
        "A common tutorial prints 3.30 bits here",
        "3.30",
        lambda: _h2([MP.mpf(v) for v in _ROUNDED_DICE]),
        lambda: crossent.entropy([float(v) for v in _ROUNDED_DICE], base=2, validate=False),
        ".2f",
    ),
    (
        _CK,
        r"$-\log q_{\text{true}} = -\log 0.7 = 0.3567$ nats",
        "0.3567",
        lambda: -MP.log(MP.mpf("0.7")),
        lambda: crossent.cross_entropy([1, 0, 0], [0.7, 0.2, 0.1]),
        ".4f",
    ),
    # the largest JS divergence, of disjoint supports, is exactly 1 bit
    (
        _CK,
        "always finite (at most 1 bit)",
        "1",
        lambda: (_log2(2) + _log2(2)) / 2,
        lambda: crossent.js_divergence([1.0, 0.0], [0.0, 1.0], base=2),
        ".0f",
    ),
    (
        _CL,
        "prints 23.25 bits",
        "23.25",
        lambda: _clipped_bits("0.7"),
        lambda: crossent.cross_entropy([0.7, 0.3], [0.0, 1.0], base=2, eps=1e-10),
        ".2f",
    ),
    (
        _CL,
        "9.97 bits for the one who guessed",
        "9.97",
        lambda: _clipped_bits("0.3"),
        lambda: crossent.cross_entropy([0.7, 0.3], [1.0, 0.0], base=2, eps=1e-10),
        ".2f",
    ),
    (
        _CL,
        "has the least, $H(P) = 0.8813$ bits",
        "0.8813",
        lambda: _h2([MP.mpf("0.7"), MP.mpf("0.3")]),
        lambda: crossent.entropy([0.7, 0.3], base=2),
        ".4f",
    ),
    (
        _CL,
        r"0.7 \times 33.22 = 23.25",
        "33.22",
        lambda: -_log2("1e-10"),
        lambda: crossent.surprisal(1e-10, base=2),
        ".2f",
    ),
    (
        "docs/tutorials/softmax.md",
        "The exact loss is 800 nats",
        "800",
        lambda: 800 + MP.log1p(MP.exp(-800)),
        lambda: crossent.softmax_cross_entropy(np.array([0.0, -800.0]), 1),
        ".0f",
    ),
    (
        "docs/tutorials/binary.md",
        "The exact losses are $800$ nats",
        "800",
        lambda: MP.log1p(MP.exp(800)),
        lambda: crossent.sigmoid_cross_entropy(np.array([-800.0]), np.array([1.0])),
        ".0f",
    ),
    # the other convention's [0.9, 0.05, 0.05] is label_smoothing eps K / (K - 1)
    (
        "docs/tutorials/smoothing-weights.md",
        "here 0.15, not 0.1",
        "0.15",
        lambda: MP.mpf("0.1") * 3 / 2,
        None,
        ".2f",
    ),
    # the smoothed target's true-class probability, in percent
    (
        "docs/tutorials/smoothing-weights.md",
        "the model is asked for 93 % confidence",
        "93",
        lambda: 100 * (1 - MP.mpf("0.1") + MP.mpf("0.1") / 3),
        None,
        ".0f",
    ),
    (
        "docs/tutorials/imbalance-focal.md",
        r"loses a factor $10^4$ at $\gamma = 2$",
        "4",
        lambda: MP.log10(1 / (1 - MP.mpf("0.99")) ** 2),
        lambda: np.log10(
            crossent.softmax_cross_entropy(np.log([[0.99, 0.01]]), [0])
            / crossent.softmax_focal_loss(np.log([[0.99, 0.01]]), [0], gamma=2.0)
        ),
        ".0f",
    ),
    # 1 - p_t at the logits [40, -40]
    (
        "docs/tutorials/imbalance-focal.md",
        "# p_t = 1 - 1.8e-35",
        "1.8e-35",
        lambda: 1 / (1 + MP.exp(80)),
        lambda: -np.expm1(-crossent.softmax_cross_entropy(np.array([[40.0, -40.0]]), [0])),
        ".1e",
    ),
    # the honest forecast's expected NLL, the least any forecast of the 0.7 coin gets
    (
        "docs/tutorials/calibration.md",
        "The honest forecast 0.7 has the least, $H(P) = 0.6109$ nats",
        "0.6109",
        lambda: -MP.fsum(v * MP.log(v) for v in (MP.mpf("0.7"), MP.mpf("0.3"))),
        lambda: min(
            crossent.cross_entropy([0.7, 0.3], [q, 1 - q]) for q in np.arange(1, 100) / 100
        ),
        ".4f",
    ),
    (
        "docs/tutorials/code-length.md",
        r"$\log_2 17 = 4.09$ bits",
        "4.09",
        lambda: _log2(17),
        lambda: crossent.entropy(np.full(17, 1 / 17), base=2),
        ".2f",
    ),
    (
        "docs/tutorials/perplexity.md",
        "crossent.perplexity([0.25, 0.25, 0.25, 0.25])  # 4.0",
        "4.0",
        lambda: MP.mpf(4),
        lambda: crossent.perplexity([0.25, 0.25, 0.25, 0.25]),
        ".1f",
    ),
    (
        "docs/index.md",
        "# 0.3567 nats: -log 0.7",
        "0.3567",
        lambda: -MP.log(MP.mpf("0.7")),
        lambda: crossent.cross_entropy([1, 0, 0], [0.7, 0.2, 0.1]),
        ".4f",
    ),
    (
        "docs/index.md",
        "# inf, not 23.25",
        "23.25",
        lambda: _clipped_bits("0.7"),
        lambda: crossent.cross_entropy([0.7, 0.3], [0.0, 1.0], base=2, eps=1e-10),
        ".2f",
    ),
    (
        "docs/differs.md",
        "]  # sums to 1.01",
        "1.01",
        lambda: MP.fsum(MP.mpf(v) for v in _ROUNDED_DICE),
        None,
        ".2f",
    ),
    (
        "src/crossent/cli/_demo.py",
        "The tutorial's 23.25 and 9.97",
        "9.97",
        lambda: _clipped_bits("0.3"),
        None,
        ".2f",
    ),
]


def _sigmoid(x: object) -> mpmath.mpf:
    return 1 / (1 + MP.exp(-MP.mpf(x)))


def _fine_cell_width_at(c: str) -> mpmath.mpf:
    """Width in confidence of the fine cell (4096 uniform in logit over [-16, 16]) holding c."""
    step = MP.mpf(32) / 4096
    k = MP.floor((MP.log(MP.mpf(c) / (1 - MP.mpf(c))) + 16) / step)
    return _sigmoid(-16 + (k + 1) * step) - _sigmoid(-16 + k * step)


def _fine_edges() -> np.ndarray:
    from crossent.calibration._binning import fine_edges

    return np.asarray(fine_edges())


def _crossent_fine_cell_width_at(c: float) -> float:
    edges = _fine_edges()
    upper = int(np.searchsorted(edges, c, side="right"))
    return float(edges[upper] - edges[upper - 1])


# The streaming equal-mass bins' fine grid, as _binning's docstring and differs.md state
# it (the docstring said 8.7e-5 for the cell at 0.99: 7.7e-5, in units of 1e-5 here).
NUMBERS += [
    (
        "src/crossent/calibration/_binning.py",
        r"near :math:`c = 0.99`, one cell spans :math:`\Delta c \approx 7.7 \times 10^{-5}`",
        "7.7",
        lambda: 1e5 * _fine_cell_width_at("0.99"),
        lambda: 1e5 * _crossent_fine_cell_width_at(0.99),
        ".1f",
    ),
    (
        "docs/differs.md",
        "Every confidence above `sigmoid(16)` (1 - 1.1e-7)",
        "1.1e-7",
        lambda: 1 - _sigmoid(16),
        lambda: 1 - _fine_edges()[-2],  # the fine grid's last inner edge, sigmoid(16)
        ".1e",
    ),
]

# The seed's clipped 23.25 bits, quoted again in the comparison tables and the demo.
NUMBERS += [
    (path, text, "23.25", lambda: _clipped_bits("0.7"), None, ".2f")
    for path, text in (
        ("docs/differs.md", "| 23.25 bits after clipping at 1e-10"),
        ("README.md", "| 23.25 bits after clipping at 1e-10"),
        ("src/crossent/cli/_demo.py", "The tutorial's 23.25 and 9.97"),
    )
]


def _row_sum_tolerance(dtype: type[np.floating], classes: int) -> mpmath.mpf:
    """The README's formula, eps_s / 2 + eps_c (K + 1 + 1024 / 2), from the dtype's bits."""
    eps = MP.mpf(2) ** -(52 if dtype is np.float64 else 23)
    return eps / 2 + eps * (classes + 1 + 512)


# The README's examples of the row-sum tolerance.
NUMBERS += [
    (
        "README.md",
        text,
        written,
        lambda d=dtype, k=classes: _row_sum_tolerance(d, k),
        lambda d=dtype, k=classes: row_sum_tolerance(d, k, xp=compat_numpy),
        ".1e",
    )
    for dtype, classes, text, written in (
        (np.float64, 10, "(float64 rows of 10 classes: 1.2e-13", "1.2e-13"),
        (np.float32, 100, "float32 rows of 100 classes: 7.3e-5)", "7.3e-5"),
    )
]


def _formatted(value: object, spec: str) -> str:
    """``value`` (mpmath or float) rounded as the text writes it: 1.8e-35, 7.3e-5."""
    number = float(value)  # type: ignore[arg-type]
    out = format(number, spec)
    if spec.endswith("e"):  # Python pads the exponent (7.3e-05); the prose does not
        mantissa, exponent = out.split("e")
        out = f"{mantissa}e{int(exponent)}"
    return out


@pytest.mark.parametrize(("path", "text", "written", "oracle", "ours", "spec"), NUMBERS)
def test_issue13_prose_number_is_the_computed_one(
    path: str,
    text: str,
    written: str,
    oracle: Callable[[], object],
    ours: Callable[[], object] | None,
    spec: str,
) -> None:
    source = " ".join((ROOT / path).read_text().split())  # prose wraps lines anywhere
    assert " ".join(text.split()) in source, f"{path} no longer says {text!r}"
    assert written in text
    assert _formatted(oracle(), spec) == written, (path, text, oracle())
    if ours is not None:
        assert _formatted(ours(), spec) == written, (path, text, ours())


def test_issue13_typed_float_facts_in_the_tutorials() -> None:
    """The float64 facts that the temperature and softmax pages state in words."""
    with np.errstate(over="ignore"):
        assert np.isinf(np.float64(1e308) / 0.5)  # "10^308 / 0.5 is infinite in float64"
        assert np.isneginf(np.float64(-1e308) / 0.5)  # the shifted second logit
        assert np.exp(np.float64(1000.0)) == np.inf  # "e^1000 overflows a float64"
    text = (TUTORIALS / "temperature.md").read_text()
    assert r"$10^{308} / 0.5$ is infinite in float64" in text
    z_big = np.array([1e308, 0.0])
    assert crossent.softmax_cross_entropy(z_big, 0, temperature=0.5) == 0.0
    assert crossent.softmax_cross_entropy(z_big, 1, temperature=0.5) == np.inf
    assert np.array_equal(np.array([2.0, 1.0, 0.1]) + 998, [1000.0, 999.0, 998.1])
    assert "# the same logits shifted by 998" in (TUTORIALS / "softmax.md").read_text()
    # demo: "a [0.9, 0.1] coin: perplexity ... (less than 2 choices' worth of confusion)"
    assert crossent.perplexity([0.9, 0.1]) < 2


def _python_blocks() -> list[tuple[str, str]]:
    blocks = []
    for path in sorted([*DOCS.glob("*.md"), *TUTORIALS.glob("*.md")]):
        if path.name == "changelog.md":
            continue
        for code in re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S):
            blocks.append((str(path.relative_to(ROOT)), code))
    return blocks


@pytest.mark.parametrize(("path", "code"), _python_blocks(), ids=lambda v: v[:40])
def test_issue13_docs_python_blocks_run_as_written(path: str, code: str) -> None:
    if "constriction" in code:
        pytest.importorskip("constriction")
    namespace: dict[str, object] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, path, "exec"), namespace)  # the docs' own examples


def _commands() -> list[tuple[str, list[str]]]:
    """Every `crossent explain --...` / `crossent demo TOPIC` in the docs and the README."""
    found: dict[tuple[str, ...], str] = {}  # each command once, with the first file naming it
    for path in sorted([ROOT / "README.md", *DOCS.glob("*.md"), *TUTORIALS.glob("*.md")]):
        if path.name == "changelog.md":
            continue
        for line in path.read_text().splitlines():
            for match in re.findall(r"crossent (?:explain --[^`#\n]*|demo [a-z-]+)", line):
                found.setdefault(tuple(shlex.split(match)[1:]), str(path.relative_to(ROOT)))
    return [(path, list(argv)) for argv, path in found.items()]


def test_issue13_docs_commands_are_found() -> None:
    commands = _commands()
    assert len(commands) >= 15, commands
    argvs = [argv for _, argv in commands]
    assert ["explain", "--logits", "3,1,0.5", "--label", "0", "--hinge"] in argvs
    assert ["demo", "calibration"] in argvs


@pytest.mark.parametrize(
    ("path", "argv"), _commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else v
)
def test_issue13_docs_commands_run(path: str, argv: list[str]) -> None:
    with (
        contextlib.redirect_stdout(io.StringIO()) as out,
        contextlib.redirect_stderr(io.StringIO()),
    ):
        status = main(argv)
    assert status == 0, (path, argv)
    assert out.getvalue().strip(), (path, argv)


def test_readme_gaussiannb_row_sum_deviation() -> None:
    """The README's "GaussianNB, whose digits rows reach 1 + 6.7e-15", inside the tolerance.

    A pin of a number that was right when pinned (it passes on main): it fails if
    scikit-learn's output or the README's figure moves without the other.
    """
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.naive_bayes import GaussianNB

    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "as in scikit-learn's `GaussianNB`, whose digits rows reach 1 + 6.7e-15" in readme
    X, y = load_digits(return_X_y=True)
    probs = GaussianNB().fit(X, y).predict_proba(X)
    deviation = float(np.max(np.abs(probs.sum(axis=1) - 1)))
    assert _formatted(deviation, ".1e") == "6.7e-15"
    assert deviation < float(row_sum_tolerance(np.float64, 10, xp=compat_numpy))
    assert crossent.entropy(probs).shape == (len(y),)  # accepted as it is
