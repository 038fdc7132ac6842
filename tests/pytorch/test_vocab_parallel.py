"""Issue 15: vocab-parallel cross-entropy on gloo, against the unsharded crossent loss.

One spawn of four ranks runs every case (spawning costs seconds; a case costs
milliseconds): groups of 1, 2, 3 and 4 ranks (subgroups of the world), V = 507 and 32003,
slices by ceiling division and uneven with an empty slice, ignored rows, label smoothing 0
and 0.1, z-loss, class weights, logits scaled by 1 and 1000, float64 and float32, every
reduction. Each rank compares its loss with :func:`crossent.softmax_cross_entropy` of the
whole logits and its slice of the gradient with :func:`crossent.softmax_cross_entropy_grad`
(float64: 1e-12 and 1e-10), and counts the collectives of forward and backward with
``CommDebugMode``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

import crossent  # noqa: E402
from spawned import gloo_marks, run_spawned  # noqa: E402

from tolerances import rtol  # noqa: E402

pytestmark = gloo_marks()

GRAD_RTOL = {np.float64: 1e-10, np.float32: 1e-5}


# ----------------------------------------------------------------------------- helpers


def _slices(classes: int, world: int, pattern: str) -> list[int]:
    """Slice sizes in rank order: ceiling division, or uneven with an empty slice."""
    if pattern == "ceil":
        step = -(-classes // world)
        return [max(0, min(step, classes - r * step)) for r in range(world)]
    if world == 1:
        return [classes]
    cuts = {2: [0, 1.0], 3: [0.6, 0.0, 0.4], 4: [0.01, 0.79, 0.0, 0.2]}[world]
    sizes = [int(f * classes) for f in cuts]
    sizes[-1 if cuts[-1] else -2] += classes - sum(sizes)
    return sizes


def _counts(mode: Any) -> dict[str, int]:
    return {str(op).split(".")[-1]: n for op, n in mode.get_comm_counts().items()}


def _check(name: str, got: Any, want: Any, tol: float, atol: float = 0.0) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=tol, atol=atol * scale, err_msg=name)


class _Collectives:
    """Checks a forward's collectives: the agreement's all-gather (16 integers a rank, which
    also gives the slice sizes on every call, issue 13) and two all-reduces."""

    def forward(self, mode: Any, label: str, classes: int, weighted: bool) -> None:
        want = {"allgather_": 1, "allreduce_": 2}
        assert _counts(mode) == want, (label, _counts(mode), want)


# ----------------------------------------------------------------------------- cases


def _ce_case(rank: int, group: Any, sizes: list[int], case: dict, counter: _Collectives) -> None:
    from torch.distributed.tensor.debug import CommDebugMode

    from crossent.torch import vocab_parallel_cross_entropy

    rng = np.random.default_rng(case["seed"])
    classes, rows, dtype = sum(sizes), case["rows"], case["dtype"]
    z = (rng.normal(size=(rows, classes)) * case["scale"]).astype(dtype)
    y = rng.integers(0, classes, size=rows)
    y[rng.random(rows) < 0.3] = -100
    if case.get("all_ignored"):
        y[:] = -100
    if case.get("peaked"):  # the label is the top logit: L = log-partition, about e^-1000
        y = np.where(y == -100, y, np.argmax(z, axis=1))
    w = rng.uniform(0.2, 3.0, size=classes) if case["weight"] else None
    upstream = rng.normal(size=rows)
    options = {
        "ignore_index": -100,
        "reduction": case["reduction"],
        "label_smoothing": case["eps"],
        "z_loss": case["z_loss"],
        "soft_cap": case.get("soft_cap"),
        "temperature": case.get("temperature", 1.0),
    }
    z_ref = z.astype(np.float64)
    want = crossent.softmax_cross_entropy(z_ref, y, weight=w, **options)
    grad = crossent.softmax_cross_entropy_grad(z_ref, y, weight=w, **options)
    if case["reduction"] == "none":
        grad = grad * upstream[:, None]

    lo = sum(sizes[:rank])
    mine = z[:, lo : lo + sizes[rank]]
    layout_3d = case.get("layout_3d", False)
    if layout_3d:  # (N, V_r, d): rows split into (N/2, 2) positions
        mine = np.ascontiguousarray(mine.reshape(rows // 2, 2, -1).transpose(0, 2, 1))
        y_t = torch.tensor(y.reshape(rows // 2, 2))
    else:
        y_t = torch.tensor(y)
    logits = torch.tensor(mine, requires_grad=True)
    weight = None if w is None else torch.tensor(w, dtype=logits.dtype)
    with CommDebugMode() as forward_mode:
        loss = vocab_parallel_cross_entropy(logits, y_t, group=group, weight=weight, **options)
    counter.forward(forward_mode, str(case), classes, w is not None)
    if case["reduction"] == "none":
        seed = torch.tensor(upstream.reshape(tuple(loss.shape)), dtype=loss.dtype)
    else:
        seed = torch.ones((), dtype=loss.dtype)
    with CommDebugMode() as backward_mode:
        loss.backward(seed)
    assert _counts(backward_mode) == {}, (case, _counts(backward_mode))

    tol = rtol(dtype)
    got_grad = logits.grad.numpy()
    if layout_3d:
        got_grad = got_grad.transpose(0, 2, 1).reshape(rows, -1)
    want_grad = grad[:, lo : lo + sizes[rank]]
    _check(f"loss {case}", loss.detach().numpy().reshape(np.shape(want)), want, tol)
    _check(f"grad {case}", got_grad, want_grad, GRAD_RTOL[dtype], atol=GRAD_RTOL[dtype])
    assert loss.dtype == (torch.float64 if dtype == np.float64 else torch.float32)


def _linear_case(
    rank: int, group: Any, sizes: list[int], case: dict, counter: _Collectives
) -> None:
    from torch.distributed.tensor.debug import CommDebugMode

    from crossent.torch import vocab_parallel_linear_cross_entropy

    rng = np.random.default_rng(case["seed"])
    classes, rows, features, dtype = sum(sizes), case["rows"], 8, case["dtype"]
    h = rng.normal(size=(rows, features)).astype(dtype)
    big_w = (rng.normal(size=(classes, features)) * case["scale"]).astype(dtype)
    bias = rng.normal(size=classes).astype(dtype)
    y = rng.integers(0, classes, size=rows)
    y[rng.random(rows) < 0.3] = -100
    options = {
        "ignore_index": -100,
        "reduction": case["reduction"],
        "label_smoothing": case["eps"],
        "z_loss": case["z_loss"],
    }
    h64, w64, b64 = (a.astype(np.float64) for a in (h, big_w, bias))
    z = h64 @ w64.T + b64
    want = crossent.softmax_cross_entropy(z, y, **options)
    g = crossent.softmax_cross_entropy_grad(z, y, **options)

    lo, hi = sum(sizes[:rank]), sum(sizes[: rank + 1])
    h_t = torch.tensor(h, requires_grad=True)
    w_t = torch.tensor(big_w[lo:hi], requires_grad=True)
    b_t = torch.tensor(bias[lo:hi], requires_grad=True)
    with CommDebugMode() as forward_mode:
        loss = vocab_parallel_linear_cross_entropy(
            h_t, w_t, torch.tensor(y), bias=b_t, group=group, chunk_size=3, **options
        )
    counter.forward(forward_mode, f"linear {case}", classes, False)
    with CommDebugMode() as backward_mode:
        loss.sum().backward()
    assert _counts(backward_mode) == {"allreduce_": 1}, (case, _counts(backward_mode))
    if case["reduction"] == "none":
        pass  # the upstream gradient is 1 for every row: g is already per row
    tol, gtol = rtol(dtype), GRAD_RTOL[dtype]
    _check(f"linear loss {case}", loss.detach().numpy(), want, tol)
    _check(f"linear dh {case}", h_t.grad.numpy(), g @ w64, gtol, atol=gtol)
    _check(f"linear dW {case}", w_t.grad.numpy(), (g.T @ h64)[lo:hi], gtol, atol=gtol)
    _check(f"linear db {case}", b_t.grad.numpy(), g.sum(axis=0)[lo:hi], gtol, atol=gtol)


def _cases(classes: int, config: int) -> list[dict]:
    """Eight loss cases for one (group, V, slicing) configuration.

    Float64 covers label smoothing x logit scale in every configuration; z-loss with class
    weights, the reduction and one special case (soft-cap with temperature, the
    ``(N, C, d)`` layout, an all-ignored batch) rotate with ``config``; two float32 cases;
    one whose labels are the rows' top logits at scale 1000 (a tiny log-partition, which
    only ``log1p`` of the counted maxima keeps: ``log(sum)`` rounds it to 0).
    """
    rows = 6 if classes < 1000 else 4
    grid = []
    seed = 1000 * config + classes
    for j, (eps, scale) in enumerate(((0.0, 1.0), (0.1, 1.0), (0.0, 1000.0), (0.1, 1000.0))):
        heavy = (config + j) % 2 == 1
        grid.append(
            {
                "seed": seed + j,
                "rows": rows,
                "scale": scale,
                "eps": eps,
                "z_loss": 1e-3 if heavy else 0.0,
                "weight": heavy,
                "dtype": np.float64,
                "reduction": ("mean", "sum", "none")[(config + j) % 3],
            }
        )
    for j, (eps, scale) in enumerate(((0.1, 1.0), (0.0, 1000.0))):
        grid.append(grid[j + 1] | {"seed": seed + 10 + j, "eps": eps, "scale": scale})
        grid[-1] |= {"dtype": np.float32, "z_loss": 1e-3, "weight": True}
    special = (
        {"eps": 0.1, "reduction": "mean", "soft_cap": 3.0, "temperature": 0.7},
        {"eps": 0.1, "reduction": "none", "layout_3d": True},
        {"eps": 0.1, "reduction": "mean", "all_ignored": True},
    )[config % 3]
    base = {"rows": rows, "scale": 1.0, "z_loss": 1e-3, "weight": True, "dtype": np.float64}
    grid.append(base | {"seed": seed + 20} | special)
    peaked = {"scale": 1000.0, "eps": 0.0, "z_loss": 0.0, "weight": False, "reduction": "none"}
    grid.append(base | {"seed": seed + 30, "peaked": True} | peaked)
    return grid


def _linear_cases(config: int) -> list[dict]:
    eps, dtype, reduction = ((0.0, np.float64, "mean"), (0.1, np.float64, "none"))[config % 2]
    case = {"seed": 7 + config, "rows": 7, "scale": 1.0, "eps": eps, "z_loss": 1e-3}
    return [case | {"dtype": dtype, "reduction": reduction}]


def _parity_worker(rank: int, world: int) -> None:
    groups = {k: dist.new_group(list(range(k))) for k in range(1, world)}
    groups[world] = None  # the default group
    config = 0
    for k, group in groups.items():
        counter = _Collectives()
        for classes in (507, 32003):
            # Changing the slicing from call to call: each call's agreement gives it.
            for pattern in ("ceil", "uneven") if k > 1 else ("ceil",):
                config += 1
                if rank >= k:
                    continue
                sizes = _slices(classes, k, pattern)
                assert sum(sizes) == classes
                assert pattern == "ceil" or k < 2 or 0 in sizes
                for case in _cases(classes, config):
                    _ce_case(rank, group, sizes, case, counter)
                for case in _linear_cases(config):
                    _linear_case(rank, group, sizes, case, counter)
    _errors_worker(rank, world)


def _errors_worker(rank: int, world: int) -> None:
    """Errors raised on every rank, where the data are replicated or reduced."""
    from crossent.errors import InputError
    from crossent.torch import vocab_parallel_cross_entropy

    sizes = _slices(50, world, "uneven")
    logits = torch.zeros(3, sizes[rank], dtype=torch.float64)
    with pytest.raises(InputError, match=r"`target` must be integers in \[0, 50\)"):
        vocab_parallel_cross_entropy(logits, torch.tensor([0, 50, 1]))
    bad = logits.clone()
    if rank == world - 1:  # a NaN on the last rank only: every rank must raise
        bad[1, 0] = math.nan
    with pytest.raises(InputError, match="1 NaN or \\+inf"):
        vocab_parallel_cross_entropy(bad, torch.tensor([0, 2, 1]))
    minus_inf = torch.full_like(logits, -math.inf)
    with pytest.raises(InputError, match="row 0 is -inf for every class"):
        vocab_parallel_cross_entropy(minus_inf, torch.tensor([0, 2, 1]))
    with pytest.raises(InputError, match="`weight` must have shape \\(50,\\)"):
        vocab_parallel_cross_entropy(logits, torch.tensor([0, 2, 1]), weight=torch.ones(7))
    # the group still works after the errors
    loss = vocab_parallel_cross_entropy(logits, torch.tensor([0, 2, 1]))
    assert abs(float(loss) - math.log(50)) < 1e-12


# ----------------------------------------------------------------------------- tests


def test_issue15_vocab_parallel_matches_unsharded() -> None:
    run_spawned(_parity_worker, 4, timeout=480)


def test_issue15_needs_a_process_group() -> None:
    from crossent.errors import InputError
    from crossent.torch import vocab_parallel_cross_entropy

    if dist.is_initialized():
        pytest.skip("a process group is initialised in this process")
    with pytest.raises(InputError, match="init_process_group"):
        vocab_parallel_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]))
