"""Write the API reference page from ``crossent.__all__``, so no public name is left out.

Each public name goes to the section of the subpackage that defines it (information
measures, losses, evaluation and calibration, errors); autosummary then makes one page
per name from its numpydoc docstring, formula included.  ``crossent.torch`` gets its own
section when it exists and torch is installed; otherwise the section is left out, so
the reference builds without torch.  The page is written at ``config-inited`` into
``docs/api/index.rst`` (generated, not committed).

A class's page (``docs/_templates/autosummary/class.rst``) documents the public methods
and properties that crossent's own code defines (:func:`class_members`), each with its
docstring, and none of what it inherits from torch's ``nn.Module``, ``tuple`` or
``object``.  A reference to a bare public name (``:class:`InputError``` in a
``crossent.torch`` docstring) resolves to ``crossent.<name>`` (:func:`resolve_public_name`).
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

__all__ = [
    "SECTIONS",
    "api_sections",
    "class_members",
    "escape_shape_stars",
    "reference_rst",
    "resolve_public_name",
    "setup",
]

SECTIONS = {
    "crossent.info": (
        "Information measures",
        "Measures on distributions: surprisal, entropy, cross-entropy, KL and JS divergence, "
        "perplexity, the binary case.",
    ),
    "crossent.losses": (
        "Losses from logits",
        "Each loss with its gradient twin (``..._grad``), for any Array-API array.",
    ),
    "crossent.calibration": (
        "Evaluation and calibration",
        "Proper scores, calibration error, bootstrap intervals, recalibrators and the "
        "streaming state.",
    ),
    "crossent.errors": ("Errors", "The exceptions crossent raises on bad input."),
}
"""Section title and summary for the public names defined under each subpackage."""

_OTHER = ("Other", "")


def _section_of(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or ""
    for prefix in SECTIONS:
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return "other"


def api_sections() -> list[tuple[str, str, str, list[str], list[str]]]:
    """(title, summary, module, documented names, constants) per section, in page order.

    Every name of ``crossent.__all__`` lands in exactly one section; classes and
    functions are documented through autosummary, data (``__version__``,
    ``CALIBRATION_PRESETS``) as constants.
    """
    import crossent

    groups: dict[str, list[str]] = {key: [] for key in [*SECTIONS, "other"]}
    constants: list[str] = []
    for name in crossent.__all__:
        obj = getattr(crossent, name)
        if inspect.isclass(obj) or callable(obj):
            groups[_section_of(obj)].append(name)
        else:
            constants.append(name)
    sections = [
        (*SECTIONS.get(key, _OTHER), "crossent", names, [])
        for key, names in groups.items()
        if names
    ]
    sections.append(("Constants", "", "crossent", [], constants))
    torch_api = _optional_module("crossent.torch")
    if torch_api is not None:
        names = list(getattr(torch_api, "__all__", []))
        sections.append(
            (
                "PyTorch: crossent.torch",
                "Functional losses and modules for PyTorch (needs the ``torch`` extra).",
                "crossent.torch",
                names,
                [],
            )
        )
    return sections


def _optional_module(name: str) -> Any:
    """The module, or None when it does not exist or its dependencies are missing."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _constant_rst(module: str, name: str) -> list[str]:
    value = getattr(importlib.import_module(module), name)
    if name == "__version__":
        text = f"The version of crossent, as installed (this build: ``{value}``)."
    elif isinstance(value, dict):
        keys = ", ".join(f"``{key!r}``" for key in value)
        text = (
            "Named calibration-error conventions of other libraries, for "
            f":func:`calibration_error`'s ``preset``: {keys}."
        )
    else:
        text = f"``{value!r}``"
    return [f".. py:data:: {name}", "", f"   {text}", ""]


def reference_rst() -> str:
    """The reStructuredText of the API reference page."""
    lines = [
        "API reference",
        "=============",
        "",
        "Every public name of ``crossent`` and ``crossent.torch`` (their ``__all__``, listed",
        "automatically), grouped by what it computes. Each page gives the definition as a",
        "formula, the parameters with their shapes, the errors raised, and an example that",
        "the test suite runs; a class's page documents its methods.",
        "",
    ]
    for title, summary, module, names, constants in api_sections():
        lines += [title, "-" * len(title), ""]
        if summary:
            lines += [summary, ""]
        lines += [f".. currentmodule:: {module}", ""]
        if names:
            lines += [".. autosummary::", "   :toctree: generated", "   :nosignatures:", ""]
            lines += [f"   {name}" for name in names]
            lines.append("")
        for name in constants:
            lines += _constant_rst(module, name)
    return "\n".join(lines) + "\n"


def class_members(cls: type) -> dict[str, list[str]]:
    """The public ``methods`` and ``properties`` that crossent's own classes give ``cls``.

    Walks the method resolution order and keeps what a class of a ``crossent`` module
    defines with a docstring of its own, in definition order (a private base's included);
    members that torch's ``nn.Module``, ``tuple`` or ``object`` provide (autodoc would show
    their docstrings, such as ``nn.Module.forward``'s), members without a docstring, and
    dataclass or named-tuple fields (the class docstring's Attributes section) are left
    out.
    """
    methods: list[str] = []
    properties: list[str] = []
    seen: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("crossent"):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            seen.add(name)
            if not getattr(value, "__doc__", None):
                continue  # e.g. a module's ``forward``: its class docstring says what it is
            if isinstance(value, property):
                properties.append(name)
            elif inspect.isfunction(value) or isinstance(value, classmethod | staticmethod):
                methods.append(name)
    return {"methods": methods, "properties": properties}


def _members_context() -> dict[str, dict[str, list[str]]]:
    """``class_members`` of every public class, by its documented full name."""
    context = {}
    for _, _, module, names, _ in api_sections():
        package = importlib.import_module(module)
        for name in names:
            obj = getattr(package, name)
            if inspect.isclass(obj):
                context[f"{module}.{name}"] = class_members(obj)
    return context


def _write_reference(app: Any, config: Any) -> None:
    target = Path(app.srcdir) / "api" / "index.rst"
    target.parent.mkdir(parents=True, exist_ok=True)
    text = reference_rst()
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    config.autosummary_context = {
        **config.autosummary_context,
        "crossent_members": _members_context(),
    }


def resolve_public_name(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a Python reference to a bare public name (``InputError``) as ``crossent.<name>``.

    Docstrings of ``crossent.torch`` and of the private modules name the library's own
    errors and classes without their package; Sphinx looks for them in the current
    module only and, under ``nitpicky``, warns.  Other targets are left to Sphinx.
    """
    import crossent

    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or target not in crossent.__all__:
        return None
    domain = env.get_domain("py")
    return domain.resolve_xref(
        env,
        node["refdoc"],
        app.builder,
        node["reftype"],
        f"crossent.{target}",
        node,
        contnode,
    )


_QUOTED = re.compile(r"(``.*?``|`[^`]*`)")
_SHAPE_STAR = re.compile(r"([\(\[]|, )\*(?=[A-Za-z_])")


def escape_shape_stars(line: str) -> str:
    """``shape (*batch, classes)`` read as text, not as the start of an emphasis.

    The docstrings write array shapes the Python way; reStructuredText would take the
    ``*`` for emphasis and warn.  Only stars outside backquotes that open a shape
    (after ``(``, ``[`` or ``, ``) are escaped, so real emphasis and math are kept.
    """
    parts = _QUOTED.split(line)
    for i in range(0, len(parts), 2):  # the even parts are outside backquotes
        parts[i] = _SHAPE_STAR.sub(r"\1\\*", parts[i])
    return "".join(parts)


def _escape_docstring(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    lines[:] = [escape_shape_stars(line) for line in lines]


def setup(app: Any) -> dict[str, Any]:
    app.connect("config-inited", _write_reference)
    app.connect("autodoc-process-docstring", _escape_docstring, priority=100)
    app.connect("missing-reference", resolve_public_name)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
