"""The public surface: what crossent exports, documents, and does not import."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import crossent


def _modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(crossent.__path__, prefix="crossent.")
        if not info.name.endswith("__main__")
    ]


_OPTIONAL_DEPENDENCIES = frozenset({"numba", "llvmlite", "torch", "jax", "matplotlib", "triton"})
"""What the extras install; a module that imports one is skipped where it is absent."""


@pytest.mark.parametrize("name", ["crossent", *_modules()])
def test_every_module_declares_all_and_it_matches_its_public_names(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:  # a module of an optional extra (the *_numba kernels)
        if error.name in _OPTIONAL_DEPENDENCIES:
            pytest.skip(f"{name} needs {error.name}, which is not installed")
        raise
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and not inspect.ismodule(value)
        and getattr(value, "__module__", name) == name
    }
    declared = set(module.__all__)
    assert public <= declared, f"{name}: public but not in __all__: {public - declared}"
    assert all(hasattr(module, attr) for attr in declared)


def test_import_crossent_imports_no_torch_jax_or_matplotlib() -> None:
    code = (
        "import sys, crossent; crossent.entropy([0.5, 0.5]);"
        "print(sorted(m for m in ('torch', 'jax', 'matplotlib', 'triton') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", [n for n in crossent.__all__ if callable(getattr(crossent, n))])
def test_public_callables_have_numpydoc_docstrings(name: str) -> None:
    obj = getattr(crossent, name)
    doc = inspect.getdoc(obj) or ""
    assert doc, name
    if inspect.isfunction(obj):
        for section in ("Parameters", "Returns", "Examples"):
            assert f"\n{section}\n" in doc, f"{name} lacks {section}"
        assert ".. math::" in doc, f"{name} lacks its formula"


ARRAY_ARGUMENTS = (
    "p",
    "q",
    "logits",
    "labels",
    "targets",
    "student_logits",
    "teacher",
    "probs",
    "probs_a",
    "probs_b",
    "metric",
    "diagram",
    "predictions",  # issue 14: crossent.report(predictions, labels, /, ...)
    "reports",  # issue 14: crossent.compare_reports(reports, /, ...)
)


def test_arrays_are_positional_only_and_options_keyword_only() -> None:
    for name in crossent.__all__:
        obj = getattr(crossent, name)
        if not inspect.isfunction(obj):
            continue
        for param in inspect.signature(obj).parameters.values():
            if param.name in ARRAY_ARGUMENTS:
                assert param.kind is inspect.Parameter.POSITIONAL_ONLY, (name, param.name)
            else:
                assert param.kind is inspect.Parameter.KEYWORD_ONLY, (name, param.name)


def test_version_is_a_string() -> None:
    assert isinstance(crossent.__version__, str)


@pytest.mark.parametrize("name", ["crossent", "crossent.torch"])
def test_package_namespace_holds_only_its_api_and_submodules(name: str) -> None:
    # Stray imports (``from importlib.metadata import version``) would otherwise show up
    # as public attributes of the package, in tab completion and in the docs' inventory.
    if name == "crossent.torch":
        pytest.importorskip("torch")
    module = importlib.import_module(name)
    stray = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_") and not inspect.ismodule(value)
    } - set(module.__all__)
    assert not stray, f"{name}: public attributes outside __all__: {sorted(stray)}"
