"""evaluate() and watch(): fixed seeds, piece caps, time budgets, reference controllers."""

from pathlib import Path

import pytest

from trainer.rl import TrainResult, evaluate, load_policy
from trainer.rl.evaluation import EVAL_SEED_BASE, evaluation_seeds
from trainer.rl.run import TRAIN_SEED_LIMIT


def test_evaluation_of_a_checkpoint_is_deterministic(trained_dqn: TrainResult) -> None:
    first = evaluate(trained_dqn.checkpoint, games=4, piece_cap=300)
    second = evaluate(trained_dqn.checkpoint.parent, games=4, piece_cap=300)
    assert first.lines == second.lines and first.pieces == second.pieces
    assert first.seeds == evaluation_seeds(4)


def test_evaluation_seeds_are_never_training_seeds() -> None:
    assert min(evaluation_seeds(100)) == EVAL_SEED_BASE >= TRAIN_SEED_LIMIT


@pytest.mark.parametrize("name", ["dellacherie", "bcts"])
def test_reference_controllers_play_like_checkpoints(name: str) -> None:
    result = evaluate(name, games=4, height=10)
    assert result.policy == name and result.truncated == 0
    assert result.mean_lines > 300
    assert evaluate(load_policy(name), games=4, height=10).lines == result.lines


def test_piece_cap_ends_games_and_is_reported() -> None:
    result = evaluate("bcts", games=3, piece_cap=500)
    assert result.pieces == [500, 500, 500]
    assert result.truncated == 3 and result.as_dict()["piece_cap"] == 500
    assert result.min_lines <= result.median_lines <= result.max_lines


def test_time_budget_cuts_long_games_evenly() -> None:
    result = evaluate("dellacherie", games=4, time_budget_s=0.5)
    assert result.seconds < 2.0
    assert result.truncated == 4 and result.min_lines > 0


def test_as_dict_has_the_documented_keys(trained_dqn: TrainResult) -> None:
    values = evaluate(trained_dqn.checkpoint, games=2, piece_cap=50).as_dict()
    assert {"games", "mean_lines", "median_lines", "min_lines", "max_lines", "piece_cap"} <= set(
        values
    )


def test_missing_checkpoint_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        evaluate(tmp_path / "nothing-here")
