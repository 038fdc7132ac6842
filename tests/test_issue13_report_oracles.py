"""Issue 13: every number of ``crossent.report`` against independent oracles, on
scikit-learn models' real outputs (scikit-learn's built-in datasets, no downloads).

Models: LogisticRegression, GaussianNB (probabilities within 1e-20 of 0 and 1) and
RandomForest (exact 0/1 probabilities, ties, values exactly on the 15-bin edges 0.2,
0.4, 0.6, 0.8); binary given as 1-D ``P(y = 1)`` and as two columns, three and ten
classes; probabilities, log-probabilities and logits.  Oracles: sums in float64 with
``math.fsum``, scikit-learn's metrics, torchmetrics' binned calibration error, SciPy's
bounded minimiser for the temperature, the smooth calibration error's defining integral
by direct quadrature, a naive bootstrap for the interval.

All of these agreed on main (a guard), except the two rendering tests at the end (the
HTML's reliability-bin labels and gate row), which fail on main.

Where an oracle is not one: torchmetrics bins in float32, so it puts a probability of
exactly 0.2 (a 15-bin edge) in another bin than the float64 edges do, and its L2 norm
differs from sqrt(sum_b w_b gap_b^2) computed by hand; relplot's smECE discretises the
reflected kernel so that mass at 0 and 1 moves its value by up to 20 % (breast cancer,
unscaled LogisticRegression, P(y = 1): 0.0384 against the defining integral's 0.0330,
which crossent matches to 1e-8); the smooth test below uses the integral.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

import numpy as np
import pytest

import crossent
from crossent._report import _text

sklearn = pytest.importorskip("sklearn")
torch = pytest.importorskip("torch")
tm = pytest.importorskip("torchmetrics.functional.classification")
from scipy import optimize, special, stats  # noqa: E402
from sklearn import datasets, metrics  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.naive_bayes import GaussianNB  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

BINS = 15
_MODELS = {
    "lr": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
    "nb": GaussianNB,
    "rf": lambda: RandomForestClassifier(n_estimators=20, random_state=0),
}
_DATA = {
    "breast": datasets.load_breast_cancer,
    "iris": datasets.load_iris,
    "wine": datasets.load_wine,
    "digits": datasets.load_digits,
}
_CACHE: dict[tuple[str, str], tuple[Any, Any, Any]] = {}


def _fit(data: str, model: str) -> tuple[Any, Any, Any]:
    """(probabilities, labels, decision function or None) on the held-out half."""
    if (data, model) not in _CACHE:
        x, y = _DATA[data](return_X_y=True)
        x_fit, x_test, y_fit, y_test = train_test_split(
            x, y, test_size=0.5, random_state=0, stratify=y
        )
        fitted = _MODELS[model]().fit(x_fit, y_fit)
        probs = fitted.predict_proba(x_test)
        scores = fitted.decision_function(x_test) if model == "lr" else None
        _CACHE[data, model] = (probs, np.asarray(y_test, dtype=np.int64), scores)
    return _CACHE[data, model]


def _bin_of(conf: Any, closed: str = "left") -> Any:
    edges = np.linspace(0.0, 1.0, BINS + 1)
    side = "right" if closed == "left" else "left"
    return np.clip(np.searchsorted(edges, conf, side=side) - 1, 0, BINS - 1)


def _binned(conf: Any, hit: Any, norm: str = "l1") -> float:
    """The binned calibration error in float64 (15 equal-width [a, b) bins)."""
    index, n, terms = _bin_of(conf), conf.shape[0], []
    for b in range(BINS):
        inside = index == b
        if inside.any():
            terms.append((inside.sum() / n, hit[inside].mean() - conf[inside].mean()))
    if norm == "max":
        return max(abs(gap) for _, gap in terms)
    if norm == "l2":
        return math.sqrt(math.fsum(w * gap * gap for w, gap in terms))
    return math.fsum(w * abs(gap) for w, gap in terms)


def _curve(probs: Any, labels: Any, positive: bool) -> tuple[Any, Any]:
    if positive:
        return probs[:, 1], (labels == 1).astype(np.float64)
    return probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(np.float64)


def _smooth_integral(conf: Any, hit: Any, sigma: float, grid: int = 4001) -> float:
    """smECE_sigma by its definition: int_0^1 |1/n sum_i K_sigma(t, f_i) (y_i - f_i)| dt,
    K the Gaussian reflected at 0 and 1 (images a period away: the next are over
    1/sigma > 10 standard deviations away), trapezoidal."""
    t = np.linspace(0.0, 1.0, grid)[:, None]
    total = np.zeros(grid)
    assert sigma < 0.1
    for m in range(-1, 2):
        kernel = stats.norm.pdf((t - conf - 2 * m) / sigma) + stats.norm.pdf(
            (t + conf - 2 * m) / sigma
        )
        total += (kernel / sigma) @ (hit - conf)
    return float(np.trapezoid(np.abs(total / conf.shape[0]), t[:, 0]))


def _nll_at(scores: Any, labels: Any, temperature: float) -> float:
    scaled = scores / temperature
    rows = scaled[np.arange(labels.shape[0]), labels] - special.logsumexp(scaled, axis=1)
    return -math.fsum(rows) / labels.shape[0]


# (data, model, how the predictions are given)
CASES = [
    ("breast", "lr", "probs"),
    ("breast", "lr", "p1"),
    ("breast", "lr", "logit1"),
    ("breast", "nb", "probs"),
    ("breast", "nb", "p1"),
    ("breast", "rf", "probs"),
    ("breast", "rf", "p1"),
    ("iris", "lr", "logits"),
    ("wine", "nb", "log_probs"),
    ("wine", "rf", "probs"),
    ("digits", "lr", "probs"),
]


@pytest.mark.parametrize(("data", "model", "given"), CASES)
def test_issue13_report_numbers_match_oracles(data: str, model: str, given: str) -> None:
    probs, labels, decision = _fit(data, model)
    n = labels.shape[0]
    form, values = "probs", probs
    if given == "p1":  # a 1-D input means P(y = 0) = 1 - p_1, not the model's p_0
        values = probs[:, 1]
        probs = np.stack([1.0 - values, values], axis=1)
    elif given == "logit1":
        form, values = "logits", decision
        probs = np.stack([special.expit(-decision), special.expit(decision)], axis=1)
    elif given == "logits":
        form, values = "logits", decision
        probs = special.softmax(decision, axis=1)
    elif given == "log_probs":
        with np.errstate(divide="ignore"):
            form, values = "log_probs", np.log(probs)
    classes = probs.shape[1]
    d = crossent.report(values, labels, form=form, resamples=50).to_dict()
    positive = given in ("p1", "logit1")
    assert d["ece"]["scope"] == ("positive-class" if positive else "top-label")
    assert (d["n"], d["classes"]) == (n, classes)

    with np.errstate(divide="ignore"):
        log_true = np.log(probs[np.arange(n), labels])
    nll = -math.fsum(log_true) / n
    if math.isinf(nll):  # a RandomForest gave a true label probability 0
        assert d["nll_nats"] == d["nll_bits"] == d["perplexity"] == "inf"
        assert d["temperature"]["value"] is None
    else:
        assert d["nll_nats"] == pytest.approx(nll, rel=1e-13)
        assert d["nll_bits"] == pytest.approx(nll / math.log(2), rel=1e-13)
        assert d["perplexity"] == pytest.approx(math.exp(nll), rel=1e-13)
        if probs.min() > 1e-12:  # log_loss clips at the float64 epsilon
            assert d["nll_nats"] == pytest.approx(metrics.log_loss(labels, probs), rel=1e-9)
    onehot = np.eye(classes)[labels]
    assert d["brier"] == pytest.approx(math.fsum(((probs - onehot) ** 2).ravel()) / n, rel=1e-12)
    if classes == 2:
        assert d["brier"] == pytest.approx(2 * metrics.brier_score_loss(labels, probs[:, 1]))
    assert d["accuracy"] == metrics.accuracy_score(labels, probs.argmax(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(probs > 0, probs * np.log(probs), 0.0).sum(axis=1)
    assert d["mean_entropy_nats"] == pytest.approx(math.fsum(entropy) / n, rel=1e-10, abs=1e-15)
    spherical = probs[np.arange(n), labels] / np.sqrt((probs**2).sum(axis=1))
    assert d["spherical"] == pytest.approx(math.fsum(spherical) / n, rel=1e-12)

    # binned calibration error: float64 by hand, and torchmetrics (float32) where no
    # probability lies exactly on a bin edge
    conf, hit = _curve(probs, labels, positive)
    assert d["ece"]["value"] == pytest.approx(_binned(conf, hit), rel=1e-12, abs=1e-15)
    if model != "rf":
        if positive:
            oracle = tm.binary_calibration_error(torch.tensor(conf), torch.tensor(labels), BINS)
        else:
            oracle = tm.multiclass_calibration_error(
                torch.tensor(probs), torch.tensor(labels), classes, BINS
            )
        assert d["ece"]["value"] == pytest.approx(oracle.item(), abs=1e-6)
    assert d["ece"]["ci_low"] <= d["ece"]["value"] <= d["ece"]["ci_high"]

    # reliability bins (the non-empty ones, format 3): edges k/15, counts summing to n
    # (1.0 in the last bin), means
    rows, index = d["reliability_bins"], _bin_of(conf)
    counts = np.bincount(index, minlength=BINS)
    occupied = np.flatnonzero(counts).tolist()
    edges = np.linspace(0, 1, BINS + 1)
    assert [r["index"] for r in rows] == occupied
    assert [r["lower"] for r in rows] == edges[occupied].tolist()
    assert [r["upper"] for r in rows] == edges[1:][occupied].tolist()
    assert [r["count"] for r in rows] == counts[occupied].tolist()
    assert sum(r["count"] for r in rows) == n
    if np.any(conf == 1.0):
        assert rows[-1]["index"] == BINS - 1
        assert rows[-1]["count"] >= int(np.sum(conf == 1.0))
    for row in rows:
        inside = index == row["index"]
        assert row["confidence"] == pytest.approx(conf[inside].mean(), rel=1e-12)
        assert row["accuracy"] == pytest.approx(hit[inside].mean(), rel=1e-12)
        assert row["ci_low"] <= row["accuracy"] <= row["ci_high"]

    # per class: examples, recall, mean NLL, one-vs-rest ECE
    for k, row in enumerate(d["per_class"]):
        mine = labels == k
        assert row["count"] == int(mine.sum())
        assert row["accuracy"] == pytest.approx((probs[mine].argmax(axis=1) == k).mean())
        with np.errstate(divide="ignore"):
            want = -math.fsum(np.log(probs[mine, k])) / mine.sum()
        if math.isinf(want):
            assert row["nll_nats"] == "inf"
        else:
            assert row["nll_nats"] == pytest.approx(want, rel=1e-12)
        ovr = _binned(probs[:, k], mine.astype(np.float64))
        assert row["calibration_error"] == pytest.approx(ovr, rel=1e-12, abs=1e-15)

    # most surprising: the largest -log p_y, each with its own surprisal and argmax
    with np.errstate(divide="ignore"):
        surprisal = -log_true
    shown = d["most_surprising"]
    assert len(shown) == min(10, n)
    assert sorted(surprisal[[r["index"] for r in shown]], reverse=True) == pytest.approx(
        np.sort(surprisal)[::-1][: len(shown)], rel=1e-12
    )
    for r in shown:
        assert r["label"] == labels[r["index"]]
        assert r["predicted"] == int(np.argmax(probs[r["index"]]))

    # temperature: SciPy's bounded minimiser of the float64 NLL over log T
    t = d["temperature"]
    if t["value"] is not None:
        if form == "logits" and positive:
            scores = np.stack([np.zeros(n), decision], axis=1)
        elif form == "logits":
            scores = decision
        else:
            with np.errstate(divide="ignore"):  # a probability 0: log-score -inf
                scores = np.log(probs)
        best = optimize.minimize_scalar(
            lambda log_t: _nll_at(scores, labels, math.exp(log_t)),
            bounds=(math.log(0.05), math.log(20.0)),
            method="bounded",
            options={"xatol": 1e-12},
        )
        assert t["value"] == pytest.approx(math.exp(best.x), rel=1e-5)
        assert t["nll_nats"] == pytest.approx(_nll_at(scores, labels, t["value"]), rel=1e-12)
        assert t["nll_nats"] <= best.fun + 1e-13
        assert t["nll_nats"] <= d["nll_nats"]
        scaled = special.softmax(scores / t["value"], axis=1)
        assert t["ece"] == pytest.approx(
            _binned(*_curve(scaled, labels, positive)), rel=1e-10, abs=1e-15
        )


def test_issue13_report_smooth_ece_is_its_defining_integral() -> None:
    """The reported smECE is the fixed point smECE_sigma* = sigma* of the defining
    integral, on GaussianNB's confidences (most within 1e-6 of 1) and on P(y = 1)."""
    for model, positive in (("lr", True), ("nb", False)):
        probs, labels, _ = _fit("breast", model)
        values = probs[:, 1] if positive else probs
        if positive:  # a 1-D input means P(y = 0) = 1 - p_1
            probs = np.stack([1.0 - values, values], axis=1)
        s = crossent.report(values, labels, resamples=10).to_dict()["smooth_ece"]
        conf, hit = _curve(probs, labels, positive)
        assert s["value"] == pytest.approx(s["bandwidth"], abs=1e-5)
        assert s["value"] == pytest.approx(_smooth_integral(conf, hit, s["bandwidth"]), abs=2e-5)


@pytest.mark.parametrize("closed", ["left", "right"])
def test_issue13_report_bins_match_calibration_curve(closed: str) -> None:
    """scikit-learn's calibration_curve bins (a, b]; the report's closed="right" bins
    are its bins, and with closed="left" the means of those rows."""
    probs, labels, _ = _fit("breast", "nb")
    d = crossent.report(probs[:, 1], labels, resamples=10, closed=closed).to_dict()
    rows = [r for r in d["reliability_bins"] if r["count"]]
    if closed == "right":
        truth, mean = calibration_curve(labels, probs[:, 1], n_bins=BINS)
    else:
        index = _bin_of(probs[:, 1], "left")
        kept = [b for b in range(BINS) if (index == b).any()]
        truth = [labels[index == b].mean() for b in kept]
        mean = [probs[index == b, 1].mean() for b in kept]
    assert [r["accuracy"] for r in rows] == pytest.approx(truth, rel=1e-12)
    assert [r["confidence"] for r in rows] == pytest.approx(mean, rel=1e-12)


def test_issue13_report_norms_match_hand_and_torchmetrics() -> None:
    probs, labels, _ = _fit("digits", "lr")
    conf, hit = _curve(probs, labels, False)
    for norm in ("max", "l2"):
        value = crossent.report(probs, labels, resamples=10, norm=norm).to_dict()["ece"]["value"]
        assert value == pytest.approx(_binned(conf, hit, norm), rel=1e-12)
    worst = tm.multiclass_calibration_error(
        torch.tensor(probs), torch.tensor(labels), 10, BINS, norm="max"
    ).item()
    assert _binned(conf, hit, "max") == pytest.approx(worst, abs=1e-6)


def test_issue13_report_interval_is_the_percentile_bootstrap() -> None:
    """The report's 95 % interval against a naive percentile bootstrap (n rows drawn
    with replacement, the full sample's bin edges): ends within Monte Carlo error."""
    probs, labels, _ = _fit("digits", "lr")
    conf, hit = _curve(probs, labels, False)
    index, n = _bin_of(conf), labels.shape[0]
    rng = np.random.default_rng(12345)
    replicates = []
    for _ in range(3000):
        drawn = rng.integers(0, n, n)
        where = index[drawn]
        gap = np.bincount(where, hit[drawn], BINS) - np.bincount(where, conf[drawn], BINS)
        replicates.append(np.abs(gap).sum() / n)
    low, high = np.percentile(replicates, [2.5, 97.5])
    ece = crossent.report(probs, labels, resamples=3000, seed=1).to_dict()["ece"]
    assert (ece["confidence"], ece["resamples"]) == (0.95, 3000)
    assert ece["ci_low"] == pytest.approx(low, abs=2e-3)
    assert ece["ci_high"] == pytest.approx(high, abs=2e-3)


def test_issue13_report_gates_pass_at_equality_and_fail_one_ulp_below() -> None:
    probs, labels, _ = _fit("wine", "nb")
    d = crossent.report(probs, labels, resamples=10).to_dict()
    ece, nll = d["ece"]["value"], d["nll_nats"]
    at = crossent.report(probs, labels, resamples=10, max_ece=ece, max_nll=nll)
    assert at.passed
    assert [g["pass"] for g in at.to_dict()["gates"]] == [True, True]
    for below in ({"max_ece": math.nextafter(ece, 0)}, {"max_nll": math.nextafter(nll, 0)}):
        gated = crossent.report(probs, labels, resamples=10, **below)
        assert not gated.passed


def test_issue13_report_renderings_print_the_json_numbers() -> None:
    """The headline rows are the JSON values with 4 decimals (perplexity 3), rounded
    half-even as Python formats them; the HTML page shows those same strings."""
    probs, labels, _ = _fit("iris", "lr")
    result = crossent.report(probs, labels, resamples=10)
    d, rows = result.to_dict(), dict(result.metric_rows())
    assert rows["accuracy"] == f"{d['accuracy']:.4f}"
    assert rows["NLL (nats)"] == f"{d['nll_nats']:.4f}"
    assert rows["NLL (bits)"] == f"{d['nll_bits']:.4f}"
    assert rows["perplexity"] == f"{d['perplexity']:.3f}"
    ece = d["ece"]
    assert rows["calibration error (95% bootstrap interval)"] == (
        f"{ece['value']:.4f}  [{ece['ci_low']:.4f}, {ece['ci_high']:.4f}]"
    )
    page = result.to_html()
    for value in rows.values():
        assert html.escape(value) in page


def _bin_cells(page: str) -> list[str]:
    table = page[page.index("<h2>Reliability bins</h2>") :]
    table = table[: table.index("</table>")]
    return re.findall(r"<tr><td>([^<]*)</td>", table)


def test_issue13_report_html_bin_labels_tell_edges_apart() -> None:
    """FAILS on main: equal-mass bins of GaussianNB's near-1 confidences (edges
    0.999999403..., 0.99999999899..., ..., 0.999999999999996) were all printed
    ``[1.000, 1.000]``, and every bin as closed on both sides."""
    probs, labels, _ = _fit("breast", "nb")
    result = crossent.report(probs, labels, resamples=10, binning="quantile")
    rows, bins = result.to_dict()["reliability_bins"], result.to_dict()["bins"]
    cells = _bin_cells(result.to_html())
    assert len(cells) == len(rows)
    for cell, row in zip(cells, rows, strict=True):
        assert cell.startswith("[")
        assert cell.endswith("]" if row["index"] == bins - 1 else ")")
        lower, upper = (float(part) for part in cell[1:-1].split(", "))
        if row["lower"] != row["upper"]:
            assert lower != upper  # distinct edges print differently
        for shown, edge in ((lower, row["lower"]), (upper, row["upper"])):
            assert shown == pytest.approx(edge, abs=5e-4)
    # closed="right": the first bin [a, b], the others (a, b] (the non-empty ones listed)
    result = crossent.report(probs, labels, resamples=10, closed="right")
    indices = [row["index"] for row in result.to_dict()["reliability_bins"]]
    left_open = _bin_cells(result.to_html())
    assert indices[0] > 0  # no confidence below 0.5: the first bins are empty
    for cell, b in zip(left_open, indices, strict=True):
        assert cell == f"({b / 15:.3f}, {(b + 1) / 15:.3f}]"
    assert _text.bin_labels([{"index": 0, "lower": 0.0, "upper": 1 / 15}], "right", 15) == [
        "[0.000, 0.067]"
    ]


def test_issue13_report_html_gate_row_keeps_the_printed_order() -> None:
    """FAILS on main: the gate row printed the threshold with ``:g`` (0.1234567 as
    0.123457) and no value; a failed gate must print value > threshold, and does."""
    probs, labels, _ = _fit("wine", "nb")
    nll = crossent.report(probs, labels, resamples=10).to_dict()["nll_nats"]
    below = math.nextafter(nll, 0)
    page = crossent.report(probs, labels, resamples=10, max_nll=below).to_html()
    found = re.search(r"gate max_nll &lt;= ([0-9.e-]+) \(value ([0-9.e-]+)\)</td><td>FAIL", page)
    assert found is not None
    assert float(found.group(1)) == below  # the threshold as given
    assert float(found.group(2)) > float(found.group(1))
    page = crossent.report(probs, labels, resamples=10, max_ece=0.1234567).to_html()
    assert "gate max_ece &lt;= 0.1234567 (value" in page
