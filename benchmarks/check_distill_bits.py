"""Bits of ``crossent``'s distillation loss and gradients on every path, for an A/B check.

    cd benchmarks
    PYTHONPATH=/tmp/old/src python check_distill_bits.py --out /tmp/a.pkl [--no-numba]
    PYTHONPATH=../src python check_distill_bits.py --out /tmp/b.pkl [--no-numba]
    python check_distill_bits.py --compare /tmp/a.pkl /tmp/b.pkl

Branch distillonce2 (issue 13): a change meant to keep every bit (the generic and
compiled paths of ``crossent.torch.distillation_loss`` soften both sides once, not
twice) is checked against the other tree, each in its own process (both register the
same custom ops). Each case's loss (the values) and the gradients in the student and
the teacher (where it requires one) are kept as bytes; ``--compare`` counts the cases
whose bytes differ. Cases: shapes (1-D, 2-D, a batch of the hard rows of
``tests/losses/test_issue13_distill_near_spread.py`` and
``tests/pytorch/test_issue13_distill_torch_spread_rows.py`` beside ordinary rows),
ordinary, near (teacher = student + 0.01 noise) and very near (1e-7 noise) teachers,
masked classes, temperatures, both directions, float64, float32 and a float32 student
beside a float64 teacher, the three teacher forms, a teacher that requires a gradient
or not, ``'mean'`` and ``'none'`` (a random upstream); paths: eager (the CPU op, the
generic path), ``torch.jit.trace``, ``torch.compile`` (``aot_eager`` on every case of
a 2-D float64 call, Inductor on a few) and NumPy (the loss and
``distillation_loss_grad``; ``--no-numba``: Numba not importable).
"""

from __future__ import annotations

import argparse
import itertools
import math
import pickle
import sys
import warnings
import zlib
from typing import Any

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out")
parser.add_argument("--no-numba", action="store_true")
parser.add_argument("--no-compile", action="store_true")
parser.add_argument(
    "--compile-only", action="store_true", help="the compiled cases alone (8 x 10, T 0.5 and 2)"
)
parser.add_argument("--compare", nargs=2)
parser.add_argument("--kinds", help="only these kinds of rows (comma-separated)")
parser.add_argument("--temperatures", help="only these temperatures (comma-separated)")
args = parser.parse_args()

if args.compare:
    with open(args.compare[0], "rb") as f:
        a = pickle.load(f)
    with open(args.compare[1], "rb") as f:
        b = pickle.load(f)
    keys = sorted(set(a) | set(b))
    differ = [k for k in keys if a.get(k) != b.get(k)]
    print(f"{len(keys)} cases, {len(differ)} differ")
    for k in differ[:40]:
        print("DIFFER", k)
    sys.exit(1 if differ else 0)

if args.no_numba:
    sys.modules["numba"] = None  # type: ignore[assignment]

import numpy as np  # noqa: E402
import torch  # noqa: E402

import crossent  # noqa: E402
import crossent.torch as ct  # noqa: E402

warnings.simplefilter("ignore")
torch.set_num_threads(1)


def _moved(t: float) -> tuple[list[float], list[float]]:
    m = 2.9e-5**t
    return [0.0, math.log1p(-m) + 1e-7 * t, math.log(m) - 70 * t], [
        0.0,
        math.log1p(-m),
        math.log(m),
    ]


def _hard(t: float) -> list[tuple[list[float], list[float]]]:
    """The hard rows of the tests named in the module docstring (3 classes)."""
    root = math.sqrt(2.9e-5)
    return [
        _moved(t),
        _moved(1.0),
        (
            [1.932786603588886, 1.0635557457740161, 1.2451703584515783],
            [1.9327988036519401, 1.0635083775580856, 1.2452478489298584],
        ),
        ([0.0, 0.0, math.log(1e-6)], [0.0, 0.0, -690.0]),
        ([0.0, 0.0, math.log(2.4e-5)], [0.0, 0.0, -700.0]),
        ([0.0, 1e-9, math.log(2.4e-5)], [0.0, 0.0, -700.0]),
        (
            [0.0, math.log1p(-root) + 5e-8, math.log(root) - 35],
            [0.0, math.log1p(-root), 0.5 * math.log(2.9e-5)],
        ),
        ([0.0, math.log(3e-5), -30.0], [0.0, math.log(1e-5), -30.0]),
        ([0.5, -1.0, 2.0], [1.0, 0.0, -0.5]),
        ([0.3, -math.inf, 0.1], [0.2, -math.inf, 0.1]),
    ]


def _data(kind: str, shape: tuple[int, ...], t: float) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(zlib.crc32(repr((kind, shape)).encode()))
    if kind == "hard":
        rows = _hard(t)
        z = np.array([r[0] for r in rows])
        v = np.array([r[1] for r in rows])
        return (z[0], v[0]) if len(shape) == 1 else (z, v)
    z = 3 * g.standard_normal(shape)
    noise = g.standard_normal(shape)
    if kind == "ordinary":
        v = 3 * noise
    elif kind == "near":
        v = z + 0.01 * noise
    elif kind == "verynear":
        v = z + 1e-7 * noise
    else:  # masked: a class -inf on both sides, near
        v = z + 1e-4 * noise
        z[..., 1] = -math.inf
        v[..., 1] = -math.inf
    return z, v


def _teacher(v: np.ndarray, form: str) -> np.ndarray:
    with np.errstate(all="ignore"):
        top = np.max(v, axis=-1, keepdims=True)
        e = np.exp(v - top)
        log_p = v - top - np.log(e.sum(axis=-1, keepdims=True))
    if form == "logits":
        return v
    return log_p if form == "log_probs" else np.exp(log_p)


def _bytes(x: Any) -> bytes | None:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy().tobytes() + str(x.dtype).encode()
    a = np.asarray(x)
    return a.tobytes() + str(a.dtype).encode()


def _torch_case(
    z: np.ndarray,
    v: np.ndarray,
    dtypes: tuple[torch.dtype, torch.dtype],
    t: float,
    direction: str,
    form: str,
    teacher_grad: bool,
    reduction: str,
    path: str,
) -> tuple[Any, ...]:
    student = torch.tensor(z, dtype=dtypes[0], requires_grad=True)
    teacher = torch.tensor(v, dtype=dtypes[1], requires_grad=teacher_grad)

    def loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ct.distillation_loss(
            a, b, temperature=t, direction=direction, teacher_form=form, reduction=reduction
        )

    if path == "trace":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call = torch.jit.trace(loss, (student, teacher), check_trace=False)
    elif path.startswith("compile"):
        torch._dynamo.reset()
        backend = path.split(":")[1]
        call = torch.compile(loss, backend=backend, fullgraph=False)
    else:
        call = loss
    try:
        out = call(student, teacher)
        upstream = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)
        (out * upstream).sum().backward()
    except Exception as e:  # (the same error on both trees)
        return ("error", type(e).__name__, str(e)[:200])
    return _bytes(out), _bytes(student.grad), _bytes(teacher.grad)


def _numpy_case(
    z: np.ndarray, v: np.ndarray, dtype: Any, t: float, direction: str, form: str
) -> Any:
    z, v = z.astype(dtype), v.astype(dtype)
    options = {"temperature": t, "direction": direction, "teacher_form": form}
    out = []
    for reduction in ("none", "mean"):
        try:
            out.append(_bytes(crossent.distillation_loss(z, v, reduction=reduction, **options)))
            out.append(
                _bytes(crossent.distillation_loss_grad(z, v, reduction=reduction, **options))
            )
        except Exception as e:
            out.append(("error", type(e).__name__, str(e)[:200]))
    return tuple(out)


results: dict[tuple[Any, ...], Any] = {}
TEMPERATURES = [0.5, 1.0, 2.0, 7.3]
KINDS = ["ordinary", "near", "verynear", "masked", "hard"]
SHAPES: list[tuple[int, ...]] = [(10,), (8, 10), (3, 5), (64, 100), (100,)]
FORMS = ["logits", "probs", "log_probs"]
F64, F32 = torch.float64, torch.float32
DTYPES = {"f64": (F64, F64), "f32": (F32, F32), "mixed": (F32, F64)}
if args.compile_only:
    SHAPES, TEMPERATURES = [(8, 10)], [0.5, 2.0]
if args.kinds:
    KINDS = args.kinds.split(",")
if args.temperatures:
    TEMPERATURES = [float(t) for t in args.temperatures.split(",")]
for kind, shape, t in itertools.product(KINDS, SHAPES, TEMPERATURES):
    if kind == "hard" and shape[-1] != 10:
        continue  # (the hard rows have 3 classes: one 1-D, one 2-D case)
    if kind == "masked" and len(shape) == 1 and shape[0] == 100:
        continue
    z, v64 = _data(kind, shape, t)
    for direction, form in itertools.product(["forward", "reverse"], FORMS):
        v = _teacher(v64, form)
        for np_dtype in () if args.compile_only else (np.float64, np.float32):
            key = ("numpy", kind, shape, t, direction, form, np_dtype.__name__)
            results[key] = _numpy_case(z, v, np_dtype, t, direction, form)
        for (dname, dtypes), teacher_grad, reduction in itertools.product(
            DTYPES.items(), [False, True], ["mean", "none"]
        ):
            paths = [] if args.compile_only else ["eager"]
            if reduction == "mean" and len(shape) == 2 and shape[0] <= 10 and paths:
                paths.append("trace")
            if (
                not args.no_compile
                and dname == "f64"
                and reduction == "mean"
                and len(shape) == 2
                and shape[0] <= 10
                and form != "probs"
            ):
                paths.append("compile:aot_eager")
            for path in paths:
                key = (
                    "torch",
                    kind,
                    shape,
                    t,
                    direction,
                    form,
                    dname,
                    teacher_grad,
                    reduction,
                    path,
                )
                results[key] = _torch_case(
                    z, v, dtypes, t, direction, form, teacher_grad, reduction, path
                )
if not args.no_compile:  # a few Inductor graphs (slow to compile on 2 cores)
    for kind, direction, teacher_grad in itertools.product(
        [k for k in ("hard", "near") if k in KINDS], ["forward", "reverse"], [False, True]
    ):
        z, v = _data(kind, (8, 10), 1.0)
        key = (
            "torch",
            kind,
            (8, 10),
            1.0,
            direction,
            "logits",
            "f64",
            teacher_grad,
            "mean",
            "inductor",
        )
        results[key] = _torch_case(
            z, v, DTYPES["f64"], 1.0, direction, "logits", teacher_grad, "mean", "compile:inductor"
        )
errors = sum(1 for r in results.values() if isinstance(r, tuple) and r and r[0] == "error")
print(f"{len(results)} cases ({errors} raised)")
with open(args.out, "wb") as f:
    pickle.dump(results, f)
