"""The 95% interval of mean lines per game: coverage on simulated games, fit on real ones."""

import numpy as np
import pytest

from trainer.rl.confidence import (
    NO_SCORE,
    bootstrap_interval,
    chi2_quantile,
    exponential_fit_p_value,
    iqm_text,
    mean_interval,
)
from trainer.rl.evaluation import evaluate

TRIALS = 2_000
TRUE_MEAN = 1_000.0


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [  # scipy.stats.chi2.ppf
        (0.975, 2, 7.377758908227871),
        (0.025, 2, 0.050635615968579795),
        (0.975, 40, 59.34170714532213),
        (0.025, 40, 24.43303917128273),
        (0.5, 1, 0.454936423119572),
        (0.999, 7, 24.321886347856854),
    ],
)
def test_chi2_quantile_matches_reference_values(p: float, df: float, expected: float) -> None:
    assert chi2_quantile(p, df) == pytest.approx(expected, rel=1e-9)


def coverage(games: int, cap: float | None, seed: int) -> tuple[float, int]:
    """Share of trials whose interval holds TRUE_MEAN, and how many trials had no game end."""
    rng = np.random.default_rng(seed)
    covered = unbounded = 0
    for _ in range(TRIALS):
        lengths = rng.exponential(TRUE_MEAN, games)
        ended = lengths < cap if cap else np.ones(games, bool)
        lines = np.minimum(lengths, cap) if cap else lengths
        interval = mean_interval(list(lines), list(ended))
        high = interval.high if interval.high is not None else float("inf")
        covered += interval.low <= TRUE_MEAN <= high
        unbounded += interval.high is None
    return covered / TRIALS, unbounded


@pytest.mark.parametrize("games", [10, 20, 100])
def test_interval_covers_true_mean_95_percent_without_cap(games: int) -> None:
    share, _ = coverage(games, cap=None, seed=games)
    assert 0.93 <= share <= 0.97


@pytest.mark.parametrize(
    ("games", "cap"), [(20, 2 * TRUE_MEAN), (20, TRUE_MEAN / 2), (50, TRUE_MEAN)]
)
def test_interval_covers_true_mean_95_percent_with_cap(games: int, cap: float) -> None:
    share, _ = coverage(games, cap=cap, seed=games + int(cap))
    assert 0.93 <= share <= 0.97


def test_no_game_ended_gives_a_one_sided_lower_bound() -> None:
    interval = mean_interval([100_000] * 20, [False] * 20)
    assert interval.high is None
    assert interval.ended == 0
    # P(no game of 20 ends | mean m) = exp(-2e6 / m) = 5 %  at  m = 2e6 / ln 20
    assert interval.low == pytest.approx(2_000_000 / np.log(20))


def test_one_sided_bound_covers_95_percent_when_the_cap_is_tiny() -> None:
    share, unbounded = coverage(10, cap=TRUE_MEAN / 100, seed=7)
    assert unbounded > TRIALS / 2  # most trials saw no game end
    assert share >= 0.93


def test_more_games_narrow_the_interval() -> None:
    rng = np.random.default_rng(3)
    few, many = rng.exponential(TRUE_MEAN, 10), rng.exponential(TRUE_MEAN, 1_000)
    narrow = mean_interval(list(many), [True] * 1_000)
    wide = mean_interval(list(few), [True] * 10)
    assert (narrow.high - narrow.low) / narrow.mean < (wide.high - wide.low) / wide.mean / 5


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        mean_interval([], [])
    with pytest.raises(ValueError):
        mean_interval([1, 2], [True])


def test_fit_test_rejects_games_that_are_not_exponential() -> None:
    rng = np.random.default_rng(5)
    assert exponential_fit_p_value(rng.exponential(50, 200)) > 0.05
    assert exponential_fit_p_value(rng.normal(500, 50, 200)) < 0.01
    assert exponential_fit_p_value(rng.uniform(0, 100, 200)) < 0.01


def test_bootstrap_interval_covers_the_mean_of_a_non_exponential_shape() -> None:
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(200):
        lines = rng.uniform(0, 2 * TRUE_MEAN, 50)
        interval = bootstrap_interval(list(lines), [True] * 50)
        covered += interval.low <= TRUE_MEAN <= interval.high
    assert interval.method == "bootstrap"
    assert covered / 200 >= 0.9  # a percentile bootstrap of 50 games runs a little short


@pytest.mark.parametrize("height", [6, 8])
def test_real_uncapped_games_of_a_weak_player_fit_an_exponential(height: int) -> None:
    """Dellacherie's controller on a short board: hundreds of games, each to its end."""
    result = evaluate("dellacherie", games=300, height=height, threads=1)
    assert result.truncated == 0
    p_value = exponential_fit_p_value(result.lines)
    assert p_value > 0.05, f"the exponential fit is rejected at height {height}: p={p_value}"


def test_an_iqm_reads_with_its_interval_and_its_runs() -> None:
    assert iqm_text(12.25, 10.04, 14.95, 3) == "12.3 (95% CI 10.0\N{EN DASH}15.0, 3 runs)"
    assert iqm_text(1234.5, 1000.0, 1500.0, 1) == "1,235 (95% CI 1,000\N{EN DASH}1,500, 1 run)"
    assert iqm_text(None, None, None, 0) == NO_SCORE
    capped = iqm_text(800.0, 500.0, 1100.0, 3, censored=2)
    assert capped == "≥ 800 (95% CI 500\N{EN DASH}1,100, 3 runs; 2 at the piece cap)"
