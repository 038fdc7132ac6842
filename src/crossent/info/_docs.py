"""Docstring sections the measures share, written once (as SciPy's ``doccer`` does).

``%(key)s`` in a measure's docstring stands for ``SECTIONS[key]``, filled in by
:func:`fill_shared_sections` when the module is imported. The texts are written as they
stand in a module-level function's docstring (indent 4), without the first line's indent.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["SECTIONS", "fill_shared_sections"]

_RAISES_AS_CROSS_ENTROPY = """Raises
    ------
    InputError, InputTypeError
        As in :func:`cross_entropy`."""

SECTIONS = {
    "raises_as_cross_entropy": _RAISES_AS_CROSS_ENTROPY,
    # The Parameters, Returns and Raises of a two-sided measure (KL, JS).
    "two_sided_sections": f"""Parameters
    ----------
    p, q : array_like, shapes (*batch_p, classes) and (*batch_q, classes)
        P and Q; batch shapes broadcast.
    axis, base, p_form, q_form, validate
        As in :func:`cross_entropy`.

    Returns
    -------
    array, shape broadcast(*batch_p, *batch_q)

    {_RAISES_AS_CROSS_ENTROPY}""",
}


def fill_shared_sections(*functions: Callable[..., object]) -> None:
    """Replace ``%(key)s`` by ``SECTIONS[key]`` in each function's docstring, in place."""
    for function in functions:
        doc = function.__doc__ or ""
        for key, text in SECTIONS.items():
            doc = doc.replace(f"%({key})s", text)
        if "%(" in doc:
            raise ValueError(f"{function.__name__}'s docstring names an unknown shared section")
        function.__doc__ = doc
