"""A new viewer's snapshot of a run: its metric history, read once for everyone arriving.

When many viewers open a run at once (a lab's wall of screens, a link shared in a talk),
each would read and encode the same up-to-1,500 downsampled points. Here viewers that
ask while a read is under way share the next read, and get its JSON text, encoded once.
The next read starts after they asked, and so after they joined the hub: every point
stored before it is in the snapshot and every point published after their join reaches
them as a `metrics` message (the page skips the points it already has), so sharing adds
no gap to what a viewer reading on its own would get.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import Awaitable, Callable, Hashable

from trainer import selectors
from trainer.models import Run
from visualizer import crowd

SNAPSHOT_POINTS = 1500


class SharedReads:
    """Coalesces concurrent reads by key; each caller gets a read that began after it asked."""

    def __init__(self, read: Callable[[Hashable], Awaitable[str]]) -> None:
        self._read = read
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: dict[Hashable, asyncio.Task] = {}  # not begun: callers may join it
        self._under_way: dict[Hashable, asyncio.Task] = {}
        self.reads = 0

    async def get(self, key: Hashable) -> str:
        """The result of a read of `key` that begins after this call."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): the old tasks are gone
            self._loop, self._waiting, self._under_way = loop, {}, {}
        task = self._waiting.get(key)
        if task is None or task.done():
            task = loop.create_task(self._read_after(key, self._under_way.get(key)))
            self._waiting[key] = task
        # One caller leaving (its socket closed) must not cancel the others' read.
        return await asyncio.shield(task)

    async def _read_after(self, key: Hashable, previous: asyncio.Task | None) -> str:
        task = asyncio.current_task()
        try:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(previous)
        finally:
            # Begun (or cancelled): callers from now on need a read of their own.
            if self._waiting.get(key) is task:
                del self._waiting[key]
        self._under_way[key] = task
        try:
            self.reads += 1
            return await self._read(key)
        finally:
            if self._under_way.get(key) is task:
                del self._under_way[key]


def _read_metrics_json(run_id: int) -> str:
    points, total = selectors.run_metric_points(Run(pk=run_id), max_points=SNAPSHOT_POINTS)
    return json.dumps({"points": points, "total": total}, separators=(",", ":"))


metrics_json = SharedReads(functools.partial(crowd.database.call, _read_metrics_json))
