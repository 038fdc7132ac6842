"""``_torch_host._dual_level_open`` on its own (branch mutation8: the route's test of an
open forward-mode AD level, whose mutants the public tests decide slowly or not at all)."""

from __future__ import annotations

import pytest

from crossent import _torch_host

torch = pytest.importorskip("torch")
forward_ad = torch.autograd.forward_ad


def test_a_level_is_open_only_within_dual_level() -> None:
    # the first level is 0: "level > 0" took the route (tangents dropped) within it
    assert not _torch_host._dual_level_open(torch)
    with forward_ad.dual_level():
        assert _torch_host._dual_level_open(torch)
    assert not _torch_host._dual_level_open(torch)


def test_a_pytorch_without_the_attribute_is_taken_as_having_a_level_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a later release may rename it: the torch path then (slower, never dropped tangents)
    monkeypatch.setattr(_torch_host, "MAX_ELEMENTS", 1 << 16)  # (the route on)
    z = torch.zeros(2, 3, dtype=torch.float64)
    assert _torch_host.host_arguments((z, torch.tensor([0, 1])), {}) is not None
    monkeypatch.delattr(forward_ad, "_current_level")
    assert _torch_host._dual_level_open(torch)
    assert _torch_host.host_arguments((z, torch.tensor([0, 1])), {}) is None
