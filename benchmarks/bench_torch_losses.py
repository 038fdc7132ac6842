"""crossent.torch against PyTorch's own losses on the CPU, side by side in one run.

    python benchmarks/bench_torch_losses.py [--rows 4096] [--classes 32000] [--hidden 1024]
        [--repeats 3] [--turn 2] [--dtypes float32,bfloat16] [--no-compile] [--skip-ce]
        [--skip-linear] [--linear crossent,recompute,naive,chunked] [--big]

Two tasks, each forward + backward (the gradient lands in ``.grad``), the first also
forward only (logits that need no gradient):

* ``cross_entropy`` of ``rows x classes`` logits (standard normal x 3) and class ids:
  ``crossent.torch.cross_entropy`` against eager ``F.cross_entropy`` and
  ``torch.compile(F.cross_entropy)``.
* linear cross-entropy of hidden states ``rows x hidden`` and a classifier
  ``classes x hidden``: ``crossent.torch.linear_cross_entropy`` (gradients formed in the
  forward, the default; and recomputed in the backward, for the design choice)
  against the naive ``F.cross_entropy(F.linear(h, w), y)`` and PyTorch's chunked
  ``F.linear_cross_entropy(..., options=LinearCrossEntropyOptions())``. ``--linear``
  picks the contenders (e.g. ``--linear crossent,naive`` for the two that the issue's
  time target compares, interleaved).

Protocol as in ``bench_softmax_ce.py``: implementations take turns, ``--repeats`` rounds;
a turn is ``--turn`` consecutive calls of which all but the first are timed (with
``--turn 1`` every call is timed); a 0.3 s pause before each call lets the other
library's worker threads stop spinning; the median is reported. Peak extra memory
is the larger of tracemalloc's peak and the rise of the peak resident set size
during one call of its own, after the timings. Accuracy: the loss of bf16 inputs
against the float64 loss of the same bf16 values (``--dtypes`` containing bfloat16).
``--big`` adds the memory of one linear cross-entropy call at N = 16384, V = 128000
(crossent and PyTorch's chunked path only: the naive logits alone would be 8 GiB).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from _machine import cpu_name, peak_mib


def _timed(impls: dict[str, Callable[[], object]], repeats: int, turn: int) -> dict[str, float]:
    for fn in impls.values():
        fn()  # warm-up and compilation
    times: dict[str, list[float]] = {name: [] for name in impls}
    for _ in range(repeats):
        for name, fn in impls.items():
            for call in range(turn):
                time.sleep(0.3)
                start = time.perf_counter()
                fn()
                if call or turn == 1:
                    times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _table(task: str, impls: dict[str, Callable[[], object]], medians: dict[str, float]) -> None:
    ours = next(iter(medians))
    for name, median in medians.items():
        ratio = median / medians[ours]
        print(f"| {task} | {name} | {median:.3f} | {ratio:.2f}x | {peak_mib(impls[name]):.0f} |")


def main() -> None:
    import torch
    import torch.nn.functional as F  # noqa: N812 - the name everyone reads

    import crossent.torch as ct
    from crossent.losses import _cpu_kernels
    from crossent.torch import _functional

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--turn", type=int, default=2)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--skip-ce", action="store_true", help="skip the cross_entropy task")
    parser.add_argument("--skip-linear", action="store_true", help="skip the linear task")
    parser.add_argument(
        "--linear",
        default="crossent,recompute,naive,chunked",
        help="contenders of the linear task, in this order (comma-separated)",
    )
    parser.add_argument("--big", action="store_true", help="memory at N = 16384, V = 128000")
    args = parser.parse_args()
    dtypes = [getattr(torch, name) for name in args.dtypes.split(",")]

    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}, torch {torch.__version__} ({torch.get_num_threads()} "
        f"threads), fused kernels: {'Numba' if _cpu_kernels.available() else 'not installed'}"
    )
    print(f"median of {args.repeats} turns x {max(args.turn - 1, 1)} timed calls\n")
    print("| task | implementation | median s | time / crossent's | peak extra MiB |")
    print("|---|---|---:|---:|---:|")
    gen = torch.Generator().manual_seed(0)
    n, v, d = args.rows, args.classes, args.hidden
    y = torch.randint(0, v, (n,), generator=gen)
    accuracy: list[str] = []

    if not args.skip_ce:
        z32 = torch.randn(n, v, generator=gen) * 3
        compiled = None if args.no_compile else torch.compile(F.cross_entropy)
        for dtype in dtypes:
            z = z32.to(dtype)

            def forward_backward(fn: Callable[..., torch.Tensor], z: torch.Tensor = z) -> None:
                leaf = z.detach().requires_grad_(True)
                fn(leaf, y).backward()

            impls: dict[str, Callable[[], object]] = {
                "crossent.torch.cross_entropy": lambda fb=forward_backward: fb(ct.cross_entropy),
                "F.cross_entropy eager": lambda fb=forward_backward: fb(F.cross_entropy),
            }
            if compiled is not None:
                impls["torch.compile(F.cross_entropy)"] = lambda fb=forward_backward: fb(compiled)
            task = f"cross_entropy fwd+bwd {n}x{v} {str(dtype)[6:]}"
            _table(task, impls, _timed(impls, args.repeats, args.turn))
            # the forward alone (logits that need no gradient): issue 13's forward target
            # "through crossent.torch"
            forward: dict[str, Callable[[], object]] = {
                "crossent.torch.cross_entropy": lambda z=z: ct.cross_entropy(z, y),
                "F.cross_entropy eager": lambda z=z: F.cross_entropy(z, y),
            }
            if compiled is not None:
                forward["torch.compile(F.cross_entropy)"] = lambda z=z: compiled(z, y)
            task = f"cross_entropy forward {n}x{v} {str(dtype)[6:]}"
            _table(task, forward, _timed(forward, args.repeats, args.turn))
            if dtype != torch.float32:
                truth = float(F.cross_entropy(z.double(), y))
                for name, fn in (("crossent", ct.cross_entropy), ("F eager", F.cross_entropy)):
                    err = abs(float(fn(z, y)) - truth) / truth
                    accuracy.append(f"cross_entropy {str(dtype)[6:]} {name}: rel. err {err:.1e}")
        del z32

    options = torch.nn.LinearCrossEntropyOptions()

    def naive(h: torch.Tensor, w: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(F.linear(h, w), y)

    def chunked(h: torch.Tensor, w: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.linear_cross_entropy(h, w, y, options=options)

    if not args.skip_linear:
        h32 = torch.randn(n, d, generator=gen)
        w32 = torch.randn(v, d, generator=gen) / d**0.5 * 3
        for dtype in dtypes:
            h, w = h32.to(dtype), w32.to(dtype)

            def run(fn: Callable[..., torch.Tensor], h: torch.Tensor = h, w: torch.Tensor = w):
                hl, wl = h.detach().requires_grad_(True), w.detach().requires_grad_(True)
                fn(hl, wl, y).backward()

            def recompute(h: torch.Tensor, w: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                _functional._FORM_GRADIENTS_IN_FORWARD = False
                try:
                    return ct.linear_cross_entropy(h, w, y)
                finally:
                    _functional._FORM_GRADIENTS_IN_FORWARD = True

            contenders = {
                "crossent": ("crossent.torch.linear_cross_entropy", ct.linear_cross_entropy),
                "recompute": ("crossent, recomputed in backward", recompute),
                "naive": ("naive F.cross_entropy(F.linear)", naive),
                "chunked": ("F.linear_cross_entropy chunked", chunked),
            }
            impls = {
                contenders[key][0]: lambda r=run, fn=contenders[key][1]: r(fn)
                for key in args.linear.split(",")
            }
            task = f"linear CE fwd+bwd N={n} D={d} V={v} {str(dtype)[6:]}"
            _table(task, impls, _timed(impls, args.repeats, args.turn))
            if dtype != torch.float32:
                truth = float(F.cross_entropy(h.double() @ w.double().T, y))
                for key, (name, fn) in contenders.items():
                    if key == "recompute" or key not in args.linear.split(","):
                        continue
                    err = abs(float(fn(h, w, y)) - truth) / truth
                    accuracy.append(f"linear CE {str(dtype)[6:]} {name}: rel. err {err:.1e}")

    if args.big:
        nb, vb = 16384, 128000
        yb = torch.randint(0, vb, (nb,), generator=gen)
        for dtype in dtypes:
            hb = torch.randn(nb, d, generator=gen).to(dtype)
            wb = (torch.randn(vb, d, generator=gen) / d**0.5 * 3).to(dtype)
            for name, fn in (("crossent", ct.linear_cross_entropy), ("F chunked", chunked)):

                def once(
                    fn: Callable[..., torch.Tensor] = fn,
                    hb: torch.Tensor = hb,
                    wb: torch.Tensor = wb,
                ) -> None:
                    hl, wl = hb.detach().requires_grad_(True), wb.detach().requires_grad_(True)
                    fn(hl, wl, yb).backward()

                start = time.perf_counter()
                peak = peak_mib(once)
                seconds = time.perf_counter() - start
                print(
                    f"| linear CE fwd+bwd N={nb} D={d} V={vb} {str(dtype)[6:]} | {name} | "
                    f"{seconds:.1f} (1 call) | | {peak:.0f} |"
                )

    print()
    for line in accuracy:
        print(line)


if __name__ == "__main__":
    main()
