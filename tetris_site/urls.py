"""URL routes: pages, sign-in, admin and the JSON API."""

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path

from tetris_site.accounts import SignInView, signup
from tetris_site.api import api


def api_not_found(request: HttpRequest, rest: str) -> JsonResponse:
    """Unknown API paths answer in JSON, like the rest of the API."""
    return JsonResponse({"error": f"no API endpoint at /api/{rest}"}, status=404)


urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/signup/", signup, name="signup"),
    path("accounts/login/", SignInView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", api.urls),
    re_path(r"^api/(?P<rest>.*)$", api_not_found),
    path("", include("trainer.urls")),
    path("", include("visualizer.urls")),
]
