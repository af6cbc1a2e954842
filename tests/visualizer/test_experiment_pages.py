"""The experiment pages (list, new-experiment form, one experiment, its Stop) through
Django's test client, and the experiment's socket through Channels' WebsocketCommunicator
on the test Redis. The scheduler is driven by hand, as in tests/trainer/test_experiments.py;
tests/browser/test_experiments.py runs an experiment on real workers."""

import asyncio
import html
from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from django.utils import timezone

from live import bridge
from live.names import experiment_group
from live.protocol import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, ExperimentUpdate
from tests.trainer.test_experiments import complete_evaluation, finish, runs_of
from tests.visualizer.test_consumers import connect, run_scenario
from tests.visualizer.test_pages import field_error, page_data
from trainer import experiments
from trainer.models import Experiment, Run
from trainer.rl.confidence import iqm_text
from visualizer.experiments import params_text

QUICK = {"max_minutes": 1.0, "frames_per_second": 0.0}
# The form as a person fills it in: a base config as key=value lines, a grid as lists.
FORM = {
    "name": "lr sweep",
    "preset": "quick",
    "visibility": "private",
    "settings": "max_minutes=1\nframes_per_second=0  # no live board\n",
    "grid": "lr = 0.001, 0.0003",
    "ranges": "",
    "sampler": "grid",
    "trials": "",
    "seeds": "2",
    "parallel": "2",
    "pruner": "none",
    "eval_games": "5",
    "eval_piece_cap": "1000",
}


@pytest.fixture(autouse=True)
def _room_for_the_runs(settings: object) -> None:
    settings.MAX_ACTIVE_RUNS_PER_USER = 8


@pytest.fixture
def ada(client: Client, user: object) -> Client:
    client.force_login(user)
    return client


def create(owner: object, **fields: object) -> Experiment:
    body = {"name": "lr sweep", "config": dict(QUICK), "grid": {"lr": [0.001, 0.0003]}}
    return experiments.experiment_create(owner=owner, **{**body, "seeds": 2, **fields})


def evaluated(experiment: Experiment, scores: list[float]) -> Experiment:
    """The experiment with its runs trained and evaluated to `scores`, in the order the
    scheduler started them, as workers would have left them."""
    experiments.experiment_advance(experiment_id=experiment.pk)
    for run, score in zip(runs_of(experiment), scores, strict=True):
        finish(run, score)
    experiments.experiment_advance(experiment_id=experiment.pk)
    for run, score in zip(runs_of(experiment), scores, strict=True):
        complete_evaluation(run, score)
    experiments.experiment_advance(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    return experiment


# --- pages ---


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/experiments/", "/experiments/new/", "/experiments/1/"])
def test_experiment_pages_send_anonymous_visitors_to_sign_in(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_the_list_shows_own_and_public_experiments_with_the_best_score(
    ada: Client, user: object, other_user: object
) -> None:
    mine = evaluated(create(user, name="mine", parallel=4), [10.0, 12.0, 30.0, 34.0])
    create(other_user, name="bobs-public", visibility="public")
    create(other_user, name="bobs-secret")
    response = ada.get("/experiments/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "mine" in body and "bobs-public" in body and "bobs-secret" not in body
    assert 'href="/experiments/new/"' in body and 'href="/experiments/">Experiments</a>' in body
    best = next(
        c for c in mine.summary["configurations"] if c["trial"] == mine.summary["ranking"][0]
    )
    assert iqm_text(best["iqm"], best["ci95_low"], best["ci95_high"], 2) in body
    assert "2 \N{MULTIPLICATION SIGN} 2" in body and params_text(best["params"]) in body


@pytest.mark.django_db
def test_the_form_creates_the_experiment_and_shows_it(ada: Client, user: object) -> None:
    response = ada.post("/experiments/new/", FORM)
    experiment = Experiment.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/experiments/{experiment.pk}/"
    assert experiment.owner == user and experiment.seeds == 2 and experiment.eval_games == 5
    assert experiment.config == {"max_minutes": 1.0, "frames_per_second": 0.0}
    assert experiment.grid == {"lr": [0.001, 0.0003]} and experiment.sampler == "grid"
    assert experiment.trials == 2 and experiment.pruner == ""


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        (  # parsed by the form: the service is never asked
            {"settings": "bogus=1\nmax_pieces=lots", "ranges": "lr = small .. big"},
            {
                "settings": "bogus: unknown setting",
                "ranges": "lr: expected low .. high (numbers)",
            },
        ),
        (  # refused by experiments.experiment_create, each next to its own box
            {
                "name": " ",
                "grid": "lrr = 0.1, 0.2\nlr = 5",
                "seeds": "0",
                "parallel": "99",
                "settings": "max_minutes=0",
            },
            {
                "name": "must be 1 to 200 characters",
                "grid": "lrr: unknown setting",
                "seeds": "must be an integer from 1 to 20",
                "parallel": "must be an integer from 1 to 64",
                "settings": "max_minutes: each run needs a finite budget",
            },
        ),
        (
            {"sampler": "grid", "ranges": "gamma = 0.9 .. 0.99", "grid": ""},
            {"sampler": "the grid sampler takes lists"},
        ),
    ],
)
def test_bad_input_is_shown_next_to_its_field_and_creates_nothing(
    ada: Client, changes: dict, errors: dict
) -> None:
    response = ada.post("/experiments/new/", {**FORM, **changes})
    assert response.status_code == 200
    for field, message in errors.items():
        assert field_error(response, field).startswith(message), field_error(response, field)
    assert not Experiment.objects.exists() and not Run.objects.exists()


@pytest.mark.django_db
def test_the_experiment_page_hands_its_figures_to_its_script(
    ada: Client, user: object, other_user: object
) -> None:
    experiment = evaluated(create(user, parallel=4), [10.0, 12.0, 30.0, 34.0])
    response = ada.get(f"/experiments/{experiment.pk}/")
    body = response.content.decode()
    assert response.status_code == 200
    figures = page_data(response, "experiment-figures")
    assert figures["id"] == experiment.pk and figures["status"] == "finished"
    assert len(figures["configurations"]) == 2 and figures["ranking"] and figures["improvement"]
    assert all(c["iqm"] is not None and c["curve"]["x"] for c in figures["configurations"])
    page = page_data(response, "experiment-page")
    assert page["socket_path"] == f"/ws/experiments/{experiment.pk}/"
    assert page["run_url"] == "/runs/0/"
    assert 'id="stop-form"' in body and "hidden" in body.split('id="stop-form"')[1].split(">")[0]
    assert "<script>" not in body  # data goes through json_script; the code through files


@pytest.mark.django_db
def test_someone_elses_private_experiment_is_404_and_a_public_one_has_no_stop(
    client: Client, user: object, other_user: object
) -> None:
    private = create(user, name="secret")
    public = create(user, name="shown", visibility="public")
    client.force_login(other_user)
    assert client.get(f"/experiments/{private.pk}/").status_code == 404
    assert client.post(f"/experiments/{private.pk}/stop/").status_code == 404
    response = client.get(f"/experiments/{public.pk}/")
    assert response.status_code == 200 and 'id="stop-form"' not in response.content.decode()
    refused = client.post(f"/experiments/{public.pk}/stop/")
    assert refused.status_code == 403
    assert "only the experiment's owner" in html.unescape(refused.content.decode())
    public.refresh_from_db()
    assert public.status == Experiment.Status.RUNNING


@pytest.mark.django_db
def test_the_stop_button_stops_the_experiment_and_its_runs(user: object) -> None:
    experiment = create(user)
    experiments.experiment_advance(experiment_id=experiment.pk)
    owner = Client(enforce_csrf_checks=True)
    owner.force_login(user)
    page = owner.get(f"/experiments/{experiment.pk}/")
    assert 'id="stop-button"' in page.content.decode()
    assert owner.post(f"/experiments/{experiment.pk}/stop/").status_code == 403  # no CSRF token
    token = page.cookies["csrftoken"].value
    response = owner.post(f"/experiments/{experiment.pk}/stop/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == f"/experiments/{experiment.pk}/"
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.STOPPED
    assert {run.status for run in runs_of(experiment)} == {Run.Status.STOPPED}
    assert owner.get(f"/experiments/{experiment.pk}/stop/").status_code == 405


# --- the socket ---


def test_the_owner_makes_the_experiment_public_from_its_page(
    client: Client, user: object, other_user: object
) -> None:
    experiment = create(user)
    client.force_login(other_user)
    assert client.post(f"/experiments/{experiment.pk}/visibility/").status_code == 404
    client.force_login(user)
    page = client.get(f"/experiments/{experiment.pk}/").content.decode()
    assert "Make public" in page
    response = client.post(f"/experiments/{experiment.pk}/visibility/", {"visibility": "public"})
    assert response.status_code == 302
    experiment.refresh_from_db()
    assert experiment.visibility == "public"
    client.force_login(other_user)
    assert client.get(f"/experiments/{experiment.pk}/").status_code == 200
    assert (
        client.post(
            f"/experiments/{experiment.pk}/visibility/", {"visibility": "private"}
        ).status_code
        == 403
    )


def stored_experiment(owner: object, **fields: object) -> Experiment:
    """An experiment's row alone: nothing scheduled, so no run reaches the test Redis's
    queues (experiment_create starts runs once its transaction commits). A real worker's
    sweep, which advances every running experiment of the test database, leaves it alone:
    it has no place for a run, and its figures are not due before tomorrow, so it starts
    nothing and publishes nothing these tests could mistake for their own."""
    body = {"name": "watched", "preset": "quick", "config": dict(QUICK), "trials": 1, "seeds": 1}
    body.update(
        parallel=0,
        eval_games=1,
        eval_piece_cap=0,
        summarized_at=timezone.now() + timedelta(days=1),
        **fields,
    )
    return Experiment.objects.create(owner=owner, **body)


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["anonymous", "someone else"])
def test_the_socket_refuses_whoever_may_not_see_the_experiment(
    user: object, other_user: object, who: str
) -> None:
    experiment = stored_experiment(user, name="secret")
    viewer = AnonymousUser() if who == "anonymous" else other_user

    async def scenario() -> int:
        _, code = await connect(viewer, f"/ws/experiments/{experiment.pk}/")
        return code

    expected = CLOSE_UNAUTHENTICATED if who == "anonymous" else CLOSE_FORBIDDEN
    assert run_scenario(scenario()) == expected


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_owner_gets_the_figures_then_each_update_and_an_error_for_any_message(
    user: object,
) -> None:
    experiment = stored_experiment(user)
    update = {"id": experiment.pk, "status": "running", "configurations": [], "ranking": []}

    async def scenario() -> tuple[dict, dict, dict, dict]:
        socket, snapshot = await connect(user, f"/ws/experiments/{experiment.pk}/")
        try:
            group = experiment_group(experiment.pk)
            await asyncio.wrap_future(bridge.publish(group, ExperimentUpdate(update)))
            first = await socket.receive_json_from(timeout=10)
            await socket.send_to(text_data='{"command": "stop"}')
            error = await socket.receive_json_from(timeout=10)
            await asyncio.wrap_future(bridge.publish(group, ExperimentUpdate(update)))
            return snapshot, first, error, await socket.receive_json_from(timeout=10)
        finally:
            await socket.disconnect()

    snapshot, first, error, still_open = run_scenario(scenario())
    assert snapshot["type"] == "snapshot" and snapshot["experiment"]["id"] == experiment.pk
    assert snapshot["experiment"]["status"] == "running"
    assert snapshot["experiment"]["configurations"] == []
    assert first == {"type": "experiment", "experiment": update}
    assert error["type"] == "error" and "takes no commands" in error["error"]
    assert still_open["type"] == "experiment"


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_viewer_is_closed_with_4403_once_the_experiment_turns_private(
    user: object, other_user: object
) -> None:
    experiment = stored_experiment(user, visibility="public")

    async def scenario() -> dict:
        socket, snapshot = await connect(other_user, f"/ws/experiments/{experiment.pk}/")
        assert snapshot["type"] == "snapshot"
        # As the admin would: a save that sends no event; the access watch sees it.
        await asyncio.to_thread(
            Experiment.objects.filter(pk=experiment.pk).update, visibility="private"
        )
        return await socket.receive_output(timeout=10)

    assert run_scenario(scenario()) == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}
