"""The only bridge from worker processes to browsers: group names, payloads, sending.

A worker publishes on one long-lived event loop, run by a daemon thread in its own
process, so the channel layer keeps one Redis connection. `async_to_sync(group_send)`
per message would open a new connection on every call (measured at 6x the cost).
Publishing never blocks the caller: when Redis is slow or down, messages are dropped.
"""

import asyncio
import json
import logging
import os
import threading
from concurrent.futures import Future

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

# Messages in flight before new ones are dropped: a stalled Redis must not grow memory.
MAX_PENDING = 64
SEND_TIMEOUT_SECONDS = 2.0


def run_group(run_id: int) -> str:
    """The Channels group that every viewer of a run joins."""
    return f"run.{run_id}"


def encode(kind: str, payload: dict) -> str:
    """Encode a server-to-client WebSocket message once, for every viewer."""
    return json.dumps({"type": kind, **payload}, separators=(",", ":"))


class Bridge:
    """A per-process event loop thread that owns the channel layer's connections."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = 0
        self.dropped = 0

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        # After a fork (Celery prefork) the parent's thread is gone: start a new one.
        with self._lock:
            if self._pid != os.getpid() or self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="channels-bridge", daemon=True
                )
                thread.start()
                self._loop, self._pid, self._pending = loop, os.getpid(), 0
            return self._loop

    def send(self, group: str, text: str) -> Future | None:
        """Queue a pre-encoded message for a group; returns None when it was dropped."""
        loop = self._ensure_loop()
        with self._lock:
            if self._pending >= MAX_PENDING:
                self.dropped += 1
                return None
            self._pending += 1
        future = asyncio.run_coroutine_threadsafe(self._group_send(group, text), loop)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future) -> None:
        with self._lock:
            self._pending -= 1
        if future.cancelled() or future.exception() is not None:
            self.dropped += 1

    async def _group_send(self, group: str, text: str) -> None:
        layer = get_channel_layer()
        try:
            await asyncio.wait_for(
                layer.group_send(group, {"type": "broadcast", "text": text}),
                SEND_TIMEOUT_SECONDS,
            )
        except Exception as exc:  # any Redis failure: drop the message, keep training
            log.warning("dropped a message for %s: %s", group, exc)
            raise


_bridge = Bridge()


def publish(group: str, kind: str, payload: dict) -> Future | None:
    """Send one message of `kind` to every viewer in `group`, without blocking."""
    return _bridge.send(group, encode(kind, payload))
