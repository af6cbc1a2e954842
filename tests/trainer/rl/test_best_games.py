"""Best games: the learners and evaluation report games that can be replayed exactly."""

from pathlib import Path

import pytest

from trainer.rl import BestGame, TrainConfig, TrainResult, evaluate, train
from trainer.rl.options import linear_options
from trainer.tetris import TetrisGame

from .conftest import Recorder


class BestGames(Recorder):
    """Keeps every reported best game too."""

    def __init__(self) -> None:
        super().__init__()
        self.best: list[BestGame] = []

    def on_best_game(self, g: BestGame) -> None:
        self.best.append(g)


def replay(best: BestGame) -> TetrisGame:
    """The game the record describes, played again from its seed and placements."""
    game = TetrisGame(best.width, best.height, best.randomizer, best.seed)
    for action in best.actions:
        game.step(action)
    return game


def assert_replays_exactly(best: BestGame) -> None:
    game = replay(best)
    assert (game.lines, game.score, game.pieces) == (best.lines, best.score, best.pieces)
    assert len(best.actions) == best.pieces


def assert_its_policy_plays_it(best: BestGame) -> None:
    """The kept linear policy, asked at each placement, chooses what the record says."""
    policy = best.policy
    assert policy["kind"] == "linear"
    game = TetrisGame(best.width, best.height, best.randomizer, best.seed)
    for action in best.actions:
        (chosen,) = [
            o for o in linear_options(game, policy["weights"], policy["feature_set"]) if o["chosen"]
        ]
        assert chosen["rotation"] * best.width + chosen["column"] == action
        game.step(action)


def assert_each_beats_the_last(games: list[BestGame], recorder: Recorder) -> None:
    assert games and games[0].episode == 1
    assert [g.lines for g in games] == sorted({g.lines for g in games})
    lines_by_episode = {m.episode: m.lines for m in recorder.episodes}
    for g in games:
        assert lines_by_episode[g.episode] == g.lines
    assert games[-1].lines == max(lines_by_episode.values())


def test_dqn_reports_each_new_best_training_game_replayable_from_its_seed() -> None:
    config = TrainConfig.from_preset(
        "quick",
        {"max_pieces": 3_000, "learning_starts": 500, "frames_per_second": 0.0, "num_envs": 4},
    )
    recorder = BestGames()
    train(config, callbacks=[recorder])
    assert_each_beats_the_last(recorder.best, recorder)
    for best in recorder.best:
        assert best.kind == "train" and (best.width, best.height) == (10, 20)
        assert best.policy is None  # a value network changes as it trains: not kept
        assert_replays_exactly(best)


def test_cem_reports_each_new_best_training_game_on_its_training_board() -> None:
    config = TrainConfig.from_preset(
        "record",
        {
            "max_minutes": 0.0,
            "max_episodes": 40,
            "cem_population": 20,
            "cem_train_height": 10,
            "randomizer": "bag7",
            "frames_per_second": 0.0,
        },
    )
    recorder = BestGames()
    train(config, callbacks=[recorder])
    assert_each_beats_the_last(recorder.best, recorder)
    for best in recorder.best:
        assert (best.height, best.randomizer) == (10, "bag7")
        assert_replays_exactly(best)
        assert_its_policy_plays_it(best)


@pytest.mark.parametrize("policy", ["dellacherie", "checkpoint"])
def test_evaluation_reports_its_best_game(policy: str, trained_dqn: TrainResult) -> None:
    recorder = BestGames()
    source: str | Path = trained_dqn.checkpoint if policy == "checkpoint" else policy
    result = evaluate(source, games=4, piece_cap=300, height=12, callbacks=[recorder])
    (best,) = recorder.best
    assert best.kind == "eval" and best.lines == result.max_lines
    assert best.seed == result.seeds[best.episode - 1]
    assert result.lines[best.episode - 1] == best.lines
    assert_replays_exactly(best)
    if policy == "dellacherie":
        assert best.policy["weights"] == [-1.0, 1.0, -1.0, -1.0, -4.0, -1.0]
    else:
        assert best.policy is None
