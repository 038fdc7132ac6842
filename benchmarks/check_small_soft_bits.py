"""Bits of the small soft-target and distillation calls, this tree against another.

    PYTHONPATH=../src:. python check_small_soft_bits.py --against /tmp/OTHER/src

Not a timing: a check that a change of the small soft paths (``_small_targets``,
``_small_distill``; issue 13, branch smallcall4) keeps every result bit. It calls
``softmax_cross_entropy_with_targets``, ``distillation_loss`` and their gradients on
float64 and float32 inputs of shapes (1, 10), (8, 10), (3, 2), (5, 7), (2, 3, 10), on
random rows and on hard ones (near-ties, spreads of 10^3, ``-inf`` logits under zero
targets, subnormal targets, confident rows, logits of 1e-300, one-hot targets under
spreads of 60), with eight option sets and ``validate`` on and off, under this tree
(twice: the kept work arrays hold the first pass's values) and under the other tree
(imported in the same process after this one's modules are dropped), and prints how
many results (bytes, dtype and shape, or the error's type and message) differ.
Exit status 1 if any does.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

OPTIONS: list[dict[str, Any]] = [
    {},
    {"reduction": "none"},
    {"reduction": "sum"},
    {"reduction": "mean", "base": 2},
    {"label_smoothing": 0.1},
    {"temperature": 2.5},
    {"z_loss": 1e-4},
    {"reduction": "none", "base": 2},
]
DISTILL_KEYS = ("reduction", "temperature")
Result = tuple[Any, ...]


def load(src: str) -> ModuleType:
    """crossent imported from ``src``, any crossent imported before dropped first."""
    for name in [k for k in sys.modules if k == "crossent" or k.startswith("crossent.")]:
        del sys.modules[name]
    sys.path.insert(0, src)
    try:
        return importlib.import_module("crossent")
    finally:
        sys.path.pop(0)


def cases() -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Logits and targets (float64), random and hard, of each shape."""
    rng = np.random.default_rng(13)
    for shape in [(1, 10), (8, 10), (3, 2), (5, 7), (2, 3, 10)]:
        for kind in range(8):
            z = rng.standard_normal(shape)
            t = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
            if kind == 1:  # near-ties
                z = np.full(shape, 0.3) + rng.standard_normal(shape) * 1e-15
            elif kind == 2:  # huge spreads
                z = z * 1e3
            elif kind == 3:  # -inf logits where the target is 0
                z[..., 0] = -np.inf
                t[..., 0] = 0.0
                t = t / t.sum(-1, keepdims=True)
            elif kind == 4:  # subnormal targets
                t[..., 1] = 5e-324
                t[..., -1] = 1e-310
                t = t / t.sum(-1, keepdims=True)
            elif kind == 5:  # a confident row (p > 1/2)
                z[..., 0] += 40.0
            elif kind == 6:
                z = z * 1e-300
            elif kind == 7:  # one-hot targets under a spread of 60
                t = np.zeros(shape)
                t[..., 0] = 1.0
                z = z * 60
            yield z, t


def results(crossent: ModuleType) -> list[Result]:
    """Every call's outcome under ``crossent``."""
    out: list[Result] = []
    functions = (
        crossent.softmax_cross_entropy_with_targets,
        crossent.softmax_cross_entropy_with_targets_grad,
        crossent.distillation_loss,
        crossent.distillation_loss_grad,
    )
    for z, t in cases():
        for dtype in (np.float64, np.float32):
            logits, targets = z.astype(dtype), t.astype(dtype)
            with np.errstate(divide="ignore"):  # (float32 targets of 0: -inf logits)
                teacher = np.log(np.maximum(targets, 1e-300)).astype(dtype)
            for options in OPTIONS:
                for validate in (False, True):
                    for function in functions:
                        out.append(_outcome(function, logits, targets, teacher, options, validate))
    return out


def _outcome(
    function: Any,
    logits: np.ndarray,
    targets: np.ndarray,
    teacher: np.ndarray,
    options: dict[str, Any],
    validate: bool,
) -> Result:
    """One call's bytes, dtype and shape, or its error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if function.__name__.startswith("distill"):
                kwargs = {k: v for k, v in options.items() if k in DISTILL_KEYS}
                value = function(logits, teacher, validate=validate, **kwargs)
            else:
                value = function(logits, targets, validate=validate, **options)
    except Exception as error:  # (the outcome compared)
        return ("error", type(error).__name__, str(error))
    array = np.asarray(value)
    return (array.dtype.str, array.shape, array.tobytes())


def main() -> int:
    """Compare this tree's results with ``--against``'s; 1 if any differs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", required=True, help="the other tree's src")
    parser.add_argument("--src", default="../src", help="this tree's src")
    args = parser.parse_args()
    mine = load(args.src)
    first, second = results(mine), results(mine)
    print(f"this tree: {mine.__file__}")
    other = load(args.against)
    theirs = results(other)
    print(f"against:   {other.__file__}")
    assert first == second, "this tree's second pass differs from its first"
    differ = [i for i, (a, b) in enumerate(zip(first, theirs, strict=True)) if a != b]
    errors = sum(1 for r in first if r[0] == "error")
    print(f"{len(first)} results; {len(differ)} differ; {errors} errors (the same in both)")
    for i in differ[:10]:
        print(i, first[i][:2], theirs[i][:2])
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
