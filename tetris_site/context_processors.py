"""Template context shared by every page."""

from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict:
    """Flags that change what the pages offer."""
    return {"allow_signup": settings.ALLOW_SIGNUP}
