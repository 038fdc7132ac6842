"""Issue 13, first-call time: a read-only array (``flags.writeable`` False: a memory map
opened with ``mode="r"``, as ``crossent report`` reads its files) and a writable one
share one compiled specialisation of each Numba kernel.

Numba types the two as different arrays, so a kernel called with both compiled twice
(the calibration kernels ``totals`` and ``summaries``, float32: 22 s of CPU time; the
softmax loss kernels 5 s). The dispatch layers now hand every input array to the kernels
as a read-only view (``crossent._read_only.read_only``). Each test calls a kernel family
with a writable float32 array, then with a read-only copy of it, and checks that the
results are the same bits and that each kernel holds at most one float32 specialisation
(on main's code: two each; main copied read-only distillation rows to float64
blocks, read by a float64 kernel). The kernels are those the rest of the suite compiles
(or loads from the cache the harness seeds): small inputs, no new compilation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent as ce

pytest.importorskip("numba")


def _frozen(x: np.ndarray) -> np.ndarray:
    """A read-only copy of ``x`` (its own buffer, as a memory map's)."""
    y = x.copy()
    y.flags.writeable = False
    return y


def _float32_specialisations(kernel: Any) -> int:
    """How many of ``kernel``'s compiled signatures take a float32 matrix first."""
    return sum(
        1
        for signature in kernel.signatures
        if str(getattr(signature[0], "dtype", "")) == "float32" and signature[0].ndim == 2
    )


_TOTALS: dict[str, Any] = {
    "top": True,
    "entropy": True,
    "limit": 1e-3,
    "spherical": True,
    "squares": True,
    "classes": True,
    "left": False,
    "keep": 3,
}
"""``block_totals``' options: every sum asked."""


def _calibration(p: np.ndarray, y: np.ndarray) -> tuple[dict[str, Any], list[np.ndarray]]:
    from crossent.calibration import _row_kernels

    totals = _row_kernels.block_totals(p, y, **_TOTALS, edges=np.linspace(0.0, 1.0, 16))
    summaries = _row_kernels.row_summaries(p, y, top=True, entropy=True, limit=1e-3)
    kernels = _row_kernels._kernels()
    out = [totals[1], *totals[2], *(x for x in summaries[1:] if x is not None)]
    return {name: kernels[name] for name in ("totals", "summaries")}, out


def _softmax(z: np.ndarray, y: np.ndarray) -> tuple[dict[str, Any], list[np.ndarray]]:
    from crossent.losses import _cpu_kernels

    out = [np.asarray(ce.softmax_cross_entropy(z, y)), ce.softmax_cross_entropy_grad(z, y)]
    return _cpu_kernels._kernels(), out


def _distillation(z: np.ndarray, v: np.ndarray) -> tuple[dict[str, Any], list[np.ndarray]]:
    from crossent.losses import _distill_fused, _distill_rows

    call = _distill_fused.fused_call((z, v), {})
    assert call is not None
    assert call.direct  # read as they are (main's copied read-only rows to float64 blocks)
    out = [np.asarray(ce.distillation_loss(z, v)), ce.distillation_loss_grad(z, v)]
    return dict(zip(("forward", "backward"), _distill_rows.kernels(), strict=True)), out


def _rows(rows: int, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(13)
    p = rng.dirichlet(np.ones(classes), size=rows).astype(np.float32)
    z = rng.standard_normal((rows, classes)).astype(np.float32)
    return p, z, rng.integers(0, classes, rows)


def _specialisations(family: str) -> dict[str, list[int]]:
    """Call ``family``'s kernels with a writable then a read-only copy; per kernel, the
    number of compiled signatures after the writable and after the read-only call, and
    of float32-matrix ones at the end."""
    # 400 x 64: above the losses' serial and fused thresholds (2**14 entries)
    p, z, y = _rows(400, 64)
    call: Callable[[np.ndarray, np.ndarray], tuple[dict[str, Any], list[np.ndarray]]]
    call, first, second = {
        "calibration": (_calibration, p, y),
        "softmax": (_softmax, z, y),
        "distillation": (_distillation, z, p),
    }[family]
    kernels, writable = call(first, second)
    compiled = {name: len(kernel.signatures) for name, kernel in kernels.items()}
    _, frozen = call(_frozen(first), _frozen(second))
    for a, b in zip(writable, frozen, strict=True):
        np.testing.assert_array_equal(a, b, strict=True)
    return {
        name: [compiled[name], len(kernel.signatures), _float32_specialisations(kernel)]
        for name, kernel in kernels.items()
    }


@pytest.mark.parametrize("family", ["calibration", "softmax", "distillation"])
def test_issue13_read_only_input_shares_the_writable_specialisation(family: str) -> None:
    # A fresh process: a kernel's signatures are those compiled (or loaded from the
    # cache) in the process, and other tests in a worker compile their own (other
    # label dtypes, the small-call paths' writable arrays). Exact counts need a
    # process that has run only this call.
    script = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.spec_from_file_location('read_only_kernels', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "print(json.dumps(module._specialisations(sys.argv[2])))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, __file__, family],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    counts: dict[str, list[int]] = json.loads(done.stdout.strip().splitlines()[-1])
    # the read-only call compiles nothing new
    assert all(after == writable for writable, after, _ in counts.values()), counts
    float32 = {name: c[2] for name, c in counts.items()}
    assert any(float32.values()), counts
    assert max(float32.values()) == 1, counts


def test_issue13_read_only_is_a_view_not_a_copy() -> None:
    from crossent._read_only import read_only

    x = np.arange(6.0).reshape(2, 3)
    view = read_only(x)
    assert not view.flags.writeable
    assert x.flags.writeable
    assert np.shares_memory(view, x)
    assert view.shape == x.shape
    assert read_only(view) is view
