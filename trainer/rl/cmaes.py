"""CMA-ES: the covariance matrix adaptation evolution strategy, for cem's weight search.

The (mu/mu_w, lambda)-CMA-ES of Hansen's tutorial ("The CMA Evolution Strategy: A Tutorial",
2016, its default parameters), with positive recombination weights only. Boumaza (2009)
trained Tetris controllers with it over BCTS-like features. Where the cross-entropy method
refits a diagonal Gaussian to the elite and adds noise by hand, CMA-ES moves the mean along
the elite's weighted mean step, learns the correlations between weights, and sets its step
size from how far consecutive steps agree: it neither freezes nor needs a noise schedule.

Fitness is used by rank only, so game lengths' heavy tail weighs nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class CMAES:
    """The search state: mean, step size, covariance, and the two evolution paths."""

    mean: np.ndarray
    sigma: float
    cov: np.ndarray
    path_sigma: np.ndarray
    path_c: np.ndarray
    generation: int = 0

    @classmethod
    def start(cls, mean: np.ndarray, sigma: float) -> CMAES:
        """A search around `mean` with every weight's spread `sigma`."""
        n = len(mean)
        zeros = np.zeros(n)
        return cls(np.array(mean, dtype=float), float(sigma), np.eye(n), zeros, zeros.copy())

    @property
    def std(self) -> np.ndarray:
        """Each weight's standard deviation under the search distribution."""
        return self.sigma * np.sqrt(np.diag(self.cov))

    def _eigen(self) -> tuple[np.ndarray, np.ndarray]:
        """B and D of cov = B diag(D**2) B^T (D clipped away from 0)."""
        values, vectors = np.linalg.eigh((self.cov + self.cov.T) / 2)
        return vectors, np.sqrt(np.maximum(values, 1e-20))

    def ask(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """`count` samples of the search distribution, one per row."""
        basis, scales = self._eigen()
        z = rng.standard_normal((count, len(self.mean)))
        return self.mean + self.sigma * (z * scales) @ basis.T

    def tell(self, samples: np.ndarray, fitness: np.ndarray, parents: int) -> None:
        """Update from `samples` and their `fitness` (higher is better), recombining the
        best `parents`."""
        n = len(self.mean)
        ranks = np.log((len(samples) + 1) / 2) - np.log(np.arange(1, parents + 1))
        weights = np.maximum(ranks, 0.0)  # log weights; with many parents the last may be 0
        weights /= weights.sum()
        mu_eff = 1.0 / np.sum(weights**2)
        c_sigma = (mu_eff + 2) / (n + mu_eff + 5)
        d_sigma = 1 + 2 * max(0.0, math.sqrt((mu_eff - 1) / (n + 1)) - 1) + c_sigma
        c_c = (4 + mu_eff / n) / (n + 4 + 2 * mu_eff / n)
        c_1 = 2 / ((n + 1.3) ** 2 + mu_eff)
        c_mu = min(1 - c_1, 2 * (mu_eff - 2 + 1 / mu_eff) / ((n + 2) ** 2 + mu_eff))
        expected_norm = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n**2))

        best = np.argsort(-np.asarray(fitness), kind="stable")[:parents]
        steps = (samples[best] - self.mean) / self.sigma
        step = weights @ steps
        basis, scales = self._eigen()
        whitened = basis @ ((basis.T @ step) / scales)  # cov^(-1/2) step
        self.path_sigma = (1 - c_sigma) * self.path_sigma + math.sqrt(
            c_sigma * (2 - c_sigma) * mu_eff
        ) * whitened
        self.generation += 1
        norm = float(np.linalg.norm(self.path_sigma))
        # h_sigma stops the rank-one path while the step size is still growing fast
        length = norm / math.sqrt(1 - (1 - c_sigma) ** (2 * self.generation))
        h_sigma = float(length < (1.4 + 2 / (n + 1)) * expected_norm)
        self.path_c = (1 - c_c) * self.path_c + h_sigma * math.sqrt(c_c * (2 - c_c) * mu_eff) * step
        lost = (1 - h_sigma) * c_c * (2 - c_c)
        rank_mu = (steps.T * weights) @ steps
        self.cov = (
            (1 + c_1 * lost - c_1 - c_mu) * self.cov
            + c_1 * np.outer(self.path_c, self.path_c)
            + c_mu * rank_mu
        )
        self.mean = self.mean + self.sigma * step
        self.sigma *= math.exp((c_sigma / d_sigma) * (norm / expected_norm - 1))

    def to_state(self) -> dict[str, Any]:
        """The search as a checkpoint stores it."""
        return {
            "sigma": self.sigma,
            "cov": torch.from_numpy(self.cov),
            "path_sigma": torch.from_numpy(self.path_sigma),
            "path_c": torch.from_numpy(self.path_c),
            "generation": self.generation,
        }

    @classmethod
    def from_state(cls, mean: np.ndarray, state: dict[str, Any]) -> CMAES:
        """The search a checkpoint stored (`mean` is stored beside it, as cem's)."""
        return cls(
            np.array(mean, dtype=float),
            float(state["sigma"]),
            state["cov"].double().numpy().copy(),
            state["path_sigma"].double().numpy().copy(),
            state["path_c"].double().numpy().copy(),
            int(state["generation"]),
        )
