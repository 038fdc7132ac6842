"""``torch.compile`` of ``crossent.torch.cross_entropy`` after a NumPy call with NumPy
scalar options (found by CI: test order within a worker).

``losses._batch.options_of`` keeps checked options in a table that ``torch.compile``
traces; a key holding a NumPy scalar (``np.str_('sum')`` from a NumPy call's
``reduction``) made every later compiled call fail with "failed to convert
numpy.ndarray to Tensor". Such values are now checked afresh, never kept.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

import crossent  # noqa: E402
from crossent.losses import _batch  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")


NUMPY_OPTIONS = [
    {"reduction": np.str_("sum")},
    {"label_smoothing": np.float32(0.1)},
    {"temperature": np.float64(2.0), "base": np.int64(2)},
]


def test_compiled_cross_entropy_after_numpy_scalar_options():
    """Each NumPy call's options checked afresh, never kept; then one compilation after
    all of them (each key a NumPy scalar would have left in the table is there to trace:
    one ``torch.compile`` for the three, which each paid, with a Dynamo reset, before)."""
    logits = np.linspace(-2.0, 2.0, 12).reshape(3, 4)
    labels = np.array([0, 3, 1])
    for numpy_options in NUMPY_OPTIONS:
        expected = crossent.softmax_cross_entropy(
            logits, labels, **{k: v.item() for k, v in numpy_options.items()}
        )
        got = crossent.softmax_cross_entropy(logits, labels, **numpy_options)
        assert np.asarray(got).tobytes() == np.asarray(expected).tobytes()
        types = {type(v) for key in _batch._CHECKED_OPTIONS for v in key[0]}
        assert types <= {float, int, bool, str, type(None)}, numpy_options

    z = torch.linspace(-3.0, 3.0, 20).reshape(4, 5)
    y = torch.tensor([0, 1, 4, 2])
    torch._dynamo.reset()
    compiled = torch.compile(
        lambda z, y: ct.cross_entropy(z, y, label_smoothing=0.1), fullgraph=True, backend="eager"
    )
    torch.testing.assert_close(compiled(z, y), ct.cross_entropy(z, y, label_smoothing=0.1))
