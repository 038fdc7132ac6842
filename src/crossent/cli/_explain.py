"""``crossent explain``: the seeds' step-by-step tables, every number computed by crossent.

Three modes:

* ``--p P --q Q``: per outcome P, Q, the surprisal -log Q and the contribution
  -P log Q; then H(P), H(P, Q) and D(P||Q), with the identity H(P, Q) = H(P) + D(P||Q)
  checked.  ``--temperature T`` also shows Q reshaped to Q^(1/T) / Z.
* ``--logits Z --label Y`` (or ``--p`` as the target distribution): the softmax, the
  loss and the ``p - y`` gradient; ``--temperature T`` divides the logits by T first.
* ``--binary --y Y --p P``: binary cross-entropy, term by term, and its gradient in the
  logit, ``p - y``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special

import crossent

__all__ = [
    "explain_binary",
    "explain_distributions",
    "explain_logits",
    "parse_vector",
    "run_explain",
]


def parse_vector(text: str, *, name: str) -> Any:
    """``"0.7,0.2,0.1"`` as a float array; a clear error for anything else."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise crossent.InputError(
            f"`{name}` must be comma-separated numbers such as 0.7,0.2,0.1; got {text!r}"
        ) from None
    return np.array(values)


def _unit(bits: bool) -> tuple[float | None, str]:
    return (2, "bits") if bits else (None, "nats")


def _check_identity(console: Any, h_pq: float, h_p: float, kl: float, unit: str) -> None:
    holds = math.isclose(h_pq, h_p + kl, rel_tol=1e-12, abs_tol=1e-15) or (
        math.isinf(h_pq) and math.isinf(kl)
    )
    mark = "holds" if holds else "FAILS"
    console.print(f"H(P, Q) = H(P) + D(P||Q):  {h_pq:.6f} = {h_p:.6f} + {kl:.6f} {unit}  ({mark})")


def explain_distributions(
    console: Any, p: Any, q: Any, *, bits: bool, temperature: float | None
) -> None:
    from rich.table import Table

    base, unit = _unit(bits)
    h_pq = float(crossent.cross_entropy(p, q, base=base))  # validates both
    h_p = float(crossent.entropy(p, base=base))
    kl = float(crossent.kl_divergence(p, q, base=base))
    surprisal = np.asarray(crossent.surprisal(q, base=base), dtype=np.float64)
    table = Table(title=f"cross-entropy H(P, Q) in {unit}, outcome by outcome")
    for column in ("outcome", "P", "Q", "surprisal -log Q", "contribution -P log Q"):
        table.add_column(column, justify="right")
    for k, (pk, qk, sk) in enumerate(zip(p, q, surprisal, strict=True)):
        contribution = 0.0 if pk == 0 else pk * sk  # 0 log 0 = 0
        table.add_row(str(k), f"{pk:.4g}", f"{qk:.4g}", f"{sk:.4f}", f"{contribution:.4f}")
    console.print(table)
    console.print(f"H(P)     = {h_p:.6f} {unit}   (entropy: the unavoidable surprise)")
    console.print(f"H(P, Q)  = {h_pq:.6f} {unit}   (cross-entropy: the sum of contributions)")
    console.print(f"D(P||Q)  = {kl:.6f} {unit}   (KL divergence: the cost of believing Q)")
    _check_identity(console, h_pq, h_p, kl, unit)
    if temperature is not None:
        with np.errstate(divide="ignore"):
            reshaped = special.softmax(np.log(q) / temperature)
        _temperature_table(console, q, reshaped, temperature, "Q")


def _temperature_table(
    console: Any, before: Any, after: Any, temperature: float, name: str
) -> None:
    from rich.table import Table

    table = Table(
        title=f"temperature T = {temperature:g}: {name} reshaped to softmax(log {name} / T)"
    )
    for column in ("outcome", name, f"{name} at T"):
        table.add_column(column, justify="right")
    for k, (b, a) in enumerate(zip(before, after, strict=True)):
        table.add_row(str(k), f"{b:.4f}", f"{a:.4f}")
    console.print(table)
    word = "flatter (less confident)" if temperature > 1 else "sharper (more confident)"
    if temperature != 1:
        console.print(f"T > 1 makes the distribution flatter; T < 1 sharper. Here: {word}.")


def explain_logits(
    console: Any, logits: Any, target: Any, *, bits: bool, temperature: float | None
) -> None:
    from rich.table import Table

    base, unit = _unit(bits)
    t = 1.0 if temperature is None else temperature
    crossent.softmax_cross_entropy_with_targets(logits[None], target[None])  # validates
    probs = special.softmax(logits / t)
    loss = float(
        crossent.softmax_cross_entropy_with_targets(
            logits[None], target[None], temperature=t, base=base
        )
    )
    grad = crossent.softmax_cross_entropy_with_targets_grad(
        logits[None], target[None], temperature=t
    )[0]
    title = "softmax cross-entropy from logits" + (f" at T = {t:g}" if temperature else "")
    table = Table(title=title)
    for column in ("class", "logit z", "softmax p", "target y", "gradient dL/dz"):
        table.add_column(column, justify="right")
    for k in range(logits.size):
        table.add_row(
            str(k), f"{logits[k]:.4g}", f"{probs[k]:.4f}", f"{target[k]:.4g}", f"{grad[k]:+.4f}"
        )
    console.print(table)
    console.print(
        f"loss = -sum y log p = {loss:.6f} {unit}  (computed as logsumexp(z) - sum y z, "
        "never log(softmax(z)))"
    )
    scale = f"(p - y) / T, T = {t:g}" if temperature else "p - y"
    console.print(
        f"gradient = {scale}; it sums to {float(np.sum(grad)):+.1e} over classes (0 up to rounding)"
    )
    if temperature is not None:
        _temperature_table(console, special.softmax(logits), probs, t, "p")


def explain_binary(console: Any, y: float, p: float, *, bits: bool) -> None:
    base, unit = _unit(bits)
    loss = float(crossent.binary_cross_entropy(y, p, base=base))  # validates both
    log = (lambda v: math.log(v) / math.log(2)) if bits else math.log
    positive = 0.0 if y == 0 else -y * (log(p) if p > 0 else -math.inf)
    negative = 0.0 if y == 1 else -(1 - y) * (log(1 - p) if p < 1 else -math.inf)
    console.print(f"binary cross-entropy, y = {y:g}, p = {p:g}, in {unit}:")
    console.print(f"  -y log p           = {positive:.6f}")
    console.print(f"  -(1 - y) log(1 - p) = {negative:.6f}")
    console.print(f"  loss               = {loss:.6f} {unit}")
    console.print(f"  gradient in the logit: p - y = {p - y:+.6f}")


def run_explain(args: Any, console: Any) -> None:
    """Dispatch on the arguments of ``crossent explain``."""
    if args.temperature is not None and not 0 < args.temperature < math.inf:
        raise crossent.InputError(f"--temperature must be positive; got {args.temperature:g}")
    if args.binary:
        if args.y is None or args.p is None:
            raise crossent.InputError(
                "--binary needs --y (0 to 1) and --p (the predicted probability)"
            )
        y = float(parse_vector(args.y, name="--y")[0])
        p = float(parse_vector(args.p, name="--p")[0])
        explain_binary(console, y, p, bits=args.bits)
        return
    if args.logits is not None:
        logits = parse_vector(args.logits, name="--logits")
        if args.label is not None:
            if not 0 <= args.label < logits.size:
                raise crossent.InputError(
                    f"--label must be a class in [0, {logits.size}); got {args.label}"
                )
            target = np.eye(logits.size)[args.label]
        elif args.p is not None:
            target = parse_vector(args.p, name="--p")
        else:
            raise crossent.InputError(
                "--logits needs --label (a class id) or --p (a target distribution)"
            )
        explain_logits(console, logits, target, bits=args.bits, temperature=args.temperature)
        return
    if args.p is None or args.q is None:
        raise crossent.InputError(
            "explain needs --p and --q (distributions), --logits with --label, or --binary"
        )
    explain_distributions(
        console,
        parse_vector(args.p, name="--p"),
        parse_vector(args.q, name="--q"),
        bits=args.bits,
        temperature=args.temperature,
    )
