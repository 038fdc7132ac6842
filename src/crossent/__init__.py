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

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _installed_version

from . import calibration, info, losses
from ._report import Report, ReportComparison, compare_reports, report
from .calibration import *  # noqa: F403 -- calibration.__all__
from .errors import CrossentError, InputError, InputTypeError, MissingDependencyError

# info.__all__ module by module: type checkers do not follow info's computed __all__
from .info._measures import *  # noqa: F403
from .info._pointwise import *  # noqa: F403
from .losses import *  # noqa: F403 -- losses.__all__

try:
    __version__ = _installed_version("crossent")
except _PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

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
