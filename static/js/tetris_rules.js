// The rules of trainer/tetris in JavaScript, for replaying a recorded game in the browser:
// the same splitmix64 piece sequence (uniform and bag7), rotations, drop, line clears and
// game over (docs/RULES.md). tests/visualizer/test_tetris_rules_js.py holds it to the
// Python engine board by board. Runs in a browser (window.TetrisTrainer.TetrisRules) and
// in node (module.exports).
"use strict";

(function (root, factory) {
  if (typeof module === "object" && module.exports) {
    module.exports = factory();
  } else {
    root.TetrisTrainer = root.TetrisTrainer || {};
    root.TetrisTrainer.TetrisRules = factory();
  }
})(typeof self !== "undefined" ? self : this, function () {
  const PIECE_NAMES = "IOTSZJL";
  const NUM_ROTATIONS = 4;
  const SCORE_TABLE = [0, 40, 100, 300, 1200];
  const RANDOMIZERS = ["uniform", "bag7"];
  // Spawn orientations, top row first ('#' = cell), as trainer/tetris/pieces.py.
  const SPAWN_SHAPES = {
    I: ["####"],
    O: ["##", "##"],
    T: [".#.", "###"],
    S: [".##", "##."],
    Z: ["##.", ".##"],
    J: ["#..", "###"],
    L: ["..#", "###"],
  };

  const MASK64 = (1n << 64n) - 1n;
  const GOLDEN = 0x9e3779b97f4a7c15n;
  const MIX1 = 0xbf58476d1ce4e5b9n;
  const MIX2 = 0x94d049bb133111ebn;

  // A shape is a list of [row, column] cells, row 0 its bottom row, column 0 its left.
  function shapeFromRows(rows) {
    const cells = [];
    rows.forEach((line, r) => {
      for (let c = 0; c < line.length; c += 1) {
        if (line[c] === "#") cells.push([rows.length - 1 - r, c]);
      }
    });
    return cells;
  }

  function rotateClockwise(shape) {
    const turned = shape.map(([r, c]) => [-c, r]);
    const minR = Math.min(...turned.map(([r]) => r));
    const minC = Math.min(...turned.map(([, c]) => c));
    return turned.map(([r, c]) => [r - minR, c - minC]);
  }

  function shapeKey(shape) {
    return shape
      .map(([r, c]) => `${r},${c}`)
      .sort()
      .join(";");
  }

  // Per piece, the four rotations: null where a rotation repeats an earlier one, else its
  // cells, width, height, and each column's lowest cell and top.
  function buildRotations() {
    const table = [];
    for (const name of PIECE_NAMES) {
      let shape = shapeFromRows(SPAWN_SHAPES[name]);
      const seen = new Set();
      const rotations = [];
      for (let rot = 0; rot < NUM_ROTATIONS; rot += 1) {
        const key = shapeKey(shape);
        if (seen.has(key)) {
          rotations.push(null);
        } else {
          const width = 1 + Math.max(...shape.map(([, c]) => c));
          const height = 1 + Math.max(...shape.map(([r]) => r));
          const bottoms = [];
          const tops = [];
          for (let c = 0; c < width; c += 1) {
            const column = shape.filter(([, cc]) => cc === c).map(([r]) => r);
            bottoms.push(Math.min(...column));
            tops.push(Math.max(...column) + 1);
          }
          rotations.push({ cells: shape, width, height, bottoms, tops });
        }
        seen.add(key);
        shape = rotateClockwise(shape);
      }
      table.push(rotations);
    }
    return table;
  }

  const ROTATIONS = buildRotations();

  // splitmix64 over a 64-bit state, as trainer/tetris/kernels.py's next_random.
  class SplitMix64 {
    constructor(seed) {
      this.state = BigInt.asUintN(64, BigInt(seed));
    }

    next() {
      this.state = (this.state + GOLDEN) & MASK64;
      let z = this.state;
      z = ((z ^ (z >> 30n)) * MIX1) & MASK64;
      z = ((z ^ (z >> 27n)) * MIX2) & MASK64;
      return z ^ (z >> 31n);
    }

    below(n) {
      return Number(this.next() % BigInt(n));
    }
  }

  class Game {
    // `seed` may be a number, a BigInt or a decimal string (seeds can exceed 2**53).
    constructor(width = 10, height = 20, randomizer = "uniform", seed = 0) {
      if (!RANDOMIZERS.includes(randomizer)) throw new Error(`unknown randomizer ${randomizer}`);
      this.width = width;
      this.height = height;
      this.randomizer = randomizer;
      this.rng = new SplitMix64(seed);
      // cells[row][column], row 0 at the bottom: 0 empty, else 1 + the piece id.
      this.cells = Array.from({ length: height }, () => new Array(width).fill(0));
      this.heights = new Array(width).fill(0);
      this.bag = [];
      this.bagPos = PIECE_NAMES.length;
      this.lines = 0;
      this.score = 0;
      this.pieces = 0;
      this.current = this.drawPiece();
      this.next = this.drawPiece();
      this.gameOver = !this.hasLegalPlacement(this.current);
    }

    drawPiece() {
      if (this.randomizer === "uniform") return this.rng.below(PIECE_NAMES.length);
      if (this.bagPos >= PIECE_NAMES.length) {
        this.bag = [0, 1, 2, 3, 4, 5, 6];
        for (let i = PIECE_NAMES.length - 1; i > 0; i -= 1) {
          const j = this.rng.below(i + 1);
          [this.bag[i], this.bag[j]] = [this.bag[j], this.bag[i]];
        }
        this.bagPos = 0;
      }
      const piece = this.bag[this.bagPos];
      this.bagPos += 1;
      return piece;
    }

    // Row of the piece's bottom once dropped straight down at `col` onto the stack.
    landingRow(shape, col) {
      let dest = 0;
      for (let j = 0; j < shape.width; j += 1) {
        dest = Math.max(dest, this.heights[col + j] - shape.bottoms[j]);
      }
      return dest;
    }

    // The placement's shape and landing row, or null if it is not legal.
    placement(piece, action) {
      const rot = Math.floor(action / this.width);
      const col = action % this.width;
      if (!Number.isInteger(action) || action < 0 || rot >= NUM_ROTATIONS) return null;
      const shape = ROTATIONS[piece][rot];
      if (shape === null || col + shape.width > this.width) return null;
      const dest = this.landingRow(shape, col);
      return dest + shape.height <= this.height ? { shape, col, dest } : null;
    }

    hasLegalPlacement(piece) {
      for (let action = 0; action < NUM_ROTATIONS * this.width; action += 1) {
        if (this.placement(piece, action) !== null) return true;
      }
      return false;
    }

    legalActions() {
      if (this.gameOver) return [];
      const actions = [];
      for (let action = 0; action < NUM_ROTATIONS * this.width; action += 1) {
        if (this.placement(this.current, action) !== null) actions.push(action);
      }
      return actions;
    }

    // Place the current piece by `action` (rotation * width + column), draw the next one,
    // and return the lines cleared; throws, changing nothing, if the action is not legal.
    step(action) {
      const found = this.gameOver ? null : this.placement(this.current, action);
      if (found === null) {
        const why = this.gameOver ? "the game is over" : "the placement is not legal";
        throw new Error(`cannot play action ${action}: ${why}`);
      }
      const { shape, col, dest } = found;
      for (const [r, c] of shape.cells) this.cells[dest + r][col + c] = this.current + 1;
      const kept = this.cells.filter((row) => row.some((cell) => cell === 0));
      const cleared = this.height - kept.length;
      while (kept.length < this.height) kept.push(new Array(this.width).fill(0));
      this.cells = kept;
      for (let c = 0; c < this.width; c += 1) {
        let h = this.height;
        while (h > 0 && this.cells[h - 1][c] === 0) h -= 1;
        this.heights[c] = h;
      }
      this.lines += cleared;
      this.score += SCORE_TABLE[cleared];
      this.pieces += 1;
      this.current = this.next;
      this.next = this.drawPiece();
      this.gameOver = !this.hasLegalPlacement(this.current);
      return cleared;
    }

    // The frame format: width*height characters from the top row, '.' or a piece letter.
    boardString() {
      let text = "";
      for (let r = this.height - 1; r >= 0; r -= 1) {
        for (const cell of this.cells[r]) text += cell ? PIECE_NAMES[cell - 1] : ".";
      }
      return text;
    }
  }

  return { PIECE_NAMES, Game, SplitMix64 };
});
