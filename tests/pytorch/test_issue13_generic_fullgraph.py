"""The generic measures under ``torch.compile(fullgraph=True)`` (issue 13, branch leftovers10).

On main, with ``validate=False``:

* the first tensor call of a process stopped at ``_xp.numpy_namespace``, which bound
  its module global with ``globals()[...]`` ("Dynamo does not know how to trace builtin
  operator `globals`"): ``torch.compile(crossent.entropy, fullgraph=True)`` failed in a
  fresh process, and passed once any eager call had run;
* ``cross_entropy``, ``perplexity`` and ``binary_cross_entropy`` stopped at the
  ``locals()`` they hand to the host route ("Read uninitialized cell": each has a
  closure cell bound later), although the route is off under tracing.

Now the global is bound by a ``global`` statement and the measures ask
``_torch_host.routable`` (false while Dynamo traces) before they form ``locals()``.
What still stops ``fullgraph=True`` (the checks of ``validate=True``, the labels'
range, KL's exact pass, ...) is listed in ``docs/differs.md``.
"""

from __future__ import annotations

import inspect
import re

import mpmath
import pytest

import crossent
from crossent import _xp

torch = pytest.importorskip("torch")

_HOSTED = [
    "entropy",
    "cross_entropy",
    "kl_divergence",
    "js_divergence",
    "perplexity",
    "cross_entropy_decomposition",
    "surprisal",
    "binary_entropy",
    "binary_cross_entropy",
    "binary_cross_entropy_grad",
]


def test_cross_entropy_compiles_fullgraph_as_the_first_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One compile: the namespace's first binding (reset here, as in a fresh process)
    and ``cross_entropy``'s host-route check, both traced; the value against mpmath."""
    monkeypatch.setattr(_xp, "_compat_numpy", None)
    monkeypatch.delattr(_xp, "compat_numpy", raising=False)
    p = torch.tensor([[0.25, 0.75, 0.0], [0.5, 0.25, 0.25]], dtype=torch.float64)
    q = torch.tensor([[0.5, 0.25, 0.25], [0.125, 0.375, 0.5]], dtype=torch.float64)

    def measure(a: object, b: object) -> object:
        return crossent.cross_entropy(a, b, validate=False)

    torch._dynamo.reset()
    got = torch.compile(measure, fullgraph=True, backend="aot_eager")(p, q)
    with mpmath.workdps(40):
        exact = [
            float(
                -mpmath.fsum(mpmath.mpf(x) * mpmath.log(y) for x, y in zip(a, b, strict=True) if x)
            )
            for a, b in zip(p.tolist(), q.tolist(), strict=True)
        ]
    assert got.dtype == torch.float64
    assert got.tolist() == pytest.approx(exact, rel=4e-16)


@pytest.mark.parametrize("name", _HOSTED)
def test_host_route_is_asked_before_locals(name: str) -> None:
    """Every measure that hands ``locals()`` to the host route asks ``routable`` first,
    in the same condition (``locals()`` is then never traced)."""
    source = inspect.getsource(getattr(crossent, name))
    # (comment lines may come between; the call's arguments may start on the next line)
    found = re.search(
        r"if (.*):.*\n(?:\s*#.*\n)*\s+hosted = call_on_host\(\s*\w+, locals\(\)", source
    )
    assert found is not None
    assert "routable(p)" in found.group(1)


def test_routable_is_false_while_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    from crossent._torch_host import routable

    tensor = torch.zeros(2)
    assert routable(tensor)
    assert not routable(tensor.numpy())
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert not routable(tensor)
