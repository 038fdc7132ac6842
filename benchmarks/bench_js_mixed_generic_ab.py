"""JS of probabilities against logits on the generic Array-API path (JAX, PyTorch): A/B.

    python benchmarks/bench_js_mixed_generic_ab.py [--rows 1000] [--classes 1000]
        [--repeats 5] [--clock cpu] [--against TREE ...] [--rounds 3]
    python benchmarks/bench_js_mixed_generic_ab.py --tree SRC [--tree SRC ...]
        [--rows 200] [--classes 1000] [--repeats 5] [--rounds 3]

Branch jaxexact1 (issue 13): the rows whose plain sum the screen cannot certify take an
exact pass (``info._js_mixed``). Cases, each the best of ``--repeats`` calls after one
warm-up: JAX float64 eager and under ``jax.jit`` (one compile, in the warm-up), PyTorch
float64 and float32 with the host route off (the torch path); random rows (P a softmax
of N(0, 3) logits, Q's logits other rows) and nearly equal rows (Q's logits P's plus
noise of 1e-9). With ``--against`` each tree runs in its own process
(``_against.compare``), alternating.

Branch jsfast1: ``--tree`` (repeatable) times this tree against the others in one
process (each imported from a renamed copy, ``_against.load_tree``), CPU time, the
trees' order rotated each round, ``--repeats`` calls per case and round; it adds torch
at the host route's default (PyTorch CPU tensors of mixed forms take the fused kernel
at any size since jsfast1; stop 63's tree routes only up to 16384 elements),
array-api-strict, and rows of which one in ten is nearly equal (the others random).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

from _against import add_options, compare_if_asked, compare_trees, load_tree, time_cases


def _data(rows: int, classes: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """P (a softmax of N(0, 3) logits) and Q's logits by kind of rows."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((rows, classes)) * 3
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    near = z + 1e-9 * rng.standard_normal(z.shape)
    some = np.roll(z, 1, axis=0)
    some[::10] = near[::10]
    return p, {"random": np.roll(z, 1, axis=0), "nearly equal": near, "1 in 10 nearly equal": some}


def _tree_cases(p: np.ndarray, others: dict[str, np.ndarray]) -> dict[str, Callable[[Any], Any]]:
    """The in-process cases, each a call of a tree's ``crossent`` module."""
    import array_api_strict as xs
    import jax
    import jax.numpy as jnp
    import torch

    jitted: dict[int, Any] = {}

    def jit_call(m: Any, a: Any, b: Any) -> Any:
        if id(m) not in jitted:
            jitted[id(m)] = jax.jit(
                lambda u, v: m.js_divergence(u, v, q_form="logits", validate=False)
            )
        return jitted[id(m)](a, b).block_until_ready()

    def torch_call(m: Any, a: Any, b: Any, route: bool) -> Any:
        host = m._torch_host
        saved = host.MAX_ELEMENTS
        host.MAX_ELEMENTS = saved if route else -1
        try:
            return m.js_divergence(a, b, q_form="logits")
        finally:
            host.MAX_ELEMENTS = saved

    cases: dict[str, Callable[[Any], Any]] = {}
    for name, y in others.items():
        pj, yj = jnp.asarray(p), jnp.asarray(y)
        cases[f"jax float64 eager, {name}"] = lambda m, a=pj, b=yj: m.js_divergence(
            a, b, q_form="logits"
        ).block_until_ready()
        cases[f"jax float64 jit, {name}"] = lambda m, a=pj, b=yj: jit_call(m, a, b)
        for dtype in (torch.float64, torch.float32):
            pt, yt = torch.tensor(p, dtype=dtype), torch.tensor(y, dtype=dtype)
            label = str(dtype).removeprefix("torch.")
            for route in (True, False):
                where = "default route" if route else "route off"
                cases[f"torch {label} {where}, {name}"] = lambda m, a=pt, b=yt, r=route: torch_call(
                    m, a, b, r
                )
        ps, ys = xs.asarray(p), xs.asarray(y)
        cases[f"array-api-strict, {name}"] = lambda m, a=ps, b=ys: m.js_divergence(
            a, b, q_form="logits"
        )
    return cases


def _in_process(args: argparse.Namespace) -> None:
    """``--tree``: this tree and the others in one process, interleaved."""
    import jax
    import torch

    import crossent

    jax.config.update("jax_enable_x64", True)
    torch.set_num_threads(1)
    trees: dict[str, Any] = {"this tree": crossent}
    for i, source in enumerate(args.tree):
        trees[source] = load_tree(source, f"crossent_js{i}")
    p, others = _data(args.rows, args.classes)
    cases = _tree_cases(p, others)
    compare_trees(trees, cases, args.rounds, args.repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tree", action="append", default=[], metavar="SRC")
    add_options(parser)
    args = parser.parse_args()
    if args.tree:
        _in_process(args)
        return
    if compare_if_asked(args, __file__):
        return
    import jax
    import jax.numpy as jnp
    import torch

    import crossent
    from crossent import _torch_host

    jax.config.update("jax_enable_x64", True)
    torch.set_num_threads(1)
    _torch_host.MAX_ELEMENTS = -1  # (every tensor through the torch path)
    p, others = _data(args.rows, args.classes)
    del others["1 in 10 nearly equal"]
    jitted = jax.jit(lambda a, b: crossent.js_divergence(a, b, q_form="logits", validate=False))
    cases = {}
    for name, y in others.items():
        pj, yj = jnp.asarray(p), jnp.asarray(y)
        cases[f"jax float64 eager, {name}"] = lambda pj=pj, yj=yj: crossent.js_divergence(
            pj, yj, q_form="logits"
        ).block_until_ready()
        cases[f"jax float64 jit, {name}"] = lambda pj=pj, yj=yj: jitted(pj, yj).block_until_ready()
        for dtype in (torch.float64, torch.float32):
            pt, yt = torch.tensor(p, dtype=dtype), torch.tensor(y, dtype=dtype)
            label = str(dtype).removeprefix("torch.")
            cases[f"torch {label}, {name}"] = lambda pt=pt, yt=yt: crossent.js_divergence(
                pt, yt, q_form="logits"
            )
    time_cases(cases, args)


if __name__ == "__main__":
    main()
