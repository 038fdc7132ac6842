"""Read (so execute) the pages whose examples call the Numba cache tests' kernels last.

``python3 tasks.py test`` builds this site beside ``tests/numba_cache_harness.py``,
whose cold process must compile its kernels itself on an empty cache and which hands
each section's kernels to the suite's Numba cache (the build's too) as soon as that
section is done. Several of them the pages' examples call as well: the measures' serial
row kernel for float64 and float32 (about 30 s of CPU each to compile), the calibration
totals, the temperature fit's row moments. Sphinx reads the pages in sorted order, so
the build reached them first (``differs``, then ``tutorials/binary``, ...) and compiled
them at the same time as the harness: about 75 s of CPU spent twice in every CI run.
Read in the order in which the harness hands those kernels over (:data:`LATE`), after
the pages that need none of them, the build loads them instead.

Only the order of reading changes: each page runs in a kernel of its own, so what it
shows does not depend on it, and the built site is the same.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LATE", "order_pages", "setup"]

LATE = {
    # the float64 serial row kernel and pointwise kernel (the harness's ``fused_cache``)
    "tutorials/binary": 1,
    "tutorials/cross-entropy-kl": 1,
    # (``kl_divergence`` in its last cell: read first, at rank 0, it compiled the float64
    # kernels beside the harness, about 60 s of CPU spent twice per CI run)
    "tutorials/distillation": 1,
    "tutorials/smoothing-weights": 1,
    "tutorials/surprise-entropy": 1,
    "tutorials/temperature": 1,
    # ... the float32 serial row kernel (``measure_bits``): the float16 example
    "differs": 2,
    # ... the calibration totals (``totals_bits``)
    "tutorials/clipping": 3,
    # ... the temperature fit's row moments (``temperature_bits``)
    "tutorials/calibration": 4,
    "tutorials/code-length": 4,
    "tutorials/perplexity": 4,  # float32 logits: every kernel above for float32 too
}
"""The pages read last, by the rank of the last kernel they share with the harness
(the other pages come first, rank 0); in sorted order within a rank."""


def order_pages(app: Any, env: Any, docnames: list[str]) -> None:
    """Sort ``docnames`` (Sphinx's reading order, in place) by :data:`LATE`'s rank."""
    docnames.sort(key=lambda name: LATE.get(name, 0))  # stable: sorted within a rank


def setup(app: Any) -> dict[str, bool]:
    app.connect("env-before-read-docs", order_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
