"""dqn: an afterstate value network trained by Q-learning from a replay buffer.

Every placement of the current piece leads to a known board (an afterstate), so the agent
learns V(afterstate) and plays argmax over placements of lines + gamma * V, scoring all of
them in one batched forward pass. Several games run in lockstep so that one pass covers
them all. The target of V(s) is the best next placement under a slowly moving target
network: max over a of lines(a) + gamma * V_target(s'_a), or 0 once the game is lost.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from trainer.rl.config import TrainConfig
from trainer.rl.features import afterstate_features, feature_names
from trainer.rl.network import ValueNetwork
from trainer.rl.policies import greedy_actions
from trainer.rl.replay import ReplayBuffer
from trainer.rl.run import RunContext, TrainingDiverged, numpy_rng_state, restore_numpy_rng

_NO_AFTERSTATES = (np.empty(0, np.int64), np.empty((0, 0), np.float32), np.empty(0, np.int64))


def linear_schedule(start: float, end: float, duration: int, t: int) -> float:
    """Anneal from `start` to `end` over `duration` steps, then hold `end`."""
    return start + (end - start) * min(1.0, t / duration)


def train_dqn(config: TrainConfig, run: RunContext, resumed: dict[str, Any] | None) -> None:
    """Run the dqn learner until `run` says to finish, then write the final checkpoint."""
    # seeding
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)

    # networks
    num_features = len(feature_names(config.features))
    value = ValueNetwork(num_features, config.hidden_size)
    target = ValueNetwork(num_features, config.hidden_size)
    optimizer = torch.optim.Adam(value.parameters(), lr=config.lr)
    target.load_state_dict(value.state_dict())
    updates = 0
    if resumed:
        value.load_state_dict(resumed["value"])
        target.load_state_dict(resumed["target"])
        optimizer.load_state_dict(resumed["optimizer"])
        rng = restore_numpy_rng(resumed["numpy_rng"])
        torch.set_rng_state(resumed["torch_rng"])
        updates = resumed["updates"]
    # A resumed run refills its buffer (it is not saved) before it learns again.
    buffer = ReplayBuffer(config.buffer_size, num_features, 4 * config.width)
    learning_starts = run.total_pieces + max(config.learning_starts, config.batch_size)
    inputs_standardised = resumed is not None

    def state() -> dict[str, Any]:
        return {
            "value": value.state_dict(),
            "target": target.state_dict(),
            "optimizer": optimizer.state_dict(),
            "numpy_rng": numpy_rng_state(rng),
            "torch_rng": torch.get_rng_state(),
            "updates": updates,
        }

    def policy() -> dict[str, Any]:
        return {
            "kind": "value_net",
            "features": config.features,
            "hidden_size": config.hidden_size,
            "gamma": config.gamma,
            "state_dict": value.state_dict(),
        }

    # the games, played in lockstep
    games = [run.new_game(rng) for _ in range(config.num_envs)]
    candidates = [afterstate_features(game, config.features) for game in games]
    returns = [0.0] * config.num_envs
    histories = [bytearray() for _ in games]  # each game's placements, to replay a best one
    pieces_since_update = 0
    loss_sum, loss_count, last_loss = 0.0, 0, None

    while not run.finished():
        epsilon = linear_schedule(
            config.epsilon_start, config.epsilon_end, config.epsilon_decay_pieces, run.total_pieces
        )
        with torch.no_grad():
            greedy = greedy_actions(value, candidates, config.gamma)
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
            buffer.add(features[choice], after[1], after[2])
            if game.game_over or (config.piece_cap and game.pieces >= config.piece_cap):
                if loss_count:
                    last_loss, loss_sum, loss_count = loss_sum / loss_count, 0.0, 0
                extra = {"charts/updates": updates, "charts/lr": optimizer.param_groups[0]["lr"]}
                run.end_episode(game, returns[i], last_loss, epsilon, extra, histories[i].copy)
                games[i] = game = run.new_game(rng)
                returns[i] = 0.0
                histories[i] = bytearray()
                after = afterstate_features(game, config.features)
            candidates[i] = after
        if run.frame_due():
            run.send_frame(games[0])

        # learning: a few gradient steps per lockstep round, not one per game
        if run.total_pieces < learning_starts:
            continue
        if not inputs_standardised:
            value.set_feature_statistics(buffer.features[: buffer.size].astype(np.float32))
            target.load_state_dict(value.state_dict())
            inputs_standardised = True
        pieces_since_update += config.num_envs
        while pieces_since_update >= config.train_every:
            pieces_since_update -= config.train_every
            updates += 1
            lr = linear_schedule(
                config.lr, config.lr_final, config.lr_decay_pieces, run.total_pieces
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = buffer.sample(config.batch_size, rng)
            poison = updates == config.inject_nan_at_update
            loss = td_update(value, target, optimizer, batch, config, poison)
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"the TD loss became {loss} at gradient update {updates} "
                    f"(placement {run.total_pieces}, lr {lr:.3g}); no checkpoint was written, "
                    "the last one is intact. Lower lr or max_grad_norm and start again."
                )
            loss_sum += loss
            loss_count += 1
        if run.checkpoint_due():
            run.save(state(), policy())

    run.save(state(), policy())


def td_update(
    value: ValueNetwork,
    target: ValueNetwork,
    optimizer: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    config: TrainConfig,
    poison: bool,
) -> float:
    """One gradient step towards the target network's best next placement; returns the loss."""
    features, next_features, next_lines, next_valid = batch
    with torch.no_grad():
        # Only about 23 of the 4 * width slots hold a placement: score just those.
        next_scores = torch.full_like(next_lines, -math.inf)
        next_scores[next_valid] = next_lines[next_valid] + config.gamma * target(
            next_features[next_valid]
        )
        best_next = next_scores.max(dim=1).values
        td_target = torch.where(next_valid.any(dim=1), best_next, 0.0)
    loss = F.mse_loss(value(features), td_target)
    if poison:
        loss = loss * math.nan
    if not torch.isfinite(loss):
        return loss.item()
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(value.parameters(), config.max_grad_norm)
    optimizer.step()
    with torch.no_grad():
        for moving, learned in zip(target.parameters(), value.parameters(), strict=True):
            moving.lerp_(learned, config.target_tau)
    return loss.item()
