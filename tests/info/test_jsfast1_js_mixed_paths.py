"""JS of mixed input forms: the faster paths to the same exact values (branch jsfast1,
issue 13).

Branch jaxexact1 made the generic path exact and 3.5x-14x slower on nearly equal rows.
Now CPU tensors of mixed forms take the host route (the fused kernel) at any size, and
the other eager namespaces take the exact pass on the flagged rows only. Oracle: mpmath
at 40 digits (``test_jaxexact1_js_mixed_generic._oracle``). 2 of 4 fail on main (the
route at any size, the flagged rows only); two guard what a mutant breaks: tensors that
need grad keep the torch path (``_view``'s grad check dropped), probabilities on both
sides keep the size limit (``any_size=True`` always).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tests.info.test_jaxexact1_js_mixed_generic import ULP, _oracle, _rows

import crossent
from crossent import _torch_host
from crossent.info import _js_mixed, _measures

xs = pytest.importorskip("array_api_strict")
torch = pytest.importorskip("torch")

HOST_ROUTE = True  # (conftest: the route stays as this module sets it)


def _no_torch_path(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the torch path ran")


def test_cpu_tensors_of_mixed_forms_take_the_host_route_at_any_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_torch_host, "MAX_ELEMENTS", 4)  # (the 4 x 6 rows: above it)
    monkeypatch.setattr(_measures, "_js_mixed_nats", _no_torch_path)
    p, y, _ = _rows()
    for dtype in (torch.float64, torch.float32):
        got = crossent.js_divergence(
            torch.tensor(p, dtype=dtype), torch.tensor(y, dtype=dtype), q_form="logits"
        )
        want = crossent.js_divergence(
            torch.tensor(p, dtype=dtype).numpy(),
            torch.tensor(y, dtype=dtype).numpy(),
            q_form="logits",
        )
        assert got.dtype == dtype
        assert torch.equal(got, torch.from_numpy(want))
    got = crossent.js_divergence(torch.tensor(y), torch.tensor(p), p_form="logits")
    assert torch.equal(got, torch.from_numpy(crossent.js_divergence(y, p, p_form="logits")))


def test_tensors_that_need_the_torch_path_keep_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_torch_host, "MAX_ELEMENTS", 4)
    seen = []
    monkeypatch.setattr(_measures, "_js_mixed_nats", lambda *a: seen.append(1) or _no_torch_path())
    p, y, _ = _rows()
    with pytest.raises(AssertionError, match="torch path ran"):  # (grad: autograd records it)
        crossent.js_divergence(
            torch.tensor(p, requires_grad=True), torch.tensor(y), q_form="logits"
        )
    assert seen == [1]


def test_probabilities_on_both_sides_keep_the_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # guard: only mixed forms route past MAX_ELEMENTS (mutant: any_size=True always)
    monkeypatch.setattr(_torch_host, "MAX_ELEMENTS", 4)
    hosted = []
    monkeypatch.setattr(
        _torch_host,
        "on_host",
        lambda f, any_size=False: hosted.append(any_size) or (lambda a, k: None),
    )
    p, _, _ = _rows()
    crossent.js_divergence(torch.tensor(p), torch.tensor(p[::-1].copy()))
    assert hosted == [False]


def test_the_exact_pass_runs_on_the_flagged_rows_only(monkeypatch: pytest.MonkeyPatch) -> None:
    p, y, _ = _rows()  # rows 1e-9, 1e-9, 1e-5 and 1e-12 apart
    rng = np.random.default_rng(2)
    y = np.concatenate([y, rng.normal(size=(3, 6))])[[4, 0, 5, 1, 2, 6, 3]]
    p = np.concatenate([p, rng.dirichlet(np.ones(6), size=3)])[[4, 0, 5, 1, 2, 6, 3]]
    exact = _js_mixed.js_mixed_exact
    shapes = []

    def counted(a: Any, b: Any, form: str, *, xp: Any) -> Any:
        shapes.append(tuple(a.shape))
        return exact(a, b, form, xp=xp)

    monkeypatch.setattr(_js_mixed, "js_mixed_exact", counted)
    got = crossent.js_divergence(xs.asarray(p), xs.asarray(y), q_form="logits")
    values = np.asarray(got, dtype=np.float64)
    for row in range(7):  # nearly equal rows to 8 ulps, the others to the screen's 2^-44
        want = _oracle(p[row], y[row], "logits")
        bound = 8 * ULP if row in (1, 3, 6) else 2.0**-44
        assert abs(values[row] - want) <= bound * want, (row, values[row], want)
    assert shapes
    assert all(0 < s[0] < 7 for s in shapes), shapes
