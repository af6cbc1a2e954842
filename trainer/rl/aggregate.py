"""Statistics across training runs: interquartile mean, stratified bootstrap, improvement.

Follows Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical
Precipice" (NeurIPS 2021) and its library, rliable. Scores are arranged as a matrix of
shape (runs, tasks); a 1-D array is one task.

- The interquartile mean (IQM) is the mean of the middle half of all scores, runs and tasks
  pooled: sort, drop int(n / 4) values from each end, average the rest (scipy's
  `trim_mean(x, 0.25, axis=None)`). Unlike the mean it ignores a few outlying runs; unlike
  the median it still uses half of them, so its interval is narrow with few runs.
- The stratified bootstrap resamples runs with replacement within each task, never across
  tasks, so every resample keeps each task's share; the interval is the percentile
  interval of the statistic over the resamples (rliable's default, through `arch`).
- The probability of improvement P(X > Y) is, per task, the Mann-Whitney U statistic of X's
  runs against Y's divided by the number of pairs (a tie counts one half), averaged over
  tasks.

rliable was archived in October 2025, so we keep this tested implementation of our own
rather than depend on it. Standard library and numpy only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

LEVEL = 0.95
RESAMPLES = 2_000
# The share of values the interquartile mean drops from each end.
TRIM = 0.25
# Resamples are drawn in batches of at most this many values, so that a large score
# matrix times thousands of resamples never has to fit in memory at once.
BATCH_VALUES = 1 << 22


@dataclass(frozen=True)
class Aggregate:
    """The IQM of one configuration's final scores over its runs, with a 95% interval."""

    iqm: float
    ci95_low: float
    """lower bound of the stratified-bootstrap percentile interval"""
    ci95_high: float
    runs: int


@dataclass(frozen=True)
class CurveBand:
    """The IQM of learning curves at each point, with its interval and how many runs."""

    iqm: np.ndarray
    """IQM over the runs with a value at each point; NaN where no run got there"""
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray
    """how many runs had a value at each point"""


def iqm(scores: ArrayLike) -> float:
    """The interquartile mean of all scores, flattened: the 25% trimmed mean."""
    values = _without_nan(scores).ravel()
    if values.size == 0:
        raise ValueError("the IQM needs at least one score")
    return float(_trimmed_mean(values, axis=0))


def stratified_bootstrap_ci(
    scores: ArrayLike,
    statistic: Callable[[np.ndarray], float] = iqm,
    *,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> tuple[float, float]:
    """The percentile interval of `statistic` over resamples of runs drawn within each task."""
    _check_bootstrap(resamples, level)
    matrix = _runs_by_tasks(scores)
    shape = np.shape(scores)
    rng = np.random.default_rng(seed)

    def estimates(count: int) -> np.ndarray:
        drawn = _resample_runs(matrix, count, rng)
        if statistic is iqm:
            return _trimmed_mean(drawn.reshape(count, -1), axis=1)
        # The statistic sees each resample in the shape it was given the scores in.
        return np.array([statistic(resample.reshape(shape)) for resample in drawn], float)

    low, high = _percentile_interval(_in_batches(resamples, matrix.size, estimates), level)
    return float(low), float(high)


def probability_of_improvement(x: ArrayLike, y: ArrayLike) -> float:
    """P(X > Y): per task the share of run pairs where x beats y, ties half, mean over tasks."""
    return float(_improvement(*_paired_tasks(x, y)))


def probability_of_improvement_ci(
    x: ArrayLike,
    y: ArrayLike,
    *,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> tuple[float, float]:
    """The percentile interval of P(X > Y), x's and y's runs resampled independently per task."""
    _check_bootstrap(resamples, level)
    x_matrix, y_matrix = _paired_tasks(x, y)
    rng = np.random.default_rng(seed)

    def estimates(count: int) -> np.ndarray:
        drawn_x = _resample_runs(x_matrix, count, rng)
        return _improvement(drawn_x, _resample_runs(y_matrix, count, rng))

    pairs = x_matrix.shape[0] * y_matrix.size
    low, high = _percentile_interval(_in_batches(resamples, pairs, estimates), level)
    return float(low), float(high)


def iqm_curve(
    curves: ArrayLike,
    *,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> CurveBand:
    """The IQM and its bootstrap interval at each point of curves shaped (runs, points)."""
    _check_bootstrap(resamples, level)
    matrix = np.asarray(curves, float)
    if matrix.ndim != 2:
        raise ValueError(f"curves must be shaped (runs, points), got shape {matrix.shape}")
    counts = np.sum(~np.isnan(matrix), axis=0)
    middle, low, high = (np.full(matrix.shape[1], np.nan) for _ in range(3))
    rng = np.random.default_rng(seed)
    # Points reached by the same number of runs are bootstrapped together, each point its
    # own stratum, so the work is one vectorised pass per distinct count, not per point.
    for count in np.unique(counts[counts > 0]):
        points = np.flatnonzero(counts == count)
        # NaN sorts last, so each point's first `count` rows are exactly its values.
        values = np.sort(matrix[:, points], axis=0)[:count]
        middle[points] = _trimmed_mean(values, axis=0)
        low[points], high[points] = _column_iqm_interval(values, resamples, level, rng)
    return CurveBand(iqm=middle, low=low, high=high, n=counts)


def aggregate(scores: ArrayLike, *, resamples: int = RESAMPLES, seed: int = 0) -> Aggregate:
    """The IQM of one configuration's final scores and its 95% stratified-bootstrap interval."""
    matrix = _runs_by_tasks(scores)
    low, high = stratified_bootstrap_ci(matrix, resamples=resamples, level=0.95, seed=seed)
    return Aggregate(iqm=iqm(matrix), ci95_low=low, ci95_high=high, runs=matrix.shape[0])


def _without_nan(scores: ArrayLike) -> np.ndarray:
    values = np.asarray(scores, float)
    if np.isnan(values).any():
        raise ValueError("scores contain NaN: drop the missing runs first")
    return values


def _runs_by_tasks(scores: ArrayLike) -> np.ndarray:
    """Scores as a (runs, tasks) matrix of at least one run and one task."""
    values = _without_nan(scores)
    if values.ndim == 1:
        values = values[:, np.newaxis]
    if values.ndim != 2:
        raise ValueError(f"scores must be shaped (runs,) or (runs, tasks), got {values.shape}")
    if values.size == 0:
        raise ValueError("need at least one run's score for at least one task")
    return values


def _paired_tasks(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x_matrix, y_matrix = _runs_by_tasks(x), _runs_by_tasks(y)
    if x_matrix.shape[1] != y_matrix.shape[1]:
        raise ValueError(
            f"x and y must cover the same tasks: {x_matrix.shape[1]} and {y_matrix.shape[1]}"
        )
    return x_matrix, y_matrix


def _check_bootstrap(resamples: int, level: float) -> None:
    if resamples < 1:
        raise ValueError(f"need at least one resample, got {resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"the level must lie strictly between 0 and 1, got {level}")


def _trimmed_mean(values: np.ndarray, axis: int) -> np.ndarray:
    """The interquartile mean along one axis."""
    size = values.shape[axis]
    cut = int(TRIM * size)
    middle = np.arange(cut, size - cut)
    return np.take(np.sort(values, axis=axis), middle, axis=axis).mean(axis=axis)


def _column_iqm_interval(
    values: np.ndarray, resamples: int, level: float, rng: np.random.Generator
) -> np.ndarray:
    """The bootstrap interval of each column's own IQM, shaped (2, columns)."""

    def estimates(count: int) -> np.ndarray:
        return _trimmed_mean(_resample_runs(values, count, rng), axis=1)

    return _percentile_interval(_in_batches(resamples, values.size, estimates), level)


def _resample_runs(matrix: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` stratified resamples, shaped (count, runs, tasks): runs drawn per task."""
    runs, tasks = matrix.shape
    rows = rng.integers(0, runs, (count, runs, tasks))
    return matrix[rows, np.arange(tasks)]


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) of x shaped (..., n, tasks) against y shaped (..., m, tasks)."""
    pairs_x, pairs_y = x[..., :, np.newaxis, :], y[..., np.newaxis, :, :]
    wins = np.sum(pairs_x > pairs_y, axis=(-3, -2))
    ties = np.sum(pairs_x == pairs_y, axis=(-3, -2))
    # Counts first, then one division: identical samples give exactly one half.
    per_task = (wins + 0.5 * ties) / (x.shape[-2] * y.shape[-2])
    return per_task.mean(axis=-1)


def _in_batches(
    resamples: int, values_per_resample: int, estimates: Callable[[int], np.ndarray]
) -> np.ndarray:
    """`estimates(k)` of k fresh resamples at a time, joined along the first axis."""
    batch = max(1, BATCH_VALUES // values_per_resample)
    sizes = [min(batch, resamples - start) for start in range(0, resamples, batch)]
    return np.concatenate([estimates(size) for size in sizes])


def _percentile_interval(estimates: np.ndarray, level: float) -> np.ndarray:
    """The (1 - level) / 2 and 1 - (1 - level) / 2 quantiles along the first axis."""
    tail = (1.0 - level) / 2.0
    return np.quantile(estimates, [tail, 1.0 - tail], axis=0)
