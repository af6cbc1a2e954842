"""The play loop in this process, against the real Redis: its time cap, its end when nobody
watches, and a new game after game over."""

import time

import pytest
import redis
from django.conf import settings

from trainer import player, plays
from trainer.rl import load_policy


def started_play(r: redis.Redis, *, width: int = 10, height: int = 20) -> plays.PlaySpec:
    """A play of Dellacherie's controller at full speed, with one viewer watching."""
    spec = plays.PlaySpec(
        token=plays.new_token(),
        user_id=1,
        label="test",
        width=width,
        height=height,
        randomizer="uniform",
        seed=5,
        pps=plays.MAX_PPS,
        controller="dellacherie",
    )
    plays.save_spec(r, spec)
    r.zadd(f"tetris:play:{spec.token}:viewers", {"viewer": time.time() + 60})
    return spec


def loop_for(r: redis.Redis, spec: plays.PlaySpec, max_seconds: float) -> player.PlayLoop:
    """The loop a worker would run for the play."""
    game = player.GamePlayer(
        load_policy(spec.controller),
        width=spec.width,
        height=spec.height,
        randomizer=spec.randomizer,
        seed=spec.seed,
    )
    return player.PlayLoop(r, spec, "task", game, max_seconds=max_seconds)


@pytest.fixture
def r(redis_server: object) -> redis.Redis:
    """The test Redis."""
    return redis.Redis.from_url(settings.REDIS_URL)


def test_play_stops_at_its_time_cap_even_while_watched(r: redis.Redis) -> None:
    loop = loop_for(r, started_play(r), max_seconds=1.0)
    started = time.monotonic()
    reason = loop.run()
    assert "at most" in reason and 1.0 <= time.monotonic() - started < 2.0
    assert 40 <= loop.player.game.pieces <= 61  # 60 pieces a second


def test_play_stops_soon_after_its_last_viewer_leaves(
    r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(player, "NO_VIEWER_GRACE_SECONDS", 0.3)
    spec = started_play(r)
    r.delete(f"tetris:play:{spec.token}:viewers")
    started = time.monotonic()
    assert loop_for(r, spec, max_seconds=30).run() == "nobody is watching"
    assert time.monotonic() - started < 2.0


def test_a_new_game_on_the_next_seed_follows_game_over(
    r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(player, "GAME_OVER_PAUSE_SECONDS", 0.1)
    loop = loop_for(r, started_play(r, width=4, height=4), max_seconds=2.0)
    loop.run()
    assert loop.player.episode >= 2
    assert loop.player.game.seed == 5 + loop.player.episode - 1
    status = r.get(f"tetris:play:{loop.spec.token}:status")
    assert status is not None


def side_by_side(seed: int = 5) -> player.SideBySide:
    """Dellacherie's controller (left) against BCTS (right), on the same pieces."""
    board = {"width": 10, "height": 20, "randomizer": "uniform", "seed": seed}
    return player.SideBySide(
        player.GamePlayer(load_policy("dellacherie"), **board),
        player.GamePlayer(load_policy("bcts"), **board),
        "BCTS",
    )


def test_side_by_side_holds_back_the_first_piece_the_two_would_place_apart() -> None:
    duel = side_by_side()
    left, right = duel.first, duel.second
    while duel.advance():
        assert left.game.board_string() == right.game.board_string()
        assert duel.disagreement is None and duel.first.game.pieces < 1000
    # Held back: nothing placed, both boards still alike, each side's choice recorded.
    placed = left.game.pieces
    assert right.game.pieces == placed and left.game.board_string() == right.game.board_string()
    disagreement = duel.disagreement
    assert disagreement["placement"] == placed + 1
    assert disagreement["piece"] == "IOTSZJL"[left.game.current_piece]
    choices = [divmod(p.choice(), 10) for p in (left, right)]
    assert [(c["rotation"], c["column"]) for c in disagreement["choices"]] == choices
    assert choices[0] != choices[1]

    frame = duel.frame(options=True)
    assert frame["disagreement"] == disagreement and frame["rival"]["label"] == "BCTS"
    assert frame["rival"]["board"] == frame["board"] and frame["rival"]["pieces"] == placed
    chosen = [next(o for o in f["options"] if o["chosen"]) for f in (frame, frame["rival"])]
    assert [(o["rotation"], o["column"]) for o in chosen] == choices

    # The next step places it, each its own way, and the record stays.
    assert duel.advance()
    assert left.game.pieces == right.game.pieces == placed + 1
    assert left.game.board_string() != right.game.board_string()
    assert duel.frame()["disagreement"] == disagreement
    duel.new_game()
    assert duel.disagreement is None and "disagreement" not in {
        k for k, v in duel.frame().items() if v is not None
    }


def test_a_side_by_side_play_pauses_itself_at_the_disagreement(r: redis.Redis) -> None:
    spec = started_play(r)
    loop = player.PlayLoop(r, spec, "task", side_by_side(spec.seed), max_seconds=3.0)
    loop.run()
    duel = loop.player
    assert duel.disagreement is not None
    # Paused at the disagreement: nothing was placed after it.
    assert duel.first.game.pieces == duel.disagreement["placement"] - 1
    assert r.hget(f"tetris:play:{spec.token}:control", "paused") == b"1"
