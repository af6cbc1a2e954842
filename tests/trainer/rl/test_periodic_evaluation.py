"""Periodic evaluation during training, and the best-evaluated policy kept beside the latest."""

from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.rl import TrainConfig, evaluate, train
from trainer.rl.checkpoint import BEST_CHECKPOINT_NAME, CHECKPOINT_NAME, load_checkpoint
from trainer.rl.evaluation import SELECTION_SEED_BASE, evaluation_seeds, selection_seeds
from trainer.rl.events import Evaluation
from trainer.rl.policies import REFERENCE_POLICIES, LinearPolicy, load_policy
from trainer.rl.run import TRAIN_SEED_LIMIT, RunContext
from trainer.tetris import DELLACHERIE_WEIGHTS

from .conftest import SHORT_DQN, Recorder

EVALUATED = {**SHORT_DQN, "eval_every_pieces": 2_000, "eval_games": 4, "eval_piece_cap": 300}


class Evaluations(Recorder):
    """A recorder that also keeps evaluations."""

    def __init__(self) -> None:
        super().__init__()
        self.evaluations: list[Evaluation] = []

    def on_evaluation(self, e: Evaluation) -> None:
        self.evaluations.append(e)


def test_selection_seeds_are_neither_training_nor_evaluation_seeds() -> None:
    chosen = set(selection_seeds(1_000))
    assert min(chosen) == SELECTION_SEED_BASE >= TRAIN_SEED_LIMIT
    assert not chosen & set(evaluation_seeds(100_000))


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Evaluations, Path]:
    """A short dqn run that evaluates every 2,000 placements."""
    out = tmp_path_factory.mktemp("evaluated")
    recorder = Evaluations()
    train(TrainConfig.from_preset("quick", EVALUATED), callbacks=[recorder], checkpoint_dir=out)
    return recorder, out


def test_dqn_run_evaluates_every_interval_with_an_interval(
    evaluated_run: tuple[Evaluations, Path],
) -> None:
    recorder, _ = evaluated_run
    assert [e.total_pieces for e in recorder.evaluations] == [2_000, 4_000]
    for e in recorder.evaluations:
        assert e.games == 4 and e.piece_cap == 300
        assert e.ci95_low <= (e.ci95_high if e.ci95_high is not None else float("inf"))
        assert e.min_lines <= e.median_lines <= e.max_lines
    assert recorder.evaluations[0].best


def test_best_checkpoint_holds_the_best_ranked_policy(
    evaluated_run: tuple[Evaluations, Path],
) -> None:
    recorder, out = evaluated_run
    best = [c for c in recorder.checkpoints if c.kind == "best"]
    assert len(best) == sum(e.best for e in recorder.evaluations) >= 1
    assert best[-1].path == out / BEST_CHECKPOINT_NAME
    payload = load_checkpoint(out / BEST_CHECKPOINT_NAME)
    assert payload["state"] is None  # a policy to play, never to resume from
    # The best ranked, or, of policies that all outlived the cap, the newest.
    kept = [e for e in recorder.evaluations if e.best][-1]
    ranked = max(recorder.evaluations, key=lambda e: e.ci95_low)
    assert kept.ci95_low == ranked.ci95_low or kept.ended == 0 == ranked.ended
    assert payload["progress"]["total_pieces"] == kept.total_pieces
    # Played again on the same seeds, the kept policy scores what its evaluation said.
    again = evaluate(out, seeds=selection_seeds(4), piece_cap=300)
    assert again.lines and again.ci95_low == pytest.approx(kept.ci95_low)
    assert load_policy(out).name.endswith(BEST_CHECKPOINT_NAME)
    assert load_policy(out / CHECKPOINT_NAME).name.endswith(CHECKPOINT_NAME)


def test_evaluation_does_not_change_training(evaluated_run: tuple[Evaluations, Path]) -> None:
    recorder, _ = evaluated_run
    plain = Recorder()
    train(TrainConfig.from_preset("quick", SHORT_DQN), callbacks=[plain])
    assert [m.lines for m in plain.episodes] == [m.lines for m in recorder.episodes]


def run_context(tmp_path: Path, **overrides: object) -> tuple[RunContext, Evaluations]:
    """A run's bookkeeping that evaluates whenever asked, checkpointing into `tmp_path`."""
    config = TrainConfig.from_preset(
        "quick", {"eval_every_pieces": 1, "eval_games": 6, "eval_piece_cap": 400, **overrides}
    )
    recorder = Evaluations()
    return RunContext(config, [recorder], lambda: False, tmp_path, None), recorder


def linear(name: str, weights: np.ndarray) -> tuple[LinearPolicy, dict]:
    """A linear policy over Dellacherie's features, and its spec as a checkpoint stores it."""
    spec = {"kind": "linear", "feature_set": "dellacherie", "weights": torch.tensor(weights)}
    return LinearPolicy(name, weights, "dellacherie"), spec


def test_a_worse_policy_later_does_not_replace_the_best(tmp_path: Path) -> None:
    run, recorder = run_context(tmp_path)
    weak = np.array([-1.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # cares only for the landing height
    for name, weights in [("weak", weak), ("good", DELLACHERIE_WEIGHTS), ("weak again", weak)]:
        run.total_pieces += 1
        run.evaluate(*linear(name, weights))
    assert [e.best for e in recorder.evaluations] == [True, True, False]
    kept = load_policy(tmp_path)
    assert np.array_equal(kept.weights, DELLACHERIE_WEIGHTS)


def test_of_policies_that_outlive_the_cap_in_every_game_the_newest_is_kept(
    tmp_path: Path,
) -> None:
    # Dellacherie's controller outlives 400 pieces in every game, and so does a nudge of it:
    # the evaluation cannot tell them apart (their lower bounds differ only by the lines
    # cleared within the cap), and the newer one has trained longer.
    run, recorder = run_context(tmp_path)
    nudged = DELLACHERIE_WEIGHTS * np.array([1.05, 1, 1, 1, 1, 0.95])
    weak = np.array([-1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    for name, weights in [("good", DELLACHERIE_WEIGHTS), ("nudged", nudged), ("weak", weak)]:
        run.total_pieces += 1
        run.evaluate(*linear(name, weights))
    first, second, _ = recorder.evaluations
    assert first.ended == second.ended == 0
    assert second.ci95_low < first.ci95_low  # fewer lines within the cap, kept all the same
    assert [e.best for e in recorder.evaluations] == [True, True, False]
    assert np.array_equal(load_policy(tmp_path).weights, nudged)


def test_resumed_run_keeps_its_best_evaluation(tmp_path: Path) -> None:
    run, _ = run_context(tmp_path)
    run.evaluate(*linear("good", DELLACHERIE_WEIGHTS))
    run.save({}, linear("good", DELLACHERIE_WEIGHTS)[1])
    progress = load_checkpoint(tmp_path / CHECKPOINT_NAME)["progress"]
    config = TrainConfig.from_preset(
        "quick", {"eval_every_pieces": 1, "eval_games": 6, "eval_piece_cap": 400}
    )
    resumed = RunContext(config, [], lambda: False, tmp_path, progress)
    assert resumed.best_evaluation == run.best_evaluation
    resumed.evaluate(*linear("weak", np.array([-1.0, 0.0, 0.0, 0.0, 0.0, 0.0])))
    assert np.array_equal(load_policy(tmp_path).weights, DELLACHERIE_WEIGHTS)


def test_an_evaluation_cut_short_by_a_stop_is_dropped(tmp_path: Path) -> None:
    stop = []
    config = TrainConfig.from_preset(
        "quick", {"eval_every_pieces": 1, "eval_games": 4, "eval_piece_cap": 10**8}
    )
    run = RunContext(config, [], lambda: bool(stop), tmp_path, None)
    stop.append(True)
    assert run.evaluate(REFERENCE_POLICIES["dellacherie"], {}) is None
    assert run.best_evaluation is None
    assert not (tmp_path / BEST_CHECKPOINT_NAME).exists()


def test_cem_run_evaluates_its_mean_weights(tmp_path: Path) -> None:
    config = TrainConfig.from_preset(
        "record",
        {
            "max_minutes": 0.0,
            "max_episodes": 60,
            "cem_population": 20,
            "cem_elite_fraction": 0.2,
            "height": 10,
            "frames_per_second": 0.0,
            "eval_every_pieces": 1,
            "eval_games": 3,
            "eval_piece_cap": 1_000,
        },
    )
    recorder = Evaluations()
    train(config, callbacks=[recorder], checkpoint_dir=tmp_path)
    # One after each generation but the last: the run was over by then.
    assert [e.episode for e in recorder.evaluations] == [20, 40]
    assert (tmp_path / BEST_CHECKPOINT_NAME).is_file()
    assert load_policy(tmp_path).name.endswith(BEST_CHECKPOINT_NAME)
