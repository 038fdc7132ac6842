"""Hostile pass: ``multiclass_hinge_loss`` and its gradient with ``validate=False`` on a
row entirely ``-inf`` (no score to compare) or with a NaN give NaN, as the softmax
losses and the measures do. On main (afc1e53) the all ``-inf`` row's loss and gradient
were 0 and a NaN row's gradient finite (``[1/3, 0, -1/3]`` for a mean). Fails on main.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import crossent

_Z = np.array([[-np.inf, -np.inf, -np.inf], [0.0, 1.0, 2.0], [np.nan, 0.0, 0.0]])
_Y = np.array([0, 1, 2])


@pytest.mark.parametrize("variant", ["crammer_singer", "weston_watkins"])
def test_hinge_of_undefined_rows_is_nan(backend: Any, variant: str) -> None:
    z, y = backend.asarray(_Z), backend.asarray(_Y)
    options = {"variant": variant, "validate": False}
    loss = backend.to_numpy(crossent.multiclass_hinge_loss(z, y, reduction="none", **options))
    grad = backend.to_numpy(crossent.multiclass_hinge_loss_grad(z, y, reduction="sum", **options))
    assert np.isnan(loss[[0, 2]]).all()
    assert np.isnan(grad[[0, 2]]).all()
    assert loss[1] == 2.0  # margins 0 and 2 against z_1: either variant
    np.testing.assert_array_equal(grad[1], [0.0, -1.0, 1.0])
