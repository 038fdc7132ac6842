r"""crossent for PyTorch: drop-in losses with fused autograd paths (``crossent[torch]``).

Change one import, ``import crossent.torch as F`` for the losses of
``torch.nn.functional`` (or ``crossent.torch.CrossEntropyLoss`` for
``nn.CrossEntropyLoss``), and get crossent's exact formula, its options (z-loss,
soft-capping, temperature), any integer target dtype, and errors that name the
argument, the row and the value.

Layering (each in its place, from the bottom):

* kernels: crossent's fused Numba CPU kernels (``crossent.losses._cpu_kernels``) and
  the block-wise torch code of the linear cross-entropy (``_linear.py``);
* adapter and launcher: ``_backend.py`` is the only module that touches
  ``crossent.losses``' private API; ``_launch.py`` hands a ``(rows, classes)`` tensor to
  it, zero-copy for float32 CPU tensors, in upcast blocks for bf16/fp16, and to the
  generic array-API path elsewhere;
* autograd: ``_ops.py`` registers the fused losses as ``torch.library`` custom ops
  with fake kernels and ``register_autograd`` (the custom-op form of an
  ``autograd.Function``), so ``torch.compile`` treats them as opaque; their numeric
  options travel as one ``float[]`` argument, encoded and decoded only by
  ``_backend.pack`` / ``_backend.unpack`` (while Dynamo traces ``cross_entropy`` of
  class ids, as one float64 tensor: ``_traced_options``; probability targets,
  ``distillation_loss``' temperature on the CPU ops, ``linear_cross_entropy``, BCE's
  smoothing and the softmax focal loss's ``gamma`` too);
* functional (``_functional.py``, ``_family.py``) and modules (``_modules.py``); the
  functional forms and the vocab-parallel losses share the argument checks and the
  option bundle (``_arguments.py``: one frozen ``CallOptions`` per call), the label
  handling (``_labels.py``) and the weighted mean (``_reduction.py``).

Design derivation (softmax cross-entropy). With :math:`z' = \operatorname{cap}_s(z)/T`,
smoothed target :math:`\tilde t = (1-\varepsilon)e_y + \varepsilon/C` and class weights
:math:`w`, row i's loss is :math:`L_i = A_i\ell_i - B_i + \lambda\omega_i
\operatorname{LSE}_i^2` with :math:`A = \sum_c w_c\tilde t_c`, :math:`\ell = \operatorname{LSE}
- \max z'`, :math:`B = \sum_c w_c \tilde t_c (z'_c - \max z') \le 0`,
:math:`\omega = w_y`; both parts non-negative, so no cancellation. Its gradient is
:math:`\partial L_i/\partial z'_i = (A_i + 2\lambda\omega_i\operatorname{LSE}_i)\,p_i
- w\odot\tilde t_i`, which needs only :math:`z` and the per-row LSE. So the forward
saves the LSE (float64, N numbers) next to the input, and the backward writes
:math:`u_i\,\partial L_i/\partial z_i` in one pass for any per-row upstream :math:`u`
(the reduction's :math:`1/\sum\omega` is in :math:`u`): no N x V temporary besides the
gradient itself. The reductions are plain torch operations on the per-row losses.
For the linear cross-entropy see ``_linear.py``.

What is checked where:

* always, at call time, on Python values and shapes (no data read, so also while
  ``torch.compile`` traces): argument types, options, shapes, dtypes (the linear
  losses' input, classifier and bias of one dtype, as ``F.linear``), weight shape, and
  class weights of class-id targets not requiring grad (``F.cross_entropy`` raises
  there too; they were silently not, or half, differentiated);
* inside the custom ops when the data are on the CPU (eager *and* compiled, no graph
  break and no device sync): target class ids in range (the error names row and
  value, and suggests ``ignore_index=-100`` for a -100 label), logits with NaN/+inf
  or an all ``-inf`` row (``cross_entropy``), non-finite logits per row
  (``linear_cross_entropy``), in the rows that count only (an ignored row's logits,
  or hidden states, are never used: its loss and gradient are 0, also where they
  hold a NaN or an infinity); probability targets finite, in [0, 1], rows summing
  to 1 within the NumPy API's tolerance (``crossent::softmax_ce_probs_v3``: per-row
  flags formed in its float64 pass, read once; ``_targets``); class weights finite
  and non-negative (eagerly);
* on other devices, and for probability targets on the generic path (targets that
  require grad, ``torch.func``), the class-id and the probability-target checks run
  eagerly (off the CPU they cost a device sync); while compiling, CPU probability
  targets on the generic path are checked at run time by the op
  ``crossent::probability_targets_checked`` (no graph break), the others not; no
  data check happens inside the ops off the CPU, and none on meta tensors (no data:
  their shapes and dtypes are ``torch.nn.functional``'s; the family wrappers' those of
  the same call on the CPU, by their generic formulas with ``validate=False``).

Fused vs generic: ``cross_entropy`` with class ids and ``linear_cross_entropy`` are
fused (custom ops), and so is ``cross_entropy`` with probability targets on the CPU
(``crossent::softmax_ce_probs_v3``, every floating dtype) where only the logits want a
gradient; the family wrappers (``binary_cross_entropy_with_logits``,
``sigmoid_focal_loss``, ``softmax_focal_loss``, ``distillation_loss``) run crossent's
generic formulas under autograd (the logits' gradient of float32 and lower
``binary_cross_entropy_with_logits`` is ``sigmoid_cross_entropy_grad``'s, in an
``autograd.Function``, ``_binary``; while Dynamo traces, the eager call in the custom
op ``crossent::sigmoid_ce_v1``, so it compiles with ``fullgraph=True`` and exports;
``sigmoid_focal_loss``'s checks run in ``crossent::sigmoid_inputs_checked`` then (CPU),
so it compiles too; ``softmax_focal_loss``'s value checks
break ``torch.compile`` graphs; ``distillation_loss``'s run in a custom op with its far
and near rows). ``distillation_loss`` of 2-D CPU logits whose teacher requires no gradient
is fused (a custom op over float64 Numba kernels, ``_distill_cpu``).

``torch.func`` (``grad``, ``vjp``, ``jacrev``, ``vmap`` and per-example gradients
``vmap(grad(...))``, ``jvp``/``jacfwd``, ``functional_call``): a custom op's autograd
cannot run under its reverse-mode transforms, so under any transform class ids and the
linear losses call their ops through ``autograd.Function`` twins (``_ops``:
``LabelsFunction``, ``LinearFunction``; the same kernels, setup and backward; vmap
rules that pass the examples' rows as one call's rows, or one call an example; a
forward-mode rule of class ids and of the linear losses, every reduction), and
probability targets and ``distillation_loss`` take their plain torch operations
(``distillation_loss``' rows formed on the host, far or of infinite reverse loss,
keep eager's gradients under ``grad``, ``vjp``, ``jacrev``; forward mode of them is
an error naming what works). Under ``vmap`` the family's data checks run on the
examples, then the generic path with ``validate=False``. Second derivatives
(``hessian``, ``jacfwd(jacrev(...))``, ``jacrev(jacrev(...))``, ``grad`` of
``grad``, ``jvp`` of ``grad``) of ``cross_entropy``: class ids through
``_ops._LabelsGrad`` (the backward kernel's values, the derivatives of the plain
float64 gradient's), probability targets by their plain operations. The linear
losses have none (an :class:`~crossent.errors.InputError` naming the loss and
``cross_entropy(F.linear(...))``). Nested forward mode (``jacfwd(jacfwd(...))``,
``jvp`` of ``jvp``): PyTorch does not differentiate an ``autograd.Function``'s
forward-mode rule again (a silent 0), so class ids take plain differentiable float64
operations there (``_ops.plain_label_rows``, with the op's checks), as does the soft
cap, and ``binary_cross_entropy_with_logits`` (the generic formula, not ``_binary``'s
``autograd.Function``), and the linear losses raise an InputError. ``jvp`` of ``vmap`` works (vmap's
generated rule does not apply ``mark_non_differentiable``, pytorch/pytorch#90067: the
forward-mode rules give zero tangents there). The vocab-parallel losses refuse
transforms by name.

Option values under ``torch.compile`` (which arguments specialise; torch 2.13, Dynamo's
defaults: ``specialize_float=False``, automatic dynamic, recompile limit 8). A graph
guarded on an option's value is compiled again for each new value (a smoothing or
temperature schedule), until the recompile limit sends the function back to eager
(``fullgraph=True``: an error). Python ints and floats that Dynamo can keep symbolic
cost two graphs for any number of values: the first call's constants, then one
symbolic graph.

* ``cross_entropy`` with class ids (and :class:`CrossEntropyLoss`): ``label_smoothing``,
  ``z_loss``, ``temperature``, ``soft_cap`` (floats) and ``ignore_index`` stay
  symbolic: two graphs. The floats are checked by range comparisons while traced and
  reach the op as one float64 tensor (``_traced_options``), read back as Python
  floats in the op: eager's bits, ``label_smoothing=0`` exactly the unsmoothed loss.
  ``soft_cap=None`` against a float, an int option (``label_smoothing=0``) against a
  float, and ``reduction`` are structural: a graph each.
* ``cross_entropy`` with probability targets on the target op (CPU logits, no gradient
  wanted for the targets or the class weights): the same four floats stay symbolic
  (``crossent::softmax_ce_probs_tensor_options_v1``): two graphs, eager's bits. Its
  generic path (other devices, targets that require a gradient) reads the values.
* ``distillation_loss`` (and :class:`DistillationLoss`) on the fused CPU op (2-D CPU
  logits of one dtype, either ``direction`` (``'reverse'`` since branch distrev1), a
  teacher that requires no gradient):
  a float ``temperature`` with :math:`T^2` normal in float32 stays symbolic: two
  graphs. It is checked by comparisons while traced and reaches the op's twin
  (``crossent::distillation_cpu_rows_tensor_temperature_v1``, ``_traced_options``) as
  a float64 tensor, read back as a Python float: eager's loss and gradient bits. Its
  other paths (another device, a teacher that requires a gradient, a
  :math:`T^2` outside float32's normal range) read the value: a graph per value.
* ``linear_cross_entropy`` and ``linear_head_cross_entropy`` (and their modules), every
  reduction (branch compile4): the four floats as for class ids, checked by range
  comparisons and passed to the fused op's twins
  (``crossent::linear_cross_entropy_v4_tensor_options_v1`` and ``..._backward``) as
  one float64 tensor: two graphs, eager's loss and gradient bits.
* ``binary_cross_entropy_with_logits``' ``label_smoothing`` (a float other than 0; the
  op checks it at run time) and ``softmax_focal_loss``' ``gamma`` (a float checked by
  comparisons) reach their ops' twins as a float64 tensor: two graphs, the op's bits
  (those of the float op that main compiled). ``label_smoothing=0`` keeps the float
  op. Retained backwards (torch 2.13): the twins save their options tensor, an
  intermediate of the graph, and AOTAutograd compiles a graph's backward at its first
  backward, donating such buffers unless that one retains the graph; so a graph whose
  first backward ran without ``retain_graph`` refuses a later ``retain_graph=True``
  (or ``create_graph``) backward with PyTorch's "non-empty donated buffers" error, as
  any compiled graph that saves an intermediate does. A first backward that retains
  the graph (``gradcheck``), and ``label_smoothing=0`` (the float op saves its inputs
  only), never meet it; otherwise set ``torch._functorch.config.donated_buffer =
  False`` (branch torchrev1: ``test_issue13_compiled_option_values.py``).
  Each twin is made from its op by ``_traced_options.tensor_options_twin`` (the
  schema with the one ``float``/``float[]`` argument a ``Tensor``).
* every other float option specialises (a graph per value): the vocab-parallel losses
  (their ``float[]`` op argument, or a check reading the value),
  ``sigmoid_focal_loss``' ``gamma`` and ``alpha`` (the traced generic formula reads
  them); as ``torch.nn.functional.cross_entropy`` does on ``label_smoothing`` (its
  ATen op takes a ``float``: a graph per value up to the limit, then eager). PyTorch's
  idiom of a temperature (``logits / T``) becomes symbolic after one recompile.
  Counts: ``benchmarks/bench_torch_compile_option_values.py``.

Documented differences from PyTorch: a batch whose every target is ignored has mean
0 (zero gradients), not NaN; an ignored row's gradient is 0 also where its logits
are not finite (PyTorch's is NaN there); bf16/fp16 input gives a float32 loss;
``linear_cross_entropy`` with ``ignore_index=None`` rejects -100 labels instead of
ignoring them; ``size_average``/``reduce`` are not accepted; forward-mode AD
(``torch.func.jvp``/``jacfwd``) through ``linear_cross_entropy`` with
``reduction='none'`` forms the logits whole (each row's tangent needs its logits'
gradient); the loss has the logits' dtype (float32 for bf16/fp16), not the type
promotion of logits and targets (float32 logits with float64 probability targets:
float32, PyTorch's float64); probability targets must sum to 1 within the tolerance of
their own dtype (float32 probabilities cast to float64 are refused where a row is off
by more than float64's tolerance; PyTorch renormalises nothing and checks nothing);
the modules are ``nn.Module`` subclasses, not of PyTorch's private
``nn.modules.loss._Loss``; ``linear_cross_entropy`` and ``LinearCrossEntropyLoss``
take no ``options`` (PyTorch 2.13's ``LinearCrossEntropyOptions``: its
``batch_chunk_size`` is crossent's ``chunk_size``; the accumulation is always
crossent's exact one, so ``acc_policy``/``acc_dtype`` have nothing to choose) and the
module no ``out_features`` (a K-dimensional loss: reshape the hidden states and the
targets to rows); passing them is a ``TypeError``.

No ``nll_loss``/``NLLLoss`` or ``kl_div``/``KLDivLoss``: crossent takes logits.
``F.nll_loss(F.log_softmax(z, 1), y)`` is ``cross_entropy(z, y)`` (or of the
log-probabilities themselves: the log-softmax of log-probabilities is themselves);
``F.kl_div(F.log_softmax(z, 1), t, reduction='batchmean')`` of 2-D inputs is
``distillation_loss(z, t, teacher_form='probs')`` (``teacher_form='log_probs'`` for
``log_target=True``); its ``'mean'`` averages over the rows (positions ``N d1 ...``
of ``(N, C, d1, ...)`` input), ``'batchmean'`` divides by ``N`` only, and its
``'none'`` is per row, not per entry.

Speed of small calls (CPU): a small call costs more than eager PyTorch's (crossent's
checks, float64 accumulation, the exact label-smoothed gradient); 256 x 512 float32 logits
(a tiny LM's step) forward + backward with ``label_smoothing=0.1`` took 1.2 ms of CPU
against eager's 0.5 (4096 x 512: 5.7 against 12.0; 512 x 32000: 38 against 137), with
``OMP_WAIT_POLICY=PASSIVE``; under GNU OpenMP's default waiting both take much longer
on a loaded machine (PyTorch alone 45 ms of CPU at 256 x 512: its idle threads spin
after each parallel region), ``benchmarks/bench_torch_omp_spin.py``, RESULTS.md.

Distributed training and evaluation (``_vocab_parallel.py``, ``_distributed_state.py``):
:func:`vocab_parallel_cross_entropy` and :func:`vocab_parallel_linear_cross_entropy`
are the softmax cross-entropy with the vocabulary sharded across a tensor-parallel
group; :func:`all_reduce_state` merges an :class:`crossent.EvaluationState` across ranks.
"""

try:  # the one line that names the extra, not a traceback through a submodule
    import torch as _torch  # noqa: F401
except ModuleNotFoundError as _missing:  # pragma: no cover - torch hidden in a test
    from .._hints import install_command
    from ..errors import MissingDependencyError

    raise MissingDependencyError(
        f"crossent.torch needs PyTorch, which is not installed: {install_command('torch')}"
    ) from _missing

# Each name is listed once, in its module's ``__all__``; the star imports re-export
# exactly those (also for type checkers).
from . import (
    _distributed_state,
    _family,
    _functional,
    _modules,
    _vocab_parallel,
    _vocab_parallel_ops,  # noqa: F401 (registers its custom ops)
)
from ._distributed_state import *  # noqa: F403
from ._family import *  # noqa: F403
from ._functional import *  # noqa: F403
from ._modules import *  # noqa: F403
from ._vocab_parallel import *  # noqa: F403

__all__ = sorted(
    [
        *_distributed_state.__all__,
        *_family.__all__,
        *_functional.__all__,
        *_modules.__all__,
        *_vocab_parallel.__all__,
    ]
)
