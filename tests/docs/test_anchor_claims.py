"""What the docs say about the anchors (SciPy, PyTorch, Optax, torchmetrics), checked.

The comparison table appears twice (README.md and docs/differs.md): both copies must say
the same. Every issue number cited in the docs or a docstring must be one that was read
and found to say what the text says it does (main cited scipy#12553 for
``scipy.stats.entropy``'s renormalisation, a number that could not be traced to it). The
claims the table makes about other libraries are measured where those libraries are
installed; Optax is not, so its row is measured on Optax's own formula, run in JAX.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

# Each issue cited, with what it is about (read when it was cited).
VERIFIED_ISSUES = {
    "torchmetrics#3510": "calibration error counts a confidence of exactly 1.0 in an extra bin",
    "scipy#23064": "asks for a switch to skip stats.entropy's input normalisation",
    "optax#1267": "NaNs with optax.losses.sigmoid_focal_loss for small gamma",
    "Megatron-LM issue #737": "label smoothing's mean log-probability taken over the shard",
    "pytorch#90067": "forward-mode AD on autograd.Function internal asserts if any output "
    "is non-differentiable (open; 'Expected both tensor and its forward grad to be "
    "floating point or complex')",
}
_REFERENCE = re.compile(r"\b(?:[A-Za-z][\w.-]*#\d+|Megatron-LM issue #\d+)")


def _documents() -> list[Path]:
    docs = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "docs").glob("*/*.md")]
    return [p for p in docs if p.name != "changelog.md"] + sorted((ROOT / "src").rglob("*.py"))


def test_cited_issue_numbers_are_the_verified_ones() -> None:
    cited = {
        (match, str(path.relative_to(ROOT)))
        for path in _documents()
        for match in _REFERENCE.findall(path.read_text())
    }
    assert cited, "no issue reference found: the pattern is broken"
    unknown = sorted((ref, path) for ref, path in cited if ref not in VERIFIED_ISSUES)
    assert not unknown, unknown


def _anchor_table(path: Path) -> list[str]:
    """The rows of the table whose header is ``| situation | crossent | elsewhere |``."""
    lines = path.read_text().splitlines()
    start = lines.index("| situation | crossent | elsewhere |")
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def test_the_two_copies_of_the_comparison_table_agree() -> None:
    readme = _anchor_table(ROOT / "README.md")
    differs = _anchor_table(ROOT / "docs" / "differs.md")
    assert len(readme) > 10
    assert readme == differs


def test_xlogy_row_torch_gives_a_nan_gradient_at_zero() -> None:
    """`0 log 0` row: torch.xlogy's gradient at 0 is NaN; crossent's entropy is finite."""
    torch = pytest.importorskip("torch")
    import crossent

    row = next(r for r in _anchor_table(ROOT / "docs" / "differs.md") if "`0 log 0`" in r)
    assert "NaN gradient from `torch.xlogy`" in row
    p = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    (-torch.xlogy(p, p).sum()).backward()
    assert p.grad is not None
    assert torch.isnan(p.grad[0])
    q = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    crossent.entropy(q).backward()
    assert q.grad is not None
    assert bool(torch.isfinite(q.grad).all())


def test_xlogy_row_optax_kl_formula_gives_a_nan_gradient_in_its_targets() -> None:
    """Optax's ``kl_divergence`` (optax/losses/_classification.py), its formula verbatim."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    row = next(r for r in _anchor_table(ROOT / "docs" / "differs.md") if "`0 log 0`" in r)
    assert "Optax's `kl_divergence` in its targets (its formula, run in JAX" in row

    def kl_divergence(log_predictions: object, targets: object) -> object:
        loss = targets * (jnp.where(targets == 0, 0, jnp.log(targets)) - log_predictions)
        return jnp.sum(loss, axis=-1)

    grad = jax.grad(kl_divergence, argnums=1)(jnp.log(jnp.array([0.5, 0.5])), jnp.array([0.0, 1.0]))
    assert bool(jnp.isnan(grad[0]))
    assert bool(jnp.isfinite(grad[1]))


def test_scipy_row_entropy_renormalises_as_its_docstring_says() -> None:
    stats = pytest.importorskip("scipy.stats")
    row = next(r for r in _anchor_table(ROOT / "docs" / "differs.md") if "rows not summing" in r)
    assert "renormalises silently, as its docstring says" in row
    assert "normalize" in (stats.entropy.__doc__ or "")
    rounded = np.array([3, 6, 8, 11, 14, 17, 14, 11, 8, 6, 3]) / 100  # sums to 1.01
    assert stats.entropy(rounded) == pytest.approx(stats.entropy(rounded / rounded.sum()), 1e-15)


def test_install_text_says_there_is_no_release_while_there_is_none() -> None:
    """Main's index said ``pip install crossent``: there is no release to install."""
    unreleased = (
        "crossent has not had a release yet" in (ROOT / "docs" / "changelog.md").read_text()
    )
    index = " ".join((ROOT / "docs" / "index.md").read_text().split())
    readme = " ".join((ROOT / "README.md").read_text().split())
    if unreleased:
        assert "There is no release on PyPI yet: install from a clone" in index
        assert "Install with `pip install crossent`" not in index
        assert "crossent has no release on PyPI yet" in readme


def _lbfgs_recipe(logits: np.ndarray, labels: np.ndarray, lr: float, steps: int) -> float:
    """Temperature scaling as the widely copied reference code does it: T from 1.5,
    ``torch.optim.LBFGS([T], lr=lr, max_iter=steps)`` on the NLL, no constraint."""
    torch = pytest.importorskip("torch")
    t = torch.nn.Parameter(torch.full((1,), 1.5, dtype=torch.float64))
    opt = torch.optim.LBFGS([t], lr=lr, max_iter=steps)
    z, y = torch.from_numpy(logits), torch.from_numpy(labels)

    def closure() -> object:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / t, y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(t.item())


def test_temperature_row_the_lbfgs_recipe_stops_short_and_runs_off() -> None:
    """The table's figures: the calibration demo's data (logits x 3, labels drawn from the
    logits), and a model worse than chance (labels drawn from the negated logits)."""
    pytest.importorskip("torch")
    import crossent

    row = next(r for r in _anchor_table(ROOT / "docs" / "differs.md") if "temperature scaling" in r)
    assert "it stopped at T = 1.77 where the optimum is 2.98" in row
    assert "T went past 4000" in row
    rng = np.random.default_rng(0)

    def drawn(z: np.ndarray) -> np.ndarray:
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return (rng.random((len(z), 1)) > np.cumsum(p, axis=1)).sum(axis=1)

    z = rng.normal(size=(2000, 5)) * 2
    labels = drawn(z)
    optimum = crossent.TemperatureScaling(guard=False).fit(3 * z, labels).fitted_temperature_
    assert f"{optimum:.2f}" == "2.98"
    assert f"{_lbfgs_recipe(3 * z, labels, 0.01, 50):.2f}" == "1.77"
    worse = drawn(-z)
    bounded = crossent.TemperatureScaling(guard=False).fit(z, worse)
    assert bounded.at_bound_  # crossent stops at its bound (20), and says so
    assert _lbfgs_recipe(z, worse, 0.1, 500) > 4000


def test_last_bin_row_torchmetrics_counts_a_confidence_of_one_apart() -> None:
    """torchmetrics#3510, measured on the installed torchmetrics (the table names 1.9)."""
    torch = pytest.importorskip("torch")
    torchmetrics = pytest.importorskip("torchmetrics")
    from torchmetrics.functional.classification import binary_calibration_error

    import crossent

    row = next(r for r in _anchor_table(ROOT / "docs" / "differs.md") if "exactly 1.0" in r)
    assert "a hidden extra bin in torchmetrics 1.9 (torchmetrics#3510)" in row
    if not torchmetrics.__version__.startswith("1.9"):
        pytest.skip(f"the row is about torchmetrics 1.9; {torchmetrics.__version__} installed")
    preds, target = [0.95, 1.0], [1, 0]  # both in the last of 10 bins: |0.975 - 0.5|
    theirs = binary_calibration_error(torch.tensor(preds), torch.tensor(target), n_bins=10)
    ours = crossent.calibration_error(np.array(preds), target, scope="positive-class", bins=10)
    assert ours.value == pytest.approx(0.475, rel=1e-12)
    assert float(theirs) == pytest.approx(0.525, rel=1e-6)  # 1.0 alone in an 11th bin


def test_cupy_is_named_only_as_untested_while_no_test_runs_it() -> None:
    """Main listed CuPy among the libraries that work, beside the tested ones."""
    tests = ROOT / "tests"
    if any("import cupy" in p.read_text() for p in tests.rglob("*.py") if p != Path(__file__)):
        pytest.skip("a test runs CuPy now: the docs may say it works")
    for path in (ROOT / "README.md", ROOT / "docs" / "index.md"):
        text = " ".join(path.read_text().split())
        for sentence in re.split(r"(?<=[.:;])\s", text):
            if "CuPy" in sentence:
                assert "untested" in sentence or "no test runs it" in sentence, (path, sentence)
