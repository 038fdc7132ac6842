"""A module global that imports its module on first use (issue 13: ``import crossent`` time).

SciPy's ``special`` costs about 0.2 s to import, and ``import crossent`` should not pay
it for every CLI call and subprocess. Functions that run once per call import what
they need inside themselves; the NumPy kernels of ``_numerics`` use ``scipy.special``
in a dozen places on a path where a function-level import statement costs 0.3 us of
a call of a few, so they use a :class:`LazyModule` global instead, which costs nothing
after its first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["LazyModule"]


class LazyModule:
    """Stand-in for the module ``name``, bound to the global ``alias`` of ``namespace``.

    The first attribute read imports the module and rebinds the global to the module
    itself, so later lookups of the global find the module directly (no stand-in, no
    ``__getattr__`` call); reads through a stand-in that is no longer bound (a copy
    taken before the first use, or one a test patched over) still forward to the module.

    Examples
    --------
    At module level, with the plain import for type checkers::

        if typing.TYPE_CHECKING:
            from scipy import special
        else:
            special = LazyModule("scipy.special", globals(), "special")
    """

    __slots__ = ("_alias", "_name", "_namespace")

    def __init__(self, name: str, namespace: dict[str, Any], alias: str) -> None:
        self._name = name
        self._namespace = namespace
        self._alias = alias

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            # Introspection (``inspect.unwrap``'s ``__wrapped__``, ``copy``'s
            # ``__deepcopy__``, doctest's collection) does not import the module.
            raise AttributeError(attr)
        module = importlib.import_module(self._name)
        if self._namespace.get(self._alias) is self:
            self._namespace[self._alias] = module
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"
