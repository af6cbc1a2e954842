"""URL routes: pages, sign-in, admin and the JSON API."""

from django.contrib import admin
from django.urls import include, path

from tetris_site.accounts import signup
from tetris_site.api import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/signup/", signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", api.urls),
    path("", include("trainer.urls")),
    path("", include("visualizer.urls")),
]
