"""Losses from logits, each with its gradient twin.

Layout: one private module per loss family (``_softmax``, ``_sigmoid``, ``_focal``,
``_hinge``, ``_distill``, ``_poly``), each with one prepare step (the public signature
and every check) and two bodies over it, the loss and its gradient twin, made public by
``_batch.prepared_by``. A prepare step that shares a keyword group declares only its own
options and extends the step that declares the group (``_batch.extends``: focal, poly-1
and hinge extend ``_batch.labelled_batch``, the sigmoid focal loss the sigmoid
cross-entropy's). The keyword group of the losses of logits is declared once, as
``_batch.LossKeywords``; ``labelled_batch`` and the softmax entry points take it (all of
it, or less what they hide) through ``_batch.keywords_from``. The families share
``_batch`` (options, layout, labels, masks, reduction), ``_terms`` (the per-row terms of
the softmax losses, one function per option, with derivations), ``_reduction``
(reductions and :class:`LossParts`) and ``_docs`` (docstring fragments, and the twins'
Parameters sections). ``_cpu_kernels`` holds the optional fused float32 CPU kernels
(Numba) behind the softmax cross-entropy's value-and-gradient entry points. Small
NumPy calls of every family first try a compiled shortcut (``_softmax_small``,
``_small_label_families``, ``_small_targets``, ``_small_distill``, ``_small_sigmoid``,
each with a ``*_numba`` module imported on first use) that gives the full path's values
bit for bit, or None, and the full path runs. The softmax losses and distillation
check their NumPy result once for ``inf`` and form such rows again with scaled gaps
(``_far_gaps``: a gap past the float64 range weighed by a small target, issue 13).
No family imports another family's private names.
"""

from ._distill import distillation_loss, distillation_loss_grad
from ._focal import softmax_focal_loss, softmax_focal_loss_grad
from ._hinge import multiclass_hinge_loss, multiclass_hinge_loss_grad
from ._poly import poly1_cross_entropy, poly1_cross_entropy_grad
from ._reduction import LossParts
from ._sigmoid import (
    sigmoid_cross_entropy,
    sigmoid_cross_entropy_grad,
    sigmoid_focal_loss,
    sigmoid_focal_loss_grad,
)
from ._softmax import (
    softmax_cross_entropy,
    softmax_cross_entropy_grad,
    softmax_cross_entropy_with_targets,
    softmax_cross_entropy_with_targets_grad,
)

__all__ = [
    "LossParts",
    "distillation_loss",
    "distillation_loss_grad",
    "multiclass_hinge_loss",
    "multiclass_hinge_loss_grad",
    "poly1_cross_entropy",
    "poly1_cross_entropy_grad",
    "sigmoid_cross_entropy",
    "sigmoid_cross_entropy_grad",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_grad",
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "softmax_cross_entropy_with_targets",
    "softmax_cross_entropy_with_targets_grad",
    "softmax_focal_loss",
    "softmax_focal_loss_grad",
]
