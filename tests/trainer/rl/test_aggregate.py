"""IQM, stratified bootstrap and probability of improvement: hand-worked cases and scipy."""

import numpy as np
import pytest

from trainer.rl.aggregate import (
    aggregate,
    iqm,
    iqm_curve,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
)

NAN = float("nan")


def test_iqm_of_four_values_cuts_one_from_each_end() -> None:
    assert iqm([40, 1, 3, 2]) == 2.5  # mean of 2 and 3


def test_iqm_of_three_values_cuts_none() -> None:
    assert iqm([1, 2, 3]) == 2.0  # int(0.75) = 0
    assert iqm([1, 2, 30]) == 11.0


def test_iqm_of_eight_values_cuts_two_from_each_end() -> None:
    assert iqm([100, 1, 2, 3, 4, 5, 6, -100]) == 3.5  # mean of 2, 3, 4, 5


def test_iqm_pools_a_matrix_of_runs_and_tasks() -> None:
    assert iqm([[1, 100], [2, 3]]) == 2.5  # sorted 1, 2, 3, 100: mean of 2 and 3


def test_iqm_matches_scipy_trim_mean() -> None:
    from scipy.stats import trim_mean

    rng = np.random.default_rng(0)
    for shape in [(1,), (5,), (7, 3), (10, 4), (33,)]:
        scores = rng.exponential(100.0, shape)
        assert iqm(scores) == pytest.approx(trim_mean(scores, 0.25, axis=None), rel=1e-12)


def test_iqm_refuses_nan_and_empty_scores() -> None:
    with pytest.raises(ValueError, match="NaN"):
        iqm([1.0, NAN, 3.0])
    with pytest.raises(ValueError):
        iqm([])


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        ([3, 4], [1, 2], 1.0),
        ([1, 2], [3, 4], 0.0),
        ([1, 2], [1, 2], 0.5),
        # 3 > 2, 5 > 2, 5 > 4 of the six pairs
        ([1, 3, 5], [2, 4], 3 / 6),
        # (2,1) win, (2,2) tie, (2,3) loss, (3,1) win, (3,2) win, (3,3) tie
        ([2, 3], [1, 2, 3], (3 + 0.5 * 2) / 6),
    ],
)
def test_probability_of_improvement_counts_wins_and_half_ties(
    x: list[int], y: list[int], expected: float
) -> None:
    assert probability_of_improvement(x, y) == pytest.approx(expected)


def test_probability_of_improvement_averages_tasks() -> None:
    x = [[3, 1], [4, 2]]  # task 0: x = 3, 4; task 1: x = 1, 2
    y = [[1, 3], [2, 4]]  # task 0: y = 1, 2; task 1: y = 3, 4
    assert probability_of_improvement(x, y) == 0.5  # (1.0 + 0.0) / 2


def test_probability_of_improvement_matches_mann_whitney_u() -> None:
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(1)
    for n, m in [(5, 5), (10, 3), (7, 12)]:
        # Rounded scores, so that ties occur.
        x, y = rng.normal(1.0, 2.0, n).round(), rng.normal(0.0, 2.0, m).round()
        expected = mannwhitneyu(x, y).statistic / (n * m)
        assert probability_of_improvement(x, y) == pytest.approx(expected)


def test_probability_of_improvement_needs_the_same_tasks() -> None:
    with pytest.raises(ValueError, match="same tasks"):
        probability_of_improvement(np.ones((3, 2)), np.ones((3, 3)))


def test_probability_of_improvement_interval_is_certain_when_x_always_wins() -> None:
    assert probability_of_improvement_ci([5, 6, 7], [1, 2, 3, 4]) == (1.0, 1.0)


def test_probability_of_improvement_interval_holds_one_half_for_equal_samples() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
    low, high = probability_of_improvement_ci(x, y)
    assert low < probability_of_improvement(x, y) < high
    assert low < 0.5 < high


def test_bootstrap_of_constant_scores_is_the_value() -> None:
    assert stratified_bootstrap_ci([7.0] * 10) == (7.0, 7.0)


def test_bootstrap_interval_holds_the_point_estimate() -> None:
    scores = np.random.default_rng(3).exponential(50.0, (12, 3))
    low, high = stratified_bootstrap_ci(scores)
    assert low < iqm(scores) < high


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    scores = np.random.default_rng(4).normal(size=15)
    assert stratified_bootstrap_ci(scores, seed=1) == stratified_bootstrap_ci(scores, seed=1)
    assert stratified_bootstrap_ci(scores, seed=1) != stratified_bootstrap_ci(scores, seed=2)


def test_bootstrap_of_one_run_per_task_never_mixes_tasks() -> None:
    # Resampling all values together would mix the tasks and spread the IQM; within
    # each task the one run is always drawn again.
    scores = [[1.0, 100.0, 10_000.0, 1e6]]
    assert stratified_bootstrap_ci(scores) == (iqm(scores), iqm(scores))


def test_bootstrap_keeps_each_task_in_its_own_column() -> None:
    rng = np.random.default_rng(5)
    scores = np.column_stack([rng.uniform(0, 1, 8), rng.uniform(1_000, 1_001, 8)])
    low, high = stratified_bootstrap_ci(scores, lambda m: m[:, 0].max(), resamples=200)
    assert 0 <= low <= high <= 1
    low, high = stratified_bootstrap_ci(scores, lambda m: m[:, 1].min(), resamples=200)
    assert 1_000 <= low <= high <= 1_001


def test_vectorised_iqm_bootstrap_agrees_with_calling_iqm_on_each_resample() -> None:
    scores = np.random.default_rng(6).exponential(10.0, (9, 2))
    vectorised = stratified_bootstrap_ci(scores, resamples=300, seed=3)
    one_by_one = stratified_bootstrap_ci(scores, lambda m: iqm(m), resamples=300, seed=3)
    assert vectorised == pytest.approx(one_by_one)


def test_bootstrap_gives_a_statistic_the_scores_in_their_shape() -> None:
    shapes = []
    stratified_bootstrap_ci([1.0, 2.0, 3.0], lambda m: shapes.append(m.shape) or 0.0, resamples=3)
    assert shapes == [(3,)] * 3


def test_bootstrap_interval_covers_the_true_centre_about_95_percent() -> None:
    # The IQM of a normal distribution is its mean, by symmetry.
    rng = np.random.default_rng(7)
    covered = sum(
        low <= 10.0 <= high
        for low, high in (stratified_bootstrap_ci(rng.normal(10.0, 3.0, 20)) for _ in range(200))
    )
    assert 0.85 <= covered / 200 <= 1.0


def test_bootstrap_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError):
        stratified_bootstrap_ci([1.0, 2.0], level=1.0)
    with pytest.raises(ValueError):
        stratified_bootstrap_ci([1.0, 2.0], resamples=0)
    with pytest.raises(ValueError, match="NaN"):
        stratified_bootstrap_ci([1.0, NAN])


def test_curve_uses_only_the_runs_that_reached_each_point() -> None:
    curves = [
        [1.0, 10.0, 7.0, NAN],
        [2.0, 20.0, NAN, NAN],
        [3.0, NAN, NAN, NAN],
        [40.0, NAN, NAN, NAN],
    ]
    band = iqm_curve(curves)
    assert band.n.tolist() == [4, 2, 1, 0]
    np.testing.assert_array_equal(band.iqm[:3], [2.5, 15.0, 7.0])
    assert 1.0 <= band.low[0] <= 2.5 <= band.high[0] <= 40.0
    assert 10.0 <= band.low[1] < 15.0 < band.high[1] <= 20.0


def test_curve_point_of_one_run_has_a_zero_width_interval() -> None:
    band = iqm_curve([[1.0, 7.0], [2.0, NAN]])
    assert band.low[1] == band.high[1] == band.iqm[1] == 7.0


def test_curve_point_no_run_reached_is_nan() -> None:
    band = iqm_curve([[1.0, NAN], [2.0, NAN]])
    assert band.n[1] == 0
    assert np.isnan([band.iqm[1], band.low[1], band.high[1]]).all()


def test_curve_matches_the_iqm_and_interval_of_each_point_alone() -> None:
    rng = np.random.default_rng(8)
    curves = rng.normal(size=(10, 60))
    for run, stop in enumerate(rng.integers(5, 60, 10)):
        curves[run, stop:] = NAN
    band = iqm_curve(curves, resamples=500)
    for point in range(60):
        reached = curves[:, point][~np.isnan(curves[:, point])]
        assert band.n[point] == len(reached)
        if len(reached):
            assert band.iqm[point] == pytest.approx(iqm(reached))
            # Different draws than a bootstrap of the point alone, so only roughly equal.
            low, high = stratified_bootstrap_ci(reached, resamples=500)
            spread = high - low
            assert band.low[point] == pytest.approx(low, abs=spread / 4)
            assert band.high[point] == pytest.approx(high, abs=spread / 4)


def test_aggregate_of_one_run_is_its_score() -> None:
    result = aggregate([42.0])
    assert (result.iqm, result.ci95_low, result.ci95_high, result.runs) == (42.0, 42.0, 42.0, 1)


def test_aggregate_of_several_runs_brackets_their_iqm() -> None:
    result = aggregate([10.0, 12.0, 11.0, 50.0, 9.0])
    assert result.runs == 5
    assert result.iqm == pytest.approx(11.0)  # cuts 9 and 50
    assert result.ci95_low <= result.iqm <= result.ci95_high


def test_aggregate_of_no_runs_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one run"):
        aggregate([])
