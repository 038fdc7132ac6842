"""``crossent.torch.distillation_loss``' generic path (logits ``(N, C, d)``), forward and
backward, this tree against others in one process (issue 13, branch distfwd2).

    cd benchmarks && PYTHONPATH=../src:. python bench_torch_distill_generic_ab.py \
        --tree ../src --tree /tmp/main/src [--rows 16] [--classes 1000] [--positions 16]
        [--repeats 5] [--rounds 3] [--direction reverse]

Branch distfwd2 gave the generic path's float64 rows whose :math:`s - t` cancels (a
spread below ``_near_rows.CANCEL_SPREAD`` :math:`\\max_c t_c`) the fused kernels'
exact gradient (``NearGradients.cancelling_in_student``, in the backward). Cases, ``T =
2``, ``'mean'``, one torch thread, logits of shape ``(rows, classes, positions)``
(classes on axis 1): ``ordinary`` (student and teacher independent, N(0, 9): no row
cancels, the spread read with the others), ``close`` (the teacher the student plus
0.3 N(0, 1): every row's spread below the bound, formed by the exact formula) and
``near`` (plus 1e-4 N(0, 1): the near rows, ``NearRows``), float64; and ``ordinary``
float32 (untouched). Each tree is imported from a renamed copy (``_against.load_tree``);
process CPU time, the trees' order rotated each round, ``--repeats`` calls per case
and round.

Branch distfwd3 gave every float64 row at or above the floor the fused forward kernel's
gradient (``_near_rows.FUSED_SPREAD``): ``ordinary`` float64 rows take it too now (on
main, autograd's).

``--direction reverse`` (branch distrev1): the same cases of D(s || t), whose
rows (float32 too) take the reverse kernel's gradient on the host since that branch.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any

import torch

from _against import compare_trees, load_tree


def _cases(
    rows: int, classes: int, positions: int, direction: str = "forward"
) -> dict[str, Callable[[Any], Any]]:
    generator = torch.Generator().manual_seed(0)
    shape = (rows, classes, positions)
    z = 3 * torch.randn(shape, generator=generator, dtype=torch.float64)
    noise = torch.randn(shape, generator=generator, dtype=torch.float64)
    teachers = {"ordinary": 3 * noise, "close": z + 0.3 * noise, "near": z + 1e-4 * noise}
    cases: dict[str, Callable[[Any], Any]] = {}
    for kind, v in teachers.items():
        cases[f"{kind} float64"] = _call(z, v, direction)
    cases["ordinary float32"] = _call(z.float(), teachers["ordinary"].float(), direction)
    return cases


def _call(z: torch.Tensor, v: torch.Tensor, direction: str) -> Callable[[Any], Any]:
    def run(module: Any) -> Any:
        student = z.detach().requires_grad_()
        functions = importlib.import_module(f"{module.__name__}.torch")
        loss = functions.distillation_loss(student, v, temperature=2.0, direction=direction)
        loss.backward()
        return student.grad

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, help="a src folder")
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--positions", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--direction", default="forward", choices=("forward", "reverse"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    trees = {f"tree{i}": load_tree(t, f"crossent_generic_ab{i}") for i, t in enumerate(args.tree)}
    for i, tree in enumerate(args.tree):
        print(f"tree {i}: {tree}")
    cases = _cases(args.rows, args.classes, args.positions, args.direction)
    compare_trees(trees, cases, args.rounds, args.repeats)


if __name__ == "__main__":
    main()
