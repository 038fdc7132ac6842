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

Read in that order, a page could still reach a kernel while the harness was compiling
it (CI run of 2026-12-06 22:00: the calibration totals and the temperature fit's row
moments, compiled by the pages at 22:03:35-22:04:44 while the harness, which then ran
``kernel_bits`` first, seeded them at 22:05:21 and later). So, while a harness runs
ahead (``tasks.py test`` sets ``CROSSENT_NUMBA_CACHE_RUNS``), a page of rank ``r``
waits (:func:`wait_for_harness`) until the harness has seeded the section
:data:`WAIT_FOR` names (it touches :func:`seeded_marker`), at most :data:`WAIT_BUDGET`
seconds in all: waiting for a section the harness is compiling takes no longer than
compiling it beside the harness, and spends no CPU.

Only the order and the time of reading change: each page runs in a kernel of its own,
so what it shows does not depend on it, and the built site is the same.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

__all__ = [
    "LATE",
    "WAIT_BUDGET",
    "WAIT_FOR",
    "order_pages",
    "seeded_marker",
    "setup",
    "wait_for_harness",
]

LATE = {
    # the float64 serial row kernel and pointwise kernel (the harness's ``fused_cache``)
    "tutorials/binary": 1,
    "tutorials/cross-entropy-kl": 1,
    # (``kl_divergence`` in its last cell: read first, at rank 0, it compiled the float64
    # kernels beside the harness: in the CI run of 2026-12-06 22:00 it saved the row
    # kernels ``_row`` and ``_rows_serial`` at 22:02:42, 25 s after the harness had)
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


WAIT_FOR = {1: "fused_cache", 2: "measure_bits", 3: "totals_bits", 4: "temperature_bits"}
"""The section of ``tests/numba_cache_harness.py`` that compiles the kernels of the
pages of each rank of :data:`LATE` (the harness runs them in this order)."""

WAIT_BUDGET = 300.0
"""Seconds that the pages may wait for the harness in all: a harness stuck or far behind
(one that failed marks every section at its end). The pages then compile what they
need, as without it."""

_WAITED = {"seconds": 0.0}


def seeded_marker(cache: Path, section: str) -> Path:
    """The file that the harness's cold process touches in the seeded Numba cache
    ``cache`` once ``section``'s kernels are there (``numba_cache_harness.SEEDED``)."""
    return cache / f".harness-seeded-{section}"


def wait_for_harness(app: Any, docname: str, source: list[str]) -> None:
    """Before page ``docname`` is read (so executed), wait until the harness running
    ahead has seeded the kernels of its rank (:data:`WAIT_FOR`), within what is left of
    :data:`WAIT_BUDGET`; nothing without such a harness (``CROSSENT_NUMBA_CACHE_RUNS``
    and ``NUMBA_CACHE_DIR`` unset)."""
    rank = LATE.get(docname, 0)
    runs, cache = os.environ.get("CROSSENT_NUMBA_CACHE_RUNS"), os.environ.get("NUMBA_CACHE_DIR")
    if not rank or not runs or not cache:
        return
    marker = seeded_marker(Path(cache), WAIT_FOR[rank])
    start = time.monotonic()
    while not marker.exists() and _WAITED["seconds"] + time.monotonic() - start < WAIT_BUDGET:
        time.sleep(0.2)
    _WAITED["seconds"] += time.monotonic() - start


def setup(app: Any) -> dict[str, bool]:
    app.connect("env-before-read-docs", order_pages)
    app.connect("source-read", wait_for_harness)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
