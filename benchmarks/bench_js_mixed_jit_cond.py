"""JS of probabilities against logits under ``jax.jit``: CPU ms a call (branch jaxexact1).

    PYTHONPATH=src python benchmarks/bench_js_mixed_jit_cond.py

200 x 1000 float64, random and nearly equal rows (the mean of 5 calls after a warm-up,
process CPU time), then a check that ``jax.grad`` is finite and what ``jax.vmap`` gives
for three nearly equal rows. Run it under each tree's ``PYTHONPATH``, one after the
other.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

import crossent


def js(a: object, b: object) -> object:
    return crossent.js_divergence(a, b, q_form="logits", validate=False)


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 1000)) * 3
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    jitted = jax.jit(js)
    for name, y in (("random", np.roll(z, 1, 0)), ("near", z + 1e-9 * rng.normal(size=z.shape))):
        a, b = jnp.asarray(p), jnp.asarray(y)
        jitted(a, b).block_until_ready()
        start = time.process_time()
        for _ in range(5):
            jitted(a, b).block_until_ready()
        print(name, (time.process_time() - start) / 5 * 1e3, "ms")
    near = jnp.asarray(z[:2] + 1e-9)
    gradient = jax.grad(lambda b: jnp.sum(js(jnp.asarray(p[:2]), b)))(near)
    print("grad finite:", bool(np.isfinite(np.asarray(gradient)).all()))
    print("vmap:", np.asarray(jax.vmap(js)(jnp.asarray(p[:3]), jnp.asarray(z[:3] + 1e-9))))


if __name__ == "__main__":
    main()
