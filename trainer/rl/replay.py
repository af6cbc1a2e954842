"""Replay buffer of afterstate transitions, holding every placement that followed each one."""

from __future__ import annotations

import numpy as np
import torch


class ReplayBuffer:
    """Ring buffer of (afterstate, the next piece's afterstates and their lines) transitions.

    Storing every next afterstate, not only the one played, lets the target take the max over
    them (Q-learning on afterstates) instead of following the exploring policy. Feature values
    are small integers or halves, which float16 holds exactly at half the memory.
    """

    def __init__(self, capacity: int, num_features: int, max_actions: int) -> None:
        self.capacity = capacity
        self.size = 0
        self._next_index = 0
        self.features = np.zeros((capacity, num_features), np.float16)
        self.next_features = np.zeros((capacity, max_actions, num_features), np.float16)
        self.next_lines = np.zeros((capacity, max_actions), np.int8)
        self.next_count = np.zeros(capacity, np.int16)

    def add(self, features: np.ndarray, next_features: np.ndarray, next_lines: np.ndarray) -> None:
        """Store one transition; empty `next_features` means the game ended after it."""
        i, n = self._next_index, len(next_features)
        self.features[i] = features
        if n:
            self.next_features[i, :n] = next_features
            self.next_lines[i, :n] = next_lines
        self.next_count[i] = n
        self._next_index = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(
        self, batch_size: int, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(features [b, k], next features [b, a, k], next lines [b, a], next valid [b, a])."""
        index = rng.integers(0, self.size, batch_size)
        count = self.next_count[index]
        valid = np.arange(self.next_lines.shape[1]) < count[:, None]
        return (
            torch.from_numpy(self.features[index].astype(np.float32)),
            torch.from_numpy(self.next_features[index].astype(np.float32)),
            torch.from_numpy(self.next_lines[index].astype(np.float32)),
            torch.from_numpy(valid),
        )
