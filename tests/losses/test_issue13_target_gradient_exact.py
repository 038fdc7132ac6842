r"""Issue 13 follow-up, exactness: the fused probability-target gradient of float32 logits.

``_softmax._fused_target_gradient`` forms each entry :math:`r_i[(A_i + 2\lambda\omega_i
\mathrm{LSE}_i)\,p_{ic} - w_c\tilde t_{ic}]` in float64 and rounds once, but its
:math:`p` came from a polynomial ``exp`` (5.2e-11 relative) and the fused statistics'
log-sum-exp (their table ``exp``, 2.9e-12): where :math:`p \approx t` the entry cancels
and those errors showed, 22-30 float32 ulps at V = 2**15 (``crossent.torch``'s
gradient, float64 libm ``exp``, is within an ulp there). Now :math:`p` is good to about
a float64 ulp (``_cpu_kernels_numba.target_exp``, the log-sum-exp corrected by a pass
over the row), so every entry is within one float32 ulp of the truth; where the target
is the softmax itself rounded to float32 (:math:`|g| \approx 2^{-25} p`, a float32 ulp
of :math:`g` is a few float64 ulps of :math:`p`), within an ulp plus
:math:`4\varepsilon_{64}` of the entry's :math:`p` term, as
``tests/pytorch/test_issue13_torch_exact.py`` bounds torch's.

The truth (:func:`_oracle`) is computed independently: the division by :math:`T` as a
double-double (Dekker's product), libm's ``math.exp`` per entry, the exp-sum by
``math.fsum``, its log by mpmath (40 digits) kept as a pair, :math:`p` from the
argument's exact TwoSum; where that float64 route itself rounds the small cases are
checked by mpmath alone (:func:`_mpmath_truth`). Each case is small (at most 2**17
logits; > 2**14, past the small path), so the file runs in a few seconds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import crossent

mpmath = pytest.importorskip("mpmath")

EPS64 = float(np.finfo(np.float64).eps)
OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "T": {"temperature": 0.6},
    "smoothing_zloss_T": {"label_smoothing": 0.1, "z_loss": 1e-3, "temperature": 1.7},
    "weights_T": {"temperature": 0.6, "weighted": True},
    "all": {"label_smoothing": 0.05, "z_loss": 2e-3, "temperature": 1.3, "weighted": True},
}


def _softmax32(z: np.ndarray) -> np.ndarray:
    """float32 softmax of float64 ``z`` (a target near or at the model's softmax)."""
    e = np.exp(z - z.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def _case(name: str, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray, bool]:
    """float32 logits, float32 targets, and whether the targets are fl32(softmax(z/T))."""
    rng = np.random.default_rng(1313)
    tau = temperature
    if name == "random":
        return (
            (rng.standard_normal((40, 500)) * 3).astype(np.float32),
            _softmax32(rng.standard_normal((40, 500)) * 3),
            False,
        )
    if name == "near_tie":
        z = (5 + rng.standard_normal((40, 500)) * 1e-5).astype(np.float32)
        return z, _softmax32(z.astype(np.float64) / tau), True
    if name == "huge_spread":
        z = (rng.standard_normal((40, 500)) * 300).astype(np.float32)
        t = _softmax32(z.astype(np.float64) / 100)  # many entries both tiny and cancelling
        return z, t, False
    if name == "V=2":
        z = (rng.standard_normal((8200, 2)) * 8).astype(np.float32)
        return z, _softmax32(z.astype(np.float64) / tau), True
    if name == "softmax_V=2**15":
        z = (rng.standard_normal((2, 1 << 15)) * 3).astype(np.float32)
        return z, _softmax32(z.astype(np.float64) / tau), True
    if name == "near_softmax_V=2**15":  # t = p (1 +- 1e-3): the 22-30 ulps
        z = (rng.standard_normal((2, 1 << 15)) * 3).astype(np.float32)
        p = _softmax32(z.astype(np.float64) / tau).astype(np.float64)
        t = p * (1 + rng.uniform(-1e-3, 1e-3, p.shape))
        return z, (t / t.sum(-1, keepdims=True)).astype(np.float32), False
    assert name == "softmax_V=2**17"
    z = (rng.standard_normal((1, 1 << 17)) * 2).astype(np.float32)
    return z, _softmax32(z.astype(np.float64) / tau), True


CASES = [
    "random",
    "near_tie",
    "huge_spread",
    "V=2",
    "softmax_V=2**15",
    "near_softmax_V=2**15",
    "softmax_V=2**17",
]


#: Rows checked against the oracle (V = 2 needs 8200 rows to pass the small path).
CHECKED = 512


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = 134217729.0 * a  # Veltkamp: 2**27 + 1
    hi = c - (c - a)
    return hi, a - hi


def _divide(d: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """``d / T`` as ``q + lo`` to about 2**-104 (Dekker's exact product q T)."""
    q = d / temperature
    product = q * temperature
    (qh, ql), (th, tl) = _split(q), _split(np.float64(temperature))
    error = ((qh * th - product) + qh * tl + ql * th) + ql * tl
    return q, ((d - product) - error) / temperature


def _exp(x: np.ndarray) -> np.ndarray:
    """libm's ``exp`` entry by entry (not NumPy's SIMD one, nor the kernel's)."""
    return np.reshape([math.exp(v) for v in x.ravel()], x.shape)


def _oracle(
    z: np.ndarray, t: np.ndarray, w: np.ndarray | None, scale: float, **kw: Any
) -> tuple[np.ndarray, np.ndarray]:
    """The float64 gradient of ``sum_i scale L_i`` and each entry's p term's size."""
    temperature = kw.get("temperature", 1.0)
    eps, lam = kw.get("label_smoothing", 0.0), kw.get("z_loss", 0.0)
    z64, t64 = z.astype(np.float64), t.astype(np.float64)
    weight = np.ones(z.shape[-1]) if w is None else w
    top = z64.max(-1, keepdims=True)
    q, lo = _divide(z64 - top, temperature)  # exact differences, then / T
    e = _exp(q) * (1 + lo)
    ell_hi, ell_lo, lse = (np.empty((z.shape[0], 1)) for _ in range(3))
    with mpmath.workdps(40):
        for i in range(z.shape[0]):
            ell = mpmath.log(mpmath.mpf(math.fsum(e[i])))
            ell_hi[i] = float(ell)
            ell_lo[i] = float(ell - ell_hi[i, 0])
            lse[i] = float(mpmath.mpf(float(top[i, 0])) / temperature + ell)
    h = q - ell_hi  # TwoSum: h + err = q - ell_hi exactly
    b = h - q
    err = (q - (h - b)) + (-ell_hi - b)
    p = _exp(h) * (1 + (err + lo - ell_lo))
    wt = weight * ((1 - eps) * t64 + eps / z.shape[-1])
    a = np.array([[math.fsum(row)] for row in wt])
    omega = 1.0 if w is None else np.array([[math.fsum(row)] for row in weight * t64])
    coef = (a + 2 * lam * omega * lse) * scale / temperature
    return coef * p - wt * (scale / temperature), np.abs(coef * p)


def _gradient(z: np.ndarray, t: np.ndarray, w: np.ndarray | None, **kw: Any) -> np.ndarray:
    kw = {k: v for k, v in kw.items() if k != "weighted"}
    grad = crossent.softmax_cross_entropy_with_targets_grad(
        z, t, weight=w, reduction="sum", validate=False, **kw
    )
    assert grad.dtype == np.float32
    return grad


def _ulps(got: np.ndarray, truth: np.ndarray, allowance: np.ndarray) -> float:
    """The largest error in float32 ulps of the truth, beyond ``allowance``."""
    unit = np.spacing(np.abs(truth).astype(np.float32)).astype(np.float64)
    return float(np.max(np.maximum(np.abs(got.astype(np.float64) - truth) - allowance, 0) / unit))


@pytest.mark.parametrize("options", list(OPTIONS))
@pytest.mark.parametrize("case", CASES)
def test_target_gradient_within_an_ulp(case: str, options: str) -> None:
    """Every entry within an ulp (main: up to 30 at V = 2**15, 2.4 on ``random``)."""
    kw = OPTIONS[options]
    z, t, softmax = _case(case, kw.get("temperature", 1.0))
    w = np.random.default_rng(7).uniform(0.5, 2.0, z.shape[-1]) if kw.get("weighted") else None
    got = _gradient(z, t, w, **kw)[:CHECKED]  # every row computed, the first checked
    truth, p_term = _oracle(z[:CHECKED], t[:CHECKED], w, 1.0, **kw)
    allowance = 4 * EPS64 * p_term if softmax else np.zeros_like(p_term)
    worst = _ulps(got, truth, allowance)
    assert worst <= 1.0, f"{worst:.2f} float32 ulps off"


def _mpmath_truth(z: np.ndarray, t: np.ndarray, temperature: float) -> np.ndarray:
    """The gradient of the summed loss (no options) with mpmath, 50 digits."""
    truth = np.empty(z.shape)
    with mpmath.workdps(50):
        for i in range(z.shape[0]):
            e = [mpmath.exp(mpmath.mpf(float(v)) / temperature) for v in z[i]]
            total = mpmath.fsum(e)
            mass = mpmath.fsum(mpmath.mpf(float(v)) for v in t[i])
            for c in range(z.shape[1]):
                truth[i, c] = float(
                    (mass * e[c] / total - mpmath.mpf(float(t[i, c]))) / temperature
                )
    return truth


@pytest.mark.parametrize("temperature", [1.0, 1.7])
def test_cancelling_against_mpmath(temperature: float) -> None:
    r""":math:`t = \mathrm{fl}_{32}(p)` on 40 x 420 logits (past the small path), checked
    against mpmath alone: within an ulp plus :math:`4\varepsilon_{64} p`."""
    z = (np.random.default_rng(5).standard_normal((40, 420)) * 6).astype(np.float32)
    t = _softmax32(z.astype(np.float64) / temperature)
    got = crossent.softmax_cross_entropy_with_targets_grad(
        z, t, reduction="sum", temperature=temperature, validate=False
    )
    truth = _mpmath_truth(z[:4], t[:4], temperature)  # four rows: mpmath is slow
    _, p_term = _oracle(z[:4], t[:4], None, 1.0, temperature=temperature)
    assert _ulps(got[:4], truth, 4 * EPS64 * p_term) <= 1.0


def test_block_sums_added_without_loss() -> None:
    r"""One logit at 0 and 65535 at -44.2 (:math:`e^{-44.2} \times 1024 \approx
    2^{-54}`): each block of the row's exp-sum adds a fifth of an ulp of 1, which a
    plain float64 running sum rounds away, 13 ulps of every :math:`p` in all (caught
    here through :math:`t = \mathrm{fl}_{32}(p)`); the kernel adds the blocks by TwoSum."""
    z = np.full((1, 1 << 16), -44.2, dtype=np.float32)
    z[0, 5] = 0.0
    t = _softmax32(z.astype(np.float64))
    truth, p_term = _oracle(z, t, None, 1.0)
    got = crossent.softmax_cross_entropy_with_targets_grad(z, t, reduction="sum", validate=False)
    assert _ulps(got, truth, 4 * EPS64 * p_term) <= 1.0


def test_target_exp_within_a_float64_ulp() -> None:
    """The kernel's ``exp`` (``target_exp``) against mpmath on 600 arguments over its
    range, at T = 1 and 1.7, shifts on the 2**-24 grid: within a float64 ulp (0.86)."""
    kernels = pytest.importorskip("crossent.losses._cpu_kernels_numba")
    rng = np.random.default_rng(3)
    xs = np.concatenate(
        [-rng.uniform(0, 2, 200), -rng.uniform(0, 60, 200), -rng.uniform(0, 700, 200)]
    )
    worst = 0.0
    with mpmath.workdps(40):
        for temperature in (1.0, 1.7):
            for x in xs.astype(np.float32):
                shift = float(np.rint(rng.uniform(0, 12) * 2**24) / 2**24)
                got = kernels.target_exp(x, 0.0, 1 / temperature, temperature, shift - 708, shift)
                exact = mpmath.exp(mpmath.mpf(float(x)) / temperature - shift)
                if exact < mpmath.mpf(2) ** -1022:
                    continue  # clamped at e^-708 (vanishes in float32)
                worst = max(worst, float(abs(got - exact) / np.spacing(float(exact))))
    assert worst <= 1.0, worst


@pytest.mark.parametrize("name", ["target_exp", "two_sum", "fused_entry"])
def test_out_of_line_helpers_have_their_own_flags(name: str) -> None:
    """Each helper the reassociating kernel calls keeps its own fast-math flags, without
    ``reassoc`` (which folds ``(k + M) - M``, TwoSum's error, ``c e + (c g) e``): see
    ``tests/test_issue13_fastmath_inheritance.py``."""
    kernels = pytest.importorskip("crossent.losses._cpu_kernels_numba")
    options = getattr(kernels, name).targetoptions
    assert "fastmath" in options, "no fastmath of its own: it would inherit the kernel's"
    assert options["fastmath"] is not True
    assert "reassoc" not in set(options["fastmath"] or ())
