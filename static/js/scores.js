// How an evaluated score reads, wherever a page shows one: "mean (95% CI low–high, N games)",
// or, when no game ended before the piece cap, only the lower bound (the mean of games that
// were all cut short lies below it). trainer/rl/confidence.py (score_text) writes the same text on the server.
// The interquartile mean of an experiment's runs reads "iqm (95% CI low–high, N runs)", or
// "≥ iqm (…; C at the piece cap)" when some runs' scores are lower bounds (iqm_text there).
"use strict";

window.TetrisTrainer = window.TetrisTrainer || {};

(function (ns) {
  const NO_SCORE = "–";

  // One decimal for small scores, where it matters; none once they reach the hundreds.
  // The figures of one score share the decimals of its headline number.
  function formatLines(value, scale) {
    const digits = Math.abs(scale) < 100 ? 1 : 0;
    return Number(value).toLocaleString("en-US", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
  }

  // Whether an evaluation has a score yet (a requested one in progress has none).
  function isScored(evaluation) {
    return Boolean(evaluation) && typeof evaluation.ci95_low === "number";
  }

  // The score as {value, detail}: pages set the headline number apart from its interval.
  function scoreParts(evaluation) {
    if (!isScored(evaluation)) return null;
    const { ci95_low: low, ci95_high: high, games } = evaluation;
    const gameCount = `${games.toLocaleString("en-US")} game${games === 1 ? "" : "s"}`;
    if (high === null || high === undefined) {
      const cap = evaluation.piece_cap || 0;
      const ended = cap
        ? `no game ended before the cap of ${cap.toLocaleString("en-US")} pieces`
        : "no game ended";
      return { value: `≥ ${formatLines(low, low)}`, detail: `(95% lower bound; ${ended}), ${gameCount}` };
    }
    const mean = evaluation.mean_lines;
    const interval = `${formatLines(low, mean)}–${formatLines(high, mean)}`;
    return { value: formatLines(mean, mean), detail: `(95% CI ${interval}, ${gameCount})` };
  }

  function scoreText(evaluation) {
    const parts = scoreParts(evaluation);
    return parts ? `${parts.value} ${parts.detail}` : NO_SCORE;
  }

  // An IQM across runs ({iqm, ci95_low, ci95_high, censored} and the number of runs) as
  // {value, detail}. Runs that played every game to the piece cap (`censored`) have lower
  // bounds for scores, and so the figures are lower bounds: the value reads "≥ …".
  function iqmParts(figures, runs) {
    if (!figures || typeof figures.iqm !== "number" || typeof figures.ci95_low !== "number") {
      return null;
    }
    const { iqm, ci95_low: low, ci95_high: high } = figures;
    const censored = figures.censored || 0;
    const count = `${runs.toLocaleString("en-US")} run${runs === 1 ? "" : "s"}`;
    const capped = censored ? `; ${censored.toLocaleString("en-US")} at the piece cap` : "";
    const interval = `${formatLines(low, iqm)}–${formatLines(high, iqm)}`;
    const value = `${censored ? "≥ " : ""}${formatLines(iqm, iqm)}`;
    return { value, detail: `(95% CI ${interval}, ${count}${capped})` };
  }

  function iqmText(figures, runs) {
    const parts = iqmParts(figures, runs);
    return parts ? `${parts.value} ${parts.detail}` : NO_SCORE;
  }

  ns.formatLines = formatLines;
  ns.iqmParts = iqmParts;
  ns.iqmText = iqmText;
  ns.isScored = isScored;
  ns.scoreParts = scoreParts;
  ns.scoreText = scoreText;
})(window.TetrisTrainer);
