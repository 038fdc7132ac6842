"""KL of float32 JAX arrays without x64 (JAX's default) in mixed forms: A/B (issue 13,
branch jaxkl1).

    cd benchmarks
    PYTHONPATH=../src:. python bench_jax_float32_kl_ab.py --against /tmp/main/src
        [--rows 200] [--classes 1000] [--repeats 5] [--rounds 3] [--clock cpu] [--compile]

Branch jaxkl1: every pair of forms but two sides of logits takes, on every row, the
Bregman terms and the masses' difference summed exactly from float32 words
(``_kl_mixed.kl_narrow``; main: the plain float32 sum, up to 2.25e15 ulps off on
nearly equal rows). Rows: random (logits N(0, 3) against other rows') and nearly
equal (the same plus noise 1e-6), each side rounded to float32 in its form; the pairs
probs/logits, logits/log_probs (a log-probabilities side's mass from ``exp_triple32``)
and log_probs/log_probs; one ``jax.jit`` of the call (``validate=False``; eager calls
take one ``jax.jit`` of the exact pass). Each tree in its own process, alternating
round by round.

Branch jaxkl2: the exact pass only where a row fails a screen (one ``jax.lax.cond``);
``--compile`` times each case's first call instead (tracing and XLA's compile, once a
process: with ``--against``, ``--rounds`` values a case).

Branch jaxkl3: case ``mixed``, random rows but one nearly equal (the middle row): the
exact words of the chunk of rows that holds it, not of every row.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from _against import add_options, clock, compare_if_asked, time_cases


def _cases(rows: int, classes: int) -> dict[str, Callable[[], Any]]:
    import jax
    import jax.numpy as jnp

    import crossent

    assert not jax.config.jax_enable_x64
    rng = np.random.default_rng(0)
    z = rng.standard_normal((rows, classes)) * 3
    sides = {"random": np.roll(z, 1, axis=0), "near": z + 1e-6 * rng.standard_normal(z.shape)}
    sides["mixed"] = sides["random"].copy()  # (one near row among random ones: jaxkl3)
    sides["mixed"][rows // 2] = sides["near"][rows // 2]

    def side(x: np.ndarray, form: str) -> Any:
        if form == "logits":
            return jnp.asarray(x, jnp.float32)
        s = x - x.max(-1, keepdims=True)
        lp = s - np.log(np.exp(s).sum(-1, keepdims=True))
        return jnp.asarray(lp if form == "log_probs" else np.exp(lp), jnp.float32)

    cases: dict[str, Callable[[], Any]] = {}
    for fa, fb in (("probs", "logits"), ("logits", "log_probs"), ("log_probs", "log_probs")):
        for kind, w in sides.items():
            a, b = side(z, fa), side(w, fb)
            call = functools.partial(crossent.kl_divergence, p_form=fa, q_form=fb)
            jitted = jax.jit(functools.partial(call, validate=False))
            cases[f"KL {fa}/{fb} {kind} jit"] = lambda c=jitted, a=a, b=b: c(
                a, b
            ).block_until_ready()
    return cases


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="time each first call")
    add_options(parser)
    args = parser.parse_args(argv)
    if compare_if_asked(args, __file__):
        return
    cases = _cases(args.rows, args.classes)
    if not args.compile:
        time_cases(cases, args)
        return
    now, firsts = clock(args), {}
    for name, case in cases.items():
        start = now()
        case()
        firsts[name] = [now() - start]
    if args.json:
        print(json.dumps(firsts))
        return
    for name, runs in firsts.items():
        print(f"{name:40s}  first call {runs[0]:7.3f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
