"""Information measures on distributions: surprisal, entropy, cross-entropy, KL, JS."""

from . import _measures, _pointwise
from ._measures import *  # noqa: F403 (the names of _measures.__all__)
from ._pointwise import *  # noqa: F403 (the names of _pointwise.__all__)

# The package exports its modules' names; each list is kept once, in its module.
__all__ = _measures.__all__ + _pointwise.__all__
