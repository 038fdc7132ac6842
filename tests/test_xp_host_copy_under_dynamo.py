"""``_xp.cannot_copy_to_host`` traces under ``torch.compile(fullgraph=True)`` (branch
mutation6).

Under Dynamo the predicate must not ask ``torch._C._functorch``'s queries (functions
Dynamo skips: a graph break, an ``Unsupported`` error under ``fullgraph=True``); code
traced by Dynamo runs later on real tensors, which have a host copy. The mutant that
dropped ``not torch.compiler.is_compiling()`` passed every compiled test (none of them
reaches the predicate inside the graph) and raised here. Oracle: the eager call's answer
(a plain tensor: False) and ``torch._dynamo.explain``'s graph-break count, 0. Passes on
main; guards that mutant (tests/MUTATION.md, mutation6).
"""

from __future__ import annotations

from typing import Any

import pytest

from crossent import _xp

torch = pytest.importorskip("torch")


def _scaled(x: Any) -> Any:
    return x * (2.0 if _xp.cannot_copy_to_host(x) else 1.0)


def test_predicate_compiles_fullgraph_with_the_eager_answer() -> None:
    x = torch.tensor([1.5, -2.0])
    assert not _xp.cannot_copy_to_host(x)
    torch._dynamo.reset()
    assert torch._dynamo.explain(_scaled)(x).graph_break_count == 0
    torch._dynamo.reset()
    got = torch.compile(_scaled, fullgraph=True, backend="aot_eager")(x)
    assert torch.equal(got, x)
