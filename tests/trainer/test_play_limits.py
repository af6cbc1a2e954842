"""Plays on a shared installation: a reload watches the same play, and one user may have
only so many plays handed to the workers at once. Real Redis."""

import pytest

from trainer import plays, services

pytestmark = [pytest.mark.django_db, pytest.mark.redis]


def test_a_reload_of_a_play_page_watches_the_same_play(user: object) -> None:
    first = services.play_create(user=user, controller="bcts")
    again = services.play_create(user=user, controller="bcts", pps=30)
    assert again.token == first.token and again.pps == 30
    assert services.play_create(user=user, controller="dellacherie").token != first.token


def test_one_user_may_have_only_so_many_live_plays(
    user: object, other_user: object, settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.MAX_LIVE_PLAYS_PER_USER = 2
    # The cap is counted in Redis; no worker needs to play these (nor may a session worker
    # take them and hold them live): the game tasks are noted, not sent.
    sent = []
    monkeypatch.setattr(services.queues, "enqueue", lambda task, *args, **kw: sent.append(args))
    bcts = services.play_create(user=user, controller="bcts")
    della = services.play_create(user=user, controller="dellacherie")
    versus = services.play_create(
        user=user, controller="bcts", rival=services.PlaySide(controller="dellacherie")
    )
    services.play_join(user=user, token=bcts.token)
    services.play_join(user=user, token=della.token)
    services.play_join(user=user, token=bcts.token)  # a second viewer of a live play is fine
    with pytest.raises(services.LimitReached, match="MAX_LIVE_PLAYS_PER_USER"):
        services.play_join(user=user, token=versus.token)
    # Another user is not held back by this one.
    theirs = services.play_create(user=other_user, controller="bcts")
    services.play_join(user=other_user, token=theirs.token)

    # A play no task holds any more (it ended, its viewers left) frees its place.
    r = plays.client()
    r.delete(f"tetris:play:{bcts.token}:queued", f"tetris:play:{bcts.token}:owner")
    services.play_join(user=user, token=versus.token)
    assert len(sent) == 4
