"""What Numba compiles for: the CPU features of its target, not always the host's.

``NUMBA_CPU_FEATURES`` (``numba.config.CPU_FEATURES``) overrides the host's features, as
``benchmarks/emulate_avx2.sh`` does to emulate an AVX2-only machine on an AVX-512 one; the
tests that inspect the kernels' assembly ask this module which registers to expect.
"""

from __future__ import annotations

import platform


def numba_target_has(feature: str) -> bool:
    """Whether the code Numba emits may use the x86 ``feature`` (e.g. ``"avx512f"``)."""
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        return False
    import numba
    from llvmlite import binding

    override = numba.config.CPU_FEATURES
    if override:  # "+avx2,-avx512f,...": LLVM's feature string, given in full
        return f"+{feature}" in override.split(",")
    return bool(binding.get_host_cpu_features().get(feature, False))
