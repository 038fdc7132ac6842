"""Issue 11 leftover: ``crossent/_report`` calls no private method of another object
(it used ``EvaluationState._add_block``); what it shares with ``calibration`` has a
package-internal name without a leading underscore
(``calibration._state.add_summarized_block``)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "crossent"


def _private_calls(source: str) -> list[str]:
    """``x._name(...)`` calls in ``source`` on anything but ``self``/``cls``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name, owner = node.func.attr, node.func.value
        if not name.startswith("_") or name.endswith("__"):
            continue
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        found.append(f"{node.lineno}: {ast.unparse(node.func)}(...)")
    return found


def test_issue11_report_calls_no_private_method_of_another_object() -> None:
    assert _private_calls("state._add_block(block, rows, start)") != []  # the check bites
    calls = {
        path.name: _private_calls(path.read_text())
        for path in sorted((SRC / "_report").glob("*.py"))
    }
    assert {name: found for name, found in calls.items() if found} == {}
