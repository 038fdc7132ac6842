"""Issue 13: ``import crossent.torch`` does not import Dynamo; the agreement's exchange is
still run untraced under ``torch.compile``.

``@torch.compiler.disable`` on ``_agreement.exchange`` imported ``torch._dynamo`` (with
Inductor's configuration and SymPy: 1.4-1.8 s of CPU) in every process that imported
``crossent.torch``, each test worker and subprocess included. The exchange is now
chosen at call time (``_agreement.untraced_exchange``): behind torch's lazy disable
(``torch._disable_dynamo``) once Dynamo is imported, itself before.

* a fresh process: ``import crossent.torch`` and an eager distributed call
  (``all_reduce_state`` on a one-rank gloo group) leave ``torch._dynamo``,
  ``torch._inductor`` and SymPy unimported (fails on main: Dynamo imported);
* guards, which pass on main too (there through the decorated ``exchange``): under
  ``torch.compile`` the exchange is a graph break that names ``torch.compiler.disable``
  (``fullgraph=True``: Dynamo's ``Unsupported``), no frame of it is traced (its record
  is formed with ``torch.compiler.is_compiling()`` False), also where Dynamo runs the
  caller's frame eagerly but traces the frames it calls, and the compiled value is
  eager's.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("crossent.torch")

from crossent.torch import _agreement  # noqa: E402
from fresh_process import run_python  # noqa: E402
from spawned import one_rank_group  # noqa: E402

dist = pytest.importorskip("torch.distributed")

#: Imported by ``torch.compiler.disable`` (``import torch._dynamo``), not by ``import torch``.
_HEAVY = ("torch._dynamo", "torch._inductor", "sympy")


def test_import_and_eager_distributed_call_leave_dynamo_out(tmp_path: Path) -> None:
    """``import crossent.torch`` and an eager ``all_reduce_state`` (the exchange and its
    collectives) import none of ``_HEAVY``; fails on main (Dynamo imported with the
    package). Then ``fullgraph=True`` refuses the exchange naming ``torch.compiler.disable``
    (in this process: that refusal, in a test worker, changed what later tests' torch
    dispatch modes saw)."""
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("torch.distributed with gloo is unavailable")
    script = textwrap.dedent(
        f"""
        import json, sys
        heavy = {_HEAVY!r}
        seen = {{}}
        import torch
        seen["import torch"] = [m for m in heavy if m in sys.modules]
        import crossent, crossent.torch
        seen["import crossent.torch"] = [m for m in heavy if m in sys.modules]
        import torch.distributed as dist
        store = {str(tmp_path / "store")!r}
        dist.init_process_group("gloo", init_method="file://" + store, rank=0, world_size=1)
        summary = crossent.torch.all_reduce_state(crossent.EvaluationState(3))
        seen["all_reduce_state"] = [m for m in heavy if m in sys.modules]
        # fullgraph=True: the exchange refused while tracing (Dynamo's Unsupported
        # naming torch.compiler.disable). Here, not in the test worker: after that
        # refusal, torch's dispatch in the worker showed later tests' dispatch modes
        # more float64 temporaries (two block-peak tests of crossent.torch failed)
        from crossent.torch import _agreement

        untraced = getattr(_agreement, "untraced_exchange", None)  # (main: none)

        def caller(x):
            fields = [_agreement.Field("rows", 3, shown="3")]
            exchange = _agreement.exchange if untraced is None else untraced()
            return x + exchange("f", dist.group.WORLD, fields)[0][0]

        try:
            torch.compile(caller, backend="eager", fullgraph=True)(torch.ones(2))
            seen["fullgraph"] = "compiled"
        except torch._dynamo.exc.Unsupported as error:
            seen["fullgraph"] = "torch.compiler.disable" in str(error)
        dist.destroy_process_group()
        print(json.dumps(seen))
        """
    )
    seen = json.loads(run_python(script, numba_cache=tmp_path / "numba", timeout=300))
    assert seen == {
        "import torch": [],
        "import crossent.torch": [],
        "all_reduce_state": [],
        "fullgraph": True,
    }


@pytest.fixture
def one_rank(tmp_path: Path) -> Iterator[None]:
    with one_rank_group(str(tmp_path)):
        yield


@pytest.fixture
def records(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """``torch.compiler.is_compiling()`` where each rank record is formed: True only
    where Dynamo traced the exchange's frame."""
    seen: list[bool] = []
    record = _agreement._record

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(torch.compiler.is_compiling())
        return record(*args, **kwargs)

    monkeypatch.setattr(_agreement, "_record", spy)
    return seen


def _exchange() -> Callable[..., list[list[int]]]:
    """The exchange as traced code calls it (main: the decorated ``exchange``)."""
    untraced = getattr(_agreement, "untraced_exchange", None)
    return _agreement.exchange if untraced is None else untraced()


def _caller(x: Any) -> Any:
    """A traced caller: tensor work, the exchange, tensor work with its result."""
    fields = [_agreement.Field("rows", 3, shown="3"), _agreement.Field("width", 5, same=False)]
    y = x * 2
    table = _exchange()("test_function", dist.group.WORLD, fields)
    return y + table[0][0]


@pytest.mark.usefixtures("one_rank")
def test_compiled_exchange_is_a_graph_break_run_untraced(records: list[bool]) -> None:
    """A graph break naming ``torch.compiler.disable``; the exchange formed its record
    outside any trace, and the compiled value is eager's (2 + 5). (``fullgraph=True``'s
    refusal is checked in a fresh process, by the test above.)"""
    from torch._dynamo.utils import counters

    x = torch.ones(2)
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(_caller, backend="eager")
    for _ in range(2):
        torch.testing.assert_close(compiled(x), torch.full((2,), 7.0))
    assert records == [False, False]
    breaks = list(counters["graph_break"])
    assert len(breaks) == 1, breaks
    assert "torch.compiler.disable" in breaks[0]
    # (fullgraph=True's refusal: checked in the fresh process of the test above)
    torch._dynamo.reset()


@pytest.mark.usefixtures("one_rank")
def test_exchange_untraced_where_dynamo_runs_its_caller_eagerly(records: list[bool]) -> None:
    """The caller's frame skipped by Dynamo (``disable(recursive=False)``: run eagerly,
    the frames it calls traced): the exchange's frames are not traced."""
    skipped = torch._dynamo.disable(_caller, recursive=False)
    torch._dynamo.reset()
    compiled = torch.compile(lambda x: skipped(x) * 1, backend="eager")
    torch.testing.assert_close(compiled(torch.ones(2)), torch.full((2,), 7.0))
    assert records == [False]
