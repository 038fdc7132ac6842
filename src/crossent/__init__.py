"""crossent: exact cross-entropy and its information-theory family.

Measures (``surprisal``, ``entropy``, ``cross_entropy``, ``kl_divergence``,
``js_divergence``, ``perplexity``, ...) work on NumPy and on any Array-API array
(PyTorch, JAX, CuPy) and return the same kind of array on the same device.  They are
exact at the limits (``0 log 0 = 0``; ``p > 0`` with ``q = 0`` is ``+inf``), never clip
or renormalise silently, and raise :class:`InputError` naming the argument, the row and
the value when given something that is not a distribution.

``import crossent`` imports neither torch nor jax. The public names are those of
``info``, ``losses`` and ``calibration`` (each lists them once, in its ``__all__``),
the report functions and the errors.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._main_start import exit_if_command as _exit_if_command

try:  # Ctrl-C here under `python -m crossent`: the command's line (_main_start)
    from . import calibration, info, losses
    from ._report import Report, ReportComparison, compare_reports, report
    from .calibration import *  # noqa: F403 -- calibration.__all__
    from .errors import CrossentError, InputError, InputTypeError, MissingDependencyError

    # info.__all__ module by module: type checkers do not follow info's computed __all__
    from .info._measures import *  # noqa: F403
    from .info._pointwise import *  # noqa: F403
    from .losses import *  # noqa: F403 -- losses.__all__
except KeyboardInterrupt:
    _exit_if_command()
    raise

if _TYPE_CHECKING:
    __version__: str

__all__ = [
    "CrossentError",
    "InputError",
    "InputTypeError",
    "MissingDependencyError",
    "Report",
    "ReportComparison",
    "__version__",
    "compare_reports",
    "report",
]
# Each package lists its public names once, in its own __all__.
__all__ += calibration.__all__
__all__ += info.__all__
__all__ += losses.__all__


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed package's metadata at its first use.

    ``importlib.metadata`` (with ``email``, ``zipfile`` and ``csv``) cost about 20 ms of
    every ``import crossent`` and every ``crossent`` command (issue 13); the version is
    looked up once, then kept as a plain module global.
    """
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("crossent")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        found = "0+unknown"
    globals()["__version__"] = found
    return found


def __dir__() -> list[str]:
    """The module's names, ``__version__`` included before its first use."""
    return sorted({*globals(), "__version__"})
