"""Run a function on every rank of a fresh gloo process group, in spawned processes.

Used by the ``distributed`` tests: one group per test, a free loopback port, and a
wall-clock bound so a stuck collective fails the test instead of hanging the suite.

The ranks start from a fork server (``forkserver``, not ``spawn``): a fresh process
(no Python thread), started once per test process, that imports :data:`PRELOAD`
once; each rank is a fork of it, so it does not import torch, ``torch.distributed.tensor``
(for ``CommDebugMode``: it pulls in sympy) and crossent again. A rank still starts clean:
the server never initialises a process group, runs a torch op, or imports Numba. With
``spawn`` every rank paid those imports (seconds each; 4 + 3 ranks in the two tests,
about half of their time on a 2-core machine).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest


def gloo_marks() -> list[pytest.MarkDecorator]:
    """The marks of a module of spawned gloo tests: ``distributed``, and a skip where
    ``torch.distributed`` or its gloo backend is unavailable (or torch is not installed)."""
    try:
        import torch.distributed as dist
    except ImportError:
        usable = False
    else:
        usable = dist.is_available() and dist.is_gloo_available()
    return [
        pytest.mark.distributed,
        pytest.mark.skipif(not usable, reason="torch.distributed with gloo is unavailable"),
    ]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(rank: int, world: int, port: int, worker: Callable[..., None], args: tuple) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=240),
    )
    try:
        worker(rank, world, *args)
    except BaseException:
        # The parent reports the first rank to exit, often a victim of another's failure.
        sys.stderr.write(f"--- rank {rank} of {world} failed:\n{traceback.format_exc()}")
        raise
    finally:
        dist.destroy_process_group()


PRELOAD = (
    "numpy",
    "pytest",
    "torch",
    "torch.distributed",
    "torch.distributed.tensor.debug",
    "crossent",
    "crossent.torch",
)
"""Modules the fork server imports once for every rank."""


def run_spawned(worker: Callable[..., None], world: int, *args: Any, timeout: float = 120) -> None:
    """``worker(rank, world, *args)`` on ``world`` spawned ranks; their failures fail the test.

    ``worker`` must be importable by name (a module-level function of a test module).
    """
    import multiprocessing

    import torch.multiprocessing as mp

    # Takes effect when the server starts (the first call in this process).
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(PRELOAD))
    context = mp.start_processes(
        _entry,
        args=(world, free_port(), worker, args),
        nprocs=world,
        join=False,
        start_method="forkserver",
    )
    deadline = time.monotonic() + timeout
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
            pytest.fail(f"the {world} spawned ranks did not finish within {timeout} s")


@contextlib.contextmanager
def one_rank_group(folder: str) -> Iterator[None]:
    """A one-rank gloo process group in this process (its file store in ``folder``),
    destroyed on exit: the vocab-parallel losses on one rank without spawning.  Skips
    when gloo is unavailable or a group is already initialised."""
    dist = pytest.importorskip("torch.distributed")
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("torch.distributed with gloo is unavailable")
    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    store = os.path.join(folder, "store")
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()
