"""Writing one stream message to many WebSocket viewers of one daphne, cheaply: a plugin.

Each published frame goes to every viewer of its run in this process. Through the ASGI
`send` path, each copy is handed down Channels' session wrapper, daphne's reply handler
and autobahn's framing, then buffered by Twisted, which registers the socket with the
event loop, waits for it to be writable, writes it and unregisters it: about 40 us of CPU
per viewer per message, most of daphne's cost at 100 viewers (profiled with py-spy,
docs/BENCHMARKS.md "Live viewers"). Here a message is framed once for every socket
(autobahn's prepared messages, its documented broadcast API), and written in one of
three ways, the process's `mode`:

- `direct`: straight to each socket whose Twisted buffer is empty, a single `send`
  call; a socket that is busy or compressing takes the frame through autobahn and
  Twisted as before, so the bytes of one socket always leave in the order they were
  written. This needs the private names in PRIVATE_NAMES, so it is used only with the
  versions in TESTED_VERSIONS, after a probe of the first socket finds every name.
- `prepared`: autobahn's public `sendPreparedMessage` for each socket.
- `asgi`: consumers send through the ASGI `send`.

The setting SOCKET_WRITES picks the mode to start with. Any unexpected error moves the
whole process one mode down, with one log line, and the message goes out that way: an
upgrade of daphne, Twisted or autobahn can cost speed, never a frozen board.

In every mode the writer also tells how many bytes Twisted holds for its socket, unsent
(`backlog`): a reader that does not keep up is skipped boards, then closed
(visualizer/delivery.py), instead of growing daphne's memory without bound. Twisted has
no public name for it, so it is read only with the TESTED_VERSIONS, after the probe.
Everything here runs on daphne's one event loop thread, as Twisted's own writes do.
"""

from __future__ import annotations

import functools
import logging
from importlib.metadata import PackageNotFoundError, version

from autobahn.websocket.protocol import PreparedMessage, WebSocketProtocol
from django.conf import settings
from twisted.internet import tcp
from twisted.internet.interfaces import ISSLTransport

from live.protocol import Envelope

log = logging.getLogger(__name__)

SCOPE_KEY = "tetris.socket_writer"
MODES = ("direct", "prepared", "asgi")

# The versions the direct mode was checked against (tests/visualizer/test_socket_writer.py).
TESTED_VERSIONS = {
    "daphne": ("4.2.3",),
    "Twisted": ("26.10.0",),
    "autobahn": ("26.11.1",),
}
# Every private or undocumented name the direct mode reads, by the object it is read on.
# daphne also passes a WebSocket's ASGI `send` as `partial(server.handle_reply, protocol)`,
# which is how `writer_for` finds the protocol.
PRIVATE_NAMES = {
    "protocol": ("_perMessageCompress", "send_queue"),
    "prepared": ("payloadHybi",),
    "transport": (
        "socket",
        "TLS",
        "_writeDisconnected",
        "dataBuffer",
        "_tempDataBuffer",
        "offset",
        "_tempDataLen",
    ),
}
# The documented names read on the same objects.
PUBLIC_NAMES = {
    "protocol": ("state", "transport", "sendPreparedMessage", "STATE_OPEN"),
    "prepared": (),
    "transport": ("connected", "disconnecting", "write"),
}


class Writes:
    """This process's mode, moved down (never up) when something fails."""

    def __init__(self) -> None:
        self.mode: str | None = None  # read from the settings on first use
        self.probed = False
        self.announced = False
        # Whether Twisted's buffers can be read here: the probe's verdict, until a read fails.
        self.buffers_readable = False

    def current(self) -> str:
        """The mode now."""
        if self.mode is None:
            self.mode = settings.SOCKET_WRITES
        return self.mode

    def announce(self, *, daphne_socket: bool) -> None:
        """Log once per process which way this server's frames go."""
        if not self.announced:
            self.announced = True
            way = _WAYS[self.current()] if daphne_socket else _WAYS["asgi"]
            log.info("live stream frames go %s", way)

    def fall_back(self, reason: str) -> None:
        """Move to the next mode down, for the whole process."""
        mode = self.current()
        if mode == "asgi":
            return
        self.mode = MODES[MODES.index(mode) + 1]
        log.warning("%s: live stream frames now go %s", reason, _WAYS[self.mode])

    def probe(self, protocol: WebSocketProtocol) -> None:
        """Check once, on the first socket, that direct writes and backlogs can work here."""
        if self.probed:
            return
        self.probed = True
        mode, reason = self.current(), _unsupported(protocol)
        self.buffers_readable = not reason
        if reason and mode == "direct":
            self.fall_back(reason)
        if reason:
            log.warning("%s: slow live viewers are not detected", reason)

    def cannot_read_buffers(self, reason: str) -> None:
        """Stop reading Twisted's buffers, for the whole process."""
        if self.buffers_readable:
            self.buffers_readable = False
            log.warning("%s: slow live viewers are no longer detected", reason)


_WAYS = {
    "direct": "straight to daphne's sockets",
    "prepared": "through autobahn's sendPreparedMessage",
    "asgi": "through ASGI send",
}
writes = Writes()


def _unsupported(protocol: WebSocketProtocol) -> str:
    """Why the direct mode cannot be used with this protocol; empty if it can."""
    for package, tested in TESTED_VERSIONS.items():
        try:
            installed = version(package)
        except PackageNotFoundError:
            installed = "none"
        if installed not in tested:
            return f"{package} {installed} is not a version the direct writes were tested with"
    objects = {
        "protocol": protocol,
        "prepared": PreparedMessage(b"", False, False, False),
        "transport": protocol.transport,
    }
    for owner, names in PRIVATE_NAMES.items():
        missing = [name for name in names if not hasattr(objects[owner], name)]
        if missing:
            return f"{owner} lacks {', '.join(missing)}"
    return ""


_last_prepared: tuple[Envelope, PreparedMessage] | None = None


def prepared_frame(message: Envelope) -> PreparedMessage:
    """The message framed once, for every socket it goes to (the hub hands the same
    envelope to each viewer in turn)."""
    global _last_prepared
    if _last_prepared is None or _last_prepared[0] is not message:
        _last_prepared = (message, PreparedMessage(message.text.encode(), False, False, False))
    return _last_prepared[1]


class SocketWriter:
    """Writes prepared frames to one daphne WebSocket connection."""

    def __init__(self, protocol: WebSocketProtocol) -> None:
        self.protocol = protocol
        self.direct_writes = 0

    def write(self, message: Envelope) -> bool:
        """Send the message's frame now, or queue it behind what the socket already holds.
        False if it must go through ASGI instead."""
        mode = writes.current()
        try:
            if mode == "direct":
                self._write_direct(message)
                return True
        except Exception as error:  # a changed library: slower, never broken
            writes.fall_back(f"direct socket write failed ({type(error).__name__}: {error})")
        if writes.current() == "prepared":
            try:
                self._write_prepared(message)
                return True
            except Exception as error:
                writes.fall_back(f"sendPreparedMessage failed ({type(error).__name__}: {error})")
        return False

    def backlog(self) -> int | None:
        """Bytes of this socket's messages that Twisted holds, not yet taken by the kernel:
        how far behind its reader is (None where that cannot be read)."""
        if not writes.buffers_readable:
            return None
        transport = self.protocol.transport
        try:
            return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
        except Exception as error:  # a changed Twisted: no detection, never a crash
            writes.cannot_read_buffers(f"reading a socket's backlog failed ({error!r})")
            return None

    def _write_prepared(self, message: Envelope) -> None:
        protocol = self.protocol
        if protocol.state == WebSocketProtocol.STATE_OPEN:
            protocol.sendPreparedMessage(prepared_frame(message))

    def _write_direct(self, message: Envelope) -> None:
        protocol = self.protocol
        if protocol.state != WebSocketProtocol.STATE_OPEN:
            return  # closing or closed: autobahn drops sends then too
        transport = protocol.transport
        prepared = prepared_frame(message)
        if (
            protocol._perMessageCompress is not None
            or protocol.send_queue
            or not _is_idle_plain_tcp(transport)
        ):
            protocol.sendPreparedMessage(prepared)
            return
        data = prepared.payloadHybi
        try:
            sent = transport.socket.send(data)
            self.direct_writes += 1
        except OSError:
            # Full (EAGAIN) or broken: Twisted writes it when it can, or finds the broken
            # connection on its own write and closes the socket.
            sent = 0
        if sent < len(data):
            transport.write(data[sent:])


def _is_idle_plain_tcp(transport: tcp.Server) -> bool:
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

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        writer = writer_for(send)
        if writer is not None:
            writes.probe(writer.protocol)
            scope = {**scope, SCOPE_KEY: writer}
        writes.announce(daphne_socket=writer is not None)
        await self.inner(scope, receive, send)
