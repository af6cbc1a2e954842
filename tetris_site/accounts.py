"""Self sign-up, when ALLOW_SIGNUP is on (off by default)."""

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import UserCreationForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render


@login_not_required
def signup(request: HttpRequest) -> HttpResponse:
    """Create an account and sign in; a 404 unless ALLOW_SIGNUP=1."""
    if not settings.ALLOW_SIGNUP:
        raise Http404("sign-up is turned off on this installation")
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("/")
    return render(request, "registration/signup.html", {"form": form})
