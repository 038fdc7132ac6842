"""JS of probabilities against logits on the generic Array-API path (JAX, PyTorch): A/B.

    python benchmarks/bench_js_mixed_generic_ab.py [--rows 1000] [--classes 1000]
        [--repeats 5] [--clock cpu] [--against TREE ...] [--rounds 3]

Branch jaxexact1 (issue 13): the rows whose plain sum the screen cannot certify take an
exact pass (``info._js_mixed``). Cases, each the best of ``--repeats`` calls after one
warm-up: JAX float64 eager and under ``jax.jit`` (one compile, in the warm-up), PyTorch
float64 and float32 (past the host route); random rows (P a softmax of N(0, 3) logits,
Q's logits other rows) and nearly equal rows (Q's logits P's plus noise of 1e-9). With
``--against`` each tree runs in its own process (``_against.compare``), alternating.
"""

from __future__ import annotations

import argparse

import numpy as np

from _against import add_options, compare_if_asked, time_cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    add_options(parser)
    args = parser.parse_args()
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
    rng = np.random.default_rng(0)
    z = rng.standard_normal((args.rows, args.classes)) * 3
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    others = {
        "random": np.roll(z, 1, axis=0),
        "nearly equal": z + 1e-9 * rng.standard_normal(z.shape),
    }
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
