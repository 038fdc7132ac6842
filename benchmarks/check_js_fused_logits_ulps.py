"""JS of float64 logits against log-probabilities or logits on the fused kernel, against
mpmath (issue 13, branch jsexact4).

    cd benchmarks
    PYTHONPATH=../src:.:../tests python check_js_fused_logits_ulps.py

Not a timing. Six rows of 1000 logits N(0, scale) plus noise (1e-7 to 1: random rows),
against the logits without noise' rounded log-softmax (both orders) and against those
logits; prints the worst and mean distance from mpmath at 60 digits of the given values,
in ulps of the truth.
"""

from __future__ import annotations

import mpmath
import numpy as np

import crossent

from oracles import row_probabilities


def rows(noise: float, scale: float, k: int = 6, n: int = 1000) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(7)
    z = rng.standard_normal((k, n)) * scale
    shifted = z - z.max(-1, keepdims=True)
    log_q = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return z + noise * rng.standard_normal(z.shape), log_q, z


def oracle(a: np.ndarray, fa: str, b: np.ndarray, fb: str) -> list[mpmath.mpf]:
    out = []
    with mpmath.workdps(60):
        for r in range(a.shape[0]):
            p, q = row_probabilities(a[r], fa), row_probabilities(b[r], fb)
            out.append(
                mpmath.fsum(
                    x * mpmath.log(2 * x / (x + y)) + y * mpmath.log(2 * y / (x + y))
                    for x, y in zip(p, q, strict=True)
                )
                / 2
            )
    return out


def main() -> None:
    eps = np.finfo(np.float64).eps
    for noise, scale in [
        (1e-3, 1.0),
        (1e-3, 3.0),
        (1e-2, 1.0),
        (1e-4, 1.0),
        (1.0, 1.0),
        (1e-7, 1.0),
    ]:
        logits, log_q, z = rows(noise, scale)
        pairs = {
            "logits/log_probs": (logits, "logits", log_q, "log_probs"),
            "log_probs/logits": (log_q, "log_probs", logits, "logits"),
            "logits/logits": (logits, "logits", z, "logits"),
        }
        for name, (a, fa, b, fb) in pairs.items():
            got = np.asarray(crossent.js_divergence(a, b, p_form=fa, q_form=fb))
            want = oracle(a, fa, b, fb)
            ulps = [
                float(abs(mpmath.mpf(float(g)) - w) / (w * eps))
                for g, w in zip(got, want, strict=True)
            ]
            print(
                f"noise {noise:g} scale {scale:g} {name}: max {max(ulps):.2f} "
                f"mean {np.mean(ulps):.2f}"
            )


if __name__ == "__main__":
    main()
