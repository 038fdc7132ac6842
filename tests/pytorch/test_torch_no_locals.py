"""The public functions that ``torch.compile`` traces pass their options by name.

``cross_entropy``, ``linear_cross_entropy`` and the two vocab-parallel losses read their
options with ``call_options_in(locals())``. Dynamo in torch 2.13 traces ``locals()``,
but torch 2.11's does not: on an H200 with torch 2.11, ``torch.compile(fullgraph=True)``
of a module calling ``cross_entropy`` failed ("Dynamo does not know how to trace builtin
operator `locals`"), while this machine's torch 2.13 passed the same test. The suite
runs one torch version, so this test reads the functions' source instead: it fails on
the code before the fix (4 functions).
"""

from __future__ import annotations

import inspect

import pytest

pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

TRACED = [
    "cross_entropy",
    "linear_cross_entropy",
    "linear_head_cross_entropy",
    "binary_cross_entropy_with_logits",
    "sigmoid_focal_loss",
    "softmax_focal_loss",
    "distillation_loss",
    "vocab_parallel_cross_entropy",
    "vocab_parallel_linear_cross_entropy",
]


@pytest.mark.parametrize("name", TRACED)
def test_traced_function_does_not_call_locals(name: str) -> None:
    source = inspect.getsource(getattr(ct, name))
    assert "locals()" not in source
