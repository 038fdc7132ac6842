"""Information measures on distributions: surprisal, entropy, cross-entropy, KL, JS."""

# Each name is listed once, in its module's ``__all__``; the star imports re-export
# exactly those (also for type checkers).
from . import _measures, _pointwise
from ._measures import *  # noqa: F403
from ._pointwise import *  # noqa: F403

__all__ = sorted([*_measures.__all__, *_pointwise.__all__])
