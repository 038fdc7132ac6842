"""Issue 13, "Small inputs": the per-call work on the loss families changed no result.

Every call listed in ``issue13_small_family_cases.py`` (focal, poly-1, hinge, soft-target
cross-entropy, distillation, sigmoid cross-entropy and sigmoid focal, each with its
gradient; shapes (10,) to (3, 4, 10), every class axis, weights, ignore_index, every
reduction, the families' options, float16 to float64) gives the same type, dtype,
shape and bits as the code of ``main`` before that work, and every bad call the same
exception type and message. The expected outcomes were recorded from that code (see the
cases module), never from the code under test, with three exceptions made on purpose
afterwards: ``sigmoid_focal_loss`` cases that main answered with NaN (and its
RuntimeWarning) now record the definition's value (+inf, the mean of terms one of which
is +inf), fixed and proved against an oracle in ``test_sigmoid_focal_saturated.py``;
and 21 results re-recorded on 2026-12-02 from the code of that day (under
``benchmarks/emulate_avx2.sh``, whose other 1307 outcomes were the recorded ones bit for
bit), changed on purpose by two later fixes that this file, skipped on AVX-512
machines, had not seen: the float32 and float16 ``softmax_focal_loss_grad`` and
``poly1_cross_entropy(_grad)`` calls (``|c_float32``, ``|c_float16``), computed in
float64 and rounded once since aa0924a (the full path's values,
``test_issue13_small_soft_paths.py`` and ``test_issue13_blocked_widen.py``), and the 16
``softmax_cross_entropy_with_targets_grad`` calls with ``soft_cap`` (``|4|``), whose
chain rule is ``sech^2`` as ``4u/(1 + u)^2`` since f5c2d07 (exact to an ulp where
``1 - tanh^2`` cancelled; proved in
``test_issue13_soft_cap_chain_rule.py`` against mpmath).  The six ``|mixed`` messages
(the label ``"abc"``) were rewritten on 2026-12-05 by hand to the message that names the
value and how to map class names to indices (``tests/test_first_contact_labels_reprs_install.py``).
Two recorded results are left out of the comparison since 2026-12-07 (``_CHANGED_ON_PURPOSE``):
the smoothed ``sigmoid_cross_entropy_grad`` of the ``sat`` and ``hard`` rows, whose logits
past +-700 were up to 1.26e6 ulps off before branch hostile1 and are now within an ulp of
mpmath (``test_issue13_hostile_losses71.py``). They could not be recorded again: no AVX2
machine was at hand, and ``emulate_avx2.sh`` on a Zen 4 does not reproduce the recorded
bits of those two calls before the change either (there 270 results differ from the file,
on main as after the change). Six more since branch hostile3 (2026-12-07): the smoothed
``sigmoid_cross_entropy`` calls whose ``1 - t'`` is now ``(1 - eps)(1 - t) + eps/2``
(the loss within an ulp of mpmath where ``1 - fl(t')`` lost its digits,
``tests/pytorch/test_issue13_hostile_torch72.py``); the six keys are those whose outcome
differs between main and that branch on this machine (every other of the 220 sigmoid
outcomes the same).

The results were recorded on an AMD EPYC (AVX2), where NumPy's float64 ``exp``, ``log``,
``log1p`` and ``expm1`` are the C library's. On a CPU where NumPy runs its own SIMD
code for them (AVX-512, ARM) their last bits differ, and so do main's results there:
the recorded bits cannot apply, and the comparison is skipped (394 of 1065 float64
results differ on an Emerald Rapids Xeon, on main as on the code after it). There the
shortcuts are held to the full path of the same process, bit for bit, by the
``test_issue13_small_*`` files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossent.losses._small_label_families import libm_is_numpys
from losses.issue13_small_family_cases import bad_cases, cases, record

_EXPECTED: dict[str, str] = json.loads(
    (Path(__file__).parent / "data" / "issue13_small_families.json").read_text(encoding="utf-8")
)
_CASES = cases()
_BAD = bad_cases()


def test_issue13_small_families_every_recorded_call_is_listed() -> None:
    assert sorted(key for key, _ in _CASES + _BAD) == sorted(_EXPECTED)


_RECORDING_MATH = pytest.mark.skipif(
    not libm_is_numpys(),
    reason="recorded where NumPy's float64 exp/log/log1p/expm1 are the C library's; not here",
)


_CHANGED_ON_PURPOSE = frozenset(
    {
        "sigmoid_cross_entropy_grad|hard|mean|1|True",
        "sigmoid_cross_entropy_grad|sat|mean|1|True",
        # 1 - t' of smoothed targets as (1 - eps)(1 - t) + eps/2 (branch hostile3)
        "sigmoid_cross_entropy|a|none|1|True",
        "sigmoid_cross_entropy|c|mean|1|True",
        "sigmoid_cross_entropy|c|sum|1|True",
        "sigmoid_cross_entropy|c|none|1|True",
        "sigmoid_cross_entropy|c|parts|1|True",
        "sigmoid_cross_entropy|c_w|none|1|True",
    }
)


def test_issue13_small_families_changed_on_purpose_are_recorded_calls() -> None:
    assert _CHANGED_ON_PURPOSE.issubset(_EXPECTED)


@_RECORDING_MATH
def test_issue13_small_families_result_is_bit_for_bit_main() -> None:
    """Every recorded call but those changed on purpose (one test, not 1212: each was
    1.5-2 ms of pytest's own time, skipped or not, CI time); the keys of all that differ
    in the message."""
    differ = [
        key
        for key, call in _CASES
        if key not in _CHANGED_ON_PURPOSE and record(call) != _EXPECTED[key]  # type: ignore[arg-type]
    ]
    assert not differ, (len(differ), differ[:20])


@pytest.mark.parametrize(("key", "call"), _BAD, ids=[key for key, _ in _BAD])
def test_issue13_small_families_error_is_main(key: str, call: object) -> None:
    outcome = record(call)  # type: ignore[arg-type]
    assert outcome.startswith("raises ")
    assert outcome == _EXPECTED[key]
