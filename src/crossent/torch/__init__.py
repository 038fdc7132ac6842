"""PyTorch front end of crossent (optional: ``pip install crossent[torch]``).

``import crossent`` never imports torch; ``import crossent.torch`` does.

Distributed training and evaluation (:mod:`._vocab_parallel`, :mod:`._distributed_state`):

* :func:`vocab_parallel_cross_entropy` and :func:`vocab_parallel_linear_cross_entropy`:
  the softmax cross-entropy with the vocabulary sharded across a tensor-parallel group;
* :func:`all_reduce_state`: an :class:`crossent.EvaluationState` merged across ranks.
"""

from __future__ import annotations

from ._distributed_state import all_reduce_state
from ._vocab_parallel import vocab_parallel_cross_entropy, vocab_parallel_linear_cross_entropy

__all__ = [
    "all_reduce_state",
    "vocab_parallel_cross_entropy",
    "vocab_parallel_linear_cross_entropy",
]
