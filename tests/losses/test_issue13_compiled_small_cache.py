"""Issue 13, small inputs: the compiled small softmax call loads from Numba's disk cache.

The one compiled call of a small float32 softmax cross-entropy (``_small_numba``) is
worth its microseconds only if a new process finds it in Numba's on-disk cache rather
than compiling it again (seconds). Two fresh processes share a new ``NUMBA_CACHE_DIR``:
the first compiles and saves, the second must load both functions (hits, no misses)
and give the same values. A first version summed with a recursive function, which
Numba compiled and saved but crashed loading from the cache in the second process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fresh_process import run_python

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


def _run(cache: Path) -> dict[str, object]:
    """The stats (``{function: [signatures, cache hits, cache misses]}``) and values of a
    fresh process."""
    return dict(json.loads(run_python(_SCRIPT, numba_cache=cache).strip().splitlines()[-1]))


def test_issue13_compiled_small_loads_from_the_disk_cache_in_a_new_process(
    tmp_path: Path,
) -> None:
    first = _run(tmp_path)
    assert first["stats"] == {"label_loss": [1, 0, 1], "label_gradient": [1, 0, 1]}, first
    second = _run(tmp_path)
    assert second["stats"] == {"label_loss": [1, 1, 0], "label_gradient": [1, 1, 0]}, second
    assert second["values"] == first["values"]
