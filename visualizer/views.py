"""Viewer pages: thin adapters that read through selectors and render templates."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def index(request: HttpRequest) -> HttpResponse:
    """The run list."""
    return render(request, "visualizer/index.html")
