"""Issue 13, exactness bar of the fused forward: every per-row loss within 2 float32 ulps.

The bar any faster ``exp`` in the kernels (a float32 one, say) must keep: on hard rows
(near-ties, spreads of 1e4 between logits, ``-inf`` entries, peaked rows with p_y of
0.9 ... 1 - 1e-6, V = 2 and V = 256000), with every option of the fused path, each
per-row loss of float32 logits is within 2 float32 ulps of the float64 truth of the
same values, and the mean loss's error is no larger than torch eager's (float32) on
the same data. Both kernels: Numba's, and the NumPy twin of the default install.
The kernels keep their float64 ``exp``: a float32 one measured slower or not enough
faster on this AVX2 machine to pay for the exactness argument (see the report).
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels, _numpy_kernels

pytest.importorskip("numba")


@pytest.fixture(params=["numba", "numpy"])
def kernels(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "numpy":
        monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
        monkeypatch.setattr(_numpy_kernels, "BLOCK_ELEMENTS", 4096)
    return str(request.param)


def _hard_rows(classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows, labels = [], []

    def add(row: np.ndarray, label: int) -> None:
        rows.append(row.astype(np.float32))
        labels.append(label)

    v = classes
    base = np.zeros(v)
    add(base, 0)  # exact ties everywhere
    tie = np.zeros(v, dtype=np.float32)
    tie[1] = np.nextafter(np.float32(0), np.float32(1))  # a near-tie: one ulp above
    add(tie, 1)
    add(tie, 0)
    near = np.full(v, 1.0, dtype=np.float32)
    near[0] = np.nextafter(np.float32(1), np.float32(2))
    add(near, 0)
    spread = rng.choice([-1e4, 0.0, 1e4], size=v)
    spread[0] = 1e4
    add(spread, 0)
    add(spread, int(np.argmin(spread)))  # a loss of 2e4
    with_inf = rng.normal(size=v) * 3
    with_inf[rng.choice(v, size=max(1, v // 3), replace=False)] = -np.inf
    finite = np.flatnonzero(np.isfinite(with_inf))
    with_inf[finite[0]] = 5.0
    add(with_inf, int(finite[0]))
    for p in (0.9, 0.99, 0.999, 1 - 1e-6):
        peaked = np.zeros(v)
        peaked[v - 1] = np.log(max(v - 1, 1) * p / (1 - p))
        add(peaked, v - 1)  # small loss, -log p
        add(peaked, 0)  # large loss
    big = rng.normal(size=v) * 30  # a wide row
    add(big, int(np.argmax(big)))
    add(big, int(np.argmin(big)))
    for _ in range(4):
        add(rng.normal(size=v) * 3, int(rng.integers(v)))
    return np.stack(rows), np.array(labels)


OPTIONS = [
    {},
    {"label_smoothing": 0.1},
    {"temperature": 0.7},
    {"temperature": 3.0, "z_loss": 1e-4},
    {"weight": "random"},
    {"ignore_index": -100},
]


def _ulps(got: np.ndarray, exact: np.ndarray) -> np.ndarray:
    spacing = np.spacing(np.abs(exact.astype(np.float32)))
    return np.abs(got.astype(np.float64) - exact) / spacing


@pytest.mark.parametrize("classes", [2, 257, 256000])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_issue13_hard_rows_within_2_float32_ulps(kernels: str, classes: int, options: dict) -> None:
    z, labels = _hard_rows(classes, seed=classes)
    kw = dict(options)
    if kw.get("weight") == "random":
        kw["weight"] = np.random.default_rng(3).uniform(0.2, 2.0, classes).astype(np.float32)
    if "ignore_index" in kw:
        labels = labels.copy()
        labels[1] = -100
    if kw.get("label_smoothing") and np.isneginf(z).any():
        # smoothing over a -inf logit is an infinite loss in both: drop that row
        keep = ~np.isneginf(z).any(axis=1)
        z, labels = z[keep], labels[keep]
    got = crossent.softmax_cross_entropy(z, labels, reduction="none", **kw)
    exact = crossent.softmax_cross_entropy(z.astype(np.float64), labels, reduction="none", **kw)
    assert np.asarray(got).dtype == np.float32
    assert np.isfinite(exact).all()
    ulps = _ulps(np.asarray(got), np.asarray(exact))
    assert ulps.max() <= 2.0, (ulps.max(), int(ulps.argmax()))


def test_issue13_mean_loss_error_at_most_torch_eager(kernels: str) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    z = (rng.normal(size=(512, 4000)) * 3).astype(np.float32)
    labels = rng.integers(0, 4000, 512)
    exact = float(crossent.softmax_cross_entropy(z.astype(np.float64), labels))
    ours = float(crossent.softmax_cross_entropy(z, labels))
    eager = float(torch.nn.functional.cross_entropy(torch.from_numpy(z), torch.from_numpy(labels)))
    assert abs(ours - exact) <= abs(eager - exact)
