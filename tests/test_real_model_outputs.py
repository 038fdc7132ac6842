"""Real model outputs as practitioners hold them, through the Python API (issue 13).

Hugging Face causal-LM logits ``(B, T, V)`` in bfloat16 with labels ``(B, T)`` using
``-100``; scikit-learn's ``predict_proba`` beside its string ``y`` and ``classes_``; a
binary classifier's ``(n, 1)`` column; pandas frames with string label columns.  Each
either gives the number of an independent oracle (float64 ``torch.nn.functional``,
scikit-learn's ``log_loss`` and ``brier_score_loss``) or one clear error that says what
to do.  On main the string labels were refused even with ``class_names`` given, and the
-100, ``(n, 1)`` and ``(B, T, V)`` errors did not say what to do.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent

torch = pytest.importorskip("torch")
F = torch.nn.functional


# ------------------------------------------------------------ Hugging Face causal LM


def _causal_lm(vocab: int = 50257) -> tuple[object, object]:
    """bfloat16 logits (2, 33, vocab) and labels with -100 on padding (row 1 from 20 on)."""
    generator = torch.Generator().manual_seed(0)
    logits = (torch.randn(2, 33, vocab, generator=generator) * 3).to(torch.bfloat16)
    labels = torch.randint(0, vocab, (2, 33), generator=generator)
    labels[1, 20:] = -100
    return logits, labels


def test_causal_lm_minus_100_is_refused_with_the_mask_to_apply() -> None:
    logits, labels = _causal_lm()
    shifted = logits[:, :-1].reshape(-1, logits.shape[-1])
    targets = labels[:, 1:].reshape(-1)
    for call in (
        lambda: crossent.report(shifted, targets, form="logits", resamples=10),
        lambda: crossent.negative_log_likelihood(shifted, targets, form="logits"),
        lambda: crossent.EvaluationState(logits.shape[-1]).update(shifted, targets, form="logits"),
    ):
        with pytest.raises(crossent.InputError) as info:
            call()
        assert "keep = labels != -100, then logits[keep], labels[keep]" in str(info.value)


def test_causal_lm_sequence_shapes_are_refused_with_the_reshape() -> None:
    logits, labels = _causal_lm()
    with pytest.raises(crossent.InputError) as info:
        crossent.report(logits, labels, form="logits", resamples=10)
    message = str(info.value)
    assert message.startswith("`predictions` has shape (2, 33, 50257) and `labels` (2, 33)")
    assert "predictions.reshape(-1, 50257) and labels.reshape(-1)" in message
    assert "logits[:, :-1]" in message
    assert "keep = labels != -100" in message


@pytest.mark.parametrize("vocab", [50257, 128256])
def test_causal_lm_masked_as_told_gives_torch_perplexity(vocab: int) -> None:
    """What the messages say to do gives the perplexity of F.cross_entropy(ignore_index)
    in float64.  Passes on main (the advice works there too); mutant-guarded: the state's
    perplexity from a float32 mean (``_exp(float(np.float32(surprisal)))``) fails it."""
    logits, labels = _causal_lm(vocab)
    shifted = logits[:, :-1].reshape(-1, vocab)
    targets = labels[:, 1:].reshape(-1)
    oracle = F.cross_entropy(shifted.double(), targets, ignore_index=-100).item()
    keep = targets != -100
    result = crossent.report(shifted[keep], targets[keep], form="logits", resamples=10).to_dict()
    assert result["n"] == int(keep.sum())
    assert result["nll_nats"] == pytest.approx(oracle, rel=1e-13)
    assert result["perplexity"] == pytest.approx(math.exp(oracle), rel=1e-12)
    state = crossent.EvaluationState(vocab).update(shifted[keep], targets[keep], form="logits")
    assert state.compute().nll == pytest.approx(oracle, rel=1e-13)


# ------------------------------------------------------------ scikit-learn, pandas

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def _classifier(classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """predict_proba-like rows (float64, columns in sorted ``classes_`` order) and y."""
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(400, len(classes))) * 2
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    y = np.array(classes)[rng.integers(0, len(classes), size=400)]
    return probs, y


@pytest.mark.parametrize("classes", [("cat", "dog"), ("ant", "bee", "cow")])
def test_sklearn_string_labels_with_classes_give_log_loss_and_brier(
    classes: tuple[str, ...],
) -> None:
    probs, y = _classifier(classes)
    result = crossent.report(probs, y, class_names=np.array(classes), resamples=10).to_dict()
    assert result["nll_nats"] == pytest.approx(
        sklearn_metrics.log_loss(y, probs, labels=list(classes)), rel=1e-13
    )
    onehot = (y[:, None] == np.array(classes)[None, :]).astype(np.float64)
    assert result["brier"] == pytest.approx(np.mean(np.sum((probs - onehot) ** 2, axis=1)))
    assert result["accuracy"] == pytest.approx(
        np.mean(np.array(classes)[probs.argmax(axis=1)] == y)
    )


def test_binary_column_with_string_labels_and_two_names() -> None:
    probs, y = _classifier(("cat", "dog"))
    result = crossent.report(probs[:, 1], y, class_names=["cat", "dog"], resamples=10).to_dict()
    assert result["brier"] == pytest.approx(
        2 * sklearn_metrics.brier_score_loss(y, probs[:, 1], pos_label="dog"), rel=1e-13
    )
    assert result["nll_nats"] == pytest.approx(sklearn_metrics.log_loss(y, probs), rel=1e-13)


def test_pandas_frame_columns_name_string_label_column() -> None:
    pandas = pytest.importorskip("pandas")
    probs, y = _classifier(("ant", "bee", "cow"))
    frame = pandas.DataFrame(probs, columns=["ant", "bee", "cow"])
    frame["label"] = y
    for labels in (frame["label"], frame["label"].astype("category")):
        result = crossent.report(frame[["ant", "bee", "cow"]], labels, resamples=10).to_dict()
        assert result["nll_nats"] == pytest.approx(sklearn_metrics.log_loss(y, probs), rel=1e-13)


def test_string_labels_without_names_say_to_pass_class_names() -> None:
    probs, y = _classifier(("cat", "dog"))
    with pytest.raises(crossent.InputTypeError, match=r"class_names=clf\.classes_"):
        crossent.report(probs, y, resamples=10)


def test_a_string_label_naming_no_class_is_named() -> None:
    probs, y = _classifier(("cat", "dog"))
    y = y.astype(object)
    y[7] = "cta"
    with pytest.raises(crossent.InputError) as info:
        crossent.report(probs, y, class_names=["cat", "dog"], resamples=10)
    assert str(info.value) == (
        "`labels` row 7 is 'cta', which names no class (class_names: 'cat', 'dog')"
    )


def test_numbers_written_as_text_keep_the_cast_message() -> None:
    """Passes on main; mutant-guarded: without the fall-through for numbers written as
    text (``if False:``), these got the class_names message instead of the cast."""
    with pytest.raises(crossent.InputTypeError, match=r"pass labels\.astype\(np\.int64\)"):
        crossent.report(np.full((2, 2), 0.5), np.array(["1", "0"]), resamples=10)


# ------------------------------------------------------------ a binary (n, 1) column


@pytest.mark.parametrize("call", ["negative_log_likelihood", "calibration_error"])
def test_one_column_binary_probabilities_say_to_pass_the_column(call: str) -> None:
    probs, y = _classifier(("0", "1"))
    labels = y.astype(np.int64)
    with pytest.raises(crossent.InputError) as info:
        getattr(crossent, call)(probs[:, 1:], labels)
    assert str(info.value).endswith(
        "One column (n, 1) is a distribution over one class; a binary classifier's "
        "P(label = 1) is passed as shape (n,): probs[:, 0]"
    )
    # as told: the column, shape (n,), gives scikit-learn's log loss
    assert crossent.negative_log_likelihood(probs[:, 1], labels) == pytest.approx(
        sklearn_metrics.log_loss(labels, probs[:, 1]), rel=1e-13
    )


# ------------------------------------------------------------ integer classes_ not 0..K-1


@pytest.mark.parametrize(
    ("classes", "said"),
    [
        ((-1, 1), "If -1 marks positions to ignore, drop those rows first (keep = labels != -1"),
        ((1, 2, 3), "Labels are the columns' positions 0 to 2; "),
    ],
    ids=["minus-one-one", "one-two-three"],
)
def test_sklearn_integer_classes_say_how_to_map_them(classes: tuple[int, ...], said: str) -> None:
    """``classes_`` of [-1, 1] or [1, 2, 3] beside ``y``: refused (label out of range)
    with the map to positions, which then gives scikit-learn's log loss."""
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(len(classes)), size=300)
    y = np.array(classes)[rng.integers(0, len(classes), size=300)]
    with pytest.raises(crossent.InputError) as info:
        crossent.negative_log_likelihood(probs, y)
    assert said in str(info.value)
    assert str(info.value).endswith("np.searchsorted(clf.classes_, labels)")
    positions = np.searchsorted(np.array(classes), y)
    assert crossent.negative_log_likelihood(probs, positions) == pytest.approx(
        sklearn_metrics.log_loss(y, probs, labels=list(classes)), rel=1e-13
    )


def test_class_names_ordering_a_frame_otherwise_are_refused_for_string_labels() -> None:
    """A frame ['dog', 'cat'] with class_names ['cat', 'dog'] renamed each column as the
    other: string labels would have been read against the wrong columns (a wrong NLL)."""
    pandas = pytest.importorskip("pandas")
    probs, y = _classifier(("cat", "dog"))
    frame = pandas.DataFrame(probs[:, ::-1], columns=["dog", "cat"])
    with pytest.raises(crossent.InputError, match=r"pass frame\[class_names\]"):
        crossent.report(frame, y, class_names=["cat", "dog"], resamples=10)
    result = crossent.report(frame[["cat", "dog"]], y, class_names=["cat", "dog"], resamples=10)
    assert result.to_dict()["nll_nats"] == pytest.approx(
        sklearn_metrics.log_loss(y, probs), rel=1e-13
    )
