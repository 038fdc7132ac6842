"""Issue 13, small inputs: the compiled small softmax call loads from Numba's disk cache.

The one compiled call of a small float32 softmax cross-entropy (``_small_numba``) is
worth its microseconds only if a new process finds it in Numba's on-disk cache rather
than compiling it again (seconds). Two fresh processes share a new ``NUMBA_CACHE_DIR``:
the first compiles and saves, the second must load both functions (hits, no misses)
and give the same values (the two processes of ``numba_cache_harness``, where this
script runs before anything else compiles the small call). A first version summed with
a recursive function, which Numba compiled and saved but crashed loading from the cache
in the second process.
"""

from __future__ import annotations

import json

import pytest

from numba_cache_harness import CacheRuns, register, section_output

pytest.importorskip("numba")

_SCRIPT = """
import json

import numpy as np

import crossent
from crossent.losses import _small_numba

z = np.linspace(-3.0, 3.0, 40, dtype=np.float32).reshape(4, 10)
labels = np.array([0, 3, 9, 5])
values = [
    float(crossent.softmax_cross_entropy(z, labels)),
    crossent.softmax_cross_entropy(z, labels, reduction="none").tolist(),
    crossent.softmax_cross_entropy_grad(z, labels, z_loss=0.1).tolist(),
]
stats = {
    name: [
        len(function.signatures),
        sum(function.stats.cache_hits.values()),
        sum(function.stats.cache_misses.values()),
    ]
    for name, function in (
        ("label_loss", _small_numba.label_loss),
        ("label_gradient", _small_numba.label_gradient),
    )
}
print(json.dumps({"stats": stats, "values": values}))
"""


register("compiled_small", _SCRIPT)


def test_issue13_compiled_small_loads_from_the_disk_cache_in_a_new_process(
    numba_cache_runs: CacheRuns,
) -> None:
    # The stats ({function: [signatures, cache hits, cache misses]}) and values of each.
    first, second = (
        json.loads(out.strip().splitlines()[-1])
        for out in section_output(numba_cache_runs, "compiled_small")
    )
    assert first["stats"] == {"label_loss": [1, 0, 1], "label_gradient": [1, 0, 1]}, first
    assert second["stats"] == {"label_loss": [1, 1, 0], "label_gradient": [1, 1, 0]}, second
    assert second["values"] == first["values"]
