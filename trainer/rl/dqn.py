"""dqn: an afterstate value network trained by Q-learning from a replay buffer.

Every placement of the current piece leads to a known board (an afterstate), so the agent
learns V(afterstate) and plays argmax over placements of lines + gamma * V, scoring all of
them in one batched forward pass. Several games run in lockstep so that one pass covers
them all. The target of V(s) is the best next placement under a slowly moving target
network: max over a of lines(a) + gamma * V_target(s'_a), or 0 once the game is lost.

Two cores without a second process: gradient updates run on a learner thread while the
main thread plays the next round with a copy of the network taken after the previous
round's updates. Batches are drawn on the main thread, so a run is the same with one
thread or two.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from trainer.rl.config import TrainConfig
from trainer.rl.features import afterstate_features, feature_names
from trainer.rl.network import ValueNetwork
from trainer.rl.options import value_options
from trainer.rl.policies import ValueNetPolicy, greedy_choices
from trainer.rl.replay import ReplayBuffer
from trainer.rl.run import RunContext, TrainingDiverged, numpy_rng_state, restore_numpy_rng

# Placements before a lost game that `replay_endings` keeps: about the discount's horizon,
# 1 / (1 - gamma), over which a lost game still weighs on the value.
ENDING_PLACEMENTS = 100
_NO_AFTERSTATES = (np.empty(0, np.int64), np.empty((0, 0), np.float32), np.empty(0, np.int64))


def linear_schedule(start: float, end: float, duration: int, t: int) -> float:
    """Anneal from `start` to `end` over `duration` steps, then hold `end`."""
    return start + (end - start) * min(1.0, t / duration)


@dataclass
class Update:
    """One gradient step to take: its batch, learning rate and number."""

    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
    lr: float
    number: int
    poison: bool = False


class Learner:
    """The value network, its target and optimiser; updates run on their own thread."""

    def __init__(self, config: TrainConfig, num_features: int) -> None:
        self.config = config
        self.value = ValueNetwork(num_features, config.hidden_size)
        self.target = ValueNetwork(num_features, config.hidden_size)
        self.target.load_state_dict(self.value.state_dict())
        # The network the games are played with; it catches up in finish().
        self.acting = ValueNetwork(num_features, config.hidden_size)
        self.acting.load_state_dict(self.value.state_dict())
        self.optimizer = torch.optim.Adam(self.value.parameters(), lr=config.lr)
        self.updates = 0
        self._thread = ThreadPoolExecutor(1) if config.threads > 1 else None
        self._in_flight: Future[list[tuple[Update, float, float]]] | None = None
        self._done: list[tuple[Update, float, float]] = []
        # Mean |TD error| of each update finished since the caller last took them.
        self.td_errors: list[float] = []

    @property
    def lr(self) -> float:
        """The learning rate of the latest update."""
        return self.optimizer.param_groups[0]["lr"]

    def start(self, updates: list[Update]) -> None:
        """Begin the updates: on the learner thread, or right here with one thread."""
        if self._thread:
            self._in_flight = self._thread.submit(self._run, updates)
        else:
            self._done = self._run(updates)

    def finish(self) -> list[float]:
        """Wait for the updates begun last, sync the acting network and return the losses."""
        done = self._in_flight.result() if self._in_flight else self._done
        self._in_flight, self._done = None, []
        for update, loss, _ in done:
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"the TD loss became {loss} at gradient update {update.number} "
                    f"(lr {update.lr:.3g}); no checkpoint was written, the last one is "
                    "intact. Lower lr or max_grad_norm and start again."
                )
        self.acting.load_state_dict(self.value.state_dict())
        self.td_errors.extend(td_error for _, _, td_error in done)
        return [loss for _, loss, _ in done]

    def close(self) -> None:
        """Stop the learner thread."""
        if self._thread:
            self._thread.shutdown()

    def _run(self, updates: list[Update]) -> list[tuple[Update, float, float]]:
        done = []
        for update in updates:
            for group in self.optimizer.param_groups:
                group["lr"] = update.lr
            loss, td_error = td_update(self, update)
            done.append((update, loss, td_error))
            if not math.isfinite(loss):
                break
        return done


def train_dqn(config: TrainConfig, run: RunContext, resumed: dict[str, Any] | None) -> None:
    """Run the dqn learner until `run` says to finish, then write the final checkpoint."""
    # seeding
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)

    # networks
    num_features = len(feature_names(config.features))
    learner = Learner(config, num_features)
    if resumed:
        learner.value.load_state_dict(resumed["value"])
        learner.target.load_state_dict(resumed["target"])
        learner.acting.load_state_dict(resumed["value"])
        learner.optimizer.load_state_dict(resumed["optimizer"])
        learner.updates = resumed["updates"]
        rng = restore_numpy_rng(resumed["numpy_rng"])
        torch.set_rng_state(resumed["torch_rng"])
    # A resumed run refills its buffer (it is not saved) before it learns again.
    buffer = ReplayBuffer(config.buffer_size, num_features, 4 * config.width, config.replay_endings)
    learning_starts = run.total_pieces + max(config.learning_starts, config.batch_size)
    inputs_standardised = resumed is not None

    def policy(network: ValueNetwork) -> dict[str, Any]:
        return {
            "kind": "value_net",
            "features": config.features,
            "hidden_size": config.hidden_size,
            "gamma": config.gamma,
            "state_dict": network.state_dict(),
        }

    def checkpoint() -> None:
        losses.extend(learner.finish())
        state = {
            "value": learner.value.state_dict(),
            "target": learner.target.state_dict(),
            "optimizer": learner.optimizer.state_dict(),
            "numpy_rng": numpy_rng_state(rng),
            "torch_rng": torch.get_rng_state(),
            "updates": learner.updates,
        }
        run.save(state, policy(learner.value))

    def evaluation() -> None:
        # The policy the games play now: the acting network, which only finish() changes,
        # so the learner's updates go on meanwhile and training is the same as without.
        name = f"episode {run.episodes}"
        acting = ValueNetPolicy(name, learner.acting, config.features, config.gamma)
        run.evaluate(acting, policy(learner.acting))

    # the games, played in lockstep
    games = [run.new_game(rng) for _ in range(config.num_envs)]
    candidates = [afterstate_features(game, config.features) for game in games]
    returns = [0.0] * config.num_envs
    histories = [bytearray() for _ in games]  # each game's placements, to replay a best one
    # each game's last transitions (rows of the buffer), kept apart if the game is lost
    last_rows: list[deque[int]] = [deque(maxlen=ENDING_PLACEMENTS) for _ in games]
    pieces_since_update = 0
    losses: list[float] = []
    faced: list[float] = []  # the greedy value of each board played, until a game ends
    last_loss = None

    try:
        while not run.finished():
            epsilon = linear_schedule(
                config.epsilon_start,
                config.epsilon_end,
                config.epsilon_decay_pieces,
                run.total_pieces,
            )
            with torch.no_grad():
                greedy, best = greedy_choices(learner.acting, candidates, config.gamma)
            faced.extend(best)
            for i, game in enumerate(games):
                actions, features, lines = candidates[i]
                if rng.random() < epsilon:
                    choice = int(rng.integers(len(actions)))
                else:
                    choice = int(np.flatnonzero(actions == greedy[i])[0])
                game.step(actions[choice])
                histories[i].append(int(actions[choice]))
                run.total_pieces += 1
                returns[i] += float(lines[choice])
                if game.game_over:
                    after = _NO_AFTERSTATES
                else:
                    after = afterstate_features(game, config.features)
                last_rows[i].append(buffer.add(features[choice], after[1], after[2]))
                if game.game_over:
                    buffer.keep_ending(last_rows[i])
                if game.game_over or (config.piece_cap and game.pieces >= config.piece_cap):
                    if losses:
                        last_loss = sum(losses) / len(losses)
                        losses.clear()
                    extra = {"charts/updates": learner.updates, "charts/lr": learner.lr}
                    # The learner's view of itself: what it expects of the boards it met,
                    # and how far its targets are from it, since the last game ended.
                    if faced:
                        extra["dqn/value"] = sum(faced) / len(faced)
                        faced.clear()
                    if learner.td_errors:
                        extra["dqn/td_error"] = sum(learner.td_errors) / len(learner.td_errors)
                        learner.td_errors.clear()
                    run.end_episode(game, returns[i], last_loss, epsilon, extra, histories[i].copy)
                    games[i] = game = run.new_game(rng)
                    returns[i] = 0.0
                    histories[i] = bytearray()
                    last_rows[i].clear()
                    after = afterstate_features(game, config.features)
                candidates[i] = after
            if run.frame_due():
                options = functools.partial(
                    value_options,
                    games[0],
                    learner.acting,
                    config.features,
                    config.gamma,
                    candidates[0],
                )
                run.send_frame(games[0], options)

            # learning: a few gradient steps per lockstep round, not one per game
            if run.total_pieces < learning_starts:
                continue
            if not inputs_standardised:
                learner.value.set_feature_statistics(buffer.features[: buffer.size])
                learner.target.load_state_dict(learner.value.state_dict())
                learner.acting.load_state_dict(learner.value.state_dict())
                inputs_standardised = True
            losses.extend(learner.finish())
            pieces_since_update += config.num_envs
            updates = []
            while pieces_since_update >= config.train_every:
                pieces_since_update -= config.train_every
                learner.updates += 1
                lr = linear_schedule(
                    config.lr, config.lr_final, config.lr_decay_pieces, run.total_pieces
                )
                batch = buffer.sample(config.batch_size, rng)
                poison = learner.updates == config.inject_nan_at_update
                updates.append(Update(batch, lr, learner.updates, poison))
            learner.start(updates)
            if run.evaluation_due():
                evaluation()
            if run.checkpoint_due():
                checkpoint()
        checkpoint()
    finally:
        learner.close()


def td_update(learner: Learner, update: Update) -> tuple[float, float]:
    """One gradient step towards the target network's best next placement.

    Returns the loss (the mean squared TD error) and the mean absolute TD error.
    """
    config, value, target = learner.config, learner.value, learner.target
    features, next_features, next_lines, next_valid = update.batch
    with torch.no_grad():
        # Only about 23 of the 4 * width slots hold a placement: score just those.
        next_scores = torch.full_like(next_lines, -math.inf)
        next_scores[next_valid] = next_lines[next_valid] + config.gamma * target(
            next_features[next_valid]
        )
        best_next = next_scores.max(dim=1).values
        td_target = torch.where(next_valid.any(dim=1), best_next, 0.0)
    predicted = value(features)
    loss = F.mse_loss(predicted, td_target)
    with torch.no_grad():
        td_error = (predicted - td_target).abs().mean().item()
    if update.poison:
        loss = loss * math.nan
    if not torch.isfinite(loss):
        return loss.item(), td_error
    learner.optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(value.parameters(), config.max_grad_norm)
    learner.optimizer.step()
    with torch.no_grad():
        for moving, learned in zip(target.parameters(), value.parameters(), strict=True):
            moving.lerp_(learned, config.target_tau)
    return loss.item(), td_error
