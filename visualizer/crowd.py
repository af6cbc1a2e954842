"""A crowd's database calls in as few thread hops as the database allows.

Channels runs every consumer's database work on one thread, one call after another, and
each call opens and closes its own connection (CONN_MAX_AGE is 0, as Django requires
under ASGI). When a lab's wall of screens opens a run at once, 300 viewers would make 600
such calls in a row: signing each one in, then reading the run for its snapshot. Here the
calls made while a hop is under way wait for the next one, and run in it one after
another on one connection: a crowd costs a few hops, and a lone viewer waits for nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from channels.auth import AuthMiddleware
from channels.db import database_sync_to_async
from django.contrib import auth


class DatabaseCrowd:
    """Runs the sync database calls made at about the same time together, in order."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: list[tuple[Callable[..., Any], tuple, asyncio.Future]] = []
        self._hops: asyncio.Task | None = None
        self.hops = 0

    async def call(self, function: Callable[..., Any], *args: object) -> Any:
        """`function(*args)` on Channels' database thread, in the next hop."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): the old tasks are gone
            self._loop, self._waiting, self._hops = loop, [], None
        future = loop.create_future()
        self._waiting.append((function, args, future))
        if self._hops is None or self._hops.done():
            self._hops = loop.create_task(self._hop_while_waiting())
        return await future

    async def _hop_while_waiting(self) -> None:
        while self._waiting:
            calls, self._waiting = self._waiting, []
            self.hops += 1
            try:
                outcomes = await database_sync_to_async(_call_each)(calls)
            except asyncio.CancelledError:  # the event loop is closing
                for _, _, future in calls + self._waiting:
                    future.cancel()
                raise
            except Exception as error:  # the hop itself failed: every caller hears it
                outcomes = [(None, error)] * len(calls)
            for (_, _, future), (result, error) in zip(calls, outcomes, strict=True):
                if future.done():  # its caller has gone
                    continue
                if error is None:
                    future.set_result(result)
                else:
                    future.set_exception(error)


def _call_each(calls: list) -> list[tuple[Any, Exception | None]]:
    outcomes: list[tuple[Any, Exception | None]] = []
    for function, args, future in calls:
        if future.cancelled():  # nobody is waiting for it any more
            outcomes.append((None, None))
            continue
        try:
            outcomes.append((function(*args), None))
        except Exception as error:  # the caller's own error, raised where it awaits
            outcomes.append((None, error))
    return outcomes


database = DatabaseCrowd()


def _user_of_session(session: object) -> object:
    # Django's own check, with the session's auth hash and the secret key's fallbacks; it
    # reads nothing of the request but its session.
    return auth.get_user(SimpleNamespace(session=session))


class CrowdAuthMiddleware(AuthMiddleware):
    """Channels' AuthMiddleware, with each socket signed in through the crowd's hops."""

    async def resolve_scope(self, scope: dict) -> None:
        scope["user"]._wrapped = await database.call(_user_of_session, scope["session"])
