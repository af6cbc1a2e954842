"""Writing one stream message to many WebSocket viewers of one daphne, cheaply.

Each published frame goes to every viewer of its run in this process. Through the ASGI
`send` path, each copy is handed down Channels' session wrapper, daphne's reply handler
and autobahn's framing, then buffered by Twisted, which registers the socket with the
event loop, waits for it to be writable, writes it and unregisters it: about 40 us of CPU
per viewer per message, most of daphne's cost at 100 viewers (profiled with py-spy,
docs/BENCHMARKS.md "Live viewers"). Here a message is framed once for every socket
(autobahn's prepared messages, its documented broadcast API) and written straight to
each socket whose Twisted buffer is empty, a single `send` call; a socket that is busy
or compressing takes the frame through autobahn and Twisted as before, so the bytes of
one socket always leave in the order they were written. Everything here runs on daphne's
one event loop thread, as Twisted's own writes do.

`SocketWriterMiddleware` finds daphne's protocol object behind a WebSocket's ASGI `send`
(daphne passes `partial(server.handle_reply, protocol)`) and puts a `SocketWriter` for it
in the scope. Under any other server, another daphne, TLS served by daphne itself, or
with the setting DIRECT_SOCKET_WRITES=0, the scope has none and consumers send through
ASGI.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

from autobahn.websocket.protocol import PreparedMessage, WebSocketProtocol
from django.conf import settings
from twisted.internet import tcp
from twisted.internet.interfaces import ISSLTransport

log = logging.getLogger(__name__)

SCOPE_KEY = "tetris.socket_writer"


@dataclass(frozen=True)
class StreamMessage:
    """One published message: its text for the ASGI path, and its frame, built once."""

    text: str
    frame: PreparedMessage = field(repr=False)

    @property
    def is_board_frame(self) -> bool:
        """Whether this is a `frame` message (a board), which the next one supersedes."""
        return self.text.startswith('{"type":"frame"')  # bridge.encode puts the type first

    @classmethod
    def from_bytes(cls, data: bytes) -> StreamMessage:
        """A message from the UTF-8 bytes the bridge published."""
        return cls(data.decode(), PreparedMessage(data, False, False, False))


class SocketWriter:
    """Writes prepared frames to one daphne WebSocket connection."""

    def __init__(self, protocol: WebSocketProtocol) -> None:
        self.protocol = protocol
        self.direct_writes = 0

    def write(self, message: StreamMessage) -> None:
        """Send the message's frame now, or queue it behind what the socket already holds."""
        protocol = self.protocol
        if protocol.state != WebSocketProtocol.STATE_OPEN:
            return  # closing or closed: autobahn drops sends then too
        transport = protocol.transport
        if (
            protocol._perMessageCompress is not None
            or protocol.send_queue
            or not _is_idle_plain_tcp(transport)
        ):
            protocol.sendPreparedMessage(message.frame)
            return
        data = message.frame.payloadHybi
        try:
            sent = transport.socket.send(data)
            self.direct_writes += 1
        except OSError:
            # Full (EAGAIN) or broken: Twisted writes it when it can, or finds the broken
            # connection on its own write and closes the socket.
            sent = 0
        if sent < len(data):
            transport.write(data[sent:])


def _is_idle_plain_tcp(transport: object) -> bool:
    """True for a connected, unencrypted Twisted TCP transport with nothing buffered."""
    return (
        getattr(transport, "TLS", True) is False
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
        and not transport.dataBuffer
        and not transport._tempDataBuffer
    )


def writer_for(send: object) -> SocketWriter | None:
    """The SocketWriter for daphne's WebSocket behind an ASGI `send`, if there is one.

    Only for a plain TCP connection: daphne serving TLS itself wraps the connection in a
    TLS protocol, which forwards attribute reads to the raw socket underneath, so looking
    for the attributes would find them and write clear text under the encryption.
    """
    if not isinstance(send, functools.partial) or len(send.args) != 1:
        return None
    protocol = send.args[0]
    transport = getattr(protocol, "transport", None)
    if not isinstance(protocol, WebSocketProtocol) or type(transport) is not tcp.Server:
        return None
    if ISSLTransport.providedBy(transport):
        return None
    return SocketWriter(protocol)


class SocketWriterMiddleware:
    """ASGI middleware, outermost on the WebSocket route: offers consumers a SocketWriter."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.logged = False

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        writer = writer_for(send) if settings.DIRECT_SOCKET_WRITES else None
        if not self.logged:  # once per process: which way this server's frames go
            self.logged = True
            way = "straight to daphne's sockets" if writer else "through ASGI send"
            log.info("live stream frames go %s", way)
        if writer is not None:
            scope = {**scope, SCOPE_KEY: writer}
        await self.inner(scope, receive, send)
