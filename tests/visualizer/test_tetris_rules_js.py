"""static/js/tetris_rules.js replays games exactly as the Python engine plays them."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from tests.trained_runs import finished_cem_run
from trainer.models import BestGame
from trainer.tetris import DELLACHERIE_WEIGHTS, TetrisGame

NODE = shutil.which("node")
HARNESS = Path(__file__).with_name("tetris_rules_boards.js")

pytestmark = pytest.mark.skipif(NODE is None, reason="needs node (v20) on PATH")


def state(game: TetrisGame) -> list:
    """What the harness reports after each placement."""
    return [
        game.board_string(),
        game.lines,
        game.score,
        game.pieces,
        game.current_piece,
        game.next_piece,
        game.game_over,
    ]


def replay_in_node(games: list[dict]) -> list[dict]:
    """Each game replayed by the JavaScript port: its states, or the error that stopped it."""
    completed = subprocess.run(
        [NODE, str(HARNESS)],
        input=json.dumps(games),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(completed.stdout)


def recorded_game(width: int, height: int, randomizer: str, seed: int, plan: str) -> dict:
    """A game played by the Python engine, with every state it went through.

    plan `greedy`: 300 placements of Dellacherie's controller (line clears of every size);
    `random`: random legal placements to game over.
    """
    game = TetrisGame(width, height, randomizer, seed)
    states, actions = [state(game)], []
    rng = np.random.default_rng(seed % 2**32)
    while not game.game_over and len(actions) < 300:
        if plan == "greedy":
            action = int(game.play_linear_recorded(DELLACHERIE_WEIGHTS, "dellacherie", 1)[0])
        else:
            action = int(rng.choice(game.legal_actions()))
            game.step(action)
        actions.append(action)
        states.append(state(game))
    # Seeds travel as strings: a JSON number loses digits past 2**53.
    spec = {"width": width, "height": height, "randomizer": randomizer, "seed": str(seed)}
    return {**spec, "actions": actions, "states": states}


GAMES = [
    (10, 20, "uniform", 0, "greedy"),
    (10, 20, "bag7", 1, "greedy"),
    (10, 20, "uniform", 2**31 + 3, "greedy"),
    (10, 20, "bag7", 2**63 + 12345, "random"),
    (10, 20, "uniform", 2**64 - 1, "random"),
    (6, 8, "uniform", 7, "random"),
    (6, 8, "bag7", 8, "greedy"),
    (13, 12, "uniform", 99, "greedy"),
    (4, 6, "bag7", 5, "random"),
]


def test_port_goes_through_the_same_boards_as_the_engine() -> None:
    games = [recorded_game(*spec) for spec in GAMES]
    replays = replay_in_node([{k: v for k, v in g.items() if k != "states"} for g in games])
    assert sum(len(g["actions"]) for g in games) > 1500
    for game, replay in zip(games, replays, strict=True):
        assert replay["error"] is None
        assert len(replay["states"]) == len(game["states"])
        for step, (js, py) in enumerate(zip(replay["states"], game["states"], strict=True)):
            assert js == py, f"{game['randomizer']} seed {game['seed']}: differs after {step}"
    assert any(g["states"][-1][6] for g in games)  # game over is reached and agreed on
    assert any(g["states"][-1][1] >= 100 for g in games)


def test_port_refuses_what_the_engine_refuses() -> None:
    game = TetrisGame(seed=4)
    over = recorded_game(6, 8, "uniform", 7, "random")
    illegal = [
        {"width": 10, "height": 20, "randomizer": "uniform", "seed": "4", "actions": [9]},
        {**{k: v for k, v in over.items() if k != "states"}, "actions": [*over["actions"], 0]},
    ]
    with pytest.raises(ValueError):
        game.step(9)  # rotation 0, column 9: wider pieces than one cell do not fit
    first, second = replay_in_node(illegal)
    assert "not legal" in first["error"] and len(first["states"]) == 1
    assert "game is over" in second["error"]


@pytest.mark.django_db
def test_port_replays_a_runs_recorded_best_games(user: object) -> None:
    run = finished_cem_run(user)
    call_command("evaluate", str(run.pk), "--games", "2", "--piece-cap", "300", "--json")
    records = list(BestGame.objects.filter(run=run))
    games = [recorded_replay(record) for record in records]
    replays = replay_in_node([{k: v for k, v in g.items() if k != "states"} for g in games])
    assert {record.kind for record in records} == {"train", "eval"}
    for game, replay, record in zip(games, replays, records, strict=True):
        assert replay["states"] == game["states"]
        assert replay["states"][-1][1:4] == [record.lines, record.score, record.pieces]


def recorded_replay(record: BestGame) -> dict:
    """A stored best game with every state the Python engine goes through replaying it."""
    game = TetrisGame(record.width, record.height, record.randomizer, record.seed)
    actions = list(bytes(record.actions))
    states = [state(game)]
    for action in actions:
        game.step(action)
        states.append(state(game))
    spec = {"width": record.width, "height": record.height, "randomizer": record.randomizer}
    return {**spec, "seed": str(record.seed), "actions": actions, "states": states}
