"""The web side of the live stream: one Redis subscription per web process.

The bridge (live/bridge.py) PUBLISHes each message once, in its envelope, on the Redis
channel of its group. Each web process subscribes once to the groups that its sockets
watch, reads every message once, and hands the same envelope to each of its viewers of
that group (which frame it once for all of them, visualizer/socket_writer.py). The
Channels consumer pattern would instead queue, wake, decode and dispatch every message
once per viewer: 26 us of CPU per viewer per message against 1.5 us here, measured with
300 viewers (docs/BENCHMARKS.md, "Live viewers"). Control events, such as a run going
private, come the same way, for the consumers to act on.

When Redis goes away the hub keeps its viewers and subscribes again once Redis is back;
what was published meanwhile is lost, as frames are latest-only anyway.

The hub also counts each user's open sockets across web processes (`count_socket`), in a
Redis sorted set of socket ids scored by when their process last said they were open: a
crashed process's sockets stop counting within SOCKETS_TTL_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

import redis.asyncio as aioredis
from django.conf import settings

from live.names import IDLE_CHANNEL, last_frame_key, overlay_key, sockets_key, stream_channel
from live.protocol import Envelope

log = logging.getLogger(__name__)

RECONNECT_DELAYS_S = (0.25, 0.5, 1.0, 2.0, 4.0)
READ_TIMEOUT_SECONDS = 2.0
# While a viewer has the overlay on, its group's overlay key is set again this often, and
# lives this long: a crashed web process's overlays end by themselves.
OPTIONS_REFRESH_SECONDS = 2.0
OPTIONS_TTL_SECONDS = 6
# Each open socket is marked open again this often; one not marked for SOCKETS_TTL_SECONDS
# (its process is gone) no longer counts.
SOCKETS_REFRESH_SECONDS = 10.0
SOCKETS_TTL_SECONDS = 45


class Viewer(Protocol):
    """What the hub hands messages to: one WebSocket consumer."""

    async def relay(self, message: Envelope) -> None: ...


class Hub:
    """This process's viewers by group, and the one subscription that feeds them."""

    def __init__(self) -> None:
        self.viewers: dict[str, dict[Viewer, None]] = {}  # channel -> viewers, in join order
        self.relayed = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: asyncio.Task | None = None
        self._pubsub: aioredis.client.PubSub | None = None
        self.options: dict[str, set[Viewer]] = {}  # group -> viewers with the overlay on
        self._options_keeper: asyncio.Task | None = None
        self.sockets: dict[str, str] = {}  # socket id -> its owner, for sockets_key(owner)
        self._sockets_keeper: asyncio.Task | None = None

    def _ensure_reader(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): nothing of the old one works
            self.viewers, self._loop, self._reader, self._pubsub = {}, loop, None, None
            self.options, self._options_keeper = {}, None
            self.sockets, self._sockets_keeper = {}, None
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
        self._drop_options(group, viewer)
        if not viewers and self.viewers.pop(channel, None) is not None and self._pubsub:
            with contextlib.suppress(aioredis.RedisError, OSError):
                await self._pubsub.unsubscribe(channel)

    async def want_options(self, group: str, viewer: Viewer, on: bool) -> None:
        """Turn the overlay on or off for one viewer: the group's worker adds the policy's
        options to its frames while any viewer, in any web process, has it on."""
        if not on:
            self._drop_options(group, viewer)
            return
        self._ensure_reader()
        first = group not in self.options
        self.options.setdefault(group, set()).add(viewer)
        if first:
            await self._mark_options_wanted([group])
        if self._options_keeper is None or self._options_keeper.done():
            self._options_keeper = asyncio.get_running_loop().create_task(
                self._keep_options_wanted(), name="stream-hub-options"
            )

    def _drop_options(self, group: str, viewer: Viewer) -> None:
        # The key is left to expire: another web process may still want the options.
        viewers = self.options.get(group)
        if viewers is not None:
            viewers.discard(viewer)
            if not viewers:
                del self.options[group]

    async def _keep_options_wanted(self) -> None:
        while self.options:
            await asyncio.sleep(OPTIONS_REFRESH_SECONDS)
            await self._mark_options_wanted(list(self.options))

    async def _mark_options_wanted(self, groups: list[str]) -> None:
        try:
            async with _client().pipeline(transaction=False) as pipe:
                for group in groups:
                    pipe.set(overlay_key(group), b"1", ex=OPTIONS_TTL_SECONDS)
                await pipe.execute()
        except (aioredis.RedisError, OSError) as error:  # tried again at the next refresh
            log.warning("could not mark the overlay wanted: %s", error)

    async def count_socket(self, owner: str, socket: str) -> int | None:
        """Count one more open socket for `owner`, in every web process: how many it has
        open now, this one included (None if Redis cannot tell; the socket is let in)."""
        self._ensure_reader()
        self.sockets[socket] = owner
        if self._sockets_keeper is None or self._sockets_keeper.done():
            self._sockets_keeper = asyncio.get_running_loop().create_task(
                self._keep_sockets_counted(), name="stream-hub-sockets"
            )
        key, now = sockets_key(owner), time.time()
        try:
            async with _client().pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(key, "-inf", now - SOCKETS_TTL_SECONDS)
                pipe.zadd(key, {socket: now})
                pipe.zcard(key)
                pipe.expire(key, SOCKETS_TTL_SECONDS)
                _, _, count, _ = await pipe.execute()
        except (aioredis.RedisError, OSError) as error:
            log.warning("could not count the sockets of %s: %s", owner, error)
            return None
        return count

    async def uncount_socket(self, socket: str) -> None:
        """The socket is closed (again is harmless)."""
        owner = self.sockets.pop(socket, None)
        if owner is not None:
            with contextlib.suppress(aioredis.RedisError, OSError):
                await _client().zrem(sockets_key(owner), socket)

    async def _keep_sockets_counted(self) -> None:
        while self.sockets:
            await asyncio.sleep(SOCKETS_REFRESH_SECONDS)
            now = time.time()
            try:
                async with _client().pipeline(transaction=False) as pipe:
                    for socket, owner in list(self.sockets.items()):
                        pipe.zadd(sockets_key(owner), {socket: now})
                        pipe.expire(sockets_key(owner), SOCKETS_TTL_SECONDS)
                    await pipe.execute()
            except (aioredis.RedisError, OSError) as error:  # tried again at the next refresh
                log.warning("could not mark the open sockets open: %s", error)

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
                    await self._relay(message["channel"].decode(), message["data"])
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

    async def _relay(self, channel: str, data: bytes) -> None:
        try:
            message = Envelope.from_bytes(data)
        except ValueError:  # not from our bridge (UnicodeDecodeError included): skip it
            log.warning("skipped a message on %s that is not an envelope", channel)
            return
        for viewer in list(self.viewers.get(channel, ())):
            try:
                await viewer.relay(message)
            except Exception:  # one broken socket must not starve the others
                log.exception("could not relay a message to a viewer")
        self.relayed += 1


hub = Hub()


_redis_client: tuple[asyncio.AbstractEventLoop, aioredis.Redis] | None = None


def _client() -> aioredis.Redis:
    # One client (and connection pool) per event loop: a snapshot costs one GET, not a
    # new connection (300 viewers open a run at once in the fan-out benchmark).
    global _redis_client
    loop = asyncio.get_running_loop()
    if _redis_client is None or _redis_client[0] is not loop:
        client = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=READ_TIMEOUT_SECONDS)
        _redis_client = (loop, client)
    return _redis_client[1]


async def last_frame(group: str) -> Envelope | None:
    """The group's last frame as published (None if none, or Redis is down)."""
    try:
        data = await _client().get(last_frame_key(group))
        return Envelope.from_bytes(data) if data else None
    except (aioredis.RedisError, OSError, ValueError):
        return None
