"""Merge a cell's printed output as it was printed, without myst-nb's extra line breaks.

With ``nb_merge_streams = True`` myst-nb (1.x, ``myst_nb.core.utils.coalesce_streams``)
joins the stream chunks of a cell with ``chunk.rstrip() + "\\n"``. A kernel that
flushes standard output in the middle of a line (ipykernel flushes on a timer, so on a
loaded machine ``print("crossent:     ", array)`` can arrive as two chunks) then shows a
line break the code never printed and loses the spaces before it: the temperature page
read ``crossent:`` over `` [-0.249156 ...]`` in a build on a loaded 2-core machine,
where ``(p(T) - y)/T:  [...]`` beside it stayed on one line. Here the chunks of each
stream are joined exactly, and myst-nb's own merge then sees one chunk per stream and
only tidies its end (and handles ``\\r`` and ``\\b``, and the stderr-after-stdout order).
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["join_stream_chunks", "setup"]


def join_stream_chunks(outputs: list[Any]) -> list[Any]:
    """Each stream's chunks concatenated as printed, at the place of its first chunk.

    Parameters
    ----------
    outputs : list of nbformat.NotebookNode
        A cell's outputs, in the order the kernel sent them.

    Returns
    -------
    list of nbformat.NotebookNode
        The same outputs with every ``stream`` output of one name (``stdout``,
        ``stderr``) after the first appended to that first one, text unchanged.
    """
    merged: list[Any] = []
    first: dict[str, Any] = {}
    for output in outputs:
        if output.get("output_type") != "stream":
            merged.append(output)
        elif output["name"] in first:
            first[output["name"]]["text"] += output["text"]
        else:
            output = copy.copy(output)  # the notebook's own node stays as the kernel sent it
            first[output["name"]] = output
            merged.append(output)
    return merged


def setup(app: Any) -> dict[str, Any]:
    from myst_nb.core import render

    original = render.coalesce_streams

    def coalesce_streams(outputs: list[Any]) -> list[Any]:
        merged: list[Any] = original(join_stream_chunks(outputs))
        return merged

    render.coalesce_streams = coalesce_streams
    return {"parallel_read_safe": True, "parallel_write_safe": True}
