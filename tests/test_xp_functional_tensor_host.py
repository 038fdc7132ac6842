"""``_xp.cannot_copy_to_host`` knows PyTorch's ``FunctionalTensor`` (branch mutation6).

AOTAutograd and ``torch.export`` trace a program on ``FunctionalTensor`` (functionalized
tensors); NumPy cannot read one ("``.numpy()`` is not supported for tensor subclasses").
A far row of ``cross_entropy`` on them is formed again in their own library, as under the
other transformations (``tests/test_issue13_traced_far_rows.py``; NumPy's value since
branch jaxexact1, the common path's ``inf`` before). The mutant that drops
``"FunctionalTensor"`` from ``_VALUELESS_TENSORS`` sent those tensors to the NumPy
float64 far-row pass, which raised "`result` (FunctionalTensor) could not be read as a
host array". Passes on main; guards that mutant (tests/MUTATION.md, mutation6).
Oracle: mpmath at 50 digits for the row that is not far.
"""

from __future__ import annotations

import warnings

import mpmath
import numpy as np
import pytest

import crossent
from crossent import _xp

torch = pytest.importorskip("torch")
functional = pytest.importorskip("torch._subclasses.functional_tensor")


def test_functional_tensor_has_no_host_copy() -> None:
    with functional.FunctionalTensorMode():
        x = functional.FunctionalTensor.to_functional(torch.ones(2, dtype=torch.float64))
        assert _xp.cannot_copy_to_host(x)
        with pytest.raises(RuntimeError, match="not supported for tensor subclasses"):
            np.asarray(x)


def test_cross_entropy_of_functional_tensors_with_a_far_row() -> None:
    p = torch.tensor([[0.6, 0.4], [1.0, 0.0]], dtype=torch.float64)
    x = torch.tensor([[1.7e308, -1.7e308], [0.0, 1.0]], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the common path's overflow
        with functional.FunctionalTensorMode():
            fp = functional.FunctionalTensor.to_functional(p)
            fx = functional.FunctionalTensor.to_functional(x)
            out = crossent.cross_entropy(fp, fx, q_form="logits", validate=False)
            got = functional.FunctionalTensor.from_functional(out)
    with mpmath.workdps(50):
        near = float(mpmath.log(1 + mpmath.e))  # -log softmax([0, 1])[0]
    assert got.dtype == torch.float64
    # formed again in PyTorch itself (branch jaxexact1; main kept the common path's inf)
    far = crossent.cross_entropy(p[0].numpy(), x[0].numpy(), q_form="logits")
    assert got[0].item() == float(far)
    assert got[1].item() == pytest.approx(near, rel=1e-15)
