"""Greedy players: linear controllers (reference or learned by cem) and value networks (dqn)."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainer.rl.checkpoint import load_checkpoint, policy_checkpoint_path
from trainer.rl.features import afterstate_features, feature_names
from trainer.rl.network import ValueNetwork
from trainer.tetris import BCTS_WEIGHTS, DELLACHERIE_WEIGHTS, FEATURE_SETS, Afterstates, TetrisGame

# Long games are played in chunks of this many pieces so that a stop or a deadline is seen
# within a few hundredths of a second.
CHUNK_PIECES = 20_000
POLL_S = 0.05
HALT = -1


@dataclass
class LinearPolicy:
    """Places each piece where `features @ weights` of the afterstate is largest."""

    name: str
    weights: np.ndarray
    feature_set: str

    def choose(self, games: Sequence[TetrisGame]) -> list[int]:
        """The greedy action for each game."""
        actions = []
        for game in games:
            after = game.afterstates(self.feature_set)
            actions.append(int(after.actions[np.argmax(linear_values(after, self.weights))]))
        return actions


def linear_values(after: Afterstates, weights: np.ndarray) -> np.ndarray:
    """Each afterstate's `features . weights`, summed feature by feature as the engine's
    greedy play does (and the browser's port): a BLAS product may round two equal values
    apart, and pick another of the tied placements than the engine would."""
    values = np.zeros(len(after.actions))
    for column, weight in enumerate(np.asarray(weights, np.float64)):
        values += weight * after.features[:, column].astype(np.float64)
    return values


@dataclass
class ValueNetPolicy:
    """Places each piece where lines now + gamma * value of the afterstate is largest."""

    name: str
    network: ValueNetwork
    features: str
    gamma: float

    @torch.no_grad()
    def choose(self, games: Sequence[TetrisGame]) -> list[int]:
        """The greedy action for each game, from one forward pass over all their afterstates."""
        candidates = [afterstate_features(game, self.features) for game in games]
        return greedy_actions(self.network, candidates, self.gamma)


Policy = LinearPolicy | ValueNetPolicy

REFERENCE_POLICIES = {
    "dellacherie": LinearPolicy("dellacherie", DELLACHERIE_WEIGHTS, "dellacherie"),
    "bcts": LinearPolicy("bcts", BCTS_WEIGHTS, "bcts"),
}


def greedy_actions(
    network: ValueNetwork,
    candidates: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    gamma: float,
) -> list[int]:
    """argmax of lines + gamma * value over each game's (actions, features, lines)."""
    return greedy_choices(network, candidates, gamma)[0]


def greedy_choices(
    network: ValueNetwork,
    candidates: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    gamma: float,
) -> tuple[list[int], list[float]]:
    """greedy_actions, and each game's best score: the value of the board it faces."""
    features = torch.from_numpy(np.concatenate([c[1] for c in candidates]))
    lines = np.concatenate([c[2] for c in candidates])
    scores = lines + gamma * network(features).numpy()
    actions, best, start = [], [], 0
    for game_actions, _, _ in candidates:
        end = start + len(game_actions)
        choice = int(np.argmax(scores[start:end]))
        actions.append(int(game_actions[choice]))
        best.append(float(scores[start + choice]))
        start = end
    return actions, best


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread inside the block.

    The value network is small: a forward pass over a few hundred afterstates takes tens of
    microseconds, and a second intra-op thread only adds synchronisation (measured 6-9 times
    slower on two busy cores).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_policy(policy: str | Path) -> Policy:
    """A reference controller by name ("dellacherie", "bcts") or the policy in a checkpoint.

    A run's folder gives its best-evaluated policy, or its latest one if none was evaluated.
    """
    if isinstance(policy, str) and policy in REFERENCE_POLICIES:
        return REFERENCE_POLICIES[policy]
    file = policy_checkpoint_path(policy)
    payload = load_checkpoint(file)
    spec = payload["policy"]
    name = str(file)
    if spec["kind"] == "linear":
        return LinearPolicy(name, spec["weights"].double().numpy(), spec["feature_set"])
    network = ValueNetwork(len(feature_names(spec["features"])), spec["hidden_size"])
    network.load_state_dict(spec["state_dict"])
    network.eval()
    return ValueNetPolicy(name, network, spec["features"], spec["gamma"])


def play_linear_in_threads(
    games: Sequence[TetrisGame],
    weights: Sequence[np.ndarray],
    feature_set: str,
    *,
    piece_cap: int,
    threads: int,
    keep_going: Callable[[], bool],
    on_game_over: Callable[[int], None] = lambda index: None,
) -> bool:
    """Play every game with its own weights to its end or `piece_cap`, on `threads` threads.

    The engine releases the GIL, so Python threads use all cores without spawning processes.
    `keep_going` is polled about twenty times a second; once it returns False the games are left
    where they are and this returns False. `on_game_over(i)` runs on the calling thread.
    """
    assert len(FEATURE_SETS[feature_set]) == len(weights[0])
    halt = threading.Event()
    # queue.Queue, not SimpleQueue: with two consumers, SimpleQueue.get(timeout=...) on
    # CPython 3.11 can turn a lapsed timeout into an endless wait.
    pending: queue.Queue[int] = queue.Queue()
    finished: queue.Queue[int] = queue.Queue()
    for index in range(len(games)):
        pending.put(index)
    errors: list[BaseException] = []

    def play() -> None:
        try:
            while not halt.is_set():
                try:
                    index = pending.get(timeout=POLL_S)
                except queue.Empty:
                    continue  # the last games are on other threads; wait for the halt
                if index == HALT:
                    return
                # One chunk, then back of the queue: under a deadline all games get as far.
                game = games[index]
                left = piece_cap - game.pieces if piece_cap else CHUNK_PIECES
                if not game.game_over and left > 0:
                    game.play_linear(weights[index], feature_set, min(left, CHUNK_PIECES))
                    pending.put(index)
                else:
                    finished.put(index)
        except BaseException as error:  # surfaced on the calling thread below
            errors.append(error)
            halt.set()

    workers = [threading.Thread(target=play, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    reported = 0
    while reported < len(games) and not halt.is_set():
        try:
            index = finished.get(timeout=POLL_S)
        except queue.Empty:
            pass
        else:
            on_game_over(index)
            reported += 1
        if not keep_going():
            halt.set()
    halt.set()
    for _ in workers:
        pending.put(HALT)  # wakes a thread waiting for a game now, not at its next poll
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return reported == len(games)
