"""ASGI entry point for daphne: HTTP through Django, WebSockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tetris_site.settings")
# Django must be set up before the routing imports consumers (and through them, models).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from channels.sessions import CookieMiddleware, SessionMiddleware  # noqa: E402

from tetris_site.http_flow import FlowControlMiddleware  # noqa: E402
from visualizer.crowd import CrowdAuthMiddleware  # noqa: E402
from visualizer.routing import websocket_urlpatterns  # noqa: E402
from visualizer.socket_writer import SocketWriterMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Each response goes out no faster than its client reads it, so a slow download
        # does not pile up in daphne's memory (tetris_site/http_flow.py).
        "http": FlowControlMiddleware(django_asgi_app),
        # The writer outermost, so it sees daphne's own `send`: the live stream writes
        # frames straight to the sockets (visualizer/socket_writer.py). Inside, Channels'
        # AuthMiddlewareStack, except that a crowd of sockets is signed in together
        # (visualizer/crowd.py).
        "websocket": SocketWriterMiddleware(
            AllowedHostsOriginValidator(
                CookieMiddleware(
                    SessionMiddleware(CrowdAuthMiddleware(URLRouter(websocket_urlpatterns)))
                )
            )
        ),
    }
)
