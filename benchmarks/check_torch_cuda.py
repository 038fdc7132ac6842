"""``crossent.torch`` on a CUDA device: accuracy against float64, host syncs, speed, memory.

    python benchmarks/check_torch_cuda.py [--device cuda] [--quick] [--json PATH]
        [--skip-speed] [--skip-accuracy] [--skip-distributed]

CI has no GPU, so this script is how ``crossent.torch``'s CUDA behaviour is checked on a
machine that has one (RESULTS.md records the runs). On a CPU (``--device cpu --quick``)
it only checks that the script itself runs.

Accuracy (every public loss, on the device, in float64, float32, bfloat16 and float16):
each loss and its gradient against a float64 reference of the same input values computed
on the CPU by plain torch formulas (``F.cross_entropy`` / ``log_softmax`` in float64, the
z-loss and soft cap written out), over hard rows: near-ties, spreads of 80 and 1e4,
``-inf`` entries, V = 2 and a wide vocabulary. Beside each error is the error of
PyTorch's own ``F.cross_entropy`` on the device in the same dtype (the anchor), so a row
reads "crossent's error / PyTorch's error". The result's device and dtype are checked
(bf16/fp16 inputs must give a float32 loss).

Host syncs: each call once under ``torch.cuda.set_sync_debug_mode("warn")``, counting the
synchronising operations it makes (a device-to-host copy stalls the training step).

Speed and memory (``--skip-speed`` to leave out): forward and forward+backward of
``cross_entropy`` (4096 x 32000 float32 and bfloat16) and of ``linear_cross_entropy``
(N 8192, D 4096, V 128256, bfloat16), against eager PyTorch and ``torch.compile``; the
median of CUDA-event timings after warm-up; peak allocated memory above the inputs; and
the floor: one read of the logits (``torch.sum``).

Distributed (``--skip-distributed``): ``vocab_parallel_cross_entropy`` and
``all_reduce_state`` on a one-process NCCL group.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the name everyone reads

import crossent
import crossent.torch as ct

RESULTS: dict[str, Any] = {}
JSON_PATH: list[str] = []  # where to write RESULTS after every record (``--json``)


def _record(section: str, key: str, value: Any) -> None:
    RESULTS.setdefault(section, {})[key] = value
    print(f"[{section}] {key}: {value}", flush=True)
    if JSON_PATH:  # rewritten each time, so a run stopped at its time limit keeps its results
        with open(JSON_PATH[0], "w") as out:
            json.dump(RESULTS, out, indent=1, default=str)


def _guarded(section: str, body: Callable[[], None]) -> None:
    """Run one section; a failure is recorded, not fatal."""
    try:
        body()
    except Exception as exc:  # a report of every failure is the point
        _record(section, "FAILED", f"{type(exc).__name__}: {exc}")
        traceback.print_exc()


# ---------------------------------------------------------------- hard inputs


def hard_logits(rows: int, classes: int, seed: int) -> torch.Tensor:
    """float64 CPU logits with near-ties, spreads of 80 and 1e4, and -inf entries."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(rows, classes, generator=g, dtype=torch.float64) * 3
    if rows >= 8 and classes >= 2:
        z[0] = 0.0
        z[0, 0] = 1e-6  # near-tie
        z[1, 0] = 80.0  # p -> 1
        z[2, 1:] = -1e4  # spread of 1e4
        z[3, 1] = -math.inf
        z[4] = z[4] * 1e-8  # nearly uniform
        z[5, 0] = -80.0  # label far below
    return z


def labels_for(rows: int, classes: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 1)
    y = torch.randint(0, classes, (rows,), generator=g)
    y[: min(rows, 6)] = 0
    return y


def gaps_to_lse(z: torch.Tensor) -> torch.Tensor:
    """``LSE(z_i) - z_ic`` for every entry, in float64, without cancellation.

    ``LSE - z_c`` cancels only at a row's strict maximum (elsewhere another entry is at
    least as large, so the difference is at least log 2); there it is
    ``log1p(sum_{j != c} exp(z_j - z_c))``.
    """
    z = z.double()
    gaps = torch.logsumexp(z, dim=1, keepdim=True) - z
    top = z.argmax(dim=1)
    at_top = torch.zeros_like(z, dtype=torch.bool).scatter(1, top[:, None], True)
    rest = torch.where(at_top, torch.zeros_like(z), torch.exp(z - z.gather(1, top[:, None])))
    exact_top = torch.log1p(rest.sum(1, keepdim=True))
    finite = torch.isfinite(z.gather(1, top[:, None]))
    return torch.where(at_top & finite, exact_top, gaps)


def reference_ce(
    z: torch.Tensor,
    y: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    temperature: float = 1.0,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Per-row float64 loss of crossent's formula, by plain torch operations on the CPU.

    Differentiable (the gradient of the float64 formula is the reference gradient); the
    values use :func:`gaps_to_lse`, exact where ``LSE - z_y`` is tiny.
    """
    z = z.double()
    if soft_cap is not None:
        z = soft_cap * torch.tanh(z / soft_cap)
    z = z / temperature
    classes = z.shape[1]
    keep = y != ignore_index
    yy = torch.where(keep, y, torch.zeros_like(y))
    w = torch.ones(classes, dtype=torch.float64) if weight is None else weight.double()
    gaps = gaps_to_lse(z)
    loss = (1 - label_smoothing) * gaps.gather(1, yy[:, None])[:, 0] * w[yy]
    if label_smoothing:
        loss = loss + label_smoothing / classes * (gaps * w).sum(1)
    if z_loss:
        loss = loss + z_loss * w[yy] * torch.logsumexp(z, dim=1) ** 2
    return torch.where(keep, loss, torch.zeros_like(loss))


def reference_soft_ce(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Per-row float64 ``sum_c t_c (LSE - z_c)``, 0 where ``t_c = 0``."""
    gaps = gaps_to_lse(z)
    t = t.double()
    return torch.where(t > 0, t * gaps, torch.zeros_like(gaps)).sum(1)


def reference_kl(
    student: torch.Tensor, teacher: torch.Tensor, form: str, direction: str
) -> list[float]:
    """Per-row KL by mpmath at 50 digits from the float64 values given (no cancellation)."""
    import mpmath

    rows = []
    with mpmath.workdps(50):
        for s_row, t_row in zip(student.double().tolist(), teacher.double().tolist(), strict=True):
            s_top = max(s_row)
            s_exp = [mpmath.exp(mpmath.mpf(v) - s_top) for v in s_row]
            s_sum = mpmath.fsum(s_exp)
            s = [e / s_sum for e in s_exp]
            if form == "logits":
                t_top = max(t_row)
                t_exp = [
                    mpmath.e ** (mpmath.mpf(v) - t_top) if v != -math.inf else mpmath.mpf(0)
                    for v in t_row
                ]
                t_sum = mpmath.fsum(t_exp)
                t = [e / t_sum for e in t_exp]
            else:  # the given distribution, normalised (its sum is 1 only to rounding)
                t = [
                    mpmath.mpf(v)
                    if form == "probs"
                    else mpmath.exp(v)
                    if v != -math.inf
                    else mpmath.mpf(0)
                    for v in t_row
                ]
                t_sum = mpmath.fsum(t)
                t = [v / t_sum for v in t]
            a, b = (t, s) if direction == "forward" else (s, t)
            total = mpmath.mpf(0)
            for ac, bc in zip(a, b, strict=True):
                if ac == 0:
                    continue
                if bc == 0:
                    total = mpmath.inf
                    break
                total += ac * (mpmath.log(ac) - mpmath.log(bc))
            rows.append(float(total))
    return rows


def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    got = got.detach().double().cpu()
    want = want.detach().double().cpu()
    finite = torch.isfinite(want)
    if not torch.equal(torch.isfinite(got), finite):
        return math.inf
    if not finite.any():
        return 0.0
    scale = want[finite].abs().clamp_min(1e-300)
    return float(((got[finite] - want[finite]).abs() / scale).max())


def _abs_err(got: torch.Tensor, want: torch.Tensor) -> float:
    got = got.detach().double().cpu()
    want = want.detach().double().cpu()
    finite = torch.isfinite(want)
    if not torch.equal(torch.isfinite(got), finite):
        return math.inf
    return float((got[finite] - want[finite]).abs().max()) if finite.any() else 0.0


def _grad_err(got: torch.Tensor, want: torch.Tensor, want_rows: torch.Tensor) -> float:
    """Largest absolute gradient error over the rows whose reference loss is finite."""
    finite = torch.isfinite(want_rows.detach().cpu())
    return _abs_err(got.detach().cpu()[finite], want.detach().cpu()[finite])


def _loss_and_grad(
    fn: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    z = z.detach().clone().requires_grad_(True)
    rows = fn(z)
    (g,) = torch.autograd.grad(rows.sum(), z)
    return rows.detach(), g


def accuracy(device: str, quick: bool) -> None:
    shapes = [(64, 2), (64, 1000)] + ([] if quick else [(8, 256000)])
    options: list[dict[str, Any]] = [
        {},
        {"label_smoothing": 0.1},
        {"z_loss": 1e-4},
        {"soft_cap": 30.0, "temperature": 2.0},
    ]
    for dtype in (torch.float64, torch.float32, torch.bfloat16, torch.float16):
        for rows, classes in shapes:
            z64 = hard_logits(rows, classes, seed=rows + classes)
            if dtype == torch.float16:
                z64 = z64.clamp(-6e4, 6e4)
            zq = z64.to(dtype)  # the input's own values, the reference reads them too
            y = labels_for(rows, classes, seed=rows)
            for opts in options:
                name = f"cross_entropy {rows}x{classes} {str(dtype)[6:]} {opts or 'plain'}"
                want, want_g = _loss_and_grad(
                    lambda t, opts=opts, y=y: reference_ce(t, y, **opts), zq.double()
                )
                zd = zq.to(device)
                yd = y.to(device)
                got, got_g = _loss_and_grad(
                    lambda t, opts=opts, yd=yd: ct.cross_entropy(t, yd, reduction="none", **opts),
                    zd,
                )
                entry: dict[str, Any] = {
                    "device": str(got.device),
                    "dtype": str(got.dtype),
                    "loss_rel": _rel_err(got, want),
                    "grad_abs": _grad_err(got_g, want_g, want),
                }
                if not opts or list(opts) == ["label_smoothing"]:
                    try:
                        tg, tg_g = _loss_and_grad(
                            lambda t, opts=opts, yd=yd: F.cross_entropy(
                                t, yd, reduction="none", **opts
                            ).float(),
                            zd,
                        )
                        entry["torch_loss_rel"] = _rel_err(tg, want)
                        entry["torch_grad_abs"] = _grad_err(tg_g, want_g, want)
                    except RuntimeError as exc:
                        entry["torch"] = f"error: {exc}"[:120]
                wanted_dtype = torch.float64 if dtype == torch.float64 else torch.float32
                entry["dtype_ok"] = got.dtype == wanted_dtype
                entry["device_ok"] = got.device.type == torch.device(device).type
                _record("accuracy", name, entry)
    # probability targets
    for dtype in (torch.float64, torch.float32, torch.bfloat16):
        z64 = hard_logits(64, 100, seed=3)
        zq = z64.to(dtype)
        t = torch.softmax(torch.randn(64, 100, dtype=torch.float64), dim=1)
        t[0] = 0
        t[0, 0] = 1  # one-hot row: the top entry p - 1 where p -> 1
        want, want_g = _loss_and_grad(lambda s, t=t: reference_soft_ce(s, t), zq.double())
        got, got_g = _loss_and_grad(
            lambda s, t=t: ct.cross_entropy(s, t.to(device), reduction="none"), zq.to(device)
        )
        _record(
            "accuracy",
            f"cross_entropy probs 64x100 {str(dtype)[6:]}",
            {
                "loss_rel": _rel_err(got, want),
                "grad_abs": _grad_err(got_g, want_g, want),
                "dtype": str(got.dtype),
            },
        )
    # linear cross-entropy
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        g = torch.Generator().manual_seed(7)
        h = (torch.randn(64, 128, generator=g) * 2).to(dtype)
        w = (torch.randn(1000, 128, generator=g) / 4).to(dtype)
        y = labels_for(64, 1000, seed=9)

        def ref(hh: torch.Tensor, ww: torch.Tensor, y: torch.Tensor = y) -> torch.Tensor:
            return F.cross_entropy(hh @ ww.T, y, reduction="none")

        hr = h.double().requires_grad_(True)
        wr = w.double().requires_grad_(True)
        want = ref(hr, wr)
        want.sum().backward()
        hd = h.to(device).requires_grad_(True)
        wd = w.to(device).requires_grad_(True)
        got = ct.linear_cross_entropy(hd, wd, y.to(device), reduction="none")
        got.sum().backward()
        assert hd.grad is not None
        assert wd.grad is not None
        assert hr.grad is not None
        assert wr.grad is not None
        _record(
            "accuracy",
            f"linear_cross_entropy 64x128x1000 {str(dtype)[6:]}",
            {
                "loss_rel": _rel_err(got, want),
                "grad_h_abs": _abs_err(hd.grad, hr.grad),
                "grad_w_abs": _abs_err(wd.grad, wr.grad),
                "dtype": str(got.dtype),
                "device": str(got.device),
            },
        )
    # distillation, every option
    for form in ("logits", "probs", "log_probs"):
        for direction in ("forward", "reverse"):
            s64 = hard_logits(32, 50, seed=11)
            t64 = hard_logits(32, 50, seed=12)
            t64[3, 1] = -math.inf
            teacher64 = {
                "logits": t64,
                "probs": torch.softmax(t64, 1),
                "log_probs": torch.log_softmax(t64, 1),
            }[form]
            tp = torch.softmax(t64, 1)
            logtp = torch.log_softmax(t64, 1)

            def ref_kl(
                s: torch.Tensor,
                direction: str = direction,
                tp: torch.Tensor = tp,
                logtp: torch.Tensor = logtp,
            ) -> torch.Tensor:
                logs = torch.log_softmax(s, 1)
                if direction == "forward":
                    terms = torch.where(tp > 0, tp * (logtp - logs), torch.zeros_like(tp))
                else:  # +inf where sp > 0 = tp; no NaN gradient from the branch not taken
                    sp = logs.exp()
                    finite_logtp = torch.where(tp > 0, logtp, torch.zeros_like(logtp))
                    finite_logs = torch.where(sp > 0, logs, torch.zeros_like(logs))
                    inner = torch.where(
                        tp > 0, sp * (finite_logs - finite_logtp), torch.full_like(sp, math.inf)
                    )
                    terms = torch.where(sp > 0, inner, torch.zeros_like(sp))
                return terms.sum(1)

            for dtype in (torch.float64, torch.float32):
                _, want_g = _loss_and_grad(ref_kl, s64.to(dtype).double())
                td = teacher64.to(dtype).to(device)
                want = torch.tensor(
                    reference_kl(s64.to(dtype), teacher64.to(dtype), form, direction),
                    dtype=torch.float64,
                )
                got, got_g = _loss_and_grad(
                    lambda s, td=td, form=form, direction=direction: ct.distillation_loss(
                        s,
                        td,
                        reduction="none",
                        teacher_form=form,
                        direction=direction,
                    ),
                    s64.to(dtype).to(device),
                )
                _record(
                    "accuracy",
                    f"distillation {form} {direction} 32x50 {str(dtype)[6:]}",
                    {
                        "loss_rel": _rel_err(got, want),
                        "loss_abs": _abs_err(got, want),
                        "grad_abs": _grad_err(got_g, want_g, want),
                    },
                )


# ---------------------------------------------------------------- host syncs


def host_syncs(device: str) -> None:
    if not device.startswith("cuda"):
        _record("syncs", "skipped", "not a CUDA device")
        return
    z = torch.randn(256, 1000, device=device, requires_grad=True)
    y = torch.randint(0, 1000, (256,), device=device)
    h = torch.randn(256, 64, device=device, requires_grad=True)
    w = torch.randn(1000, 64, device=device, requires_grad=True)
    t = torch.softmax(torch.randn(256, 1000, device=device), 1)
    calls: dict[str, Callable[[], torch.Tensor]] = {
        "F.cross_entropy (anchor)": lambda: F.cross_entropy(z, y),
        "cross_entropy": lambda: ct.cross_entropy(z, y),
        "cross_entropy z_loss": lambda: ct.cross_entropy(z, y, z_loss=1e-4),
        "cross_entropy probs": lambda: ct.cross_entropy(z, t),
        "linear_cross_entropy": lambda: ct.linear_cross_entropy(h, w, y),
        "distillation_loss": lambda: ct.distillation_loss(z, z.detach() * 0.5),
    }
    for name, call in calls.items():
        call().backward()  # warm-up, compiles nothing
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                loss = call()
                loss.backward()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs = [str(c.message).splitlines()[0][:80] for c in caught]
        _record("syncs", name, {"count": len(syncs), "first": syncs[:3]})


# ---------------------------------------------------------------- speed


def _cuda_time(fn: Callable[[], Any], repeats: int, device: str) -> float:
    """Median seconds of ``fn`` (CUDA events on a GPU, wall clock elsewhere)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _peak_extra_mib(fn: Callable[[], Any], device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def speed(device: str, quick: bool) -> None:
    repeats = 5 if quick else 20
    rows, classes = (256, 1000) if quick else (4096, 32000)
    compiled_ce = torch.compile(F.cross_entropy)
    compiled_crossent = torch.compile(ct.cross_entropy)
    for dtype in (torch.float32, torch.bfloat16):
        z = (torch.randn(rows, classes, device=device) * 3).to(dtype)
        y = torch.randint(0, classes, (rows,), device=device)
        floor = _cuda_time(lambda z=z: z.sum(), repeats, device)
        _record("speed", f"ce {rows}x{classes} {str(dtype)[6:]} read floor s", floor)
        zg = z.detach().clone().requires_grad_(True)

        def fwd_bwd(
            fn: Callable[..., torch.Tensor], zg: torch.Tensor = zg, y: torch.Tensor = y
        ) -> None:
            zg.grad = None
            fn(zg, y).backward()

        for name, fn in (
            ("crossent", ct.cross_entropy),
            ("torch eager", F.cross_entropy),
            ("torch.compile", compiled_ce),
            ("crossent compiled", compiled_crossent),
        ):
            key = f"ce {rows}x{classes} {str(dtype)[6:]} {name}"
            try:
                with torch.no_grad():
                    fwd = _cuda_time(lambda fn=fn, z=z, y=y: fn(z, y), repeats, device)
                both = _cuda_time(lambda fn=fn: fwd_bwd(fn), repeats, device)
                mem = _peak_extra_mib(lambda fn=fn: fwd_bwd(fn), device)
                _record(
                    "speed",
                    key,
                    {
                        "forward_s": fwd,
                        "forward_x_floor": fwd / floor,
                        "fwd_bwd_s": both,
                        "fwd_bwd_peak_extra_mib": mem,
                    },
                )
            except Exception as exc:
                _record("speed", key, f"FAILED {type(exc).__name__}: {str(exc)[:200]}")
    # linear cross-entropy, bf16
    n, d, v = (512, 256, 4000) if quick else (8192, 4096, 128256)
    g = torch.Generator(device=device).manual_seed(0)
    h = (torch.randn(n, d, device=device, generator=g)).to(torch.bfloat16).requires_grad_(True)
    w = (torch.randn(v, d, device=device, generator=g) / d**0.5).to(torch.bfloat16)
    w.requires_grad_(True)
    y = torch.randint(0, v, (n,), device=device)

    def naive(hh: torch.Tensor, ww: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy((hh @ ww.T).float(), yy)

    compiled_naive = torch.compile(naive)
    for name, fn in (
        ("crossent", lambda hh, ww, yy: ct.linear_cross_entropy(hh, ww, yy)),
        ("torch eager naive", naive),
        ("torch.compile naive", compiled_naive),
    ):
        key = f"linear {n}x{d}x{v} bf16 {name}"

        def step(fn: Callable[..., torch.Tensor] = fn) -> None:
            h.grad = None
            w.grad = None
            fn(h, w, y).backward()

        try:
            t = _cuda_time(step, max(3, repeats // 4), device)
            mem = _peak_extra_mib(step, device)
            _record("speed", key, {"fwd_bwd_s": t, "peak_extra_mib": mem})
        except Exception as exc:
            _record("speed", key, f"FAILED {type(exc).__name__}: {str(exc)[:200]}")
    # accuracy of the linear loss at this size (bf16 inputs, float64 truth of the same values)
    try:
        with torch.no_grad():
            rows_ = slice(0, 256 if not quick else 64)
            h64 = h[rows_].double()
            w64 = w.double()
            truth = F.cross_entropy(h64 @ w64.T, y[rows_], reduction="none")
            ours = ct.linear_cross_entropy(h[rows_], w, y[rows_], reduction="none")
            theirs = F.cross_entropy((h[rows_] @ w.T).float(), y[rows_], reduction="none")
            _record(
                "speed",
                "linear accuracy (256 rows) max rel err",
                {
                    "crossent": _rel_err(ours, truth),
                    "torch naive bf16 matmul": _rel_err(theirs, truth),
                },
            )
    except Exception as exc:
        _record("speed", "linear accuracy", f"FAILED {type(exc).__name__}: {str(exc)[:200]}")
    # Which products ran (native: bf16 operands, float32 results; widened: float32 ones),
    # and the gradients' accuracy at this size: the forward op's float32 accumulators
    # (before the final rounding to bf16) against float64 autograd of the same values,
    # beside the error of the gradient block G rounded once to bf16 (eager PyTorch's).
    try:
        from crossent.torch import _ops, _products

        rows_ = slice(0, 256 if not quick else 64)
        hs, wd, ys = h[rows_].detach(), w.detach(), y[rows_]
        _record("speed", "linear products", repr(_products.Products.of(hs, wd)))
        out = _ops.linear_cross_entropy_op(
            hs, wd, None, ys, None, [hs.shape[0]], None, [0.0, 0.0, 1.0, 0.0], "sum", 0, 0, True
        )
        h64 = hs.double().requires_grad_(True)
        w64 = wd.double().requires_grad_(True)
        z64 = h64 @ w64.T
        z64.retain_grad()
        F.cross_entropy(z64, ys, reduction="sum").backward()
        assert z64.grad is not None
        assert h64.grad is not None
        assert w64.grad is not None
        once = z64.grad.to(torch.bfloat16).double()

        def rel(a: torch.Tensor, b: torch.Tensor) -> float:
            with torch.no_grad():
                return float((a.double() - b).abs().max() / b.abs().max())

        try:
            extra: dict[str, Any] = _eager_and_chunked_errors(hs, wd, ys, h64.grad, w64.grad, rel)
        except Exception as exc:  # (torch.mm's out_dtype: CUDA only)
            extra = {"eager and chunked": f"FAILED {type(exc).__name__}: {str(exc)[:120]}"}
        _record(
            "speed",
            f"linear gradient accuracy ({hs.shape[0]} rows) max err / max",
            {
                "crossent dh (float32)": rel(out[3], h64.grad),
                "crossent dW (float32)": rel(out[4], w64.grad),
                "G rounded once to bf16: dh": rel(once @ w64, h64.grad),
                "G rounded once to bf16: dW": rel(once.T @ h64, w64.grad),
                **extra,
            },
        )
        del out, h64, w64, z64, once
    except Exception as exc:
        _record(
            "speed", "linear gradient accuracy", f"FAILED {type(exc).__name__}: {str(exc)[:200]}"
        )


def _eager_and_chunked_errors(
    hs: torch.Tensor,
    wd: torch.Tensor,
    ys: torch.Tensor,
    dh64: torch.Tensor,
    dw64: torch.Tensor,
    rel: Callable[[torch.Tensor, torch.Tensor], float],
) -> dict[str, float]:
    """The gradients' errors of eager PyTorch's naive path (bf16 logits and dlogits), and
    of ``dh`` formed as crossent's split products over vocabulary chunks of 4096 classes
    summed in float32 (whether cuBLAS's float32 accumulation over a long ``K`` is what
    limits crossent's ``dh``)."""
    he = hs.clone().requires_grad_(True)
    we = wd.clone().requires_grad_(True)
    F.cross_entropy((he @ we.T).float(), ys, reduction="sum").backward()
    assert he.grad is not None
    assert we.grad is not None
    with torch.no_grad():
        z = torch.mm(hs, wd.T, out_dtype=torch.float32)
        g = torch.softmax(z, 1)
        g[torch.arange(len(ys), device=g.device), ys] -= 1
        hi = g.to(torch.bfloat16)
        lo = (g - hi.float()).to(torch.bfloat16)
        whole = torch.mm(hi, wd, out_dtype=torch.float32) + torch.mm(
            lo, wd, out_dtype=torch.float32
        )
        chunked = torch.zeros_like(whole)
        for c0 in range(0, wd.shape[0], 4096):
            c1 = min(wd.shape[0], c0 + 4096)
            chunked += torch.mm(hi[:, c0:c1], wd[c0:c1], out_dtype=torch.float32)
            chunked += torch.mm(lo[:, c0:c1], wd[c0:c1], out_dtype=torch.float32)
    return {
        "torch eager naive: dh (bf16)": rel(he.grad, dh64),
        "torch eager naive: dW (bf16)": rel(we.grad, dw64),
        "split, one product over V: dh": rel(whole, dh64),
        "split, 4096-class chunks summed: dh": rel(chunked, dh64),
    }


# ---------------------------------------------------------------- distributed


def distributed(device: str) -> None:
    import torch.distributed as dist

    backend = "nccl" if device.startswith("cuda") else "gloo"
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    if device.startswith("cuda"):
        torch.cuda.set_device(0)
    dist.init_process_group(backend, rank=0, world_size=1)
    try:
        z64 = hard_logits(64, 1000, seed=5)
        y = labels_for(64, 1000, seed=5)
        want = reference_ce(z64, y)
        zd = z64.float().to(device).requires_grad_(True)
        got = ct.vocab_parallel_cross_entropy(zd, y.to(device), reduction="none")
        got.sum().backward()
        _record(
            "distributed",
            f"vocab_parallel_cross_entropy {backend} world 1",
            {"loss_rel": _rel_err(got, want), "device": str(got.device)},
        )
        rng = torch.Generator().manual_seed(1)
        p = torch.softmax(torch.randn(500, 10, generator=rng, dtype=torch.float64), 1).numpy()
        labels = torch.randint(0, 10, (500,), generator=rng).numpy()
        state = crossent.EvaluationState(10)
        state.update(p, labels)
        merged = ct.all_reduce_state(state)
        a = state.compute()
        b = merged.compute()
        _record(
            "distributed",
            f"all_reduce_state {backend} world 1",
            {"nll_equal": a.nll == b.nll, "nll": b.nll},
        )
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-distributed", action="store_true")
    args = parser.parse_args(argv)
    if args.json:
        JSON_PATH.append(args.json)
    machine = {
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
    }
    _record("machine", "info", machine)
    if not args.skip_accuracy:
        _guarded("accuracy", lambda: accuracy(args.device, args.quick))
        _guarded("syncs", lambda: host_syncs(args.device))
    if not args.skip_distributed:
        _guarded("distributed", lambda: distributed(args.device))
    if not args.skip_speed:
        _guarded("speed", lambda: speed(args.device, args.quick))


if __name__ == "__main__":
    main()
