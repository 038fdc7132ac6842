"""Docstring fragments of the loss families, written once (as SciPy's ``doccer`` does).

Applied by :func:`._batch.prepared_by` to every public loss and gradient it makes:

* ``%(key)s`` stands for ``FRAGMENTS[key]``: a section two families share;
* a gradient twin (``prepared_by(prepare, twin=loss)``) gets its Parameters section,
  every argument "As in :func:`loss`", written from the shared signature, so the list
  cannot drift from it.

The rendered docstrings are what the hand-written ones were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

__all__ = ["FRAGMENTS", "render"]

FRAGMENTS = {  # written as they stand in a module-level function's docstring (indent 4)
    "focal_references": (
        "References\n"
        "    ----------\n"
        '    .. [1] T.-Y. Lin, P. Goyal, R. Girshick, K. He and P. Dollar, "Focal Loss for Dense\n'
        '       Object Detection", ICCV 2017, arXiv:1708.02002.'
    ),
}


def render(doc: str, *, parameters: Iterable[str], twin: Callable[..., object] | None) -> str:
    """``doc`` with its fragments filled in and, for a ``twin``, its Parameters section."""
    for key, text in FRAGMENTS.items():
        doc = doc.replace(f"%({key})s", text)
    if twin is None:
        return doc
    returns = "\n    Returns\n"
    if doc.count(returns) != 1:
        raise ValueError(f"{twin.__name__}'s twin needs one Returns section in its docstring")
    section = (
        "\n    Parameters\n    ----------\n"
        f"    {', '.join(parameters)}\n"
        f"        As in :func:`{twin.__name__}`.\n"
    )
    return doc.replace(returns, section + returns)
