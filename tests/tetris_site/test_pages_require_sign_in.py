"""Every page but sign-in and /api/status requires a signed-in user."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client


@pytest.mark.django_db
def test_anonymous_visitor_is_sent_to_sign_in(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_sign_in_page_is_public_and_signing_in_shows_runs(client: Client) -> None:
    get_user_model().objects.create_user("ada", password="lovelace-1815")
    assert client.get("/accounts/login/").status_code == 200
    response = client.post(
        "/accounts/login/", {"username": "ada", "password": "lovelace-1815"}, follow=True
    )
    assert response.status_code == 200
    assert b"Runs" in response.content


@pytest.mark.django_db
def test_sign_out_ends_the_session(client: Client) -> None:
    user = get_user_model().objects.create_user("ada", password="lovelace-1815")
    client.force_login(user)
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_api_answers_401_not_a_redirect(client: Client) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code in {200, 401}
    assert client.get("/admin/").status_code == 302
