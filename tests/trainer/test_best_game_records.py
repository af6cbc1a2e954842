"""Each run keeps its best training game and its best evaluation game, replayable exactly."""

import pytest
from django.core.management import call_command

from tests.trained_runs import finished_cem_run
from trainer import services
from trainer.models import BestGame
from trainer.rl import BestGame as BestGameEvent
from trainer.tetris import TetrisGame

pytestmark = pytest.mark.django_db


def replayed(game: BestGame) -> TetrisGame:
    """The stored game, played again from its seed and placements."""
    board = TetrisGame(game.width, game.height, game.randomizer, game.seed)
    for action in bytes(game.actions):
        board.step(action)
    return board


def test_training_keeps_its_best_game_on_the_training_board(user: object) -> None:
    run = finished_cem_run(user)
    game = BestGame.objects.get(run=run, kind="train")
    assert game.lines == run.best_lines and (game.width, game.height) == (10, 10)
    board = replayed(game)
    assert (board.lines, board.score, board.pieces) == (game.lines, game.score, game.pieces)
    assert run.metrics.get(episode=game.episode).lines == game.lines


def test_evaluate_keeps_the_best_evaluation_game_unless_one_kept_is_better(
    user: object, capsys: pytest.CaptureFixture
) -> None:
    run = finished_cem_run(user)
    call_command("evaluate", str(run.pk), "--games", "3", "--piece-cap", "150", "--json")
    first = BestGame.objects.get(run=run, kind="eval")
    assert first.pieces <= 150 and first.seed >= 2**31  # an evaluation seed
    board = replayed(first)
    assert (board.lines, board.pieces) == (first.lines, first.pieces)
    call_command("evaluate", str(run.pk), "--games", "3", "--piece-cap", "20", "--json")
    assert BestGame.objects.get(run=run, kind="eval").lines == first.lines


def test_a_seed_past_two_to_the_63_is_kept_as_the_same_game(user: object) -> None:
    run = services.run_create(owner=user, name="big seed")
    game = TetrisGame(seed=2**64 - 3)
    actions = [int(game.legal_actions()[-1]) for _ in range(1)]
    game.step(actions[0])
    event = BestGameEvent.of("train", game, actions, episode=1)
    assert services.run_record_best_game(run_id=run.pk, game=event)
    stored = BestGame.objects.get(run=run)
    assert stored.seed == -3
    assert replayed(stored).board_string() == game.board_string()
    assert not services.run_record_best_game(run_id=run.pk, game=event)  # not better


def test_admin_lists_a_runs_best_games_with_replay_links(
    user: object, django_user_model: type, client: object
) -> None:
    run = finished_cem_run(user)
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-3"))
    body = client.get(f"/admin/trainer/run/{run.pk}/change/").content.decode()
    assert f"/runs/{run.pk}/replay/train/" in body
