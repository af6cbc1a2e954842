"""Sign-in, throttled per address too, and self sign-up when ALLOW_SIGNUP is on.

django-axes locks a username at one address after AXES_FAILURE_LIMIT failures. That
alone lets one address try one password on every account (password spraying), so an
address with SIGN_IN_FAILURES_PER_ADDRESS failures, over all usernames, within
AXES_COOLOFF_TIME is refused any sign-in until they age out. Sign-ups are limited to
SIGNUPS_PER_ADDRESS_PER_HOUR per address, counted in Redis across web processes.
"""

import logging

import redis
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.views import LoginView
from django.db.models import Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from tetris_site.client_ip import client_ip

log = logging.getLogger(__name__)


def address_failures(address: str | None) -> int:
    """Failed sign-ins from `address`, over all usernames, within the cool-off time."""
    if not address:
        return 0
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    recent = AccessAttempt.objects.filter(ip_address=address, attempt_time__gte=since)
    return recent.aggregate(total=Sum("failures_since_start"))["total"] or 0


def _refused(request: HttpRequest, title: str, message: str, status: int) -> HttpResponse:
    context = {"title": title, "message": message}
    return render(request, "registration/refused.html", context, status=status)


class SignInView(LoginView):
    """Django's sign-in, refused to an address that failed too often (any usernames)."""

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        limit = settings.SIGN_IN_FAILURES_PER_ADDRESS
        if limit and address_failures(client_ip(request)) >= limit:
            return _refused(
                request,
                "Too many failed sign-ins",
                "Too many sign-ins failed from your address lately, for several accounts. "
                "Try again later.",
                429,
            )
        return super().post(request, *args, **kwargs)


def _count_signup(address: str | None) -> int:
    """Count one sign-up from `address` this hour; the count so far, this one included."""
    key = f"tetris:signups:{address or 'unknown'}"
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
    with client.pipeline() as pipe:
        pipe.set(key, 0, ex=3600, nx=True)  # the hour starts at the first sign-up
        pipe.incr(key)
        _, count = pipe.execute()
    return int(count)


@login_not_required
def signup(request: HttpRequest) -> HttpResponse:
    """Create an account and sign in; a 404 unless ALLOW_SIGNUP=1, a 429 past the
    address's sign-ups this hour."""
    if not settings.ALLOW_SIGNUP:
        raise Http404("sign-up is turned off on this installation")
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        limit = settings.SIGNUPS_PER_ADDRESS_PER_HOUR
        try:
            too_many = bool(limit) and _count_signup(client_ip(request)) > limit
        except redis.RedisError:
            log.exception("sign-up refused: its throttle cannot reach Redis")
            return _refused(request, "Sign-up is unavailable", "Try again in a moment.", status=503)
        if too_many:
            return _refused(
                request,
                "Too many sign-ups",
                f"At most {limit} accounts may be created from one address in an hour. "
                "Try again later.",
                429,
            )
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("/")
    return render(request, "registration/signup.html", {"form": form})
