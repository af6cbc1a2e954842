// Replays games with static/js/tetris_rules.js for tests/visualizer/test_tetris_rules_js.py:
// reads [{width, height, randomizer, seed, actions}] as JSON on stdin and writes, per game,
// the state after the deal and after every placement, or the error that stopped it.
"use strict";

const path = require("path");
const { Game } = require(path.join(__dirname, "..", "..", "static", "js", "tetris_rules.js"));

function state(game) {
  return [game.boardString(), game.lines, game.score, game.pieces, game.current, game.next, game.gameOver];
}

const games = JSON.parse(require("fs").readFileSync(0, "utf8"));
const results = games.map(({ width, height, randomizer, seed, actions }) => {
  const game = new Game(width, height, randomizer, seed);
  const states = [state(game)];
  try {
    for (const action of actions) {
      game.step(action);
      states.push(state(game));
    }
  } catch (error) {
    return { states, error: error.message };
  }
  return { states, error: null };
});
process.stdout.write(JSON.stringify(results));
