"""`crossent demo TOPIC` as a learner types it: any case, `_` or a space for `-`, and the
seeds' own words (`surprise`, `BCE`, the `p - y` gradient) for the topics that hold them.
On main `demo Entropy`, `demo cross_entropy` and `demo surprise` were refused (exit 2).
"""

from __future__ import annotations

import pytest

from crossent.cli import main


def _demo(capsys: pytest.CaptureFixture[str], topic: str) -> str:
    code = main(["demo", topic])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    return out


@pytest.mark.parametrize(
    ("typed", "topic"),
    [
        ("Entropy", "entropy"),
        ("cross_entropy", "cross-entropy"),
        ("Cross Entropy", "cross-entropy"),
        ("surprise", "surprisal"),
        ("BCE", "binary"),
        ("gradient", "softmax"),
        ("label_smoothing", "smoothing"),
        ("KL-Divergence", "kl"),
    ],
)
def test_learner_demo_topic_as_typed(
    capsys: pytest.CaptureFixture[str], typed: str, topic: str
) -> None:
    assert _demo(capsys, typed) == _demo(capsys, topic)


def test_learner_demo_unknown_topic_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "Focal"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "invalid choice: 'focal'" in err
    assert "'surprisal'" in err  # the topics are listed
