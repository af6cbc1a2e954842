"""The web side of the live stream: one Redis subscription per web process.

The bridge PUBLISHes each pre-encoded message once, on the Redis channel of its group.
Each web process subscribes once to the groups that its sockets watch, reads every
message once, frames it once (visualizer/socket_writer.py) and hands it to each of its
viewers of that group. The Channels consumer pattern would instead queue, wake, decode
and dispatch every message once per viewer: 26 us of CPU per viewer per message against
1.5 us here, measured with 300 viewers (docs/BENCHMARKS.md, "Live viewers"). Control
events, such as a run going private, still travel over the channel layer to each consumer.

When Redis goes away the hub keeps its viewers and subscribes again once Redis is back;
what was published meanwhile is lost, as frames are latest-only anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

import redis.asyncio as aioredis
from django.conf import settings

from visualizer.socket_writer import StreamMessage

log = logging.getLogger(__name__)

# Subscribed for as long as the hub runs, so the connection always has a subscription to
# listen on, even between viewers.
IDLE_CHANNEL = "tetris:stream:-"
RECONNECT_DELAYS_S = (0.25, 0.5, 1.0, 2.0, 4.0)


def stream_channel(group: str) -> str:
    """The Redis pub/sub channel that carries a group's messages to the web processes."""
    return f"tetris:stream:{group}"


class Viewer(Protocol):
    """What the hub hands messages to: one WebSocket consumer."""

    async def relay(self, message: StreamMessage) -> None: ...


class Hub:
    """This process's viewers by group, and the one subscription that feeds them."""

    def __init__(self) -> None:
        self.viewers: dict[str, dict[Viewer, None]] = {}  # channel -> viewers, in join order
        self.relayed = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: asyncio.Task | None = None
        self._pubsub: aioredis.client.PubSub | None = None

    def _ensure_reader(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): nothing of the old one works
            self.viewers, self._loop, self._reader, self._pubsub = {}, loop, None, None
        if self._reader is None or self._reader.done():
            self._reader = loop.create_task(self._read_forever(), name="stream-hub")

    async def join(self, group: str, viewer: Viewer) -> None:
        """Start handing the group's messages to `viewer`."""
        self._ensure_reader()
        channel = stream_channel(group)
        first = channel not in self.viewers
        self.viewers.setdefault(channel, {})[viewer] = None
        if first and self._pubsub is not None:
            try:
                await self._pubsub.subscribe(channel)
            except (aioredis.RedisError, OSError) as error:
                # The reader notices the broken connection and subscribes again to every
                # channel that has viewers then, this one included.
                log.warning("could not subscribe to %s yet: %s", channel, error)

    async def leave(self, group: str, viewer: Viewer) -> None:
        """Stop handing the group's messages to `viewer`."""
        channel = stream_channel(group)
        viewers = self.viewers.get(channel, {})
        viewers.pop(viewer, None)
        if not viewers and self.viewers.pop(channel, None) is not None and self._pubsub:
            with contextlib.suppress(aioredis.RedisError, OSError):
                await self._pubsub.unsubscribe(channel)

    async def _read_forever(self) -> None:
        failures = 0
        while True:
            client = aioredis.Redis.from_url(settings.REDIS_URL)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                channels = list(self.viewers)
                await pubsub.subscribe(IDLE_CHANNEL, *channels)
                self._pubsub = pubsub  # from now on, joins subscribe by themselves
                if joined_meanwhile := [c for c in self.viewers if c not in channels]:
                    await pubsub.subscribe(*joined_meanwhile)
                if failures:
                    log.info("stream hub subscribed again after %d failed attempts", failures)
                failures = 0
                async for message in pubsub.listen():
                    await self._relay(
                        message["channel"].decode(), StreamMessage.from_bytes(message["data"])
                    )
            except (aioredis.RedisError, OSError) as error:
                delay = RECONNECT_DELAYS_S[min(failures, len(RECONNECT_DELAYS_S) - 1)]
                if not failures:
                    log.warning("stream hub lost Redis (%s); subscribing again", error)
                failures += 1
                await asyncio.sleep(delay)
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                    await client.aclose()

    async def _relay(self, channel: str, message: StreamMessage) -> None:
        for viewer in list(self.viewers.get(channel, ())):
            try:
                await viewer.relay(message)
            except Exception:  # one broken socket must not starve the others
                log.exception("could not relay a message to a viewer")
        self.relayed += 1


hub = Hub()
