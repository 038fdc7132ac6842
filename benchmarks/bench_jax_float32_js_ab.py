"""JS (and KL of logits) of float32 JAX arrays without x64 (JAX's default): A/B (issue 13,
branch jaxf32).

    cd benchmarks
    PYTHONPATH=../src:. python bench_jax_float32_js_ab.py --against /tmp/main/src
        [--rows 200] [--classes 1000] [--repeats 5] [--rounds 3] [--clock cpu]

Branch jaxf32: a side of logits or log-probabilities against another form now takes, on
the rows whose plain sum may be off by more than 2^-28 of itself (nearly equal rows),
an exact pass in float32 double-words (main: the plain float32 sum, up to 1.6e8 ulps
off). Rows: random (logits N(0, 3) against other rows' log-softmax) and nearly equal
(the same plus noise 1e-6, rounded to float32); the pairs probs/logits,
logits/log_probs and probs/log_probs, and the KL of two sides of logits (now from
the corrected log-ratios); eager calls and one ``jax.jit`` of the call
(``validate=False``). Each tree in its own process, alternating round by round.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from _against import add_options, compare_if_asked, time_cases


def _cases(rows: int, classes: int) -> dict[str, Callable[[], Any]]:
    import jax
    import jax.numpy as jnp

    import crossent

    assert not jax.config.jax_enable_x64
    rng = np.random.default_rng(0)
    z = rng.standard_normal((rows, classes)) * 3
    shifted = z - z.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    sides = {"random": np.roll(z, 1, axis=0), "near": z + 1e-6 * rng.standard_normal(z.shape)}

    def side(x: np.ndarray, form: str) -> Any:
        if form == "logits":
            return jnp.asarray(x, jnp.float32)
        s = x - x.max(-1, keepdims=True)
        lp = s - np.log(np.exp(s).sum(-1, keepdims=True))
        return jnp.asarray(lp if form == "log_probs" else np.exp(lp), jnp.float32)

    del log_p
    cases: dict[str, Callable[[], Any]] = {}
    for fa, fb in (("probs", "logits"), ("logits", "log_probs"), ("probs", "log_probs")):
        for kind, w in sides.items():
            a, b = side(z, fa), side(w, fb)
            call = functools.partial(crossent.js_divergence, p_form=fa, q_form=fb)
            jitted = jax.jit(functools.partial(call, validate=False))
            cases[f"{fa}/{fb} {kind} eager"] = lambda c=call, a=a, b=b: c(a, b).block_until_ready()
            cases[f"{fa}/{fb} {kind} jit"] = lambda c=jitted, a=a, b=b: c(a, b).block_until_ready()
    for kind, w in sides.items():
        a, b = side(z, "logits"), side(w, "logits")
        call = functools.partial(crossent.kl_divergence, p_form="logits", q_form="logits")
        jitted = jax.jit(functools.partial(call, validate=False))
        cases[f"KL logits/logits {kind} eager"] = lambda c=call, a=a, b=b: c(
            a, b
        ).block_until_ready()
        cases[f"KL logits/logits {kind} jit"] = lambda c=jitted, a=a, b=b: c(
            a, b
        ).block_until_ready()
    return cases


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    add_options(parser)
    args = parser.parse_args(argv)
    if compare_if_asked(args, __file__):
        return
    time_cases(_cases(args.rows, args.classes), args)


if __name__ == "__main__":
    main(sys.argv[1:])
