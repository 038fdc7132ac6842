r"""Rows shared by the reverse-KL zero-teacher tests (``tests/losses`` and
``tests/pytorch``'s ``test_reverse_kl_zero_teacher_gradient.py``): a batch that mixes
rows of an infinite :math:`D(s\,\|\,t)` with finite ones, and the masked oracle."""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["FORMS", "INF", "INFINITE", "ROWS", "inputs", "masked_oracle"]

INF = math.inf
# Each row: the student's logits, the teacher's probabilities (0 marks a zero class).
ROWS = (
    ([0.5, 0.0, -1.0, 0.0], [0.0, 0.3, 0.7, 0.0]),  # two zero classes, student > 0: inf
    ([0.2, 1.0, -0.5, 0.3], [0.0, 0.5, 0.5, 0.0]),  # two zero classes, student > 0: inf
    ([-INF, 0.0, -1.0, 0.0], [0.0, 0.3, 0.7, 0.0]),  # one zero class masked, one not: inf
    ([0.4, -0.3, 2.0, 0.1], [0.1, 0.3, 0.5, 0.1]),  # ordinary
    ([-INF, 0.0, -1.0, -INF], [0.0, 0.3, 0.7, 0.0]),  # every zero class masked: finite
    ([1.5, -INF, 0.25, -2.0], [0.6, 0.0, 0.15, 0.25]),  # the zero class masked: finite
)
INFINITE = np.array([True, True, True, False, False, False])
FORMS = ("logits", "probs", "log_probs")


def inputs(form: str, dtype: type, copies: int = 1) -> tuple[np.ndarray, np.ndarray]:
    z = np.array([r[0] for r in ROWS] * copies)
    probs = np.array([r[1] for r in ROWS] * copies)
    with np.errstate(divide="ignore"):
        teacher = probs if form == "probs" else np.log(probs)  # logits: log p, -inf for 0
    return z.astype(dtype), teacher.astype(dtype)


def masked_oracle(z: np.ndarray, teacher: np.ndarray, form: str, t: float) -> tuple[float, ...]:
    r"""The row's :math:`T^2 D(s\,\|\,t)` and gradient by float64 torch autograd of the
    formula over the classes of finite student logits only (``s`` is 0 in the others;
    the teacher softened over all its classes, as crossent softens it)."""
    zz = torch.tensor(z, dtype=torch.float64)
    keep = torch.isfinite(zz)
    with np.errstate(divide="ignore"):
        log_t = np.log(teacher) if form == "probs" else teacher.astype(np.float64)
    log_t = torch.tensor(log_t, dtype=torch.float64)
    if t != 1.0 or form == "logits":
        log_t = torch.log_softmax(log_t / t, 0)
    sub = zz[keep].clone().requires_grad_()
    log_s = torch.log_softmax(sub / t, 0)
    loss = t * t * (log_s.exp() * (log_s - log_t[keep])).sum()
    loss.backward()
    grad = torch.zeros_like(zz)
    grad[keep] = sub.grad
    return loss.item(), *grad.tolist()
