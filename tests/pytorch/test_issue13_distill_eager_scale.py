r"""Issue 13 follow-up: eager ``crossent.torch.distillation_loss`` at 4096 x 32000 took 49 s.

No row was flagged near or far: every eager call ran the generic formula's branch for a
subnormal :math:`t_c` (``_numerics.exp_times``: round, floor, pow, exp over every entry,
then dropped by ``where``) and its backward, some 50 passes over the call's size where
PyTorch's ``kl_div`` idiom makes a dozen. An ordinary call now forms its terms without
the branches that pick nothing (``_far_distillation._ordinary_call``); a call with a
subnormal :math:`t_c`, a near row or a non-finite result still takes the generic path.

Oracles: the generic path (``crossent.losses.distillation_loss`` on the same tensors,
autograd through it), which an ordinary call must match bit for bit, value and
gradient; and the NumPy float64 loss of the same inputs. ``test_ordinary_calls_scale``
fails on main (ba9ac14 and 075a3b2: ``exp_times`` runs on every call); the others pass there and
catch the mutants named in them. Small shapes, no timing.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import crossent  # noqa: E402
from crossent import _numerics, losses  # noqa: E402
from crossent.torch import distillation_loss  # noqa: E402


def _generic(z: torch.Tensor, v: torch.Tensor, temperature: float) -> tuple[list, list]:
    """The generic path's loss (``'mean'``) and student gradient, as lists."""
    leaf = z.detach().clone().requires_grad_()
    loss = losses.distillation_loss(leaf, v, axis=1, temperature=temperature)
    (grad,) = torch.autograd.grad(loss, leaf)
    return loss.tolist(), grad.tolist()


def _ours(z: torch.Tensor, v: torch.Tensor, temperature: float) -> tuple[list, list]:
    """``crossent.torch.distillation_loss`` (``'mean'``) and its student gradient."""
    leaf = z.detach().clone().requires_grad_()
    loss = distillation_loss(leaf, v, temperature=temperature)
    (grad,) = torch.autograd.grad(loss, leaf)
    return loss.tolist(), grad.tolist()


def _float64_loss(z: torch.Tensor, v: torch.Tensor, temperature: float) -> float:
    """The NumPy loss of the same values in float64 (classes on axis 1)."""
    z64, v64 = (np.moveaxis(x.double().numpy(), 1, -1) for x in (z, v))
    return float(crossent.distillation_loss(z64, v64, temperature=temperature))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_ordinary_calls_scale(dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ordinary call (3-D, classes on axis 1; a teacher probability 0 in one row)
    forms no scaled product, and gives the generic path's value and gradient bit for bit.
    Main: ``exp_times`` ran on every entry of every call. Mutant caught: the terms
    without their ``0 log 0 = 0`` (``masked_fill``): NaN, the generic path again."""
    rng = np.random.default_rng(13)
    z = torch.tensor(rng.standard_normal((4, 7, 3)) * 3, dtype=dtype)
    v = torch.tensor(rng.standard_normal((4, 7, 3)) * 3, dtype=dtype)
    v[1, 2, 0] = -math.inf  # t = 0 in one row: its term 0
    expected = _generic(z, v, 2.0)
    truth = torch.tensor(_generic(z.double(), v.double(), 2.0)[1], dtype=torch.float64)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an ordinary call formed the scaled products")

    monkeypatch.setattr(_numerics, "exp_times", refuse)
    ours = _ours(z, v, 2.0)
    assert ours[0] == expected[0]
    if dtype == torch.float16:  # (no dominant entry formed: _dominant_gradient)
        assert ours[1] == expected[1]
    else:
        # a row whose student and teacher both give their top class more than 1/2 has its
        # top entry formed from the others (_dominant_gradient): the rest keeps autograd's
        # bits, and that entry is no farther from the float64 gradient than autograd's
        mine, theirs = (torch.tensor(g, dtype=torch.float64) for g in (ours[1], expected[1]))
        moved = mine != theirs
        assert moved.any()
        assert torch.equal(mine[~moved], theirs[~moved])
        assert (mine - truth).abs()[moved].max() <= (theirs - truth).abs()[moved].max()
    assert expected[0] == pytest.approx(_float64_loss(z, v, 2.0), rel=1e-5)


def test_subnormal_teacher_probability_takes_the_generic_path() -> None:
    r"""A subnormal :math:`t_c = e^{-100}` (float32) beside :math:`\log s_c = -3\cdot
    10^{38}`: the term :math:`t_c(\log t_c - \log s_c) \approx 1.1\cdot 10^{-5}`, whose
    rounded :math:`t_c` is 27 ulps of the smallest subnormal (1.4 % off) where the
    generic path scales it (``exp_times``). Mutant caught: the ``subnormal`` flag
    dropped from the host read (the loss 1 % off the float64 one)."""
    z = torch.tensor([[[0.0], [-3e38]], [[0.5], [-0.25]]], dtype=torch.float32)
    v = torch.tensor([[[0.0], [-100.0]], [[-0.5], [1.0]]], dtype=torch.float32)
    ours = _ours(z, v, 1.0)
    assert ours == _generic(z, v, 1.0)
    assert ours[0] == pytest.approx(_float64_loss(z, v, 1.0), rel=1e-5)


def test_near_rows_take_the_generic_path() -> None:
    """A row where student and teacher agree (a KL below ``_near_rows.KL_FLOOR``): formed
    by ``_near_rows`` as before, 0 where the common path's terms leave a few ulps of
    cancellation. Mutant caught: the ``near`` flag dropped from the host read."""
    rng = np.random.default_rng(5)
    z = torch.tensor(rng.standard_normal((3, 50, 1)) * 3, dtype=torch.float32)
    v = z.clone()
    v[0] = torch.tensor(rng.standard_normal((50, 1)), dtype=torch.float32)
    ours = _ours(z, v, 3.0)
    assert ours == _generic(z, v, 3.0)
    assert ours[0] == pytest.approx(_float64_loss(z, v, 3.0), rel=1e-6)
