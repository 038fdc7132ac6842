"""Issue 13: a jitted helper must not take its caller's fast-math flags.

Numba compiles a function without its own ``fastmath`` option, when a caller compiled
with one compiles it first, with the caller's flags (``CPUTargetOptions.finalize``:
``flags.inherit_if_not_set("fastmath")``), and puts a function's flags on every float
instruction that has none (``fastmathpass``). A helper called from a ``reassoc`` kernel
then has ``reassoc`` on its every instruction; compiled first on its own (a test, a
caller without flags) it has none. Its overload is keyed by its signature only, so
whichever compiled first serves both, and the bits depended on the order of compilation
and on the state of Numba's cache (``info/_fused_kernels.py``'s ``_log_softmax_entry``:
a float32 cross-entropy of 0 instead of 4.2e-18; ``losses/_cpu_kernels_numba.py``'s
``label_entry``: an ulp of float64 apart on a quarter of random inputs).

Each helper that a kernel with ``reassoc`` calls without inlining it (Numba's
``inline="never"``) is compiled here, a fresh copy with its own options, from a caller
with every fast-math flag: its instructions must carry its own flags only. A copy, so
that no earlier compilation in this process decides the result; the kernels' real
caller is compiled once in a fresh process with an empty cache.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from fresh_process import run_python  # noqa: E402

pytestmark = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="needs Numba's compiler")

_EVERY_FLAG = {"reassoc", "nnan", "ninf", "nsz", "arcp", "contract", "afn"}
_FLAG_WORDS = _EVERY_FLAG | {"fast"}
_FLOAT_OPS = re.compile(r"= (?:tail )?(fadd|fsub|fmul|fdiv|frem|fcmp|call) ((?:\w+ )*)")

_ROW = np.array([0.25, 0.75, -1.0], np.float32)
# target_exp(x, top, inv_t, temperature, floor, shift), as target_row_sums calls it
_TARGET_EXP = (np.float32(0.25), 0.75, 1.0 / 0.7, 0.7, -708.0, 0.0)
# _target_loss_numba.target_row_sums(row, t_row, top, inv_t, keep, spread, weight)
_ROW_SUMS = (_ROW, np.array([0.5, 0.5, 0.0], np.float32), 0.75, 1.0, 0.9, 0.01, np.ones(3))

# (module, helper, arguments): the helpers a reassociating kernel calls out of line
_HELPERS = [
    ("crossent.losses._cpu_kernels_numba", "label_entry", (0.7, 0.3, -0.1)),
    ("crossent._intrinsics_numba", "exp_nonpositive", (-0.3,)),
    ("crossent.calibration._row_kernels_numba", "log_positive", (0.3,)),
    ("crossent.info._fused_kernels", "_log_softmax_entry", (1.0, 1.0, 0.5)),
    ("crossent.info._fused_kernels", "_minus", (1.0, 0.5)),
    ("crossent.info._fused_kernels", "_two_diff", (1.0, 0.1)),
    # the probability targets' gradient (target_gradient_kernel) and fused loss
    ("crossent.losses._cpu_kernels_numba", "target_exp", _TARGET_EXP),
    ("crossent.losses._cpu_kernels_numba", "two_sum", (1.0, 0.0, 1e-17)),
    ("crossent.losses._cpu_kernels_numba", "fused_entry", (0.5, 1e-9, 0.25, 0.1)),
    ("crossent.losses._cpu_kernels_numba", "pair_minus_one", (1.0, 1e-17)),
    ("crossent.losses._target_loss_numba", "target_row_sums", _ROW_SUMS),
    ("crossent.losses._target_loss_numba", "row_top", (_ROW, 0.75, 1.0)),
]

# The helpers whose arithmetic ``reassoc`` would undo (their comments say why): they must
# not have it, of their own or inherited. (target_exp: ``(k + M) - M``; two_sum: TwoSum's
# error term; fused_entry: c e + (c g) e folded to (c + c g) e; row_top: its quotient;
# pair_minus_one: (hi - 1) + lo reordered to (lo - 1) + hi, which drops lo.)
_NO_REASSOC = {"target_exp", "two_sum", "fused_entry", "row_top", "pair_minus_one"}


def instruction_flags(llvm: str) -> set[str]:
    """The fast-math flags on the float instructions (and calls) of LLVM IR text."""
    found: set[str] = set()
    for match in _FLOAT_OPS.finditer(llvm):
        found |= set(match.group(2).split()) & _FLAG_WORDS
    return found


def own_flags(dispatcher: Any) -> set[str]:
    """The ``fastmath`` a dispatcher was given (empty for False); fails without one."""
    assert "fastmath" in dispatcher.targetoptions, "no fastmath of its own: it inherits"
    given = dispatcher.targetoptions["fastmath"]
    return {"fast"} if given is True else set(given or ())


def copy_of(module: str, name: str) -> Any:
    """A fresh dispatcher of the helper ``module.name``, with the helper's own options."""
    helper = getattr(__import__(module, fromlist=[name]), name)
    return numba.jit(**helper.targetoptions)(helper.py_func)


def through_caller(helper: Any, arguments: tuple[Any, ...], flags: Any) -> None:
    """Compile ``helper`` for ``arguments`` from a caller compiled with ``flags``."""
    numba.njit(fastmath=flags)(lambda *a: helper(*a))(*arguments)


@pytest.mark.parametrize(("module", "name", "arguments"), _HELPERS)
def test_issue13_helper_keeps_its_own_flags_under_a_fast_caller(
    module: str, name: str, arguments: tuple[float, ...]
) -> None:
    helper = copy_of(module, name)
    through_caller(helper, arguments, _EVERY_FLAG)
    (signature,) = helper.signatures
    got = instruction_flags(helper.inspect_llvm(signature))
    assert got <= own_flags(helper), f"{name} took its caller's flags: {got}"
    if name in _NO_REASSOC:
        assert not got & {"reassoc", "fast"}, f"{name} reassociates: {got}"


# label_entry's inputs whose float64 result depended on the order (an ulp apart)
_ORDER_CASES = [
    (1.3732430540965517, 0.9880590437119101, -0.6167696148640599),
    (1.1496904103547108, 0.2412521702294308, -0.3495252289111285),
    (0.7396083719556179, 0.5845892619401825, -0.43577404287135574),
]


def test_issue13_label_entry_bits_do_not_depend_on_the_compile_order() -> None:
    from crossent.losses._cpu_kernels_numba import _FLAGS

    alone = copy_of("crossent.losses._cpu_kernels_numba", "label_entry")
    alone(*_ORDER_CASES[0])  # compiled first on its own
    called = copy_of("crossent.losses._cpu_kernels_numba", "label_entry")
    through_caller(called, _ORDER_CASES[0], _FLAGS)  # first from the kernels' flags
    for case in _ORDER_CASES:
        assert alone(*case) == called(*case), case


_REAL_CALLER = """
import json
import numpy as np
from crossent.losses import _cpu_kernels_numba as k

n = 2
ones, zeros = np.ones(n), np.zeros(n)
k.gradient_kernel_serial(
    np.zeros((n, 2), np.float32), np.zeros(n, np.int64), zeros, 1.0, ones, ones,
    np.empty(0), zeros, ones * -1e-3, np.empty(0), np.empty((n, 2), np.float32),
)
print(json.dumps({str(s): k.label_entry.inspect_llvm(s) for s in k.label_entry.signatures}))
"""


def test_issue13_gradient_kernel_compiles_label_entry_with_its_own_flags(
    tmp_path: Path,
) -> None:
    # The real caller (fastmath _FLAGS, reassoc included) compiled first, nothing cached.
    from crossent.losses._cpu_kernels_numba import label_entry

    compiled = json.loads(run_python(_REAL_CALLER, numba_cache=tmp_path).splitlines()[-1])
    assert compiled
    for signature, llvm in compiled.items():
        got = instruction_flags(llvm)
        assert "fadd" in llvm
        assert got <= own_flags(label_entry), (signature, got)
        assert not got & {"reassoc", "fast"}
