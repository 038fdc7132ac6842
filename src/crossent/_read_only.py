"""Arrays handed to Numba kernels as read-only views (issue 13: one compilation).

Numba types an array that NumPy may not write (``flags.writeable`` False: a
``numpy.memmap`` opened with ``mode="r"``, a broadcast, ``numpy.frombuffer`` of bytes)
as another type than a writable one, so a kernel called with both compiles twice:
measured on the 2-core AMD EPYC (fresh cache, CPU time), the calibration kernels
``totals`` and ``summaries`` 22 s more for read-only float32 rows after writable ones
(``crossent report`` reads its files as read-only memory maps; the API's callers pass
writable arrays), the softmax loss kernels 5 s.  The dispatch layers hand every input
a kernel only reads through :func:`read_only`, so each kernel has one specialisation
whatever the caller's flags (a read-only array is read alike: the same code, the same
bits).
"""

from __future__ import annotations

import numpy as np

__all__ = ["read_only"]


def read_only(x: np.ndarray) -> np.ndarray:
    """``x`` itself if NumPy may not write it, else a read-only view of it (no copy)."""
    if not x.flags.writeable:
        return x
    view = x.view()
    view.flags.writeable = False
    return view
