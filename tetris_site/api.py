"""The JSON API (django-ninja), with its OpenAPI schema at /api/openapi.json.

Errors always carry words: 400 `{"errors": {field: message}}` for bad input, and
`{"error": message}` for 403, 404, 405 (tetris_site.middleware), 409, 413, 429 (a
per-user cap) and 503 (the task queue is down: nothing was created or changed).
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import ValidationError
from ninja.security import django_auth

from tetris_site import health
from trainer.api import router as runs_router
from trainer.experiments import ExperimentNotFound
from trainer.models import InvalidTransition
from trainer.queues import QueueUnavailable
from trainer.rl.config import ConfigError
from trainer.selectors import NotAllowed, RunNotFound
from trainer.services import LimitReached

api = NinjaAPI(
    title="Tetris Trainer API",
    version="1",
    auth=django_auth,
    openapi_url="/openapi.json",
    docs_url="/docs",
)
api.add_router("/", runs_router)
api.add_router("/", "trainer.compare_api.router")
api.add_router("/", "trainer.experiment_api.router")


@api.get("/status", auth=None, tags=["health"])
def status(request: HttpRequest) -> dict:
    """Health check: workers alive and runs by status (public, names no runs)."""
    return health.status()


def _field_name(location: tuple) -> str:
    # ("body", "body", "config") -> "config"; the request part and schema name add nothing.
    parts = [str(part) for part in location if part not in {"body", "query", "path"}]
    return ".".join(parts) or "body"


@api.exception_handler(ValidationError)
def bad_input(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = {_field_name(tuple(e.get("loc", ()))): e.get("msg", "invalid") for e in exc.errors}
    return api.create_response(request, {"errors": errors}, status=400)


@api.exception_handler(ConfigError)
def bad_config(request: HttpRequest, exc: ConfigError) -> HttpResponse:
    return api.create_response(request, {"errors": exc.errors}, status=400)


@api.exception_handler(RunNotFound)
@api.exception_handler(ExperimentNotFound)
def not_found(request: HttpRequest, exc: RunNotFound | ExperimentNotFound) -> HttpResponse:
    return api.create_response(request, {"error": str(exc)}, status=404)


@api.exception_handler(NotAllowed)
def not_allowed(request: HttpRequest, exc: NotAllowed) -> HttpResponse:
    return api.create_response(request, {"error": str(exc)}, status=403)


@api.exception_handler(InvalidTransition)
def conflict(request: HttpRequest, exc: InvalidTransition) -> HttpResponse:
    return api.create_response(request, {"error": str(exc)}, status=409)


@api.exception_handler(RequestDataTooBig)
def too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    # Django's own answer is an HTML page; an API client needs to read why.
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    message = f"the request body is larger than the {limit:,} bytes allowed"
    return api.create_response(request, {"error": message}, status=413)


@api.exception_handler(LimitReached)
def too_many(request: HttpRequest, exc: LimitReached) -> HttpResponse:
    return api.create_response(request, {"error": str(exc)}, status=429)


@api.exception_handler(QueueUnavailable)
def queue_down(request: HttpRequest, exc: QueueUnavailable) -> HttpResponse:
    message = "the task queue is unavailable: nothing was queued; try again in a moment"
    response = api.create_response(request, {"error": message}, status=503)
    response["Retry-After"] = "10"
    return response
