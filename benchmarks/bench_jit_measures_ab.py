"""``jax.jit`` of ``crossent.cross_entropy`` and ``kl_divergence`` (q as logits,
``validate=False``) per call, for an A/B of the traced far-gap pass (issue 13, branches
jaxexact1 and the lead's ``jax.lax.cond`` at its merge).

    python benchmarks/bench_jit_measures_ab.py [--rows 2000] [--classes 1000]
        [--repeats 15] [--clock cpu] [--against TREE ...] [--rounds 3]

Random Dirichlet p against normal logits, float64 and float32 (JAX with x64 on), one
jitted function per case compiled in its warm-up call (``_against.time_cases``: the
cases alternating); ``--against`` runs the same in a fresh process per tree, the trees
alternating.
"""

from __future__ import annotations

import argparse
from typing import Any

import jax
import numpy as np

from _against import add_options, compare_if_asked, time_cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=15)
    add_options(parser)
    args = parser.parse_args()
    if compare_if_asked(args, __file__):
        return
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    import crossent

    rng = np.random.default_rng(0)
    p64 = rng.dirichlet(np.ones(args.classes), args.rows)
    x64 = rng.normal(size=(args.rows, args.classes))
    cases: dict[str, Any] = {}
    for dtype in (jnp.float64, jnp.float32):
        p, x = jnp.asarray(p64, dtype=dtype), jnp.asarray(x64, dtype=dtype)
        for name in ("cross_entropy", "kl_divergence"):
            measure = getattr(crossent, name)
            jitted = jax.jit(lambda p, x, f=measure: f(p, x, q_form="logits", validate=False))
            label = f"{np.dtype(dtype).name} {name}"
            cases[label] = lambda j=jitted, p=p, x=x: j(p, x).block_until_ready()
    time_cases(cases, args)


if __name__ == "__main__":
    main()
