"""Issue 11: no package imports a private module of a sibling package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "crossent"
PACKAGES = ("info", "calibration", "losses")


def _private_imports_of_siblings(package: str) -> list[str]:
    found = []
    for path in sorted((SRC / package).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level != 2 or not node.module:
                continue
            sibling, _, module = node.module.partition(".")
            if module and sibling != package and module.split(".")[-1].startswith("_"):
                found.append(f"{path.name}: from ..{node.module} import ...")
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_issue11_no_package_imports_a_siblings_private_module(package: str) -> None:
    assert _private_imports_of_siblings(package) == []


def test_issue11_the_old_kernel_and_side_locations_are_gone() -> None:
    import importlib.util

    assert importlib.util.find_spec("crossent.info._kernels") is None
    assert importlib.util.find_spec("crossent.info._sides") is None


def test_issue11_recalibration_is_split_and_its_solver_named_truly() -> None:
    from crossent.calibration import _recalibrators, _temperature

    assert "TOMS" not in (_temperature.__doc__ or "")
    assert "safeguarded Newton" in (_temperature.__doc__ or "")
    assert _temperature.TemperatureScaling.__module__ == _temperature.__name__
    assert _recalibrators.VectorScaling.__module__ == _recalibrators.__name__
