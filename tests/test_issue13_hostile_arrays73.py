"""Issue 13, stop 73: a hostile pass over the NumPy / Array-API surface of the measures
and losses (dtypes, label dtypes, layouts, ``out=``, torch and JAX arrays, subclasses,
form names) and the HTML report's names.  Each test pins a defect found there:

* a control character in a class, model or source name (NUL, ESC, DEL, BEL) reached the
  HTML report (``Report._repr_html_``, ``ReportComparison._repr_html_``, ``to_html``)
  as it was: ``html.escape`` leaves control characters alone and HTML forbids them; the
  command line prints them as escapes (``\\x1b``), and now so does the page;
* ``softmax_cross_entropy_grad(..., out=tensor)`` with PyTorch logits was taken for
  small CPU tensors (the host route writes into the tensor's NumPy view) and refused,
  "supported when `logits` and `out` are NumPy arrays; got `out` of type Tensor with
  `logits` of type Tensor", past the route's size or with logits that require grad:
  whether ``out`` was taken depended on the batch size;
* a masked array as ``out`` of float32 logits ended in Numba's ``NumbaTypeError:
  Unsupported array type: numpy.ma.MaskedArray`` (float64 logits wrote into it and
  returned the masked array, as they did an ``np.matrix``): ``out`` subclasses are now
  refused by name, as the inputs' masked entries are;
* a long double row that does not sum to 1 within long double's tolerance was refused
  with "row 0 sums to 1.0 (|error| 0 > tolerance 5.62e-17 ...)": the sum and its error
  read as float64, which rounds the error away.

Oracles: the same call without ``out`` on NumPy float64 (its own tests check it against
float64 torch and mpmath), the exact long double sum.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent

_CONTROL = ["\x00", "\x07", "\x1b", "\x7f"]


@pytest.fixture(scope="module")
def named_report() -> crossent.Report:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=30)
    labels = rng.integers(0, 3, 30)
    return crossent.report(
        probs,
        labels,
        class_names=["a\x00b", "c\x1b[2Jd", "e\x7f"],
        source="src\x07x",
        resamples=5,
    )


@pytest.fixture
def no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """The page without its figures, as without matplotlib (the text is the test's, and
    drawing them costs seconds of CPU): figure names have their own escapes."""
    from crossent._report import _html

    def absent(*args: object) -> None:
        raise ImportError("matplotlib")

    monkeypatch.setattr(_html, "figures", absent)
    monkeypatch.setattr(_html, "reliability_figure", absent)


@pytest.mark.usefixtures("no_figures")
def test_report_html_shows_control_characters_of_names_as_escapes(
    named_report: crossent.Report,
) -> None:
    page = named_report._repr_html_()
    assert not any(c in page for c in _CONTROL)
    assert r"c\x1b[2Jd" in page
    assert r"a\x00b" in page
    assert r"src\x07x" in page


@pytest.mark.usefixtures("no_figures")
def test_comparison_html_shows_control_characters_of_model_names_as_escapes(
    named_report: crossent.Report,
) -> None:
    comparison = crossent.compare_reports(
        [named_report, named_report], names=["m\x00one", "m\x1btwo"], resamples=5
    )
    page = comparison._repr_html_()
    assert not any(c in page for c in _CONTROL)
    assert r"m\x00one" in page
    assert r"m\x1btwo" in page


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "make_out",
    [
        lambda shape, dtype: np.ma.masked_array(np.zeros(shape, dtype), mask=np.eye(*shape)),
        lambda shape, dtype: np.matrix(np.zeros(shape, dtype)),
    ],
    ids=["masked", "matrix"],
)
def test_out_subclass_is_refused_by_name(make_out: object, dtype: type) -> None:
    logits = np.zeros((3, 4), dtype)
    out = make_out((3, 4), dtype)  # type: ignore[operator]
    with pytest.raises(crossent.InputTypeError, match=r"`out` must be a plain numpy.ndarray"):
        crossent.softmax_cross_entropy_grad(logits, [0, 1, 2], out=out)


torch = pytest.importorskip("torch")


@pytest.mark.parametrize(
    ("rows", "grad"),
    [(400, False), (4, True)],
    ids=["past-host-route-size", "logits-require-grad"],
)
def test_torch_out_is_taken_whatever_the_route(rows: int, grad: bool) -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(rows, 50))
    labels = rng.integers(0, 50, rows)
    z = torch.tensor(logits, requires_grad=grad)
    out = torch.full((rows, 50), float("nan"), dtype=torch.float64)
    got = crossent.softmax_cross_entropy_grad(z, torch.tensor(labels), out=out)
    assert got is out
    want = crossent.softmax_cross_entropy_grad(logits, labels)
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-13, atol=1e-17)


@pytest.mark.parametrize("rows", [4, 400])
@pytest.mark.parametrize(
    ("make_out", "match"),
    [
        (lambda z: z, "must not overlap `logits`"),
        (lambda z: torch.zeros_like(z).requires_grad_(True), "must not require grad"),
        (lambda z: torch.zeros_like(z).float(), r"must have dtype torch.float64"),
    ],
    ids=["aliasing-logits", "requiring-grad", "float32"],
)
def test_torch_out_that_cannot_be_written_is_named_at_any_size(
    rows: int, make_out: object, match: str
) -> None:
    z = torch.zeros(rows, 50, dtype=torch.float64)
    labels = torch.zeros(rows, dtype=torch.int64)
    with pytest.raises(crossent.CrossentError, match=match):
        crossent.softmax_cross_entropy_grad(z, labels, out=make_out(z))  # type: ignore[operator]


def test_long_double_row_sum_error_is_the_error_as_computed() -> None:
    probs = np.array([[0.5, 0.5]], dtype=np.longdouble)
    probs[0, 0] += np.longdouble(8e-17)  # past long double's tolerance (5.6e-17)
    total = probs[0].sum()
    assert total != 1
    assert float(total) == 1.0
    with pytest.raises(crossent.InputError) as caught:
        crossent.entropy(probs)
    message = str(caught.value)
    assert f"sums to {total!s} (|error| {float(total - 1):.3g} > tolerance" in message
