// Weighs positions with static/js/tetris_rules.js for tests/visualizer/test_tetris_options_js.py:
// reads [{width, height, board, piece, featureSet, weights: [[w, ...], ...], landing}] as
// JSON on stdin (board in the frame format, piece a letter) and writes {featureSets,
// results}: per case the features of every legal placement, the options of each weight
// vector, with `landing` the landing cells of every action id, or the error that stopped it.
"use strict";

const path = require("path");
const { FEATURE_SETS, Game, landingCells, placementOptions } = require(
  path.join(__dirname, "..", "..", "static", "js", "tetris_rules.js"),
);

function weigh({ width, height, board, piece, featureSet, weights, landing }) {
  const game = Game.fromBoard(width, height, board, piece);
  const result = {
    gameOver: game.gameOver,
    placements: game.afterstateFeatures(featureSet),
    options: weights.map((w) => placementOptions(game, w, featureSet)),
    landing: null,
  };
  if (landing) {
    // Through the board-string function the viewer calls, for every action id, legal or not.
    result.landing = [];
    for (let rotation = 0; rotation < 4; rotation += 1) {
      for (let column = 0; column < width; column += 1) {
        result.landing.push(landingCells(board, width, height, piece, rotation, column));
      }
    }
  }
  return result;
}

const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
const results = cases.map((spec) => {
  try {
    return { ...weigh(spec), error: null };
  } catch (error) {
    return { error: error.message };
  }
});
process.stdout.write(JSON.stringify({ featureSets: FEATURE_SETS, results }));
