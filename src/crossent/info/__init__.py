"""Information measures on distributions: surprisal, entropy, cross-entropy, KL, JS."""

from ._measures import (
    CrossEntropyDecomposition,
    cross_entropy,
    cross_entropy_decomposition,
    entropy,
    js_divergence,
    kl_divergence,
    perplexity,
)
from ._pointwise import (
    binary_cross_entropy,
    binary_cross_entropy_grad,
    binary_entropy,
    surprisal,
)

__all__ = [
    "CrossEntropyDecomposition",
    "binary_cross_entropy",
    "binary_cross_entropy_grad",
    "binary_entropy",
    "cross_entropy",
    "cross_entropy_decomposition",
    "entropy",
    "js_divergence",
    "kl_divergence",
    "perplexity",
    "surprisal",
]
