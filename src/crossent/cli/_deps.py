"""Optional dependencies of the CLI, imported when a command needs them."""

from __future__ import annotations

import importlib
from types import ModuleType

import crossent

from .._hints import install_command

__all__ = ["require"]


def require(module: str, purpose: str, *, extra: str) -> ModuleType:
    """Import ``module``, or raise :class:`crossent.MissingDependencyError` (exit 2) naming
    what needs it and the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".", 1)[0]
        raise crossent.MissingDependencyError(
            f"{purpose} needs {package}, which is not installed: {install_command(extra)}"
        ) from exc
