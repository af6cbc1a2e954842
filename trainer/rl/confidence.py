"""Mean lines per game with a 95% interval, from games some of which a piece cap cut short.

Tetris game lengths are close to exponential (Fahey's conjecture, checked by Szita and
Lőrincz with a Kolmogorov-Smirnov test). A game cut at the piece cap is right-censored: it
would have gone on. With d games that ended by themselves and T lines over all games, the
maximum-likelihood mean is T / d, and the exact interval comes from the chi-square
distribution (docs/LEARNING.md has the derivation). When the exponential fit fails, a
bootstrap interval stands in. Standard library and numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np

LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 2_000
# Below this p-value of the exponential fit (Lilliefors' test), the bootstrap is used.
FIT_REJECTED_BELOW = 0.01
# The fit is tested only on this many uncensored games or more: fewer cannot reject it.
FIT_TESTED_FROM = 20


@dataclass(frozen=True)
class MeanInterval:
    """An estimate of mean lines per game and its 95% interval."""

    mean: float
    """the estimate: lines over all games divided by the games that ended (with none ended,
    the lines per game played: the estimate itself is unbounded)"""
    low: float
    """95% lower bound (one-sided when no game ended)"""
    high: float | None
    """95% upper bound; None when no game ended, so nothing bounds it from above"""
    games: int
    ended: int
    """games that ended by themselves, before the cap"""
    method: str
    """`exponential` (censored maximum likelihood) or `bootstrap`"""


# What a page or a table shows for a run with no evaluated score yet.
NO_SCORE = "\N{EN DASH}"


def score_text(evaluation: Mapping[str, Any] | None) -> str:
    """An evaluated score with its interval and its number of games; a dash if none.

    "mean (95% CI low-high, N games)", an en dash between the bounds. When no game ended
    before the piece cap, nothing bounds the mean from above, and the mean of the games
    played (all cut short) lies below the lower bound: then only the bound is shown,
    "≥ low (95% lower bound; no game ended before the cap of C pieces), N games".
    static/js/scores.js writes the same text in the browser.
    """
    if not evaluation or evaluation.get("ci95_low") is None:
        return NO_SCORE
    low, high = evaluation["ci95_low"], evaluation.get("ci95_high")
    games = f"{evaluation['games']:,} game{'' if evaluation['games'] == 1 else 's'}"
    if high is None:
        cap = evaluation.get("piece_cap") or 0
        ended = f"no game ended before the cap of {cap:,} pieces" if cap else "no game ended"
        return f"≥ {_lines(low, low)} (95% lower bound; {ended}), {games}"
    mean = evaluation["mean_lines"]
    interval = f"{_lines(low, mean)}\N{EN DASH}{_lines(high, mean)}"
    return f"{_lines(mean, mean)} (95% CI {interval}, {games})"


def iqm_text(
    iqm: float | None, low: float | None, high: float | None, runs: int, censored: int = 0
) -> str:
    """An interquartile mean of runs' scores with its 95% interval and its number of runs;
    a dash if none yet.

    "iqm (95% CI low-high, N runs)", an en dash between the bounds, with the decimals of
    `score_text`. When `censored` of the runs played every game to the piece cap, their
    scores are lower bounds, and so are these figures: "≥ iqm (95% CI low-high, N runs;
    C at the piece cap)". static/js/scores.js (iqmText) writes the same text in the browser.
    """
    if iqm is None or low is None or high is None:
        return NO_SCORE
    interval = f"{_lines(low, iqm)}\N{EN DASH}{_lines(high, iqm)}"
    count = f"{runs:,} run{'' if runs == 1 else 's'}"
    if censored:
        return f"≥ {_lines(iqm, iqm)} (95% CI {interval}, {count}; {censored:,} at the piece cap)"
    return f"{_lines(iqm, iqm)} (95% CI {interval}, {count})"


def _lines(value: float, scale: float) -> str:
    # One decimal for small scores, where it matters; none once they reach the hundreds.
    # The figures of one score share the decimals of its headline number. Ties round away
    # from zero from the shortest decimal form, as the browser's Intl.NumberFormat does,
    # so a score reads the same before and after a page's script redraws it (a mean of 4
    # games is often x.25 or x.75).
    digits = 1 if abs(scale) < 100 else 0
    rounded = Decimal(str(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return f"{rounded:,.{digits}f}"


def score_interval(lines: Sequence[float], ended: Sequence[bool]) -> MeanInterval:
    """The interval every evaluated score carries: exponential, unless its fit is rejected.

    The fit can be tested only when every game ended and there are enough of them; there the
    bootstrap stands in for a rejected fit. Capped games keep the exponential interval.
    """
    testable = len(lines) >= FIT_TESTED_FROM and all(ended) and sum(lines) > 0
    if testable and exponential_fit_p_value(lines) < FIT_REJECTED_BELOW:
        return bootstrap_interval(lines, ended)
    return mean_interval(lines, ended)


def mean_interval(lines: Sequence[float], ended: Sequence[bool]) -> MeanInterval:
    """The censored-exponential estimate of mean lines per game, with its exact interval.

    `ended[i]` is false for a game the piece cap cut short. With no game ended the mean is
    unknown from above: `mean` is the lines per game seen and `low` a one-sided bound.
    """
    if len(lines) != len(ended) or not lines:
        raise ValueError("need one ended flag for each of at least one game")
    total = float(sum(lines))
    games, d = len(lines), int(sum(bool(flag) for flag in ended))
    alpha = 1.0 - LEVEL
    if d == 0:
        # P(no game ends | mean m) = exp(-T / m) >= alpha  <=>  m >= T / ln(1 / alpha)
        low = total / math.log(1.0 / alpha)
        return MeanInterval(total / games, low, None, games, 0, "exponential")
    # Exact for uncensored games (2T/m ~ chi2(2n)); with censoring, Garwood's Poisson
    # bounds on d events in exposure T, which cover at least the stated level.
    upper_df = 2 * d + 2 if d < games else 2 * d
    low = 2.0 * total / chi2_quantile(1.0 - alpha / 2.0, upper_df)
    high = 2.0 * total / chi2_quantile(alpha / 2.0, 2 * d)
    return MeanInterval(total / d, low, high, games, d, "exponential")


def bootstrap_interval(
    lines: Sequence[float], ended: Sequence[bool], *, seed: int = 0
) -> MeanInterval:
    """A percentile bootstrap of the censored estimate (lines / games ended), for any shape."""
    base = mean_interval(lines, ended)
    values = np.asarray(lines, float)
    flags = np.asarray(ended, bool)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(values), (BOOTSTRAP_RESAMPLES, len(values)))
    totals = values[picks].sum(axis=1)
    counts = flags[picks].sum(axis=1)
    alpha = 1.0 - LEVEL
    if base.ended == 0 or (counts == 0).mean() > alpha / 2.0:
        return base  # too few ended games for a bootstrap: the exponential bound stands
    estimates = totals / counts
    low, high = np.quantile(estimates, [alpha / 2.0, 1.0 - alpha / 2.0])
    return MeanInterval(base.mean, float(low), float(high), base.games, base.ended, "bootstrap")


def exponential_fit_p_value(
    values: Sequence[float], *, resamples: int = 1_000, seed: int = 0
) -> float:
    """Lilliefors' test of uncensored game lengths against an exponential with fitted mean.

    The Kolmogorov-Smirnov distance to the fitted exponential, compared with the distances
    of exponential samples of the same size, each against its own fitted mean.
    """
    sample = np.asarray(values, float)
    if len(sample) < 5 or sample.mean() <= 0:
        raise ValueError("need at least 5 games with a positive mean")
    distance = _ks_distance_to_fitted_exponential(sample)
    rng = np.random.default_rng(seed)
    simulated = rng.exponential(1.0, (resamples, len(sample)))
    null = np.array([_ks_distance_to_fitted_exponential(row) for row in simulated])
    return float((1 + np.sum(null >= distance)) / (resamples + 1))


def _ks_distance_to_fitted_exponential(sample: np.ndarray) -> float:
    """sup |empirical CDF - (1 - exp(-x / mean))| over the sample."""
    ordered = np.sort(sample)
    n = len(ordered)
    fitted = 1.0 - np.exp(-ordered / ordered.mean())
    above = np.arange(1, n + 1) / n - fitted
    below = fitted - np.arange(n) / n
    return float(max(above.max(), below.max()))


def chi2_quantile(p: float, df: float) -> float:
    """The p-quantile of the chi-square distribution with `df` degrees of freedom."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"need 0 < p < 1 and df > 0, got p={p}, df={df}")
    shape = df / 2.0
    low, high = 0.0, max(1.0, shape)
    while _gamma_cdf(shape, high) < p:
        high *= 2.0
    for _ in range(200):  # bisection to double precision
        middle = (low + high) / 2.0
        if _gamma_cdf(shape, middle) < p:
            low = middle
        else:
            high = middle
        if high - low <= 1e-12 * high:
            break
    return low + high  # 2 * the gamma quantile at the midpoint


def _gamma_cdf(shape: float, x: float) -> float:
    """The regularized lower incomplete gamma function P(shape, x)."""
    if x <= 0.0:
        return 0.0
    log_prefactor = shape * math.log(x) - x - math.lgamma(shape)
    if x < shape + 1.0:  # series
        term = total = 1.0 / shape
        a = shape
        while abs(term) > abs(total) * 1e-16:
            a += 1.0
            term *= x / a
            total += term
        return total * math.exp(log_prefactor)
    # continued fraction for the upper tail (modified Lentz)
    tiny = 1e-300
    b = x + 1.0 - shape
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - shape)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return 1.0 - math.exp(log_prefactor) * h
