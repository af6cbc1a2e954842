"""The textbook consumer, for the fan-out benchmark only: `daphne bench.textbook_asgi:application`.

Each viewer's consumer joins the run's Channels group, as the Channels tutorial's do, and
relays every `broadcast` event the textbook publisher (bench/textbook_publisher.py) sends
it. Everything else is the project's own consumer and middleware.
"""

from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.urls import path

from live.names import run_group
from tetris_site.asgi import django_asgi_app
from visualizer.consumers import RunConsumer
from visualizer.crowd import CrowdAuthMiddleware


class TextbookRunConsumer(RunConsumer):
    """The run's viewer, also in the run's Channels group."""

    async def connect(self) -> None:
        run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        self.textbook_group = run_group(run_id)
        await self.channel_layer.group_add(self.textbook_group, self.channel_name)
        await super().connect()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.textbook_group, self.channel_name)

    async def broadcast(self, event: dict) -> None:
        """One message from the group, sent to this viewer."""
        await self.send(text_data=event["text"])


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            CookieMiddleware(
                SessionMiddleware(
                    CrowdAuthMiddleware(
                        URLRouter([path("ws/runs/<int:run_id>/", TextbookRunConsumer.as_asgi())])
                    )
                )
            )
        ),
    }
)
