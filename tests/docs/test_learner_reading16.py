"""A learner's sixteenth reading of the tutorials: each sentence added or corrected, checked.

- The code-length page wrote a whole sequence's cost as ``n * H(P_hat, Q)``, the
  cross-entropy of the symbols' frequencies against one ``Q``, for a model whose
  prediction ``Q_i`` changes with every pixel's neighbours: the cost is ``n`` times the
  mean per-symbol cross-entropy (what ``softmax_cross_entropy(..., base=2)`` returns),
  which no single ``Q`` reproduces here.
- The seed tutorials' three predictions (confident and right, confident and wrong,
  uniform, and the ``0.333`` typed for a third) and "the true distribution is always the
  first argument" (``H(P, Q) != H(Q, P)``) had no tutorial; the cross-entropy page now
  states them, pinned here with mpmath at 40 digits.
- The distillation page called the reverse direction "mode-seeking" without saying what
  it means; its new example (a student that kept one of two teacher classes) is pinned.
- The hinge page's claims about other libraries' slope at the kink (``jnp.maximum`` and
  ``torch.maximum`` half, ``torch.clamp`` whole, ``torch.relu`` none, Optax's
  ``multiclass_hinge_loss`` half) had no test: measured here, Optax's by its formula run
  in JAX (Optax is not installed), as ``test_anchor_claims`` does for its ``kl_divergence``.
"""

from __future__ import annotations

import numpy as np
import pytest
from tests.learner_pages import MP, ROOT
from tests.learner_pages import prose as _prose

import crossent


def _nats(q: float) -> str:
    return f"{float(-MP.log(MP.mpf(q))):.4f}"


def test_learner16_code_length_cost_is_n_times_the_mean_cross_entropy() -> None:
    """The context model's total bits are n x the mean, and no single Q gives them."""
    text = _prose("code-length.md")
    assert "n \\cdot H(\\hat P, Q) \\text{ in bits}" not in text
    assert "\\sum_{i=1}^{n} -\\log_2 q_i(x_i) \\;=\\; n \\cdot \\bar H \\text{ bits}" in text
    assert "the mean is what `softmax_cross_entropy(..., base=2)` returns" in text
    # A context model: two contexts, each with its own prediction Q_i.
    logits = np.log(np.array([[0.9, 0.1], [0.9, 0.1], [0.2, 0.8], [0.2, 0.8], [0.2, 0.8]]))
    symbols = np.array([0, 1, 1, 1, 0])
    exact = MP.fsum(-MP.log(MP.mpf(float(np.exp(logits[i, s])))) for i, s in enumerate(symbols))
    exact_bits = exact / MP.log(2)
    mean = crossent.softmax_cross_entropy(logits, symbols, base=2)
    total = crossent.softmax_cross_entropy(logits, symbols, base=2, reduction="sum")
    assert len(symbols) * mean == pytest.approx(float(exact_bits), rel=1e-14)
    assert total == pytest.approx(float(exact_bits), rel=1e-14)
    # n H(P_hat, Q) with P_hat the frequencies [0.4, 0.6]: no Q of the model's gives it.
    p_hat = np.bincount(symbols, minlength=2) / len(symbols)
    for q in np.exp(logits):
        assert abs(len(symbols) * crossent.cross_entropy(p_hat, q, base=2) - total) > 0.3


def test_learner16_three_predictions_and_the_typed_third() -> None:
    text = _prose("cross-entropy-kl.md")
    assert "The uniform guess costs $\\log 3 = 1.0986$ nats." in text
    assert "prints $-\\log 0.333 = 1.0996$ instead: that $Q$ sums to 0.999" in text
    truth = [1.0, 0.0, 0.0]
    for guess, oracle in (([0.9, 0.07, 0.03], 0.9), ([0.05, 0.9, 0.05], 0.05)):
        assert f"{crossent.cross_entropy(truth, guess):.4f}" == _nats(oracle)
    assert f"{float(MP.log(3)):.4f}" == "1.0986"
    assert f"{crossent.cross_entropy(truth, [1 / 3] * 3):.4f}" == "1.0986"
    assert _nats(0.333) == "1.0996"
    with pytest.raises(crossent.InputError):
        crossent.cross_entropy(truth, [0.333] * 3)


def test_learner16_cross_entropy_is_not_symmetric() -> None:
    text = _prose("cross-entropy-kl.md")
    assert (
        "The cross-entropy is not symmetric either, $H(P, Q) \\ne H(Q, P)$: the truth goes first."
        in text
    )
    assert crossent.cross_entropy([0.7, 0.2, 0.1], [1.0, 0.0, 0.0]) == np.inf
    forward = -(MP.mpf("0.7") * MP.log(MP.mpf("0.5")) + MP.mpf("0.3") * MP.log(MP.mpf("0.5")))
    reverse = -(MP.mpf("0.5") * MP.log(MP.mpf("0.7")) + MP.mpf("0.5") * MP.log(MP.mpf("0.3")))
    assert crossent.cross_entropy([0.7, 0.3], [0.5, 0.5]) == pytest.approx(
        float(forward), rel=1e-15
    )
    assert crossent.cross_entropy([0.5, 0.5], [0.7, 0.3]) == pytest.approx(
        float(reverse), rel=1e-15
    )
    assert f"{float(reverse):.4f}" == "0.7803" != f"{float(forward):.4f}"


def test_learner16_mode_seeking_example() -> None:
    text = _prose("distillation.md")
    assert "which is called **mode-seeking**" in text
    assert "only $\\log 2 = 0.6931$ nats off in the reverse one" in text
    student, teacher = [[0.0, 1.0, 0.0]], [[0.5, 0.5, 0.0]]
    assert crossent.kl_divergence(teacher, student)[0] == np.inf
    reverse = crossent.kl_divergence(student, teacher)[0]
    assert reverse == pytest.approx(float(MP.log(2)), rel=1e-15)
    assert f"{reverse:.4f}" == "0.6931"


def test_learner16_hinge_kink_slopes_of_other_libraries() -> None:
    """The hinge page's parenthesis, measured: the slope each rule takes at 0."""
    text = _prose("hinge.md")
    claim = (
        "`jnp.maximum(0, ...)` and `torch.maximum(0, ...)` take half the slope at the kink, "
        "`torch.clamp(..., min=0)` the whole slope and `torch.relu` none; Optax's "
        "`multiclass_hinge_loss` takes half."
    )
    assert claim in text
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    slopes = {}
    rules = {
        "maximum": lambda x: torch.maximum(torch.zeros((), dtype=x.dtype), x),
        "clamp": lambda x: torch.clamp(x, min=0),
        "relu": torch.relu,
    }
    for name, rule in rules.items():
        x = torch.zeros((), dtype=torch.float64, requires_grad=True)
        rule(x).backward()
        assert x.grad is not None
        slopes[name] = float(x.grad)
    assert slopes == {"maximum": 0.5, "clamp": 1.0, "relu": 0.0}
    assert float(jax.grad(lambda x: jnp.maximum(0.0, x))(0.0)) == 0.5

    def optax_multiclass_hinge_loss(scores: object, labels: object) -> object:
        """optax.losses.multiclass_hinge_loss's formula, verbatim."""
        one_hot = jax.nn.one_hot(labels, scores.shape[-1])  # type: ignore[attr-defined]
        return jnp.max(scores + 1.0 - one_hot, axis=-1) - jnp.sum(scores * one_hot, axis=-1)

    z = jnp.array([2.0, 1.0, 0.1])  # margin exactly 1: the kink
    theirs = np.asarray(jax.grad(optax_multiclass_hinge_loss)(z, 0))
    np.testing.assert_array_equal(theirs, [-0.5, 0.5, 0.0])  # half the full slope
    full = np.array([-1.0, 1.0, 0.0])  # the slope just past the kink
    np.testing.assert_array_equal(theirs, full / 2)
    ours = crossent.multiclass_hinge_loss_grad(np.array([2.0, 1.0, 0.1]), 0)
    np.testing.assert_array_equal(ours, [0.0, 0.0, 0.0])  # crossent's subgradient 0
    # "... under `jax.grad` or PyTorch's autograd give the same one."
    under_jax = jax.grad(lambda v: crossent.multiclass_hinge_loss(v, jnp.array(0), validate=False))
    np.testing.assert_array_equal(np.asarray(under_jax(z)), [0.0, 0.0, 0.0])
    x = torch.tensor([2.0, 1.0, 0.1], dtype=torch.float64, requires_grad=True)
    crossent.multiclass_hinge_loss(x, torch.tensor(0)).backward()
    assert x.grad is not None
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


def test_learner16_demo_distillation_names_what_gives_4() -> None:
    """Main's note read "a factor 4.1 from T = 4 to T = 8 here, 4 would be 1/T^2"."""
    import io

    from crossent.cli._demo import run_demo

    out = io.StringIO()
    run_demo(out, "distillation")
    text = " ".join(out.getvalue().split())
    assert "4 would be 1/T^2" not in text
    assert "a factor 4.1 from T = 4 to T = 8 here, where 1/T^2 gives 4)" in text
    # The factor: the KL gradient's largest entry at T = 4 over that at T = 8, by hand.
    teacher = np.array([[9.0, 5.0, 4.5, 0.0, -2.0]])
    student = np.array([[6.0, 4.0, 4.0, 1.0, 0.0]])

    def kl_grad(t: float) -> float:
        s = np.exp(student / t - (student / t).max())
        s /= s.sum()
        v = np.exp(teacher / t - (teacher / t).max())
        v /= v.sum()
        return float(np.abs((s - v) / t).max())  # the gradient of D(v||s) in z: (s - v) / T

    assert f"{kl_grad(4.0) / kl_grad(8.0):.1f}" == "4.1"
    assert (8.0 / 4.0) ** 2 == 4


def test_docs_streams_join_a_line_flushed_in_two_chunks() -> None:
    """A build on a loaded machine showed ``crossent:`` over `` [-0.249156 ...]``.

    myst-nb's merge joins chunks with ``rstrip() + "\\n"``; the site's extension joins
    them as printed before myst-nb tidies the end.
    """
    pytest.importorskip("myst_nb")
    nbformat = pytest.importorskip("nbformat")
    import importlib.util

    from myst_nb.core.utils import coalesce_streams

    spec = importlib.util.spec_from_file_location(
        "crossent_streams", ROOT / "docs" / "_ext" / "crossent_streams.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def outputs() -> list[object]:
        return [
            nbformat.from_dict({"output_type": "stream", "name": "stdout", "text": t})
            for t in ("crossent:     ", " [-0.249156  0.152145]\n(p(T) - y)/T:  [0.1]\n")
        ]

    printed = "crossent:      [-0.249156  0.152145]\n(p(T) - y)/T:  [0.1]\n"
    assert coalesce_streams(outputs())[0]["text"] != printed  # myst-nb's own merge
    chunks = outputs()
    merged = coalesce_streams(module.join_stream_chunks(chunks))
    assert len(merged) == 1
    assert merged[0]["text"] == printed
    assert isinstance(merged[0], type(chunks[0]))
    assert chunks[0]["text"] == "crossent:     "  # the kernel's own nodes untouched
    # Other outputs keep their places; stderr's chunks are joined apart from stdout's.
    mixed = [
        nbformat.from_dict({"output_type": "stream", "name": "stderr", "text": "warn"}),
        nbformat.from_dict({"output_type": "display_data", "data": {}, "metadata": {}}),
        nbformat.from_dict({"output_type": "stream", "name": "stderr", "text": "ing\n"}),
    ]
    joined = module.join_stream_chunks(mixed)
    assert [o["output_type"] for o in joined] == ["stream", "display_data"]
    assert joined[0]["text"] == "warning\n"


def test_learner16_jeffreys_interval_as_the_calibration_page_defines_it() -> None:
    """The page named the Jeffreys interval without saying what it is; now it does."""
    stats = pytest.importorskip("scipy.stats")
    text = _prose("calibration.md")
    assert (
        "(for $h$ right out of $n$ predictions, the 2.5 % and 97.5 % quantiles of the "
        "$\\mathrm{Beta}(h + \\tfrac12, n - h + \\tfrac12)$ distribution:"
    ) in text
    probs = np.array([0.95, 0.92, 0.97, 0.91, 0.55, 0.6])
    labels = np.array([1, 1, 0, 1, 0, 1])
    diagram = crossent.reliability_diagram(probs, labels, scope="positive-class", bins=10)
    for b in np.flatnonzero(diagram.count):
        n = int(diagram.count[b])
        h = round(float(diagram.accuracy[b]) * n)
        low, high = stats.beta.ppf([0.025, 0.975], h + 0.5, n - h + 0.5)
        assert diagram.accuracy_low[b] == pytest.approx(low, rel=1e-12)
        assert diagram.accuracy_high[b] == pytest.approx(high, rel=1e-12)


def test_learner16_seed_surprise_table_and_its_zero_at_p_zero() -> None:
    """The seed's surprise code returns 0 at p = 0 and rounds 1/36 to 0.03."""
    text = _prose("surprise-entropy.md")
    assert (
        "calls the impossible event the least surprising of all; the exact value is $+\\infty$."
        in text
    )
    assert crossent.surprisal(0.0, base=2) == np.inf
    assert (
        "gets $-\\log_2 0.03 = 5.06$ bits where the exact surprise is $\\log_2 36 = 5.17$ bits."
        in text
    )
    assert f"{float(-MP.log(MP.mpf('0.03'), 2)):.2f}" == "5.06"
    assert f"{float(MP.log(36, 2)):.2f}" == "5.17"
    assert f"{crossent.surprisal(1 / 36, base=2):.2f}" == "5.17"
    assert round(1 / 36, 2) == 0.03
