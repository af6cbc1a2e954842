"""Project middleware."""

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.http import HttpRequest, HttpResponse, JsonResponse


class ContentSecurityPolicyMiddleware:
    """Every response says where its page may load code, styles and connections from:
    this site only (settings.CONTENT_SECURITY_POLICY), so an injected script cannot run
    and a page cannot be framed elsewhere."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response


class PagesLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Require sign-in for every page; the JSON API answers 401 itself instead of redirecting."""

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable,
        view_args: list,
        view_kwargs: dict,
    ) -> HttpResponse | None:
        if request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


class ApiMethodNotAllowedMiddleware:
    """The API's 405 in JSON like its other errors, naming the methods the path takes.

    django-ninja answers a wrong method with the plain text "Method not allowed".
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code != 405 or not request.path_info.startswith("/api/"):
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        allowed = response.get("Allow", "")
        message = f"{request.method} is not allowed here; use {allowed or 'another method'}"
        answer = JsonResponse({"error": message}, status=405)
        if allowed:
            answer["Allow"] = allowed
        return answer
