"""What Numba compiles for: the CPU features of its target, not always the host's.

``NUMBA_CPU_FEATURES`` (``numba.config.CPU_FEATURES``) overrides the host's features, as
``benchmarks/emulate_avx2.sh`` does to emulate an AVX2-only machine on an AVX-512 one; the
tests that inspect the kernels' assembly ask which registers to expect
(``crossent._intrinsics_numba.numba_target_has``, which the kernels ask too).
"""

from __future__ import annotations

from crossent._intrinsics_numba import numba_target_has

__all__ = ["numba_target_has"]
