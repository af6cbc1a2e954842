"""The play pages: a checkpoint or a controller to watch, a best game to replay, through
Django's test client."""

import base64

import pytest
from django.test import Client

from tests.trained_runs import finished_cem_run
from tests.visualizer.test_pages import page_data
from tetris_site import stack
from trainer import plays, selectors, services
from trainer.models import BestGame

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(client: Client, user: object) -> Client:
    client.force_login(user)
    return client


def test_run_page_lists_its_checkpoints_to_watch(ada: Client, user: object) -> None:
    run = finished_cem_run(user)
    checkpoint = selectors.latest_checkpoint(run)
    body = ada.get(f"/runs/{run.pk}/").content.decode()
    assert f"/runs/{run.pk}/play/?checkpoint={checkpoint.pk}" in body
    assert "/play/dellacherie/" in body and "/play/bcts/" in body


@pytest.mark.redis
def test_checkpoint_page_prepares_a_play_of_that_checkpoint(ada: Client, user: object) -> None:
    run = finished_cem_run(user)
    checkpoint = selectors.latest_checkpoint(run)
    response = ada.get(f"/runs/{run.pk}/play/?pps=25")
    page = page_data(response, "play-page")
    assert (page["mode"], page["pps"], page["width"], page["height"]) == ("live", 25, 10, 20)
    token = page["socket_path"].split("/")[3]
    spec = plays.load_spec(plays.client(), token)
    assert (spec.run_id, spec.checkpoint_id, spec.user_id) == (run.pk, checkpoint.pk, user.pk)
    assert f"episode {checkpoint.episode:,}" in response.content.decode()


@pytest.mark.redis
def test_controller_page_prepares_a_play_of_the_controller(ada: Client) -> None:
    page = page_data(ada.get("/play/bcts/?pps=500"), "play-page")
    assert page["pps"] == plays.MAX_PPS
    for asked, got in [
        ("inf", plays.MAX_PPS),
        ("-inf", plays.MIN_PPS),
        ("nan", plays.DEFAULT_PPS),
        ("1e400", plays.MAX_PPS),
        ("x", plays.DEFAULT_PPS),
    ]:
        response = ada.get(f"/play/bcts/?pps={asked}")
        assert response.status_code == 200, asked
        assert page_data(response, "play-page")["pps"] == got, asked
    spec = plays.load_spec(plays.client(), page["socket_path"].split("/")[3])
    assert (spec.controller, spec.run_id) == ("bcts", None)


def test_what_cannot_be_played_is_a_404(ada: Client, user: object, other_user: object) -> None:
    hidden = finished_cem_run(other_user, name="bob's")
    empty = services.run_create(owner=user, name="no checkpoint yet")
    mine = finished_cem_run(user)
    for url in [
        f"/runs/{hidden.pk}/play/",
        f"/runs/{empty.pk}/play/",
        f"/runs/{mine.pk}/play/?checkpoint=999999",
        f"/runs/{mine.pk}/play/?checkpoint=x",
        "/play/tetris-master/",
    ]:
        assert ada.get(url).status_code == 404, url


def test_play_pages_ask_anonymous_visitors_to_sign_in(client: Client) -> None:
    response = client.get("/play/dellacherie/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_reference_controllers_named_for_the_web_exist_in_the_core() -> None:
    from trainer.rl.policies import REFERENCE_POLICIES

    assert set(plays.REFERENCE_CONTROLLERS) == set(REFERENCE_POLICIES)


def test_replay_page_hands_the_best_game_to_the_browser(ada: Client, user: object) -> None:
    run = finished_cem_run(user)
    game = BestGame.objects.get(run=run, kind="train")
    body = ada.get(f"/runs/{run.pk}/").content.decode()
    assert f"/runs/{run.pk}/replay/train/" in body and "no evaluation yet" in body
    response = ada.get(f"/runs/{run.pk}/replay/train/")
    page = page_data(response, "play-page")
    replay = page["replay"]
    assert page["mode"] == "replay" and "socket_path" not in page
    assert base64.b64decode(replay["actions"]) == bytes(game.actions)
    assert (replay["seed"], replay["lines"], replay["pieces"]) == (
        str(game.seed),
        game.lines,
        game.pieces,
    )
    assert f"Best training game: {game.lines:,} lines" in response.content.decode()


def test_replays_that_do_not_exist_are_a_404(ada: Client, user: object, other_user: object) -> None:
    mine = finished_cem_run(user)
    hidden = finished_cem_run(other_user, name="bob's")
    for url in [
        f"/runs/{mine.pk}/replay/eval/",  # never evaluated
        f"/runs/{mine.pk}/replay/best/",
        f"/runs/{hidden.pk}/replay/train/",
    ]:
        assert ada.get(url).status_code == 404, url


def test_play_page_explains_when_redis_cannot_be_reached(ada: Client, settings: object) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{stack.free_port()}/0"  # nothing listens there
    response = ada.get("/play/dellacherie/")
    assert response.status_code == 503
    assert "Redis, which cannot be reached" in response.content.decode()


@pytest.mark.redis
def test_side_by_side_page_prepares_one_play_of_two_policies(ada: Client, user: object) -> None:
    run = finished_cem_run(user)
    checkpoint = selectors.latest_checkpoint(run)
    response = ada.get(f"/play/versus/?a=checkpoint:{checkpoint.pk}&b=controller:bcts")
    page = page_data(response, "play-page")
    spec = plays.load_spec(plays.client(), page["socket_path"].split("/")[3])
    assert (spec.run_id, spec.checkpoint_id) == (run.pk, checkpoint.pk)
    assert spec.rival == {
        "label": "BCTS (reference controller)",
        "run_id": None,
        "checkpoint_id": None,
        "controller": "bcts",
    }
    assert page["versus"] == [spec.label, "BCTS (reference controller)"]
    # Reachable from the checkpoint's play page and from the compare page.
    for url in [f"/runs/{run.pk}/play/", f"/compare/?runs={run.pk}"]:
        body = ada.get(url).content.decode()
        assert 'action="/play/versus/"' in body and f"checkpoint:{checkpoint.pk}" in body, url


@pytest.mark.redis
def test_side_by_side_refuses_what_cannot_be_pitted(
    ada: Client, user: object, other_user: object
) -> None:
    hidden = selectors.latest_checkpoint(finished_cem_run(other_user, name="bob's"))
    small = services.run_create(
        owner=user, name="small", algorithm="cem", preset="record", config={"height": 12}
    )
    small_checkpoint = small.checkpoints.create(
        episode=1, total_pieces=1, wall_time=0.0, file="x.pt"
    )
    mine = selectors.latest_checkpoint(finished_cem_run(user))
    assert ada.get(f"/play/versus/?a=checkpoint:{hidden.pk}&b=controller:bcts").status_code == 404
    assert ada.get(f"/play/versus/?a=controller:bcts&b=checkpoint:{hidden.pk}").status_code == 404
    for query, message in [
        ("a=controller:bcts&b=nonsense", "expected checkpoint:&lt;id&gt; or controller:"),
        ("a=controller:bcts&b=controller:tetris-master", "unknown controller"),
        (f"a=checkpoint:{mine.pk}&b=checkpoint:{small_checkpoint.pk}", "needs one board"),
    ]:
        response = ada.get(f"/play/versus/?{query}")
        assert response.status_code == 400 and message in response.content.decode(), query


@pytest.mark.redis
def test_a_side_by_side_play_ends_for_a_viewer_who_loses_its_second_run(
    user: object, other_user: object
) -> None:
    shown = finished_cem_run(other_user, name="bob's, public", visibility="public")
    spec = services.play_create(
        user=user,
        controller="bcts",
        rival=services.PlaySide(shown, selectors.latest_checkpoint(shown)),
    )
    assert services.play_for_viewer(user=user, token=spec.token) == spec
    services.run_set_visibility(run=shown, user=other_user, visibility="private")
    with pytest.raises(plays.PlayNotFound):
        services.play_for_viewer(user=user, token=spec.token)
