"""The afterstate value network: features of a board after a placement -> expected future lines."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class ValueNetwork(nn.Module):
    """Two-hidden-layer MLP over standardised afterstate features, one value per afterstate."""

    def __init__(self, num_features: int, hidden_size: int) -> None:
        super().__init__()
        # Fixed input statistics, saved with the weights; set once from early training data.
        self.register_buffer("feature_mean", torch.zeros(num_features))
        self.register_buffer("feature_std", torch.ones(num_features))
        self.body = nn.Sequential(
            nn.Linear(num_features, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, 1),
        )

    def set_feature_statistics(self, samples: np.ndarray) -> None:
        """Standardise inputs with the mean and spread of `samples` [n, num_features]."""
        samples = torch.as_tensor(samples, dtype=torch.float32)
        self.feature_mean.copy_(samples.mean(0))
        # Counts that barely vary early on (lines, eroded cells) must not blow up later.
        # One sample has no spread (its std is NaN): its inputs are only centred.
        spread = samples.std(0) if len(samples) > 1 else torch.ones(samples.shape[1])
        self.feature_std.copy_(spread.clamp(min=1.0))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Values of afterstates [..., num_features] -> [...]."""
        return self.body((features - self.feature_mean) / self.feature_std).squeeze(-1)
