#!/usr/bin/env bash
# Run a command as if this AVX-512 machine had AVX2 only (issue 13: the AVX2 targets).
#
#     cd benchmarks && PYTHONPATH=../src:. NUMBA_CACHE_DIR=/tmp/numba_avx2emu \
#         ./emulate_avx2.sh python bench_softmax_ce.py --no-numba --repeats 3
#
# THIS IS AN EMULATION, NOT AN AMD MEASUREMENT: the same cores, caches, memory
# system and clock as the host, with the libraries told to use 256-bit code only. An
# AMD EPYC (Zen 3) differs in latencies, cache sizes and memory bandwidth, so ratios
# measured here are a guide to the AVX2 code paths' relative costs, not a Zen 3 result.
#
# The knobs (each checked to take effect; the benchmarks' machine line then reads
# "AVX2 (emulated on <cpu>: ...)", see _machine.vector_width):
#
# * NumPy: NPY_DISABLE_CPU_FEATURES = every AVX-512 target among NumPy's dispatched
#   ones (NumPy 2.4: X86_V4 AVX512_ICL AVX512_SPR; older: AVX512F AVX512_SKX ...).
#   NumPy then runs its X86_V3 (AVX2) loops, e.g. a scalar float64 exp (4.7 ns against
#   1.2 ns an entry on the Xeon) and an AVX2 float32 one. NumPy 2.4 still reports
#   __cpu_features__["AVX512F"] as True (the CPU has it); X86_V4 reads False.
# * NumPy's OpenBLAS (np.vecdot, matmul): OPENBLAS_CORETYPE=Haswell (threadpoolctl's
#   "architecture" then reads Haswell, not SkylakeX; OpenBLAS runs its Haswell kernels
#   on AMD Zen too).
# * PyTorch: ATEN_CPU_CAPABILITY=avx2 (torch.backends.cpu.get_cpu_capability() says
#   "AVX2"; its oneDNN/MKL BLAS may still pick AVX-512 kernels: DNNL_MAX_CPU_ISA=AVX2
#   and MKL_ENABLE_INSTRUCTIONS=AVX2 are set for them too).
# * Numba: NUMBA_CPU_NAME=znver3 (the AMD EPYC's name to LLVM: its tuning) and
#   NUMBA_CPU_FEATURES = the host's features with every AVX-512, AMX and AVX10 one off
#   (NUMBA_CPU_NAME alone keeps the host's features, AVX-512 included). Set
#   EMULATE_AVX2_NUMBA_CPU=haswell for Intel's tuning instead. Compiled code has no
#   zmm register then, prefer_wide_vectors() notwithstanding. Use a NUMBA_CACHE_DIR of
#   its own for these runs.
set -euo pipefail
if [ $# -eq 0 ]; then
    echo "usage: $0 command [args...]  (e.g. python bench_softmax_ce.py --no-numba)" >&2
    exit 2
fi
# the interpreter whose NumPy and llvmlite are asked: $PYTHON, else the command itself
# when it is a Python, else `python` (a different interpreter could lack llvmlite, and
# Numba would then keep the host's AVX-512 features without a word)
if [ -n "${PYTHON:-}" ]; then
    python=$PYTHON
elif [[ $(basename "$1") == python* ]]; then
    python=$1
else
    python=python
fi
# shellcheck disable=SC2016
NPY_DISABLE_CPU_FEATURES=$("$python" -c '
import numpy as np
try:
    from numpy._core import _multiarray_umath as m
except ImportError:
    from numpy.core import _multiarray_umath as m
print(" ".join(f for f in m.__cpu_dispatch__ if f.startswith(("AVX512", "X86_V4"))))
')
export NPY_DISABLE_CPU_FEATURES
export OPENBLAS_CORETYPE=Haswell
export ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
export NUMBA_CPU_NAME=${EMULATE_AVX2_NUMBA_CPU:-znver3}
NUMBA_CPU_FEATURES=$("$python" -c '
try:
    from llvmlite import binding
except ImportError:
    import sys
    print("emulate_avx2.sh: no llvmlite in this Python: Numba not emulated", file=sys.stderr)
    raise SystemExit
features = binding.get_host_cpu_features()
for name in features:
    if name.startswith(("avx512", "amx", "avx10", "evex512")):
        features[name] = False
print(features.flatten())
')
export NUMBA_CPU_FEATURES
export CROSSENT_EMULATED_AVX2=1  # read by _machine.vector_width() for the machine line
exec "$@"
