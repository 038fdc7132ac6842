"""Issue 11: the shared keyword groups are declared once, and no public signature moved.

``test_issue11_public_signatures.json`` holds ``str(inspect.signature(f))`` for every
function in ``crossent.__all__`` and ``crossent.torch.__all__`` and for the methods a
user calls on the exported classes (``__init__``, ``forward``, ``fit``, ...), as main
had them before the loss families composed their signatures from shared keyword groups
(``losses/_batch.py``): names, order, defaults, kinds and annotations (as strings). A
deliberate change of the public API updates the file with::

    python tests/test_issue11_public_signatures.py > tests/test_issue11_public_signatures.json
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import pytest

FIXTURE = Path(__file__).with_suffix(".json")
METHODS = ("__init__", "forward", "fit", "transform", "update", "compute", "merge")


def signatures(module_name: str) -> dict[str, str]:
    """Every exported function's and user-facing method's signature, as text."""
    module = importlib.import_module(module_name)
    found: dict[str, str] = {}
    for name in module.__all__:
        obj: Any = getattr(module, name)
        if inspect.isfunction(obj):
            found[name] = str(inspect.signature(obj))
        elif inspect.isclass(obj):
            for method in METHODS:
                if inspect.isfunction(vars(obj).get(method)):
                    found[f"{name}.{method}"] = str(inspect.signature(getattr(obj, method)))
    return found


def _expected(module_name: str) -> dict[str, str]:
    return json.loads(FIXTURE.read_text())[module_name]


def test_issue11_crossent_signatures_unchanged() -> None:
    assert signatures("crossent") == _expected("crossent")


def test_issue11_crossent_torch_signatures_unchanged() -> None:
    pytest.importorskip("torch")
    assert signatures("crossent.torch") == _expected("crossent.torch")


if __name__ == "__main__":
    names = ["crossent", "crossent.torch"]
    json.dump({n: signatures(n) for n in names}, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
