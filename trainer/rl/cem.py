"""cem: noisy cross-entropy search over linear weights of afterstate features.

Szita & Lőrincz (2006), over Thiery & Scherrer's BCTS features (2009) or the DT features of
Scherrer et al. (2015), BCTS's and pattern diversity (`cem_features`): sample weight vectors
from a Gaussian, play a training game with each, refit the Gaussian to the best fraction and
add noise so the search does not collapse early. Selection only works while the cap on
training games rarely binds, so the cap grows with the elite's games, and training may use a
lower board (`cem_train_height`), where games are exponentially shorter, so that agents which
would outlive any affordable cap on the full board are still told apart.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np
import torch

from trainer.rl.batches import LinearBatch, PlayedGame
from trainer.rl.cmaes import CMAES
from trainer.rl.config import ConfigError, TrainConfig
from trainer.rl.events import MAX_REPLAY_PIECES, linear_policy_record
from trainer.rl.options import linear_options
from trainer.rl.policies import LinearPolicy
from trainer.rl.run import RunContext, new_seed, numpy_rng_state, restore_numpy_rng
from trainer.tetris import FEATURE_SETS, TetrisGame

# What a checkpoint written before `cem_features` existed learned over.
SAVED_FEATURE_SET_BEFORE_CHOICE = "bcts"
# The first generation's cap: random weights lose within a few hundred pieces.
INITIAL_PIECE_CAP = 1_000


def train_cem(config: TrainConfig, run: RunContext, resumed: dict[str, Any] | None) -> None:
    """Run the cem learner until `run` says to finish, then write the final checkpoint."""
    feature_set = config.cem_features
    if resumed:
        saved = resumed.get("feature_set", SAVED_FEATURE_SET_BEFORE_CHOICE)
        if saved != feature_set:
            raise ConfigError(
                {"cem_features": f"must stay {saved!r} to resume, got {feature_set!r}"}
            )
        saved = "cma_es" if "cma" in resumed else "cross_entropy"
        if saved != config.cem_method:
            raise ConfigError(
                {"cem_method": f"must stay {saved!r} to resume, got {config.cem_method!r}"}
            )
    # seeding
    rng = np.random.default_rng(config.seed)
    # the search distribution
    num_weights = len(FEATURE_SETS[feature_set])
    mean = np.zeros(num_weights)
    std = np.full(num_weights, config.cem_initial_std)
    generation, piece_cap = 0, INITIAL_PIECE_CAP
    if resumed:
        mean, std = resumed["mean"].double().numpy(), resumed["std"].double().numpy()
        generation, piece_cap = resumed["generation"], resumed["piece_cap"]
        rng = restore_numpy_rng(resumed["numpy_rng"])
    cma: CMAES | None = None
    if config.cem_method == "cma_es":
        if resumed:
            cma = CMAES.from_state(mean, resumed["cma"])
        else:
            cma = CMAES.start(mean, config.cem_initial_std)
        std = cma.std
    if config.piece_cap:
        piece_cap = min(piece_cap, config.piece_cap)
    train_height = min(config.cem_train_height or config.height, config.height)
    elite_count = round(config.cem_population * config.cem_elite_fraction)
    games_per_generation = config.cem_population * config.cem_games_per_sample

    def state() -> dict[str, Any]:
        return {
            "mean": torch.from_numpy(mean),
            "std": torch.from_numpy(std),
            "generation": generation,
            "piece_cap": piece_cap,
            "numpy_rng": numpy_rng_state(rng),
            "feature_set": feature_set,
            **({"cma": cma.to_state()} if cma else {}),
        }

    def policy() -> dict[str, Any]:
        return {"kind": "linear", "feature_set": feature_set, "weights": torch.from_numpy(mean)}

    # Viewers watch the current mean weights play a full-size game, one piece per frame.
    showcase = TetrisGame(config.width, config.height, config.randomizer, config.seed)

    def keep_going() -> bool:
        if run.frame_due():
            showcase.play_linear(mean, feature_set, 1)
            if showcase.game_over or (config.piece_cap and showcase.pieces >= config.piece_cap):
                showcase.reset()
            run.send_frame(showcase, lambda: linear_options(showcase, mean, feature_set))
        return not run.finished()

    while not run.finished():
        noise = config.cem_noise
        if config.cem_noise_decay_generations:
            noise *= max(0.0, 1.0 - generation / config.cem_noise_decay_generations)
        if cma:
            samples = cma.ask(rng, config.cem_population)
        else:
            samples = mean + std * rng.standard_normal((config.cem_population, num_weights))
        batch = LinearBatch(
            config.width,
            train_height,
            config.randomizer,
            feature_set,
            piece_cap,
            tuple(new_seed(rng) for _ in range(games_per_generation)),
            np.repeat(samples, config.cem_games_per_sample, axis=0),
        )
        started = time.monotonic()
        played = run.play_batch(batch, keep_going)
        if played is None:
            break  # stopped or out of budget mid-generation: keep the last whole generation
        seconds = time.monotonic() - started
        games = played.games
        lines = np.array([game.lines for game in games]).reshape(config.cem_population, -1)
        pieces = np.array([game.pieces for game in games]).reshape(config.cem_population, -1)
        fitness = lines.mean(axis=1)
        elite = np.argsort(fitness)[-elite_count:]
        if cma:  # it adapts its own spread: no added noise, no floor
            cma.tell(samples, fitness, elite_count)
            mean, std, noise = cma.mean, cma.std, 0.0
        else:
            mean = samples[elite].mean(axis=0)
            std = np.sqrt(samples[elite].var(axis=0) + noise)
            # Relative: a greedy policy depends only on the direction of its weights.
            floor = config.cem_noise_floor * float(np.sqrt(np.mean(mean**2)))
            std = np.maximum(std, floor)
        generation += 1

        extra = {
            "cem/generation": generation,
            "cem/population_mean_lines": float(fitness.mean()),
            "cem/elite_mean_lines": float(fitness[elite].mean()),
            "cem/weight_std": float(std.mean()),
            "cem/noise": noise,
            "cem/piece_cap": piece_cap,
            "cem/capped_games": int((pieces >= piece_cap).sum()),
            "cem/train_height": train_height,
            "cem/generation_seconds": seconds,
            "cem/workers": played.workers,
        }
        # The search distribution itself, feature by feature: the viewer's weight chart.
        for name, weight, spread in zip(FEATURE_SETS[feature_set], mean, std, strict=True):
            extra[f"cem/weight/{name}"] = float(weight)
            extra[f"cem/weight_std/{name}"] = float(spread)
        # The next cap leaves room for the elite to do much better than it just did.
        piece_cap = max(INITIAL_PIECE_CAP, int(config.cem_cap_growth * np.median(pieces[elite])))
        if config.piece_cap:
            piece_cap = min(piece_cap, config.piece_cap)
        for game, weights in zip(games, batch.weights, strict=True):
            run.total_pieces += game.pieces
            replay = functools.partial(replay_linear_game, game, weights, feature_set)
            played_by = linear_policy_record(weights, feature_set)
            run.end_episode(game, game.lines, None, None, extra, replay, played_by)
        if run.evaluation_due():
            run.evaluate(LinearPolicy(f"generation {generation}", mean, feature_set), policy())
        if run.checkpoint_due():
            run.save(state(), policy())

    run.save(state(), policy())


def replay_linear_game(
    game: TetrisGame | PlayedGame, weights: np.ndarray, feature_set: str
) -> np.ndarray:
    """The placements of a finished game that `weights` played greedily, played again."""
    again = TetrisGame(game.width, game.height, game.randomizer, game.seed)
    return again.play_linear_recorded(weights, feature_set, min(game.pieces, MAX_REPLAY_PIECES))
