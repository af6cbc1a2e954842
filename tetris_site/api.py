"""The JSON API (django-ninja), with its OpenAPI schema at /api/openapi.json."""

from ninja import NinjaAPI
from ninja.security import django_auth

from tetris_site import health

api = NinjaAPI(
    title="Tetris Trainer API",
    version="1",
    auth=django_auth,
    openapi_url="/openapi.json",
    docs_url="/docs",
)


@api.get("/status", auth=None, tags=["health"])
def status(request) -> dict:
    """Health check: workers alive and runs by status (public, names no runs)."""
    return health.status()
