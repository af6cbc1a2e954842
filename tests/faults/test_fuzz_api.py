"""Fuzz the JSON API from its own OpenAPI schema, against a live daphne, signed in.

schemathesis sends valid and invalid requests to every operation; whatever it sends, the
server answers without a 5xx, and every 4xx says in words what was wrong.
"""

import time
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from django.test import Client
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import not_a_server_error

from tetris_site import stack
from tetris_site.api import api
from trainer import services
from trainer.models import Metric, Run

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

# Keys of an error body that carry the message (ninja's own errors use "detail").
MESSAGE_KEYS = ("error", "errors", "detail")


def has_words(value: object) -> bool:
    """Whether a message, or any message nested in a dict or list, contains a word."""
    if isinstance(value, str):
        return any(part.isalpha() and len(part) > 1 for part in value.replace("_", " ").split())
    if isinstance(value, dict):
        return bool(value) and all(has_words(item) for item in value.values())
    if isinstance(value, list):
        return bool(value) and all(has_words(item) for item in value)
    return False


@schemathesis.check
def client_errors_say_what_was_wrong(ctx: CheckContext, response: Response, case: Case) -> None:
    """A 4xx answers JSON with an error, errors or detail made of words."""
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(
            f"{response.status_code} is not JSON: {response.text[:200]!r}"
        ) from None
    messages = [body[key] for key in MESSAGE_KEYS if isinstance(body, dict) and key in body]
    assert messages, f"{response.status_code} has no error, errors or detail: {body!r}"
    assert all(has_words(message) for message in messages), (
        f"{response.status_code} message has no words: {body!r}"
    )
    return None


# Another user's runs that the fuzzed requests aim at (set by the `run_ids` fixture).
OTHERS_RUNS: dict[str, int] = {}


@schemathesis.check
def no_access_to_another_users_runs(ctx: CheckContext, response: Response, case: Case) -> None:
    """Nothing succeeds on another user's private run, and no write on their public one."""
    if not 200 <= response.status_code < 300:
        return None
    path = case.path_parameters if isinstance(case.path_parameters, dict) else {}
    run_id, method = path.get("run_id"), case.method.upper()
    assert run_id != OTHERS_RUNS.get("private"), (
        f"{method} {case.path} answered {response.status_code} on another user's private run"
    )
    assert run_id != OTHERS_RUNS.get("public") or method in ("GET", "HEAD"), (
        f"{method} {case.path} answered {response.status_code}: a write on another user's run"
    )
    return None


def _runs_to_aim_at(ada: object, bob: object) -> list[int]:
    """Runs in every state the API acts on: the user's own, and another user's."""
    queued = services.run_create(owner=ada, name="queued")
    stopped = services.run_create(owner=ada, name="stopped")
    stopped.request_stop()
    failed = services.run_create(owner=ada, name="failed")
    failed.mark_running(worker="fuzz")
    failed.mark_failed("worker lost")
    Metric.objects.bulk_create(
        Metric(
            run=failed,
            episode=i,
            lines=i,
            score=i,
            pieces=i,
            reward=0.0,
            loss=None,
            epsilon=None,
            placements_per_second=1.0,
            total_pieces=i,
            wall_time=float(i),
        )
        for i in range(1, 50)
    )
    public = services.run_create(owner=bob, name="bob's public", visibility="public")
    private = services.run_create(owner=bob, name="bob's private")
    OTHERS_RUNS.update(public=public.pk, private=private.pk)
    return [queued.pk, stopped.pk, failed.pk, public.pk, private.pk]


def _stop_what_the_fuzzer_started(timeout: float = 30) -> None:
    """Stop every run the fuzzer queued or resumed, and wait for any worker to let go."""
    for run in Run.objects.filter(status__in=Run.ACTIVE):
        if run.status != Run.Status.STOPPING:
            run.request_stop()
    deadline = time.monotonic() + timeout
    held = Run.objects.filter(status__in=[Run.Status.RUNNING, Run.Status.STOPPING])
    while held.exists() and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.fixture
def run_ids(user: object, other_user: object) -> Iterator[list[int]]:
    """Runs to aim at; afterwards, every run the fuzzer queued is stopped."""
    yield _runs_to_aim_at(user, other_user)
    _stop_what_the_fuzzer_started()


@pytest.fixture
def signed_in(live_daphne: stack.Service, user: object) -> requests.Session:
    """A browser-like session of a normal user: session cookie plus the CSRF token header."""
    client = Client()
    client.force_login(user)
    session = requests.Session()
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    session.get(f"{live_daphne.url}/accounts/login/", timeout=10).raise_for_status()
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    return session


# The document that /api/openapi.json serves (test_live_schema_is_the_one_fuzzed checks it),
# loaded at import so that each operation is a test of its own: schemathesis's fixture
# loader (`from_fixture`) fails on pytest 9.2, it sets `request.node._nodeid`, now gone.
schema = schemathesis.openapi.from_dict(api.get_openapi_schema())


def test_live_schema_is_the_one_fuzzed(live_daphne: stack.Service) -> None:
    served = requests.get(f"{live_daphne.url}/api/openapi.json", timeout=10)
    assert served.json() == schema.raw_schema


@schema.parametrize()
@schema.given(
    aim=st.integers(min_value=0, max_value=9), forged_session=st.sampled_from([False] * 9 + [True])
)
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_fails_and_explains_every_client_error(
    case: Case,
    aim: int,
    forged_session: bool,
    live_daphne: stack.Service,
    signed_in: requests.Session,
    run_ids: list[int],
) -> None:
    # Half the time, aim a valid run id at a run that exists, to reach past the 404.
    path = case.path_parameters
    if isinstance(path, dict) and isinstance(path.get("run_id"), int) and aim < len(run_ids):
        path["run_id"] = run_ids[aim]
    # The schema's cookie auth makes schemathesis invent session ids: mostly, sign in instead.
    if not forged_session and case.cookies and "sessionid" in case.cookies:
        case.cookies["sessionid"] = signed_in.cookies["sessionid"]
    case.call_and_validate(
        base_url=live_daphne.url,
        session=signed_in,
        timeout=10,
        checks=[
            not_a_server_error,
            client_errors_say_what_was_wrong,
            no_access_to_another_users_runs,
        ],
    )


def test_bodies_that_are_not_json_objects_are_refused_in_words(
    live_daphne: stack.Service, signed_in: requests.Session
) -> None:
    bodies = [
        ("application/json", b""),
        ("application/json", b"{"),
        ("application/json", b"\xff\xfe"),
        ("application/json", b"[" * 5000),
        ("application/json", b"[1, 2]"),
        ("application/json", b'{"name": ' + b"[" * 3000 + b"]" * 3000 + b"}"),
        ("application/x-www-form-urlencoded", b"name=x"),
        ("text/plain", b"name: x"),
        ("application/octet-stream", bytes(range(256))),
    ]
    for content_type, body in bodies:
        for method, path in [("post", "/api/runs/"), ("patch", "/api/runs/1/")]:
            response = signed_in.request(
                method,
                f"{live_daphne.url}{path}",
                data=body,
                headers={"Content-Type": content_type},
                timeout=10,
            )
            assert response.status_code in (400, 404), (content_type, body[:20], response.text)
            message = response.json()
            assert has_words(message.get("errors") or message.get("detail") or message["error"])
    assert not Run.objects.exists()


# What the fuzzer found, kept as examples.


def test_an_offset_past_any_database_integer_is_an_empty_page(
    live_daphne: stack.Service, signed_in: requests.Session
) -> None:
    # Was a 500: SQLite cannot bind an OFFSET past 2**63 ("datatype mismatch").
    response = signed_in.get(f"{live_daphne.url}/api/runs/?offset={10**21}", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"items": [], "count": 0}


def test_a_status_filter_that_names_no_status_is_refused_with_the_choices(
    live_daphne: stack.Service, signed_in: requests.Session
) -> None:
    # Was a 500 on PostgreSQL, whose text cannot hold NUL; now checked before any query.
    for status in ["a\x00b", "done"]:
        response = signed_in.get(f"{live_daphne.url}/api/runs/", params={"status": status})
        assert response.status_code == 400
        assert "queued" in response.json()["errors"]["status"]


def test_a_run_name_with_a_nul_character_is_refused(
    live_daphne: stack.Service, signed_in: requests.Session
) -> None:
    # Was a 500 on PostgreSQL.
    response = signed_in.post(f"{live_daphne.url}/api/runs/", json={"name": "a\x00b"}, timeout=10)
    assert response.status_code == 400
    assert response.json() == {"errors": {"name": "must not contain NUL characters"}}
    assert not Run.objects.exists()


def test_a_body_over_the_upload_limit_is_refused_in_words(
    live_daphne: stack.Service, signed_in: requests.Session
) -> None:
    # Was Django's HTML "Bad Request (400)" page.
    body = {"name": "big", "config": {"seed": "1" * 3_000_000}}
    for method in ("post", "patch"):
        path = "/api/runs/" if method == "post" else "/api/runs/1/"
        response = signed_in.request(method, f"{live_daphne.url}{path}", json=body, timeout=30)
        assert response.status_code == 413
        assert "bytes" in response.json()["error"]
