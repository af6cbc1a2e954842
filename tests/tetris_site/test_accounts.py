"""Sign-in, sign-up (off by default), throttling, password change and CSRF."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db


def sign_in(client: Client, username: str, password: str) -> object:
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_signup_is_off_by_default(client: Client) -> None:
    assert client.get("/accounts/signup/").status_code == 404
    assert b"Create an account" not in client.get("/accounts/login/").content


@pytest.mark.redis  # sign-ups are counted per address in Redis
def test_signup_when_allowed_creates_and_signs_in(client: Client, settings: object) -> None:
    settings.ALLOW_SIGNUP = True
    response = client.post(
        "/accounts/signup/",
        {"username": "newbie", "password1": "a-long-pass-9931", "password2": "a-long-pass-9931"},
    )
    assert response.status_code == 302
    assert get_user_model().objects.filter(username="newbie").exists()
    assert client.get("/").status_code == 200


def test_repeated_failed_sign_ins_are_throttled(client: Client, user: object) -> None:
    for _ in range(4):
        assert sign_in(client, "ada", "wrong").status_code == 200
    assert sign_in(client, "ada", "wrong").status_code == 429
    locked = sign_in(client, "ada", "pw-for-tests-1")
    assert locked.status_code == 429
    assert b"Too many failed sign-ins" in locked.content
    assert client.get("/").status_code == 302


def test_sign_in_works_and_resets_nothing_for_others(client: Client, user: object) -> None:
    assert sign_in(client, "ada", "pw-for-tests-1").status_code == 302
    assert client.get("/").status_code == 200


def test_password_change_signs_out_other_sessions(user: object) -> None:
    laptop, phone = Client(), Client()
    assert sign_in(laptop, "ada", "pw-for-tests-1").status_code == 302
    assert sign_in(phone, "ada", "pw-for-tests-1").status_code == 302
    response = laptop.post(
        "/accounts/password_change/",
        {
            "old_password": "pw-for-tests-1",
            "new_password1": "a-new-pass-4410",
            "new_password2": "a-new-pass-4410",
        },
    )
    assert response.status_code == 302
    assert laptop.get("/").status_code == 200  # the session that changed it stays in
    assert phone.get("/").status_code == 302
    assert phone.get("/api/runs/").status_code == 401


def test_csrf_is_enforced_on_forms_and_api(user: object) -> None:
    client = Client(enforce_csrf_checks=True)
    assert sign_in(client, "ada", "pw-for-tests-1").status_code == 403
    client.force_login(user)
    body = json.dumps({"name": "no token"})
    response = client.post("/api/runs/", body, content_type="application/json")
    assert response.status_code == 403
    assert client.post("/accounts/logout/").status_code == 403
    token = client.get("/accounts/password_change/").cookies["csrftoken"].value
    response = client.post(
        "/api/runs/", body, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 201


def sign_in_from(client: Client, address: str, username: str, password: str) -> int:
    """A sign-in through one proxy, for a client at `address` (and a forged entry left of it)."""
    response = client.post(
        "/accounts/login/",
        {"username": username, "password": password},
        REMOTE_ADDR="127.0.0.1",
        HTTP_X_FORWARDED_FOR=f"10.9.9.9, {address}",
    )
    return response.status_code


def test_behind_a_proxy_one_clients_failures_lock_only_that_client(
    user: object, settings: object
) -> None:
    settings.TRUSTED_PROXIES = 1
    attacker, ada = Client(), Client()
    for _ in range(5):
        sign_in_from(attacker, "203.0.113.5", "ada", "wrong")
    assert sign_in_from(attacker, "203.0.113.5", "ada", "pw-for-tests-1") == 429
    # Ada, at her own address behind the same proxy, still signs in.
    assert sign_in_from(ada, "198.51.100.7", "ada", "pw-for-tests-1") == 302


def test_one_address_spraying_a_password_over_many_accounts_is_refused(
    user: object, settings: object, django_user_model: type
) -> None:
    settings.SIGN_IN_FAILURES_PER_ADDRESS = 6
    settings.TRUSTED_PROXIES = 1
    for n in range(6):
        django_user_model.objects.create_user(f"user{n}", password="their-own-pw-1")
    sprayer = Client()
    # One try per account: no username reaches the lockout of 5, the address does.
    for n in range(6):
        assert sign_in_from(sprayer, "203.0.113.9", f"user{n}", "Winter2026!") == 200
    refused = sign_in_from(sprayer, "203.0.113.9", "ada", "pw-for-tests-1")
    assert refused == 429
    # Another address is not held back.
    assert sign_in_from(Client(), "198.51.100.7", "ada", "pw-for-tests-1") == 302


@pytest.mark.redis
def test_signups_from_one_address_are_limited_per_hour(settings: object) -> None:
    settings.ALLOW_SIGNUP = True
    settings.SIGNUPS_PER_ADDRESS_PER_HOUR = 2
    address = "192.0.2.77"

    def sign_up(name: str, remote: str) -> int:
        body = {"username": name, "password1": "a-long-pass-9931", "password2": "a-long-pass-9931"}
        return Client().post("/accounts/signup/", body, REMOTE_ADDR=remote).status_code

    assert sign_up("first", address) == 302
    assert sign_up("second", address) == 302
    assert sign_up("third", address) == 429
    assert not get_user_model().objects.filter(username="third").exists()
    assert sign_up("elsewhere", "192.0.2.78") == 302
