"""A small WebSocket client for tests: signs in through a session cookie, reads JSON."""

import asyncio
import base64
import json
import os
import socket
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect


def session_and_run(username: str) -> tuple[str, int]:
    """A new user's session cookie and a run of theirs."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from trainer import services

    user = get_user_model().objects.create_user(username, password="pw-for-tests-1")
    run = services.run_create(owner=user, name=f"{username}'s run")
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value, run.pk


def ws_url(http_url: str, path: str) -> str:
    """The ws:// URL of `path` on the server at `http_url`."""
    return http_url.replace("http://", "ws://", 1) + path


async def open_socket(
    http_url: str,
    path: str,
    *,
    session: str | None = None,
    origin: str | None = None,
    **options: object,
) -> ClientConnection:
    """Connect like a browser on `origin` (default: the server itself) with a session.

    `options` go to websockets' `connect` (the fan-out benchmark turns keepalive pings off).
    """
    headers = {"Cookie": f"sessionid={session}"} if session else {}
    return await connect(
        ws_url(http_url, path),
        origin=origin or http_url,
        additional_headers=headers,
        **{"open_timeout": 10, **options},
    )


async def receive_json(socket: ClientConnection, timeout: float = 10) -> dict:
    """The next message, decoded."""
    return json.loads(await asyncio.wait_for(socket.recv(), timeout))


def never_reading_socket(http_url: str, path: str, session: str) -> socket.socket:
    """A WebSocket that is opened and then never read: a tiny receive window, and after
    the handshake's answer nothing is taken from it."""
    url = urlsplit(http_url)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(10)
    raw.connect((url.hostname, url.port))
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: {http_url}\r\nCookie: sessionid={session}\r\n\r\n".encode()
    )
    answer = b""
    while not answer.endswith(b"\r\n\r\n"):  # byte by byte: not one byte past the headers
        answer += raw.recv(1)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return raw
