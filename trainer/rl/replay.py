"""Replay buffer of afterstate transitions, holding every placement that followed each one."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class ReplayBuffer:
    """Ring buffer of (afterstate, the next piece's afterstates and their lines) transitions.

    Storing every next afterstate, not only the one played, lets the target take the max over
    them (Q-learning on afterstates) instead of following the exploring policy. Feature values
    are small integers or halves, which float16 holds exactly at half the memory.

    A second ring keeps the last placements of lost games (`keep_ending`). Once an agent plays
    games of thousands of pieces, the main ring holds only their low, safe boards: without
    the endings every state would be worth about the same, and the greedy policy would
    become random (docs/LEARNING.md). Batches draw uniformly from both rings together.
    """

    def __init__(
        self, capacity: int, num_features: int, max_actions: int, endings_capacity: int = 0
    ) -> None:
        self.capacity = capacity
        self.endings_capacity = endings_capacity
        self.size = 0
        self.endings_size = 0
        self._next_index = 0
        self._next_ending = 0
        rows = capacity + endings_capacity  # the endings ring follows the main one
        self.features = np.zeros((rows, num_features), np.float16)
        self.next_features = np.zeros((rows, max_actions, num_features), np.float16)
        self.next_lines = np.zeros((rows, max_actions), np.int8)
        self.next_count = np.zeros(rows, np.int16)

    def add(self, features: np.ndarray, next_features: np.ndarray, next_lines: np.ndarray) -> int:
        """Store one transition and return its row; empty `next_features`: the game ended."""
        i, n = self._next_index, len(next_features)
        self.features[i] = features
        if n:
            self.next_features[i, :n] = next_features
            self.next_lines[i, :n] = next_lines
        self.next_count[i] = n
        self._next_index = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        return i

    def keep_ending(self, rows: Sequence[int]) -> None:
        """Copy a lost game's last transitions (rows of the main ring) into the endings ring."""
        for row in list(rows)[-self.endings_capacity :] if self.endings_capacity else ():
            j = self.capacity + self._next_ending
            self.features[j] = self.features[row]
            self.next_features[j] = self.next_features[row]
            self.next_lines[j] = self.next_lines[row]
            self.next_count[j] = self.next_count[row]
            self._next_ending = (self._next_ending + 1) % self.endings_capacity
            self.endings_size = min(self.endings_size + 1, self.endings_capacity)

    def sample(
        self, batch_size: int, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(features [b, k], next features [b, a, k], next lines [b, a], next valid [b, a])."""
        index = rng.integers(0, self.size + self.endings_size, batch_size)
        # Draws past the main ring's rows land in the endings ring.
        index = np.where(index < self.size, index, index - self.size + self.capacity)
        count = self.next_count[index]
        valid = np.arange(self.next_lines.shape[1]) < count[:, None]
        return (
            torch.from_numpy(self.features[index].astype(np.float32)),
            torch.from_numpy(self.next_features[index].astype(np.float32)),
            torch.from_numpy(self.next_lines[index].astype(np.float32)),
            torch.from_numpy(valid),
        )
