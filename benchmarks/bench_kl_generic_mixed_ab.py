"""The generic path's KL of mixed forms (NumPy without Numba, float64 PyTorch past the
host route): A/B of this tree against other copies of ``crossent``, interleaved.

Issue 13, branch kltiny2: nearly equal rows with a side of log-probabilities, or
probabilities against logits, now take exact pieces (``info/_kl_mixed.py``) after a
screen of the plain sum, whose extra reduction every call pays::

    python bench_kl_generic_mixed_ab.py 1000 1000 --against /tmp/kltiny2_main/src

Cases: every pairing of forms but probabilities or logits on both sides, float64, random
rows (Q from other rows) and nearly equal rows (Q's logits those of P plus noise of
1e-9). Each ``--against`` folder's ``crossent`` is imported as ``crossent_ab<i>``
(``bench_kl_mixed_ab._copy``), each package with its fused kernel off
(``_fused.available``) and its host route off (``_torch_host.MAX_ELEMENTS = -1``).
Reported: the best of ``--repeats`` interleaved calls, by this thread's CPU time (PyTorch
on one thread) and by wall time, and the load average before and after.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import sys
import time
from typing import Any

import numpy as np

import crossent
from bench_kl_mixed_ab import _copy, time_calls

PAIRINGS = (
    ("probs", "log_probs"),
    ("probs", "logits"),
    ("log_probs", "probs"),
    ("log_probs", "log_probs"),
    ("log_probs", "logits"),
    ("logits", "probs"),
    ("logits", "log_probs"),
)


def _side(z: np.ndarray, form: str) -> np.ndarray:
    log_p = z - z.max(axis=-1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(axis=-1, keepdims=True))
    return {"logits": z, "log_probs": log_p, "probs": np.exp(log_p)}[form]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", type=int)
    parser.add_argument("classes", type=int)
    parser.add_argument("--against", nargs="*", default=[], help="other src folders")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--torch", action="store_true", help="also float64 PyTorch tensors")
    parser.add_argument("--only", default="", help="the cases whose name has this")
    args = parser.parse_args(argv)
    packages = [crossent, *(_copy(s, i) for i, s in enumerate(args.against))]
    for package in packages:
        importlib.import_module(f"{package.__name__}.info._fused").available = lambda: False
        importlib.import_module(f"{package.__name__}._torch_host").MAX_ELEMENTS = -1
    rng = np.random.default_rng(0)
    z = rng.standard_normal((args.rows, args.classes)) * 3
    near = z + rng.standard_normal(z.shape) * 1e-9
    libraries: list[tuple[str, Any]] = [("numpy", np.asarray)]
    if args.torch:
        import torch

        torch.set_num_threads(1)
        libraries.append(("torch", lambda x: torch.from_numpy(np.ascontiguousarray(x))))
    print(f"load average before: {os.getloadavg()}")
    print("trees: " + ", ".join(os.path.dirname(p.__file__ or "") for p in packages))
    for library, wrap in libraries:
        for p_form, q_form in PAIRINGS:
            for rows, other in (("random", z[::-1]), ("nearly equal", near)):
                name = f"{library} kl({p_form}, {q_form}) {rows}"
                if args.only not in name:
                    continue
                a, b = wrap(_side(z, p_form)), wrap(_side(other, q_form))
                options = {"p_form": p_form, "q_form": q_form}
                calls = [functools.partial(k.kl_divergence, a, b, **options) for k in packages]
                time_calls(name, calls, args.repeats, time.thread_time)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main(sys.argv[1:])
