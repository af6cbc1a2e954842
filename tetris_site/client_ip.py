"""The address a request came from, as the sign-in lockout counts it.

Behind a proxy every request comes from the proxy's address: a lockout by username and
address would then lock an account for everyone, and anyone could lock anyone out. With
TRUSTED_PROXIES = n, the address is the one the outermost of our n proxies saw, the n-th
entry of X-Forwarded-For from the right (nginx appends the address it was connected
from); the entries to its left are the client's to write, and never trusted.
"""

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or with trusted proxies, what the outermost saw."""
    proxies = settings.TRUSTED_PROXIES
    remote = request.META.get("REMOTE_ADDR")
    if proxies <= 0:
        return remote
    forwarded = [
        part.strip()
        for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        if part.strip()
    ]
    return forwarded[-proxies] if len(forwarded) >= proxies else remote
