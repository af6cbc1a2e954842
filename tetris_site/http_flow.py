"""Flow control for daphne's HTTP responses: a slow client holds back the response, not
daphne's memory.

daphne writes every `http.response.body` message it is sent into Twisted's transport at
once, and nothing tells the application that the client has not taken the last ones yet:
a client reading a streamed export or a checkpoint slowly has the rest of it piled up in
daphne's memory (two clients at 2 MB/s reading 400,000-row exports grew daphne by 50 MB
as CSV, 251 MB as JSON; paced, by 10 and 11 MB: docs/BENCHMARKS.md "Exports: daphne's
memory"). The same process serves every WebSocket, so its memory must not follow the
slowest reader.

Twisted has the flow control that daphne leaves out: a push producer registered on a
request is paused when the transport holds more than its buffer size (64 KiB) unsent,
and resumed once the kernel has taken it. Here each response that comes in several
parts gets such a producer, a `ResponseGate`, and after handing daphne each part the
application waits until the gate is open: daphne holds at most a part and 64 KiB of a
download that its client has not taken, however slowly it is read. A client that goes
away opens the gate (Twisted stops the producer; Django also hears `http.disconnect` and
cancels the response).

The request is found through a private detail: daphne passes the HTTP `send` as
`partial(server.handle_reply, request)`, `request` its `twisted.web.http.Request`
(visualizer/socket_writer.py relies on the same for WebSockets). So responses are paced
only with the TESTED_VERSIONS of daphne and Twisted, and only when the application runs
on Twisted's reactor thread (daphne runs asyncio on the reactor, so Twisted calls the
gate on the thread of the event loop that waits on it). Otherwise, or if Twisted refuses
the producer, the process logs one warning line and sends responses as before: an
upgrade can cost memory, never a download.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version

from twisted.internet.interfaces import IPushProducer
from twisted.python import threadable
from twisted.web import http
from zope.interface import implementer

log = logging.getLogger(__name__)

Send = Callable[[dict], Awaitable[None]]

# The versions the pacing was checked against (tests/tetris_site/test_http_flow.py).
TESTED_VERSIONS = {
    "daphne": ("4.2.3",),
    "Twisted": ("26.10.0",),
}
# daphne's reply handler, the function its HTTP `send` is a partial of.
DAPHNE_REPLY = "handle_reply"


class Pacing:
    """Whether this process paces its HTTP responses: decided on its first request, and
    turned off (never on again) when Twisted refuses a producer."""

    def __init__(self) -> None:
        self.on: bool | None = None

    def decide(self, request: http.Request | None) -> bool:
        """Check once, on the first request, that responses can be paced here."""
        if self.on is None:
            reason = _unsupported(request)
            self.on = not reason
            if reason:
                log.warning("%s: HTTP responses are not paced to their clients", reason)
            else:
                log.info("HTTP responses are paced to their clients")
        return self.on

    def turn_off(self, reason: str) -> None:
        """Send every later response unpaced, for the whole process."""
        if self.on:
            self.on = False
            log.warning("%s: HTTP responses are no longer paced to their clients", reason)


pacing = Pacing()


def _unsupported(request: http.Request | None) -> str:
    """Why responses cannot be paced here; empty if they can."""
    if request is None:
        return "the ASGI server is not daphne"
    for package, tested in TESTED_VERSIONS.items():
        try:
            installed = version(package)
        except PackageNotFoundError:
            installed = "none"
        if installed not in tested:
            return f"{package} {installed} is not a version HTTP flow control was tested with"
    if not threadable.isInIOThread():
        return "the application does not run on Twisted's reactor thread"
    return ""


def daphne_request(send: object) -> http.Request | None:
    """The Twisted request behind daphne's HTTP `send`, if it is one."""
    if not isinstance(send, functools.partial) or len(send.args) != 1 or send.keywords:
        return None
    request = send.args[0]
    if getattr(send.func, "__name__", "") != DAPHNE_REPLY or not isinstance(request, http.Request):
        return None
    return request


@implementer(IPushProducer)
class ResponseGate:
    """One response's producer on its Twisted request: closed while the transport holds
    more than it should of what the client has not read.

    Twisted calls pauseProducing, resumeProducing and stopProducing on its reactor thread,
    which is the event loop's thread here (checked by `Pacing.decide`).
    """

    def __init__(self, request: http.Request, send: Send) -> None:
        self.request = request
        self.daphne_send = send
        self.open = asyncio.Event()
        self.open.set()
        self.registered = False

    def pauseProducing(self) -> None:
        """Twisted's buffer for this client is full."""
        self.open.clear()

    def resumeProducing(self) -> None:
        """Twisted's buffer for this client is empty again."""
        self.open.set()

    def stopProducing(self) -> None:
        """The connection is gone: let the response run to its end (daphne drops it)."""
        self.open.set()

    async def send(self, message: dict) -> None:
        """Hand daphne the message; after a part of a body, wait until the client took it."""
        body = message["type"] == "http.response.body"
        more = body and message.get("more_body", False)
        if more:
            self.register()
        elif body:
            # Before the last part: Twisted finishes the request on it and wants no producer.
            self.unregister()
        await self.daphne_send(message)
        if more and self.registered:
            await self.open.wait()

    def register(self) -> None:
        """Become the request's producer, once, unless it has one or is gone."""
        if self.registered or not pacing.on:
            return
        request = self.request
        if request.channel is None or request.producer is not None:
            return
        try:
            request.registerProducer(self, True)
            self.registered = True
        except Exception as error:  # a changed Twisted: unpaced, never a broken download
            pacing.turn_off(f"registering a producer failed ({type(error).__name__}: {error})")

    def unregister(self) -> None:
        """Stop being the request's producer (a lost connection dropped it already)."""
        if not self.registered:
            return
        self.registered = False
        request = self.request
        if request.channel is not None and request.producer is self:
            request.unregisterProducer()


class FlowControlMiddleware:
    """ASGI middleware on the HTTP route: each response goes out no faster than its client
    reads it, under daphne (a pass-through elsewhere)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: object, send: Send) -> None:
        request = daphne_request(send) if scope["type"] == "http" else None
        if scope["type"] != "http" or not pacing.decide(request):
            await self.app(scope, receive, send)
            return
        gate = ResponseGate(request, send)
        try:
            await self.app(scope, receive, gate.send)
        finally:
            gate.unregister()
