"""Viewer pages."""

from django.urls import path

from visualizer import views

urlpatterns = [
    path("", views.index, name="index"),
]
