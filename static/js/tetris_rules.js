// The rules of trainer/tetris in JavaScript, for replaying a recorded game in the browser:
// the same splitmix64 piece sequence (uniform and bag7), rotations, drop, line clears and
// game over (docs/RULES.md). tests/visualizer/test_tetris_rules_js.py holds it to the
// Python engine board by board. It also computes the afterstate features of every
// placement and a linear policy's options (trainer/rl/options.py's linear_options), so
// that a browser can weigh the placements of any frame; tests/visualizer/
// test_tetris_options_js.py holds those to the Python engine value by value. Runs in a
// browser (window.TetrisTrainer.TetrisRules) and in node (module.exports).
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

  // Afterstate feature sets, names and order as trainer/tetris/features.py: a policy's
  // weights are given in this order.
  const DELLACHERIE_FEATURES = [
    "landing_height",
    "eroded_piece_cells",
    "row_transitions",
    "column_transitions",
    "holes",
    "cumulative_wells",
  ];
  const BCTS_FEATURES = [...DELLACHERIE_FEATURES, "hole_depth", "rows_with_holes"];
  const FEATURE_SETS = Object.freeze({
    classic: Object.freeze(["lines", "holes", "bumpiness", "aggregate_height"]),
    dellacherie: Object.freeze([...DELLACHERIE_FEATURES]),
    bcts: Object.freeze([...BCTS_FEATURES]),
    dt: Object.freeze([...BCTS_FEATURES, "pattern_diversity"]),
  });

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

  // A piece given by its letter ("IOTSZJL") or its id.
  function pieceId(piece) {
    // (A one-letter test first: indexOf would find "" or "IO" at 0.)
    const letter = typeof piece === "string" && piece.length === 1;
    const id = letter ? PIECE_NAMES.indexOf(piece) : piece;
    if (!Number.isInteger(id) || id < 0 || id >= PIECE_NAMES.length) {
      throw new Error(`unknown piece ${piece}; expected one of ${PIECE_NAMES} or 0 to 6`);
    }
    return id;
  }

  function featureNames(featureSet) {
    if (!Object.prototype.hasOwnProperty.call(FEATURE_SETS, featureSet)) {
      const known = Object.keys(FEATURE_SETS).join(", ");
      throw new Error(`unknown feature set ${featureSet}; expected one of ${known}`);
    }
    return FEATURE_SETS[featureSet];
  }

  // The features of a board alone, cell by cell as trainer/tetris/reference.py states them
  // (docs/RULES.md, MDPTetris's definitions): full[row][column], row 0 at the bottom.
  // Rows above the stack are empty: each adds 2 row transitions (the walls) and nothing
  // else, so the scans stop at the stack's top, as the kernels stop at the wall height.
  function boardFeatures(full, width, height) {
    const heights = [];
    for (let c = 0; c < width; c += 1) {
      let h = height;
      while (h > 0 && !full[h - 1][c]) h -= 1;
      heights.push(h);
    }
    const top = Math.max(...heights);
    const holeRows = new Set();
    let holes = 0;
    let holeDepth = 0;
    let columnTransitions = 0;
    for (let c = 0; c < width; c += 1) {
      const h = heights[c];
      // A hole is an empty cell with a full cell anywhere above it: below the column's top.
      for (let y = 0; y < h; y += 1) {
        if (!full[y][c]) {
          holes += 1;
          holeRows.add(y);
        }
      }
      // Up the column from the floor, which counts as full, to the empty space above it.
      let below = true;
      for (let y = 0; y < top; y += 1) {
        if (full[y][c] !== below) columnTransitions += 1;
        below = full[y][c];
      }
      if (below) columnTransitions += 1;
      // Each empty cell under a full one adds the run of full cells directly above it.
      for (let y = 0; y + 1 < top; y += 1) {
        if (!full[y][c] && full[y + 1][c]) {
          let run = y + 1;
          while (run < top && full[run][c]) run += 1;
          holeDepth += run - (y + 1);
        }
      }
    }
    let rowTransitions = 2 * (height - top);
    let wells = 0;
    for (let y = 0; y < top; y += 1) {
      // From the left wall to the right wall, both counting as full: an empty row adds 2.
      let left = true;
      for (let c = 0; c < width; c += 1) {
        if (full[y][c] !== left) rowTransitions += 1;
        left = full[y][c];
      }
      if (!left) rowTransitions += 1;
      // A well cell (empty, both side neighbours full or a wall) adds 1 for itself and 1
      // for each empty cell directly below it: Dellacherie's cumulative wells.
      for (let c = 0; c < width; c += 1) {
        const leftFull = c === 0 || full[y][c - 1];
        const rightFull = c === width - 1 || full[y][c + 1];
        if (!full[y][c] && leftFull && rightFull) {
          let under = y - 1;
          while (under >= 0 && !full[under][c]) under -= 1;
          wells += y - under;
        }
      }
    }
    let bumpiness = 0;
    for (let c = 0; c + 1 < width; c += 1) bumpiness += Math.abs(heights[c] - heights[c + 1]);
    // Pattern diversity (MDPTetris's get_diversity): which of the height differences
    // -2, -1, 0, 1, 2 (right column minus left) occur between neighbouring columns.
    const patterns = new Set();
    for (let c = 0; c + 1 < width; c += 1) {
      const difference = heights[c + 1] - heights[c];
      if (Math.abs(difference) <= 2) patterns.add(difference);
    }
    return {
      holes,
      bumpiness,
      aggregate_height: heights.reduce((sum, h) => sum + h, 0),
      row_transitions: rowTransitions,
      column_transitions: columnTransitions,
      cumulative_wells: wells,
      hole_depth: holeDepth,
      rows_with_holes: holeRows.size,
      pattern_diversity: patterns.size,
    };
  }

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

    // A game on a frame's board (boardString()'s format) with `piece` (letter or id) to place,
    // for weighing the placements of a recorded frame; see setBoard().
    static fromBoard(width, height, board, piece) {
      const game = new Game(width, height);
      game.setBoard(board, piece);
      return game;
    }

    // Replace the board by a frame and set the current piece, as TetrisGame.set_board: lines,
    // score, pieces, the next piece and the piece stream are kept. Throws for a frame of the
    // wrong size or with other characters than '.' and the piece letters, or with a full
    // row (the engine would have cleared it).
    setBoard(board, piece) {
      const current = pieceId(piece);
      const size = this.width * this.height;
      if (typeof board !== "string" || board.length !== size) {
        throw new Error(`a frame is ${size} chars of '.${PIECE_NAMES}'`);
      }
      const cells = [];
      for (let r = 0; r < this.height; r += 1) {
        const start = (this.height - 1 - r) * this.width; // the frame is top row first
        const row = [];
        for (let c = 0; c < this.width; c += 1) {
          const char = board[start + c];
          const cell = char === "." ? 0 : PIECE_NAMES.indexOf(char) + 1;
          if (cell === 0 && char !== ".") throw new Error(`a frame holds no ${char}`);
          row.push(cell);
        }
        if (row.every((cell) => cell !== 0)) {
          throw new Error("a board cannot hold a full row: it would have been cleared");
        }
        cells.push(row);
      }
      this.cells = cells;
      this.updateHeights();
      this.current = current;
      this.gameOver = !this.hasLegalPlacement(current);
    }

    updateHeights() {
      for (let c = 0; c < this.width; c += 1) {
        let h = this.height;
        while (h > 0 && this.cells[h - 1][c] === 0) h -= 1;
        this.heights[c] = h;
      }
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
      this.updateHeights();
      this.lines += cleared;
      this.score += SCORE_TABLE[cleared];
      this.pieces += 1;
      this.current = this.next;
      this.next = this.drawPiece();
      this.gameOver = !this.hasLegalPlacement(this.current);
      return cleared;
    }

    // The afterstate of a legal placement of the current piece: the board once dropped and
    // cleared (full[row][column], row 0 at the bottom), the lines cleared, and the two
    // features of the move itself, which look at the piece before the clear.
    afterstate({ shape, col, dest }) {
      const full = this.cells.map((row) => row.map((cell) => cell !== 0));
      for (const [r, c] of shape.cells) full[dest + r][col + c] = true;
      const isFull = full.map((row) => row.every(Boolean));
      const kept = full.filter((row, y) => !isFull[y]);
      const lines = this.height - kept.length;
      while (kept.length < this.height) kept.push(new Array(this.width).fill(false));
      const erodedCells = shape.cells.filter(([r]) => isFull[dest + r]).length;
      return {
        full: kept,
        lines,
        // The height of the piece's middle where it came to rest: a flat I on the floor 0.
        landingHeight: dest + (shape.height - 1) / 2,
        erodedPieceCells: lines * erodedCells,
      };
    }

    // Every legal placement of the current piece, in ascending action order, with the
    // features of `featureSet` of the board it leads to (TetrisGame.afterstates):
    // [{action, rotation, column, lines, features: {name: value}}]; [] once the game is over.
    afterstateFeatures(featureSet) {
      const names = featureNames(featureSet);
      return this.legalActions().map((action) => {
        const after = this.afterstate(this.placement(this.current, action));
        const all = boardFeatures(after.full, this.width, this.height);
        all.lines = after.lines;
        all.landing_height = after.landingHeight;
        all.eroded_piece_cells = after.erodedPieceCells;
        const features = {};
        for (const name of names) features[name] = all[name];
        const rotation = Math.floor(action / this.width);
        return { action, rotation, column: action % this.width, lines: after.lines, features };
      });
    }

    // The board cells [[rowFromTop, column], ...] where the current piece lands, before any
    // line clear, placed by `rotation` with its leftmost cell in `column`; null if illegal.
    landingCells(rotation, column) {
      const inRange = (n, end) => Number.isInteger(n) && n >= 0 && n < end;
      if (!inRange(rotation, NUM_ROTATIONS) || !inRange(column, this.width)) return null;
      const found = this.placement(this.current, rotation * this.width + column);
      if (found === null) return null;
      return found.shape.cells
        .map(([r, c]) => [this.height - 1 - (found.dest + r), found.col + c])
        .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
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

  // What a linear policy weighed for the game's current piece, as trainer/rl/options.py's
  // linear_options: [{rotation, column, value, chosen, terms}], best first. `weights` are
  // one per feature of `featureSet`, in FEATURE_SETS order; terms[name] = weight * feature
  // and value is their sum, in feature order, as the engine's greedy play adds them up.
  // `chosen` marks the placement the policy plays: the first best value in action order.
  // [] once the game is over.
  function placementOptions(game, weights, featureSet) {
    const names = featureNames(featureSet);
    const w = Array.from(weights);
    if (w.length !== names.length || !w.every((x) => typeof x === "number" && isFinite(x))) {
      throw new Error(`${featureSet} needs ${names.length} finite weights, got ${weights}`);
    }
    const options = game.afterstateFeatures(featureSet).map(({ rotation, column, features }) => {
      const terms = {};
      let value = 0;
      names.forEach((name, i) => {
        terms[name] = w[i] * features[name];
        value += terms[name];
      });
      return { rotation, column, value, chosen: false, terms };
    });
    let best = 0;
    options.forEach((option, i) => {
      if (option.value > options[best].value) best = i;
    });
    if (options.length > 0) options[best].chosen = true;
    // Best first; Array.prototype.sort is stable, so equal values keep action order.
    return options.sort((a, b) => b.value - a.value);
  }

  // Where a placement lands on a frame's board (boardString()'s format), for drawing the
  // ghost of an option: [[rowFromTop, column], ...], the piece's 4 cells before any line
  // clear, or null if the placement is not legal. `piece` is a letter of "IOTSZJL" (or id);
  // null too for a null piece, as a frame has once the game is over: nothing lands.
  function landingCells(board, width, height, piece, rotation, column) {
    if (piece === null || piece === undefined) return null;
    return Game.fromBoard(width, height, board, piece).landingCells(rotation, column);
  }

  return {
    PIECE_NAMES,
    FEATURE_SETS,
    Game,
    SplitMix64,
    placementOptions,
    landingCells,
  };
});
